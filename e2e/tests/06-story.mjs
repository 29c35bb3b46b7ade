// The whole story on stories260K and TinyStories (../shared/data), as a new user tells it: drop
// the model with its tokenizer, drop the text, quantize at w4g32, distil with the studio's defaults
// for a short run, and read the results table: the student beats PTQ on the named held-out text.
// The exported student loads in `quench eval` with the perplexity the studio showed; the results
// JSON has one object per row; a reload restores settings, model, data and runs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const name = 'story: stories260K + TinyStories — quantize w4g32, distil with the defaults, student beats PTQ, export loads in quench eval, reload restores';

const SHARED = join(import.meta.dirname, '..', '..', '..', 'shared', 'data');

export async function run({ page, baseUrl, screenshot, expect }) {
  const S = join(SHARED, 'models', 'stories260K');
  if (!existsSync(join(S, 'stories260K.bin'))) {
    console.log('  (skipped: ../shared/data is absent)');
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'quench-story-'));
  // the first 120 TinyStories documents (a tenth, 12, held out) keep this test short on SwiftShader
  const docs = readFileSync(join(SHARED, 'text', 'tinystories_val_800.txt'), 'utf8').split('<|endoftext|>').map((d) => d.trim()).filter(Boolean).slice(0, 120);
  const dataFile = join(tmp, 'tinystories_120.txt');
  writeFileSync(dataFile, docs.join('\n<|endoftext|>\n'));

  await page.goto(baseUrl);
  await page.getByTestId('model-card').waitFor({ timeout: 120_000 });
  // the .bin alone is refused, naming the missing tokenizer
  await page.getByTestId('file-input').setInputFiles([join(S, 'stories260K.bin')]);
  await page.waitForFunction(() => /stories260K\.bin: its tokenizer is missing/.test(document.querySelector('[data-testid=model-error]')?.textContent ?? ''), null, { timeout: 60_000 });
  await page.getByTestId('file-input').setInputFiles([join(S, 'stories260K.bin'), join(S, 'tok512.bin')]);
  await page.waitForFunction(() => document.querySelector('[data-testid=model-name]')?.textContent === 'stories260K.bin', null, { timeout: 60_000 });
  await screenshot('story-model');

  await page.getByRole('tab', { name: 'Distill' }).click();
  await page.getByTestId('data-file').setInputFiles(dataFile);
  await page.waitForFunction(() => /tinystories_120\.txt \(120 documents/.test(document.querySelector('[data-testid=data-name]')?.textContent ?? ''), null, { timeout: 60_000 });
  const evalDesc = await page.getByTestId('eval-description').innerText();
  expect(/12 held-out documents of 120/.test(evalDesc) && /truncated to 512 tokens/.test(evalDesc), `the evaluation text is named: ${evalDesc}`);

  await page.getByRole('tab', { name: 'Quantize' }).click();
  await page.getByTestId('q-bits').selectOption('4');
  await page.getByTestId('q-run').click();
  await page.getByTestId('q-result').waitFor({ timeout: 600_000 });
  await screenshot('story-quantize');

  // the studio's defaults (the CLI's recipe), only shorter
  await page.getByRole('tab', { name: 'Distill' }).click();
  await page.getByTestId('set-defaults').click();
  await page.getByTestId('set-steps').fill('12');
  expect((await page.getByTestId('set-lr').inputValue()) === '0.0005' && (await page.getByTestId('set-batch').inputValue()) === '8', 'the distill form starts at the documented recipe');
  await page.getByTestId('distill-start').click();
  await page.waitForFunction(() => /done/.test(document.querySelector('[data-testid=run-status]')?.textContent ?? ''), null, { timeout: 1_500_000, polling: 2000 });
  await screenshot('story-distill');

  await page.getByRole('tab', { name: 'Results' }).click();
  await page.getByTestId('result-student').waitFor({ timeout: 30_000 });
  const ppl = async (k) => Number(await page.getByTestId(`result-${k}`).getAttribute('data-ppl'));
  const [fp, rtn, clip, student] = [await ppl('fp'), await ppl('ptq-rtn'), await ppl('ptq-clip'), await ppl('student')];
  expect(student < rtn && student < clip && fp < rtn, `student ${student} beats PTQ (RTN ${rtn}, clip ${clip}); teacher ${fp}`);
  await screenshot('story-results');

  // the student and the held-out text, downloaded; quench eval agrees with the studio
  const studentDir = join(tmp, 'student');
  const files = [];
  page.on('download', (d) => files.push(d));
  await page.getByTestId('export-student').click();
  await page.waitForFunction(() => true, null, { timeout: 1000 });
  await page.waitForTimeout(2000);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(studentDir, { recursive: true });
  for (const d of files) await d.saveAs(join(studentDir, d.suggestedFilename().replace(/^student-.*?-[a-z0-9]{5}-/, '')));
  expect(['config.json', 'model.safetensors', 'tokenizer.json'].every((f) => existsSync(join(studentDir, f))), `student folder: ${files.map((d) => d.suggestedFilename()).join(', ')}`);
  const [held] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.getByTestId('export-heldout').click()]);
  const heldFile = join(tmp, 'heldout.txt');
  await held.saveAs(heldFile);
  const out = execFileSync('node', ['bin/quench.mjs', 'eval', '--model', studentDir, '--text', heldFile, '--sep', '<|endoftext|>', '--json'], { encoding: 'utf8', env: { ...process.env, QUENCH_PROGRESS: '0' } });
  const cli = JSON.parse(out.trim().split('\n').at(-1));
  expect(cli.documents === 12 && Math.abs(cli.ppl - student) / student < 1e-4, `quench eval on the exported student: ${cli.ppl} vs the studio's ${student}`);

  const [jsonDl] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.getByTestId('export-results-json').click()]);
  const res = JSON.parse(readFileSync(await jsonDl.path(), 'utf8'));
  const kinds = res.rows.map((r) => r.kind);
  expect(['fp', 'ptq-rtn', 'ptq-clip', 'student'].every((k) => kinds.includes(k)), `results JSON rows: ${kinds}`);
  for (const r of res.rows) expect(['kind', 'bits', 'group', 'scheme', 'steps', 'ppl', 'spec'].every((f) => f in r), `row fields: ${Object.keys(r)}`);
  expect(res.rows.find((r) => r.kind === 'student').spec.lr === 0.0005, 'the row carries its full spec');

  for (const t of ['Analysis', 'Playground', 'Compare']) {
    await page.getByRole('tab', { name: t }).click();
    await page.waitForTimeout(500);
    await screenshot(`story-${t.toLowerCase()}`);
  }

  // reload: settings, model, data and the run come back
  await page.reload();
  await page.getByRole('tab', { name: 'Model' }).click();
  await page.waitForFunction(() => document.querySelector('[data-testid=model-name]')?.textContent === 'stories260K.bin', null, { timeout: 120_000 });
  await page.getByRole('tab', { name: 'Distill' }).click();
  await page.waitForFunction(() => /tinystories_120\.txt/.test(document.querySelector('[data-testid=data-name]')?.textContent ?? '') && /done/.test(document.querySelector('[data-testid=run-status]')?.textContent ?? ''), null, { timeout: 120_000 });
  expect((await page.getByTestId('set-steps').inputValue()) === '12', 'settings restored');
  const note = await page.getByTestId('restore-note').innerText();
  expect(/restored the last model, stories260K\.bin/.test(note), `the page says what came back: ${note}`);
  await screenshot('story-reloaded');
}
