// The int4 ONNX export (MatMulNBits) runs in onnxruntime-web in Chromium on both the wasm and the
// webgpu providers and matches Quench's own int4 forward (tolerance: 1e-3 of the largest logit).
export const name = 'ONNX export runs in onnxruntime-web (wasm and webgpu) and matches our int4 logits';

export async function run({ page, baseUrl, screenshot, expect }) {
  await page.goto(baseUrl);
  await page.getByRole('tab', { name: 'GPU' }).click();
  await page.getByTestId('gpu-panel').waitFor({ timeout: 60_000 });
  await page.getByTestId('onnx-run').click();
  await page.getByTestId('onnx-result').waitFor({ timeout: 180_000 });
  const text = await page.getByTestId('onnx-result').innerText();
  await screenshot('onnx-check');
  const rows = text.split('\n').filter((l) => /^(wasm|webgpu)/.test(l));
  expect(rows.length === 2, `two provider rows, got: ${text}`);
  for (const r of rows) expect(/\tpass$/.test(r) || / pass$/.test(r) || r.trim().endsWith('pass'), `provider row not passing: ${r}`);
}
