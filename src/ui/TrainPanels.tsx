// Distill (one run, freeze matrix) and Compare (a queue of runs that differ only in freeze scheme)
// with the live dashboard: loss, per-layer gradient norms, forward error, results table.
import { useState } from 'react';
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import { useStudio } from './store';
import { loadDataFile, pauseTraining, resumeRun, runAccuracy, runContext, runQueue, sampleTeacherData, saveBlob, stopTraining } from '../worker/bridge';
import { TASKS, TASK_FILES, type TaskName } from '../engine/eval/tasks';
import type { McResult } from '../engine/eval/multiple-choice';
import type { Bits } from '../engine/quant/pack';
import type { RunSpec } from '../worker/protocol';
import type { StoredRun } from './db';
import { PROJECTIONS, type Projection } from '../engine/model/config';
import { FREEZE_PRESETS, parseFreeze, describeFreeze, type FreezeMask } from '../engine/train/freeze';

const COLORS = ['#0969da', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#57606a', '#0a3069'];

interface Settings {
  bits: Bits;
  group: number;
  steps: number;
  batch: number;
  seq: number;
  lr: number;
  seed: number;
  temperature: number;
  kl: number;
  ce: number;
  attnMap: number;
  scales: 'minmax' | 'learned';
  scaleInit: 'minmax' | 'search';
}

function SettingsForm({ s, set }: { s: Settings; set: (s: Settings) => void }) {
  const num = (k: keyof Settings, label: string, step = 1) => (
    <label>
      {label} <input type="number" step={step} value={s[k]} data-testid={`set-${k}`} onChange={(e) => set({ ...s, [k]: Number(e.target.value) })} />
    </label>
  );
  return (
    <div className="form">
      {num('bits', 'bits')}
      {num('group', 'group')}
      {num('steps', 'steps')}
      {num('batch', 'batch')}
      {num('seq', 'sequence length')}
      {num('lr', 'learning rate', 0.0001)}
      {num('seed', 'seed')}
      {num('temperature', 'temperature', 0.5)}
      {num('kl', 'KL weight', 0.1)}
      {num('ce', 'CE weight', 0.1)}
      {num('attnMap', 'attention-map weight', 0.1)}
      <label>
        scales{' '}
        <select value={s.scales} data-testid="set-scales" onChange={(e) => set({ ...s, scales: e.target.value as Settings['scales'] })}>
          <option value="minmax">follow the weights (min/max each step)</option>
          <option value="learned">learned (LSQ)</option>
        </select>
      </label>
      <label>
        start from{' '}
        <select value={s.scaleInit} data-testid="set-scaleInit" onChange={(e) => set({ ...s, scaleInit: e.target.value as Settings['scaleInit'] })}>
          <option value="minmax">min/max</option>
          <option value="search">clip search (frozen and learned scales)</option>
        </select>
      </label>
    </div>
  );
}

const defaults: Settings = { bits: 4, group: 32, steps: 20, batch: 4, seq: 64, lr: 0.002, seed: 1, temperature: 1, kl: 1, ce: 0.5, attnMap: 0, scales: 'learned', scaleInit: 'search' };

function specOf(s: Settings, freeze: FreezeMask, scheme: string): RunSpec {
  return {
    id: `${Date.now()}-${scheme}-${Math.random().toString(36).slice(2, 7)}`, label: scheme, bits: s.bits, group: s.group, freeze,
    steps: s.steps, batch: s.batch, seq: s.seq, lr: s.lr, seed: s.seed, temperature: s.temperature,
    loss: { kl: s.kl, ce: s.ce, attnMap: s.attnMap, attnOut: 0, hidden: 0 }, scales: s.scales, scaleInit: s.scaleInit, context: runContext(),
  };
}

export function DistillPanel() {
  const model = useStudio((s) => s.model);
  const [s, set] = useState(defaults);
  const [mask, setMask] = useState<FreezeMask | null>(null);
  if (!model) return <section className="panel"><p>Load a model first.</p></section>;
  const m = mask && mask.length === model.layers ? mask : parseFreeze('none', model.layers);
  const toggle = (l: number, p: Projection) => setMask(m.map((row, i) => (i === l ? { ...row, [p]: !row[p] } : row)));
  return (
    <section className="panel">
      <h2>Distill</h2>
      <p className="muted">The FP model teaches its quantized copy; the last documents of the data are held out for evaluation. Frozen projections keep their quantized values and get no gradient.</p>
      <DataPicker />
      <SettingsForm s={s} set={set} />
      <h3>Freeze matrix ({describeFreeze(m)})</h3>
      <div className="form">
        {Object.keys(FREEZE_PRESETS).map((p) => <button key={p} onClick={() => setMask(parseFreeze(p, model.layers))}>{p}</button>)}
      </div>
      <table className="results freeze" data-testid="freeze-matrix">
        <thead><tr><th>layer</th>{PROJECTIONS.map((p) => <th key={p}>{p}</th>)}</tr></thead>
        <tbody>
          {m.map((row, l) => (
            <tr key={l}><td>{l}</td>{PROJECTIONS.map((p) => (
              <td key={p}><input type="checkbox" aria-label={`freeze layer ${l} ${p}`} checked={row[p]} onChange={() => toggle(l, p)} /></td>
            ))}</tr>
          ))}
        </tbody>
      </table>
      <div className="form">
        <button data-testid="distill-start" onClick={() => void runQueue([{ spec: specOf(s, m, describeFreeze(m)), scheme: describeFreeze(m) }])}>Start</button>
        <button onClick={pauseTraining} data-testid="distill-pause">Pause</button>
        <button onClick={stopTraining}>Stop</button>
      </div>
      <Dashboard />
    </section>
  );
}

export function ComparePanel() {
  const model = useStudio((s) => s.model);
  const [s, set] = useState(defaults);
  const [schemes, setSchemes] = useState<string[]>(['none', 'ov']);
  if (!model) return <section className="panel"><p>Load a model first.</p></section>;
  return (
    <section className="panel">
      <h2>Compare freeze schemes</h2>
      <p className="muted">Each scheme runs with the same seed, data and settings, one after another.</p>
      <DataPicker />
      <SettingsForm s={s} set={set} />
      <div className="form" role="group" aria-label="schemes">
        {Object.keys(FREEZE_PRESETS).map((p) => (
          <label key={p}><input type="checkbox" data-testid={`scheme-${p}`} checked={schemes.includes(p)} onChange={(e) => setSchemes(e.target.checked ? [...schemes, p] : schemes.filter((x) => x !== p))} /> {p}</label>
        ))}
        <button data-testid="compare-start" disabled={schemes.length === 0} onClick={() => void runQueue(schemes.map((sc) => ({ spec: specOf(s, parseFreeze(sc, model.layers), sc), scheme: sc })))}>Run {schemes.length} schemes</button>
        <button onClick={stopTraining}>Stop</button>
      </div>
      <Dashboard />
    </section>
  );
}

export function ProgressBar() {
  const p = useStudio((s) => s.progress);
  if (!p) return null;
  const elapsed = p.startedAt ? (Date.now() - p.startedAt) / 1000 : 0;
  const eta = p.done > 0 && p.done < p.total && elapsed > 0 ? ` · ETA ${Math.ceil((elapsed / p.done) * (p.total - p.done))} s` : '';
  return (
    <div className="progress" data-testid="progress">
      <progress max={p.total} value={p.done} aria-label={p.label} /> {p.label}: {p.done}/{p.total}{eta}
    </div>
  );
}

/** Training data: the bundled sample, a dropped text file, or text sampled from the teacher. */
export function DataPicker() {
  const data = useStudio((s) => s.data);
  const error = useStudio((s) => s.dataError);
  return (
    <div className="form" aria-label="training data">
      <span>data: <b data-testid="data-name">{data ? `${data.name} (${data.documents} documents, ${data.tokens} tokens)` : 'bundled sample text'}</b></span>
      <label>text file <input type="file" accept=".txt,text/plain" data-testid="data-file" onChange={(e) => e.target.files?.[0] && void loadDataFile(e.target.files[0])} /></label>
      <button data-testid="data-teacher" onClick={() => void sampleTeacherData(16, 96)}>Sample 16 sequences from the teacher</button>
      {error && <span className="error" role="alert">{error}</span>}
    </div>
  );
}

function Dashboard() {
  const runs = useStudio((s) => s.runs);
  const [selected, setSelected] = useState<string | null>(null);
  if (runs.length === 0) return <ProgressBar />;
  const focus = runs.find((r) => r.id === selected) ?? [...runs].reverse().find((r) => r.metrics.length > 0) ?? runs[runs.length - 1];
  const steps = Math.max(...runs.map((r) => r.metrics.length));
  const lossData = Array.from({ length: steps }, (_, i) => ({ step: i, ...Object.fromEntries(runs.filter((r) => r.metrics[i]).map((r) => [`${r.scheme} #${r.id.slice(-5)}`, +r.metrics[i].loss.toFixed(5)])) }));
  const layers = focus.metrics.find((m) => m.gradSq)?.gradSq?.length ?? 0;
  const gradData = focus.metrics.filter((m) => m.gradSq).map((m) => ({ step: m.step, ...Object.fromEntries(m.gradSq!.map((row, l) => [`layer ${l}`, +Math.sqrt(Object.values(row).reduce((a, b) => a + b, 0)).toExponential(3)])) }));
  const errData = focus.metrics.filter((m) => m.hiddenRelErr).map((m) => ({ step: m.step, ...Object.fromEntries(m.hiddenRelErr!.map((e, l) => [`layer ${l}`, +e.toExponential(3)])) }));
  const lastGrad = [...focus.metrics].reverse().find((m) => m.gradSq)?.gradSq;
  const maxG = lastGrad ? Math.max(...lastGrad.flatMap((r) => Object.values(r))) : 1;
  const lastMetrics = focus.metrics.at(-1);
  return (
    <div className="dashboard" id="dashboard">
      <ProgressBar />
      <div className="form"><button onClick={() => void exportChartsPng(document.getElementById('dashboard')!, 'quench-charts.png')} data-testid="export-png">Export charts as PNG</button></div>
      <h3>Loss (all runs)</h3>
      <LineChart width={900} height={220} data={lossData} margin={{ left: 20, bottom: 20 }} data-testid="loss-chart">
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="step" label={{ value: 'step', position: 'insideBottom', offset: -10 }} />
        <YAxis label={{ value: 'loss (nats)', angle: -90, position: 'insideLeft' }} />
        <Tooltip />
        <Legend verticalAlign="top" />
        {runs.map((r, i) => <Line key={r.id} dataKey={`${r.scheme} #${r.id.slice(-5)}`} stroke={COLORS[i % COLORS.length]} dot={false} isAnimationActive={false} />)}
      </LineChart>
      <h3>Run: <select value={focus.id} onChange={(e) => setSelected(e.target.value)} aria-label="run shown below">{runs.map((r) => <option key={r.id} value={r.id}>{r.scheme} #{r.id.slice(-5)} ({r.status})</option>)}</select></h3>
      {lastMetrics && <p className="muted">lr {lastMetrics.lr.toExponential(2)} · global grad norm {lastMetrics.gradNorm.toFixed(3)} · {lastMetrics.tokensPerSec.toFixed(0)} tokens/s{lastMetrics.codeFlips ? ` · codes changed: ${Object.entries(lastMetrics.codeFlips).map(([p, f]) => `${p} ${(100 * (f ?? 0)).toFixed(1)}%`).join(', ')}` : ''}</p>}
      <div className="charts">
        <div data-testid="gradnorm-chart">
          <h4>Per-layer gradient norm ‖∇W‖ (latent weights)</h4>
          <LineChart width={440} height={220} data={gradData} margin={{ left: 20, bottom: 20 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="step" label={{ value: 'step', position: 'insideBottom', offset: -10 }} />
            <YAxis label={{ value: 'Frobenius norm', angle: -90, position: 'insideLeft' }} />
            <Tooltip />
            <Legend verticalAlign="top" />
            {Array.from({ length: layers }, (_, l) => <Line key={l} dataKey={`layer ${l}`} stroke={COLORS[l % COLORS.length]} dot={false} isAnimationActive={false} />)}
          </LineChart>
        </div>
        <div>
          <h4>Forward error vs teacher (relative MSE of hidden states)</h4>
          <LineChart width={440} height={220} data={errData} margin={{ left: 20, bottom: 20 }}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="step" label={{ value: 'step', position: 'insideBottom', offset: -10 }} />
            <YAxis label={{ value: '‖h_s−h_t‖²/‖h_t‖²', angle: -90, position: 'insideLeft' }} />
            <Tooltip />
            <Legend verticalAlign="top" />
            {Array.from({ length: layers }, (_, l) => <Line key={l} dataKey={`layer ${l}`} stroke={COLORS[l % COLORS.length]} dot={false} isAnimationActive={false} />)}
          </LineChart>
        </div>
      </div>
      {lastGrad && (
        <>
          <h4>Squared gradient norm, layer × projection (last step; darker = larger)</h4>
          <table className="results heat" data-testid="grad-heatmap">
            <thead><tr><th>layer</th>{PROJECTIONS.map((p) => <th key={p}>{p}</th>)}</tr></thead>
            <tbody>{lastGrad.map((row, l) => <tr key={l}><td>{l}</td>{PROJECTIONS.map((p) => <td key={p} style={{ background: `rgba(9,105,218,${Math.min(1, row[p] / (maxG || 1))})` }} title={row[p].toExponential(3)}>{row[p] === 0 ? 'frozen' : row[p].toExponential(1)}</td>)}</tr>)}</tbody>
          </table>
        </>
      )}
      <Results runs={runs} />
    </div>
  );
}

/** Render the SVG charts inside `root` to one PNG (white background) and download it. */
async function exportChartsPng(root: HTMLElement, name: string): Promise<void> {
  const svgs = [...root.querySelectorAll('svg.recharts-surface')] as SVGSVGElement[];
  if (svgs.length === 0) return;
  const images = await Promise.all(
    svgs.map(
      (svg) =>
        new Promise<HTMLImageElement>((resolve, reject) => {
          const clone = svg.cloneNode(true) as SVGSVGElement;
          clone.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
          const url = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(clone)], { type: 'image/svg+xml' }));
          const img = new Image();
          img.onload = () => {
            URL.revokeObjectURL(url);
            resolve(img);
          };
          img.onerror = reject;
          img.src = url;
        }),
    ),
  );
  const width = Math.max(...images.map((i) => i.width));
  const height = images.reduce((s, i) => s + i.height + 10, 0);
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = 'white';
  ctx.fillRect(0, 0, width, height);
  let y = 0;
  for (const img of images) {
    ctx.drawImage(img, 0, y);
    y += img.height + 10;
  }
  const blob = await new Promise<Blob | null>((r) => canvas.toBlob(r, 'image/png'));
  if (blob) saveBlob(name, blob);
}

function toCsv(rows: string[][]): string {
  return rows.map((r) => r.map((c) => (/[,"\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(',')).join('\n') + '\n';
}

function download(name: string, text: string): void {
  saveBlob(name, new Blob([text]));
}

const pm = (r: McResult | undefined, k: 'acc' | 'acc_norm') => (r ? `${r[k].toFixed(3)} ± ${r[`${k}_stderr`].toFixed(3)}` : '');

/** A task file (lm-evaluation-harness formats) to score every row of the results table on. */
function AccuracyForm() {
  const job = useStudio((s) => s.accuracyJob);
  const progress = useStudio((s) => s.progress);
  const [task, setTask] = useState<TaskName>('copa');
  const [docs, setDocs] = useState<File | null>(null);
  const [labels, setLabels] = useState<File | null>(null);
  const [limit, setLimit] = useState(100);
  const needsLabels = !!TASK_FILES[task].labels;
  const start = async () => {
    if (!docs) return;
    await runAccuracy({ task, docsText: await docs.text(), labelsText: labels ? await labels.text() : undefined, fileName: docs.name, limit });
  };
  return (
    <div className="form" aria-label="zero-shot accuracy">
      <label>
        task{' '}
        <select value={task} data-testid="acc-task" onChange={(e) => setTask(e.target.value as TaskName)}>
          {TASKS.map((t) => <option key={t}>{t}</option>)}
        </select>
      </label>
      <label>jsonl ({TASK_FILES[task].docs.split('/').pop()}) <input type="file" accept=".jsonl,.json,.txt" data-testid="acc-docs" onChange={(e) => setDocs(e.target.files?.[0] ?? null)} /></label>
      {needsLabels && <label>labels ({TASK_FILES[task].labels!.split('/').pop()}) <input type="file" data-testid="acc-labels" onChange={(e) => setLabels(e.target.files?.[0] ?? null)} /></label>}
      <label>first <input type="number" value={limit} data-testid="acc-limit" onChange={(e) => setLimit(Number(e.target.value))} /> documents (0 = all)</label>
      <button data-testid="acc-run" disabled={!docs || job.status === 'running'} onClick={() => void start()}>{job.status === 'running' ? 'Scoring…' : 'Score accuracy'}</button>
      {job.status === 'running' && progress && <span data-testid="acc-progress"><progress max={progress.total} value={progress.done} /> {progress.label}: {progress.done}/{progress.total}</span>}
      {job.status === 'failed' && <span className="error" role="alert" data-testid="acc-error">{job.message}</span>}
    </div>
  );
}

function Results({ runs }: { runs: StoredRun[] }) {
  const quant = useStudio((s) => s.quant);
  const accuracy = useStudio((s) => s.accuracy);
  const accHeader = accuracy.flatMap((a) => [`${a.task} acc`, `${a.task} acc_norm`]);
  const accCells = (row: string) => accuracy.flatMap((a) => [pm(a.results[row], 'acc'), pm(a.results[row], 'acc_norm')]);
  const header = ['run', 'scheme', 'bits', 'steps', 'status', 'final loss', 'final KL', 'eval ppl', 'wall s', ...accHeader];
  const rows = runs.map((r) => [r.id.slice(-5), r.scheme, `w${r.spec.bits}g${r.spec.group}`, String(r.metrics.length), r.status, r.summary?.finalLoss.toFixed(5) ?? '', r.summary?.finalKl.toFixed(5) ?? '', r.summary?.evalPpl.toFixed(4) ?? '', r.summary?.wallSeconds.toFixed(1) ?? '', ...accCells(r.id)]);
  const fp = ['FP', 'teacher', 'fp32', '', 'reference', '', '', quant.status === 'done' ? quant.result.pplBefore.toFixed(4) : '', '', ...accCells('FP')];
  const ptq = quant.status === 'done' ? [['PTQ', 'round-to-nearest', `w${quant.result.ptq.bits}g${quant.result.ptq.group}`, '', 'reference', '', '', quant.result.pplAfter.toFixed(4), '', ...accCells('PTQ')]] : [];
  const ref = quant.status === 'done' || accuracy.length > 0 ? [fp, ...ptq] : [];
  return (
    <>
      <h3>Results</h3>
      <table className="results" data-testid="results-table">
        <thead><tr>{header.map((h) => <th key={h}>{h}</th>)}</tr></thead>
        <tbody>
          {ref.map((r) => <tr key={r[0]} className="ref" data-testid={`ref-row-${r[0]}`}>{r.map((c, i) => <td key={i}>{c}</td>)}</tr>)}
          {rows.map((r, k) => (
            <tr key={r[0]} data-testid="result-row">
              {r.map((c, i) => <td key={i}>{c}</td>)}
              {runs[k].status === 'paused' && <td><button data-testid="resume" onClick={() => void resumeRun(runs[k].id)}>Resume</button></td>}
              {runs[k].error && <td className="error" data-testid="run-error">{runs[k].error}</td>}
            </tr>
          ))}
        </tbody>
      </table>
      {accuracy.length > 0 && <p className="muted">Accuracy: zero-shot log-likelihood scoring as lm-evaluation-harness ({accuracy.map((a) => `${a.task}: first ${a.n} of ${a.file}`).join('; ')}); ± is the standard error. Students are scored only for runs finished in this session.</p>}
      <AccuracyForm />
      <div className="form">
        <button onClick={() => download('quench-results.csv', toCsv([header, ...ref, ...rows]))}>Export CSV</button>
        <button onClick={() => download('quench-results.json', JSON.stringify({ runs: runs.map((r) => ({ scheme: r.scheme, spec: r.spec, status: r.status, summary: r.summary, metrics: r.metrics })), accuracy }, null, 1))}>Export JSON</button>
      </div>
    </>
  );
}
