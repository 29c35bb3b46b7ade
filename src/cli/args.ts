// Small wrapper over node:util parseArgs with per-command help and clear errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(argv: string[], options: Options, help: string): Record<string, string | boolean | string[] | undefined> | null {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(help);
    return null;
  }
  try {
    const { values } = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
    return values as Record<string, string | boolean | string[] | undefined>;
  } catch (e) {
    throw new Error(`${(e as Error).message}\n\n${help}`);
  }
}

export function num(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`--${name} must be a number, got "${v}"`);
  return x;
}

export function int(v: unknown, name: string, dflt: number): number {
  const x = num(v, name, dflt);
  if (!Number.isInteger(x)) throw new Error(`--${name} must be an integer, got "${v}"`);
  return x;
}

/** Progress on stderr, at most every 200 ms, only when stderr is a terminal or QUENCH_PROGRESS=1. */
export function progress(label: string): (done: number, total: number) => void {
  let last = 0;
  const show = process.stderr.isTTY || process.env.QUENCH_PROGRESS === '1';
  return (done, total) => {
    const now = Date.now();
    if (!show || (now - last < 200 && done < total)) return;
    last = now;
    process.stderr.write(`\r${label} ${done}/${total}${done === total ? '\n' : ''}`);
  };
}
