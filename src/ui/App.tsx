import { useEffect } from 'react';
import { useStudio, type Tab } from './store';
import { engine } from './actions';
import { GpuPanel } from './GpuPanel';
import { ModelPanel } from './ModelPanel';
import { QuantizePanel } from './QuantizePanel';
import { ComparePanel, DistillPanel, ResultsPanel } from './TrainPanels';
import { AnalysisPanel } from './Analysis';
import { CompressPanel } from './CompressPanel';
import { Playground } from './Playground';
import { PretrainPanel } from './PretrainPanel';

const TABS: { id: Tab; label: string }[] = [
  { id: 'model', label: 'Model' },
  { id: 'pretrain', label: 'Pretrain' },
  { id: 'compress', label: 'Compress' },
  { id: 'quantize', label: 'Quantize' },
  { id: 'distill', label: 'Distill' },
  { id: 'compare', label: 'Compare' },
  { id: 'results', label: 'Results' },
  { id: 'analysis', label: 'Analysis' },
  { id: 'playground', label: 'Playground' },
  { id: 'gpu', label: 'GPU' },
];

export function App() {
  const tab = useStudio((s) => s.tab);
  const setTab = useStudio((s) => s.setTab);
  const note = useStudio((s) => s.restoreNote);
  const notice = useStudio((s) => s.notice);
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
          <button key={t.id} role="tab" data-testid={`tab-${t.id}`} aria-selected={tab === t.id} className={tab === t.id ? 'active' : ''} onClick={() => setTab(t.id)}>
            {t.label}
          </button>
        ))}
      </nav>
      {note && <p className="muted" role="status" data-testid="restore-note">{note}</p>}
      {notice && <p className="muted" role="status" data-testid="notice">{notice} <button aria-label="dismiss" onClick={() => useStudio.getState().setNotice(null)}>×</button></p>}
      <main role="tabpanel">
        {tab === 'gpu' && <GpuPanel />}
        {tab === 'model' && <ModelPanel />}
        {tab === 'pretrain' && <PretrainPanel />}
        {tab === 'compress' && <CompressPanel />}
        {tab === 'quantize' && <QuantizePanel />}
        {tab === 'distill' && <DistillPanel />}
        {tab === 'compare' && <ComparePanel />}
        {tab === 'results' && <ResultsPanel />}
        {tab === 'analysis' && <AnalysisPanel />}
        {tab === 'playground' && <Playground />}
      </main>
    </div>
  );
}
