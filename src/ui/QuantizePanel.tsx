import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from 'recharts';
import { yAxisLabel } from './chart';
import { useStudio } from './store';
import { downloadExport, quantizeModel } from './actions';
import type { Bits } from '../engine/quant/pack';

const PROJS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
const COLORS = ['#0969da', '#1a7f37', '#9a6700', '#cf222e', '#8250df', '#bf3989', '#57606a'];

export function QuantizePanel() {
  const model = useStudio((s) => s.model);
  const quant = useStudio((s) => s.quant);
  const progress = useStudio((s) => s.progress);
  const qs = useStudio((s) => s.settings.quantize);
  const { bits, group, sym } = qs;
  const clip = qs.clipSearch;
  const setQ = (over: Partial<typeof qs>) => useStudio.getState().updateSettings((s) => ({ ...s, quantize: { ...s.quantize, ...over } }));
  const setBits = (b: Bits) => setQ({ bits: b }), setGroup = (g: number) => setQ({ group: g }), setSym = (v: boolean) => setQ({ sym: v }), setClip = (v: boolean) => setQ({ clipSearch: v });
  if (!model) return <section className="panel"><p>Load a model first.</p></section>;
  const r = quant.status === 'done' ? quant.result : null;
  const data = r ? [...new Set(r.tensors.map((t) => t.layer))].map((l) => ({ layer: `L${l}`, ...Object.fromEntries(r.tensors.filter((t) => t.layer === l).map((t) => [t.proj, +(t.relError * 100).toFixed(3)])) })) : [];
  return (
    <section className="panel">
      <h2>Quantize</h2>
      <div className="form">
        <label>bits <select value={bits} onChange={(e) => setBits(Number(e.target.value) as Bits)} data-testid="q-bits">{[2, 3, 4, 8].map((b) => <option key={b}>{b}</option>)}</select></label>
        <label>group <select value={group} aria-label="group size" onChange={(e) => setGroup(Number(e.target.value))}>{[32, 64, 128, 0].map((g) => <option key={g} value={g}>{g || 'per channel'}</option>)}</select></label>
        <label><input type="checkbox" checked={sym} aria-label="symmetric" onChange={(e) => setSym(e.target.checked)} /> symmetric</label>
        <label><input type="checkbox" checked={clip} aria-label="clipping search" onChange={(e) => setClip(e.target.checked)} /> clipping search</label>
        <button data-testid="q-run" disabled={quant.status === 'running'} onClick={() => void quantizeModel({ bits, group, sym, clipSearch: clip })}>{quant.status === 'running' ? 'Quantizing…' : 'Quantize'}</button>
      </div>
      {quant.status === 'running' && progress && <progress max={progress.total} value={progress.done} aria-label={progress.label} />}
      {quant.status === 'failed' && <p className="error" role="alert">{quant.message}</p>}
      {r && (
        <div data-testid="q-result">
          <p>
            Perplexity on the held-out text ({useStudio.getState().data?.eval.evalDocuments ?? 0} documents of {useStudio.getState().data?.name ?? 'the data'}, same protocol as Results and quench eval): <b>{r.pplBefore.toFixed(3)}</b> (FP32) → <b data-testid="q-ppl-after">{r.pplAfter.toFixed(3)}</b> (w{r.ptq.bits}{r.ptq.group ? `g${r.ptq.group}` : ''}); projections {(r.bytesBefore / 1024).toFixed(1)} KiB → {(r.bytesAfter / 1024).toFixed(1)} KiB ({(r.bytesBefore / r.bytesAfter).toFixed(2)}×).
          </p>
          <h3>Relative reconstruction error per layer and projection (%)</h3>
          <BarChart width={900} height={260} data={data} margin={{ left: 30, bottom: 20 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="layer" label={{ value: 'layer', position: 'insideBottom', offset: -10 }} />
            <YAxis label={yAxisLabel('‖W−Ŵ‖/‖W‖ (%)')} />
            <Tooltip />
            <Legend verticalAlign="top" />
            {PROJS.map((p, i) => <Bar key={p} dataKey={p} fill={COLORS[i]} isAnimationActive={false} />)}
          </BarChart>
          <div className="form">
            <button onClick={() => void downloadExport('safetensors')}>Download quantized safetensors</button>
            <button onClick={() => void downloadExport('onnx')} disabled={r.ptq.bits !== 4}>Download ONNX (MatMulNBits, 4-bit, KV cache)</button>
            <button onClick={() => void downloadExport('gguf')} data-testid="q-export-gguf">Download GGUF (llama.cpp)</button>
          </div>
        </div>
      )}
    </section>
  );
}
