// The engine in a Web Worker: the page never blocks on GPU work. Only this file touches the Gpu.
/// <reference lib="webworker" />
import { createBrowserGpu } from '../engine/gpu/browser';
import type { Gpu } from '../engine/gpu/runtime';
import { addForward } from '../engine/ops/elementwise';
import { matmulForward } from '../engine/ops/matmul';
import type { Progress, Request, SelfTestResult, WorkerEvent } from './protocol';
import { StudioEngine } from './studio-engine';

let gpu: Gpu | null = null;
let studio: StudioEngine | null = null;
let stopRequested = false;
let pauseRequested = false;
const need = () => {
  if (!studio) throw new Error('the GPU is not initialised yet');
  return studio;
};
const post = (e: WorkerEvent) => (self as unknown as Worker).postMessage(e);

async function selfTest(g: Gpu): Promise<SelfTestResult> {
  const t0 = performance.now();
  const n = 1000;
  const a = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const b = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.3));
  const ta = g.tensor('selftest.a', [n], 'f32', a), tb = g.tensor('selftest.b', [n], 'f32', b), to = g.tensor('selftest.out', [n]);
  addForward(g, to, ta, tb);
  const sum = await g.readF32(to);
  let errAdd = 0;
  for (let i = 0; i < n; i++) errAdd = Math.max(errAdd, Math.abs(sum[i] - (a[i] + b[i])));
  // a 7x33 by 33x5 matmul (awkward shapes) against a float64 loop
  const M = 7, K = 33, N = 5;
  const x = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i * 0.7));
  const w = Float32Array.from({ length: N * K }, (_, i) => Math.cos(i * 1.3));
  const tx = g.tensor('selftest.x', [M, K], 'f32', x), tw = g.tensor('selftest.w', [N, K], 'f32', w), ty = g.tensor('selftest.y', [M, N]);
  matmulForward(g, ty, tx, tw, M, K, N);
  const y = await g.readF32(ty);
  let errMm = 0;
  for (let m = 0; m < M; m++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k] * w[j * K + k];
      errMm = Math.max(errMm, Math.abs(y[m * N + j] - s));
    }
  for (const t of [ta, tb, to, tx, tw, ty]) g.free(t);
  // every matmul variant this adapter runs, against the float64 references (what the kernel
  // timing checks before it calls one fastest)
  const { checkKernelVariants } = await import('../engine/ops/kernel-choice');
  const variants = (await checkKernelVariants(g)).map((c) => ({ name: `${c.op} (${c.variant}) ${c.shape}`, maxAbsError: c.maxAbsError, ok: c.ok }));
  // and every attention kernel (forwards, backwards, decoding; error relative to the largest |ref|)
  const { checkAttentionVariants } = await import('../engine/ops/attention-check');
  const attention = (await checkAttentionVariants(g)).map((c) => ({ name: `attention ${c.kernel} ${c.shape} (relative error)`, maxAbsError: c.relError, ok: c.ok }));
  return {
    kernels: [
      { name: 'elementwise add', maxAbsError: errAdd, ok: errAdd <= 1e-6 },
      { name: 'fp32 matmul 7×33·33×5', maxAbsError: errMm, ok: errMm <= 1e-4 },
      ...variants,
      ...attention,
    ],
    ms: performance.now() - t0,
  };
}

/** Progress events for request `id`, at most ~10 per second (and always the last one). */
function throttledProgress(id: number): (done: number, total: number, label: string, etaSeconds?: number | null) => void {
  let last = 0;
  return (done, total, label, etaSeconds) => {
    const now = performance.now();
    if (now - last > 100 || done === total) {
      last = now;
      post({ type: 'progress', id, done, total, label, etaSeconds });
    }
  };
}

/** The workflow's run progress (with its ETA) for request `id`, at most ~10 events a second. */
function runProgress(id: number): (p: Progress) => void {
  const progress = throttledProgress(id);
  return (p) => progress(p.done, p.total, p.label, p.etaSeconds);
}

async function handle(req: Request): Promise<unknown> {
  switch (req.type) {
    case 'init': {
      if (!gpu) {
        gpu = await createBrowserGpu();
        gpu.onError((message) => post({ type: 'gpuError', message }));
        studio = new StudioEngine(gpu);
      }
      return gpu.info;
    }
    case 'createTiny':
      return need().createTiny();
    case 'loadFiles': {
      const progress = throttledProgress(req.id);
      return need().loadFiles(req.files, req.name, { byteTokenizer: req.byteTokenizer, onProgress: progress });
    }
    case 'pretrain':
      stopRequested = false;
      return need().pretrain(req.spec, (point) => post({ type: 'pretrainStep', id: req.id, point }), () => stopRequested);
    case 'exportModel':
      return need().exportModel();
    case 'accuracy': {
      const progress = throttledProgress(req.id);
      return need().accuracy(req.req, (done, total, label) => progress(done, total, label));
    }
    case 'quantize': {
      const progress = throttledProgress(req.id);
      return need().quantize(req.ptq, (done, total) => progress(done, total, 'quantizing tensors'));
    }
    case 'baselines': {
      const progress = throttledProgress(req.id);
      return need().baselines({ bits: req.bits, group: req.group, sym: req.sym }, (label, done, total) => progress(done, total, label));
    }
    case 'export':
      return need().exportQuantized(req.format);
    case 'exportAs':
      return need().exportModelAs(req.key, req.format);
    case 'train': {
      stopRequested = false;
      pauseRequested = false;
      return need().train(req.req, (metrics) => post({ type: 'step', id: req.id, runId: req.req.id, metrics }), runProgress(req.id), () => stopRequested, () => pauseRequested, req.resume);
    }
    case 'autoFreeze': {
      stopRequested = false;
      return need().autoFreeze(req.req, (metrics) => post({ type: 'step', id: req.id, runId: req.req.id, metrics }), runProgress(req.id), () => stopRequested);
    }
    case 'compress': {
      stopRequested = false;
      return need().compress(req.req, runProgress(req.id), () => stopRequested);
    }
    case 'compressedFiles':
      return need().compressedFiles(req.stage);
    case 'recipe':
      return need().recipe(req.spec);
    case 'loadStudent':
      return need().loadStudent(req.runId, req.label, req.files);
    case 'models':
      return need().models();
    case 'heldOut':
      return need().heldOut();
    case 'dataInfo':
      return need().currentData();
    case 'stop':
      stopRequested = true;
      return null;
    case 'pause':
      pauseRequested = true;
      return null;
    case 'setData':
      return need().setData(req.text, req.name);
    case 'teacherData':
      return need().teacherData(req.sequences, req.tokens, (done, total) => post({ type: 'progress', id: req.id, done, total, label: 'sampling from the teacher' }));
    case 'generate':
      return need().generate(req.key, req.prompt, req.maxTokens, req.temperature, (text) => post({ type: 'text', id: req.id, text }));
    case 'selfTest': {
      if (!gpu) throw new Error('the GPU is not initialised yet');
      return selfTest(gpu);
    }
    case 'onnxCheck': {
      if (!gpu) throw new Error('the GPU is not initialised yet');
      // onnxruntime-web loads on demand (its wasm is large); single-threaded: the page is not
      // cross-origin isolated.
      const ort = await import('onnxruntime-web/webgpu');
      ort.env.wasm.numThreads = 1;
      const { onnxSelfCheck } = await import('../engine/quant/onnx-check');
      return onnxSelfCheck(gpu, ort, req.providers);
    }
    case 'timeKernels': {
      if (!gpu) throw new Error('the GPU is not initialised yet');
      const { timeKernelVariants } = await import('../engine/ops/kernel-choice');
      const progress = throttledProgress(req.id);
      return timeKernelVariants(gpu, { shapes: req.shapes, attentionShapes: req.attentionShapes, onProgress: (done, total) => progress(done, total, 'timing kernel variants') });
    }
    case 'setKernels': {
      if (!gpu) throw new Error('the GPU is not initialised yet');
      const { applyKernelChoice, kernelState, validKernelChoice } = await import('../engine/ops/kernel-choice');
      const choice = req.choice === null ? null : validKernelChoice(gpu, req.choice);
      if (req.choice !== null && !choice) throw new Error(`this adapter cannot run the kernel choice ${JSON.stringify(req.choice)}; keeping its defaults`);
      applyKernelChoice(gpu, choice);
      return kernelState(gpu);
    }
    case 'setShapeTuning': {
      if (!gpu) throw new Error('the GPU is not initialised yet');
      const { kernelState } = await import('../engine/ops/kernel-choice');
      const { setShapeTuning } = await import('../engine/ops/shape-choice');
      if (req.on !== null) setShapeTuning(gpu, req.on);
      return kernelState(gpu);
    }
    case 'benchKernels': {
      if (!gpu) throw new Error('the GPU is not initialised yet');
      const ort = await import('onnxruntime-web/webgpu');
      ort.env.wasm.numThreads = 1;
      const { benchKernels } = await import('../engine/quant/kernel-bench');
      return benchKernels(gpu, ort);
    }
  }
}

// Requests run one at a time in arrival order, except 'stop', which must reach a running train.
let queue: Promise<unknown> = Promise.resolve();
self.onmessage = (ev: MessageEvent<Request>) => {
  const req = ev.data;
  if (req.type === 'stop' || req.type === 'pause') {
    if (req.type === 'stop') stopRequested = true;
    else pauseRequested = true;
    post({ type: 'result', id: req.id, result: null });
    return;
  }
  queue = queue.then(() => run(req));
};

function run(req: Request): Promise<void> {
  return handle(req).then(
    (result) => post({ type: 'result', id: req.id, result }),
    (err: unknown) => post({ type: 'error', id: req.id, message: err instanceof Error ? err.message : String(err) }),
  );
}
