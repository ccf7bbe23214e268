// deploy/: the Prometheus config and alerting rules pass promtool (config,
// rules, and the rules' unit tests), and every metric the rules and the
// Grafana dashboard query is one berthd exposes (or serves the kubelet
// through ListMetricDescriptors). Then a real Prometheus, run from the
// deploy config against a test berthd, scrapes it and answers a query.
import { strict as assert } from 'node:assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { TestBerthd } from '../helpers/berthd';
import { fetchText } from '../helpers/http';

const DEPLOY = path.resolve(__dirname, '..', '..', '..', 'deploy');

function promtool(args: string[]): void {
  const r = spawnSync('promtool', args, { cwd: DEPLOY, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool missing (apt-get install prometheus): ${r.error.message}`);
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
}

/** Metric names a PromQL expression selects (label names and functions left out). */
function metricNames(expr: string): string[] {
  const noStrings = expr.replace(/"[^"]*"/g, '""');
  return [...noStrings.matchAll(/\b(up|(?:berth|grpc_server|process|nodejs|container)_[a-z0-9_]+)\b(?!\s*[=!]~?)/g)].map((m) => m[1]);
}

interface Panel {
  type: string;
  title: string;
  targets?: Array<{ expr: string }>;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('deploy: Prometheus config, alerting rules and the Grafana dashboard', function () {
  this.timeout(120_000);
  let d: TestBerthd;
  let known: Set<string>;

  before(async () => {
    d = await TestBerthd.start({ metrics: true });
    const body = await fetchText(`http://127.0.0.1:${d.metricsPort}/metrics`);
    known = new Set(['up']);
    for (const m of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      known.add(m[1]);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_count', '_sum']) known.add(m[1] + s);
    }
    for (const desc of (await d.cri.runtime.ListMetricDescriptors({})).descriptors) known.add(desc.name);
  });
  after(async () => {
    await d?.cleanup();
  });

  it('promtool: the config is valid, the rules check, and the rules unit tests pass', () => {
    promtool(['check', 'config', 'prometheus.yaml']);
    promtool(['check', 'rules', 'berth-alerts.yaml']);
    promtool(['test', 'rules', 'berth-alerts.test.yaml']);
  });

  it('every alert expression names metrics berthd exposes', () => {
    const rules = fs.readFileSync(path.join(DEPLOY, 'berth-alerts.yaml'), 'utf8');
    const exprs = [...rules.matchAll(/expr: (?:\|\n\s+)?(.+)/g)].map((m) => m[1]);
    assert.ok(exprs.length >= 10);
    for (const e of exprs) {
      const names = metricNames(e);
      assert.ok(names.length > 0, `no metric in ${e}`);
      for (const n of names) assert.ok(known.has(n), `alert expression names ${n}, which berthd does not expose: ${e}`);
    }
  });

  it('the dashboard parses, has a panel per metric family, and every query names an existing metric', () => {
    const dash = JSON.parse(fs.readFileSync(path.join(DEPLOY, 'grafana-dashboard.json'), 'utf8')) as { uid: string; panels: Panel[] };
    assert.equal(dash.uid, 'berth-node');
    const queried = new Set<string>();
    for (const p of dash.panels.filter((x) => x.type !== 'row')) {
      assert.ok(p.targets?.length, `panel ${p.title} has no query`);
      for (const t of p.targets) {
        const names = metricNames(t.expr);
        assert.ok(names.length > 0, `panel ${p.title}: no metric in ${t.expr}`);
        for (const n of names) {
          assert.ok(known.has(n), `panel ${p.title} queries ${n}, which does not exist`);
          queried.add(n.replace(/_(bucket|count|sum)$/, ''));
        }
      }
    }
    const families = [...known].filter((n) => n.startsWith('berth_') && n !== 'berth_build_info' && !/_(bucket|count|sum)$/.test(n));
    for (const f of families) assert.ok(queried.has(f), `no panel shows ${f}`);
  });

  it('a real Prometheus run from deploy/prometheus.yaml scrapes berthd and stores its series', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-prom-'));
    const port = await freePort();
    const config = fs
      .readFileSync(path.join(DEPLOY, 'prometheus.yaml'), 'utf8')
      .replace("'127.0.0.1:9580'", `'127.0.0.1:${d.metricsPort}'`)
      .replace('scrape_interval: 15s', 'scrape_interval: 1s')
      .replace('- berth-alerts.yaml', `- ${path.join(DEPLOY, 'berth-alerts.yaml')}`);
    assert.match(config, new RegExp(`127\\.0\\.0\\.1:${d.metricsPort}`));
    fs.writeFileSync(path.join(dir, 'prometheus.yaml'), config);
    let prom: ChildProcess | undefined;
    let log = '';
    try {
      prom = spawn(
        'prometheus',
        [`--config.file=${path.join(dir, 'prometheus.yaml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      prom.stdout?.on('data', (b: Buffer) => (log += b.toString()));
      prom.stderr?.on('data', (b: Buffer) => (log += b.toString()));
      const api = `http://127.0.0.1:${port}/api/v1`;
      const query = async (q: string) =>
        (JSON.parse(await fetchText(`${api}/query?query=${encodeURIComponent(q)}`)) as { data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }).data?.result ?? [];
      const deadline = Date.now() + 60_000;
      let result: Awaited<ReturnType<typeof query>> = [];
      while (Date.now() < deadline) {
        if (prom.exitCode !== null) throw new Error(`prometheus exited ${prom.exitCode}:\n${log}`);
        result = await query('berth_build_info{job="berth"}').catch(() => []);
        if (result.length) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(result.length, 1, `no berth_build_info stored:\n${log}`);
      assert.equal(result[0].metric.component, 'berthd');
      assert.equal(result[0].value[1], '1');
      const up = await query('up{job="berth"}');
      assert.equal(up[0]?.value[1], '1');
      assert.equal((await query('berth_pods{state="ready"}'))[0]?.value[1], '0');
      const rules = JSON.parse(await fetchText(`${api}/rules`)) as { data: { groups: Array<{ rules: unknown[] }> } };
      assert.equal(rules.data.groups[0].rules.length, 11, 'the alerting rules are loaded');
    } finally {
      if (prom && prom.exitCode === null) {
        const exited = new Promise((r) => prom!.once('exit', r));
        process.kill(prom.pid!, 'SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
