import { useEffect } from 'react';
import { useStudio, type Tab } from './store';
import { engine } from '../worker/bridge';
import { GpuPanel } from './GpuPanel';
import { ModelPanel } from './ModelPanel';
import { QuantizePanel } from './QuantizePanel';
import { ComparePanel, DistillPanel } from './TrainPanels';
import { Playground } from './Playground';
import { PretrainPanel } from './PretrainPanel';

const TABS: { id: Tab; label: string }[] = [
  { id: 'model', label: 'Model' },
  { id: 'pretrain', label: 'Pretrain' },
  { id: 'quantize', label: 'Quantize' },
  { id: 'distill', label: 'Distill' },
  { id: 'compare', label: 'Compare' },
  { id: 'playground', label: 'Playground' },
  { id: 'gpu', label: 'GPU' },
];

export function App() {
  const tab = useStudio((s) => s.tab);
  const setTab = useStudio((s) => s.setTab);
  useEffect(() => {
    void engine().init();
  }, []);
  return (
    <div className="app">
      <header>
        <h1>Quench</h1>
        <span className="muted">quantization-aware distillation of LLaMA models, in your browser</span>
      </header>
      <nav role="tablist" aria-label="Studio sections">
        {TABS.map((t) => (
          <button key={t.id} role="tab" aria-selected={tab === t.id} className={tab === t.id ? 'active' : ''} onClick={() => setTab(t.id)}>
            {t.label}
          </button>
        ))}
      </nav>
      <main role="tabpanel">
        {tab === 'gpu' && <GpuPanel />}
        {tab === 'model' && <ModelPanel />}
        {tab === 'pretrain' && <PretrainPanel />}
        {tab === 'quantize' && <QuantizePanel />}
        {tab === 'distill' && <DistillPanel />}
        {tab === 'compare' && <ComparePanel />}
        {tab === 'playground' && <Playground />}
      </main>
    </div>
  );
}
