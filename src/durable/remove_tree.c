/*
 * rm -r of a berth-owned directory that never goes through a mount, as one
 * threadpool job (berth-durable.node's removeTree).
 *
 * Why: berth's state directories can hold mounts (pinned namespaces, a
 * rootfs, a volume) while something is half torn down, and rm -r through a
 * mount deletes what is mounted there. The old guard read and parsed the
 * whole mount table before every removal (2 ms a pod at 50 pods, on the main
 * thread), and node's fs.rm then took a threadpool round trip per lstat,
 * readdir, unlink and rmdir. Here every entry is opened with openat2's
 * RESOLVE_NO_XDEV, which fails with EXDEV exactly when the entry is a mount
 * point (bind mounts included), so the kernel answers the question for the
 * entries themselves.
 *
 * Two passes keep "nothing removed when anything is mounted": the first walks
 * the tree and opens every entry (O_PATH, no symlinks followed); the second
 * unlinks. A tree deeper than REMOVE_TREE_MAX_DEPTH is refused (ELOOP) before
 * anything is removed: these are berth's own directories, a few levels deep,
 * and each level holds a descriptor.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "remove_tree.h"

struct walk {
    int err;
    const char *syscall;
    char *where;      /* the path the error is about */
    size_t where_len;
    char path[4096];  /* the directory being walked, for error messages (cut when longer) */
};

static int open_here(int dirfd, const char *name, int flags) {
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC | O_NOFOLLOW),
        .resolve = RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd;
    do {
        fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof how);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

static int fail(struct walk *w, const char *syscall, const char *name) {
    w->err = errno;
    w->syscall = syscall;
    if (name != NULL)
        snprintf(w->where, w->where_len, "%s/%s", w->path, name);
    else
        snprintf(w->where, w->where_len, "%s", w->path);
    return -1;
}

/* Appends /name to w->path for the time a subdirectory is walked; returns the old length. */
static size_t enter(struct walk *w, const char *name) {
    size_t len = strlen(w->path);
    snprintf(w->path + len, sizeof w->path - len, "/%s", name);
    return len;
}

/*
 * One pass over the directory open at fd (consumed). check: open every
 * entry, remove nothing; otherwise unlink every entry (the directory itself
 * is its parent's to remove).
 */
static int walk_dir(struct walk *w, int fd, int depth, int check) {
    if (depth > REMOVE_TREE_MAX_DEPTH) {
        close(fd);
        errno = ELOOP;
        return fail(w, "openat2", NULL);
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return fail(w, "fdopendir", NULL);
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0) rc = fail(w, "readdir", NULL);
            break;
        }
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        int is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT) continue;
                rc = fail(w, "fstatat", name);
                break;
            }
            is_dir = S_ISDIR(st.st_mode);
        }
        if (is_dir || check) {
            int child = open_here(dirfd(d), name, is_dir ? O_RDONLY | O_DIRECTORY : O_PATH);
            if (child < 0) {
                if (errno == ENOENT) continue;
                rc = fail(w, "openat2", name);
                break;
            }
            if (!is_dir) {
                close(child);
                continue;
            }
            size_t len = enter(w, name);
            rc = walk_dir(w, child, depth + 1, check);
            w->path[len] = '\0';
            if (rc != 0) break;
        }
        if (!check && unlinkat(dirfd(d), name, is_dir ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT) {
            rc = fail(w, is_dir ? "rmdir" : "unlink", name);
            break;
        }
    }
    closedir(d);
    return rc;
}

int remove_tree(const char *dir, char *where, size_t where_len, const char **syscall_name) {
    struct walk w = { .where = where, .where_len = where_len };
    snprintf(w.path, sizeof w.path, "%s", dir);
    where[0] = '\0';
    /* The directory itself is opened from its parent, so a mount at dir is refused too. */
    const char *slash = strrchr(dir, '/');
    if (dir[0] != '/' || slash == NULL || slash[1] == '\0') {
        errno = EINVAL;
        fail(&w, "remove_tree", NULL);
        *syscall_name = w.syscall;
        return w.err;
    }
    char parent[4096];
    size_t plen = slash == dir ? 1 : (size_t)(slash - dir);
    if (plen >= sizeof parent) {
        errno = ENAMETOOLONG;
        fail(&w, "open", NULL);
        *syscall_name = w.syscall;
        return w.err;
    }
    memcpy(parent, dir, plen);
    parent[plen] = '\0';
    const char *base = slash + 1;
    int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0) {
        int gone = errno == ENOENT;
        fail(&w, "open", NULL);
        *syscall_name = w.syscall;
        return gone ? 0 : w.err;
    }
    int rc = 0;
    for (int check = 1; check >= 0 && rc == 0; check--) {
        int fd = open_here(pfd, base, O_RDONLY | O_DIRECTORY);
        if (fd < 0) {
            if (errno == ENOENT) break; /* nothing to remove (force) */
            rc = fail(&w, "openat2", NULL);
            break;
        }
        rc = walk_dir(&w, fd, 1, check);
    }
    if (rc == 0 && unlinkat(pfd, base, AT_REMOVEDIR) != 0 && errno != ENOENT) rc = fail(&w, "rmdir", NULL);
    close(pfd);
    *syscall_name = w.syscall;
    return rc == 0 ? 0 : w.err;
}
