// The `quench` command line. Each subcommand lives in its own module and is loaded on demand.
// Dawn must be torn down before the process exits (see gpu/node.ts), so every command returns and
// main() exits explicitly.

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  info: { summary: 'show the WebGPU adapter Dawn finds here', load: () => import('./info') },
  kernels: { summary: 'time every matmul variant on this adapter; print the fastest (QUENCH_KERNELS)', load: () => import('./kernels') },
  bench: { summary: 'kernel benchmarks (same as npm run bench)', load: () => import('../../bench/bench') },
  generate: { summary: 'generate text from a model (greedy, temperature, top-p)', load: () => import('./generate') },
  eval: { summary: 'perplexity of a model on a text file', load: () => import('./eval') },
  quantize: { summary: 'post-training quantization to 2/3/4/8 bits; safetensors or ONNX export', load: () => import('./quantize') },
  distill: { summary: 'KD-QAT: distil the FP teacher into its quantized student', load: () => import('./distill') },
  compare: { summary: 'run several freeze schemes with identical seed and data, plus FP and PTQ baselines', load: () => import('./compare') },
  evals: { summary: 'zero-shot commonsense multiple choice (ARC, PIQA, BoolQ, COPA, SIQA)', load: () => import('./evals') },
  pretrain: { summary: 'train a LLaMA from random initialisation (next-token CE)', load: () => import('./pretrain') },
  convert: { summary: 'convert a llama2.c checkpoint to the Hugging Face layout', load: () => import('./convert') },
  export: { summary: 'export a model or student as GGUF (llama.cpp), ONNX or safetensors', load: () => import('./export') },
  compress: { summary: 'prune the teacher to a smaller student, distil it (KD), quantize (PTQ, KD-QAT), with CE-only baselines', load: () => import('./compress') },
  'export-recipe': { summary: 'a run as a PyTorch KD-QAT recipe (kdqat.py; one GPU or torchrun)', load: () => import('./export-recipe') }, 'import-run': { summary: "a recipe's PyTorch output as a Quench run folder", load: () => import('./import-run') },
};

export function registerCommand(name: string, summary: string, load: () => Promise<{ run(argv: string[]): Promise<number> }>): void {
  COMMANDS[name] = { summary, load };
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(10)} ${v.summary}`);
  return `usage: quench <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun \`quench <command> --help\` for a command's options.`;
}

async function main(): Promise<number> {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return cmd ? 0 : 1;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    console.error(`quench: unknown command "${cmd}"\n\n${usage()}`);
    return 2;
  }
  const mod = await entry.load();
  return mod.run(rest);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    console.error(`quench: ${msg}`);
    if (process.env.QUENCH_DEBUG && err instanceof Error) console.error(err.stack);
    process.exit(1);
  },
);
