import { useEffect, useRef, useState } from 'react';
import { useStudio } from './store';
import { defaultModelCard, defaultModelLabel, loadDefaultModel, loadModelFiles, loadTinyModel } from './actions';
import { ProgressBar } from './TrainPanels';

const fmt = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n));

async function filesFromDrop(dt: DataTransfer): Promise<File[]> {
  const out: File[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) out.push(await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej)));
    else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      const entries = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
      for (const e of entries) await walk(e);
    }
  };
  const items = [...dt.items].map((i) => i.webkitGetAsEntry()).filter((e): e is FileSystemEntry => !!e);
  if (items.length) for (const e of items) await walk(e);
  else out.push(...dt.files);
  return out;
}

const mib = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);

export function ModelPanel() {
  const model = useStudio((s) => s.model);
  const error = useStudio((s) => s.modelError);
  const loading = useStudio((s) => s.modelLoading);
  const gpu = useStudio((s) => s.gpu);
  const byteTok = useStudio((s) => s.settings.byteTokenizer);
  const [over, setOver] = useState(false);
  // the bundled model's size, from its card (the button reads without it until the card arrives)
  const [defaultLabel, setDefaultLabel] = useState(() => defaultModelLabel(null));
  useEffect(() => {
    let live = true;
    void defaultModelCard().then((c) => live && setDefaultLabel(defaultModelLabel(c)));
    return () => {
      live = false;
    };
  }, []);
  const input = useRef<HTMLInputElement>(null);
  const folder = useRef<HTMLInputElement>(null);
  return (
    <section className="panel">
      <h2>Model</h2>
      <div
        className={`dropzone ${over ? 'over' : ''}`}
        data-testid="dropzone"
        tabIndex={0}
        role="button"
        aria-label="Drop a model here or press Enter to choose files"
        onKeyDown={(e) => e.key === 'Enter' && input.current?.click()}
        onClick={() => input.current?.click()}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          void filesFromDrop(e.dataTransfer).then((f) => loadModelFiles(f));
        }}
      >
        {loading ? 'Loading…' : 'Drop a Hugging Face LLaMA folder (config.json, *.safetensors, tokenizer.json) a llama2.c .bin with its tokenizer.bin, or a llama.cpp .gguf — or click to choose files'}
        <input ref={input} type="file" multiple hidden data-testid="file-input" aria-label="model files" onChange={(e) => {
          // the same files chosen again (after a fix elsewhere) must load again
          const files = e.target.files ? [...e.target.files] : [];
          e.target.value = '';
          if (files.length) void loadModelFiles(files);
        }} />
      </div>
      <div className="form">
        <button data-testid="choose-folder" disabled={loading} onClick={() => folder.current?.click()}>Choose a model folder…</button>
        {/* a whole folder (sharded safetensors + index + tokenizer files); its files are read by slices */}
        <input ref={folder} type="file" hidden data-testid="folder-input" aria-label="model folder" {...{ webkitdirectory: '', directory: '' }} onChange={(e) => {
          const files = e.target.files ? [...e.target.files].filter((f) => !f.webkitRelativePath || f.webkitRelativePath.split('/').length === 2) : [];
          e.target.value = '';
          // the model is named after its folder
          if (files.length) void loadModelFiles(files, { name: files[0].webkitRelativePath.split('/')[0] || undefined });
        }} />
        <button data-testid="load-default" disabled={loading} onClick={() => void loadDefaultModel()}>Bundled default model ({defaultLabel})</button>
        <button data-testid="load-tiny" disabled={loading} onClick={() => void loadTinyModel()}>Tiny random model (instant, for trying the controls)</button>
        <label><input type="checkbox" data-testid="byte-tokenizer" aria-label="use a byte tokenizer when the model comes without one" checked={byteTok} onChange={(e) => useStudio.getState().updateSettings((s) => ({ ...s, byteTokenizer: e.target.checked }))} /> byte tokenizer when a model comes without one</label>
      </div>
      {loading && <ProgressBar />}
      {error && <p className="error" role="alert" data-testid="model-error">{error}</p>}
      {model && <p className="muted">Next: Quantize to see the damage, then Distill or Compare to repair it; Results shows the whole story.</p>}
      {model && (
        <dl className="kv" data-testid="model-card">
          <dt>name</dt><dd data-testid="model-name">{model.name}</dd>
          {model.about && <><dt>about</dt><dd data-testid="model-about">{model.about}</dd></>}
          <dt>format</dt><dd>{model.format}</dd>
          <dt>architecture</dt><dd>LLaMA: RMSNorm, RoPE, {model.kvHeads < model.heads ? `GQA ${model.heads}/${model.kvHeads}` : 'MHA'}, SwiGLU, {model.tied ? 'tied' : 'separate'} classifier</dd>
          <dt>layers</dt><dd>{model.layers}</dd>
          <dt>heads / KV heads</dt><dd>{model.heads} / {model.kvHeads}</dd>
          <dt>hidden sizes</dt><dd>{model.dim} (model), {model.hidden} (MLP)</dd>
          <dt>vocabulary</dt><dd>{model.vocab}{model.hasTokenizer ? '' : ' (byte tokenizer)'}</dd>
          <dt>tokenizer</dt><dd data-testid="model-tokenizer">{model.tokenizer}</dd>
          <dt>max sequence</dt><dd>{model.maxSeq}</dd>
          <dt>parameters</dt><dd data-testid="model-params">{fmt(model.params)}</dd>
          <dt>dtypes</dt><dd>{model.dtypes.join(', ')}</dd>
          <dt>KD-QAT memory (estimate)</dt><dd data-testid="model-memory">{mib(model.memory.bytes.total)} ({model.memory.perParam.toFixed(1)} bytes per parameter): teacher {mib(model.memory.bytes.teacher)}, student {mib(model.memory.bytes.weights)}, gradients {mib(model.memory.bytes.gradients)}, optimizer {mib(model.memory.bytes.optimizer)}, activations {mib(model.memory.bytes.activations)}, logits {mib(model.memory.bytes.logits)} — {model.memory.at}{model.memory.refusal ? <strong className="error"> · will not fit: {model.memory.refusal}</strong> : ''}</dd>
          <dt>bytes on GPU (fp32)</dt><dd>{(model.gpuBytes / 2 ** 20).toFixed(2)} MiB{gpu ? ` of ${(gpu.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB per binding` : ''}</dd>
        </dl>
      )}
    </section>
  );
}
