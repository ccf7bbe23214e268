// `make deb`: the package holds berth under /usr with production npm
// dependencies only, the native helpers, the unit, the default config as a
// conffile and the examples as documentation; and the berthd it carries,
// run from the unpacked package, serves CRI to crictl. (Installing it with
// apt would change the machine every other test shares, so that stays a
// manual check: apt install ./build/berth_*.deb, then apt purge berth.)
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { berthdNodeEnv, berthdNodeFlags, TestBerthd } from '../helpers/berthd';

const REPO = path.resolve(__dirname, '..', '..', '..');

describe('make deb', function () {
  this.timeout(300_000);
  let out: string;
  let deb: string;
  let tree: string;

  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-deb-'));
    execFileSync(path.join(REPO, 'deploy', 'deb', 'build-deb.sh'), { env: { ...process.env, BERTH_DEB_OUT: out }, stdio: 'pipe' });
    const debs = fs.readdirSync(out).filter((f) => /^berth_.+\.deb$/.test(f));
    assert.equal(debs.length, 1, `one package in ${out}: ${debs.join(', ')}`);
    deb = path.join(out, debs[0]);
    tree = path.join(out, 'unpacked');
    execFileSync('dpkg-deb', ['-x', deb, tree]);
  });
  after(() => fs.rmSync(out, { recursive: true, force: true }));

  it('holds berth under /usr, the helpers, the unit, the default config as a conffile and the examples as documentation', () => {
    for (const f of [
      'usr/bin/berthd',
      'usr/bin/berth',
      'usr/lib/berth/dist/src/daemon/main.js',
      ...['berth-shim', 'berth-exec', 'berth-pinns', 'berth-nsdial', 'berth-notify', 'berth-launch', 'berth-malloc.node', 'berth-durable.node'].map((b) => `usr/lib/berth/build/${b}`),
      'lib/systemd/system/berthd.service',
      'etc/berth/config.toml',
      'usr/share/doc/berth/examples/cni/10-berth-bridge.conflist',
      'usr/share/doc/berth/kubelet.md',
    ]) {
      assert.ok(fs.existsSync(path.join(tree, f)), f);
    }
    const launcher = fs.readFileSync(path.join(tree, 'usr/bin/berthd'), 'utf8');
    assert.ok(launcher.includes('/usr/lib/berth/dist/src/daemon/main.js'));
    // The deployed node flags and environment (an operator's own value of a variable wins).
    for (const f of berthdNodeFlags()) assert.ok(launcher.includes(` ${f} `), `the launcher passes ${f}`);
    for (const [name, value] of Object.entries(berthdNodeEnv())) assert.ok(launcher.includes(`export ${name}="\${${name}:-${value}}"`), `the launcher sets ${name}`);
    assert.match(fs.readFileSync(path.join(tree, 'lib/systemd/system/berthd.service'), 'utf8'), /^ExecStart=\/usr\/bin\/berthd /m);
    assert.equal(
      fs.readFileSync(path.join(tree, 'etc/berth/config.toml'), 'utf8'),
      fs.readFileSync(path.join(REPO, 'deploy', 'config.toml'), 'utf8'),
    );
    assert.equal(execFileSync('dpkg-deb', ['-f', deb, 'Package'], { encoding: 'utf8' }).trim(), 'berth');
    const conffiles = spawnSync('dpkg-deb', ['-I', deb, 'conffiles'], { encoding: 'utf8' }).stdout;
    assert.equal(conffiles.trim(), '/etc/berth/config.toml');
  });

  it('carries the production npm dependencies and none of the development ones', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const modules = path.join(tree, 'usr/lib/berth/node_modules');
    for (const dep of Object.keys(pkg.dependencies)) assert.ok(fs.existsSync(path.join(modules, dep, 'package.json')), `${dep} is packaged`);
    // What production needs, transitively (protobufjs brings @types/node, for one).
    const production = new Set(
      execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO, encoding: 'utf8' })
        .split('\n')
        .map((p) => p.split('node_modules/').pop() ?? ''),
    );
    const devOnly = Object.keys(pkg.devDependencies).filter((d) => !production.has(d));
    assert.ok(devOnly.includes('typescript') && devOnly.includes('mocha'), devOnly.join(', '));
    for (const dep of devOnly) assert.ok(!fs.existsSync(path.join(modules, dep)), `${dep} (dev) is not packaged`);
  });

  it("its berthd, run from the unpacked package, serves crictl", async () => {
    const d = await TestBerthd.start({ main: path.join(tree, 'usr/lib/berth/dist/src/daemon/main.js') });
    try {
      const v = await d.cri.runtime.Version({ version: '' });
      assert.equal(v.runtimeName, 'berth');
      const crictl = spawnSync('crictl', ['--runtime-endpoint', `unix://${d.socket}`, 'version'], { encoding: 'utf8' });
      if (!crictl.error) {
        assert.equal(crictl.status, 0, crictl.stderr);
        assert.match(crictl.stdout, /RuntimeName:\s+berth/);
      }
      // Quiet after its calls, it loads the packaged malloc trim module (found next to the other helpers).
      const trimModule = path.join(tree, 'usr/lib/berth/build/berth-malloc.node');
      for (let i = 0; i < 100 && !fs.readFileSync(`/proc/${d.proc?.pid}/maps`, 'utf8').includes(trimModule); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(fs.readFileSync(`/proc/${d.proc?.pid}/maps`, 'utf8').includes(trimModule), `berthd maps ${trimModule}`);
    } finally {
      await d.cleanup();
    }
  });
});
