import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Strict CSP: the page makes no requests beyond its own origin. 'wasm-unsafe-eval' lets
// onnxruntime-web compile its wasm; blob: workers are how Vite bundles module workers in dev.
const csp = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval' blob:",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self' data: blob: ws://localhost:* ws://127.0.0.1:*",
].join('; ');

export default defineConfig({
  plugins: [react()],
  server: { headers: { 'Content-Security-Policy': csp } },
  preview: { headers: { 'Content-Security-Policy': csp } },
  worker: { format: 'es' },
  build: { target: 'es2022' },
});
