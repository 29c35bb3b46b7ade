import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './node';

// Hand-unrolled kernels are written by generators (shaders/NAME.gen.mjs > shaders/NAME.wgsl): an edit
// to one side only would run kernels the generator no longer describes.
describe('generated shaders', () => {
  const dir = join(repoRoot, 'shaders');
  for (const gen of readdirSync(dir).filter((f) => f.endsWith('.gen.mjs'))) {
    it(`shaders/${gen.replace('.gen.mjs', '.wgsl')} is what shaders/${gen} writes`, () => {
      const out = execFileSync(process.execPath, [join(dir, gen)], { encoding: 'utf8' });
      expect(out === readFileSync(join(dir, gen.replace('.gen.mjs', '.wgsl')), 'utf8'), `regenerate: node shaders/${gen} > shaders/${gen.replace('.gen.mjs', '.wgsl')}`).toBe(true);
    });
  }
});
