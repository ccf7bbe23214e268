// The configuration schema: every key, its type, its default and what it
// does. Loading, validation, `berthd config default` and the README's config
// reference are all driven from this one table, so they cannot drift apart.

export type LeafType = 'string' | 'integer' | 'boolean' | 'string[]';
export type LeafValue = string | number | boolean | string[];

export interface Leaf {
  kind: 'leaf';
  type: LeafType;
  default: LeafValue;
  doc: string;
  /** Allowed values for a string key. */
  values?: readonly string[];
  /** Inclusive range for an integer key. */
  min?: number;
  max?: number;
}

export interface Section {
  kind: 'section';
  doc: string;
  fields: Record<string, Node>;
}

/** A table of named entries that all share one shape (runtime handlers, registry credentials). */
export interface MapOf {
  kind: 'map';
  doc: string;
  entry: Section;
  default: Record<string, Record<string, LeafValue>>;
}

export type Node = Leaf | Section | MapOf;

const str = (def: string, doc: string, values?: readonly string[]): Leaf => ({
  kind: 'leaf',
  type: 'string',
  default: def,
  doc,
  values,
});
const int = (def: number, doc: string, min = 0, max = Number.MAX_SAFE_INTEGER): Leaf => ({
  kind: 'leaf',
  type: 'integer',
  default: def,
  doc,
  min,
  max,
});
const bool = (def: boolean, doc: string): Leaf => ({ kind: 'leaf', type: 'boolean', default: def, doc });
const strs = (def: string[], doc: string): Leaf => ({ kind: 'leaf', type: 'string[]', default: def, doc });
const section = (doc: string, fields: Record<string, Node>): Section => ({ kind: 'section', doc, fields });

export const SCHEMA: Section = section('', {
  socket: str('/run/berth/berth.sock', 'Unix socket the CRI gRPC API is served on (mode 0660, owned by root).'),
  root: str('/var/lib/berth', 'Persistent state: images, snapshots, pod and container records.'),
  state: str('/run/berth', 'Volatile state: bundles, shim sockets, pinned namespaces. Lost at reboot, as it should be.'),
  shutdown_timeout_seconds: int(10, 'On SIGTERM/SIGINT, how long in-flight RPCs may take before they are cut.', 0, 3600),
  log: section('Daemon logging.', {
    level: str('info', 'Least severe level written: error, warn, info or debug (debug logs every RPC).', [
      'error',
      'warn',
      'info',
      'debug',
    ]),
    format: str('text', 'Line format: "text" for people, "json" for log collectors.', ['text', 'json']),
  }),
  metrics: section('Prometheus metrics over HTTP.', {
    enabled: bool(true, 'Serve /metrics at all.'),
    address: str('127.0.0.1:9580', 'host:port the metrics listener binds to.'),
    tls_cert_file: str('', 'PEM certificate to serve /metrics over HTTPS; with tls_key_file. Empty: plain HTTP.'),
    tls_key_file: str('', 'PEM private key for tls_cert_file.'),
    event_loop_delay: bool(
      false,
      'Also serve berth_event_loop_delay_seconds (event-loop delay quantiles since the previous scrape; a 10 ms timer runs while on).',
    ),
  }),
  runtime: section('OCI runtimes and container defaults.', {
    default_handler: str('runc', 'Runtime handler used when a pod names none.'),
    cgroup_driver: str(
      'cgroupfs',
      'How pod and container cgroups are managed; reported to the kubelet (RuntimeConfig). "systemd": pods are slices (the kubelet\'s kubepods-...-pod<uid>.slice, else berth-pod<uid>.slice), containers scopes made by runc --systemd-cgroup, all over D-Bus. berthd refuses to start with a driver that cannot work on the host, saying why.',
      ['cgroupfs', 'systemd'],
    ),
    restrict_oom_score_adj: bool(
      true,
      'Clamp oom_score_adj to what this process may set (needed without CAP_SYS_RESOURCE) instead of failing.',
    ),
    handlers: {
      kind: 'map',
      doc: 'Runtime handlers by name: any runc-compatible OCI runtime binary. [runtime.handlers.NAME]',
      entry: section('', {
        path: str('', 'The OCI runtime binary (absolute path or a name looked up in PATH).'),
        root: str('', 'The runtime\'s --root state directory; empty means <state>/runtime/NAME.'),
      }),
      default: {
        runc: { path: 'runc', root: '' },
        crun: { path: 'crun', root: '' },
      },
    },
    // Container process defaults set in every OCI spec, so nothing is inherited from berthd (or its unit's Limit*=).
    default_rlimits: {
      kind: 'map',
      doc: 'Resource limits every container process starts with (OCI process.rlimits) instead of berthd\'s own; the default is what systemd gives a service and containerd 2.x containers get. [runtime.default_rlimits.RLIMIT_NAME]',
      entry: section('', {
        soft: int(0, 'Soft limit.'),
        hard: int(0, 'Hard limit (at least the soft limit).'),
      }),
      default: {
        RLIMIT_NOFILE: { soft: 1024, hard: 524288 },
      },
    },
    enable_unprivileged_ports: bool(
      true,
      'Pods with their own network namespace get net.ipv4.ip_unprivileged_port_start=0 (bind any port without CAP_NET_BIND_SERVICE), as in containerd 2.x; a sysctl the pod sets wins.',
    ),
    enable_unprivileged_icmp: bool(
      true,
      'Pods with their own network namespace get net.ipv4.ping_group_range="0 2147483647" (ping without CAP_NET_RAW), as in containerd 2.x; a sysctl the pod sets wins.',
    ),
  }),
  image: section('Image pulls and storage.', {
    registry_config_dir: str(
      '/etc/berth/certs.d',
      'Directory of <host>/hosts.toml files (containerd format): mirrors, plain-HTTP registries, CA and client certificates.',
    ),
    progress_timeout_seconds: int(60, 'Abandon a registry transfer that delivers no bytes for this long.', 1, 86400),
    max_concurrent_downloads: int(3, 'Layers of one pull downloaded at the same time, each unpacked as it arrives.', 1, 64),
    pinned_images: strs([], 'Images reported as pinned: the kubelet never garbage-collects them.'),
    credentials: {
      kind: 'map',
      doc: 'Registry credentials by registry host. [image.credentials."HOST"]',
      entry: section('', {
        username: str('', 'User name for Basic auth or the token endpoint.'),
        password: str('', 'Password for the user.'),
        auth: str('', 'base64("user:password"), as in a Docker config.json.'),
        identity_token: str('', 'Refresh token exchanged at the token endpoint.'),
        registry_token: str('', 'Bearer token sent as is.'),
      }),
      default: {},
    },
  }),
  cni: section('Pod networking through CNI plugins.', {
    bin_dirs: strs(['/usr/lib/cni', '/opt/cni/bin'], 'Where CNI plugin binaries are looked up, in order.'),
    conf_dir: str('/etc/cni/net.d', 'The first .conflist/.conf here, by name, is the pod network.'),
  }),
  cdi: section('Container Device Interface (CDI) devices.', {
    spec_dirs: strs(['/etc/cdi', '/var/run/cdi'], 'Directories of CDI spec files (JSON, YAML); a later one wins for the same device.'),
  }),
  streaming: section('The exec/attach/port-forward streaming server.', {
    address: str('127.0.0.1', 'Address the streaming server binds to.'),
    port: int(0, 'Port of the streaming server; 0 picks a free one.', 0, 65535),
    token_ttl_seconds: int(60, 'How long a streaming URL stays valid (each is single-use).', 1, 3600),
    tls_cert_file: str('', 'PEM certificate for HTTPS streaming; with tls_key_file. Empty: plain HTTP (fine on 127.0.0.1).'),
    tls_key_file: str('', 'PEM private key for tls_cert_file.'),
  }),
});
