// Loss kernels: per-row losses (rows) and their gradients (assign). See shaders/loss.wgsl.
import { Params, type Gpu, type Tensor } from '../gpu/runtime';

const WG = 64;
export const IGNORE_INDEX = 0xffffffff;

function run(gpu: Gpu, entry: string, rows: number, V: number, T: number, temp: number, scale: number, bindings: Record<number, Tensor>): void {
  gpu.run({ shader: 'loss', entry, constants: { WG } }, { params: new Params().u32(rows, V, T, 0).f32(temp, scale).u32(0, 0), bindings, workgroups: gpu.grid(Math.ceil(rows / WG)) });
}

/** losses (rows) = −log softmax(logits)[target]; targets u32 (rows), IGNORE_INDEX rows give 0. */
export function crossEntropyForward(gpu: Gpu, losses: Tensor, logits: Tensor, targets: Tensor, rows: number, V: number): void {
  run(gpu, 'ce_forward', rows, V, 0, 1, 1, { 1: logits, 3: targets, 4: losses });
}
/** dlogits (rows, V) = scale·(softmax − onehot); 0 on ignored rows. */
export function crossEntropyBackward(gpu: Gpu, dlogits: Tensor, logits: Tensor, targets: Tensor, rows: number, V: number, scale: number): void {
  run(gpu, 'ce_backward', rows, V, 0, 1, scale, { 1: logits, 3: targets, 5: dlogits });
}
/** losses (rows) = T²·KL(softmax(teacher/T) ‖ softmax(student/T)). */
export function klForward(gpu: Gpu, losses: Tensor, student: Tensor, teacher: Tensor, rows: number, V: number, temp: number): void {
  run(gpu, 'kl_forward', rows, V, 0, temp, 1, { 1: student, 2: teacher, 4: losses });
}
/** dstudent (rows, V) = scale·T·(p_s − p_t). */
export function klBackward(gpu: Gpu, dstudent: Tensor, student: Tensor, teacher: Tensor, rows: number, V: number, temp: number, scale: number): void {
  run(gpu, 'kl_backward', rows, V, 0, temp, scale, { 1: student, 2: teacher, 5: dstudent });
}
/** Attention maps (B, NH, T, T): per query row KL(p_t ‖ p_s); rows = B*NH*T. */
export function attnKlForward(gpu: Gpu, losses: Tensor, student: Tensor, teacher: Tensor, rows: number, T: number): void {
  run(gpu, 'attnkl_forward', rows, T, T, 1, 1, { 1: student, 2: teacher, 4: losses });
}
export function attnKlBackward(gpu: Gpu, dstudent: Tensor, student: Tensor, teacher: Tensor, rows: number, T: number, scale: number): void {
  run(gpu, 'attnkl_backward', rows, T, T, 1, scale, { 1: student, 2: teacher, 5: dstudent });
}
/** losses (rows) = Σ (a − b)²/C. */
export function mseForward(gpu: Gpu, losses: Tensor, a: Tensor, b: Tensor, rows: number, C: number): void {
  run(gpu, 'mse_forward', rows, C, 0, 1, 1, { 1: a, 2: b, 4: losses });
}
export function mseBackward(gpu: Gpu, da: Tensor, a: Tensor, b: Tensor, rows: number, C: number, scale: number): void {
  run(gpu, 'mse_backward', rows, C, 0, 1, scale, { 1: a, 2: b, 5: da });
}
