// Generate from any of the studio's models side by side: the teacher, the PTQ baselines, the
// Quantize tab's model and every distilled student. Prompt, length, temperature and the chosen
// models persist in the store's settings.
import { useEffect, useState } from 'react';
import { useStudio } from './store';
import { engine, refreshModels } from './actions';
import type { ModelEntry } from '../worker/protocol';

type Output = { prompt: string; text: string; info: string; running: boolean; error?: boolean };

const KIND_NAMES: Record<ModelEntry['kind'], string> = { fp: 'teacher', 'ptq-rtn': 'PTQ baseline', 'ptq-clip': 'PTQ baseline', ptq: 'quantized (Quantize tab)', student: 'KD-QAT student' };

export function Playground() {
  const model = useStudio((s) => s.model);
  const models = useStudio((s) => s.models);
  const settings = useStudio((s) => s.settings.playground);
  const [out, setOut] = useState<Record<string, Output>>({});
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    void refreshModels();
  }, []);

  const update = (patch: Partial<typeof settings>) => useStudio.getState().updateSettings((s) => ({ ...s, playground: { ...s.playground, ...patch } }));
  const chosen = models.filter((m) => settings.models.includes(m.key));

  if (!model) return <section className="panel"><h2>Playground</h2><p>Load a model first.</p></section>;

  const toggle = (key: string, on: boolean) => update({ models: on ? [...new Set([...settings.models, key])] : settings.models.filter((k) => k !== key) });

  const go = async () => {
    const { prompt, maxTokens, temperature } = useStudio.getState().settings.playground;
    const todo = chosen;
    setBusy(true);
    setOut(Object.fromEntries(todo.map((m) => [m.key, { prompt, text: '', info: 'waiting…', running: false }])));
    for (const m of todo) {
      let text = '';
      setOut((o) => ({ ...o, [m.key]: { prompt, text, info: 'generating…', running: true } }));
      try {
        const r = await engine().request('generate', { key: m.key, prompt, maxTokens, temperature }, (t) => {
          text += t;
          setOut((o) => ({ ...o, [m.key]: { prompt, text, info: 'generating…', running: true } }));
        });
        setOut((o) => ({ ...o, [m.key]: { prompt, text, info: `${r.tokens} tokens, ${r.tokensPerSec.toFixed(1)} tokens/s`, running: false } }));
      } catch (e) {
        setOut((o) => ({ ...o, [m.key]: { prompt, text, info: (e as Error).message, running: false, error: true } }));
      }
    }
    setBusy(false);
  };

  return (
    <section className="panel">
      <h2>Playground</h2>
      <fieldset className="form" aria-label="models to generate with">
        <legend>Models</legend>
        {models.length === 0 && <span className="muted">No models yet.</span>}
        {models.map((m) => (
          <label key={m.key} title={KIND_NAMES[m.kind]}>
            <input type="checkbox" data-testid={`pg-model-${m.key}`} aria-label={`generate with ${m.label}`} checked={settings.models.includes(m.key)} disabled={busy} onChange={(e) => toggle(m.key, e.target.checked)} /> {m.label}
          </label>
        ))}
        <button onClick={() => void refreshModels()} disabled={busy}>Refresh list</button>
      </fieldset>
      <div className="form">
        <label>prompt <input value={settings.prompt} onChange={(e) => update({ prompt: e.target.value })} size={50} data-testid="prompt" aria-label="prompt" /></label>
        <label>max tokens <input type="number" min={1} value={settings.maxTokens} aria-label="max tokens" onChange={(e) => { const v = Math.floor(Number(e.target.value)); if (Number.isFinite(v) && v >= 1) update({ maxTokens: v }); }} /></label>
        <label>temperature <input type="number" min={0} step={0.1} value={settings.temperature} aria-label="temperature (0 = greedy)" onChange={(e) => { const v = Number(e.target.value); if (Number.isFinite(v) && v >= 0) update({ temperature: v }); }} /></label>
        <button onClick={() => void go()} disabled={busy || chosen.length === 0} data-testid="generate">{busy ? 'Generating…' : chosen.length > 1 ? `Generate with ${chosen.length} models` : 'Generate'}</button>
      </div>
      <div className="charts">
        {chosen.map((m) => {
          const o = out[m.key];
          return (
            <div key={m.key} className="gen">
              <h3>{m.label}</h3>
              <pre data-testid={`gen-${m.key}`} aria-label={`output of ${m.label}`} aria-busy={o?.running ?? false}>{o ? o.prompt + o.text : ''}</pre>
              <p className={o?.error ? 'error' : 'muted'} role={o?.error ? 'alert' : undefined}>{o?.info ?? ''}</p>
            </div>
          );
        })}
      </div>
    </section>
  );
}
