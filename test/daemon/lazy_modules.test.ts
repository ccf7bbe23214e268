// What berthd does not load until a request needs it: every module loaded at
// start stays in an idle berthd's heap, so code for rare requests (image
// archives, YAML CDI spec files) is loaded on first use (src/util/lazy.ts).
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const DIST_SRC = path.resolve(__dirname, '..', '..', 'src');

/** The files a fresh node process has loaded once it has required `module` (a path under dist/src). */
function loadedBy(module: string): string[] {
  const script = `require(${JSON.stringify(path.join(DIST_SRC, module))}); process.stdout.write(JSON.stringify(Object.keys(require.cache)));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as string[];
}

describe('modules berthd loads on demand', () => {
  let atStart: string[];
  before(() => {
    atStart = loadedBy('daemon/daemon.js');
  });

  it('loads the daemon itself (the check sees what it should)', () => {
    assert.ok(atStart.some((f) => f.endsWith(path.join('src', 'cri', 'server.js'))));
    assert.ok(atStart.some((f) => f.includes(`${path.sep}node_modules${path.sep}@grpc${path.sep}grpc-js${path.sep}`)));
  });

  for (const [what, part] of [
    ['the YAML parser (CDI spec files)', `${path.sep}node_modules${path.sep}yaml${path.sep}`],
    ['image archive import and export', `${path.sep}src${path.sep}image${path.sep}archive${path.sep}`],
  ] as const) {
    it(`does not load ${what} at start`, () => {
      assert.deepEqual(
        atStart.filter((f) => f.includes(part)),
        [],
      );
    });
  }
});
