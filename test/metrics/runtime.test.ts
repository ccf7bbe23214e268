// berth's own Prometheus series through a real berthd: pulls by registry
// host, layer unpacking, operation latencies by runtime handler, starts and
// exits by reason (an OOM kill included), pods/containers by state, live
// shims, streaming sessions; promtool-clean; and the listener over TLS.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestBerthd } from '../helpers/berthd';
import { fetchText } from '../helpers/http';
import { containerConfig, podConfig, startContainerFixture, waitFor, type ContainerFixture } from '../container/fixture';

/** The value of the one sample of `series` (name{labels} exactly as exposed). */
function sample(body: string, series: string): number {
  const line = body.split('\n').find((l) => l.startsWith(series + ' '));
  assert.ok(line, `no sample ${series}`);
  return Number(line.slice(series.length + 1));
}

/** berth-shim processes whose command line names this berthd's state dir. */
function shimsOf(stateDir: string): number {
  let n = 0;
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const cmd = (() => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        return '';
      }
    })();
    if (cmd.includes('berth-shim') && cmd.includes(stateDir)) n++;
  }
  return n;
}

describe('metrics: berth runtime series through a real berthd', function () {
  this.timeout(180_000);
  let fx: ContainerFixture;
  const rt = () => fx.berthd.cri.runtime;
  const scrape = () => fetchText(`http://127.0.0.1:${fx.berthd.metricsPort}/metrics`);

  before(async () => {
    fx = await startContainerFixture({ metrics: true });
  });
  after(async () => {
    await fx?.cleanup();
  });

  it('counts pulls by registry host (bytes, time, failures, in progress) and times layer unpacking', async () => {
    await assert.rejects(fx.berthd.cri.image.PullImage({ image: { image: `${fx.registry.host}/test/nothing:1` } }));
    const body = await scrape();
    const reg = `registry="${fx.registry.host}"`;
    assert.equal(sample(body, `berth_image_pulls_total{${reg}}`), 2);
    assert.equal(sample(body, `berth_image_pull_failures_total{${reg}}`), 1);
    assert.ok(sample(body, `berth_image_pull_bytes_total{${reg}}`) > 1_000_000, 'busybox twice');
    assert.equal(sample(body, `berth_image_pull_duration_seconds_count{${reg}}`), 3);
    assert.equal(sample(body, 'berth_image_pulls_in_progress'), 0);
    assert.ok(sample(body, 'berth_layer_unpack_duration_seconds_count') >= 1);
  });

  it('times pod and container operations by runtime handler, counts starts and exits by reason (OOM kill included), pods and containers by state, live shims', async () => {
    const cfg = podConfig(fx);
    const { podSandboxId } = await rt().RunPodSandbox({ config: cfg });
    const run = async (name: string, command: string[], extra: Parameters<typeof containerConfig>[2] = {}) => {
      const { containerId } = await rt().CreateContainer({ podSandboxId, config: containerConfig(fx.image, name, { command, ...extra }), sandboxConfig: cfg });
      await rt().StartContainer({ containerId });
      return containerId;
    };
    await run('sleeper', ['sleep', '3600']);
    const failing = await run('failing', ['sh', '-c', 'exit 3']);
    const oom = await run('oom', ['sh', '-c', 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); while :; do sleep 1; done'], {
      linux: { resources: { memoryLimitInBytes: String(16 * 1024 * 1024), memorySwapLimitInBytes: String(16 * 1024 * 1024) } },
    });
    for (const id of [failing, oom]) {
      await waitFor('exit', async () => ((await rt().ContainerStatus({ containerId: id })).status?.state === 'CONTAINER_EXITED' ? true : undefined), 60_000);
    }
    assert.equal((await rt().ContainerStatus({ containerId: oom })).status?.reason, 'OOMKilled');
    const body = await scrape();
    const h = 'runtime_handler="runc"';
    assert.equal(sample(body, `berth_operation_duration_seconds_count{operation="run_pod_sandbox",${h}}`), 1);
    assert.equal(sample(body, `berth_operation_duration_seconds_count{operation="create_container",${h}}`), 3);
    assert.equal(sample(body, `berth_operation_duration_seconds_count{operation="start_container",${h}}`), 3);
    assert.equal(sample(body, `berth_container_starts_total{${h}}`), 3);
    assert.equal(sample(body, 'berth_container_exits_total{reason="Error"}'), 1);
    assert.equal(sample(body, 'berth_container_exits_total{reason="OOMKilled"}'), 1);
    assert.equal(sample(body, 'berth_container_exits_total{reason="Completed"}'), 0);
    assert.equal(sample(body, 'berth_pods{state="ready"}'), 1);
    assert.equal(sample(body, 'berth_containers{state="running"}'), 1);
    assert.equal(sample(body, 'berth_containers{state="exited"}'), 2);
    assert.equal(sample(body, 'berth_shims'), shimsOf(fx.berthd.state));
    assert.ok(sample(body, 'berth_shims') >= 1);
    for (const kind of ['exec', 'attach', 'portforward']) assert.equal(sample(body, `berth_streaming_sessions{kind="${kind}"}`), 0);
    assert.equal(sample(body, 'berth_container_events_dropped_total'), 0);
    // No id is ever a label value.
    assert.doesNotMatch(body, new RegExp(podSandboxId.slice(0, 16)));
    // Every call of the pod path is traced phase by phase (and as a whole).
    const phase = (rpc: string, p: string) => sample(body, `berth_pod_phase_duration_seconds_count{rpc="${rpc}",phase="${p}"}`);
    for (const p of ['total', 'record', 'cgroup', 'pin', 'pod_files', 'record_ready']) assert.equal(phase('run_pod_sandbox', p), 1, p);
    for (const p of ['total', 'record', 'snapshot_prepare', 'rootfs_mount', 'spec', 'bundle', 'shim_create', 'record_created']) {
      assert.equal(phase('create_container', p), 3, p);
    }
    for (const p of ['total', 'runtime_start', 'record_running']) assert.equal(phase('start_container', p), 3, p);
    assert.ok(sample(body, 'berth_pod_phase_duration_seconds_sum{rpc="create_container",phase="shim_create"}') > 0);

    await rt().StopPodSandbox({ podSandboxId });
    const after = await scrape();
    assert.equal(sample(after, `berth_operation_duration_seconds_count{operation="stop_pod_sandbox",${h}}`), 1);
    assert.equal(sample(after, `berth_operation_duration_seconds_count{operation="stop_container",${h}}`), 3);
    assert.equal(sample(after, 'berth_pods{state="notready"}'), 1);
    assert.equal(sample(after, 'berth_container_exits_total{reason="Error"}'), 2, 'the sleeper, killed by the stop');
    // Teardown is traced too: StopPodSandbox's steps, then RemovePodSandbox's and each container's removal.
    const stopPhase = (p: string) => sample(after, `berth_pod_phase_duration_seconds_count{rpc="stop_pod_sandbox",phase="${p}"}`);
    for (const p of ['total', 'containers', 'pause', 'unpin', 'record']) assert.equal(stopPhase(p), 1, p);
    await rt().RemovePodSandbox({ podSandboxId });
    const removed = await scrape();
    const removePhase = (rpc: string, p: string) => sample(removed, `berth_pod_phase_duration_seconds_count{rpc="${rpc}",phase="${p}"}`);
    for (const p of ['total', 'stop_resources', 'containers', 'cgroup', 'dirs', 'record']) assert.equal(removePhase('remove_pod_sandbox', p), 1, p);
    for (const p of ['total', 'snapshot_remove', 'state_dir', 'shim_dir', 'record_delete']) assert.equal(removePhase('remove_container', p), 3, p);
    // The stop already deleted their runtime state, shims and rootfs mounts: the removal did not do it again.
    for (const p of ['runtime_delete', 'shim_release', 'rootfs_unmount']) assert.throws(() => removePhase('remove_container', p), /no sample/, p);
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: after, encoding: 'utf8' });
    assert.equal(lint.status, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
  });

  it('serves /metrics over HTTPS with metrics.tls_cert_file and metrics.tls_key_file, and refuses half a pair', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-metrics-tls-'));
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
    ], { stdio: 'ignore' });
    const tlsToml = (cert: string, key: string) => `tls_cert_file = ${JSON.stringify(cert)}\ntls_key_file = ${JSON.stringify(key)}\n`;
    const d = await TestBerthd.start({ metrics: true, metricsToml: tlsToml(certFile, keyFile) });
    try {
      const body = await fetchText(`https://127.0.0.1:${d.metricsPort}/metrics`, fs.readFileSync(certFile));
      assert.match(body, /^berth_pods\{state="ready"\} 0$/m);
      assert.match(d.output, /metrics="https:\/\//);
      fs.mkdirSync(path.join(dir, 'half')); // removed with `dir` (a berthd that fails to start leaves its dir)
      await assert.rejects(
        TestBerthd.start({ dir: path.join(dir, 'half'), metrics: true, metricsToml: `tls_cert_file = ${JSON.stringify(certFile)}\n` }),
        /metrics.tls_cert_file and metrics.tls_key_file must be set together/,
      );
    } finally {
      await d.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
