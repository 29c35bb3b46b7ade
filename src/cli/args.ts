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

/** Progress on stderr: a live line on a terminal, else a line every ~10 s; QUENCH_PROGRESS=0 mutes it. */
export function progress(label: string): (done: number, total: number) => void {
  const tty = !!process.stderr.isTTY;
  const off = process.env.QUENCH_PROGRESS === '0';
  const t0 = Date.now();
  let last = tty ? 0 : t0;
  return (done, total) => {
    const now = Date.now();
    if (off || (now - last < (tty ? 200 : 10_000) && done < total)) return;
    if (!tty && done === total && now - t0 < 10_000) return; // short runs stay quiet in logs
    last = now;
    const eta = done > 0 && done < total ? `, ETA ${(((now - t0) / done) * (total - done) / 1000).toFixed(0)} s` : '';
    process.stderr.write(`${tty ? '\r' : ''}${label} ${done}/${total}${eta}${tty && done < total ? '' : '\n'}`);
  };
}
