// How StopContainer kills (timeout 0, as StopPodSandbox stops its
// containers): a container with a PID namespace of its own (the kubelet's
// default) gets one SIGKILL to its init, and the kernel ends the rest of the
// namespace, exec'd processes included; one sharing its pod's PID namespace
// needs runc's kill --all. The runtime handler here is real runc behind a
// script that logs each command line.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from './fixture';

/** Host pids whose command line is exactly `args`. */
function pidsRunning(args: string[]): number[] {
  const want = args.join('\0') + '\0';
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8') === want) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

describe('StopContainer: SIGKILL to the init, or to the whole cgroup', function () {
  this.timeout(120000);
  let fx: ContainerFixture;
  let tmp: string;
  let log: string;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-stopkill-'));
    log = path.join(tmp, 'runc.log');
    const runc = execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();
    const wrapper = path.join(tmp, 'runc-logged');
    fs.writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> ${JSON.stringify(log)}\nexec ${JSON.stringify(runc)} "$@"\n`, { mode: 0o755 });
    fx = await startContainerFixture({ configToml: `[runtime.handlers.logged]\npath = ${JSON.stringify(wrapper)}\n` });
  });
  after(async () => {
    try {
      await fx?.cleanup();
    } finally {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  const rt = () => fx.berthd.cri.runtime;

  for (const pid of ['CONTAINER', 'POD'] as const) {
    it(`PID namespace ${pid}: ${pid === 'CONTAINER' ? 'kill of the init only' : 'kill --all'}, and an exec'd process is gone too`, async () => {
      const sleeper = ['sleep', pid === 'CONTAINER' ? '1717' : '1718'];
      const ns = { network: 'NODE', pid } as const;
      const cfg = podConfig(fx, { linux: { securityContext: { namespaceOptions: ns } } });
      const { podSandboxId } = await rt().RunPodSandbox({ config: cfg, runtimeHandler: 'logged' });
      const { containerId } = await rt().CreateContainer({
        podSandboxId,
        config: containerConfig(fx.image, 'victim', { command: ['sleep', '3600'], linux: { securityContext: { namespaceOptions: ns } } }),
        sandboxConfig: cfg,
      });
      await rt().StartContainer({ containerId });
      // A process exec'd into the container that outlives its exec.
      await rt().ExecSync({ containerId, cmd: ['sh', '-c', `${sleeper.join(' ')} </dev/null >/dev/null 2>&1 &`], timeout: 10 });
      await waitFor('the exec\'d sleep', async () => (pidsRunning(sleeper).length > 0 ? true : undefined));
      fs.writeFileSync(log, '');
      await rt().StopContainer({ containerId, timeout: 0 });
      const kills = fs.readFileSync(log, 'utf8').split('\n').filter((l) => / kill /.test(` ${l} `));
      if (pid === 'CONTAINER') assert.deepEqual(kills.map((l) => l.includes('--all')), [false], kills.join('\n'));
      else assert.ok(kills.some((l) => l.includes('--all')), kills.join('\n'));
      await waitFor('the exec\'d sleep gone', async () => (pidsRunning(sleeper).length === 0 ? true : undefined));
      const s = await rt().ContainerStatus({ containerId, verbose: false });
      assert.equal(s.status?.state, 'CONTAINER_EXITED');
      await rt().StopPodSandbox({ podSandboxId });
      await rt().RemovePodSandbox({ podSandboxId });
    });
  }
});
