export function exportOnnx(..._a: unknown[]): Uint8Array { throw new Error('ONNX export is not built yet'); }
