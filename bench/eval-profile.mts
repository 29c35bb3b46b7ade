// npx tsx bench/eval-profile.mts [--docs N] [--fp] [--batch-tokens N]
// Where `quench eval`'s GPU time goes: the eval bench's model and documents (evalBenchInputs:
// stories260K quantized w4g32, --fp: FP32; the first N of tinystories_val_800.txt), one
// sequenceNlls pass (batches of at most --batch-tokens padded tokens, default EVAL_BATCH_TOKENS)
// profiled with timestamp queries (each dispatch in its own timed pass), per kernel entry, largest
// first; beside the same pass's wall time unprofiled. For deciding what to speed up in evaluation; not a timing.
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createNodeGpu, repoRoot } from '../src/engine/gpu/node';
import { LlamaModel } from '../src/engine/model/llama';
import { EVAL_BATCH_TOKENS, sequenceNlls } from '../src/engine/model/runner';
import { evalBenchInputs } from './eval.bench';
import type { Gpu } from '../src/engine/gpu/runtime';

const { values: a } = parseArgs({ options: { docs: { type: 'string', default: '16' }, fp: { type: 'boolean', default: false }, 'batch-tokens': { type: 'string', default: String(EVAL_BATCH_TOKENS) } } });
const S = join(repoRoot, '../shared/data/models/stories260K'), textFile = join(repoRoot, '../shared/data/text/tinystories_val_800.txt');
if (!existsSync(join(S, 'stories260K.bin')) || !existsSync(textFile)) {
  console.log(`eval-profile: ${S} or ${textFile} not found (../shared/data absent?); nothing to profile`);
  process.exit(0);
}
const gpu = await createNodeGpu();
const { cfg, weights, quantized: q4, seqs, tokens } = evalBenchInputs(Number(a.docs));
const quantized = a.fp ? undefined : q4;
const model = LlamaModel.fromWeights(gpu, cfg, weights, quantized ? { quantized } : {});
const mt = Number(a['batch-tokens']);
await sequenceNlls(model, seqs, { maxTokens: mt }); // compile and warm
const counts = new Map<string, number>();
const run = gpu.run.bind(gpu);
(gpu as { run: Gpu['run'] }).run = (spec, args) => {
  const k = `${spec.shader}:${spec.entry ?? 'main'}`;
  counts.set(k, (counts.get(k) ?? 0) + 1);
  run(spec, args);
};
const t0 = performance.now();
await sequenceNlls(model, seqs, { maxTokens: mt });
const wall = performance.now() - t0;
const n = [...counts.values()].reduce((x, c) => x + c, 0);
console.log(`eval, stories260K ${quantized ? 'w4g32' : 'fp32'}, ${seqs.length} docs, ${tokens} tokens: ${wall.toFixed(1)} ms wall (${((tokens / wall) * 1000).toFixed(0)} tokens/s), ${n} dispatches`);
counts.clear();
gpu.startProfile();
await sequenceNlls(model, seqs, { maxTokens: mt });
const prof = (await gpu.endProfile()) ?? new Map<string, { ns: number; count: number }>();
const rows = [...counts.entries()].sort((x, y) => (prof.get(y[0])?.ns ?? 0) - (prof.get(x[0])?.ns ?? 0));
console.log(`${'kernel'.padEnd(36)} ${'calls'.padStart(6)}  ${prof.size ? 'GPU ms' : '(no timestamp queries on this adapter)'}`);
for (const [k, c] of rows) console.log(`${k.padEnd(36)} ${String(c).padStart(6)}  ${prof.get(k) ? (prof.get(k)!.ns / 1e6).toFixed(2) : ''}`);
if (prof.size) console.log(`${'all kernels'.padEnd(36)} ${String(n).padStart(6)}  ${([...prof.values()].reduce((x, r) => x + r.ns, 0) / 1e6).toFixed(2)} (each dispatch in its own timed pass)`);
gpu.destroy();
