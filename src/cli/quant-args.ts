// Shared --bits/--group/--sym/--clip-search handling.
import type { Bits } from '../engine/quant/pack';
import type { PtqConfig } from '../engine/quant/ptq';
import { int } from './args';

export const QUANT_OPTIONS = {
  bits: { type: 'string' },
  group: { type: 'string' },
  sym: { type: 'boolean' },
  'clip-search': { type: 'boolean' },
} as const;

export function ptqFromArgs(a: Record<string, unknown>): PtqConfig | null {
  if (a.bits === undefined) {
    if (a.group !== undefined || a.sym || a['clip-search']) throw new Error('--group, --sym and --clip-search need --bits');
    return null;
  }
  const bits = int(a.bits, 'bits', 4);
  if (![2, 3, 4, 8].includes(bits)) throw new Error(`--bits must be 2, 3, 4 or 8, got ${bits}`);
  const g = a.group === undefined || a.group === 'channel' ? (a.group === 'channel' ? 0 : 32) : int(a.group, 'group', 32);
  if (g < 0 || (g > 0 && g % 8 !== 0 && g !== 0)) throw new Error(`--group must be a multiple of 8 (32, 64, 128) or "channel", got ${a.group}`);
  return { bits: bits as Bits, group: g, sym: !!a.sym, clipSearch: !!a['clip-search'] };
}

export function describePtq(q: PtqConfig): string {
  return `w${q.bits}${q.group ? `g${q.group}` : '-per-channel'} ${q.sym ? 'sym' : 'asym'} ${q.clipSearch ? 'clip-search' : 'min/max RTN'}`;
}
