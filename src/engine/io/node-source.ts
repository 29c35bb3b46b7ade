// Node file handles as ByteSources (kept apart so the browser bundle never imports node:fs).
import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ByteSource } from './source';

export async function fileSource(path: string): Promise<ByteSource> {
  const st = await stat(path).catch(() => {
    throw new Error(`${path}: no such file`);
  });
  if (!st.isFile()) throw new Error(`${path}: not a file`);
  const fh = await open(path, 'r');
  const name = basename(path);
  return {
    name,
    size: st.size,
    read: async (offset, length) => {
      if (offset < 0 || offset + length > st.size) throw new Error(`${name}: read of ${length} bytes at ${offset} is past the end (${st.size} bytes)`);
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${name}: unexpected end of file at ${offset + done}`);
        done += bytesRead;
      }
      return buf;
    },
    close: () => fh.close(),
  };
}
