// Narrowing parsed JSON (unknown) to an object whose fields can be read.
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
