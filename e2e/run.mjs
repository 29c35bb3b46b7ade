// End-to-end tests in real Chromium (Debian's /usr/bin/chromium, WebGPU on SwiftShader), driven
// by playwright-core. Builds the studio, serves it with `vite preview` on a free localhost port,
// runs every e2e/tests/*.mjs (each exports `name` and `run({ page, baseUrl, screenshot, expect })`),
// saves screenshots under e2e/screenshots/, fails any test whose page requested another origin,
// and prints `N passed, N failed`.
import { build, preview } from 'vite';
import { chromium } from 'playwright-core';
import { mkdirSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const shots = join(root, 'e2e', 'screenshots');
mkdirSync(shots, { recursive: true });
const only = process.argv[2];

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  console.error(`e2e: Chromium not found at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`);
  process.exit(1);
}

console.log('e2e: building the studio…');
await build({ root, logLevel: 'warn' });
const server = await preview({ root, preview: { port: 0, host: '127.0.0.1', strictPort: false }, logLevel: 'warn' });
const addr = server.httpServer.address();
const baseUrl = `http://localhost:${addr.port}`;
console.log(`e2e: serving ${baseUrl}`);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu-sandbox'],
});

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

const files = readdirSync(join(root, 'e2e', 'tests')).filter((f) => f.endsWith('.mjs') && (!only || f.includes(only))).sort();
let passed = 0, failed = 0;
for (const f of files) {
  const mod = await import(pathToFileURL(join(root, 'e2e', 'tests', f)).href);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const foreign = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['data:', 'blob:'].includes(u.protocol) && u.origin !== new URL(baseUrl).origin) foreign.push(r.url());
  });
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const screenshot = async (name) => {
    const path = join(shots, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    return path;
  };
  const t0 = Date.now();
  try {
    await mod.run({ page, baseUrl, screenshot, expect });
    expect(foreign.length === 0, `requests outside the page's origin: ${foreign.join(', ')}`);
    passed++;
    console.log(`✓ ${mod.name ?? f} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.log(`✗ ${mod.name ?? f}: ${e instanceof Error ? e.message : e}`);
    if (consoleErrors.length) console.log(`  console errors:\n  ${consoleErrors.slice(0, 10).join('\n  ')}`);
    await screenshot(`FAILED-${f.replace(/\.mjs$/, '')}`).catch(() => {});
  }
  await context.close();
}
await browser.close();
await new Promise((r) => server.httpServer.close(r));
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
