// Distill (one run, freeze matrix), Compare (a queue of runs that differ only in freeze scheme) and
// Results (FP → PTQ → students → FP fine-tune for each bits/group, exports). Every form edits the
// store's persisted settings (a RunSpec, the workflow's own type, starting at the CLI's defaults),
// so switching tabs or reloading never resets them.
import { useState } from 'react';
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import { yAxisLabel } from './chart';
import { useShallow } from 'zustand/react/shallow';
import { baselineKey, DEFAULT_SETTINGS, useStudio, type Settings } from './store';
import { computeBaselines, currentResults, downloadRecipe, runAutoFreeze, downloadHeldOut, downloadResultsCsv, downloadResultsJson, exportRun, loadDataFile, pauseTraining, removeRun, resumeRun, runAccuracy, runQueue, sampleTeacherData, saveBlob, stopTraining } from './actions';
import { TASKS, TASK_FILES, type TaskName } from '../engine/eval/tasks';
import type { Bits } from '../engine/quant/pack';
import type { StoredRun } from './db';
import { PROJECTIONS, type Projection } from '../engine/model/config';
import { FREEZE_PRESETS, parseFreeze, describeFreeze, type FreezeMask } from '../engine/train/freeze';
import { describeEval } from '../engine/workflow/data';
import { LOSS_NAMES, makeRunSpec, type RunSpec } from '../engine/workflow/spec';
import { RESULT_COLUMNS, resultCells } from '../engine/workflow/results';
import type { LossWeights } from '../engine/train/distill';
import type { McResult } from '../engine/eval/multiple-choice';

const COLORS = ['#0969da', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#57606a', '#0a3069'];

const setRun = (f: (r: RunSpec) => RunSpec) => useStudio.getState().updateSettings((s) => ({ ...s, run: f(s.run) }));

/** The run settings form, over the persisted RunSpec (every loss weight the engine has). */
function SettingsForm() {
  const s = useStudio((st) => st.settings.run);
  const num = (k: keyof RunSpec, label: string, step = 1) => (
    <label>
      {label} <input type="number" step={step} value={String(s[k])} data-testid={`set-${k}`} aria-label={label} onChange={(e) => setRun((r) => ({ ...r, [k]: Number(e.target.value) }))} />
    </label>
  );
  const loss = (k: keyof LossWeights) => (
    <label key={k}>
      {LOSS_NAMES[k]} weight <input type="number" step={0.1} min={0} value={s.loss[k]} data-testid={`set-loss-${k}`} aria-label={`${LOSS_NAMES[k]} weight`} onChange={(e) => setRun((r) => ({ ...r, loss: { ...r.loss, [k]: Number(e.target.value) } }))} />
    </label>
  );
  return (
    <>
      <div className="form" role="group" aria-label="quantization">
        <label>bits <select value={s.bits} data-testid="set-bits" aria-label="bits" onChange={(e) => setRun((r) => ({ ...r, bits: Number(e.target.value) as Bits }))}>{[2, 3, 4, 8].map((b) => <option key={b} value={b}>{b}</option>)}</select></label>
        <label>group <select value={s.group} data-testid="set-group" aria-label="group size" onChange={(e) => setRun((r) => ({ ...r, group: Number(e.target.value) }))}>{[32, 64, 128, 0].map((g) => <option key={g} value={g}>{g || 'per channel'}</option>)}</select></label>
        <label><input type="checkbox" checked={s.sym} aria-label="symmetric" onChange={(e) => setRun((r) => ({ ...r, sym: e.target.checked }))} /> symmetric</label>
        <label>
          scales{' '}
          <select value={s.scales} data-testid="set-scales" aria-label="scales" onChange={(e) => setRun((r) => ({ ...r, scales: e.target.value as RunSpec['scales'] }))}>
            <option value="minmax">follow the weights (min/max each step)</option>
            <option value="learned">learned (LSQ)</option>
          </select>
        </label>
        <label>
          start from{' '}
          <select value={s.scaleInit} data-testid="set-scaleInit" aria-label="scales start from" onChange={(e) => setRun((r) => ({ ...r, scaleInit: e.target.value as RunSpec['scaleInit'] }))}>
            <option value="minmax">min/max</option>
            <option value="search">clip search (frozen and learned scales)</option>
          </select>
        </label>
      </div>
      <div className="form" role="group" aria-label="training">
        {num('steps', 'steps')}
        {num('batch', 'batch')}
        {num('seq', 'sequence length')}
        {num('lr', 'learning rate', 0.0001)}
        {num('seed', 'seed')}
        {num('temperature', 'temperature', 0.5)}
        {num('accum', 'gradient accumulation')}
        {num('gradClip', 'gradient clip', 0.1)}
        {num('weightDecay', 'weight decay', 0.01)}
      </div>
      <div className="form" role="group" aria-label="losses">
        {(Object.keys(LOSS_NAMES) as (keyof LossWeights)[]).map(loss)}
        <button onClick={() => setRun(() => DEFAULT_SETTINGS.run)} data-testid="set-defaults">Reset to the recipe's defaults</button>
      </div>
      <p className="muted">Defaults are the documented recipe, the same as <code>quench distill</code>: KL + 0.5·CE, learned scales from the clip search, AdamW lr 5e-4, 300 steps of 8×128, warm-up min(20, steps/10), cosine to 10%.</p>
    </>
  );
}

/** The spec the form describes, validated (a clear message for a bad value). */
function checkedSpec(over: Partial<RunSpec>): RunSpec | string {
  try {
    return makeRunSpec({ ...useStudio.getState().settings.run, ...over }, 'settings');
  } catch (e) {
    return (e as Error).message;
  }
}

export function DistillPanel() {
  const model = useStudio((s) => s.model);
  const stored = useStudio((s) => s.settings.mask);
  const [error, setError] = useState<string | null>(null);
  if (!model) return <section className="panel"><p>Load a model first.</p></section>;
  const m: FreezeMask = stored && stored.length === model.layers ? stored : parseFreeze(useStudio.getState().settings.run.scheme, model.layers);
  const setMask = (mask: FreezeMask) => useStudio.getState().updateSettings((s) => ({ ...s, mask }));
  const toggle = (l: number, p: Projection) => setMask(m.map((row, i) => (i === l ? { ...row, [p]: !row[p] } : row)));
  const start = (kind: RunSpec['kind']) => {
    const scheme = describeFreeze(m);
    const spec = checkedSpec(kind === 'fp-finetune' ? { kind, scheme: 'none', mask: undefined } : { kind, scheme: scheme === 'custom per-layer' ? 'custom' : scheme, mask: scheme === 'custom per-layer' ? m : undefined });
    if (typeof spec === 'string') return setError(spec);
    setError(null);
    void runQueue([spec]);
  };
  return (
    <section className="panel">
      <h2>Distill</h2>
      <p className="muted">The FP model teaches its quantized copy; the held-out documents of the data are never trained on. Frozen projections keep their quantized values and get no gradient. Next: watch the curves here and in Analysis, then read the Results tab.</p>
      <DataPicker />
      <SettingsForm />
      <h3>Freeze matrix ({describeFreeze(m)})</h3>
      <div className="form" role="group" aria-label="freeze presets">
        {Object.keys(FREEZE_PRESETS).map((p) => <button key={p} aria-label={`freeze preset ${p}`} onClick={() => setMask(parseFreeze(p, model.layers))}>{p}</button>)}
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
        <button data-testid="distill-start" onClick={() => start('kdqat')}>Start KD-QAT</button>
        <button data-testid="distill-fp-reference" onClick={() => start('fp-finetune')}>Run the FP fine-tune (same recipe, the ceiling)</button>
        <button data-testid="distill-auto" title="probes measure gradient norms against the FP reference, code flips and each projection's added error; candidate masks race by successive halving on a validation slice of the training text; about 1.5 runs + probes" onClick={() => {
          const spec = checkedSpec({ kind: 'kdqat', scheme: 'none', mask: undefined });
          if (typeof spec === 'string') return setError(spec);
          setError(null);
          void runAutoFreeze(spec);
        }}>Auto: let the measurements choose the freeze</button>
        <button onClick={pauseTraining} data-testid="distill-pause">Pause</button>
        <button onClick={stopTraining} data-testid="distill-stop">Stop</button>
      </div>
      {error && <p className="error" role="alert" data-testid="distill-error">{error}</p>}
      <Dashboard />
    </section>
  );
}

export function ComparePanel() {
  const model = useStudio((s) => s.model);
  const schemes = useStudio((s) => s.settings.compareSchemes);
  const fpRef = useStudio((s) => s.settings.compareFpReference);
  const [error, setError] = useState<string | null>(null);
  if (!model) return <section className="panel"><p>Load a model first.</p></section>;
  const setSchemes = (compareSchemes: string[]) => useStudio.getState().updateSettings((s) => ({ ...s, compareSchemes }));
  const start = () => {
    const specs = schemes.map((scheme) => checkedSpec({ kind: 'kdqat', scheme, mask: undefined }));
    if (fpRef) specs.push(checkedSpec({ kind: 'fp-finetune', scheme: 'none', mask: undefined }));
    const bad = specs.find((x) => typeof x === 'string');
    if (bad) return setError(bad as string);
    setError(null);
    void runQueue(specs as RunSpec[]);
  };
  return (
    <section className="panel">
      <h2>Compare freeze schemes</h2>
      <p className="muted">Each scheme runs with the same seed, data and settings, one after another; the PTQ baselines of the same bits and group are computed first. Results land in the Results tab.</p>
      <DataPicker />
      <SettingsForm />
      <div className="form" role="group" aria-label="schemes">
        {Object.keys(FREEZE_PRESETS).map((p) => (
          <label key={p}><input type="checkbox" data-testid={`scheme-${p}`} aria-label={`scheme ${p}`} checked={schemes.includes(p)} onChange={(e) => setSchemes(e.target.checked ? [...schemes, p] : schemes.filter((x) => x !== p))} /> {p}</label>
        ))}
        <label><input type="checkbox" data-testid="compare-fp-reference" aria-label="also run the FP fine-tune" checked={fpRef} onChange={(e) => useStudio.getState().updateSettings((s) => ({ ...s, compareFpReference: e.target.checked }))} /> + FP fine-tune (the fair ceiling)</label>
        <button data-testid="compare-start" disabled={schemes.length === 0} onClick={start}>Run {schemes.length + (fpRef ? 1 : 0)} runs</button>
        <button onClick={stopTraining} data-testid="compare-stop">Stop the queue</button>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      <Dashboard />
    </section>
  );
}

export function ProgressBar() {
  const p = useStudio((s) => s.progress);
  if (!p) return null;
  const elapsed = p.startedAt ? (Date.now() - p.startedAt) / 1000 : 0;
  const etaS = p.etaSeconds ?? (p.done > 0 && p.done < p.total && elapsed > 0 ? (elapsed / p.done) * (p.total - p.done) : null);
  const eta = etaS !== null && p.done < p.total ? ` · ETA ${Math.ceil(etaS)} s` : '';
  return (
    <div className="progress" data-testid="progress">
      {p.queue && <span data-testid="queue-progress">run {p.queue.index} of {p.queue.total}{p.queue.etaSeconds !== null ? ` (queue ETA ${Math.ceil(p.queue.etaSeconds)} s)` : ''} · </span>}
      <progress max={p.total} value={p.done} aria-label={p.label} /> {p.label}: {p.done}/{p.total}{eta}
    </div>
  );
}

/** Training data: the bundled sample, a dropped text file, or text sampled from the teacher; and
 *  the held-out evaluation text the perplexities are measured on, named. */
export function DataPicker() {
  const data = useStudio((s) => s.data);
  const error = useStudio((s) => s.dataError);
  return (
    <div aria-label="training data">
      <div className="form">
        <span>data: <b data-testid="data-name">{data ? `${data.name} (${data.documents} documents, ${data.tokens} tokens)` : 'none yet'}</b></span>
        <label>text file (documents separated by &lt;|endoftext|&gt; lines) <input type="file" accept=".txt,text/plain" data-testid="data-file" aria-label="training text file" onChange={(e) => {
          const f = e.target.files?.[0];
          e.target.value = '';
          if (f) void loadDataFile(f);
        }} /></label>
        <button data-testid="data-teacher" onClick={() => void sampleTeacherData(16, 96)}>Sample 16 sequences from the teacher</button>
        <button data-testid="data-heldout" disabled={!data} onClick={() => void downloadHeldOut()}>Download the held-out text</button>
      </div>
      {data && <p className="muted" data-testid="eval-description">Evaluation: {describeEval(data.eval)}. {data.eval.protocol}.</p>}
      {error && <p className="error" role="alert">{error}</p>}
    </div>
  );
}

const runName = (r: StoredRun) => `${r.label} #${r.id.slice(-5)}`;

function Dashboard() {
  const runs = useStudio((s) => s.runs);
  if (runs.length === 0) return <ProgressBar />;
  const steps = Math.max(...runs.map((r) => r.metrics.length));
  const lossData = Array.from({ length: steps }, (_, i) => ({ step: i + 1, ...Object.fromEntries(runs.filter((r) => r.metrics[i]).map((r) => [runName(r), +r.metrics[i].loss.toFixed(5)])) }));
  return (
    <div className="dashboard" id="dashboard">
      <ProgressBar />
      <div className="form"><button onClick={() => void exportChartsPng(document.getElementById('dashboard')!, 'quench-loss.png')} data-testid="export-png">Export the loss chart as PNG</button></div>
      <h3>Training loss, all runs (weighted sum of the chosen losses)</h3>
      <LineChart width={900} height={220} data={lossData} margin={{ left: 20, bottom: 20 }} data-testid="loss-chart">
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="step" label={{ value: 'step', position: 'insideBottom', offset: -10 }} />
        <YAxis label={yAxisLabel('loss (nats)')} />
        <Tooltip />
        <Legend verticalAlign="top" />
        {runs.map((r, i) => <Line key={r.id} dataKey={runName(r)} stroke={COLORS[i % COLORS.length]} dot={false} isAnimationActive={false} />)}
      </LineChart>
      <RunsTable runs={runs} />
      {runs.filter((r) => r.auto).map((r) => <AutoEvidence key={r.id} run={r} />)}
      <p className="muted">Per-projection gradient norms, code flips, forward error and the loss components of every run are in the Analysis tab; the repair table in Results.</p>
    </div>
  );
}

/** An auto-freeze's choice, candidates with their reasons, the halving rounds, and the candidates'
 *  loss curves overlaid. */
function AutoEvidence({ run }: { run: StoredRun }) {
  const a = run.auto!;
  const names = Object.keys(a.curves);
  const steps = Math.max(...names.map((n) => a.curves[n].length));
  const data = Array.from({ length: steps }, (_, i) => ({ step: i + 1, ...Object.fromEntries(names.filter((n) => a.curves[n][i] !== undefined).map((n) => [n, +a.curves[n][i].toFixed(5)])) }));
  return (
    <div data-testid="auto-evidence">
      <h3>Auto-freeze {runName(run)}: chose <b data-testid="auto-chosen">{a.chosen}</b> ({a.costRuns.toFixed(2)}× the steps of one run)</h3>
      <p className="muted">{a.reason}. Chosen on {a.validationDocuments} validation documents carved from the training text (never the held-out text).</p>
      <table className="results" data-testid="auto-candidates">
        <thead><tr><th>candidate</th><th>score</th><th>why</th>{a.rounds.map((r) => <th key={r.toStep}>val ppl @ step {r.toStep}</th>)}<th>extrapolated to step {run.spec.steps}</th></tr></thead>
        <tbody>{a.candidates.map((c) => (
          <tr key={c.name}><td>{c.name}</td><td>{c.score.toFixed(2)}</td><td className="muted">{c.reason}</td>{a.rounds.map((r) => {
            const x = r.results.find((y) => y.name === c.name);
            return <td key={r.toStep}>{x ? `${x.valPpl.toFixed(4)}${x.kept ? ' ✓' : ''}` : '—'}</td>;
          })}<td>{a.predicted?.[c.name] !== undefined ? a.predicted[c.name].toFixed(4) : '—'}</td></tr>
        ))}</tbody>
      </table>
      <h4>Candidates' training loss (the winner to the end)</h4>
      <LineChart width={900} height={200} data={data} margin={{ left: 20, bottom: 20 }}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="step" label={{ value: 'step', position: 'insideBottom', offset: -10 }} />
        <YAxis label={yAxisLabel('loss (nats)')} />
        <Tooltip />
        <Legend verticalAlign="top" />
        {names.map((n, i) => <Line key={n} dataKey={n} stroke={COLORS[i % COLORS.length]} dot={false} isAnimationActive={false} />)}
      </LineChart>
    </div>
  );
}

/** Every run with its settings and status: resume, export the student, delete. */
function RunsTable({ runs }: { runs: StoredRun[] }) {
  const [error, setError] = useState<string | null>(null);
  const act = (f: () => Promise<void>) => void f().catch((e: Error) => setError(e.message));
  return (
    <>
      <h3>Runs</h3>
      <table className="results" data-testid="runs-table">
        <thead><tr><th>run</th><th>settings</th><th>teacher / data</th><th>status</th><th>steps</th><th>eval ppl</th><th>actions</th></tr></thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.id} data-testid="run-row">
              <td>{runName(r)}{r.batch ? ` (run ${r.batch.index + 1} of ${r.batch.total})` : ''}</td>
              <td className="muted">{r.spec.kind === 'fp-finetune' ? 'FP fine-tune' : `w${r.spec.bits}g${r.spec.group}${r.spec.sym ? ' sym' : ''}, ${r.spec.mask ? 'custom mask' : `freeze ${r.spec.scheme}`}`}, {r.spec.steps}×{r.spec.batch}×{r.spec.seq}, lr {r.spec.lr}, loss {Object.entries(r.spec.loss).filter(([, w]) => w > 0).map(([k, w]) => `${k} ${w}`).join(' + ')}, seed {r.spec.seed}</td>
              <td className="muted">{r.context.model}; {r.context.data}</td>
              <td data-testid="run-status">{r.status}{r.error ? <span className="error" data-testid="run-error"> {r.error}</span> : null}</td>
              <td>{r.metrics.length}/{r.spec.steps}</td>
              <td data-testid="run-ppl">{r.summary ? r.summary.evalPpl.toFixed(4) : ''}</td>
              <td>
                {(r.status === 'paused' || (r.status === 'failed' && r.checkpoint)) && <button data-testid="resume" onClick={() => act(() => resumeRun(r.id))}>Resume</button>}
                {r.studentFiles && <button data-testid="export-student" aria-label={`download the student of ${runName(r)} as safetensors`} onClick={() => act(() => exportRun(r.id, 'safetensors'))}>Student (safetensors)</button>}
                {r.studentFiles && r.spec.bits === 4 && <button data-testid="export-student-onnx" aria-label={`download the student of ${runName(r)} as ONNX`} onClick={() => act(() => exportRun(r.id, 'onnx'))}>ONNX</button>}
                {r.studentFiles && <button data-testid="export-student-gguf" aria-label={`download the student of ${runName(r)} as GGUF for llama.cpp`} title="w4 asymmetric → Q4_1, symmetric → Q4_0, w8 → Q8_0, else F16; the fp16 block scales' rounding is reported" onClick={() => act(() => exportRun(r.id, 'gguf'))}>GGUF</button>}
                <button data-testid="export-run-json" aria-label={`download ${runName(r)} as JSON`} onClick={() => saveBlob(`run-${r.id}.json`, new Blob([JSON.stringify({ id: r.id, label: r.label, status: r.status, context: r.context, data: useStudio.getState().data, spec: r.spec, summary: r.summary, metrics: r.metrics }, null, 1)]))}>Run JSON</button>
                <button data-testid="export-recipe" aria-label={`download the PyTorch recipe of ${runName(r)}`} title="recipe.json + kdqat.py (plain PyTorch, DDP under torchrun) + the starting state and data" onClick={() => act(() => downloadRecipe(r.id))}>PyTorch recipe</button>
                {r.status !== 'running' && <button data-testid="delete-run" aria-label={`delete ${runName(r)}`} onClick={() => act(() => removeRun(r.id))}>Delete</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {error && <p className="error" role="alert">{error}</p>}
    </>
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

const pm = (r: McResult | undefined, k: 'acc' | 'acc_norm') => (r ? `${r[k].toFixed(3)} ± ${r[`${k}_stderr`].toFixed(3)}` : '');

/** A task file (lm-evaluation-harness formats) to score every row of the results table on. */
function AccuracyForm() {
  const job = useStudio((s) => s.accuracyJob);
  const progress = useStudio((s) => s.progress);
  // the task and its limit persist with the forms (settings.accuracy); the chosen files cannot
  const form = useStudio((s) => s.settings.accuracy);
  const setForm = (over: Partial<typeof form>) => useStudio.getState().updateSettings((s) => ({ ...s, accuracy: { ...s.accuracy, ...over } }));
  const task: TaskName = TASKS.includes(form.task as TaskName) ? (form.task as TaskName) : 'copa';
  const limit = form.limit;
  const [docs, setDocs] = useState<File | null>(null);
  const [labels, setLabels] = useState<File | null>(null);
  const needsLabels = !!TASK_FILES[task].labels;
  const start = async () => {
    if (!docs) return;
    await runAccuracy({ task, docsText: await docs.text(), labelsText: labels ? await labels.text() : undefined, fileName: docs.name, limit });
  };
  return (
    <div className="form" aria-label="zero-shot accuracy">
      <label>
        task{' '}
        <select value={task} data-testid="acc-task" onChange={(e) => setForm({ task: e.target.value })}>
          {TASKS.map((t) => <option key={t}>{t}</option>)}
        </select>
      </label>
      <label>jsonl ({TASK_FILES[task].docs.split('/').pop()}) <input type="file" accept=".jsonl,.json,.txt" data-testid="acc-docs" onChange={(e) => setDocs(e.target.files?.[0] ?? null)} /></label>
      {needsLabels && <label>labels ({TASK_FILES[task].labels!.split('/').pop()}) <input type="file" data-testid="acc-labels" onChange={(e) => setLabels(e.target.files?.[0] ?? null)} /></label>}
      <label>first <input type="number" value={limit} data-testid="acc-limit" onChange={(e) => setForm({ limit: Number(e.target.value) })} /> documents (0 = all)</label>
      <button data-testid="acc-run" disabled={!docs || job.status === 'running'} onClick={() => void start()}>{job.status === 'running' ? 'Scoring…' : 'Score accuracy'}</button>
      {job.status === 'running' && progress && <span data-testid="acc-progress"><progress max={progress.total} value={progress.done} /> {progress.label}: {progress.done}/{progress.total}</span>}
      {job.status === 'failed' && <span className="error" role="alert" data-testid="acc-error">{job.message}</span>}
    </div>
  );
}

/** FP teacher → PTQ (both, for each bits/group) → students → FP fine-tune, with exports. */
export function ResultsPanel() {
  const model = useStudio((s) => s.model);
  const data = useStudio((s) => s.data);
  const job = useStudio((s) => s.baselinesJob);
  const q = useStudio(useShallow((s) => ({ bits: s.settings.run.bits, group: s.settings.run.group, sym: s.settings.run.sym })));
  // re-render on these; the rows themselves come from currentResults()
  useStudio((s) => s.runs);
  useStudio((s) => s.baselines);
  useStudio((s) => s.accuracy);
  if (!model) return <section className="panel"><p>Load a model first.</p></section>;
  const rows = currentResults();
  const accTasks = [...new Set(rows.flatMap((r) => Object.keys(r.accuracy ?? {})))];
  const keys = [...new Set(rows.map((r) => (r.kind === 'fp' ? null : r.bits !== null ? `w${r.bits}g${r.group}` : null)).filter(Boolean))];
  return (
    <section className="panel" data-testid="results-panel">
      <h2>Results</h2>
      <p className="muted">For each bit width and group: the FP teacher, its PTQ (round-to-nearest and clip search, computed for exactly that setting on the same held-out text), every KD-QAT student, and the FP model fine-tuned with the same recipe (the fair ceiling). "Recovered" is the share of the round-to-nearest perplexity loss won back. {data ? `Held-out text: ${describeEval(data.eval)}.` : ''}</p>
      <div className="form">
        <button data-testid="baselines-run" disabled={job.status === 'running'} onClick={() => void computeBaselines(q)}>Compute PTQ baselines for w{q.bits}g{q.group}{q.sym ? ' sym' : ''}</button>
        {job.status === 'failed' && <span className="error" role="alert">{job.message}</span>}
      </div>
      <ProgressBar />
      {rows.length === 0 ? <p data-testid="results-empty">No results yet: run a distillation (Distill or Compare tab) — the baselines of its bits and group are computed first.</p> : (
        <table className="results" data-testid="results-table">
          <thead><tr>{[...RESULT_COLUMNS, ...accTasks.flatMap((t) => [`${t} acc`, `${t} acc_norm`])].map((h) => <th key={h}>{h}</th>)}</tr></thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i} className={r.kind === 'student' ? '' : 'ref'} data-testid={`result-${r.kind}`} data-bits={r.bits ?? ''} data-ppl={r.ppl}>
                {resultCells(r).map((c, k) => <td key={k}>{c}</td>)}
                {accTasks.flatMap((t) => [<td key={`${t}a`}>{pm(r.accuracy?.[t], 'acc')}</td>, <td key={`${t}n`}>{pm(r.accuracy?.[t], 'acc_norm')}</td>])}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {keys.length > 1 && <p className="muted">Rows are grouped by setting: {keys.join(', ')}; each student is compared with the PTQ of its own bits and group.</p>}
      <AccuracyForm />
      <div className="form">
        <button data-testid="export-results-csv" onClick={downloadResultsCsv}>Export CSV (one row per result, every hyperparameter)</button>
        <button data-testid="export-results-json" onClick={downloadResultsJson}>Export JSON (rows, runs with full specs and metrics, data)</button>
        <button data-testid="export-heldout" onClick={() => void downloadHeldOut()}>Held-out text (for quench eval)</button>
      </div>
      <RunsTable runs={useStudio.getState().runs} />
    </section>
  );
}
