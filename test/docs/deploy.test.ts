// deploy/berthd.service is what an operator installs: it must match how berthd behaves.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..', '..');

describe('deploy/berthd.service', () => {
  const unit = fs.readFileSync(path.join(REPO, 'deploy', 'berthd.service'), 'utf8');
  const directives = unit.split('\n').filter((l) => /^[A-Za-z]+=/.test(l));

  it('is Type=notify (berthd sends READY=1 and STOPPING=1) and leaves NotifyAccess at main', () => {
    assert.ok(directives.includes('Type=notify'));
    assert.ok(!directives.some((d) => d.startsWith('NotifyAccess=')), 'berth-notify speaks as berthd (SCM_CREDENTIALS)');
  });

  it('raises no limit containers would inherit except NOFILE, which every spec overrides', () => {
    const limits = directives.filter((d) => d.startsWith('Limit'));
    assert.deepEqual(limits, ['LimitNOFILE=1048576']);
  });

  it('reloads with SIGHUP', () => {
    assert.ok(directives.includes('ExecReload=/bin/kill -HUP $MAINPID'));
  });

  it('keeps containers alive across restarts and delegates cgroups', () => {
    for (const d of ['KillMode=process', 'Delegate=yes']) assert.ok(directives.includes(d), d);
  });
});

describe('deploy/kubelet.md', () => {
  const md = fs.readFileSync(path.join(REPO, 'deploy', 'kubelet.md'), 'utf8');
  const defaults = fs.readFileSync(path.join(REPO, 'deploy', 'config.toml'), 'utf8');

  it('names the socket berthd serves by default, for the kubelet and kubeadm', () => {
    const socket = /^socket = "(.+)"$/m.exec(defaults)?.[1];
    assert.ok(socket);
    assert.ok(md.includes(`containerRuntimeEndpoint: unix://${socket}`));
    assert.ok(md.includes(`criSocket: unix://${socket}`));
  });

  it('tells that the kubelet takes the cgroup driver from the runtime and which driver berth supports', () => {
    assert.match(md, /KubeletCgroupDriverFromCRI/);
    assert.match(md, /cgroup_driver = "systemd"/);
  });

  it('tells how a kubelet of 1.35 and later runs on a cgroup v1 or hybrid host', () => {
    assert.match(md, /^failCgroupV1: false$/m);
  });
});
