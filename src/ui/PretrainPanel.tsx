// Pretrain: a LLaMA from random initialisation on the current data (next-token cross-entropy,
// AdamW), with a BPE tokenizer trained on the same text; the result becomes the loaded teacher.
import { CartesianGrid, Line, LineChart, Tooltip, XAxis, YAxis } from 'recharts';
import { yAxisLabel } from './chart';
import { useStudio } from './store';
import { downloadModel, paramsLabel, runPretrain, stopTraining } from './actions';
import type { PretrainSpec } from '../worker/protocol';
import { DataPicker, ProgressBar } from './TrainPanels';
import { PRETRAIN_CONFIGS } from '../engine/train/pretrain';
import { paramCount } from '../engine/model/config';

// what each shape is in the project's history; the sizes are computed from the configs below
const NOTES: Record<string, string> = { micro: 'as the bundled teacher', tiny: 'the previous bundled teacher', default: 'an earlier bundled teacher', mini: 'the first bundled teacher' };

/** "micro: dim 48, 4 layers, GQA 6/3, 0.15M parameters at 512 tokens, as the bundled teacher" */
function configLabel(id: string, vocabSize: number): string {
  const c = PRETRAIN_CONFIGS[id];
  const size = paramsLabel(paramCount({ ...c, vocabSize }));
  return `${id}: dim ${c.dim}, ${c.nLayers} layers, GQA ${c.nHeads}/${c.nKvHeads}, ${size} parameters at ${vocabSize} tokens${NOTES[id] ? `, ${NOTES[id]}` : ''}`;
}

export function PretrainPanel() {
  const st = useStudio((s) => s.pretrain);
  // the form lives in the persisted settings: switching tabs or reloading keeps it
  const spec = useStudio((s) => s.settings.pretrain);
  const updateSettings = useStudio((s) => s.updateSettings);
  const setSpec = (next: PretrainSpec) => updateSettings((s) => ({ ...s, pretrain: next }));
  const num = (k: 'vocabSize' | 'steps' | 'batch' | 'seq' | 'lr' | 'seed', label: string, step = 1) => (
    <label>
      {label} <input type="number" step={step} value={spec[k]} data-testid={`pt-${k}`} onChange={(e) => setSpec({ ...spec, [k]: Number(e.target.value) })} />
    </label>
  );
  const running = st.status === 'running';
  const data = st.points.map((p) => ({ step: p.step, loss: +p.loss.toFixed(4) }));
  return (
    <section className="panel">
      <h2>Pretrain from scratch</h2>
      <p className="muted">Trains a new LLaMA (RMSNorm, RoPE, SwiGLU, GQA) on the data below with next-token cross-entropy; the last tenth of its documents is held out for evaluation. When it finishes, the new model replaces the loaded one as the teacher.</p>
      <DataPicker />
      <div className="form">
        <label>
          size{' '}
          <select value={spec.config} data-testid="pt-config" onChange={(e) => setSpec({ ...spec, config: e.target.value })}>
            {Object.keys(PRETRAIN_CONFIGS).map((id) => <option key={id} value={id}>{configLabel(id, spec.tokenizer === 'bpe' ? spec.vocabSize : 259)}</option>)}
          </select>
        </label>
        <label>
          tokenizer{' '}
          <select value={spec.tokenizer} data-testid="pt-tokenizer" onChange={(e) => setSpec({ ...spec, tokenizer: e.target.value as 'bpe' | 'byte' })}>
            <option value="bpe">BPE trained on the data</option>
            <option value="byte">bytes (259 ids)</option>
          </select>
        </label>
        {spec.tokenizer === 'bpe' && num('vocabSize', 'vocabulary')}
        {num('steps', 'steps')}
        {num('batch', 'batch')}
        {num('seq', 'sequence length')}
        {num('lr', 'learning rate', 0.0005)}
        {num('seed', 'seed')}
      </div>
      <div className="form">
        <button data-testid="pt-start" disabled={running} onClick={() => void runPretrain(spec)}>Pretrain</button>
        <button data-testid="pt-stop" disabled={!running} onClick={stopTraining}>Stop (keep what is trained)</button>
        <button data-testid="pt-download" disabled={running || st.status !== 'done'} onClick={() => void downloadModel()}>Download model (HF folder files)</button>
      </div>
      {running && <ProgressBar />}
      {st.status === 'failed' && <p className="error" role="alert" data-testid="pt-error">{st.message}</p>}
      {data.length > 0 && (
        <div data-testid="pt-chart">
        <LineChart width={700} height={220} data={data} margin={{ left: 20, bottom: 20 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="step" label={{ value: 'step', position: 'insideBottom', offset: -10 }} />
          <YAxis label={yAxisLabel('cross-entropy')} />
          <Tooltip />
          <Line dataKey="loss" stroke="#0969da" dot={false} isAnimationActive={false} />
        </LineChart>
        </div>
      )}
      {st.status === 'done' && (
        <dl className="kv" data-testid="pt-result">
          <dt>steps</dt><dd data-testid="pt-steps">{st.result.steps}</dd>
          <dt>final training loss</dt><dd>{st.result.finalLoss.toFixed(4)}</dd>
          <dt>held-out perplexity</dt><dd data-testid="pt-ppl">{st.result.evalPpl.toFixed(2)}</dd>
          <dt>unigram baseline</dt><dd data-testid="pt-unigram">{st.result.unigramPpl.toFixed(2)}</dd>
          <dt>time</dt><dd>{st.result.seconds.toFixed(1)} s ({Math.round(st.result.tokensPerSec)} tokens/s)</dd>
          <dt>now loaded as</dt><dd>{st.result.card.name} ({st.result.card.params.toLocaleString('en-US')} parameters, vocabulary {st.result.card.vocab})</dd>
        </dl>
      )}
    </section>
  );
}
