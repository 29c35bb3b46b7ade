import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';

// The built studio makes no requests beyond its own origin. 'wasm-unsafe-eval' lets
// onnxruntime-web compile its wasm. The dev server skips the policy (React refresh injects an
// inline script); `npm start` serves the built page, so the policy holds there.
const csp = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self' data: blob:",
  "object-src 'none'",
  "base-uri 'self'",
].join('; ');

function cspMeta(): Plugin {
  return {
    name: 'quench-csp',
    apply: 'build',
    transformIndexHtml: (html) => html.replace('<meta charset="UTF-8" />', `<meta charset="UTF-8" />\n    <meta http-equiv="Content-Security-Policy" content="${csp}" />`),
  };
}

export default defineConfig({
  plugins: [react(), cspMeta()],
  preview: { headers: { 'Content-Security-Policy': csp } },
  worker: { format: 'es' },
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
});
