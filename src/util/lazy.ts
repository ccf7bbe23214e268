// A value made the first time it is asked for, then kept. berthd loads code
// that only some requests need (image archives, YAML CDI spec files, the
// streaming protocols) through one of these, so a berthd that never serves
// such a request never holds it: every module loaded at start stays in the
// V8 heap (its source, bytecode and objects) for the life of the daemon.
export function lazy<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}
