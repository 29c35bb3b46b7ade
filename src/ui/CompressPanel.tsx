// Compress: a smaller student from the teacher (structured pruning by measured importance), distilled
// (KL + CE), then quantized (PTQ and KD-QAT) — the workflow's compress job, as `quench compress`.
// The importance scores show why layers, KV groups and channels were dropped.
import { Bar, BarChart, CartesianGrid, Legend, Tooltip, XAxis, YAxis } from 'recharts';
import { yAxisLabel } from './chart';
import { useStudio } from './store';
import { downloadCompressed, runCompressJob, stopTraining, useCompressedAsTeacher } from './actions';
import { ProgressBar } from './TrainPanels';
import { COMPRESS_COLUMNS, accuracyColumns, compressCells } from '../engine/workflow/compress';
import type { Bits } from '../engine/format/pack';
import { useState } from 'react';
import { TASKS, TASK_FILES, type TaskName } from '../engine/eval/tasks';

type C = ReturnType<typeof useStudio.getState>['settings']['compress'];
const setC = (over: Partial<C>) => useStudio.getState().updateSettings((s) => ({ ...s, compress: { ...s.compress, ...over } }));

export function CompressPanel() {
  const model = useStudio((s) => s.model);
  const c = useStudio((s) => s.settings.compress);
  const job = useStudio((s) => s.compressJob);
  // an optional zero-shot task every stage is scored on: the task and its limit persist with the
  // form (settings.compress); the chosen files cannot, so they stay here and the form says so
  const task: TaskName = TASKS.includes(c.task) ? c.task : 'copa';
  const limit = c.taskLimit;
  const [docs, setDocs] = useState<File | null>(null);
  const [labels, setLabels] = useState<File | null>(null);
  const start = async () => {
    const accuracy = docs ? { task, docsText: await docs.text(), labelsText: labels ? await labels.text() : undefined, fileName: docs.name, limit } : undefined;
    await runCompressJob(accuracy);
  };
  if (!model) return <section className="panel"><p>Load a model first.</p></section>;
  const num = (k: keyof C, label: string, step = 1) => (
    <label>{label} <input type="number" step={step} value={String(c[k])} aria-label={label} data-testid={`cmp-${k}`} onChange={(e) => setC({ [k]: Number(e.target.value) } as Partial<C>)} /></label>
  );
  const r = job.status === 'done' ? job.result : null;
  const imp = r?.importance;
  const acc = r ? accuracyColumns(r.rows) : null;
  return (
    <section className="panel" data-testid="compress-panel">
      <h2>Compress</h2>
      <p className="muted">Prune the teacher to a smaller LLaMA (whole layers by the loss rise when skipped, KV groups so GQA stays valid, MLP channels by first-order Taylor importance), distil it (KL·T² + 0.5·CE), then quantize it (PTQ and KD-QAT, the distilled FP student teaching its quantized copy). Two CE-only baselines on the same token budget show what the teacher adds. The teacher has {model.layers} layers, {model.heads}/{model.kvHeads} heads, MLP {model.hidden}.</p>
      <div className="form" role="group" aria-label="pruning">
        {num('layers', `layers kept (0 = all ${model.layers})`)}
        {num('headsKeep', 'KV groups kept (ratio)', 0.25)}
        {num('mlpKeep', 'MLP channels kept (ratio)', 0.05)}
      </div>
      <div className="form" role="group" aria-label="distillation and quantization">
        {num('kdSteps', 'KD steps')}
        {num('batch', 'batch')}
        {num('seq', 'sequence length')}
        {num('lr', 'KD learning rate', 0.0005)}
        <label>bits <select value={c.bits} aria-label="bits" onChange={(e) => setC({ bits: Number(e.target.value) as Bits })}>{[2, 3, 4, 8].map((b) => <option key={b} value={b}>{b}</option>)}</select></label>
        <label>group <select value={c.group} aria-label="group size" onChange={(e) => setC({ group: Number(e.target.value) })}>{[32, 64, 128, 0].map((g) => <option key={g} value={g}>{g || 'per channel'}</option>)}</select></label>
        {num('qatSteps', 'KD-QAT steps')}
        <label title="the token embedding (and a tied classifier) packed at the PTQ stage, kept through KD-QAT">embedding <select value={c.embedBits} aria-label="embedding bits" onChange={(e) => setC({ embedBits: Number(e.target.value) as 0 | 4 | 8 })}>{[[8, '8-bit'], [4, '4-bit'], [0, 'fp32']].map(([b, l]) => <option key={b} value={b}>{l}</option>)}</select></label>
        <label><input type="checkbox" checked={c.baselines} aria-label="CE-only baselines" onChange={(e) => setC({ baselines: e.target.checked })} /> CE-only baselines</label>
      </div>
      <div className="form" role="group" aria-label="zero-shot accuracy of every stage (optional)">
        <label>zero-shot task <select value={task} aria-label="compress task" data-testid="cmp-task" onChange={(e) => setC({ task: e.target.value as TaskName })}>{TASKS.map((t) => <option key={t}>{t}</option>)}</select></label>
        <label>jsonl ({TASK_FILES[task].docs.split('/').pop()}) <input type="file" accept=".jsonl,.json,.txt" data-testid="cmp-task-docs" onChange={(e) => setDocs(e.target.files?.[0] ?? null)} /></label>
        {TASK_FILES[task].labels && <label>labels ({TASK_FILES[task].labels!.split('/').pop()}) <input type="file" data-testid="cmp-task-labels" onChange={(e) => setLabels(e.target.files?.[0] ?? null)} /></label>}
        <label>first <input type="number" value={limit} aria-label="task documents" data-testid="cmp-taskLimit" onChange={(e) => setC({ taskLimit: Number(e.target.value) })} /> documents (0 = all)</label>
        <span className="muted" data-testid="cmp-task-files">{docs ? `scoring every stage on ${docs.name}${labels ? ` + ${labels.name}` : ''}` : 'no task file chosen: perplexity only (chosen files are not kept across tab switches or reloads)'}</span>
        <button data-testid="compress-start" disabled={job.status === 'running'} onClick={() => void start()}>{job.status === 'running' ? 'Compressing…' : 'Compress'}</button>
        <button onClick={stopTraining}>Stop</button>
      </div>
      <ProgressBar />
      {job.status === 'failed' && <p className="error" role="alert" data-testid="compress-error">{job.message}</p>}
      {r && (
        <>
          <h3>Stages ({r.status}) — held-out: {r.data.evalDocuments} documents of {r.data.source}</h3>
          <div className="table-scroll">
          <table className="results" data-testid="compress-table">
            <thead><tr>{[...COMPRESS_COLUMNS, ...(acc?.header ?? [])].map((h) => <th key={h}>{h}</th>)}<th>download</th></tr></thead>
            <tbody>{r.rows.map((row) => (
              <tr key={row.stage} data-testid={`compress-row-${row.stage}`}>{[...compressCells(row), ...(acc?.cells(row) ?? [])].map((x, i) => <td key={i}>{x}</td>)}
                <td>{r.stages.includes(row.stage) && <button aria-label={`download the ${row.stage} model`} onClick={() => void downloadCompressed(row.stage)}>files</button>}</td></tr>
            ))}</tbody>
          </table>
          </div>
          {r.stages.includes('kd') && <div className="form"><button data-testid="compress-use" onClick={() => void useCompressedAsTeacher('kd')}>Use the distilled FP student as the teacher (then Quantize / Distill it)</button></div>}
          {imp && (
            <>
              <h3>Why: importance on calibration text (base loss {imp.baseLoss.toFixed(4)})</h3>
              <div role="img" aria-label="layer importance: loss rise when a layer is skipped">
                <h4>Loss rise when a layer is skipped ({imp.layerMetric})</h4>
                <BarChart width={700} height={220} data={imp.layers.map((l) => ({ layer: `L${String(l.layer)}`, 'loss rise': Number(l.lossRise), '1 − cosine': 1 - Number(l.cosine) }))} margin={{ left: 20, bottom: 20 }}>
                  <CartesianGrid strokeDasharray="3 3" />
                  <XAxis dataKey="layer" label={{ value: 'layer', position: 'insideBottom', offset: -10 }} />
                  <YAxis label={yAxisLabel('importance')} />
                  <Tooltip />
                  <Legend verticalAlign="top" />
                  <Bar dataKey="loss rise" fill="#0969da" isAnimationActive={false} />
                  <Bar dataKey="1 − cosine" fill="#9a6700" isAnimationActive={false} />
                </BarChart>
              </div>
              <table className="results" data-testid="compress-importance">
                <thead><tr><th>layer</th><th>loss rise</th><th>cosine in/out</th><th>KV group importance</th><th>mean channel importance ({imp.channelMetric})</th></tr></thead>
                <tbody>{imp.layers.map((l, i) => <tr key={i}><td>{String(l.layer)}</td><td>{Number(l.lossRise).toExponential(2)}</td><td>{Number(l.cosine).toFixed(4)}</td><td>{(imp.kvGroups[i] ?? []).map((x) => x.toExponential(1)).join(', ')}</td><td>{(imp.channelsPerLayer[i] ?? 0).toExponential(2)}</td></tr>)}</tbody>
              </table>
            </>
          )}
        </>
      )}
    </section>
  );
}
