// Data-free distillation (LLM-QAT): training text sampled from the teacher itself, starting from
// BOS at temperature 1 with nucleus 0.95, one seeded sequence after another (sequence i uses seed
// seed + i, so a run's data is reproducible).
import type { Gpu } from '../gpu/runtime';
import type { Tokenizer } from '../io/tokenizer';
import type { LlamaConfig, LlamaWeights } from '../model/config';
import { LlamaModel } from '../model/llama';
import { generate } from '../model/runner';

export async function sampleTeacherDocs(
  gpu: Gpu, cfg: LlamaConfig, weights: LlamaWeights, tok: Tokenizer,
  o: { sequences: number; tokens: number; seed?: number; onProgress?: (done: number, total: number) => void },
): Promise<string[]> {
  if (!(o.sequences >= 1) || !(o.tokens >= 2)) throw new Error(`teacher data: need at least 1 sequence of 2 tokens (got ${o.sequences} x ${o.tokens})`);
  const model = LlamaModel.fromWeights(gpu, cfg, weights);
  const docs: string[] = [];
  try {
    for (let i = 0; i < o.sequences; i++) {
      const ids = await generate(model, [tok.bosId], { maxTokens: Math.min(o.tokens, cfg.maxSeqLen - 1), temperature: 1, topP: 0.95, seed: (o.seed ?? 1000) + i, stopToken: tok.eosId });
      docs.push(tok.decode([tok.bosId, ...ids]));
      o.onProgress?.(i + 1, o.sequences);
    }
  } finally {
    model.free();
  }
  return docs;
}
