#!/usr/bin/env python3
"""The PyTorch peer of `quench distill` in bench/kdqat.bench.ts: a Quench recipe folder
(`quench export-recipe`, same spec and data as the Quench run) trained by the recipe's own
kdqat.py -- the exact KD-QAT step (teacher forward, STE student forward/backward, AdamW) --
in PyTorch eager on the CPU with one thread, no final evaluation, no checkpoints.
Writes OUT/metrics.jsonl (tokensPerSec per step).
    python3 bench/kdqat_step.py --recipe DIR --out OUT [--steps N] [--threads 1]"""
import argparse
import os
import runpy
import sys

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--recipe', required=True, help='recipe folder written by quench export-recipe')
ap.add_argument('--out', required=True)
ap.add_argument('--steps', type=int, default=12)
ap.add_argument('--threads', type=int, default=1)
a = ap.parse_args()
script = os.path.join(a.recipe, 'kdqat.py')
if not os.path.exists(script):
    sys.exit('%s: no kdqat.py (write the folder with quench export-recipe)' % a.recipe)
sys.argv = [script, '--recipe', a.recipe, '--out', a.out, '--steps', str(a.steps), '--device', 'cpu',
            '--threads', str(a.threads), '--no-eval', '--quiet', '--checkpoint-every', str(10 ** 9)]
runpy.run_path(script, run_name='__main__')
