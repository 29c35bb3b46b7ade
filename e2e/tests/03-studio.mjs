// The studio as a user drives it: load a safetensors model made here, see a clear error for a
// broken one, quantize, compare two freeze schemes for a few steps, see the gradient-norm chart and
// two result rows, reload and find the runs still there.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomWeights } from '../../src/engine/model/config.ts';
import { writeHfModel } from '../../src/engine/io/hf.ts';

export const name = 'studio: drop a safetensors model, quantize, compare none vs ov, runs survive a reload';

export async function run({ page, baseUrl, screenshot, expect }) {
  const cfg = { dim: 32, hiddenDim: 44, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 259, maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true };
  const dir = mkdtempSync(join(tmpdir(), 'quench-e2e-'));
  for (const [f, bytes] of Object.entries(writeHfModel(cfg, randomWeights(cfg, 3, 0.5)))) writeFileSync(join(dir, f), bytes);
  const broken = mkdtempSync(join(tmpdir(), 'quench-e2e-bad-'));
  writeFileSync(join(broken, 'config.json'), JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 32, intermediate_size: 44, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 259 }));
  writeFileSync(join(broken, 'model.safetensors'), new Uint8Array([200, 0, 0, 0, 0, 0, 0, 0, 123]));

  await page.goto(baseUrl);
  await page.getByTestId('model-card').waitFor({ timeout: 60_000 });
  await page.getByTestId('file-input').setInputFiles([join(broken, 'config.json'), join(broken, 'model.safetensors')]);
  await page.getByTestId('model-error').waitFor({ timeout: 30_000 });
  const err = await page.getByTestId('model-error').innerText();
  expect(/model\.safetensors/.test(err) && /header length/.test(err), `error names the file and the problem: ${err}`);
  await screenshot('model-error');
  await page.getByTestId('file-input').setInputFiles([join(dir, 'config.json'), join(dir, 'model.safetensors')]);
  await page.waitForFunction(() => document.querySelector('[data-testid=model-name]')?.textContent === 'model.safetensors', null, { timeout: 30_000 });
  await screenshot('model');

  await page.getByRole('tab', { name: 'Quantize' }).click();
  await page.getByTestId('q-run').click();
  await page.getByTestId('q-result').waitFor({ timeout: 120_000 });
  await screenshot('quantize');

  await page.getByRole('tab', { name: 'Distill' }).click();
  await page.getByTestId('freeze-matrix').waitFor();
  await screenshot('distill');

  await page.getByRole('tab', { name: 'Compare' }).click();
  await page.getByTestId('set-steps').fill('3');
  await page.getByTestId('set-seq').fill('32');
  await page.getByTestId('set-batch').fill('2');
  await page.getByTestId('compare-start').click();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=result-row]')].filter((r) => r.textContent?.includes('done')).length === 2, null, { timeout: 300_000 });
  const chart = await page.getByTestId('gradnorm-chart').locator('svg path.recharts-line-curve').count();
  expect(chart >= 2, `gradient-norm chart has lines per layer (found ${chart})`);
  await screenshot('compare');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.getByTestId('export-png').click()]);
  const png = await download.path();
  const { readFileSync } = await import('node:fs');
  const head = readFileSync(png).subarray(0, 8);
  expect(head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47, 'charts exported as a PNG file');

  // zero-shot accuracy on a hand-made COPA file: columns for the teacher, PTQ and both students
  const copa = join(mkdtempSync(join(tmpdir(), 'quench-copa-')), 'val.jsonl');
  writeFileSync(copa, [
    { premise: 'The cat sat on the mat.', choice1: 'It purred.', choice2: 'It flew away.', question: 'effect', label: 0 },
    { premise: 'The glass fell.', choice1: 'It broke.', choice2: 'It sang.', question: 'effect', label: 0 },
    { premise: 'The man was tired.', choice1: 'He ran a race.', choice2: 'He ate soup.', question: 'cause', label: 0 },
  ].map((d) => JSON.stringify(d)).join('\n'));
  await page.getByTestId('acc-task').selectOption('copa');
  await page.getByTestId('acc-docs').setInputFiles(copa);
  await page.getByTestId('acc-run').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=acc-run]')?.textContent === 'Score accuracy' && /copa acc_norm/.test(document.querySelector('[data-testid=results-table]')?.textContent ?? ''), null, { timeout: 120_000 });
  const accRows = [await page.getByTestId('ref-row-FP').innerText(), await page.getByTestId('ref-row-PTQ').innerText(), ...(await page.getByTestId('result-row').allInnerTexts())];
  expect(accRows.length === 4 && accRows.every((r) => /\d\.\d{3} ± \d\.\d{3}/.test(r)), `accuracy ± stderr in every row: ${accRows.join(' | ')}`);
  await screenshot('accuracy');

  await page.getByRole('tab', { name: 'Playground' }).click();
  await page.getByTestId('generate').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=generate]')?.textContent === 'Generate', null, { timeout: 120_000 });
  for (const w of ['teacher', 'ptq', 'student']) {
    const t = await page.getByTestId(`gen-${w}`).innerText();
    expect(t.length > 'Once upon a time'.length, `${w} generated text`);
  }
  await screenshot('playground');

  await page.reload();
  await page.getByRole('tab', { name: 'Compare' }).click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=result-row]').length === 2, null, { timeout: 60_000 });
  const rows = await page.getByTestId('result-row').allInnerTexts();
  expect(rows.every((r) => /done/.test(r)) && rows.some((r) => /\bov\b/.test(r)) && rows.some((r) => /\bnone\b/.test(r)), `runs persisted: ${rows.join(' | ')}`);
  await screenshot('after-reload');
}
