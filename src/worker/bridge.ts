// The page side of the worker protocol: typed requests returning promises. The bridge is the only
// code that writes engine events into the zustand store.
import type { Request, ResultOf, WorkerEvent } from './protocol';
import { useStudio } from '../ui/store';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class EngineBridge {
  private worker: Worker;
  private nextId = 1;
  private pending = new Map<number, Pending>();

  constructor() {
    this.worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
    this.worker.onmessage = (ev: MessageEvent<WorkerEvent>) => this.onEvent(ev.data);
    this.worker.onerror = (ev) => useStudio.getState().setGpuError(`engine worker failed: ${ev.message}`);
  }

  private onEvent(e: WorkerEvent): void {
    const s = useStudio.getState();
    switch (e.type) {
      case 'result':
      case 'error': {
        const p = this.pending.get(e.id);
        this.pending.delete(e.id);
        if (e.type === 'result') p?.resolve(e.result);
        else p?.reject(new Error(e.message));
        break;
      }
      case 'progress':
        s.setProgress({ label: e.label, done: e.done, total: e.total });
        break;
      case 'gpuError':
        s.setGpuError(e.message);
        break;
      case 'log':
        s.log(e.message);
        break;
    }
  }

  request<T extends Request['type']>(type: T, body: Omit<Extract<Request, { type: T }>, 'id' | 'type'> = {} as never): Promise<ResultOf<T>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...body, id, type } as Request);
    });
  }

  async init(): Promise<void> {
    const s = useStudio.getState();
    try {
      s.setGpu(await this.request('init'));
    } catch (e) {
      s.setGpuError((e as Error).message);
    }
  }

  async selfTest(): Promise<void> {
    const s = useStudio.getState();
    s.setSelfTest({ status: 'running' });
    try {
      s.setSelfTest({ status: 'done', result: await this.request('selfTest') });
    } catch (e) {
      s.setSelfTest({ status: 'failed', message: (e as Error).message });
    }
  }
}

export async function runOnnxCheck(providers: string[]): Promise<void> {
  const s = useStudio.getState();
  s.setOnnxCheck({ status: 'running' });
  try {
    s.setOnnxCheck({ status: 'done', result: await engine().request('onnxCheck', { providers }) });
  } catch (e) {
    s.setOnnxCheck({ status: 'failed', message: (e as Error).message });
  }
}

export async function runKernelBench(): Promise<void> {
  const s = useStudio.getState();
  s.setKernelBench({ status: 'running' });
  try {
    s.setKernelBench({ status: 'done', result: await engine().request('benchKernels') });
  } catch (e) {
    s.setKernelBench({ status: 'failed', message: (e as Error).message });
  }
}

let bridge: EngineBridge | null = null;
export function engine(): EngineBridge {
  if (!bridge) bridge = new EngineBridge();
  return bridge;
}
