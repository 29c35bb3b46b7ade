// The studio as a user drives it: load a safetensors model made here, see a clear error for a
// broken one, quantize, compare two freeze schemes for a few steps, see the gradient-norm chart and
// two result rows, reload and find the runs still there.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomWeights } from '../../src/engine/model/config.ts';
import { writeHfModel } from '../../src/engine/io/hf.ts';

export const name = 'studio: drop a safetensors model (tokenizer refused, then bytes), forms persist, compare none vs ov + FP fine-tune, results, accuracy, analysis, playground, reload';

/** Controls on the page without an accessible name (aria-label, aria-labelledby, a <label>, text). */
async function unlabelled(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')].filter((el) => {
    if (el.type === 'hidden' || el.hidden) return false;
    const name = el.getAttribute('aria-label') || (el.getAttribute('aria-labelledby') && document.getElementById(el.getAttribute('aria-labelledby'))?.textContent) || el.closest('label')?.textContent || (el.id && document.querySelector(`label[for="${el.id}"]`)?.textContent) || (el.tagName === 'BUTTON' && el.textContent) || el.getAttribute('title');
    return !name || !name.trim();
  }).map((el) => el.outerHTML.slice(0, 120)));
}

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
  // a model without its tokenizer is refused, naming the missing file; a byte tokenizer only on request
  await page.getByTestId('file-input').setInputFiles([join(dir, 'config.json'), join(dir, 'model.safetensors')]);
  await page.waitForFunction(() => /tokenizer\.json is missing/.test(document.querySelector('[data-testid=model-error]')?.textContent ?? ''), null, { timeout: 30_000 });
  await page.getByTestId('byte-tokenizer').check();
  await page.getByTestId('file-input').setInputFiles([join(dir, 'config.json'), join(dir, 'model.safetensors')]);
  await page.waitForFunction(() => document.querySelector('[data-testid=model-name]')?.textContent === 'model.safetensors', null, { timeout: 30_000 });
  await screenshot('model');

  await page.getByRole('tab', { name: 'Quantize' }).click();
  await page.getByTestId('q-run').click();
  await page.getByTestId('q-result').waitFor({ timeout: 120_000 });

  // the forms live in the store: a value typed on Compare is still there after a tab switch
  await page.getByRole('tab', { name: 'Compare' }).click();
  await page.getByTestId('set-steps').fill('3');
  await page.getByTestId('set-seq').fill('32');
  await page.getByTestId('set-batch').fill('2');
  await page.getByTestId('set-loss-attnOut').fill('0.5');
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.getByRole('tab', { name: 'Distill' }).click();
  expect((await page.getByTestId('set-steps').inputValue()) === '3' && (await page.getByTestId('set-loss-attnOut').inputValue()) === '0.5', 'settings survive a tab switch');
  await page.getByRole('tab', { name: 'Compare' }).click();
  await page.getByTestId('compare-fp-reference').check();
  await page.getByTestId('compare-start').click();
  // a step of the queue shows which run and the ETA (of this run, and of the queue)
  await page.waitForFunction(() => /run \d of 3 \(queue ETA \d+ s\)/.test(document.querySelector('[data-testid=progress]')?.textContent ?? '') && /ETA \d+ s$/.test(document.querySelector('[data-testid=progress]')?.textContent ?? ''), null, { timeout: 120_000, polling: 50 });
  const queueText = await page.getByTestId('progress').innerText();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=run-status]')].filter((r) => /done/.test(r.textContent ?? '')).length === 3, null, { timeout: 300_000 });
  expect(/run \d of 3/.test(queueText) && /ETA \d+ s/.test(queueText), `queue progress with ETA: ${queueText}`);
  await screenshot('compare');

  await page.getByRole('tab', { name: 'Results' }).click();
  await page.getByTestId('results-table').waitFor({ timeout: 30_000 });
  for (const k of ['fp', 'ptq-rtn', 'ptq-clip', 'fp-finetune']) expect(await page.getByTestId(`result-${k}`).count() === 1, `results row ${k}`);
  expect(await page.getByTestId('result-student').count() === 2, 'two student rows');
  const desc = await page.locator('[data-testid=results-panel] p.muted').first().innerText();
  expect(/Held-out text: .*documents/.test(desc), `the held-out text is named: ${desc}`);

  // zero-shot accuracy on a hand-made COPA file: every row scored
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
  const accRows = await page.locator('[data-testid=results-table] tbody tr').allInnerTexts();
  expect(accRows.filter((r) => /\d\.\d{3} ± \d\.\d{3}/.test(r)).length === 5, `accuracy ± stderr in every row but the FP fine-tune: ${accRows.join(' | ')}`);
  await screenshot('results');

  // CSV with every hyperparameter
  const [csvDl] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.getByTestId('export-results-csv').click()]);
  const { readFileSync } = await import('node:fs');
  const csv = readFileSync(await csvDl.path(), 'utf8').split('\n');
  expect(/spec\.lr/.test(csv[0]) && /spec\.loss\.attnOut/.test(csv[0]) && /copa acc/.test(csv[0]), `CSV header carries the hyperparameters: ${csv[0].slice(0, 200)}`);

  await page.getByRole('tab', { name: 'Analysis' }).click();
  await page.getByTestId('analysis-panel').waitFor();
  const lines = await page.getByTestId('analysis-proj-chart-v').locator('svg path.recharts-line-curve').count();
  expect(lines >= 2, `v-projection gradient chart overlays the runs (found ${lines} lines)`);
  await screenshot('analysis');
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.getByTestId('analysis-export-png').click()]);
  const head = readFileSync(await download.path()).subarray(0, 8);
  expect(head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47, 'charts exported as a PNG file');

  await page.getByRole('tab', { name: 'Playground' }).click();
  await page.getByTestId('pg-model-ptq-rtn:w4g32').check();
  await page.getByTestId('generate').click();
  await page.waitForFunction(() => /^Generate/.test(document.querySelector('[data-testid=generate]')?.textContent ?? '') && !/Generating/.test(document.querySelector('[data-testid=generate]')?.textContent ?? ''), null, { timeout: 120_000 });
  for (const k of ['teacher', 'ptq-rtn:w4g32']) {
    const t = await page.getByTestId(`gen-${k}`).innerText();
    expect(t.length > 'Once upon a time'.length, `${k} generated text`);
  }
  await screenshot('playground');

  // every control on every view has an accessible name
  for (const t of ['Model', 'Pretrain', 'Quantize', 'Distill', 'Compare', 'Results', 'Analysis', 'Playground', 'GPU']) {
    await page.getByRole('tab', { name: t }).click();
    await page.waitForTimeout(200);
    const bad = await unlabelled(page);
    expect(bad.length === 0, `${t}: controls without an accessible label: ${bad.join(' | ')}`);
  }

  // a student as GGUF from the studio: a valid file that the studio's drop zone loads back
  await page.getByRole('tab', { name: 'Results' }).click();
  const [gg] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), page.getByTestId('export-student-gguf').first().click()]);
  const ggPath = join(dir, 'student.gguf');
  await gg.saveAs(ggPath);
  expect(readFileSync(ggPath).subarray(0, 4).toString() === 'GGUF', 'the GGUF download starts with the GGUF magic');
  const notice = await page.getByTestId('notice').innerText();
  expect(/GGUF .* MB, projections/.test(notice), `the export says what the format did: ${notice}`);
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.getByTestId('file-input').setInputFiles([ggPath]);
  await page.waitForFunction(() => document.querySelector('[data-testid=model-name]')?.textContent === 'student.gguf', null, { timeout: 60_000 });
  // back to the run's teacher for the reload check
  await page.getByTestId('file-input').setInputFiles([join(dir, 'config.json'), join(dir, 'model.safetensors')]);
  await page.waitForFunction(() => document.querySelector('[data-testid=model-name]')?.textContent === 'model.safetensors', null, { timeout: 30_000 });

  // the PyTorch recipe of a run
  await page.getByRole('tab', { name: 'Results' }).click();
  const [rj] = await Promise.all([page.waitForEvent('download', { timeout: 60_000, predicate: (d) => /recipe\.json$/.test(d.suggestedFilename()) }), page.getByTestId('export-recipe').first().click()]);
  const recipe = JSON.parse(readFileSync(await rj.path(), 'utf8'));
  expect(recipe.spec && recipe.spec.steps === 3, `the recipe carries the run's spec: ${JSON.stringify(recipe.spec).slice(0, 120)}`);

  // a reload brings back the model (from IndexedDB), the runs, and the forms
  await page.reload();
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.waitForFunction(() => document.querySelector('[data-testid=model-name]')?.textContent === 'model.safetensors', null, { timeout: 120_000 });
  await page.getByRole('tab', { name: 'Compare' }).click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=run-row]').length === 3, null, { timeout: 60_000 });
  const rows = await page.getByTestId('run-row').allInnerTexts();
  expect(rows.every((r) => /done/.test(r)) && rows.some((r) => /freeze ov/.test(r)) && rows.some((r) => /FP fine-tune/.test(r)), `runs persisted with their settings: ${rows.join(' | ')}`);
  expect((await page.getByTestId('set-steps').inputValue()) === '3', 'settings survive a reload');
  await screenshot('after-reload');
  // runs can be deleted
  await page.getByTestId('delete-run').first().click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=run-row]').length === 2, null, { timeout: 30_000 });

  // auto-freeze: the measurements choose; the evidence is shown
  await page.getByRole('tab', { name: 'Distill' }).click();
  await page.getByTestId('distill-auto').click();
  await page.getByTestId('auto-chosen').waitFor({ timeout: 300_000 });
  const cands = await page.getByTestId('auto-candidates').locator('tbody tr').count();
  expect(cands >= 2, `auto-freeze lists its candidates (${cands})`);
  await screenshot('auto-freeze');

  // compress: prune to 1 layer, distil, quantize; the stages table, then the student becomes the teacher
  await page.getByRole('tab', { name: 'Compress' }).click();
  for (const [k, v] of [['layers', '1'], ['kdSteps', '3'], ['batch', '2'], ['seq', '16'], ['qatSteps', '2']]) await page.getByTestId(`cmp-${k}`).fill(v);
  // every stage is also scored on the copa file (as quench compress --tasks)
  await page.getByTestId('cmp-task-docs').setInputFiles(copa);
  await page.getByTestId('compress-start').click();
  await page.getByTestId('compress-table').waitFor({ timeout: 300_000 });
  for (const st of ['teacher', 'pruned', 'kd', 'ptq', 'kdqat', 'ce-scratch', 'ce-pruned']) expect(await page.getByTestId(`compress-row-${st}`).count() === 1, `compress row ${st}`);
  const cmpText = await page.getByTestId('compress-table').textContent();
  expect(/copa acc_norm/.test(cmpText) && /embedding/.test(cmpText), `compress table has the embedding and copa columns: ${cmpText.slice(0, 300)}`);
  // the 15 columns, copa acc and acc_norm, the download cell
  const kdqatCells = await page.getByTestId('compress-row-kdqat').locator('td').allTextContents();
  expect(kdqatCells.length === 18 && kdqatCells[15] !== '' && Number(kdqatCells[15]) >= 0 && Number(kdqatCells[15]) <= 1, `the KD-QAT row carries its copa accuracy: ${kdqatCells.join(' | ')}`);
  expect(await page.getByTestId('compress-importance').locator('tbody tr').count() === 2, 'importance of both layers shown');
  await screenshot('compress');
  await page.getByTestId('compress-use').click();
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.waitForFunction(() => /compressed student/.test(document.querySelector('[data-testid=model-name]')?.textContent ?? ''), null, { timeout: 60_000 });
  const layers = await page.getByTestId('model-card').innerText();
  expect(/layers\s+1\b/.test(layers), `the compressed student (1 layer) is the teacher now: ${layers.slice(0, 200)}`);
}
