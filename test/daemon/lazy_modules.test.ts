// What berthd does not load until a request needs it: every module loaded at
// start stays in an idle berthd's heap, so code for rare requests (image
// archives, YAML CDI spec files, streaming sessions) is loaded on first use
// (src/util/lazy.ts),
// and the CRI API is read from a JSON descriptor, not parsed from its .proto.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const DIST_SRC = path.resolve(__dirname, '..', '..', 'src');

/** The files a fresh node process has loaded once it has required the daemon and loaded the CRI API, as berthd's start does. */
function loadedAtStart(): string[] {
  const script = [
    `require(${JSON.stringify(path.join(DIST_SRC, 'daemon', 'daemon.js'))});`,
    `require(${JSON.stringify(path.join(DIST_SRC, 'proto.js'))}).loadCri();`,
    'process.stdout.write(JSON.stringify(Object.keys(require.cache)));',
  ].join('\n');
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as string[];
}

describe('modules berthd loads on demand', () => {
  let atStart: string[];
  before(() => {
    atStart = loadedAtStart();
  });

  it('loads the daemon itself (the check sees what it should)', () => {
    assert.ok(atStart.some((f) => f.endsWith(path.join('src', 'cri', 'server.js'))));
    assert.ok(atStart.some((f) => f.includes(`${path.sep}node_modules${path.sep}@grpc${path.sep}grpc-js${path.sep}`)));
  });

  for (const [what, part] of [
    ['the YAML parser (CDI spec files)', `${path.sep}node_modules${path.sep}yaml${path.sep}`],
    ['image archive import and export', `${path.sep}src${path.sep}image${path.sep}archive${path.sep}`],
    ['ws (WebSocket streaming sessions)', `${path.sep}node_modules${path.sep}ws${path.sep}`],
    ['the SPDY streaming sessions', `${path.sep}src${path.sep}streaming${path.sep}spdy.js`],
    ['the exec/attach and port-forward session code', `${path.sep}src${path.sep}streaming${path.sep}remotecommand.js`],
    ['@grpc/proto-loader (the CRI API comes from its JSON descriptor)', `${path.sep}@grpc${path.sep}proto-loader${path.sep}`],
    ['the .proto parser', `${path.sep}protobufjs${path.sep}src${path.sep}parse.js`],
  ] as const) {
    it(`does not load ${what} at start`, () => {
      assert.deepEqual(
        atStart.filter((f) => f.includes(part)),
        [],
      );
    });
  }
});
