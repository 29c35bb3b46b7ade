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
  expect(!/FAIL/.test(result) && (result.match(/pass/g) ?? []).length === 2, `self-test results: ${result}`);
  await screenshot('gpu-selftest');
  // keyboard reachable: tab to the Model tab and open it with Enter
  await page.getByRole('tab', { name: 'Model' }).focus();
  await page.keyboard.press('Enter');
  expect((await page.getByRole('tab', { name: 'Model' }).getAttribute('aria-selected')) === 'true', 'Model tab selected by keyboard');
}
