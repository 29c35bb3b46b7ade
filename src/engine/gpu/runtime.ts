// The GPU runtime: one GPUDevice wrapped with labelled, byte-accounted tensors, a pipeline cache,
// many dispatches per command encoder, readback, optional timestamp profiling, and error reports
// that name the kernel. Knows nothing of the browser or Node (see browser.ts / node.ts).
import { loadShader } from './shaders';

export type DType = 'f32' | 'u32' | 'i32';

/** A GPU storage buffer with its logical shape. Row-major; shape comments use B, T, C, NH, ... */
export interface Tensor {
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly label: string;
  readonly bytes: number;
  readonly numel: number;
}

export type TypedArray = Float32Array | Uint32Array | Int32Array;

// f32 -> its bit pattern, without allocating (Params keeps u32 words)
const f32Bits = new Float32Array(1);
const f32BitsU32 = new Uint32Array(f32Bits.buffer);

/** Builds a uniform block of 4-byte scalars in WGSL struct order (pad to 16 bytes). Kept as a plain
 *  array of u32 words: every dispatch builds one, and an ArrayBuffer + DataView per dispatch cost
 *  ~2.4 us of the ~10-20 us a dispatch took to record (the runtime copies the words into its
 *  uniform ring's shadow instead). */
export class Params {
  /** the block's 4-byte words, as unsigned 32-bit integers */
  readonly words: number[] = [];
  /** (capacity: kept for callers that size their blocks; words grow as needed) */
  constructor(_capacity = 32) {}
  u32(...xs: number[]): this {
    for (const x of xs) this.words.push(x >>> 0);
    return this;
  }
  i32(...xs: number[]): this {
    for (const x of xs) this.words.push((x | 0) >>> 0);
    return this;
  }
  f32(...xs: number[]): this {
    for (const x of xs) {
      f32Bits[0] = x;
      this.words.push(f32BitsU32[0]);
    }
    return this;
  }
  /** words padded to a multiple of 4 (16 bytes), at least 4 */
  get paddedWords(): number {
    return Math.max(4, Math.ceil(this.words.length / 4) * 4);
  }
  bytes(): ArrayBuffer {
    const out = new Uint32Array(this.paddedWords);
    out.set(this.words);
    return out.buffer;
  }
}

export interface KernelSpec {
  /** shader file stem in shaders/ */
  shader: string;
  /** entry point, default "main" */
  entry?: string;
  /** WGSL override constants (workgroup sizes, tiles, group sizes) */
  constants?: Record<string, number>;
}

export interface RunArgs {
  /** storage buffers: an array binds @binding(1), @binding(2), ... in order; an object names the
   *  binding numbers ({ 1: a, 3: out }) for entries that share one file's declarations */
  bindings: (Tensor | GPUBuffer)[] | Record<number, Tensor | GPUBuffer>;
  /** uniform block bound at @binding(0), when the kernel declares one */
  params?: Params;
  /** workgroup counts; use gpu.grid() to fold large 1-D counts into 2-D */
  workgroups: readonly [number, number?, number?];
}

export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: string[];
  limits: Record<string, number>;
  backend: string;
  /** adapter's subgroup sizes (0 when unknown) */
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  /** 'gpu': the kernel picks treat this adapter as a real GPU's, even a CPU one (QUENCH_PICKS=gpu in
   *  Node): a dry run, on lavapipe, of the kernels a GPU machine will run (bench/gpu.sh
   *  --software --gpu-picks), so a device call does not find their failures first */
  picksAs?: 'gpu';
}

/** A readback in flight (Gpu.readAsync). */
export interface AsyncRead {
  readonly result: Promise<ArrayBuffer[]>;
  /** the result has settled: awaiting it no longer waits on the GPU */
  readonly landed: boolean;
}

export type GpuErrorHandler = (message: string) => void;

/** Node's event loop does not see Dawn's pending callbacks and would exit (and crash Dawn's
 *  threads) while a mapAsync is in flight; node.ts installs a keep-alive around GPU waits. */
let pendingGpuWaits = 0;
let keepAliveTimer: ReturnType<typeof setInterval> | null = null;
export let needsKeepAlive = false;
export function setNeedsKeepAlive(v: boolean): void {
  needsKeepAlive = v;
}
let gpuWaitSince = 0;
/** When the current run of pending GPU waits began (performance.now(), ms): node.ts lets Dawn's
 *  poll spin only early in a wait. */
export function gpuWaitStartedAt(): number {
  return gpuWaitSince;
}
export async function gpuWait<T>(p: Promise<T>): Promise<T> {
  if (!needsKeepAlive) return p;
  if (pendingGpuWaits++ === 0) {
    gpuWaitSince = performance.now();
    keepAliveTimer = setInterval(() => {}, 1);
  }
  try {
    return await p;
  } finally {
    if (--pendingGpuWaits === 0 && keepAliveTimer) {
      clearInterval(keepAliveTimer);
      keepAliveTimer = null;
    }
  }
}

/** Software (CPU) WebGPU adapters: Mesa lavapipe/llvmpipe, SwiftShader. */
export function isSoftwareAdapterInfo(i: { vendor?: string; architecture?: string; device?: string; description?: string; backend?: string; picksAs?: 'gpu' }): boolean {
  if (i.picksAs === 'gpu') return false;
  return /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(`${i.vendor} ${i.architecture} ${i.device} ${i.description} ${i.backend ?? ''}`);
}

const UNIFORM_CHUNK = 64 * 1024;
const BIND_GROUP_CAP = 8192; // cached bind groups (a KD-QAT step of stories260K uses ~400)

function bufferOf(b: Tensor | GPUBuffer): GPUBuffer {
  return 'buffer' in b && (b as Tensor).buffer !== undefined ? (b as Tensor).buffer : (b as GPUBuffer);
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export class Gpu {
  readonly device: GPUDevice;
  readonly info: GpuInfo;
  readonly hasTimestamps: boolean;
  readonly hasF16: boolean;
  /** the device was created with WGSL `enable subgroups` (sizes: info.subgroupMinSize/MaxSize) */
  readonly hasSubgroups: boolean;
  /** dispatches recorded, command buffers submitted, host waits on the GPU (sync, blocking
   *  readbacks, awaiting an async read that has not landed), async reads started (readAsync), and
   *  throttle waits (awaitRead(r, 'throttle') on a read not landed: a training loop that runs ahead
   *  of the GPU waiting for a step several steps back, as a full launch queue would make it) since
   *  creation: `npm run bench` reports them per KD-QAT step */
  readonly counts = { dispatches: 0, submits: 0, hostWaits: 0, asyncReads: 0, throttleWaits: 0, bindGroupsCreated: 0, uniformWrites: 0 };
  /** bytes of live tensors, and the most ever live at once */
  liveBytes = 0;
  peakBytes = 0;
  private readonly live = new Map<GPUBuffer, { label: string; bytes: number }>();
  private readonly pipelines = new Map<string, { pipeline: GPUComputePipeline; name: string }>();
  /** Bind groups by pipeline + uniform slot + buffers: a training step records the same dispatches
   *  in the same order every step, and the uniform ring restarts at every flush, so after the first
   *  step each dispatch finds its bind group here (createBindGroup was ~16 of the ~35 us a dispatch
   *  cost on the CPU). Cleared when it grows past BIND_GROUP_CAP. */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;
  private readonly modules = new Map<string, GPUShaderModule>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  /** the pipeline last set on `pass` */
  private passPipeline: GPUComputePipeline | null = null;
  /** device.limits is a native getter: read once */
  private readonly maxWorkgroupsPerDim: number;
  private batchKernels: string[] = [];
  private uniformChunks: GPUBuffer[] = [];
  /** what was last written to each ring chunk (a repeated step rewrites the same bytes: skipped) */
  private uniformShadows: Uint32Array[] = [];
  private uniformChunk = 0;
  private uniformOffset = 0;
  private readonly uniformAlign: number;
  private pendingError: Error | null = null;
  private errorHandlers: GpuErrorHandler[] = [];
  /** per-kernel GPU time in ns, when profiling with timestamp queries */
  profile: Map<string, { ns: number; count: number }> | null = null;
  private querySet: GPUQuerySet | null = null;
  private readonly pendingTimestamps = new Set<Promise<void>>();
  private queryKernels: string[] = [];
  private querySlots = 0;
  lost = false;

  constructor(device: GPUDevice, info: GpuInfo) {
    this.device = device;
    this.info = info;
    this.hasTimestamps = device.features.has('timestamp-query');
    this.hasF16 = device.features.has('shader-f16');
    this.hasSubgroups = device.features.has('subgroups' as GPUFeatureName);
    this.uniformAlign = device.limits.minUniformBufferOffsetAlignment;
    this.maxWorkgroupsPerDim = device.limits.maxComputeWorkgroupsPerDimension;
    device.addEventListener('uncapturederror', (ev: Event) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      this.report(`uncaptured GPU error (recent kernels: ${this.batchKernels.slice(-4).join(', ') || 'none'}): ${e.message}`);
    });
    void device.lost.then((info) => {
      this.lost = true;
      if (info.reason !== 'destroyed') this.report(`GPU device lost (${info.reason}): ${info.message}`);
    });
  }

  /** Ask an adapter for a device with the largest buffer limits it offers. */
  static async fromAdapter(adapter: GPUAdapter, backend: string): Promise<Gpu> {
    const want: (keyof GPUSupportedLimits)[] = [
      'maxStorageBufferBindingSize',
      'maxBufferSize',
      'maxComputeWorkgroupStorageSize',
      'maxComputeInvocationsPerWorkgroup',
      'maxComputeWorkgroupSizeX',
      'maxComputeWorkgroupSizeY',
      'maxStorageBuffersPerShaderStage',
      'maxComputeWorkgroupsPerDimension',
    ];
    const requiredLimits: Record<string, number> = {};
    for (const k of want) requiredLimits[k] = adapter.limits[k] as number;
    const features: GPUFeatureName[] = [];
    // subgroups: the software (lavapipe) matmul broadcasts operands across its 8 SIMD lanes.
    for (const f of ['timestamp-query', 'shader-f16', 'subgroups'] as GPUFeatureName[]) if (adapter.features.has(f)) features.push(f);
    const device = await gpuWait(adapter.requestDevice({ requiredLimits, requiredFeatures: features, label: 'quench' }));
    const ai = adapter.info;
    const limits: Record<string, number> = {};
    for (const k in device.limits) {
      const v = (device.limits as unknown as Record<string, unknown>)[k];
      if (typeof v === 'number') limits[k] = v;
    }
    // Dawn's limits object keeps its fields on the prototype; read the ones we care about explicitly.
    for (const k of want) limits[k] = device.limits[k] as number;
    const info: GpuInfo = {
      vendor: ai?.vendor ?? '',
      architecture: ai?.architecture ?? '',
      device: ai?.device ?? '',
      description: ai?.description ?? '',
      features: [...adapter.features].map(String).sort(),
      limits,
      subgroupMinSize: (ai as { subgroupMinSize?: number } | undefined)?.subgroupMinSize ?? 0,
      subgroupMaxSize: (ai as { subgroupMaxSize?: number } | undefined)?.subgroupMaxSize ?? 0,
      backend,
    };
    return new Gpu(device, info);
  }

  onError(fn: GpuErrorHandler): void {
    this.errorHandlers.push(fn);
  }

  private report(message: string): void {
    const err = new Error(message);
    // Keep the root cause: a WGSL compile error outranks the "invalid due to a previous error" it causes.
    if (!this.pendingError || /due to a previous error/.test(this.pendingError.message)) this.pendingError = err;
    if (this.errorHandlers.length === 0) console.error(`[quench gpu] ${message}`);
    for (const h of this.errorHandlers) h(message);
  }

  // ---------------------------------------------------------------- tensors

  tensor(label: string, shape: readonly number[], dtype: DType = 'f32', data?: TypedArray | number[]): Tensor {
    const numel = numelOf(shape);
    const bytes = Math.max(4, numel * 4);
    const maxBinding = this.device.limits.maxStorageBufferBindingSize;
    if (bytes > maxBinding) {
      throw new Error(`tensor "${label}" [${shape.join('x')}] needs ${bytes} bytes, more than this adapter's maxStorageBufferBindingSize (${maxBinding} bytes); the model is too large for this GPU as one binding`);
    }
    // Round up to 16 bytes, so a kernel may bind any tensor as array<vec4f> and reach its last
    // values (shaders/attention_sg.wgsl); WebGPU zero-initialises new buffers.
    const buffer = this.device.createBuffer({
      label,
      size: Math.ceil(bytes / 16) * 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    this.live.set(buffer, { label, bytes });
    this.liveBytes += bytes;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    const t: Tensor = { buffer, shape: [...shape], dtype, label, bytes, numel };
    if (data) this.write(t, data);
    return t;
  }

  /** Write host data into a tensor (queued; ordered before later submits). */
  write(t: Tensor, data: TypedArray | number[], offsetElems = 0): void {
    let arr: TypedArray;
    if (Array.isArray(data)) arr = t.dtype === 'f32' ? new Float32Array(data) : t.dtype === 'u32' ? new Uint32Array(data) : new Int32Array(data);
    else arr = data;
    if (arr.length + offsetElems > t.numel) throw new Error(`write to "${t.label}": ${arr.length} elements at ${offsetElems} exceed ${t.numel}`);
    // Queue writes run before the next submit: submit what was recorded first, so work recorded
    // earlier sees the old contents.
    this.flush();
    this.device.queue.writeBuffer(t.buffer, offsetElems * 4, arr.buffer, arr.byteOffset, arr.byteLength);
  }

  free(t: Tensor | null | undefined): void {
    if (!t) return;
    const rec = this.live.get(t.buffer);
    if (!rec) return;
    this.flush(); // recorded work may still reference it
    this.live.delete(t.buffer);
    this.liveBytes -= rec.bytes;
    t.buffer.destroy();
  }

  /** Live tensors grouped by the label's first path segment ("model.layers.0.wq" -> "model"). */
  memoryReport(): { label: string; bytes: number }[] {
    return [...this.live.values()].map((r) => ({ label: r.label, bytes: r.bytes })).sort((a, b) => b.bytes - a.bytes);
  }

  async read(t: Tensor): Promise<TypedArray> {
    const buf = await this.readBytes(t.buffer, t.bytes);
    return t.dtype === 'f32' ? new Float32Array(buf) : t.dtype === 'u32' ? new Uint32Array(buf) : new Int32Array(buf);
  }

  async readF32(t: Tensor): Promise<Float32Array> {
    if (t.dtype !== 'f32') throw new Error(`readF32 of ${t.dtype} tensor "${t.label}"`);
    return (await this.read(t)) as Float32Array;
  }

  async readBytes(src: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ label: 'readback', size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    this.enc().copyBufferToBuffer(src, offset, staging, 0, size);
    this.flush();
    this.counts.hostWaits++;
    await gpuWait(staging.mapAsync(GPUMapMode.READ));
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.throwPending();
    return out;
  }

  /**
   * Start a readback without waiting: each part (a byte range of a tensor) is copied, after the work
   * recorded so far, into one staging buffer, which is submitted and mapped asynchronously. Nothing
   * on the host waits here; `result` resolves with one ArrayBuffer per part once the GPU is there.
   * Await it through awaitRead, which counts a host wait only when the read has not landed.
   */
  readAsync(parts: { t: Tensor; bytes?: number; offset?: number }[]): AsyncRead {
    const sizes = parts.map((p) => Math.ceil((p.bytes ?? p.t.bytes) / 4) * 4);
    const total = Math.max(4, sizes.reduce((a, b) => a + b, 0));
    const staging = this.device.createBuffer({ label: 'readback-async', size: total, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.endPass();
    let at = 0;
    parts.forEach((p, i) => {
      if (sizes[i] > 0) this.enc().copyBufferToBuffer(p.t.buffer, p.offset ?? 0, staging, at, sizes[i]);
      at += sizes[i];
    });
    this.flush();
    this.counts.asyncReads++;
    const rec: { result: Promise<ArrayBuffer[]>; landed: boolean } = { result: Promise.resolve([]), landed: false };
    rec.result = gpuWait(staging.mapAsync(GPUMapMode.READ))
      .then(() => {
        const m = staging.getMappedRange();
        let o = 0;
        const out = parts.map((p, i) => {
          const b = m.slice(o, o + (p.bytes ?? p.t.bytes));
          o += sizes[i];
          return b;
        });
        staging.unmap();
        staging.destroy();
        this.throwPending();
        return out;
      })
      .finally(() => (rec.landed = true));
    rec.result.catch(() => {}); // rejections surface where the read is awaited, not as unhandled ones
    return rec;
  }

  /** Await an async read; a host wait (or, for 'throttle', a throttle wait) when it has not landed. */
  async awaitRead(r: AsyncRead, why: 'wait' | 'throttle' = 'wait'): Promise<ArrayBuffer[]> {
    if (!r.landed) {
      if (why === 'throttle') this.counts.throttleWaits++;
      else this.counts.hostWaits++;
    }
    return r.result;
  }

  copy(src: Tensor, dst: Tensor, bytes = Math.min(src.bytes, dst.bytes), srcOffset = 0, dstOffset = 0): void {
    this.endPass();
    this.enc().copyBufferToBuffer(src.buffer, srcOffset, dst.buffer, dstOffset, Math.ceil(bytes / 4) * 4);
  }

  zero(t: Tensor): void {
    this.endPass();
    this.enc().clearBuffer(t.buffer, 0, Math.ceil(t.bytes / 4) * 4);
  }

  // ---------------------------------------------------------------- kernels

  private module(shader: string): GPUShaderModule {
    let m = this.modules.get(shader);
    if (!m) {
      const code = loadShader(shader);
      this.device.pushErrorScope('validation');
      m = this.device.createShaderModule({ label: shader, code });
      const mod = m;
      void this.device.popErrorScope().then(async (err) => {
        if (!err) return;
        const info = await mod.getCompilationInfo();
        const msgs = info.messages.filter((x) => x.type === 'error').map((x) => `${shader}.wgsl:${x.lineNum}:${x.linePos}: ${x.message}`);
        this.report(`WGSL compile error in shaders/${shader}.wgsl: ${msgs.join('; ') || err.message}`);
      });
      this.modules.set(shader, m);
    }
    return m;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) {
      id = this.nextBufferId++;
      this.bufferIds.set(b, id);
    }
    return id;
  }

  private static pipelineKey(spec: KernelSpec): string {
    const consts = spec.constants;
    const head = `${spec.shader}:${spec.entry ?? 'main'}:`;
    if (!consts) return head;
    const names = Object.keys(consts);
    if (names.length === 1) return `${head}${names[0]}=${consts[names[0]]}`;
    return head + names.sort().map((k) => `${k}=${consts[k]}`).join(',');
  }

  /** Cached compute pipeline; key = shader + entry + override constants. */
  pipeline(spec: KernelSpec, key = Gpu.pipelineKey(spec)): GPUComputePipeline {
    return this.cachedPipeline(spec, key).pipeline;
  }

  private cachedPipeline(spec: KernelSpec, key: string): { pipeline: GPUComputePipeline; name: string } {
    let p = this.pipelines.get(key);
    if (!p) {
      const entry = spec.entry ?? 'main';
      const module = this.module(spec.shader);
      this.device.pushErrorScope('validation');
      const pipeline = this.device.createComputePipeline({
        label: key,
        layout: 'auto',
        compute: { module, entryPoint: entry, constants: spec.constants ?? {} },
      });
      void this.device.popErrorScope().then((err) => {
        if (err) this.report(`pipeline ${key}: ${err.message}`);
      });
      p = { pipeline, name: `${spec.shader}:${entry}` };
      this.pipelines.set(key, p);
    }
    return p;
  }

  private enc(): GPUCommandEncoder {
    if (!this.encoder) {
      this.encoder = this.device.createCommandEncoder({ label: 'quench' });
      this.device.pushErrorScope('validation');
    }
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  private uniform(p: Params): { buffer: GPUBuffer; offset: number; size: number } {
    const n = p.paddedWords;
    const size = n * 4;
    if (this.uniformOffset + size > UNIFORM_CHUNK) {
      this.uniformChunk++;
      this.uniformOffset = 0;
    }
    if (this.uniformChunk >= this.uniformChunks.length) {
      this.uniformChunks.push(this.device.createBuffer({ label: 'uniform-ring', size: UNIFORM_CHUNK, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }));
      this.uniformShadows.push(new Uint32Array(UNIFORM_CHUNK / 4)); // WebGPU buffers start zeroed, as this
    }
    const buffer = this.uniformChunks[this.uniformChunk];
    const offset = this.uniformOffset;
    // Queue writes are ordered before the submit that reads them, and after earlier submits,
    // so the ring is reused from the start after every flush. A slot that already holds these
    // words (the same dispatch of the previous step) is not written again. writeBuffer copies
    // at the call, so the shadow itself is the source.
    const words = p.words;
    const shadow = this.uniformShadows[this.uniformChunk];
    const at = offset / 4;
    let same = true;
    for (let i = 0; i < n; i++) {
      const w = i < words.length ? words[i] : 0;
      if (shadow[at + i] !== w) {
        shadow[at + i] = w;
        same = false;
      }
    }
    if (!same) {
      this.device.queue.writeBuffer(buffer, offset, shadow.buffer, offset, size);
      this.counts.uniformWrites++;
    }
    this.uniformOffset += Math.ceil(size / this.uniformAlign) * this.uniformAlign;
    return { buffer, offset, size };
  }

  /** Record one dispatch. Nothing runs until flush()/sync()/read(). Recording CPU time is what a
   *  fast GPU waits on (a SmolLM2-shaped KD-QAT step records ~1,900 dispatches), so the path that
   *  hits every cache allocates little: one key string, no entry arrays. */
  run(spec: KernelSpec, args: RunArgs): void {
    if (this.lost) throw new Error(`kernel ${spec.shader}:${spec.entry ?? 'main'}: the GPU device was lost`);
    const [x, y = 1, z = 1] = args.workgroups;
    const maxDim = this.maxWorkgroupsPerDim;
    if (x > maxDim || y > maxDim || z > maxDim) throw new Error(`kernel ${spec.shader}:${spec.entry ?? 'main'}: dispatch ${x}x${y}x${z} exceeds ${maxDim} workgroups per dimension (use gpu.grid)`);
    if (x === 0 || y === 0 || z === 0) return;
    const pKey = Gpu.pipelineKey(spec);
    const pipe = this.cachedPipeline(spec, pKey);
    const name = pipe.name;
    // profiling: the timestamp slot first, since taking it may flush, and a flush restarts the
    // uniform ring and the encoder this dispatch must use
    let slot = -1;
    if (this.profile && this.hasTimestamps) {
      this.endPass();
      slot = this.timestampSlot(name);
    }
    // the cache key first; the entries only on a miss (a step's dispatches all hit after the first)
    let key = pKey;
    const u = args.params ? this.uniform(args.params) : null;
    if (u) key += `|u${this.bufferId(u.buffer)}@${u.offset}+${u.size}`;
    const bindings = args.bindings;
    if (Array.isArray(bindings)) {
      for (let i = 0; i < bindings.length; i++) key += `|${i + 1}=${this.bufferId(bufferOf(bindings[i]))}`;
    } else {
      for (const k in bindings) key += `|${k}=${this.bufferId(bufferOf(bindings[k]))}`;
    }
    let bindGroup = this.bindGroups.get(key);
    if (!bindGroup) {
      if (this.bindGroups.size >= BIND_GROUP_CAP) this.bindGroups.clear();
      const list: [number, GPUBuffer][] = Array.isArray(bindings) ? bindings.map((b, i) => [i + 1, bufferOf(b)]) : Object.entries(bindings).map(([k, b]) => [Number(k), bufferOf(b)]);
      const entries: GPUBindGroupEntry[] = list.map(([binding, buffer]) => ({ binding, resource: { buffer } }));
      if (u) entries.unshift({ binding: 0, resource: u });
      bindGroup = this.device.createBindGroup({ label: name, layout: pipe.pipeline.getBindGroupLayout(0), entries });
      this.bindGroups.set(key, bindGroup);
      this.counts.bindGroupsCreated++;
    }
    this.counts.dispatches++;
    this.batchKernels.push(name);
    const encoder = this.enc();
    if (slot >= 0) {
      const pass = encoder.beginComputePass({ label: name, timestampWrites: { querySet: this.querySet!, beginningOfPassWriteIndex: slot, endOfPassWriteIndex: slot + 1 } });
      pass.setPipeline(pipe.pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(x, y, z);
      pass.end();
    } else {
      if (!this.pass) {
        this.pass = encoder.beginComputePass({ label: 'quench' });
        this.passPipeline = null;
      }
      // each call into Dawn costs ~1-2 us from JS: the pipeline is set only when it changes
      if (this.passPipeline !== pipe.pipeline) {
        this.pass.setPipeline(pipe.pipeline);
        this.passPipeline = pipe.pipeline;
      }
      this.pass.setBindGroup(0, bindGroup);
      this.pass.dispatchWorkgroups(x, y, z);
    }
  }

  /** Fold a 1-D workgroup count into 2-D under the per-dimension limit. WGSL side:
   *  let wg = gid.x + gid.y * nwg.x  (nwg from @builtin(num_workgroups)). */
  grid(workgroups: number): [number, number] {
    const maxDim = this.maxWorkgroupsPerDim;
    if (workgroups <= maxDim) return [Math.max(1, workgroups), 1];
    const y = Math.ceil(workgroups / maxDim);
    return [Math.ceil(workgroups / y), y];
  }

  /** Submit what was recorded. */
  flush(): void {
    this.endPass();
    if (!this.encoder) return;
    const kernels = this.batchKernels;
    this.batchKernels = [];
    let resolveQueries: (() => void) | null = null;
    if (this.profile && this.querySet && this.querySlots > 0) resolveQueries = this.resolveTimestamps(this.encoder);
    this.device.queue.submit([this.encoder.finish()]);
    this.counts.submits++;
    this.encoder = null;
    void gpuWait(this.device.popErrorScope()).then((err) => {
      if (err) this.report(`GPU validation error in a batch of ${kernels.length} dispatches (${[...new Set(kernels)].join(', ')}): ${err.message}`);
    });
    this.uniformChunk = 0;
    this.uniformOffset = 0;
    if (resolveQueries) resolveQueries();
  }

  /** Submit and wait for the GPU to finish; rethrows the first GPU error since the last sync. */
  async sync(): Promise<void> {
    this.flush();
    this.counts.hostWaits++;
    await gpuWait(this.device.queue.onSubmittedWorkDone());
    this.throwPending();
  }

  private throwPending(): void {
    if (this.pendingError) {
      const e = this.pendingError;
      this.pendingError = null;
      throw e;
    }
  }

  // ---------------------------------------------------------------- timing

  /** Start collecting per-kernel GPU time (timestamp queries; no-op without the feature). */
  startProfile(): void {
    this.profile = new Map();
    if (this.hasTimestamps && !this.querySet) this.querySet = this.device.createQuerySet({ type: 'timestamp', count: 2048 });
  }

  private timestampSlot(name: string): number {
    if (this.querySlots + 2 > 2048) this.flush();
    const slot = this.querySlots;
    this.querySlots += 2;
    this.queryKernels.push(name);
    return slot;
  }

  private resolveTimestamps(encoder: GPUCommandEncoder): () => void {
    const n = this.querySlots;
    const names = this.queryKernels;
    this.querySlots = 0;
    this.queryKernels = [];
    const resolve = this.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const staging = this.device.createBuffer({ size: n * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.resolveQuerySet(this.querySet!, 0, n, resolve, 0);
    encoder.copyBufferToBuffer(resolve, 0, staging, 0, n * 8);
    return () => {
      const landed = gpuWait(staging.mapAsync(GPUMapMode.READ)).then(() => {
        const ts = new BigInt64Array(staging.getMappedRange());
        for (let i = 0; i < names.length; i++) {
          const ns = Number(ts[2 * i + 1] - ts[2 * i]);
          const rec = this.profile?.get(names[i]) ?? { ns: 0, count: 0 };
          rec.ns += ns;
          rec.count++;
          this.profile?.set(names[i], rec);
        }
        staging.unmap();
        staging.destroy();
        resolve.destroy();
      });
      this.pendingTimestamps.add(landed);
      const done = () => void this.pendingTimestamps.delete(landed);
      landed.then(done, done);
    };
  }

  /** Stop profiling once every recorded dispatch's timestamps have landed; returns the per-kernel
   *  GPU times (null without timestamp queries or when not profiling). */
  async endProfile(): Promise<Map<string, { ns: number; count: number }> | null> {
    await this.sync();
    await Promise.all([...this.pendingTimestamps]);
    const prof = this.profile;
    this.profile = null;
    return prof && this.hasTimestamps ? prof : null;
  }

  destroy(): void {
    this.flush();
    for (const b of this.live.keys()) b.destroy();
    this.live.clear();
    this.liveBytes = 0;
    this.device.destroy();
  }
}
