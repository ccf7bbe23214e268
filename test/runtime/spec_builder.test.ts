// Unit tests for the container spec builder: one block per rule.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/errors';
import {
  buildContainerSpec,
  clampRlimits,
  DEFAULT_MASKED_PATHS,
  DEFAULT_PATH_ENV,
  DEFAULT_READONLY_PATHS,
  execProcess,
  mergeEnv,
  resolveArgs,
  resolveStopSignal,
} from '../../src/runtime/spec/builder';
import { capabilitiesFromMask, hardLimitsFrom } from '../../src/runtime/spec/host_info';
import { clampOomScoreAdj, toOciResources } from '../../src/runtime/spec/resources';
import { DEFAULT_CAPABILITIES } from '../../src/runtime/spec/security';
import { CLONE_NAMESPACE_FLAGS, defaultSeccompProfile } from '../../src/runtime/spec/seccomp_default';
import type { OciSpec } from '../../src/runtime/spec/oci_types';
import {
  containerConfig,
  fakeHost,
  makeBusyboxRootfs,
  mount,
  podConfig,
  resources,
  sandboxInfo,
  specInput,
} from './fixtures';
import type { MountInfoEntry } from '../../src/util/mountinfo';

function expectKind(fn: () => unknown, kind: string, text?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BerthError, `expected a BerthError, got ${String(err)}`);
    assert.equal(err.kind, kind, err.message);
    if (text) assert.match(err.message, text);
    return true;
  });
}


/** A mount table entry for / with the given optional fields (its propagation). */
function rootMount(optional: string[]): MountInfoEntry {
  return { mountPoint: '/', root: '/', optional, fsType: 'ext4', source: '/dev/vda', superOptions: 'rw' };
}

describe('runtime/spec builder', () => {
  let tmp: string;
  let rootfs: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-spec-'));
    rootfs = makeBusyboxRootfs(path.join(tmp, 'rootfs'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const build = (p: Parameters<typeof specInput>[1] = {}): OciSpec => buildContainerSpec(specInput(rootfs, p));

  describe('rlimits', () => {
    it('sets the configured rlimits on the process (and so on execs), inheriting none from berthd', () => {
      assert.equal(build().process.rlimits, undefined);
      const rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 524288 }];
      const spec = build({ rlimits });
      assert.deepEqual(spec.process.rlimits, rlimits);
      assert.deepEqual(execProcess(spec.process, ['sh']).rlimits, rlimits);
    });

    it('lowers them to berthd\'s own hard limits when it lacks CAP_SYS_RESOURCE, with a warning', () => {
      const warnings: string[] = [];
      const rlimits = [
        { type: 'RLIMIT_NOFILE', soft: 1024, hard: 524277 },
        { type: 'RLIMIT_NPROC', soft: 50000, hard: 60007 },
      ];
      assert.deepEqual(clampRlimits(rlimits, { RLIMIT_NOFILE: 19997, RLIMIT_NPROC: 9997 }, (w) => warnings.push(w)), [
        { type: 'RLIMIT_NOFILE', soft: 1024, hard: 19997 },
        { type: 'RLIMIT_NPROC', soft: 9997, hard: 9997 },
      ]);
      assert.match(warnings.join('\n'), /RLIMIT_NOFILE hard limit 524277 lowered to 19997: berthd lacks CAP_SYS_RESOURCE/);
      // The same clamp for the next container: applied, not reported again.
      assert.deepEqual(clampRlimits(rlimits, { RLIMIT_NOFILE: 19997, RLIMIT_NPROC: 9997 }, () => assert.fail('reported twice')), [
        { type: 'RLIMIT_NOFILE', soft: 1024, hard: 19997 },
        { type: 'RLIMIT_NPROC', soft: 9997, hard: 9997 },
      ]);
      assert.deepEqual(clampRlimits(rlimits, undefined, () => assert.fail('no warning')), rlimits);
      assert.deepEqual(
        hardLimitsFrom('Limit                     Soft Limit           Hard Limit           Units\nMax open files            20000                20000                files\nMax core file size        0                    unlimited            bytes\n'),
        { RLIMIT_NOFILE: 20000 },
      );
    });
  });

  describe('command, args, env, working dir', () => {
    const image = { Entrypoint: ['/entry'], Cmd: ['cmd1', 'cmd2'] };
    it('uses image Entrypoint + Cmd when CRI gives neither', () => {
      assert.deepEqual(resolveArgs([], [], image), ['/entry', 'cmd1', 'cmd2']);
    });
    it('CRI command replaces Entrypoint and drops Cmd', () => {
      assert.deepEqual(resolveArgs(['/bin/x'], [], image), ['/bin/x']);
      assert.deepEqual(resolveArgs(['/bin/x'], ['a'], image), ['/bin/x', 'a']);
    });
    it('CRI args alone replace Cmd and keep Entrypoint', () => {
      assert.deepEqual(resolveArgs([], ['a', 'b'], image), ['/entry', 'a', 'b']);
    });
    it('treats Entrypoint [""] as no entrypoint', () => {
      assert.deepEqual(resolveArgs([], [], { Entrypoint: [''], Cmd: ['/bin/sh'] }), ['/bin/sh']);
    });
    it('rejects a container with no command at all', () => {
      expectKind(() => resolveArgs([], [], {}), 'INVALID_ARGUMENT', /no command/);
    });
    it('merges env: default PATH, HOSTNAME, image env, CRI env wins', () => {
      const spec = build({
        image: { Env: ['PATH=/img/bin', 'A=image', 'B=image'] },
        config: containerConfig({ command: ['/bin/sh'], envs: [{ key: 'B', value: Buffer.from('cri') }, { key: 'C', value: Buffer.from('') }] }),
      });
      assert.deepEqual(spec.process.env, ['PATH=/img/bin', 'HOSTNAME=podhost', 'A=image', 'B=cri', 'C=']);
    });
    it('adds the default PATH when the image has none', () => {
      const spec = build();
      assert.ok(spec.process.env?.includes(DEFAULT_PATH_ENV));
    });
    it('mergeEnv removes a key given without "="', () => {
      assert.deepEqual(mergeEnv(['A=1', 'B=2', 'C=3'], ['B', 'C=4']), ['A=1', 'C=4']);
    });
    it('uses the node hostname for $HOSTNAME with host network (empty pod hostname)', () => {
      const spec = build({ sandbox: sandboxInfo({ hostname: '', network: { kind: 'host' }, uts: { kind: 'host' } }) });
      assert.ok(spec.process.env?.includes(`HOSTNAME=${os.hostname()}`));
      assert.equal(spec.hostname, undefined);
    });
    it('working dir: CRI, then image, then /', () => {
      assert.equal(build({ image: { WorkingDir: '/img' } }).process.cwd, '/img');
      assert.equal(
        build({ image: { WorkingDir: '/img' }, config: containerConfig({ command: ['x'], workingDir: '/cri' }) }).process.cwd,
        '/cri',
      );
      assert.equal(build().process.cwd, '/');
      expectKind(() => build({ image: { WorkingDir: 'rel' } }), 'INVALID_ARGUMENT', /absolute/);
    });
    it('sets process.terminal from tty', () => {
      assert.equal(build({ config: containerConfig({ command: ['x'], tty: true }) }).process.terminal, true);
      assert.equal(build().process.terminal, false);
    });
    it('resolves the stop signal', () => {
      assert.equal(resolveStopSignal({}), 'SIGTERM');
      assert.equal(resolveStopSignal({ StopSignal: 'SIGQUIT' }), 'SIGQUIT');
      assert.equal(resolveStopSignal({ StopSignal: 'usr1' }), 'SIGUSR1');
      assert.equal(resolveStopSignal({ StopSignal: '9' }), 'SIGKILL');
      expectKind(() => resolveStopSignal({ StopSignal: 'SIGNOPE' }), 'INVALID_ARGUMENT');
    });
    it('execProcess keeps user/env/caps and replaces args', () => {
      const spec = build();
      const p = execProcess(spec.process, ['id', '-u']);
      assert.deepEqual(p.args, ['id', '-u']);
      assert.deepEqual(p.env, spec.process.env);
      assert.deepEqual(p.capabilities, spec.process.capabilities);
      assert.equal(p.terminal, false);
    });
  });

  describe('user', () => {
    const user = (sc: Parameters<typeof containerConfig>[1], imageUser?: string): OciSpec['process']['user'] =>
      build({ config: containerConfig({ command: ['x'] }, sc), image: { User: imageUser } }).process.user;

    it('defaults to root with primary gid', () => {
      assert.deepEqual(user({}), { uid: 0, gid: 0, additionalGids: [0] });
    });
    it('run_as_user looks the uid up for the primary gid and groups', () => {
      assert.deepEqual(user({ runAsUser: { value: '1000' } }), { uid: 1000, gid: 1000, additionalGids: [1000, 2000] });
    });
    it('an unknown uid gets gid 0', () => {
      assert.deepEqual(user({ runAsUser: { value: '4242' } }), { uid: 4242, gid: 0, additionalGids: [0] });
    });
    it('run_as_username resolves through /etc/passwd', () => {
      assert.deepEqual(user({ runAsUsername: 'app' }), { uid: 1000, gid: 1000, additionalGids: [1000, 2000] });
      expectKind(() => user({ runAsUsername: 'ghost' }), 'INVALID_ARGUMENT', /ghost.*passwd/);
    });
    it('run_as_group overrides the primary gid; needs a user', () => {
      assert.deepEqual(user({ runAsUser: { value: '1000' }, runAsGroup: { value: '3000' } }), {
        uid: 1000,
        gid: 3000,
        additionalGids: [2000, 3000],
      });
      expectKind(() => user({ runAsGroup: { value: '3000' } }), 'INVALID_ARGUMENT', /without run_as_user/);
    });
    it('adds supplemental groups; Strict policy keeps only them', () => {
      assert.deepEqual(user({ runAsUser: { value: '1000' }, supplementalGroups: ['5', '7'] }).additionalGids, [5, 7, 1000, 2000]);
      assert.deepEqual(
        user({ runAsUser: { value: '1000' }, supplementalGroups: ['5'], supplementalGroupsPolicy: 'Strict' }).additionalGids,
        [5],
      );
    });
    it('image User forms: name, uid, uid:gid, name:group', () => {
      assert.deepEqual(user({}, 'app'), { uid: 1000, gid: 1000, additionalGids: [1000, 2000] });
      assert.deepEqual(user({}, '1000'), { uid: 1000, gid: 1000, additionalGids: [1000, 2000] });
      assert.deepEqual(user({}, '1234:5678'), { uid: 1234, gid: 5678, additionalGids: [5678] });
      assert.deepEqual(user({}, 'app:grp'), { uid: 1000, gid: 3000, additionalGids: [2000, 3000] });
      expectKind(() => user({}, 'app:nogroup'), 'INVALID_ARGUMENT', /nogroup.*group/);
    });
    it('CRI user wins over the image User', () => {
      assert.equal(user({ runAsUser: { value: '0' } }, 'app').uid, 0);
    });
    it('never follows /etc/passwd symlinks out of the rootfs', () => {
      const evil = makeBusyboxRootfs(path.join(tmp, 'evil'));
      // A host file the link would reach if followed on the host.
      const hostPasswd = path.join(tmp, 'host-passwd');
      fs.writeFileSync(hostPasswd, 'hostonly:x:777:777::/:/bin/sh\n');
      fs.rmSync(path.join(evil, 'etc/passwd'));
      fs.symlinkSync(hostPasswd, path.join(evil, 'etc/passwd'));
      const input = specInput(evil, { config: containerConfig({ command: ['x'] }, { runAsUsername: 'hostonly' }) });
      expectKind(() => buildContainerSpec(input), 'INVALID_ARGUMENT', /hostonly/);
      // A relative escape is clamped at the rootfs too; an in-rootfs target is followed.
      fs.rmSync(path.join(evil, 'etc/passwd'));
      fs.writeFileSync(path.join(evil, 'etc/real-passwd'), 'inside:x:55:66::/:/bin/sh\n');
      fs.symlinkSync('../../../../../../etc/real-passwd', path.join(evil, 'etc/passwd'));
      const ok = buildContainerSpec(
        specInput(evil, { config: containerConfig({ command: ['x'] }, { runAsUsername: 'inside' }) }),
      );
      assert.equal(ok.process.user.uid, 55);
      assert.equal(ok.process.user.gid, 66);
    });
    it('refuses a non-regular /etc/passwd (a FIFO must not hang the daemon)', () => {
      const fifoRoot = makeBusyboxRootfs(path.join(tmp, 'fifo'));
      fs.rmSync(path.join(fifoRoot, 'etc/passwd'));
      execFileSync('mkfifo', [path.join(fifoRoot, 'etc/passwd')]);
      const input = specInput(fifoRoot, { config: containerConfig({ command: ['x'] }, { runAsUsername: 'app' }) });
      expectKind(() => buildContainerSpec(input), 'INVALID_ARGUMENT', /not a regular file/);
    });
  });

  describe('mounts', () => {
    it('an idmapped volume (Mount.uid_mappings/gid_mappings) keeps its maps on the bind; one range each', () => {
      const m = { containerId: 0, hostId: 5000, length: 65536 };
      const spec = build({ config: containerConfig({ command: ['x'], mounts: [mount({ containerPath: '/v', hostPath: rootfs, uidMappings: [m], gidMappings: [m] })] }) });
      const v = spec.mounts.find((x) => x.destination === '/v');
      assert.deepEqual(v?.uidMappings, [{ containerID: 0, hostID: 5000, size: 65536 }]);
      assert.deepEqual(v?.gidMappings, [{ containerID: 0, hostID: 5000, size: 65536 }]);
      expectKind(
        () => build({ config: containerConfig({ command: ['x'], mounts: [mount({ containerPath: '/v', hostPath: rootfs, uidMappings: [m, m], gidMappings: [m] })] }) }),
        'INVALID_ARGUMENT',
        /exactly one uid and one gid mapping/,
      );
      expectKind(
        () => build({ config: containerConfig({ command: ['x'], mounts: [mount({ containerPath: '/v', hostPath: rootfs, uidMappings: [m] })] }) }),
        'INVALID_ARGUMENT',
        /exactly one uid and one gid mapping/,
      );
    });
    it('has the default mounts, /sys read-only, pod files bound', () => {
      const spec = build({
        sandbox: sandboxInfo({ hostsPath: rootfs + '/etc/passwd', resolvConfPath: rootfs + '/etc/group', shmPath: tmp }),
      });
      const byDest = new Map(spec.mounts.map((m) => [m.destination, m]));
      for (const d of ['/proc', '/dev', '/dev/pts', '/dev/mqueue', '/sys', '/sys/fs/cgroup']) assert.ok(byDest.has(d), d);
      assert.ok(byDest.get('/sys')?.options?.includes('ro'));
      assert.ok(byDest.get('/sys/fs/cgroup')?.options?.includes('ro'));
      assert.deepEqual(byDest.get('/dev/shm'), { destination: '/dev/shm', type: 'bind', source: tmp, options: ['rbind', 'rprivate', 'rw'] });
      assert.equal(byDest.get('/etc/hosts')?.source, rootfs + '/etc/passwd');
      assert.equal(byDest.get('/etc/resolv.conf')?.type, 'bind');
      assert.equal(byDest.has('/etc/hostname'), false);
      assert.equal(spec.mounts.filter((m) => m.destination === '/dev/shm').length, 1);
    });
    it('pod files are read-only with a read-only rootfs', () => {
      const spec = build({
        config: containerConfig({ command: ['x'] }, { readonlyRootfs: true }),
        sandbox: sandboxInfo({ hostsPath: rootfs + '/etc/passwd' }),
      });
      assert.equal(spec.root.readonly, true);
      assert.ok(spec.mounts.find((m) => m.destination === '/etc/hosts')?.options?.includes('ro'));
    });
    it('CRI mounts: readonly and propagation modes', () => {
      const shared = [rootMount(['shared:1'])];
      const spec = build({
        mountInfo: () => shared,
        config: containerConfig({
          command: ['x'],
          mounts: [
            mount({ containerPath: '/a', hostPath: tmp, readonly: true }),
            mount({ containerPath: '/b', hostPath: tmp, propagation: 'PROPAGATION_HOST_TO_CONTAINER' }),
            mount({ containerPath: '/c', hostPath: tmp, propagation: 'PROPAGATION_BIDIRECTIONAL' }),
          ],
        }),
      });
      const opts = (d: string): string[] | undefined => spec.mounts.find((m) => m.destination === d)?.options;
      assert.deepEqual(opts('/a'), ['rbind', 'rprivate', 'ro']);
      assert.deepEqual(opts('/b'), ['rbind', 'rslave', 'rw']);
      assert.deepEqual(opts('/c'), ['rbind', 'rshared', 'rw']);
      assert.equal(spec.linux.rootfsPropagation, 'rshared');
    });
    it('host-to-container on a private mount is refused with a reason', () => {
      expectKind(
        () =>
          build({
            mountInfo: () => [rootMount([])],
            config: containerConfig({
              command: ['x'],
              mounts: [mount({ containerPath: '/b', hostPath: tmp, propagation: 'PROPAGATION_HOST_TO_CONTAINER' })],
            }),
          }),
        'FAILED_PRECONDITION',
        /private/,
      );
    });
    it('a missing host path is invalidArgument naming the path', () => {
      const missing = path.join(tmp, 'does-not-exist');
      expectKind(
        () => build({ config: containerConfig({ command: ['x'], mounts: [mount({ containerPath: '/m', hostPath: missing })] }) }),
        'INVALID_ARGUMENT',
        new RegExp(missing),
      );
    });
    it('a CRI mount replaces the default at the same destination; /dev replaces everything under it', () => {
      const spec = build({
        config: containerConfig({ command: ['x'], mounts: [mount({ containerPath: '/dev', hostPath: tmp })] }),
      });
      assert.equal(spec.mounts.filter((m) => m.destination.startsWith('/dev')).length, 1);
      assert.equal(spec.mounts.find((m) => m.destination === '/dev')?.type, 'bind');
    });
    it('a CRI /etc/hosts wins over the pod file; selinux_relabel is ignored', () => {
      const spec = build({
        sandbox: sandboxInfo({ hostsPath: rootfs + '/etc/passwd' }),
        config: containerConfig({
          command: ['x'],
          mounts: [mount({ containerPath: '/etc/hosts', hostPath: rootfs + '/etc/group', selinuxRelabel: true })],
        }),
      });
      const hosts = spec.mounts.filter((m) => m.destination === '/etc/hosts');
      assert.equal(hosts.length, 1);
      assert.equal(hosts[0].source, rootfs + '/etc/group');
    });
    it('sorts CRI mounts so parents come before children', () => {
      const spec = build({
        config: containerConfig({
          command: ['x'],
          mounts: [mount({ containerPath: '/a/b/c', hostPath: tmp }), mount({ containerPath: '/a', hostPath: tmp })],
        }),
      });
      const order = spec.mounts.map((m) => m.destination).filter((d) => d.startsWith('/a'));
      assert.deepEqual(order, ['/a', '/a/b/c']);
    });
    it('recursive read-only needs runtime support', () => {
      const cfg = containerConfig({
        command: ['x'],
        mounts: [mount({ containerPath: '/r', hostPath: tmp, readonly: true, recursiveReadOnly: true })],
      });
      expectKind(() => build({ config: cfg }), 'INVALID_ARGUMENT', /recursive read-only/);
      const spec = build({ config: cfg, recursiveReadOnlyMounts: true });
      assert.deepEqual(spec.mounts.find((m) => m.destination === '/r')?.options, ['rbind', 'rprivate', 'rro']);
    });
    it('privileged gets rw /sys and cgroup', () => {
      const spec = build({ sandboxConfig: podConfig(true), config: containerConfig({ command: ['x'] }, { privileged: true }) });
      assert.ok(spec.mounts.find((m) => m.destination === '/sys')?.options?.includes('rw'));
      assert.ok(spec.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.options?.includes('rw'));
    });
  });

  describe('capabilities', () => {
    const caps = (sc: Parameters<typeof containerConfig>[1]): string[] | undefined =>
      build({ config: containerConfig({ command: ['x'] }, sc), sandboxConfig: podConfig(true) }).process.capabilities?.bounding;

    it('gives the default set, as effective, permitted and bounding', () => {
      const spec = build();
      const c = spec.process.capabilities;
      assert.deepEqual(new Set(c?.bounding), new Set(DEFAULT_CAPABILITIES));
      assert.deepEqual(c?.effective, c?.bounding);
      assert.deepEqual(c?.permitted, c?.bounding);
      assert.equal(c?.inheritable, undefined);
      assert.equal(c?.ambient, undefined);
    });
    it('add and drop, with or without CAP_ prefix, any case', () => {
      const c = caps({ capabilities: { addCapabilities: ['net_admin', 'CAP_SYS_PTRACE'], dropCapabilities: ['CHOWN'], addAmbientCapabilities: [] } });
      assert.ok(c?.includes('CAP_NET_ADMIN') && c.includes('CAP_SYS_PTRACE'));
      assert.ok(!c?.includes('CAP_CHOWN'));
    });
    it('"ALL" in add gives what berth holds; "ALL" in drop gives none plus adds', () => {
      assert.deepEqual(
        caps({ capabilities: { addCapabilities: ['ALL'], dropCapabilities: ['CHOWN'], addAmbientCapabilities: [] } }),
        fakeHost().capabilities.filter((c) => c !== 'CAP_CHOWN'),
      );
      assert.deepEqual(caps({ capabilities: { addCapabilities: ['KILL'], dropCapabilities: ['all'], addAmbientCapabilities: [] } }), [
        'CAP_KILL',
      ]);
    });
    it('rejects unknown names and capabilities berth lacks', () => {
      expectKind(() => caps({ capabilities: { addCapabilities: ['FLY'], dropCapabilities: [], addAmbientCapabilities: [] } }), 'INVALID_ARGUMENT');
      expectKind(
        () => caps({ capabilities: { addCapabilities: ['SYS_RESOURCE'], dropCapabilities: [], addAmbientCapabilities: [] } }),
        'FAILED_PRECONDITION',
        /CAP_SYS_RESOURCE/,
      );
    });
    it('parses /proc status masks', () => {
      assert.deepEqual(capabilitiesFromMask('00000000a80425fb').sort(), [...DEFAULT_CAPABILITIES].sort());
    });
  });

  describe('privileged', () => {
    it('needs a privileged pod', () => {
      expectKind(() => build({ config: containerConfig({ command: ['x'] }, { privileged: true }) }), 'INVALID_ARGUMENT', /privileged/);
    });
    it('all caps, host devices, all devices allowed, nothing masked, no seccomp', () => {
      const dev = { path: '/dev/fuse', type: 'c' as const, major: 10, minor: 229 };
      const spec = build({
        sandboxConfig: podConfig(true),
        hostDevices: () => [dev],
        config: containerConfig({ command: ['x'] }, { privileged: true, seccomp: { profileType: 'RuntimeDefault', localhostRef: '' } }),
      });
      assert.deepEqual(spec.process.capabilities?.bounding, fakeHost().capabilities);
      assert.deepEqual(spec.linux.devices, [dev]);
      assert.deepEqual(spec.linux.resources?.devices, [{ allow: true, access: 'rwm' }]);
      assert.deepEqual(spec.linux.maskedPaths, []);
      assert.deepEqual(spec.linux.readonlyPaths, []);
      assert.equal(spec.linux.seccomp, undefined);
    });
  });

  describe('no_new_privs, seccomp, apparmor', () => {
    it('no_new_privs follows the security context', () => {
      assert.equal(build().process.noNewPrivileges, false);
      assert.equal(build({ config: containerConfig({ command: ['x'] }, { noNewPrivs: true }) }).process.noNewPrivileges, true);
    });
    it('RuntimeDefault gives the default profile; unset and Unconfined give none', () => {
      const rd = build({ config: containerConfig({ command: ['x'] }, { seccomp: { profileType: 'RuntimeDefault', localhostRef: '' } }) });
      assert.equal(rd.linux.seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
      assert.equal(build().linux.seccomp, undefined);
      const un = build({ config: containerConfig({ command: ['x'] }, { seccomp: { profileType: 'Unconfined', localhostRef: '' } }) });
      assert.equal(un.linux.seccomp, undefined);
    });
    it('deprecated seccomp_profile_path strings', () => {
      for (const s of ['runtime/default', 'docker/default']) {
        assert.ok(build({ config: containerConfig({ command: ['x'] }, { seccompProfilePath: s }) }).linux.seccomp, s);
      }
      assert.equal(build({ config: containerConfig({ command: ['x'] }, { seccompProfilePath: 'unconfined' }) }).linux.seccomp, undefined);
      expectKind(() => build({ config: containerConfig({ command: ['x'] }, { seccompProfilePath: 'bogus' }) }), 'INVALID_ARGUMENT');
      const file = path.join(tmp, 'profile.json');
      fs.writeFileSync(file, JSON.stringify({ defaultAction: 'SCMP_ACT_LOG' }));
      const spec = build({ config: containerConfig({ command: ['x'] }, { seccompProfilePath: `localhost/${file}` }) });
      assert.deepEqual(spec.linux.seccomp, { defaultAction: 'SCMP_ACT_LOG' });
    });
    it('Localhost profile: loaded from the file; missing or broken file is a clear error', () => {
      const file = path.join(tmp, 'p2.json');
      fs.writeFileSync(file, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [] }));
      const spec = build({ config: containerConfig({ command: ['x'] }, { seccomp: { profileType: 'Localhost', localhostRef: file } }) });
      assert.equal(spec.linux.seccomp?.defaultAction, 'SCMP_ACT_ALLOW');
      const missing = path.join(tmp, 'nope.json');
      expectKind(
        () => build({ config: containerConfig({ command: ['x'] }, { seccomp: { profileType: 'Localhost', localhostRef: missing } }) }),
        'INVALID_ARGUMENT',
        /nope\.json.*does not exist/,
      );
      fs.writeFileSync(path.join(tmp, 'bad.json'), '{');
      expectKind(
        () => build({ config: containerConfig({ command: ['x'] }, { seccomp: { profileType: 'Localhost', localhostRef: path.join(tmp, 'bad.json') } }) }),
        'INVALID_ARGUMENT',
        /not valid JSON/,
      );
      expectKind(
        () => build({ config: containerConfig({ command: ['x'] }, { seccomp: { profileType: 'RuntimeDefault', localhostRef: file } }) }),
        'INVALID_ARGUMENT',
        /localhost_ref/,
      );
    });
    it('default profile: allowlist, EPERM default, clone filtered, clone3 ENOSYS, cap-gated syscalls', () => {
      const p = defaultSeccompProfile(DEFAULT_CAPABILITIES);
      assert.equal(p.defaultErrnoRet, 1);
      assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
      const names = (action: string): string[] => (p.syscalls ?? []).filter((s) => s.action === action).flatMap((s) => s.names);
      assert.ok(names('SCMP_ACT_ALLOW').includes('read'));
      assert.ok(!names('SCMP_ACT_ALLOW').includes('mount'));
      assert.ok(!names('SCMP_ACT_ALLOW').includes('ptrace'));
      assert.ok(names('SCMP_ACT_ALLOW').includes('chroot')); // CAP_SYS_CHROOT is a default
      const clone = p.syscalls?.find((s) => s.names.includes('clone'));
      assert.deepEqual(clone?.args, [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
      assert.equal(CLONE_NAMESPACE_FLAGS, 0x7e020000);
      const clone3 = p.syscalls?.find((s) => s.names.includes('clone3'));
      assert.deepEqual([clone3?.action, clone3?.errnoRet], ['SCMP_ACT_ERRNO', 38]);
      const personality = p.syscalls?.filter((s) => s.names.includes('personality')).map((s) => s.args?.[0].value);
      assert.deepEqual(personality, [0, 8, 0x20000, 0x20008, 0xffffffff]);
      const admin = defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN', 'CAP_BPF']);
      const adminAllowed = (admin.syscalls ?? []).filter((s) => s.action === 'SCMP_ACT_ALLOW' && !s.args).flatMap((s) => s.names);
      assert.ok(adminAllowed.includes('mount') && adminAllowed.includes('clone') && adminAllowed.includes('clone3'));
      assert.equal(adminAllowed.filter((n) => n === 'bpf').length, 1);
      assert.equal(admin.syscalls?.some((s) => s.action === 'SCMP_ACT_ERRNO'), false);
    });
    it('AppArmor off: a named profile is refused, runtime/default is a no-op', () => {
      expectKind(
        () => build({ config: containerConfig({ command: ['x'] }, { apparmor: { profileType: 'Localhost', localhostRef: 'myprof' } }) }),
        'FAILED_PRECONDITION',
        /AppArmor.*myprof/,
      );
      expectKind(
        () => build({ config: containerConfig({ command: ['x'] }, { apparmorProfile: 'localhost/other' }) }),
        'FAILED_PRECONDITION',
      );
      const spec = build({ config: containerConfig({ command: ['x'] }, { apparmorProfile: 'runtime/default' }) });
      assert.equal(spec.process.apparmorProfile, undefined);
    });
    it('AppArmor on: named profile passed through, runtime/default uses the loaded default', () => {
      const host = fakeHost({ apparmorEnabled: true, apparmorDefaultProfile: 'berth-default' });
      const named = build({ host, config: containerConfig({ command: ['x'] }, { apparmor: { profileType: 'Localhost', localhostRef: 'localhost/myprof' } }) });
      assert.equal(named.process.apparmorProfile, 'myprof');
      const rd = build({ host, config: containerConfig({ command: ['x'] }, { apparmor: { profileType: 'RuntimeDefault', localhostRef: '' } }) });
      assert.equal(rd.process.apparmorProfile, 'berth-default');
    });
  });

  describe('masked and readonly paths', () => {
    it('uses the defaults', () => {
      const spec = build();
      assert.deepEqual(spec.linux.maskedPaths, DEFAULT_MASKED_PATHS);
      assert.deepEqual(spec.linux.readonlyPaths, DEFAULT_READONLY_PATHS);
    });
    it('uses the lists CRI sends instead', () => {
      const spec = build({ config: containerConfig({ command: ['x'] }, { maskedPaths: ['/proc/kcore'], readonlyPaths: ['/proc/sys'] }) });
      assert.deepEqual(spec.linux.maskedPaths, ['/proc/kcore']);
      assert.deepEqual(spec.linux.readonlyPaths, ['/proc/sys']);
    });
  });

  describe('devices', () => {
    it('default cgroup allowlist: deny all first, then the standard devices', () => {
      const rules = build().linux.resources?.devices ?? [];
      assert.deepEqual(rules[0], { allow: false, access: 'rwm' });
      assert.ok(rules.some((r) => r.allow && r.type === 'c' && r.major === 1 && r.minor === 3 && r.access === 'rwm'));
      assert.ok(rules.some((r) => r.allow && r.type === 'c' && r.major === 136 && r.minor === undefined));
    });
    it('maps a CRI device with its permissions', () => {
      const spec = build({
        config: containerConfig({ command: ['x'], devices: [{ hostPath: '/dev/null', containerPath: '/dev/mynull', permissions: 'rw' }] }),
      });
      const st = fs.statSync('/dev/null');
      assert.deepEqual(spec.linux.devices, [
        { path: '/dev/mynull', type: 'c', major: 1, minor: 3, fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid },
      ]);
      const rules = spec.linux.resources?.devices ?? [];
      assert.deepEqual(rules[rules.length - 1], { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' });
    });
    it('rejects bad permissions, missing and non-device paths', () => {
      const dev = (hostPath: string, permissions = 'rwm') =>
        build({ config: containerConfig({ command: ['x'], devices: [{ hostPath, containerPath: '/dev/x', permissions }] }) });
      expectKind(() => dev('/dev/null', 'rx'), 'INVALID_ARGUMENT', /permissions/);
      expectKind(() => dev('/dev/nope-nope'), 'INVALID_ARGUMENT', /nope-nope/);
      expectKind(() => dev(rootfs + '/etc/passwd'), 'INVALID_ARGUMENT', /not a character or block device/);
    });
  });

  describe('namespaces, sysctls, hostname', () => {
    it('joins the pod net/ipc/uts, new mount and pid namespaces', () => {
      const spec = build();
      assert.deepEqual(spec.linux.namespaces, [
        { type: 'mount' },
        { type: 'network', path: '/run/berth/ns/sb1/net' },
        { type: 'ipc', path: '/run/berth/ns/sb1/ipc' },
        { type: 'uts', path: '/run/berth/ns/sb1/uts' },
        { type: 'pid' },
      ]);
      assert.equal(spec.hostname, 'podhost');
    });
    it('host namespaces are left out; pid POD/NODE/TARGET', () => {
      const nsOpts = (pid: 'POD' | 'NODE' | 'TARGET' | 'CONTAINER') => ({ network: 'POD' as const, ipc: 'POD' as const, pid, targetId: 'x', usernsOptions: null });
      const hostNet = build({ sandbox: sandboxInfo({ network: { kind: 'host' }, uts: { kind: 'host' }, ipc: { kind: 'host' } }) });
      assert.deepEqual(hostNet.linux.namespaces, [{ type: 'mount' }, { type: 'pid' }]);
      const pod = build({
        sandbox: sandboxInfo({ pid: { kind: 'pinned', path: '/proc/99/ns/pid' } }),
        config: containerConfig({ command: ['x'] }, { namespaceOptions: nsOpts('POD') }),
      });
      assert.ok(pod.linux.namespaces.some((n) => n.type === 'pid' && n.path === '/proc/99/ns/pid'));
      expectKind(() => build({ config: containerConfig({ command: ['x'] }, { namespaceOptions: nsOpts('POD') }) }), 'FAILED_PRECONDITION');
      const node = build({ config: containerConfig({ command: ['x'] }, { namespaceOptions: nsOpts('NODE') }) });
      assert.equal(node.linux.namespaces.some((n) => n.type === 'pid'), false);
      const target = build({ targetPidNamespacePath: '/proc/5/ns/pid', config: containerConfig({ command: ['x'] }, { namespaceOptions: nsOpts('TARGET') }) });
      assert.ok(target.linux.namespaces.some((n) => n.type === 'pid' && n.path === '/proc/5/ns/pid'));
    });
    describe('user namespace of the pod', () => {
      const maps = { uids: [{ containerId: 0, hostId: 300000, length: 65536 }], gids: [{ containerId: 0, hostId: 400000, length: 65536 }] };
      const user = { path: '/run/berth/ns/sb1/user', ...maps };
      const uns = (mode: 'POD' | 'NODE' | 'CONTAINER', m = maps) => ({
        network: 'POD' as const, ipc: 'POD' as const, pid: 'CONTAINER' as const, targetId: '', usernsOptions: { mode, ...m },
      });
      it('joins it first and gives runc the maps (runc 1.1 wants them when joining too)', () => {
        const spec = build({ sandbox: sandboxInfo({ user }), config: containerConfig({ command: ['x'] }, { namespaceOptions: uns('POD') }) });
        assert.deepEqual(spec.linux.namespaces[0], { type: 'user', path: '/run/berth/ns/sb1/user' });
        assert.equal(spec.linux.namespaces[1].type, 'mount');
        assert.deepEqual(spec.linux.uidMappings, [{ containerID: 0, hostID: 300000, size: 65536 }]);
        assert.deepEqual(spec.linux.gidMappings, [{ containerID: 0, hostID: 400000, size: 65536 }]);
        // A container config without userns_options is in the pod's as well.
        assert.equal(build({ sandbox: sandboxInfo({ user }) }).linux.namespaces[0].type, 'user');
        assert.equal(build().linux.uidMappings, undefined);
      });
      it('refuses a container whose userns_options are not the pod\'s', () => {
        const other = { uids: [{ containerId: 0, hostId: 1, length: 65536 }], gids: maps.gids };
        expectKind(() => build({ sandbox: sandboxInfo({ user }), config: containerConfig({ command: ['x'] }, { namespaceOptions: uns('POD', other) }) }), 'INVALID_ARGUMENT', /differ/);
        expectKind(() => build({ sandbox: sandboxInfo({ user }), config: containerConfig({ command: ['x'] }, { namespaceOptions: uns('NODE', { uids: [], gids: [] }) }) }), 'INVALID_ARGUMENT', /has its own user namespace/);
        expectKind(() => build({ config: containerConfig({ command: ['x'] }, { namespaceOptions: uns('POD') }) }), 'INVALID_ARGUMENT', /has no user namespace/);
        expectKind(() => build({ sandbox: sandboxInfo({ user }), config: containerConfig({ command: ['x'] }, { namespaceOptions: uns('CONTAINER') }) }), 'INVALID_ARGUMENT', /not valid/);
      });
      it('on the host network /sys is the host\'s, bound (a sysfs needs the network namespace\'s owner)', () => {
        const hostNet = sandboxInfo({ user, network: { kind: 'host' }, uts: { kind: 'host' } });
        const sys = build({ sandbox: hostNet }).mounts.find((m) => m.destination === '/sys');
        assert.deepEqual(sys, { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] });
        assert.equal(build({ sandbox: sandboxInfo({ user }) }).mounts.find((m) => m.destination === '/sys')?.type, 'sysfs');
        assert.equal(build({ sandbox: sandboxInfo({ network: { kind: 'host' } }) }).mounts.find((m) => m.destination === '/sys')?.type, 'sysfs');
      });
    });
    it('cgroup namespace only on cgroup v2', () => {
      assert.ok(build({ host: fakeHost({ cgroupVersion: 2 }) }).linux.namespaces.some((n) => n.type === 'cgroup'));
      assert.ok(!build().linux.namespaces.some((n) => n.type === 'cgroup'));
    });
    it('pod sysctls; net.* refused with host network', () => {
      const spec = build({ sandboxConfig: podConfig(false, { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shmmax': '1000' }) });
      assert.deepEqual(spec.linux.sysctl, { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shmmax': '1000' });
      expectKind(
        () => build({ sandboxConfig: podConfig(false, { 'net.ipv4.tcp_syncookies': '1' }), sandbox: sandboxInfo({ network: { kind: 'host' } }) }),
        'INVALID_ARGUMENT',
        /host networking/,
      );
    });
  });

  describe('resources, cgroups path, oom_score_adj, annotations', () => {
    const host = { cgroupVersion: 1 as const, swapControllerAvailable: true, hugetlbControllerAvailable: true };
    it('maps cpu, memory, swap, hugepages', () => {
      const r = toOciResources(
        resources({
          cpuPeriod: '100000',
          cpuQuota: '50000',
          cpuShares: '512',
          cpusetCpus: '0-1',
          cpusetMems: '0',
          memoryLimitInBytes: '67108864',
          hugepageLimits: [{ pageSize: '2MB', limit: '4194304' }],
        }),
        host,
      );
      assert.deepEqual(r, {
        cpu: { period: 100000, quota: 50000, shares: 512, cpus: '0-1', mems: '0' },
        memory: { limit: 67108864, swap: 67108864 },
        hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }],
      });
      assert.deepEqual(toOciResources(resources({ memoryLimitInBytes: '100', memorySwapLimitInBytes: '300' }), host).memory, {
        limit: 100,
        swap: 300,
      });
      assert.deepEqual(toOciResources(resources({ memoryLimitInBytes: '100' }), { ...host, swapControllerAvailable: false }).memory, {
        limit: 100,
      });
    });
    it('skips hugepages without the hugetlb controller, with a warning', () => {
      const warnings: string[] = [];
      const r = toOciResources(resources({ hugepageLimits: [{ pageSize: '2MB', limit: '1' }] }), { ...host, hugetlbControllerAvailable: false }, (m) => warnings.push(m));
      assert.equal(r.hugepageLimits, undefined);
      assert.match(warnings[0], /hugetlb/);
    });
    it('unified only on cgroup v2', () => {
      assert.deepEqual(toOciResources(resources({ unified: { 'memory.high': '1000' } }), { ...host, cgroupVersion: 2 }).unified, {
        'memory.high': '1000',
      });
      expectKind(() => toOciResources(resources({ unified: { 'memory.high': '1' } }), host), 'INVALID_ARGUMENT', /cgroup v2/);
    });
    it('cgroups path is <parent>/<id>; pids limit from the pod', () => {
      const spec = build({ sandbox: sandboxInfo({ pidsLimit: 100 }) });
      assert.equal(spec.linux.cgroupsPath, '/kubepods/pod1/c1');
      assert.deepEqual(spec.linux.resources?.pids, { limit: 100 });
      assert.equal(build({ sandbox: sandboxInfo({ cgroupParent: '' }) }).linux.cgroupsPath, '/berth/c1');
    });
    it('clamps oom_score_adj to what can be set, warning once', () => {
      const warnings: string[] = [];
      assert.equal(clampOomScoreAdj(500, 0), 500);
      assert.equal(clampOomScoreAdj(-997, -1000), -997);
      assert.equal(clampOomScoreAdj(-2000, -1000), -1000);
      assert.equal(clampOomScoreAdj(-997, 0, (m) => warnings.push(m)), 0);
      assert.equal(clampOomScoreAdj(-998, 0, (m) => warnings.push(m)), 0);
      assert.ok(warnings.length <= 1);
      const spec = build({ config: containerConfig({ command: ['x'] }, {}, { oomScoreAdj: '-997' }) });
      assert.equal(spec.process.oomScoreAdj, 0);
    });
    it('sets the io.kubernetes.cri annotations', () => {
      const a = build().annotations ?? {};
      assert.equal(a['io.kubernetes.cri.container-type'], 'container');
      assert.equal(a['io.kubernetes.cri.sandbox-id'], 'sb1');
      assert.equal(a['io.kubernetes.cri.container-name'], 'app');
      assert.equal(a['io.kubernetes.cri.image-name'], 'docker.io/library/busybox:latest');
      assert.equal(a['io.kubernetes.cri.sandbox-namespace'], 'default');
    });
    it('rejects an unsafe container id', () => {
      expectKind(() => build({ containerId: '../x' }), 'INVALID_ARGUMENT');
    });
  });
});
