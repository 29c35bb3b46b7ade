// Freeze schemes: a mask over layer × projection. A frozen projection keeps its quantized value
// for the whole run. Presets: none, ov (the "Oh! We Freeze" paper's), qk, qkv, attention, mlp;
// or a custom comma list of projections ("q,k,v"), applied to every layer.
import { PROJECTIONS, type Projection } from '../model/config';

export type FreezeMask = Record<Projection, boolean>[]; // [layer][proj]

export const FREEZE_PRESETS: Record<string, Projection[]> = {
  none: [],
  ov: ['o', 'v'],
  qk: ['q', 'k'],
  qkv: ['q', 'k', 'v'],
  attention: ['q', 'k', 'v', 'o'],
  mlp: ['gate', 'up', 'down'],
};

export function parseFreeze(spec: string, nLayers: number): FreezeMask {
  const s = spec.trim();
  let projs: Projection[];
  if (s in FREEZE_PRESETS) projs = FREEZE_PRESETS[s];
  else {
    projs = s.split(',').map((x) => x.trim()).filter(Boolean) as Projection[];
    const bad = projs.filter((p) => !PROJECTIONS.includes(p));
    if (bad.length) throw new Error(`--freeze: unknown projection(s) ${bad.join(', ')}; use a preset (${Object.keys(FREEZE_PRESETS).join(', ')}) or a list of ${PROJECTIONS.join(', ')}`);
  }
  return Array.from({ length: nLayers }, () => Object.fromEntries(PROJECTIONS.map((p) => [p, projs.includes(p)])) as Record<Projection, boolean>);
}

export function describeFreeze(m: FreezeMask): string {
  const first = PROJECTIONS.filter((p) => m[0]?.[p]);
  const uniform = m.every((l) => PROJECTIONS.every((p) => l[p] === m[0][p]));
  if (!uniform) return 'custom per-layer';
  const preset = Object.entries(FREEZE_PRESETS).find(([, v]) => v.length === first.length && v.every((p) => first.includes(p)));
  return preset ? preset[0] : first.join(',');
}
