// Fixtures for the runtime tests: CRI configs with every field defaulted as the
// decoder does, and a busybox rootfs built from Debian's busybox-static.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ContainerConfig__Output } from '../../src/gen/runtime/v1/ContainerConfig';
import type { LinuxContainerSecurityContext__Output } from '../../src/gen/runtime/v1/LinuxContainerSecurityContext';
import type { LinuxContainerResources__Output } from '../../src/gen/runtime/v1/LinuxContainerResources';
import type { Mount__Output } from '../../src/gen/runtime/v1/Mount';
import type { PodSandboxConfig__Output } from '../../src/gen/runtime/v1/PodSandboxConfig';
import type { HostInfo } from '../../src/runtime/spec/host_info';
import type { ContainerSpecInput, SandboxRuntimeInfo } from '../../src/runtime/spec/builder';

export function securityContext(p: Partial<LinuxContainerSecurityContext__Output> = {}): LinuxContainerSecurityContext__Output {
  return {
    capabilities: null,
    privileged: false,
    namespaceOptions: null,
    selinuxOptions: null,
    runAsUser: null,
    runAsUsername: '',
    readonlyRootfs: false,
    supplementalGroups: [],
    apparmorProfile: '',
    seccompProfilePath: '',
    noNewPrivs: false,
    runAsGroup: null,
    maskedPaths: [],
    readonlyPaths: [],
    seccomp: null,
    apparmor: null,
    supplementalGroupsPolicy: 'Merge',
    ...p,
  };
}

export function resources(p: Partial<LinuxContainerResources__Output> = {}): LinuxContainerResources__Output {
  return {
    cpuPeriod: '0',
    cpuQuota: '0',
    cpuShares: '0',
    memoryLimitInBytes: '0',
    oomScoreAdj: '0',
    cpusetCpus: '',
    cpusetMems: '',
    hugepageLimits: [],
    unified: {},
    memorySwapLimitInBytes: '0',
    ...p,
  };
}

export function mount(p: Partial<Mount__Output> & { containerPath: string; hostPath: string }): Mount__Output {
  return {
    readonly: false,
    selinuxRelabel: false,
    propagation: 'PROPAGATION_PRIVATE',
    uidMappings: [],
    gidMappings: [],
    recursiveReadOnly: false,
    image: null,
    imageSubPath: '',
    ...p,
  };
}

export function containerConfig(
  p: Partial<ContainerConfig__Output> = {},
  sc: Partial<LinuxContainerSecurityContext__Output> | null = {},
  res: Partial<LinuxContainerResources__Output> | null = null,
): ContainerConfig__Output {
  return {
    metadata: { name: 'app', attempt: 0 },
    image: null,
    command: [],
    args: [],
    workingDir: '',
    envs: [],
    mounts: [],
    devices: [],
    labels: {},
    annotations: {},
    logPath: '',
    stdin: false,
    stdinOnce: false,
    tty: false,
    linux: { securityContext: sc ? securityContext(sc) : null, resources: res ? resources(res) : null },
    windows: null,
    CDIDevices: [],
    stopSignal: 'RUNTIME_DEFAULT',
    ...p,
  };
}

export function podConfig(privileged = false, sysctls: Record<string, string> = {}): PodSandboxConfig__Output {
  return {
    metadata: { name: 'pod', uid: 'uid-1', namespace: 'default', attempt: 0 },
    hostname: 'podhost',
    logDirectory: '',
    dnsConfig: null,
    portMappings: [],
    labels: {},
    annotations: {},
    linux: {
      cgroupParent: '',
      securityContext: {
        namespaceOptions: null,
        selinuxOptions: null,
        runAsUser: null,
        readonlyRootfs: false,
        supplementalGroups: [],
        privileged,
        seccompProfilePath: '',
        runAsGroup: null,
        seccomp: null,
        apparmor: null,
        supplementalGroupsPolicy: 'Merge',
      },
      sysctls,
      overhead: null,
      resources: null,
    },
    windows: null,
  };
}

/** A host with berth holding every capability but CAP_SYS_RESOURCE (as on the CI machine). */
export function fakeHost(p: Partial<HostInfo> = {}): HostInfo {
  return {
    cgroupVersion: 1,
    capabilities: [
      'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
      'CAP_SETUID', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_CHROOT',
      'CAP_SYS_PTRACE', 'CAP_SYS_ADMIN', 'CAP_MKNOD', 'CAP_AUDIT_WRITE', 'CAP_SETFCAP',
    ],
    apparmorEnabled: false,
    minOomScoreAdj: 0,
    swapControllerAvailable: true,
    hugetlbControllerAvailable: false,
    ...p,
  };
}

export function sandboxInfo(p: Partial<SandboxRuntimeInfo> = {}): SandboxRuntimeInfo {
  return {
    sandboxId: 'sb1',
    hostname: 'podhost',
    network: { kind: 'pinned', path: '/run/berth/ns/sb1/net' },
    ipc: { kind: 'pinned', path: '/run/berth/ns/sb1/ipc' },
    uts: { kind: 'pinned', path: '/run/berth/ns/sb1/uts' },
    cgroupParent: '/kubepods/pod1',
    ...p,
  };
}

export function specInput(rootfs: string, p: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    containerId: 'c1',
    config: containerConfig({ command: ['/bin/sh'] }),
    sandboxConfig: podConfig(),
    image: {},
    imageName: 'docker.io/library/busybox:latest',
    rootfsPath: rootfs,
    sandbox: sandboxInfo(),
    host: fakeHost(),
    hostDevices: () => [],
    mountInfo: () => [],
    ...p,
  };
}

const APPLETS = [
  'sh', 'id', 'pwd', 'env', 'cat', 'touch', 'sleep', 'head', 'grep', 'ls', 'echo', 'dd', 'true', 'false', 'yes',
  'wc', 'mkdir', 'hostname', 'stat', 'test', 'unshare', 'tr',
];

/** A minimal rootfs: /bin/busybox with applet links, and passwd/group with an "app" user. */
export function makeBusyboxRootfs(dir: string): string {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'home/app', 'data']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  }
  fs.copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  fs.writeFileSync(
    path.join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n',
  );
  fs.writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:app,other\ngrp:x:3000:\n');
  return dir;
}
