// quench generate --model PATH [--tokenizer PATH] [--prompt S] [--max-tokens N] [--greedy]
//                 [--temperature X] [--top-p P] [--seed S]
import { cliGpu } from './gpu';
import { loadModelFromPath } from '../engine/io/load-node';
import { LlamaModel } from '../engine/model/llama';
import { generate } from '../engine/model/runner';
import { int, num, parse } from './args';

const HELP = `usage: quench generate --model PATH [--tokenizer PATH] [--prompt S] [--max-tokens N] [--greedy]
                       [--temperature X] [--top-p P] [--seed S]
Prints the generated text on stdout (the prompt, then the continuation), streaming.
--model is an HF folder, a .safetensors file inside one, or a llama2.c .bin; --tokenizer is
tokenizer.json or a llama2.c tokenizer.bin when it is not beside the model.
Defaults: --max-tokens 256, --temperature 0.8, --top-p 0.9; --greedy = temperature 0.`;

export async function run(argv: string[]): Promise<number> {
  const a = parse(argv, {
    model: { type: 'string' }, tokenizer: { type: 'string' }, prompt: { type: 'string' }, 'max-tokens': { type: 'string' },
    greedy: { type: 'boolean' }, temperature: { type: 'string' }, 'top-p': { type: 'string' }, seed: { type: 'string' },
  }, HELP);
  if (!a) return 0;
  if (!a.model) throw new Error(`--model is required\n\n${HELP}`);
  const m = await loadModelFromPath(a.model as string, a.tokenizer as string | undefined);
  if (!m.tokenizer) throw new Error(`${m.path}: no tokenizer found beside the model; pass --tokenizer`);
  const tok = m.tokenizer;
  const gpu = await cliGpu();
  try {
    const model = LlamaModel.fromWeights(gpu, m.config, m.weights);
    const prompt = (a.prompt as string | undefined) ?? '';
    const ids = tok.encode(prompt, { bos: true });
    const maxTokens = int(a['max-tokens'], 'max-tokens', 256);
    const temperature = a.greedy ? 0 : num(a.temperature, 'temperature', 0.8);
    // llama2.c counts steps from position 0: the prompt's tokens after BOS use up steps too.
    const budget = Math.max(0, maxTokens - (ids.length - 1));
    process.stdout.write(prompt);
    let prev = ids[ids.length - 1];
    const dec = new TextDecoder();
    const t0 = performance.now();
    const out = await generate(model, ids, {
      maxTokens: budget, temperature, topP: num(a['top-p'], 'top-p', 0.9), seed: int(a.seed, 'seed', Date.now() % 2 ** 31), stopToken: tok.bosId,
      onToken: (id) => {
        process.stdout.write(dec.decode(tok.tokenBytes(prev, id), { stream: true }));
        prev = id;
      },
    });
    process.stdout.write(dec.decode() + '\n');
    const s = (performance.now() - t0) / 1000;
    process.stderr.write(`[${out.length} tokens in ${s.toFixed(2)} s, ${(out.length / s).toFixed(1)} tok/s; weights ${(model.weightBytes() / 1e6).toFixed(2)} MB on the GPU]\n`);
    model.free();
  } finally {
    gpu.destroy();
  }
  return 0;
}
