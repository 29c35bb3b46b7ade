// `npm run bench:browser`: the in-browser kernel benchmark (Quench int4 vs onnxruntime-web
// MatMulNBits on webgpu, and vs Quench fp32) in Debian's Chromium, printed as a table.
import { build, preview } from 'vite';
import { chromium } from 'playwright-core';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({ root, logLevel: 'warn' });
const server = await preview({ root, preview: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
const baseUrl = `http://localhost:${server.httpServer.address().port}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage();
await page.goto(baseUrl);
await page.getByRole('tab', { name: 'GPU' }).click();
await page.getByTestId('gpu-panel').waitFor({ timeout: 60_000 });
const adapter = await page.getByTestId('gpu-vendor').innerText();
await page.getByTestId('bench-run').click();
await page.getByTestId('bench-result').waitFor({ timeout: 600_000 });
console.log(`Chromium WebGPU adapter: ${adapter}`);
console.log((await page.getByTestId('bench-result').innerText()).replace(/\t/g, '  |  '));
await browser.close();
await new Promise((r) => server.httpServer.close(r));
process.exit(0);
