// CDI spec files and edits, without a container (src/runtime/spec/cdi.ts).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyCdiDevices, loadCdiDevices, parseCdiSpec, requestedCdiDevices, resolveCdiDevices } from '../../src/runtime/spec/cdi';
import type { OciSpec } from '../../src/runtime/spec/oci_types';

function bareSpec(): OciSpec {
  return {
    ociVersion: '1.0.2',
    process: { args: ['x'], cwd: '/', env: ['PATH=/bin', 'A=old'], user: { uid: 0, gid: 0 } },
    root: { path: 'rootfs' },
    mounts: [{ destination: '/data', type: 'bind', source: '/old', options: ['rbind'] }],
    linux: { namespaces: [] },
  } as OciSpec;
}

describe('runtime/spec: CDI', () => {
  it('reads JSON and YAML specs; later dirs win; broken files are skipped with a warning', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cdi-unit-'));
    try {
      const [a, b] = [path.join(root, 'a'), path.join(root, 'b')];
      fs.mkdirSync(a);
      fs.mkdirSync(b);
      fs.writeFileSync(path.join(a, 'x.json'), JSON.stringify({ cdiVersion: '0.6.0', kind: 'v.io/c', devices: [{ name: 'd', containerEdits: { env: ['FROM=a'] } }] }));
      fs.writeFileSync(path.join(b, 'x.yaml'), 'cdiVersion: 0.6.0\nkind: v.io/c\ndevices:\n  - name: d\n    containerEdits:\n      env: [FROM=b]\n');
      fs.writeFileSync(path.join(b, 'bad.yml'), 'kind: [');
      const warnings: string[] = [];
      const known = loadCdiDevices([a, b, path.join(root, 'missing')], (m) => warnings.push(m));
      assert.deepEqual(known.get('v.io/c=d')?.edits.env, ['FROM=b']);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /bad\.yml/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses specs that are not CDI', () => {
    assert.throws(() => parseCdiSpec('{"kind":"v.io/c","devices":[{"name":"d"}]}', 'x.json'), /cdiVersion/);
    assert.throws(() => parseCdiSpec('{"cdiVersion":"0.6.0","kind":"noslash","devices":[{"name":"d"}]}', 'x.json'), /vendor\/class/);
    const hook = '{"cdiVersion":"0.6.0","kind":"v.io/c","devices":[{"name":"d","containerEdits":{"hooks":[{"hookName":"never","path":"/x"}]}}]}';
    assert.throws(() => parseCdiSpec(hook, 'x.json'), /not an OCI hook/);
    const rel = '{"cdiVersion":"0.6.0","kind":"v.io/c","devices":[{"name":"d","containerEdits":{"mounts":[{"hostPath":"rel","containerPath":"/x"}]}}]}';
    assert.throws(() => parseCdiSpec(rel, 'x.json'), /absolute/);
  });

  it('takes names from CDI_devices and cdi.k8s.io/ annotations, once each, and names unknown or malformed ones', () => {
    const names = requestedCdiDevices({
      CDIDevices: [{ name: 'v.io/c=a' }],
      annotations: { 'cdi.k8s.io/one': 'v.io/c=b, v.io/c=a', 'other/x': 'v.io/c=z' },
    });
    assert.deepEqual(names, ['v.io/c=a', 'v.io/c=b']);
    const known = new Map(parseCdiSpec('{"cdiVersion":"0.6.0","kind":"v.io/c","devices":[{"name":"a"}]}', 'f.json').map((d) => [d.qualifiedName, d]));
    assert.throws(() => resolveCdiDevices(names, known), /unknown CDI device\(s\) "v\.io\/c=b"/);
    assert.throws(() => resolveCdiDevices(['gpu0'], known), /"gpu0" are not vendor/);
  });

  it('applies env (replacing), device nodes with cgroup rules, mounts (replacing, bind added), hooks and groups; spec edits once', () => {
    const doc = {
      cdiVersion: '0.6.0',
      kind: 'v.io/c',
      containerEdits: { env: ['SPEC=1'], additionalGids: [44] },
      devices: [
        { name: 'a', containerEdits: { env: ['A=new'], deviceNodes: [{ path: '/dev/a', hostPath: '/dev/null' }] } },
        {
          name: 'b',
          containerEdits: {
            deviceNodes: [{ path: '/dev/b', type: 'b', major: 8, minor: 1, permissions: 'r' }],
            mounts: [{ hostPath: '/h', containerPath: '/data', options: ['ro'] }],
            hooks: [{ hookName: 'poststop', path: '/bin/true', args: ['true'] }],
          },
        },
      ],
    };
    const spec = bareSpec();
    applyCdiDevices(spec, parseCdiSpec(JSON.stringify(doc), 'f.json'));
    assert.deepEqual(spec.process.env, ['PATH=/bin', 'SPEC=1', 'A=new']);
    assert.deepEqual(spec.process.user.additionalGids, [44]);
    assert.deepEqual(spec.linux.devices?.map((d) => [d.path, d.type, d.major, d.minor]), [['/dev/a', 'c', 1, 3], ['/dev/b', 'b', 8, 1]]);
    assert.deepEqual(spec.linux.resources?.devices, [
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
      { allow: true, type: 'b', major: 8, minor: 1, access: 'r' },
    ]);
    assert.deepEqual(spec.mounts, [{ destination: '/data', type: 'bind', source: '/h', options: ['rbind', 'ro'] }]);
    assert.deepEqual(spec.hooks, { poststop: [{ path: '/bin/true', args: ['true'], env: undefined, timeout: undefined }] });
  });
});
