// A random-access byte source: a File/Blob in the browser, a file handle in Node (node-source.ts),
// or bytes in memory. Readers take slices, never the whole file twice.
export interface ByteSource {
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    read: async (offset, length) => {
      if (offset < 0 || offset + length > bytes.byteLength) throw new Error(`${name}: read of ${length} bytes at ${offset} is past the end (${bytes.byteLength} bytes)`);
      return bytes.subarray(offset, offset + length);
    },
  };
}

export function blobSource(file: Blob & { name?: string }, name = file.name ?? 'blob'): ByteSource {
  return {
    name,
    size: file.size,
    read: async (offset, length) => {
      if (offset < 0 || offset + length > file.size) throw new Error(`${name}: read of ${length} bytes at ${offset} is past the end (${file.size} bytes)`);
      return new Uint8Array(await file.slice(offset, offset + length).arrayBuffer());
    },
  };
}

export async function readAll(src: ByteSource): Promise<Uint8Array> {
  return src.read(0, src.size);
}

export async function readText(src: ByteSource): Promise<string> {
  return new TextDecoder().decode(await readAll(src));
}
