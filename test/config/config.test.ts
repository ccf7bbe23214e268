import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  applyOverride,
  defaultConfig,
  loadConfig,
  loadConfigWithSources,
  parseConfig,
  renderConfigReference,
  renderDefaultConfig,
} from '../../src/config/config';
import { parseArgs } from '../../src/daemon/args';
import { BERTHD_MAIN } from '../helpers/berthd';

describe('config', () => {
  it('has built-in defaults that need no file', () => {
    const c = loadConfig(undefined);
    // /etc/berth/config.toml may exist on a dev box; defaults are checked directly.
    const d = defaultConfig();
    assert.equal(d.socket, '/run/berth/berth.sock');
    assert.equal(d.metrics.address, '127.0.0.1:9580');
    assert.equal(d.runtime.default_handler, 'runc');
    assert.ok(d.runtime.handlers.runc && d.runtime.handlers.crun);
    assert.ok(c.socket);
  });

  it('refuses unknown keys, naming them', () => {
    assert.throws(() => parseConfig('[log]\nlevl = "debug"\n'), /unknown key "log\.levl"/);
    assert.throws(() => parseConfig('sockett = "/x"\n'), /unknown key "sockett"/);
    assert.throws(() => parseConfig('[runtime.handlers.kata]\npath = "/x"\nflavour = 1\n'), /unknown key "runtime\.handlers\.kata\.flavour"/);
  });

  it('refuses wrong types and values, naming the key and the reason', () => {
    assert.throws(() => parseConfig('socket = 3\n'), /key "socket" must be a string, got number 3/);
    assert.throws(() => parseConfig('[metrics]\nenabled = "yes"\n'), /key "metrics\.enabled" must be true or false/);
    assert.throws(() => parseConfig('[log]\nlevel = "loud"\n'), /key "log\.level" must be one of error, warn, info, debug/);
    assert.throws(() => parseConfig('[streaming]\nport = 70000\n'), /between 0 and 65535/);
    assert.throws(() => parseConfig('[cni]\nbin_dirs = "/x"\n'), /array of strings/);
    assert.throws(() => parseConfig('log = 1\n'), /"log" must be a table/);
    assert.throws(() => parseConfig('this is not toml'), /not valid TOML/);
  });

  it('merges a file over the defaults, and adds runtime handlers', () => {
    const c = parseConfig('[log]\nformat = "json"\n[runtime.handlers.kata]\npath = "/opt/kata/runtime"\n');
    assert.equal(c.log.format, 'json');
    assert.equal(c.log.level, 'info');
    assert.deepEqual(c.runtime.handlers.kata, { path: '/opt/kata/runtime', root: '' });
    assert.equal(c.runtime.handlers.runc.path, 'runc');
  });

  it('container rlimits: systemd\'s service default for NOFILE, more by name, checked across keys', () => {
    assert.deepEqual(defaultConfig().runtime.default_rlimits, { RLIMIT_NOFILE: { soft: 1024, hard: 524288 } });
    const c = parseConfig('[runtime.default_rlimits.RLIMIT_NOFILE]\nsoft = 4096\n[runtime.default_rlimits.RLIMIT_NPROC]\nsoft = 100\nhard = 200\n');
    assert.deepEqual(c.runtime.default_rlimits, { RLIMIT_NOFILE: { soft: 4096, hard: 524288 }, RLIMIT_NPROC: { soft: 100, hard: 200 } });
    assert.throws(() => parseConfig('[runtime.default_rlimits.RLIMIT_FILES]\nsoft = 1\nhard = 1\n'), /runtime\.default_rlimits\.RLIMIT_FILES: unknown rlimit/);
    assert.throws(() => parseConfig('[runtime.default_rlimits.RLIMIT_NOFILE]\nsoft = 600000\n'), /soft limit 600000 is above the hard limit 524288/);
    assert.throws(() => parseArgs(['--config', '/dev/null', '--set', 'runtime.default_rlimits.RLIMIT_NOFILE.soft=999999']), /above the hard limit/);
    assert.equal(defaultConfig().runtime.enable_unprivileged_ports, true);
    assert.equal(defaultConfig().runtime.enable_unprivileged_icmp, true);
  });

  it('prints a complete default config that parses back to the defaults', () => {
    const text = renderDefaultConfig();
    assert.deepEqual(parseConfig(text), defaultConfig());
    assert.match(text, /# Unix socket the CRI gRPC API is served on/);
    assert.match(renderConfigReference(), /\| `metrics\.address` \| string \| `"127\.0\.0\.1:9580"` \|/);
  });

  it('`berthd config default` prints it', () => {
    const out = execFileSync(process.execPath, [BERTHD_MAIN, 'config', 'default'], { encoding: 'utf8' });
    assert.deepEqual(parseConfig(out), defaultConfig());
  });

  it('lets flags override the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cfg-'));
    try {
      const file = path.join(dir, 'c.toml');
      fs.writeFileSync(file, 'socket = "/a.sock"\n[log]\nlevel = "warn"\n');
      const cmd = parseArgs(['--config', file, '--socket', '/b.sock', '--log-level=debug', '--set', 'image.max_concurrent_downloads=7', '--no-metrics']);
      assert.equal(cmd.kind, 'run');
      if (cmd.kind !== 'run') return;
      assert.equal(cmd.config.socket, '/b.sock');
      assert.equal(cmd.config.log.level, 'debug');
      assert.equal(cmd.config.image.max_concurrent_downloads, 7);
      assert.equal(cmd.config.metrics.enabled, false);
      assert.throws(() => parseArgs(['--config', path.join(dir, 'missing.toml')]), /cannot read config file/);
      assert.throws(() => parseArgs(['--bogus']), /unknown flag "--bogus"/);
      assert.throws(() => parseArgs(['--set', 'log.level=loud']), /must be one of/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('drop-ins and the effective config', () => {
    let dir: string;
    let file: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cfg-'));
      file = path.join(dir, 'config.toml');
      fs.mkdirSync(path.join(dir, 'config.d'));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
    const dropIn = (name: string, text: string) => fs.writeFileSync(path.join(dir, 'config.d', name), text);

    it('merges config.d/*.toml after the main file, in name order, tables key by key', () => {
      fs.writeFileSync(file, '[log]\nlevel = "warn"\nformat = "json"\n[image.credentials."a.example"]\nusername = "a"\n');
      dropIn('20-later.toml', '[log]\nlevel = "debug"\n[image]\npinned_images = ["p2"]\n');
      dropIn('10-first.toml', '[log]\nlevel = "error"\n[image]\npinned_images = ["p1", "p0"]\n[image.credentials."b.example"]\nusername = "b"\n');
      dropIn('30-ignored.conf', 'this is not even toml');
      dropIn('.40-hidden.toml', 'nor this');
      const { config: c, files } = loadConfigWithSources(file);
      assert.deepEqual(files, [file, path.join(dir, 'config.d', '10-first.toml'), path.join(dir, 'config.d', '20-later.toml')]);
      assert.equal(c.log.level, 'debug', 'the last drop-in wins');
      assert.equal(c.log.format, 'json', 'keys a drop-in does not name stay');
      assert.deepEqual(c.image.pinned_images, ['p2'], 'arrays are replaced, not appended');
      assert.deepEqual(Object.keys(c.image.credentials).sort(), ['a.example', 'b.example']);
    });

    it('applies drop-ins without a main file at the default path only, and names the drop-in at fault', () => {
      dropIn('50-bad.toml', '[log]\nlevel = "loud"\n');
      assert.throws(() => loadConfig(file), (e: unknown) => e instanceof Error && /cannot read config file/.test(e.message));
      fs.writeFileSync(file, '');
      assert.throws(() => loadConfig(file), (e: unknown) => e instanceof Error && e.message.includes(path.join(dir, 'config.d', '50-bad.toml')) && /log\.level/.test(e.message));
      dropIn('50-bad.toml', '[runtime.default_rlimits.RLIMIT_NOFILE]\nsoft = 999999\n');
      assert.throws(() => loadConfig(file), /50-bad\.toml: runtime\.default_rlimits\.RLIMIT_NOFILE: soft limit 999999 is above/);
    });

    it('`berthd config dump` prints the effective config (file, drop-ins, flags), secrets redacted', () => {
      fs.writeFileSync(file, '[image.credentials."reg.example"]\nusername = "u"\npassword = "hunter2"\n');
      dropIn('10-level.toml', '[log]\nlevel = "warn"\n');
      const out = execFileSync(process.execPath, [BERTHD_MAIN, 'config', 'dump', '--config', file, '--set', 'streaming.port=4321'], { encoding: 'utf8' });
      const c = parseConfig(out);
      assert.equal(c.log.level, 'warn');
      assert.equal(c.streaming.port, 4321);
      assert.equal(c.image.credentials['reg.example'].username, 'u');
      assert.equal(c.image.credentials['reg.example'].password, '<redacted>');
      assert.doesNotMatch(out, /hunter2/);
      const bad = spawnSync(process.execPath, [BERTHD_MAIN, 'config', 'dump', '--bogus'], { encoding: 'utf8' });
      assert.equal(bad.status, 2);
    });
  });

  it('applies typed overrides', () => {
    const c = defaultConfig();
    applyOverride(c, 'cni.bin_dirs', '/a,/b');
    applyOverride(c, 'runtime.handlers.runc.root', '/r');
    assert.deepEqual(c.cni.bin_dirs, ['/a', '/b']);
    assert.equal(c.runtime.handlers.runc.root, '/r');
    assert.throws(() => applyOverride(c, 'nope.x', '1'), /unknown config key "nope\.x"/);
    assert.throws(() => applyOverride(c, 'streaming.port', 'abc'), /must be an integer/);
  });

  it('refuses to start on a bad config file with the key and reason', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cfg-'));
    try {
      const file = path.join(dir, 'c.toml');
      fs.writeFileSync(file, '[metrics]\nport = 1\n');
      const r = spawnSync(process.execPath, [BERTHD_MAIN, '--config', file], { encoding: 'utf8' });
      assert.equal(r.status, 2);
      assert.match(r.stderr, /unknown key "metrics\.port"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('config docs', () => {
  const repo = path.resolve(__dirname, '..', '..', '..');
  it('deploy/config.toml is the current default config (make docs)', () => {
    assert.equal(fs.readFileSync(path.join(repo, 'deploy', 'config.toml'), 'utf8'), renderDefaultConfig());
  });
  it('README.md carries the current config reference (make docs)', () => {
    const readme = fs.readFileSync(path.join(repo, 'README.md'), 'utf8');
    const m = readme.match(/<!-- config-reference:begin -->\n([\s\S]*?)<!-- config-reference:end -->/);
    assert.ok(m, 'README has the config-reference markers');
    assert.equal(m[1], renderConfigReference());
  });
});
