// The packed low-bit layout lives in format/pack.ts (below ops/, shared by kernels, exporters and
// quantizers); this re-export keeps quant/ importers working.
export * from '../format/pack';
