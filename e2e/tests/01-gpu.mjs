// The studio boots, shows the WebGPU adapter, and runs kernels in the browser correctly.
export const name = 'studio boots, shows the adapter, kernels pass the self-test in Chromium';

export async function run({ page, baseUrl, screenshot, expect }) {
  await page.goto(baseUrl);
  await page.getByRole('tab', { name: 'GPU' }).click();
  await page.getByTestId('gpu-panel').waitFor({ timeout: 60_000 });
  const text = await page.getByTestId('gpu-panel').innerText();
  expect(/maxStorageBufferBindingSize/.test(text), 'adapter limits are shown');
  await screenshot('gpu-panel');
  await page.getByTestId('selftest-run').click();
  await page.getByTestId('selftest-result').waitFor({ timeout: 60_000 });
  const result = await page.getByTestId('selftest-result').innerText();
  // the add, the matmul, and every matmul variant (fp32 x3 products, int4 forward and dX, f16-weight forward) against float64
  const passes = (result.match(/pass/g) ?? []).length;
  expect(!/FAIL/.test(result) && passes >= 2 + 3 * 3 + 3 + 3 + 2 && /dx_wg8/.test(result) && /shared8/.test(result) && /half_wg8/.test(result), `self-test results (${passes} pass): ${result}`);
  // and every attention kernel this adapter runs (SwiftShader: no 8-wide subgroups), decoding included
  expect(/fp32 GEMV \(gemv_red\) 1×136×130/.test(result) && /fp32 GEMV \(gemv_red\) 1×135×130/.test(result), `the self-test checks the fp32 gemv_red, vec4 and scalar: ${result.slice(0, 400)}`);
  expect(/attention forward flash_tiled/.test(result) && /attention decode flash_split/.test(result) && /attention flash backward thread dq/.test(result), `the self-test checks the attention kernels: ${result.slice(0, 400)}`);
  await screenshot('gpu-selftest');
  // matmul kernels timed on this adapter; the fastest becomes what runs use, kept across a reload
  await page.getByTestId('kernels-current').waitFor({ timeout: 60_000 });
  const defaults = await page.getByTestId('kernel-matmul').innerText();
  await page.getByLabel('timing size').selectOption('small');
  await page.getByTestId('kernels-time').click();
  await page.getByTestId('kernels-times').waitFor({ timeout: 180_000 });
  const times = await page.getByTestId('kernels-times').innerText();
  await screenshot('gpu-kernel-times');
  expect(/fastest/.test(times) && /shared8/.test(times) && /gemm_wg8/.test(times) && /dx_wg8/.test(times) && /half_wg8/.test(times) && /gemv_wide/.test(times), `kernel timings list the variants: ${times.slice(0, 300)}`);
  // and the flash attention forwards, at a prefill and at one decoding row
  expect(/attention forward 1×128×128 4\/2 HS 32/.test(times) && /attention decode 1×1×128 4\/2 HS 32/.test(times) && /flash_tiled/.test(times) && /flash_split/.test(times), `kernel timings list the attention variants: ${times.slice(-600)}`);
  const label = await page.getByTestId('kernels-use-fastest').innerText();
  const fastest = /\(([^)]*)\)/.exec(label)?.[1].split(', ') ?? [];
  expect(fastest.length === 8, `the fastest choice is named: ${label}`);
  // and the fp32 GEMVs: the fp32 gemv_red (SwiftShader has subgroups and subgroup_id) timed, and
  // not marked wrong (the int4 GEMV family has a gemv_red row too: this is the fp32 family's row)
  const fp32Red = times.split('\n').find((l) => l.startsWith('fp32 GEMV (generating') && /\tgemv_red\t/.test(l));
  expect(!!fp32Red && /fp32 GEMV 1×128×128/.test(fp32Red) && !/wrong/i.test(fp32Red), `kernel timings list the fp32 gemv_red, correct here: ${fp32Red ?? times.slice(-600)}`);
  const inUse = async () => Promise.all(['matmul', 'gemm', 'dx', 'half', 'gemv', 'attention', 'decode', 'fp32gemv'].map((f) => page.getByTestId(`kernel-${f}`).innerText()));
  const waitFor = (id, want) => page.waitForFunction(([i, w]) => document.querySelector(`[data-testid="${i}"]`)?.textContent === w, [id, want], { timeout: 60_000 });
  if (await page.getByTestId('kernels-use-fastest').isEnabled()) {
    await page.getByTestId('kernels-use-fastest').click();
    await waitFor('kernel-half', fastest[3]);
    await waitFor('kernel-gemv', fastest[4]);
    await waitFor('kernel-decode', fastest[6]);
    await waitFor('kernel-fp32gemv', fastest[7]);
    await waitFor('kernel-matmul', fastest[0]);
  }
  expect(JSON.stringify(await inUse()) === JSON.stringify(fastest), `the fastest kernels are in use: ${await inUse()} vs ${fastest}`);
  // a hand-picked fp32 kernel (not SwiftShader's default) is what runs use, and survives a reload
  const pick = defaults === 'shared8' ? 'shared' : 'shared8';
  await page.getByLabel('use for fp32 matmul (forward, dX, dW)').selectOption(pick);
  await waitFor('kernel-matmul', pick);
  await page.reload();
  await page.getByRole('tab', { name: 'GPU' }).click();
  await page.getByTestId('kernels-current').waitFor({ timeout: 60_000 });
  await waitFor('kernel-matmul', pick);
  // an fp32 GEMV that was the old matmul variant's own moves with it (shared variants: gemv_wg, else gemv_rows)
  const ownGemv = (v) => (v.startsWith('shared') ? 'gemv_wg' : 'gemv_rows');
  const gemvAfter = fastest[7] === ownGemv(fastest[0]) ? ownGemv(pick) : fastest[7];
  expect(JSON.stringify(await inUse()) === JSON.stringify([pick, ...fastest.slice(1, 7), gemvAfter]), `the choice survives a reload: ${await inUse()} (fastest ${fastest})`);
  await screenshot('gpu-kernels');
  // Edit the stored kernel choice, then reload. The edit is made by an init script of the next load,
  // before the studio starts: edited from the running page, any state update of the studio's
  // (zustand persist writes the whole state on every set) could overwrite it before the reload.
  const reloadWithStoredChoice = async (tag, del, set) => {
    await page.addInitScript(([tag, del, set]) => {
      if (sessionStorage.getItem(tag)) return; // once: init scripts run on every later load too
      sessionStorage.setItem(tag, '1');
      const st = JSON.parse(localStorage.getItem('quench-settings'));
      for (const k of del) delete st.state.settings.kernels.choice[k];
      Object.assign(st.state.settings.kernels.choice, set);
      localStorage.setItem('quench-settings', JSON.stringify(st));
    }, [tag, del, set]);
    await page.reload();
  };
  // a choice stored before the f16-weight, GEMV, attention and fp32 GEMV families existed: applied,
  // with the adapter's kernels for those and the stored fp32 matmul's own GEMV (shared and shared8: gemv_wg)
  const defaultOf = (text) => page.locator('[data-testid="kernels-current"] tr', { hasText: text }).locator('td').nth(2).innerText();
  const later = await Promise.all(['f16-weight', 'int4 GEMV', 'attention forward', 'one query row'].map(defaultOf));
  await reloadWithStoredChoice('e2e-old-choice', ['half', 'gemv', 'attention', 'decode', 'fp32gemv'], {});
  await page.getByRole('tab', { name: 'GPU' }).click();
  await page.getByTestId('kernels-current').waitFor({ timeout: 60_000 });
  await waitFor('kernel-matmul', pick);
  expect(JSON.stringify(await inUse()) === JSON.stringify([pick, fastest[1], fastest[2], ...later, 'gemv_wg']), `an older stored choice (no half, gemv, attention, decode, fp32gemv) still applies: ${await inUse()} vs ${later}`);
  // a stored choice this adapter cannot run (a driver update, say): said so, forgotten, defaults used
  await reloadWithStoredChoice('e2e-stale-choice', [], { matmul: 'no-such-kernel' });
  await page.getByRole('tab', { name: 'GPU' }).click();
  await page.getByTestId('notice').waitFor({ timeout: 60_000 });
  const notice = await page.getByTestId('notice').innerText();
  expect(/could not be applied; using its defaults/.test(notice) && /no-such-kernel/.test(notice), `a stale kernel choice is reported: ${notice}`);
  await waitFor('kernel-matmul', defaults);
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('quench-settings')).state.settings.kernels);
  expect(stored === null, `the stale choice is forgotten: ${JSON.stringify(stored)}`);
  await page.getByTestId('kernels-defaults').waitFor();
  // per-shape tuning: switched on, kept across a reload (the worker is told again), switched off
  const tune = page.getByTestId('kernels-tune-shapes');
  expect(!(await tune.isChecked()), 'per-shape tuning starts off');
  await tune.click(); // (the box shows the worker's state, which answers a moment later)
  await page.waitForFunction(() => JSON.parse(localStorage.getItem('quench-settings')).state.settings.tuneKernelShapes === true, null, { timeout: 30_000 });
  await page.reload();
  await page.getByRole('tab', { name: 'GPU' }).click();
  await page.getByTestId('kernels-current').waitFor({ timeout: 60_000 });
  await page.waitForFunction(() => document.querySelector('[data-testid="kernels-tune-shapes"]')?.checked === true, null, { timeout: 60_000 });
  await page.getByTestId('kernels-tune-shapes').click();
  await page.waitForFunction(() => JSON.parse(localStorage.getItem('quench-settings')).state.settings.tuneKernelShapes === false, null, { timeout: 30_000 });
  // keyboard reachable: tab to the Model tab and open it with Enter
  await page.getByRole('tab', { name: 'Model' }).focus();
  await page.keyboard.press('Enter');
  expect((await page.getByRole('tab', { name: 'Model' }).getAttribute('aria-selected')) === 'true', 'Model tab selected by keyboard');
}
