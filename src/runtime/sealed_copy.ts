// Which runtimes berth execs from a sealed memfd copy of their binary, made
// once by berth-launch (src/launch/runtime_copy.c, PROTOCOL.md "Runtime
// copies"): runc 1.x, whose `runc init` otherwise clones its own binary on
// every create and exec (its guard against CVE-2019-5736) and trusts a copy
// sealed exactly as it would seal one. Other runtimes are exec'd by path.

/** Whether a runtime with this `--version` output runs from a sealed copy. */
export function runsFromSealedCopy(handler: { version?: string }): boolean {
  return /^runc version 1\./.test(handler.version ?? '');
}
