// Node: a run folder (the CLI's --out DIR). Written so that a crash at any point leaves the last good
// checkpoint intact: new tensors go to a new file (written, fsynced, renamed), then checkpoint.json
// (the commit point) is replaced the same way, then the old tensors are removed. A folder is never
// overwritten by a fresh run, and --resume refuses anything it cannot verify before writing a byte.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { decodeCheckpointTensors, encodeCheckpointTensors, parseCheckpointMeta, type Checkpoint } from './checkpoint';
import type { StepMetrics } from '../train/distill';

/** The file operations a run folder uses (a test injects a crash between any two of them). */
export interface RunDirIo {
  write(path: string, data: Uint8Array | string): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
}

export const nodeIo: RunDirIo = {
  write(path, data) {
    const fd = openSync(path, 'w');
    try {
      const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  },
  rename: renameSync,
  unlink: unlinkSync,
};

export class RunDir {
  readonly checkpointJson: string;
  constructor(readonly dir: string, private readonly io: RunDirIo = nodeIo) {
    this.checkpointJson = join(dir, 'checkpoint.json');
  }

  hasCheckpoint(): boolean {
    return existsSync(this.checkpointJson);
  }

  /** Before a fresh run: the folder must not hold a run already. */
  claimFresh(): void {
    if (this.hasCheckpoint()) throw new Error(`${this.dir} already holds a run (checkpoint.json); pass --resume to continue it, or choose another --out`);
    mkdirSync(this.dir, { recursive: true });
    this.atomicWrite('metrics.jsonl', '');
  }

  /** The checkpoint to resume from, read and parsed (verified against the run by runTraining). */
  async readCheckpoint(): Promise<Checkpoint> {
    if (!existsSync(this.dir)) throw new Error(`${this.dir}: no such run folder to resume`);
    if (!this.hasCheckpoint()) throw new Error(`${this.checkpointJson}: not found; there is nothing to resume in ${this.dir} (nothing was changed)`);
    const meta = parseCheckpointMeta(readFileSync(this.checkpointJson, 'utf8'), this.checkpointJson);
    const tensorsPath = join(this.dir, meta.tensorsFile ?? 'checkpoint.safetensors');
    if (!existsSync(tensorsPath)) throw new Error(`${tensorsPath}: not found, but ${this.checkpointJson} names it; the run folder is incomplete (nothing was changed)`);
    const tensors = await decodeCheckpointTensors(readFileSync(tensorsPath), tensorsPath);
    return { meta, tensors, source: { tensors: tensorsPath } };
  }

  /** After a verified resume: metrics.jsonl restarts from the checkpoint's history. */
  restartMetrics(history: StepMetrics[]): void {
    this.atomicWrite('metrics.jsonl', history.map((x) => JSON.stringify(x) + '\n').join(''));
  }

  appendMetrics(m: StepMetrics): void {
    // append-only; a torn last line is rewritten from the checkpoint's history on resume
    const fd = openSync(join(this.dir, 'metrics.jsonl'), 'a');
    try {
      writeSync(fd, JSON.stringify(m) + '\n');
    } finally {
      closeSync(fd);
    }
  }

  saveCheckpoint(c: Checkpoint): void {
    const tensorsFile = `checkpoint-${c.meta.step}.safetensors`;
    this.atomicWrite(tensorsFile, encodeCheckpointTensors(c));
    this.atomicWrite('checkpoint.json', JSON.stringify({ ...c.meta, tensorsFile }));
    // leftovers of earlier checkpoints (also of a crash between the two writes above)
    for (const f of readdirSync(this.dir)) if (/^checkpoint(-\d+)?\.safetensors(\.tmp)?$/.test(f) && f !== tensorsFile) this.io.unlink(join(this.dir, f));
  }

  writeJson(name: string, value: unknown): void {
    this.atomicWrite(name, JSON.stringify(value, null, 2));
  }

  /** write name.tmp (fsynced), then rename over name */
  atomicWrite(name: string, data: Uint8Array | string): void {
    const path = join(this.dir, name);
    this.io.write(path + '.tmp', data);
    this.io.rename(path + '.tmp', path);
  }
}
