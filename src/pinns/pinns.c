/*
 * berth-pinns: creates and pins the namespaces of a pod, and unpins them.
 *
 *   berth-pinns pin --dir DIR [--net] [--ipc] [--uts] [--pid]
 *               [--uid-map C:H:L --gid-map C:H:L]
 *               [--hostname NAME] [--sysctl KEY=VALUE]... [--cgroup-procs FILE]...
 *               [--shm PATH --shm-size BYTES]
 *   berth-pinns unpin --dir DIR [--shm PATH]
 *   berth-pinns private DIR
 *   berth-pinns idmap (--userns FILE | --uid-map C:H:L --gid-map C:H:L) [--recursive] SRC DST
 *   berth-pinns umount PATH...
 *
 * pin: makes DIR (and its parent) and the --shm directory when missing,
 * unshares the requested namespaces in this (short-lived) process, brings
 * a new network namespace's loopback up, sets
 * the hostname and the namespaced sysctls from inside them, then bind-mounts
 * /proc/self/ns/<ns> onto DIR/<ns> so they outlive the process. A PID
 * namespace cannot be pinned by a bind mount alone (it dies with its init), so
 * with --pid a child is forked as PID 1 of the new namespace; it reaps zombies
 * until killed (berth's "pause"). Its host PID is printed as "pid=N" on stdout
 * and written to DIR/pause.pid. Each --cgroup-procs FILE names a pod cgroup
 * the pause is born in (see join_cgroup: without the kernel's global
 * cgroup.procs lock where it can).
 * On failure everything this run mounted is undone and the reason is printed
 * on stderr; the exit status is 1.
 *
 * With --uid-map/--gid-map the pod gets a user namespace too, and the other
 * namespaces are owned by it: a child unshares CLONE_NEWUSER, this process
 * (root of the host user namespace) writes the child's uid_map and gid_map,
 * then the child unshares the rest, sets hostname and sysctls with the
 * capabilities it has there and forks berth-pause; this process pins
 * /proc/<child>/ns/{user,net,ipc,uts} (the bind mounts need host privileges
 * the child no longer has) and DIR/user is pinned as well.
 *
 * idmap: an idmapped copy of the mount at SRC (open_tree(OPEN_TREE_CLONE),
 * mount_setattr(MOUNT_ATTR_IDMAP) with the user namespace FILE, or a
 * throw-away one with the given maps, then move_mount) attached at DST,
 * which is created (directory or empty file, like SRC). --recursive copies
 * and idmaps the submounts too (an rbind).
 *
 * umount: lazily unmounts each PATH; not mounted or missing is fine.
 *
 * unpin: lazily unmounts and unlinks DIR/{net,ipc,uts,pid}, DIR/pause.pid and the shm mount;
 * missing files and already-unmounted paths are fine (idempotent).
 *
 * private: makes DIR a mount with private propagation (binding it onto itself
 * first when it is not a mount point), so the nsfs binds under it are not
 * copied into other mount namespaces where they would keep namespaces alive.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LIST 64

#define CGROUP_V1_MAGIC 0x27e0eb
#define CGROUP_V2_MAGIC 0x63677270
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* The kernel's struct clone_args up to `cgroup` (CLONE_ARGS_SIZE_VER2). */
struct clone3_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* The pod's cgroup v2 directory, for berth-pause to be cloned into (-1: none). */
static int cgroup2_dir = -1;
static char cgroup2_procs[PATH_MAX];

static const char *ns_names[] = {"net", "ipc", "uts", "pid", "user"};
enum { NS_NET, NS_IPC, NS_UTS, NS_PID, NS_USER, NS_COUNT };
static const int ns_flags[] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWPID, CLONE_NEWUSER};

static const char *dir;
static int pinned[NS_COUNT];
static const char *shm_path;
static int shm_mounted;
static pid_t pause_pid;
/* The child that owns a new user namespace (pin with maps, idmap with maps). */
static pid_t userns_child;
/* In that child: where fail() reports (the parent prints it and undoes). */
static int report_fd = -1;

static void undo(void) {
  char path[PATH_MAX];
  for (int i = 0; i < NS_COUNT; i++) {
    if (!pinned[i]) continue;
    snprintf(path, sizeof path, "%s/%s", dir, ns_names[i]);
    umount2(path, MNT_DETACH);
    unlink(path);
  }
  if (shm_mounted) umount2(shm_path, MNT_DETACH);
  if (pause_pid > 0) {
    kill(pause_pid, SIGKILL);
    waitpid(pause_pid, NULL, 0);
  }
  if (userns_child > 0) {
    kill(userns_child, SIGKILL);
    waitpid(userns_child, NULL, 0);
  }
}

static void fail(const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  if (report_fd >= 0) {
    char msg[1024];
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    dprintf(report_fd, "e%.*s%s%s", n, msg, saved ? ": " : "", saved ? strerror(saved) : "");
    _exit(1);
  }
  fputs("berth-pinns: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (saved) fprintf(stderr, ": %s", strerror(saved));
  fputc('\n', stderr);
  undo();
  exit(1);
}

static void write_file(const char *path, const char *value, const char *what) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail("%s: open %s", what, path);
  size_t len = strlen(value);
  if (write(fd, value, len) != (ssize_t)len) fail("%s: write \"%s\" to %s", what, value, path);
  if (close(fd) < 0) fail("%s: close %s", what, path);
}

/* KEY=VALUE, KEY dotted (net.ipv4.ip_forward) or slashed; written under /proc/sys. */
static void set_sysctl(const char *spec) {
  char key[PATH_MAX], path[PATH_MAX + 16];
  const char *eq = strchr(spec, '=');
  if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof key) {
    errno = 0;
    fail("sysctl \"%s\": expected KEY=VALUE", spec);
  }
  memcpy(key, spec, eq - spec);
  key[eq - spec] = '\0';
  if (strstr(key, "..") || key[0] == '/') {
    errno = 0;
    fail("sysctl \"%s\": invalid key", key);
  }
  /* With no '/', dots separate levels; with '/', dots belong to names (eth0.100). */
  if (!strchr(key, '/'))
    for (char *p = key; *p; p++)
      if (*p == '.') *p = '/';
  snprintf(path, sizeof path, "/proc/sys/%s", key);
  char what[PATH_MAX + 16];
  snprintf(what, sizeof what, "sysctl %.*s", (int)(eq - spec), spec);
  write_file(path, eq + 1, what);
}

/* mkdir that accepts an existing directory. */
static void make_dir(const char *path, mode_t mode) {
  if (mkdir(path, mode) < 0 && errno != EEXIST) fail("mkdir %s", path);
}

static void bind_ns(int i, const char *source) {
  char target[PATH_MAX];
  snprintf(target, sizeof target, "%s/%s", dir, ns_names[i]);
  int fd = open(target, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
  if (fd < 0) fail("create %s", target);
  close(fd);
  pinned[i] = 1; /* the file exists: undo() must remove it */
  if (mount(source, target, NULL, MS_BIND, NULL) < 0) fail("bind-mount %s onto %s", source, target);
}

static volatile sig_atomic_t stop_requested;
static void on_stop(int sig) { (void)sig; stop_requested = 1; }
static void on_child(int sig) { (void)sig; }

/* PID 1 of the pod's PID namespace: reaps orphans until SIGTERM/SIGINT/SIGKILL. */
static void pause_main(int ready_fd) {
  setsid();
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
  prctl(PR_SET_NAME, "berth-pause", 0, 0, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_child;
  sigaction(SIGCHLD, &sa, NULL);
  if (write(ready_fd, "1", 1) != 1) _exit(1);
  /* Hold nothing of berthd's: no inherited descriptors, no working directory. */
  close_range(3, ~0U, 0);
  if (chdir("/") < 0) _exit(1);
  while (!stop_requested) {
    pid_t r = waitpid(-1, NULL, WNOHANG);
    if (r > 0) continue;
    pause();
  }
  _exit(0);
}

/* "C:H:L" -> "C H L\n" for /proc/PID/{uid,gid}_map; one range (what the CRI allows). */
static void parse_map(const char *spec, char *out, size_t size, const char *what) {
  unsigned long c, h, l;
  char end;
  errno = 0;
  if (sscanf(spec, "%lu:%lu:%lu%c", &c, &h, &l, &end) != 3 || l == 0 || c > UINT32_MAX || h > UINT32_MAX ||
      l > UINT32_MAX)
    fail("%s \"%s\": expected CONTAINER:HOST:LENGTH", what, spec);
  snprintf(out, size, "%lu %lu %lu\n", c, h, l);
}

/*
 * Forks a child that unshares a user namespace and writes its maps from here
 * (a process cannot map ids it does not hold; the host root can). On return
 * the child runs in the mapped namespace with every capability there and
 * reads *to_child; *from_child carries its reports ('e' + message on failure).
 */
static pid_t fork_userns(const char *uid_map, const char *gid_map, int *to_child, int *from_child) {
  int down[2], up[2];
  if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0) fail("pipe");
  pid_t pid = fork();
  if (pid < 0) fail("fork the user namespace owner");
  if (pid == 0) {
    close(down[1]);
    close(up[0]);
    report_fd = up[1];
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (unshare(CLONE_NEWUSER) < 0) fail("unshare the user namespace");
    if (write(up[1], "u", 1) != 1) _exit(1);
    char c;
    if (read(down[0], &c, 1) != 1) _exit(1); /* maps written (or the parent gave up) */
    *to_child = down[0];
    *from_child = up[1];
    return 0;
  }
  userns_child = pid;
  close(down[0]);
  close(up[1]);
  char c;
  errno = 0;
  if (read(up[0], &c, 1) != 1 || c != 'u') {
    char msg[1024] = {0};
    if (c == 'e' && read(up[0], msg, sizeof msg - 1) >= 0) fail("%s", msg);
    fail("the user namespace owner died");
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
  write_file(path, uid_map, "write the uid map");
  snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
  write_file(path, gid_map, "write the gid map");
  if (write(down[1], "m", 1) != 1) fail("wake the user namespace owner");
  *to_child = down[1];
  *from_child = up[0];
  return pid;
}

/* Lets the user namespace child go and reaps it. */
static void end_userns_child(int to_child) {
  close(to_child);
  waitpid(userns_child, NULL, 0);
  userns_child = 0;
}

/* Brings the new network namespace's loopback up (the kernel gives it
 * 127.0.0.1/8 and ::1), as the CNI loopback plugin would, without a process. */
static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("socket for the loopback");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) fail("read the loopback's flags");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) fail("bring the loopback up");
  close(s);
}

/* Writes this process's pid to a cgroup.procs file (the whole process moves). */
static void join_by_pid(const char *procs) {
  char self[32];
  snprintf(self, sizeof self, "%d", (int)getpid());
  write_file(procs, self, "join pod cgroup");
}

/*
 * Puts this process into the cgroup whose cgroup.procs is `procs`. Writing a
 * pid to cgroup.procs takes the kernel's global threadgroup lock, whose first
 * writer after a quiet spell waits for an RCU grace period (10-15 ms); so
 * - cgroup v1: "0" is written to the sibling `tasks` file, which moves only
 *   the calling thread and skips that lock (this process has one thread);
 * - cgroup v2 (threads cannot change domain cgroups), when berth-pause is
 *   forked here: the directory is kept open and the pause cloned straight into
 *   it (clone3 CLONE_INTO_CGROUP, read side of the lock only); fork_pause()
 *   falls back to writing cgroup.procs on kernels without it.
 * Any other file gets this process's pid written to it, as before.
 */
static void join_cgroup(const char *procs, int clone_into_v2) {
  char dirpath[PATH_MAX];
  const char *slash = strrchr(procs, '/');
  struct statfs fs;
  if (!slash || strcmp(slash, "/cgroup.procs") || (size_t)(slash - procs) >= sizeof dirpath - 8 || statfs(procs, &fs) < 0) {
    join_by_pid(procs);
    return;
  }
  memcpy(dirpath, procs, (size_t)(slash - procs));
  dirpath[slash - procs] = 0;
  if (fs.f_type == CGROUP_V1_MAGIC) {
    strcat(dirpath, "/tasks");
    write_file(dirpath, "0", "join pod cgroup");
  } else if (fs.f_type == CGROUP_V2_MAGIC && clone_into_v2 && cgroup2_dir < 0) {
    cgroup2_dir = open(dirpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cgroup2_dir < 0) fail("join pod cgroup: open %s", dirpath);
    snprintf(cgroup2_procs, sizeof cgroup2_procs, "%s", procs);
  } else {
    join_by_pid(procs);
  }
}

/* fork(), into the pod's cgroup v2 directory when join_cgroup() kept one. */
static pid_t fork_pause(void) {
  if (cgroup2_dir >= 0) {
    struct clone3_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)cgroup2_dir;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid >= 0) return (pid_t)pid;
    if (errno != ENOSYS && errno != E2BIG && errno != EINVAL) fail("clone the pause process into the pod cgroup");
    /* An older kernel: join the old way, then fork. */
    join_by_pid(cgroup2_procs);
    close(cgroup2_dir);
    cgroup2_dir = -1;
  }
  return fork();
}

/* Unshares, names and tunes the namespaces; returns the pause pid with --pid (else 0). */
static pid_t make_namespaces(const int *want, const char *hostname, const char **sysctls, int nsysctl) {
  int flags = 0;
  for (int i = 0; i < NS_COUNT; i++)
    if (want[i] && i != NS_USER) flags |= ns_flags[i];
  if (flags && unshare(flags) < 0) fail("unshare");
  if (want[NS_NET]) loopback_up();

  if (hostname && sethostname(hostname, strlen(hostname)) < 0) fail("sethostname \"%s\"", hostname);
  /* /proc/sys/net and the IPC sysctls resolve against the caller's namespaces. */
  for (int i = 0; i < nsysctl; i++) set_sysctl(sysctls[i]);
  if (!want[NS_PID]) return 0;

  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) fail("pipe");
  pid_t pid = fork_pause();
  if (pid < 0) fail("fork the pause process");
  if (pid == 0) {
    close(p[0]);
    pause_main(p[1]);
  }
  pause_pid = pid;
  close(p[1]);
  char c;
  if (read(p[0], &c, 1) != 1) {
    errno = 0;
    fail("the pause process died before it was ready");
  }
  close(p[0]);
  return pid;
}

static int do_pin(int argc, char **argv) {
  int want[NS_COUNT] = {0};
  const char *hostname = NULL;
  const char *sysctls[MAX_LIST];
  const char *cgroups[MAX_LIST];
  int nsysctl = 0, ncgroup = 0;
  const char *shm_size = NULL;
  const char *uid_spec = NULL, *gid_spec = NULL;

  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    errno = 0;
    if (!strcmp(a, "--net")) want[NS_NET] = 1;
    else if (!strcmp(a, "--ipc")) want[NS_IPC] = 1;
    else if (!strcmp(a, "--uts")) want[NS_UTS] = 1;
    else if (!strcmp(a, "--pid")) want[NS_PID] = 1;
    else if (!v) fail("option %s needs a value", a);
    else if (!strcmp(a, "--dir")) dir = v, i++;
    else if (!strcmp(a, "--hostname")) hostname = v, i++;
    else if (!strcmp(a, "--shm")) shm_path = v, i++;
    else if (!strcmp(a, "--shm-size")) shm_size = v, i++;
    else if (!strcmp(a, "--uid-map")) uid_spec = v, i++;
    else if (!strcmp(a, "--gid-map")) gid_spec = v, i++;
    else if (!strcmp(a, "--sysctl") && nsysctl < MAX_LIST) sysctls[nsysctl++] = v, i++;
    else if (!strcmp(a, "--cgroup-procs") && ncgroup < MAX_LIST) cgroups[ncgroup++] = v, i++;
    else fail("unknown or repeated too often: %s", a);
  }
  errno = 0;
  if (!dir) fail("--dir is required");
  if (hostname && !want[NS_UTS]) fail("--hostname needs --uts");
  if (!uid_spec != !gid_spec) fail("--uid-map and --gid-map go together");
  char uid_map[96], gid_map[96];
  if (uid_spec) {
    parse_map(uid_spec, uid_map, sizeof uid_map, "--uid-map");
    parse_map(gid_spec, gid_map, sizeof gid_map, "--gid-map");
    want[NS_USER] = 1;
  }
  /* DIR and its parent (the pod's state directory), then the shm mount point:
   * made here so that pinning need not wait for berthd to make them. */
  char parent[PATH_MAX];
  snprintf(parent, sizeof parent, "%s", dir);
  char *slash = strrchr(parent, '/');
  if (slash && slash != parent) {
    *slash = '\0';
    make_dir(parent, 0700);
  }
  make_dir(dir, 0700);
  if (shm_path) make_dir(shm_path, 0755);

  /* Join the pod cgroup first so the pause process is born in it. */
  int clone_into_v2 = want[NS_PID] && !want[NS_USER];
  for (int i = 0; i < ncgroup; i++) join_cgroup(cgroups[i], clone_into_v2);

  if (shm_path) {
    char opts[128];
    snprintf(opts, sizeof opts, "mode=1777,size=%s", shm_size ? shm_size : "67108864");
    if (mount("shm", shm_path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
      fail("mount tmpfs on %s (%s)", shm_path, opts);
    shm_mounted = 1;
  }

  char src[64];
  pid_t owner = getpid();
  if (want[NS_USER]) {
    int to_child, from_child;
    pid_t child = fork_userns(uid_map, gid_map, &to_child, &from_child);
    if (child == 0) {
      /* In the new user namespace: the rest is created owned by it. Its root
       * (not the host's, which is unmapped here) owns the IPC sysctls. */
      if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) fail("become root of the user namespace");
      pid_t pp = make_namespaces(want, hostname, sysctls, nsysctl);
      pause_pid = 0; /* the parent owns it from here (and kills it on failure) */
      char msg[32];
      int n = snprintf(msg, sizeof msg, "r%d", (int)pp);
      if (write(from_child, msg, (size_t)n) != n) _exit(1);
      char c;
      /* Stay until the parent has pinned /proc/<self>/ns/<ns>. */
      while (read(to_child, &c, 1) > 0) {
      }
      _exit(0);
    }
    char msg[1024] = {0};
    errno = 0;
    if (read(from_child, msg, sizeof msg - 1) <= 0) fail("the user namespace owner died");
    if (msg[0] != 'r') fail("%s", msg + 1);
    pause_pid = (pid_t)atoi(msg + 1);
    owner = child;
    for (int i = 0; i < NS_COUNT; i++) {
      if (!want[i] || i == NS_PID) continue;
      snprintf(src, sizeof src, "/proc/%d/ns/%s", (int)owner, ns_names[i]);
      bind_ns(i, src);
    }
    end_userns_child(to_child);
    close(from_child);
  } else {
    pause_pid = make_namespaces(want, hostname, sysctls, nsysctl);
    for (int i = 0; i < NS_COUNT; i++) {
      if (!want[i] || i == NS_PID) continue;
      snprintf(src, sizeof src, "/proc/self/ns/%s", ns_names[i]);
      bind_ns(i, src);
    }
  }

  if (want[NS_PID]) {
    pid_t pid = pause_pid;
    snprintf(src, sizeof src, "/proc/%d/ns/pid", (int)pid);
    bind_ns(NS_PID, src);
    /* Recorded next to the namespaces so a caller killed before it read stdout can still find it. */
    char pidfile[PATH_MAX], pidtext[32];
    snprintf(pidfile, sizeof pidfile, "%s/pause.pid", dir);
    snprintf(pidtext, sizeof pidtext, "%d\n", (int)pid);
    int fd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, pidtext, strlen(pidtext)) != (ssize_t)strlen(pidtext) || close(fd) < 0)
      fail("write %s", pidfile);
    printf("pid=%d\n", (int)pid);
  }
  fflush(stdout);
  return 0;
}

/* A user namespace fd: the pinned FILE, or a throw-away one with the maps (its owner is reaped at once). */
static int userns_fd(const char *file, const char *uid_spec, const char *gid_spec) {
  if (file) {
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open %s", file);
    return fd;
  }
  char uid_map[96], gid_map[96];
  parse_map(uid_spec, uid_map, sizeof uid_map, "--uid-map");
  parse_map(gid_spec, gid_map, sizeof gid_map, "--gid-map");
  int to_child, from_child;
  pid_t child = fork_userns(uid_map, gid_map, &to_child, &from_child);
  if (child == 0) {
    char c;
    while (read(to_child, &c, 1) > 0) {
    }
    _exit(0);
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("open %s", path);
  end_userns_child(to_child);
  close(from_child);
  return fd;
}

static int do_idmap(int argc, char **argv) {
  const char *file = NULL, *uid_spec = NULL, *gid_spec = NULL, *src = NULL, *dst = NULL;
  int recursive = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    errno = 0;
    if (!strcmp(a, "--recursive")) recursive = 1;
    else if (!strcmp(a, "--userns") && v) file = v, i++;
    else if (!strcmp(a, "--uid-map") && v) uid_spec = v, i++;
    else if (!strcmp(a, "--gid-map") && v) gid_spec = v, i++;
    else if (a[0] == '-') fail("unknown option or missing value: %s", a);
    else if (!src) src = a;
    else if (!dst) dst = a;
    else fail("unexpected argument: %s", a);
  }
  errno = 0;
  if (!src || !dst) fail("idmap needs SRC and DST");
  if (!file == !(uid_spec && gid_spec)) fail("idmap needs --userns FILE or --uid-map and --gid-map");
  int ns = userns_fd(file, uid_spec, gid_spec);

  struct stat st;
  if (stat(src, &st) < 0) fail("stat %s", src);
  int is_dir = S_ISDIR(st.st_mode);
  if (is_dir ? mkdir(dst, 0755) < 0 && errno != EEXIST : mknod(dst, S_IFREG | 0644, 0) < 0 && errno != EEXIST)
    fail("create %s", dst);
  unsigned rec = recursive ? AT_RECURSIVE : 0;
  int tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
  if (tree < 0) fail("open_tree %s", src);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)ns};
  if (mount_setattr(tree, "", AT_EMPTY_PATH | rec, &attr, sizeof attr) < 0) fail("idmap the mount of %s", src);
  if (move_mount(tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0) fail("attach the idmapped %s at %s", src, dst);
  return 0;
}

static int do_umount(int argc, char **argv) {
  int rc = 0;
  for (int i = 0; i < argc; i++) {
    if (umount2(argv[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT) {
      fprintf(stderr, "berth-pinns: umount %s: %s\n", argv[i], strerror(errno));
      rc = 1;
    }
  }
  return rc;
}

static int do_unpin(int argc, char **argv) {
  const char *shm = NULL;
  for (int i = 0; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else if (!strcmp(argv[i], "--shm")) shm = argv[i + 1];
  }
  errno = 0;
  if (!dir) fail("--dir is required");
  int rc = 0;
  char path[PATH_MAX];
  for (int i = 0; i < NS_COUNT; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, ns_names[i]);
    if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT) {
      fprintf(stderr, "berth-pinns: umount %s: %s\n", path, strerror(errno));
      rc = 1;
      continue;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
      fprintf(stderr, "berth-pinns: unlink %s: %s\n", path, strerror(errno));
      rc = 1;
    }
  }
  snprintf(path, sizeof path, "%s/pause.pid", dir);
  if (unlink(path) < 0 && errno != ENOENT) {
    fprintf(stderr, "berth-pinns: unlink %s: %s\n", path, strerror(errno));
    rc = 1;
  }
  if (shm && umount2(shm, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT) {
    fprintf(stderr, "berth-pinns: umount %s: %s\n", shm, strerror(errno));
    rc = 1;
  }
  return rc;
}

static int do_private(const char *path) {
  if (mount(NULL, path, NULL, MS_PRIVATE, NULL) == 0) return 0;
  if (errno != EINVAL) fail("make %s private", path);
  /* Not a mount point yet: bind it onto itself, then make that private. */
  if (mount(path, path, NULL, MS_BIND, NULL) < 0) fail("bind %s onto itself", path);
  if (mount(NULL, path, NULL, MS_PRIVATE, NULL) < 0) fail("make %s private", path);
  return 0;
}

int main(int argc, char **argv) {
  errno = 0;
  if (argc >= 2 && !strcmp(argv[1], "pin")) return do_pin(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "unpin")) return do_unpin(argc - 2, argv + 2);
  if (argc == 3 && !strcmp(argv[1], "private")) return do_private(argv[2]);
  if (argc >= 2 && !strcmp(argv[1], "idmap")) return do_idmap(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "umount")) return do_umount(argc - 2, argv + 2);
  fprintf(stderr, "usage: berth-pinns pin|unpin|private|idmap|umount ... (see the source header)\n");
  return 2;
}
