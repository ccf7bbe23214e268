/*
 * berth-pinns: creates and pins the namespaces of a pod, and unpins them.
 *
 *   berth-pinns pin --dir DIR [--net] [--ipc] [--uts] [--pid]
 *               [--hostname NAME] [--sysctl KEY=VALUE]... [--cgroup-procs FILE]...
 *               [--shm PATH --shm-size BYTES]
 *   berth-pinns unpin --dir DIR [--shm PATH]
 *   berth-pinns private DIR
 *
 * pin: unshares the requested namespaces in this (short-lived) process, sets
 * the hostname and the namespaced sysctls from inside them, then bind-mounts
 * /proc/self/ns/<ns> onto DIR/<ns> so they outlive the process. A PID
 * namespace cannot be pinned by a bind mount alone (it dies with its init), so
 * with --pid a child is forked as PID 1 of the new namespace; it reaps zombies
 * until killed (berth's "pause"). Its host PID is printed as "pid=N" on stdout
 * and written to DIR/pause.pid.
 * On failure everything this run mounted is undone and the reason is printed
 * on stderr; the exit status is 1.
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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LIST 64

static const char *ns_names[] = {"net", "ipc", "uts", "pid"};
enum { NS_NET, NS_IPC, NS_UTS, NS_PID, NS_COUNT };
static const int ns_flags[] = {CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWPID};

static const char *dir;
static int pinned[NS_COUNT];
static const char *shm_path;
static int shm_mounted;
static pid_t pause_pid;

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
}

static void fail(const char *fmt, ...) {
  int saved = errno;
  va_list ap;
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

static int do_pin(int argc, char **argv) {
  int want[NS_COUNT] = {0};
  const char *hostname = NULL;
  const char *sysctls[MAX_LIST];
  const char *cgroups[MAX_LIST];
  int nsysctl = 0, ncgroup = 0;
  const char *shm_size = NULL;

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
    else if (!strcmp(a, "--sysctl") && nsysctl < MAX_LIST) sysctls[nsysctl++] = v, i++;
    else if (!strcmp(a, "--cgroup-procs") && ncgroup < MAX_LIST) cgroups[ncgroup++] = v, i++;
    else fail("unknown or repeated too often: %s", a);
  }
  errno = 0;
  if (!dir) fail("--dir is required");
  if (hostname && !want[NS_UTS]) fail("--hostname needs --uts");
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) fail("mkdir %s", dir);

  /* Join the pod cgroup first so the pause process is born in it. */
  char self[32];
  snprintf(self, sizeof self, "%d", (int)getpid());
  for (int i = 0; i < ncgroup; i++) write_file(cgroups[i], self, "join pod cgroup");

  if (shm_path) {
    char opts[128];
    snprintf(opts, sizeof opts, "mode=1777,size=%s", shm_size ? shm_size : "67108864");
    if (mount("shm", shm_path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
      fail("mount tmpfs on %s (%s)", shm_path, opts);
    shm_mounted = 1;
  }

  int flags = 0;
  for (int i = 0; i < NS_COUNT; i++)
    if (want[i]) flags |= ns_flags[i];
  if (flags && unshare(flags) < 0) fail("unshare");

  if (hostname && sethostname(hostname, strlen(hostname)) < 0) fail("sethostname \"%s\"", hostname);
  /* /proc/sys/net and the IPC sysctls resolve against the caller's namespaces. */
  for (int i = 0; i < nsysctl; i++) set_sysctl(sysctls[i]);

  char src[64];
  for (int i = 0; i < NS_COUNT; i++) {
    if (!want[i] || i == NS_PID) continue;
    snprintf(src, sizeof src, "/proc/self/ns/%s", ns_names[i]);
    bind_ns(i, src);
  }

  if (want[NS_PID]) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) fail("pipe");
    pid_t pid = fork();
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
  fprintf(stderr, "usage: berth-pinns pin|unpin|private ... (see the source header)\n");
  return 2;
}
