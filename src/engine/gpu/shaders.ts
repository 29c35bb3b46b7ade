// WGSL source loading, shared by the browser (Vite's import.meta.glob) and Node (fs).
// Each environment registers a source function once; kernels ask for shaders by file stem
// ("matmul" -> shaders/matmul.wgsl). A line `//#include "name"` pastes shaders/name.wgsl in place,
// so packing helpers and the like live in one file.

export type ShaderSourceFn = (name: string) => string;

let sourceFn: ShaderSourceFn | null = null;
const cache = new Map<string, string>();

export function setShaderSource(fn: ShaderSourceFn): void {
  sourceFn = fn;
  cache.clear();
}

export function loadShader(name: string, seen: Set<string> = new Set()): string {
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  if (!sourceFn) throw new Error(`shader "${name}": no shader source registered (call setShaderSource, or use createNodeGpu / createBrowserGpu)`);
  if (seen.has(name)) throw new Error(`shader "${name}": circular //#include`);
  seen.add(name);
  const raw = sourceFn(name);
  const text = raw.replace(/^\s*\/\/#include\s+"([\w.-]+)"\s*$/gm, (_m, inc: string) => loadShader(inc, seen));
  cache.set(name, text);
  return text;
}
