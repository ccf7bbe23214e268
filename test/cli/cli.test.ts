// The `berth` command: its command line, its output formats, a pull with
// progress through a real berthd and docker-registry, and what it says when
// berthd is not there.
import * as assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { callErrorLine } from '../../src/cli/call_error';
import { parseCommandLine } from '../../src/cli/main';
import { humanSize, table } from '../../src/cli/format';
import { PullView } from '../../src/cli/pull';
import type { PullEvent } from '../../src/admin/client';
import { TestBerthd } from '../helpers/berthd';
import { busyboxLayer, makeLayer, Pusher, TestRegistry, type PushedImage } from '../helpers/registry';

const BERTH_CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

function berth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BERTH_CLI, ...args], (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('berth CLI', function () {
  this.timeout(60_000);

  describe('command line (node:util parseArgs)', () => {
    it('parses commands, operands and their options', () => {
      const ls = parseCommandLine(['--socket', '/s', 'images', 'ls', '-q']);
      assert.deepEqual(ls.command?.words, ['images', 'ls']);
      assert.equal(ls.values.socket, '/s');
      assert.equal(ls.values.quiet, true);
      const ex = parseCommandLine(['images', 'export', '-o', 'f.tar', 'a:1', 'b:2']);
      assert.equal(ex.values.output, 'f.tar');
      assert.deepEqual(ex.operands, ['a:1', 'b:2']);
      assert.deepEqual(parseCommandLine(['pull', 'busybox']).operands, ['busybox']);
      assert.equal(parseCommandLine(['--help']).command, undefined);
    });

    it('refuses unknown flags, missing values, misplaced options and wrong operand counts', () => {
      const bad = (argv: string[], re: RegExp) => assert.throws(() => parseCommandLine(argv), re, argv.join(' '));
      bad(['--bogus', 'version'], /Unknown option '--bogus'/);
      bad(['images', 'export', 'a:1', '-o'], /argument missing/);
      bad(['version', '--json'], /version takes no --json/);
      bad(['pull'], /pull takes REF/);
      bad(['pull', 'a', 'b'], /pull takes REF only/);
      bad(['images', 'export'], /images export needs REF\.\.\./);
      bad(['images', 'list'], /did you mean images ls, images import, images export/);
      bad(['frobnicate'], /unknown command "frobnicate"/);
    });

    it('exits 2 with one line saying why, then the usage', async () => {
      for (const argv of [['--bogus'], ['images', 'export', '-o'], ['images']]) {
        const r = await berth(argv);
        assert.equal(r.code, 2, argv.join(' '));
        const [first, second] = r.stderr.split('\n');
        assert.match(first, /^berth: /);
        assert.match(second, /^usage: berth /);
      }
      assert.equal((await berth(['--help'])).code, 0);
    });

    it('says in one line that berthd is not running, and where it looked', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
      try {
        const missing = path.join(dir, 'berth.sock');
        let r = await berth(['--socket', missing, 'version']);
        assert.equal(r.code, 1);
        assert.equal(r.stderr, `berth: berthd is not running: no socket at ${missing} (set --socket PATH)\n`);
        r = await berth(['--state', dir, 'pull', 'busybox']);
        assert.equal(r.stderr, `berth: berthd is not running: no socket at ${path.join(dir, 'admin.sock')} (set --state DIR or --admin-socket PATH)\n`);
        // A socket file nobody listens on (berthd killed): bound, never listened.
        const stale = path.join(dir, 'stale.sock');
        execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', stale]);
        r = await berth(['--socket', stale, 'images', 'ls']);
        assert.equal(r.stderr, `berth: berthd is not running: nothing listens on ${stale} (set --socket PATH)\n`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('failed calls', () => {
    it('a socket that does not speak CRI: one line naming it, no gRPC status text', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
      const sock = path.join(dir, 'other.sock');
      const conns = new Set<net.Socket>();
      const other = net.createServer((c) => {
        conns.add(c);
        c.on('error', () => undefined);
        c.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      });
      await new Promise<void>((r) => other.listen(sock, r));
      try {
        const r = await berth(['--socket', sock, 'version']);
        assert.equal(r.code, 1);
        assert.match(r.stderr, new RegExp(`^berth: ${sock} does not answer as berthd does \\(.+\\); is it berthd's CRI socket\\?\n$`));
        assert.doesNotMatch(r.stderr, /UNAVAILABLE|Resolution note/);
      } finally {
        for (const c of conns) c.destroy();
        await new Promise((r) => other.close(r));
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("prints berthd's own message for other statuses, and says so when berthd does not answer in time", () => {
      const status = (code: grpc.status, details: string): grpc.ServiceError =>
        Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details, metadata: new grpc.Metadata() });
      assert.equal(callErrorLine(status(grpc.status.NOT_FOUND, 'image "x" not found'), '/s'), 'image "x" not found');
      assert.equal(callErrorLine(status(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded after 10.001s'), '/s'), 'berthd at /s did not answer in time');
      assert.equal(callErrorLine(status(grpc.status.INTERNAL, ''), '/s'), 'internal');
    });
  });

  describe('output', () => {
    it('prints sizes in decimal units and aligns tables', () => {
      assert.deepEqual([0, 999, 1000, 4_870_000, 812_345, 12_345_678_901].map(humanSize), ['0 B', '999 B', '1.00 kB', '4.87 MB', '812 kB', '12.3 GB']);
      assert.equal(table(['A', 'LONGER', 'C'], [['xxxx', 'y', 'z'], ['1', '22', '']]), 'A     LONGER  C\nxxxx  y       z\n1     22\n');
    });

    const events: PullEvent[] = [
      { event: 'layers', layers: [{ digest: 'sha256:' + 'a'.repeat(64), size: 2_000_000 }, { digest: 'sha256:' + 'b'.repeat(64), size: 500 }] },
      { event: 'progress', layer: 0, received: 500_000 },
      { event: 'progress', layer: 0, received: 1_000_000 },
      { event: 'layer', layer: 1, outcome: 'present' },
      { event: 'layer', layer: 0, outcome: 'streamed' },
      { event: 'done', image: { id: 'sha256:' + 'c'.repeat(64), repoTags: ['r/x:1'], size: 2_000_500 } },
    ];

    it('redraws per-layer progress in place on a terminal', () => {
      let out = '';
      const view = new PullView((s) => (out += s), true, 'r/x:1');
      for (const e of events) view.event(e);
      assert.match(out, /\x1b\[2Kaaaaaaaaaaaa {2}downloading \[={10} {10}\] 1\.00 MB \/ 2\.00 MB\n/);
      assert.match(out, /\x1b\[2A/, 'the cursor goes back up over the two layer lines');
      assert.match(out, /\x1b\[2Kbbbbbbbbbbbb {2}already present {2}500 B\n/);
      assert.match(out, /pulled r\/x:1: sha256:c{64} \(2\.00 MB\)\n$/);
    });

    it('prints plain lines, one per layer state change, when not on a terminal', () => {
      let out = '';
      const view = new PullView((s) => (out += s), false, 'r/x:1');
      for (const e of events) view.event(e);
      assert.equal(
        out,
        [
          'aaaaaaaaaaaa  downloading  2.00 MB',
          'bbbbbbbbbbbb  already present  500 B',
          'aaaaaaaaaaaa  pulled  2.00 MB',
          `pulled r/x:1: sha256:${'c'.repeat(64)} (2.00 MB)`,
          '',
        ].join('\n'),
      );
    });
  });

  describe('against a real berthd', () => {
    let registry: TestRegistry;
    let app: PushedImage;
    let d: TestBerthd;
    before(async () => {
      registry = await TestRegistry.start();
      app = await new Pusher(registry.host).pushImage('test/app', 'v1', { layers: [busyboxLayer(), makeLayer({ 'etc/a': 'a\n' })] });
      d = await TestBerthd.start({ configToml: '[image]\npinned_images = ["' + registry.host + '/test/app:v1"]' });
    });
    after(async () => {
      await d?.cleanup();
      await registry?.stop();
    });
    const cli = (args: string[]) => berth(['--socket', d.socket, '--state', d.state, ...args]);

    it('pulls with per-layer progress lines, then lists the image as a table, ids or JSON', async () => {
      const ref = `${registry.host}/test/app:v1`;
      const pulled = await cli(['pull', ref]);
      assert.equal(pulled.code, 0, pulled.stderr);
      const lines = pulled.stdout.trim().split('\n');
      for (const l of app.layers) {
        const id = l.digest.slice(7, 19);
        assert.ok(lines.some((x) => x.startsWith(`${id}  pulled  `)), `${id} done:\n${pulled.stdout}`);
      }
      assert.equal(lines[lines.length - 1].startsWith(`pulled ${ref}: ${app.configDigest} (`), true, pulled.stdout);
      assert.doesNotMatch(pulled.stdout, /\x1b/, 'no terminal escapes in a pipe');

      const again = await cli(['pull', ref]);
      assert.match(again.stdout, /already present/);

      const ls = await cli(['images', 'ls']);
      assert.equal(ls.code, 0, ls.stderr);
      const [header, row] = ls.stdout.trim().split('\n');
      assert.match(header, /^IMAGE +TAG +IMAGE ID +SIZE +PINNED$/);
      assert.equal(row.indexOf('v1'), header.indexOf('TAG'), 'columns line up');
      assert.match(row, new RegExp(`^${registry.host}/test/app +v1 +${app.configDigest.slice(7, 19)} +[\\d.]+ [kM]B +pinned$`));
      assert.equal((await cli(['images', 'ls', '-q'])).stdout, `${app.configDigest}\n`);
      const json = JSON.parse((await cli(['images', 'ls', '--json'])).stdout) as Array<{ id: string; repoTags: string[]; size: number; pinned: boolean }>;
      assert.deepEqual(json.map((i) => [i.id, i.repoTags, i.pinned, typeof i.size]), [[app.configDigest, [ref], true, 'number']]);

      const missing = await cli(['pull', `${registry.host}/test/nope:v1`]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^berth: .*not found\n$/);
    });
  });
});
