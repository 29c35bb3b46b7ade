import { useEffect } from 'react';
import { ATTENTION_TIMING_SHAPES, KERNEL_TIMING_SHAPES, useStudio } from './store';
import { chooseKernels, engine, runKernelBench, runOnnxCheck, setKernelTuning, timeKernels } from './actions';
import type { KernelChoice, KernelTimings } from '../worker/protocol';
import { FAMILIES, FAMILY_OPS, failedChecks, familyMs, familyRows, withFamily } from '../engine/ops/kernel-choice';
import { shapeKey, shapeLabel } from '../engine/ops/shape-choice';

const LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension'];

const fmtBytes = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(1)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(0)} MiB` : `${n}`);

export function GpuPanel() {
  const gpu = useStudio((s) => s.gpu);
  const error = useStudio((s) => s.gpuError);
  const selfTest = useStudio((s) => s.selfTest);
  const onnx = useStudio((s) => s.onnxCheck);
  const bench = useStudio((s) => s.kernelBench);
  if (error && !gpu) {
    return (
      <section className="panel error" data-testid="gpu-error">
        <h2>WebGPU is not available</h2>
        <p>{error}</p>
        <p className="muted">Quench needs WebGPU: a recent Chrome or Edge, on https or http://localhost.</p>
      </section>
    );
  }
  if (!gpu) return <section className="panel"><p>Looking for a WebGPU adapter…</p></section>;
  return (
    <section className="panel" data-testid="gpu-panel">
      <h2>GPU adapter</h2>
      <dl className="kv">
        <dt>vendor</dt><dd data-testid="gpu-vendor">{gpu.vendor || '(not reported)'}</dd>
        <dt>architecture</dt><dd>{gpu.architecture || '(not reported)'}</dd>
        <dt>description</dt><dd>{gpu.description || '(not reported)'}</dd>
        <dt>backend</dt><dd>{gpu.backend}</dd>
        {LIMITS.map((k) => (
          <div key={k} className="kvrow"><dt>{k}</dt><dd>{gpu.limits[k] !== undefined ? (k.includes('Size') && gpu.limits[k] > 65536 ? fmtBytes(gpu.limits[k]) : gpu.limits[k]) : '?'}</dd></div>
        ))}
        <dt>features</dt><dd className="features">{gpu.features.join(', ') || 'none'}</dd>
      </dl>
      {error && <p className="error" role="alert">{error}</p>}
      <h3>Kernel self-test</h3>
      <button onClick={() => void engine().selfTest()} disabled={selfTest.status === 'running'} data-testid="selftest-run">
        {selfTest.status === 'running' ? 'Running…' : 'Run self-test'}
      </button>
      {selfTest.status === 'done' && (
        <table className="results" data-testid="selftest-result">
          <thead><tr><th>kernel</th><th>max |error| vs CPU</th><th>result</th></tr></thead>
          <tbody>
            {selfTest.result.kernels.map((k) => (
              <tr key={k.name}><td>{k.name}</td><td>{k.maxAbsError.toExponential(2)}</td><td className={k.ok ? 'ok' : 'bad'}>{k.ok ? 'pass' : 'FAIL'}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {selfTest.status === 'failed' && <p className="error" role="alert">{selfTest.message}</p>}
      <h3>ONNX export check</h3>
      <p className="muted">Quantizes a small random LLaMA (GQA, hidden size 172) to int4, exports it as ONNX with MatMulNBits, runs it in onnxruntime-web and compares its logits with Quench's own int4 forward.</p>
      <button onClick={() => void runOnnxCheck(['wasm', 'webgpu'])} disabled={onnx.status === 'running'} data-testid="onnx-run">
        {onnx.status === 'running' ? 'Running…' : 'Run ONNX check (wasm, webgpu)'}
      </button>
      {onnx.status === 'done' && (
        <table className="results" data-testid="onnx-result">
          <thead><tr><th>provider</th><th>max |Δ logit|</th><th>max |logit|</th><th>ms</th><th>result</th></tr></thead>
          <tbody>
            {onnx.result.map((r) => (
              <tr key={r.provider}><td>{r.provider}</td><td>{Number.isFinite(r.maxAbsDiff) ? r.maxAbsDiff.toExponential(2) : '—'}</td><td>{Number.isFinite(r.maxAbsLogit) ? r.maxAbsLogit.toFixed(2) : '—'}</td><td>{r.ms.toFixed(0)}</td><td className={r.ok ? 'ok' : 'bad'} title={r.error}>{r.ok ? 'pass' : `FAIL${r.error ? `: ${r.error}` : ''}`}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {onnx.status === 'failed' && <p className="error" role="alert">{onnx.message}</p>}
      <KernelChoicePanel />
      <h3>Kernel benchmark</h3>
      <p className="muted">Quench's int4 matmul (group 32) against onnxruntime-web's MatMulNBits on the webgpu provider and against Quench's fp32 matmul; each timed as upload, run, read back; median of 7.</p>
      <button onClick={() => void runKernelBench()} disabled={bench.status === 'running'} data-testid="bench-run">
        {bench.status === 'running' ? 'Running…' : 'Run kernel benchmark'}
      </button>
      {bench.status === 'done' && (
        <table className="results" data-testid="bench-result">
          <thead><tr><th>shape</th><th>Quench int4 ms</th><th>ORT MatMulNBits ms</th><th>Quench fp32 ms</th><th>ORT / Quench int4</th><th>int4 / fp32</th></tr></thead>
          <tbody>
            {bench.result.map((r) => (
              <tr key={r.shape}><td>{r.shape}</td><td>{r.oursInt4Ms.toFixed(2)}</td><td>{r.ortInt4Ms.toFixed(2)}</td><td>{r.oursFp32Ms.toFixed(2)}</td><td>{r.ortOverOurs.toFixed(2)}</td><td>{r.int4OverFp32.toFixed(2)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {bench.status === 'failed' && <p className="error" role="alert">{bench.message}</p>}
    </section>
  );
}

const LABEL: Record<keyof KernelChoice, string> = { matmul: 'fp32 matmul (forward, dX, dW)', gemm: 'int4 forward', dx: 'int4 dX', half: 'f16-weight forward (frozen teacher)', gemv: 'int4 GEMV (generating, one token)', attention: 'attention forward (training, eval, a prompt)', decode: 'attention, one query row (generating)', fp32gemv: 'fp32 GEMV (generating with an FP model; the LM head)' };
const sameChoice = (a: KernelChoice | undefined | null, b: KernelChoice | undefined | null) => !!a && !!b && FAMILIES.every((f) => a[f] === b[f]);

/** "WRONG RESULTS (max |error| …)" where a variant failed its check against the float64 reference here. */
function wrong(t: KernelTimings, f: keyof KernelChoice, variant: string): string {
  const bad = failedChecks(t.checks, f, variant);
  return bad.length ? `WRONG RESULTS on this GPU (${bad.map((c) => `${c.op}: ${c.op.startsWith('attention') ? 'relative error' : 'max |error|'} ${c.maxAbsError.toExponential(1)}`).join('; ')}); never chosen` : '';
}

/** Which matmul kernels runs use on this adapter: its defaults, or the fastest measured here. */
function KernelChoicePanel() {
  const kernels = useStudio((s) => s.kernels);
  const times = useStudio((s) => s.kernelTimes);
  const size = useStudio((s) => s.settings.kernelTiming);
  const update = useStudio((s) => s.updateSettings);
  const t = times.status === 'done' ? times.result : null;
  const variantsOf = (f: keyof KernelChoice) => (t ? [...new Set(t.rows.filter((r) => FAMILY_OPS[f].includes(r.op)).map((r) => r.variant))] : []);
  return (
    <>
      <h3>Kernels on this GPU</h3>
      <p className="muted">Every run (distill, compare, compress, pretrain, eval) uses one fp32 matmul, one int4 forward and one int4 dX kernel, a distillation's teacher with f16 weights (larger models) one f16-weight forward kernel, and generating one int4 GEMV kernel (a quantized model) or one fp32 GEMV kernel (an FP model, and the LM head; both timed at one token: 1×K×N of each shape). Attention without attention maps runs one flash forward over chunks of more than 8 query rows and one for a single row (generating; timed at one row against the shape's T cached keys); chunks in between, and a family left at the adapter's default, follow the adapter's rule by shape. By default they are chosen by the kind of adapter; here you can time every variant on this GPU and use the fastest. Each variant's results are checked against a float64 reference first, and one that is wrong here is never chosen. The choice is kept for this adapter across reloads.</p>
      {kernels && (
        <table className="results" data-testid="kernels-current">
          <thead><tr><th>family</th><th>in use</th><th>adapter default</th><th>choose</th></tr></thead>
          <tbody>
            {FAMILIES.map((f) => (
              <tr key={f}>
                <td>{LABEL[f]}</td>
                <td data-testid={`kernel-${f}`}>{kernels.current[f]}</td>
                <td>{kernels.defaults[f]}</td>
                <td>
                  <select aria-label={`use for ${LABEL[f]}`} value={kernels.current[f]} onChange={(e) => void chooseKernels(withFamily(kernels.current, f, e.target.value))}>
                    {(kernels.candidates[f] as string[]).map((v) => <option key={v} value={v}>{v}{t && wrong(t, f, v) ? ' (wrong results here)' : ''}</option>)}
                  </select>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <label>
        timing size{' '}
        <select aria-label="timing size" value={size} onChange={(e) => update((st) => ({ ...st, kernelTiming: e.target.value as keyof typeof KERNEL_TIMING_SHAPES }))} disabled={times.status === 'running'}>
          {(Object.keys(KERNEL_TIMING_SHAPES) as (keyof typeof KERNEL_TIMING_SHAPES)[]).map((k) => (
            <option key={k} value={k}>{k}: {KERNEL_TIMING_SHAPES[k].map(([M, K, N]) => `${M}×${K}×${N}`).join(', ')}; attention {ATTENTION_TIMING_SHAPES[k].map((a) => `T ${a.T}, ${a.NH}/${a.NKV} heads of ${a.HS}`).join(', ')}</option>
          ))}
        </select>
      </label>{' '}
      <button onClick={() => void timeKernels()} disabled={times.status === 'running'} data-testid="kernels-time">
        {times.status === 'running' ? 'Timing…' : 'Time the kernel variants'}
      </button>
      {t && (
        <>
          <table className="results" data-testid="kernels-times">
            <thead><tr><th>family</th><th>variant</th><th>total ms (all shapes)</th><th>per shape: ms (GFLOP/s)</th><th></th></tr></thead>
            <tbody>
              {FAMILIES.flatMap((f) => variantsOf(f).map((v) => (
                <tr key={`${f}-${v}`}>
                  <td>{LABEL[f]}</td>
                  <td>{v}</td>
                  <td>{familyMs(t.rows, f, v).toFixed(2)}</td>
                  <td>{familyRows(t.rows, f, v).map((r) => `${r.op} ${r.shape}: ${r.ms.toFixed(2)} (${r.gflops.toFixed(1)})`).join('; ')}</td>
                  <td>{[wrong(t, f, v), t.fastest[f] === v ? 'fastest' : '', t.defaults[f] === v ? 'default' : ''].filter(Boolean).join(', ')}</td>
                </tr>
              )))}
            </tbody>
          </table>
          <button onClick={() => void chooseKernels(t.fastest)} disabled={sameChoice(kernels?.current, t.fastest)} data-testid="kernels-use-fastest">
            Use the fastest on this GPU ({FAMILIES.map((f) => t.fastest[f]).join(', ')})
          </button>{' '}
        </>
      )}
      <button onClick={() => void chooseKernels(null)} disabled={!kernels || sameChoice(kernels.current, kernels.defaults)} data-testid="kernels-defaults">
        Back to the adapter's defaults
      </button>
      {times.status === 'failed' && <p className="error" role="alert">{times.message}</p>}
      <ShapeTuning />
    </>
  );
}

/** Kernels per shape: runs time every variant at their own shapes first and use the fastest for
 *  each (a 128×128 tile may win on a wide classifier and lose on a narrow projection). */
function ShapeTuning() {
  const kernels = useStudio((s) => s.kernels);
  // the table grows as runs tune: read it again whenever the panel is shown with tuning on
  const tuning = !!kernels?.tuneShapes;
  useEffect(() => {
    if (tuning) void setKernelTuning(null);
  }, [tuning]);
  const choices = kernels?.shapeChoices ?? [];
  return (
    <>
      <h4>Per shape</h4>
      <label>
        <input type="checkbox" checked={!!kernels?.tuneShapes} disabled={!kernels} onChange={(e) => void setKernelTuning(e.target.checked)} data-testid="kernels-tune-shapes" />{' '}
        Tune to each run's shapes: after a distillation's first step, time every variant (checked first, as above) at each matmul shape and attention shape (batch, rows, heads, head size) that step used, and use the fastest for each shape. Milliseconds on a GPU; on a software adapter a large model's shapes take minutes.
      </label>
      {choices.length > 0 && (
        <table className="results" data-testid="kernels-shape-choices">
          <thead><tr><th>product</th><th>shape (M×K×N; attention B×Tq×Tk heads, head size)</th><th>layout</th><th>kernel</th></tr></thead>
          <tbody>
            {choices.map((c) => (
              <tr key={shapeKey(c.shape)}>
                <td>{c.shape.op}</td>
                <td>{shapeLabel({ ...c.shape, bits: undefined })}</td>
                <td>{c.shape.bits ? `w${c.shape.bits}g${c.shape.group}` : ''}</td>
                <td>{c.variant}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
