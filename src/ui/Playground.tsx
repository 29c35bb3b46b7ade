import { useState } from 'react';
import { useStudio } from './store';
import { engine } from '../worker/bridge';

type Which = 'teacher' | 'ptq' | 'student';
const TITLES: Record<Which, string> = { teacher: 'Teacher (FP32)', ptq: 'PTQ student (round-to-nearest)', student: 'Distilled student (last run)' };

export function Playground() {
  const model = useStudio((s) => s.model);
  const [prompt, setPrompt] = useState('Once upon a time');
  const [maxTokens, setMax] = useState(64);
  const [temperature, setTemp] = useState(0);
  const [out, setOut] = useState<Record<Which, { text: string; info: string }>>({ teacher: { text: '', info: '' }, ptq: { text: '', info: '' }, student: { text: '', info: '' } });
  const [busy, setBusy] = useState(false);
  if (!model) return <section className="panel"><p>Load a model first.</p></section>;
  const go = async () => {
    setBusy(true);
    const fresh = { teacher: { text: '', info: '' }, ptq: { text: '', info: '' }, student: { text: '', info: '' } };
    setOut(fresh);
    for (const w of ['teacher', 'ptq', 'student'] as Which[]) {
      let text = '';
      try {
        const r = await engine().request('generate', { which: w, prompt, maxTokens, temperature }, (t) => {
          text += t;
          setOut((o) => ({ ...o, [w]: { text, info: '' } }));
        });
        setOut((o) => ({ ...o, [w]: { text, info: r.available ? `${r.tokens} tokens, ${r.tokensPerSec.toFixed(1)} tokens/s` : w === 'ptq' ? 'quantize the model first' : 'run a distillation first' } }));
      } catch (e) {
        setOut((o) => ({ ...o, [w]: { text, info: (e as Error).message } }));
      }
    }
    setBusy(false);
  };
  return (
    <section className="panel">
      <h2>Playground</h2>
      <div className="form">
        <label>prompt <input value={prompt} onChange={(e) => setPrompt(e.target.value)} size={50} data-testid="prompt" /></label>
        <label>max tokens <input type="number" value={maxTokens} onChange={(e) => setMax(Number(e.target.value))} /></label>
        <label>temperature <input type="number" step={0.1} value={temperature} onChange={(e) => setTemp(Number(e.target.value))} /></label>
        <button onClick={() => void go()} disabled={busy} data-testid="generate">{busy ? 'Generating…' : 'Generate'}</button>
      </div>
      <div className="charts">
        {(['teacher', 'ptq', 'student'] as Which[]).map((w) => (
          <div key={w} className="gen">
            <h3>{TITLES[w]}</h3>
            <pre data-testid={`gen-${w}`}>{prompt}{out[w].text}</pre>
            <p className="muted">{out[w].info}</p>
          </div>
        ))}
      </div>
    </section>
  );
}
