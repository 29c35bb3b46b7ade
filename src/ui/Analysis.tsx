// The paper's analysis ("Oh! We Freeze", arXiv 2403.18159): squared gradient norms of the latent
// weights per projection type over steps, any runs overlaid (the FP fine-tune is the reference), a
// layer × projection heatmap at any recorded step, code flips, forward error per layer and the loss
// split into its components; PNG and CSV export.
import { useEffect, useMemo, useRef, useState, type CSSProperties } from 'react';
import { CartesianGrid, Legend, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import { yAxisLabel } from './chart';
import { useStudio } from './store';
import { saveBlob } from './actions';
import type { StoredRun } from './db';
import { ChartCard, chartColor } from './ChartCard';
import { exportChartsPng } from './chart-export';
import { PROJECTIONS, type Projection } from '../engine/model/config';
import type { LossWeights, StepMetrics } from '../engine/train/distill';
import type { FreezeMask } from '../engine/train/freeze';
import { LOSS_NAMES, freezeMaskOf } from '../engine/workflow/spec';

const LOSS_KEYS = Object.keys(LOSS_NAMES) as (keyof LossWeights)[];

interface Series {
  key: string;
  name: string;
  color: string;
  dashed?: boolean;
}

type Row = { step: number } & Record<string, number>;

const seriesName = (r: StoredRun) => `${r.label} #${r.id.slice(-5)}`;
const isFp = (r: StoredRun) => r.spec.kind === 'fp-finetune';
const fmt = (v: number) => (v === 0 ? '0' : Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toPrecision(3) : v.toExponential(2));
const tooltipFormat = (v: unknown) => (typeof v === 'number' ? fmt(v) : String(v ?? ''));

function SeriesChart({ title, description, data, series, yLabel, log, testId, width = 380, height = 220 }: { title: string; description?: string; data: Row[]; series: Series[]; yLabel: string; log?: boolean; testId?: string; width?: number; height?: number }) {
  return (
    <ChartCard title={title} description={description} legend={series.map((s) => ({ label: s.name, color: s.color, dashed: s.dashed }))} testId={testId}>
      {data.length === 0 || series.length === 0 ? (
        <p className="muted">Nothing recorded for this chart yet.</p>
      ) : (
        <LineChart width={width} height={height} data={data} margin={{ left: 24, right: 12, top: 4, bottom: 22 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} label={{ value: 'step', position: 'insideBottom', offset: -12 }} />
          <YAxis scale={log ? 'log' : 'auto'} domain={log ? ['auto', 'auto'] : [0, 'auto']} allowDataOverflow={log} tickFormatter={fmt} width={64} label={yAxisLabel(yLabel, -14)} />
          <Tooltip formatter={tooltipFormat} labelFormatter={(l) => `step ${String(l)}`} />
          <Legend verticalAlign="top" />
          {series.map((s) => <Line key={s.key} dataKey={s.key} name={s.name} stroke={s.color} strokeDasharray={s.dashed ? '5 3' : undefined} dot={false} connectNulls isAnimationActive={false} />)}
        </LineChart>
      )}
    </ChartCard>
  );
}

/** Rows by step from per-run values (undefined: not plotted). */
function rowsByStep(sources: { key: string; metrics: StepMetrics[]; value: (m: StepMetrics) => number | undefined }[]): Row[] {
  const byStep = new Map<number, Row>();
  for (const s of sources) {
    for (const m of s.metrics) {
      const v = s.value(m);
      if (v === undefined || !Number.isFinite(v)) continue;
      let row = byStep.get(m.step);
      if (!row) byStep.set(m.step, (row = { step: m.step } as Row));
      row[s.key] = v;
    }
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function gradOf(m: StepMetrics, p: Projection, layer: 'all' | number): number | undefined {
  if (!m.gradSq) return undefined;
  if (layer === 'all') return m.gradSq.reduce((a, row) => a + (row[p] ?? 0), 0);
  return m.gradSq[layer]?.[p];
}

function maskOf(r: StoredRun, layers: number): FreezeMask | null {
  try {
    return freezeMaskOf(r.spec, layers);
  } catch {
    return null;
  }
}

function csvCell(v: string | number | undefined): string {
  if (v === undefined) return '';
  const s = String(v);
  return /[,"\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One row per run × step with every metric; gradSq flattened as gradSq.<layer>.<proj>. */
export function metricsCsv(runs: StoredRun[]): string {
  const layers = Math.max(0, ...runs.flatMap((r) => r.metrics.map((m) => Math.max(m.gradSq?.length ?? 0, m.hiddenRelErr?.length ?? 0, m.attnOutRelErr?.length ?? 0))));
  const range = Array.from({ length: layers }, (_, l) => l);
  const header = ['run', 'label', 'kind', 'scheme', 'bits', 'group', 'status', 'step', 'loss', 'lr', 'gradNorm', 'tokensPerSec', ...LOSS_KEYS.map((k) => `losses.${k}`), ...range.map((l) => `hiddenRelErr.${l}`), ...range.map((l) => `attnOutRelErr.${l}`), ...PROJECTIONS.map((p) => `codeFlips.${p}`), ...range.flatMap((l) => PROJECTIONS.map((p) => `gradSq.${l}.${p}`))];
  const lines = [header.join(',')];
  for (const r of runs) {
    for (const m of r.metrics) {
      const cells: (string | number | undefined)[] = [
        r.id, r.label, r.spec.kind, r.spec.mask ? 'custom' : r.spec.scheme, r.spec.bits, r.spec.group, r.status, m.step, m.loss, m.lr, m.gradNorm, m.tokensPerSec,
        ...LOSS_KEYS.map((k) => m.losses?.[k]),
        ...range.map((l) => m.hiddenRelErr?.[l]),
        ...range.map((l) => m.attnOutRelErr?.[l]),
        ...PROJECTIONS.map((p) => m.codeFlips?.[p]),
        ...range.flatMap((l) => PROJECTIONS.map((p) => m.gradSq?.[l]?.[p])),
      ];
      lines.push(cells.map(csvCell).join(','));
    }
  }
  return lines.join('\n') + '\n';
}

export function AnalysisPanel() {
  const runs = useStudio((s) => s.runs);
  return <AnalysisView runs={runs} />;
}

/** The analysis of the given runs (AnalysisPanel passes the store's). */
export function AnalysisView({ runs }: { runs: StoredRun[] }) {
  const [picked, setPicked] = useState<string[] | null>(null);
  const [layer, setLayer] = useState<'all' | number>('all');
  const [focusId, setFocusId] = useState<string | null>(null);
  const [stepIdx, setStepIdx] = useState<number | null>(null);
  const [vsFp, setVsFp] = useState(false);
  const [exportError, setExportError] = useState<string | null>(null);
  const chartsRef = useRef<HTMLDivElement>(null);

  const withMetrics = useMemo(() => runs.filter((r) => r.metrics.length > 0), [runs]);
  const selected = useMemo(() => withMetrics.filter((r) => (picked ? picked.includes(r.id) : true)), [withMetrics, picked]);
  const colorOf = useMemo(() => new Map(runs.map((r, i) => [r.id, chartColor(i)])), [runs]);
  const keyOf = useMemo(() => new Map(runs.map((r, i) => [r.id, `r${i}`])), [runs]);
  const layers = useMemo(() => Math.max(0, ...withMetrics.flatMap((r) => r.metrics.map((m) => m.gradSq?.length ?? m.hiddenRelErr?.length ?? 0))), [withMetrics]);
  const focus = useMemo(() => {
    const hasGrad = (r: StoredRun) => r.metrics.some((m) => m.gradSq);
    return withMetrics.find((r) => r.id === focusId) ?? [...selected].reverse().find((r) => !isFp(r) && hasGrad(r)) ?? [...selected].reverse().find(hasGrad) ?? selected.at(-1) ?? withMetrics.at(-1) ?? null;
  }, [withMetrics, selected, focusId]);
  const layerShown = layer === 'all' || layer < layers ? layer : 'all';
  useEffect(() => {
    if (layer !== 'all' && layer >= layers && layers > 0) setLayer('all');
  }, [layer, layers]);

  const projCharts = useMemo(
    () =>
      PROJECTIONS.map((p) => {
        const series: Series[] = selected.map((r) => {
          const any = r.metrics.some((m) => (gradOf(m, p, layerShown) ?? 0) > 0);
          const recorded = r.metrics.some((m) => m.gradSq);
          return { key: keyOf.get(r.id)!, name: `${seriesName(r)}${recorded && !any ? ' (frozen)' : ''}`, color: colorOf.get(r.id)!, dashed: isFp(r) };
        });
        // a log axis takes positive values only: a frozen projection (0) is not drawn
        const data = rowsByStep(selected.map((r) => ({ key: keyOf.get(r.id)!, metrics: r.metrics, value: (m) => { const v = gradOf(m, p, layerShown); return v !== undefined && v > 0 ? v : undefined; } })));
        return { p, series, data };
      }),
    [selected, layerShown, keyOf, colorOf],
  );

  // the chosen run's detailed steps (heatmap, step slider)
  const detailed = useMemo(() => (focus ? focus.metrics.filter((m) => m.gradSq) : []), [focus]);
  const idx = detailed.length === 0 ? 0 : Math.min(stepIdx ?? detailed.length - 1, detailed.length - 1);
  const shown = detailed[idx];
  const fpRef = useMemo(() => selected.find((r) => isFp(r) && r.id !== focus?.id && r.metrics.some((m) => m.gradSq)) ?? null, [selected, focus]);
  const fpAt = useMemo(() => {
    if (!fpRef || !shown) return null;
    let best: StepMetrics | null = null;
    for (const m of fpRef.metrics) if (m.gradSq && (!best || Math.abs(m.step - shown.step) < Math.abs(best.step - shown.step))) best = m;
    return best;
  }, [fpRef, shown]);

  if (runs.length === 0 || withMetrics.length === 0) {
    return (
      <section className="panel" data-testid="analysis-panel">
        <h2>Analysis</h2>
        <p className="muted" data-testid="analysis-empty">No metrics yet: run a distillation first — the Distill and Compare tabs.</p>
      </section>
    );
  }

  const toggleRun = (id: string, on: boolean) => {
    const cur = selected.map((r) => r.id);
    setPicked(on ? [...new Set([...cur, id])] : cur.filter((x) => x !== id));
  };

  const mask = focus && shown?.gradSq ? maskOf(focus, shown.gradSq.length) : null;
  const ratioMode = vsFp && !!fpAt?.gradSq;
  const cellValue = (l: number, p: Projection): number | null => {
    const v = shown?.gradSq?.[l]?.[p];
    if (v === undefined) return null;
    if (!ratioMode) return v;
    const ref = fpAt!.gradSq![l]?.[p];
    return ref && ref > 0 ? v / ref : null;
  };
  const isFrozen = (l: number, p: Projection) => (mask ? mask[l]?.[p] === true : shown?.gradSq?.[l]?.[p] === 0);
  const heatValues = shown?.gradSq ? shown.gradSq.flatMap((_, l) => PROJECTIONS.map((p) => (isFrozen(l, p) ? null : cellValue(l, p)))).filter((v): v is number => v !== null && v > 0) : [];
  const logMin = Math.log10(Math.min(...heatValues, Infinity));
  const logMax = Math.log10(Math.max(...heatValues, 0));
  const maxAbsLogRatio = Math.max(1e-9, ...heatValues.map((v) => Math.abs(Math.log10(v))));
  const cellStyle = (v: number | null): CSSProperties | undefined => {
    if (v === null || !(v > 0)) return undefined;
    if (ratioMode) {
      const t = Math.abs(Math.log10(v)) / maxAbsLogRatio;
      return { background: v >= 1 ? `rgba(207,34,46,${(0.1 + 0.7 * t).toFixed(3)})` : `rgba(9,105,218,${(0.1 + 0.7 * t).toFixed(3)})` };
    }
    const t = logMax > logMin ? (Math.log10(v) - logMin) / (logMax - logMin) : 1;
    return { background: `rgba(9,105,218,${(0.08 + 0.8 * t).toFixed(3)})`, color: t > 0.6 ? 'white' : undefined };
  };

  const flipsSeries: Series[] = focus && !isFp(focus) ? PROJECTIONS.filter((p) => focus.metrics.some((m) => m.codeFlips?.[p] !== undefined)).map((p, i) => ({ key: p, name: p, color: chartColor(i) })) : [];
  const flipsData = focus ? rowsByStep(flipsSeries.map((s) => ({ key: s.key, metrics: focus.metrics, value: (m) => { const f = m.codeFlips?.[s.key as Projection]; return f === undefined ? undefined : 100 * f; } }))) : [];
  const errLayers = focus ? Math.max(0, ...focus.metrics.map((m) => m.hiddenRelErr?.length ?? 0)) : 0;
  const errSeries: Series[] = Array.from({ length: errLayers }, (_, l) => ({ key: `l${l}`, name: `layer ${l}`, color: chartColor(l) }));
  const errData = focus ? rowsByStep(errSeries.map((s, l) => ({ key: s.key, metrics: focus.metrics, value: (m) => m.hiddenRelErr?.[l] }))) : [];
  const lossKeys = focus ? LOSS_KEYS.filter((k) => (focus.spec.loss[k] ?? 0) > 0) : [];
  const lossSeries: Series[] = lossKeys.map((k, i) => ({ key: k, name: `${LOSS_NAMES[k]} (weight ${focus!.spec.loss[k]})`, color: chartColor(i) }));
  const lossData = focus ? rowsByStep(lossKeys.map((k) => ({ key: k, metrics: focus.metrics, value: (m) => m.losses?.[k] }))) : [];

  const layerName = layerShown === 'all' ? 'summed over layers' : `layer ${layerShown}`;
  const exportPng = async () => {
    setExportError(null);
    try {
      if (chartsRef.current) await exportChartsPng(chartsRef.current, 'quench-analysis.png');
    } catch (e) {
      setExportError((e as Error).message);
    }
  };
  const exportCsv = () => saveBlob('quench-metrics.csv', new Blob([metricsCsv(selected.length ? selected : withMetrics)], { type: 'text/csv' }));

  return (
    <section className="panel" data-testid="analysis-panel">
      <h2>Analysis</h2>
      <p>
        What to look for: which projections carry the largest gradient norms relative to the FP reference (the FP fine-tune run, dashed) — the paper (“Oh! We Freeze”, arXiv 2403.18159) finds o_proj and v_proj most fragile under quantization — and which projections’ codes flip most during training. Those are the candidates to freeze or to protect.
      </p>
      <fieldset className="form" aria-label="runs to compare">
        <legend>Runs</legend>
        {runs.map((r) => {
          const has = r.metrics.length > 0;
          return (
            <label key={r.id} style={{ color: has ? undefined : '#8c959f' }}>
              <input type="checkbox" data-testid={`analysis-run-${r.id}`} aria-label={`compare run ${seriesName(r)}`} disabled={!has} checked={has && selected.some((x) => x.id === r.id)} onChange={(e) => toggleRun(r.id, e.target.checked)} />{' '}
              <span style={{ borderBottom: `3px ${isFp(r) ? 'dashed' : 'solid'} ${colorOf.get(r.id)}` }}>{seriesName(r)}</span> <span className="muted">({has ? `${r.metrics.length} steps, ${r.status}` : 'no metrics yet'})</span>
            </label>
          );
        })}
        <button onClick={() => setPicked(null)}>All</button>
        <button onClick={() => setPicked([])}>None</button>
      </fieldset>
      <div className="form">
        <label>
          layer{' '}
          <select data-testid="analysis-layer" aria-label="layer shown in the gradient charts" value={String(layerShown)} onChange={(e) => setLayer(e.target.value === 'all' ? 'all' : Number(e.target.value))}>
            <option value="all">all layers (sum)</option>
            {Array.from({ length: layers }, (_, l) => <option key={l} value={l}>layer {l}</option>)}
          </select>
        </label>
        <button data-testid="analysis-export-png" onClick={() => void exportPng()}>Export charts as PNG</button>
        <button data-testid="analysis-export-csv" onClick={exportCsv}>Export metrics CSV</button>
        {exportError && <span className="error" role="alert">{exportError}</span>}
      </div>
      <div ref={chartsRef}>
        <h3>Squared gradient norm ‖∇W‖² per projection ({layerName})</h3>
        <div className="charts">
          {projCharts.map(({ p, series, data }) => (
            <SeriesChart key={p} testId={`analysis-proj-chart-${p}`} title={`${p}_proj: ‖∇W‖² (${layerName})`} description={`squared gradient norm of the ${p} projection over steps, log scale, one line per run`} data={data} series={series} yLabel="‖∇W‖² (log)" log width={360} height={220} />
          ))}
        </div>
        <h3>
          Chosen run{' '}
          <select data-testid="analysis-focus" aria-label="run shown in the heatmap and the charts below" value={focus?.id ?? ''} onChange={(e) => { setFocusId(e.target.value); setStepIdx(null); }}>
            {withMetrics.map((r) => <option key={r.id} value={r.id}>{seriesName(r)}</option>)}
          </select>
        </h3>
        <h4>Squared gradient norm, layer × projection{shown ? ` at step ${shown.step}` : ''}{ratioMode ? ` ÷ FP reference (${fpRef ? seriesName(fpRef) : ''}, step ${fpAt!.step})` : ''}</h4>
        {detailed.length === 0 ? (
          <p className="muted">This run has no gradient norms recorded yet (they come every metricsEvery steps).</p>
        ) : (
          <>
            <div className="form">
              <label>
                step{' '}
                <input type="range" data-testid="analysis-step" aria-label="step shown in the heatmap" min={0} max={detailed.length - 1} step={1} value={idx} aria-valuetext={`step ${shown.step}`} onChange={(e) => setStepIdx(Number(e.target.value))} />{' '}
                <output>{shown.step}</output> <span className="muted">({idx + 1} of {detailed.length} recorded)</span>
              </label>
              <label title={fpRef ? undefined : 'select an FP fine-tune run to compare against'}>
                <input type="checkbox" aria-label="show the ratio to the FP reference" disabled={!fpRef} checked={ratioMode} onChange={(e) => setVsFp(e.target.checked)} /> ratio to the FP reference
              </label>
            </div>
            <table className="results heat" data-testid="analysis-heatmap" aria-label={`squared gradient norm per layer and projection at step ${shown.step}`}>
              <thead><tr><th scope="col">layer</th>{PROJECTIONS.map((p) => <th key={p} scope="col">{p}</th>)}</tr></thead>
              <tbody>
                {shown.gradSq!.map((_, l) => (
                  <tr key={l}>
                    <th scope="row">{l}</th>
                    {PROJECTIONS.map((p) => {
                      if (isFrozen(l, p)) return <td key={p} className="muted" data-frozen="true">frozen</td>;
                      const v = cellValue(l, p);
                      return <td key={p} style={cellStyle(v)} title={v === null ? '' : v.toExponential(4)}>{v === null ? '–' : ratioMode ? `×${fmt(v)}` : v.toExponential(1)}</td>;
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
            <p className="muted">{ratioMode ? 'Red: larger than in the FP reference, blue: smaller (log scale).' : 'Darker = larger (log scale within this table).'}</p>
          </>
        )}
        <div className="charts">
          {focus && isFp(focus) ? (
            <p className="muted">The FP fine-tune has no quantization codes: choose a KD-QAT run for code flips.</p>
          ) : (
            <SeriesChart title={`Code flips per projection (${focus ? seriesName(focus) : ''})`} description="percentage of quantization codes changed since the start, per projection" data={flipsData} series={flipsSeries} yLabel="codes changed (%)" width={440} />
          )}
          <SeriesChart title={`Forward error per layer (${focus ? seriesName(focus) : ''})`} description="relative squared error of each layer's hidden state against the teacher, over steps" data={errData} series={errSeries} yLabel="‖h_s−h_t‖²/‖h_t‖²" width={440} />
          <SeriesChart title={`Loss components (${focus ? seriesName(focus) : ''}, unweighted)`} description="each loss term with non-zero weight, over steps" data={lossData} series={lossSeries} yLabel="loss (nats / MSE)" width={440} />
        </div>
      </div>
    </section>
  );
}
