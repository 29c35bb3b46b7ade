// A paused training survives a reload and resumes to completion from its checkpoint.
export const name = 'studio: pause a distillation, reload, resume from the checkpoint to the end';

export async function run({ page, baseUrl, screenshot, expect }) {
  await page.goto(baseUrl);
  await page.getByTestId('model-card').waitFor({ timeout: 60_000 });
  // the tiny random model keeps this test quick; the default model has its own test
  await page.getByTestId('load-tiny').click();
  await page.waitForFunction(() => /tiny random/.test(document.querySelector('[data-testid=model-name]')?.textContent ?? ''), null, { timeout: 30_000 });
  await page.getByRole('tab', { name: 'Distill' }).click();
  // data: a dropped text file, then data-free (sampled from the teacher)
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const f = join(mkdtempSync(join(tmpdir(), 'quench-data-')), 'stories.txt');
  writeFileSync(f, ['One day a cat sat on a mat.', 'The dog ran to the park and back.', 'A bird sang in the tall old tree.', 'The sun went down over the hill.'].join('\n<|endoftext|>\n'));
  await page.getByTestId('data-file').setInputFiles(f);
  await page.waitForFunction(() => /stories\.txt \(4 documents/.test(document.querySelector('[data-testid=data-name]')?.textContent ?? ''), null, { timeout: 30_000 });
  await page.getByTestId('data-teacher').click();
  await page.waitForFunction(() => /16 sequences sampled from the teacher \((1[0-9]) documents/.test(document.querySelector('[data-testid=data-name]')?.textContent ?? ''), null, { timeout: 120_000 });
  await page.getByTestId('set-steps').fill('60');
  await page.getByTestId('set-seq').fill('32');
  await page.getByTestId('set-batch').fill('2');
  await page.getByTestId('distill-start').click();
  // wait for a few steps, then pause
  await page.waitForFunction(() => /running/.test(document.querySelector('[data-testid=run-status]')?.textContent ?? '') && document.querySelectorAll('[data-testid=loss-chart] path.recharts-line-curve').length > 0, null, { timeout: 120_000 });
  await page.waitForTimeout(300);
  await page.getByTestId('distill-pause').click();
  await page.waitForFunction(() => /paused/.test(document.querySelector('[data-testid=run-status]')?.textContent ?? ''), null, { timeout: 60_000 });
  const pausedRow = await page.getByTestId('run-row').innerText();
  const pausedSteps = Number(/(\d+)\/60/.exec(pausedRow)?.[1]);
  expect(pausedSteps > 0 && pausedSteps < 60, `paused part-way: ${pausedRow}`);
  await screenshot('paused');
  await page.reload();
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.waitForFunction(() => /quench-default|tiny random/.test(document.querySelector('[data-testid=model-name]')?.textContent ?? ''), null, { timeout: 120_000 });
  await page.getByRole('tab', { name: 'Distill' }).click();
  await page.getByTestId('resume').waitFor({ timeout: 30_000 });
  // the page starts with the default model: resuming is refused with a clear message until the
  // run's own teacher and data are back (the teacher's samples are seeded, so they come back the same)
  await page.getByTestId('resume').click();
  await page.getByTestId('run-error').waitFor({ timeout: 30_000 });
  const refusal = await page.getByTestId('run-error').innerText();
  expect(/load the same teacher and data/.test(refusal) && /tiny random/.test(refusal), `resume refused with the reason: ${refusal}`);
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.getByTestId('load-tiny').click();
  await page.waitForFunction(() => /tiny random/.test(document.querySelector('[data-testid=model-name]')?.textContent ?? ''), null, { timeout: 30_000 });
  await page.getByRole('tab', { name: 'Distill' }).click();
  await page.getByTestId('data-teacher').click();
  await page.waitForFunction(() => /16 sequences sampled from the teacher/.test(document.querySelector('[data-testid=data-name]')?.textContent ?? ''), null, { timeout: 120_000 });
  await page.getByTestId('resume').click();
  await page.waitForFunction(() => /done/.test(document.querySelector('[data-testid=run-status]')?.textContent ?? ''), null, { timeout: 180_000 });
  const row = await page.getByTestId('run-row').innerText();
  expect(/60\/60/.test(row), `resumed to 60 steps: ${row}`);
  await screenshot('resumed');
}
