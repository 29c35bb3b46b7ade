// The layer rules of DESIGN.md, checked by `npm run lint:layers` (part of `npm test`): a new
// violation fails CI. Tests follow the rules of the folder they sit in; tests that span layers live
// in test/.
const engineOnly = '^src/engine/';
module.exports = {
  forbidden: [
    { name: 'engine-no-ui', severity: 'error', comment: 'the engine runs in a worker, in Node and in Vitest: it knows nothing of the UI, the worker, React or the DOM libraries', from: { path: engineOnly }, to: { path: ['^src/ui/', '^src/worker/', '^src/cli/', 'node_modules/(react|react-dom|zustand|recharts|idb)/'] } },
    { name: 'ref-self-contained', severity: 'error', comment: 'float64 references import no GPU runtime, ops or quantizer code (the format types only)', from: { path: '^src/engine/ref/', pathNot: '\\.test\\.ts$' }, to: { path: ['^src/engine/(gpu|ops|quant|model/(llama|linear|dense|qat|packed|runner)|train|workflow)', 'node_modules/webgpu/'] } },
    { name: 'ops-below-model', severity: 'error', comment: 'kernels wrap WGSL; they import nothing from model/, train/, quant/ or workflow/ (the quantized layout is in format/)', from: { path: '^src/engine/ops/', pathNot: '\\.test\\.ts$' }, to: { path: '^src/engine/(model|train|quant|workflow|eval|io)/' } },
    { name: 'format-at-the-bottom', severity: 'error', comment: 'the on-GPU formats import nothing above them', from: { path: '^src/engine/format/', pathNot: '\\.test\\.ts$' }, to: { path: '^src/engine/(?!format/)' } },
    { name: 'cli-and-worker-over-workflow', severity: 'error', comment: 'the CLI and the worker do not reach into each other or the UI: both stand on workflow/', from: { path: '^src/(cli|worker)/' }, to: { path: ['^src/ui/', 'node_modules/(react|react-dom|zustand|recharts)/'] } },
    { name: 'cli-not-worker', severity: 'error', from: { path: '^src/cli/' }, to: { path: '^src/worker/' } },
    { name: 'no-circular', severity: 'warn', from: {}, to: { circular: true } },
  ],
  options: {
    // .tsx (React views) are leaves: swc here parses plain TypeScript; edges into them still count
    doNotFollow: { path: ['node_modules', '\\.tsx$'] },
    tsPreCompilationDeps: true,
    // TypeScript 7 has no JS compiler API for dependency-cruiser: parse with swc
    parser: 'swc',
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(node_modules|dist)' },
  },
};
