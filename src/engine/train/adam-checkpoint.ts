// The checkpoint tensors of parameters stepped by one MultiAdamW: `<name>.param`, `<name>.adam_m`,
// `<name>.adam_v` (the checkpoint format's names), written and restored the same way by the
// Distiller (KD-QAT) and the StudentDistiller (KD into another shape).
import type { Gpu, Tensor } from '../gpu/runtime';
import type { MultiAdamW } from '../ops/optim';

export interface CheckpointTensor {
  name: string;
  data: Float32Array;
  shape: number[];
}

/** Every parameter and its Adam moments, in parameter order. */
export async function adamCheckpointTensors(gpu: Gpu, params: { name: string; param: Tensor }[], adam: MultiAdamW): Promise<CheckpointTensor[]> {
  const out: CheckpointTensor[] = [];
  for (const [i, p] of params.entries()) {
    const { m, v } = await adam.state(i);
    out.push({ name: `${p.name}.param`, data: await gpu.readF32(p.param), shape: [...p.param.shape] });
    out.push({ name: `${p.name}.adam_m`, data: m, shape: [...p.param.shape] });
    out.push({ name: `${p.name}.adam_v`, data: v, shape: [...p.param.shape] });
  }
  return out;
}

/** Writes parameters and Adam moments back; every tensor is checked before anything is written. */
export function restoreAdamCheckpoint(gpu: Gpu, params: { name: string; param: Tensor }[], adam: MultiAdamW, tensors: Map<string, Float32Array>): void {
  const got = params.map((p) => {
    const [w, m, v] = ['param', 'adam_m', 'adam_v'].map((suffix) => {
      const d = tensors.get(`${p.name}.${suffix}`);
      if (!d || d.length !== p.param.numel) throw new Error(`checkpoint: tensor ${p.name}.${suffix} is missing or has the wrong size`);
      return d;
    });
    return { w, m, v };
  });
  got.forEach(({ w, m, v }, i) => {
    gpu.write(params[i].param, w);
    adam.setState(i, m, v);
  });
}
