/*
 * berth-durable.node: a Node-API module that runs each step sequence of an
 * atomic file write as ONE libuv threadpool job. Through node's fs the write
 * of a record takes eight round trips between the main thread and the pool
 * (open, write, fsync, close, rename, open dir, fsync dir, close); each waits
 * for the event loop to come round, which under load costs more than the
 * syscalls (measured: 0.94 ms a write through fs.promises, 0.55 ms for the
 * same syscalls made in a row). Used by src/util/durable_fs.ts.
 *
 *   replaceFile(tmp, target, data, mode, syncFile, keepOld, dir, done)
 *       open tmp (create, truncate), write data, fsync (when syncFile), close,
 *       rename tmp over target, then fsync dir unless it is "" (a write with
 *       no other write in its directory under way needs no second job for
 *       that); on failure tmp is removed. With keepOld, an
 *       existing tmp is written over and cut to length (not truncated first),
 *       and an existing target is swapped with tmp instead (renameat2
 *       RENAME_EXCHANGE), so its inode stays, at tmp, for the next write:
 *       on ext4 without a journal every new inode is found by stepping over
 *       each inode freed in the last 30 s (find_inode_bit, recently_deleted),
 *       which a temp-and-rename per record write made the main cost of
 *       allocating one (perf, 10 pod starts at once).
 *   syncDir(dir, done)
 *       open dir, fsync, close.
 *   removeTree(dir, done)
 *       rm -r of dir that removes nothing when anything below is mounted
 *       (remove_tree.c); done's path is then the mount point.
 *
 * done(errno, syscall, kept, path) is called on the main thread: errno 0 on
 * success; kept is true when the old target now sits at tmp; path is the
 * file or directory the failed syscall was about.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <node_api.h>
#include "remove_tree.h"

#define WHERE_LEN 4096

enum job_kind { JOB_REPLACE, JOB_SYNC_DIR, JOB_REMOVE_TREE };

struct job {
    enum job_kind kind;
    char *tmp;      /* JOB_REPLACE: the temp file */
    char *target;   /* JOB_REPLACE: the file replaced; JOB_SYNC_DIR, JOB_REMOVE_TREE: the directory */
    char *dir;      /* JOB_REPLACE: the directory to fsync after the rename, or "" */
    char *data;
    size_t len;
    mode_t mode;
    int sync_file;
    int keep_old;
    int kept;
    int dir_failed; /* JOB_REPLACE: the error is the directory fsync's */
    int err;
    const char *syscall;
    char *where;    /* JOB_REMOVE_TREE: the path a failure is about (WHERE_LEN bytes) */
    napi_ref done;
    napi_async_work work;
};

static void job_free(napi_env env, struct job *j) {
    if (j->done != NULL) napi_delete_reference(env, j->done);
    if (j->work != NULL) napi_delete_async_work(env, j->work);
    free(j->tmp);
    free(j->target);
    free(j->dir);
    free(j->data);
    free(j->where);
    free(j);
}

static int fail(struct job *j, const char *syscall) {
    j->err = errno;
    j->syscall = syscall;
    return -1;
}

static int close_checked(struct job *j, int fd) {
    /* close(2) must not be retried on EINTR on Linux: the descriptor is gone. */
    if (close(fd) != 0 && errno != EINTR) return fail(j, "close");
    return 0;
}

static int write_all(struct job *j, int fd) {
    size_t done = 0;
    while (done < j->len) {
        ssize_t n = write(fd, j->data + done, j->len - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(j, "write");
        }
        done += (size_t)n;
    }
    return 0;
}

static int fsync_retrying(struct job *j, int fd) {
    while (fsync(fd) != 0) {
        if (errno != EINTR) return fail(j, "fsync");
    }
    return 0;
}

static int put_in_place(struct job *j) {
    if (j->keep_old) {
        if (renameat2(AT_FDCWD, j->tmp, AT_FDCWD, j->target, RENAME_EXCHANGE) == 0) {
            j->kept = 1;
            return 0;
        }
        /* No target yet (ENOENT), or a file system without exchange: a plain rename. */
        if (errno != ENOENT && errno != EINVAL && errno != ENOSYS) return fail(j, "rename");
    }
    if (rename(j->tmp, j->target) != 0) return fail(j, "rename");
    return 0;
}

/*
 * A reused tmp (keepOld) is written over in place and cut to length, not
 * truncated first: freeing its blocks and allocating them again cost as much
 * as the rest of the write (perf). Its old contents are garbage, never read.
 */
static int reuse(struct job *j, int fd) {
    struct stat st;
    /* open keeps a reused file's mode: set the one asked for. */
    if (fchmod(fd, j->mode) != 0) return fail(j, "fchmod");
    if (fstat(fd, &st) != 0) return fail(j, "fstat");
    if (write_all(j, fd) != 0) return -1;
    if (st.st_size > (off_t)j->len && ftruncate(fd, (off_t)j->len) != 0) return fail(j, "ftruncate");
    return 0;
}

static int sync_dir_at(struct job *j, const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(j, "open");
    if (fsync_retrying(j, fd) != 0) {
        close(fd);
        return -1;
    }
    return close_checked(j, fd);
}

static void run_replace(struct job *j) {
    int fd = open(j->tmp, O_WRONLY | O_CREAT | O_CLOEXEC | (j->keep_old ? 0 : O_TRUNC), j->mode);
    if (fd < 0) {
        fail(j, "open");
        return;
    }
    int bad = (j->keep_old ? reuse(j, fd) : write_all(j, fd)) != 0 || (j->sync_file && fsync_retrying(j, fd) != 0);
    if (bad) {
        close(fd);
    } else {
        bad = close_checked(j, fd) != 0 || put_in_place(j) != 0;
    }
    if (bad) {
        unlink(j->tmp); /* the error is already in j->err */
        return;
    }
    /* The rename is done: a failed directory fsync leaves tmp as it is (a spare, or gone). */
    if (j->dir[0] != '\0' && sync_dir_at(j, j->dir) != 0) j->dir_failed = 1;
}

static void execute(napi_env env, void *data) {
    (void)env;
    struct job *j = data;
    if (j->kind == JOB_REPLACE) run_replace(j);
    else if (j->kind == JOB_REMOVE_TREE) j->err = remove_tree(j->target, j->where, WHERE_LEN, &j->syscall);
    else sync_dir_at(j, j->target);
}

static void complete(napi_env env, napi_status status, void *data) {
    struct job *j = data;
    napi_value done, undefined, argv[4];
    const char *where = j->kind == JOB_REMOVE_TREE ? j->where : j->kind == JOB_SYNC_DIR ? j->target : j->dir_failed ? j->dir : j->tmp;
    if (status == napi_cancelled && j->err == 0) {
        j->err = ECANCELED;
        j->syscall = "uv_queue_work";
    }
    if (napi_get_reference_value(env, j->done, &done) == napi_ok && napi_get_undefined(env, &undefined) == napi_ok &&
        napi_create_int32(env, j->err, &argv[0]) == napi_ok &&
        napi_create_string_utf8(env, j->syscall != NULL ? j->syscall : "", NAPI_AUTO_LENGTH, &argv[1]) == napi_ok &&
        napi_get_boolean(env, j->kept, &argv[2]) == napi_ok &&
        napi_create_string_utf8(env, where, NAPI_AUTO_LENGTH, &argv[3]) == napi_ok) {
        napi_call_function(env, undefined, done, 4, argv, NULL);
    }
    job_free(env, j);
}

/* A string argument as a malloc'd C string (NULL when it is not a string or holds a NUL). */
static char *string_arg(napi_env env, napi_value v) {
    size_t len;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
    char *s = malloc(len + 1);
    if (s == NULL) return NULL;
    if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok || strlen(s) != len) {
        free(s);
        return NULL;
    }
    return s;
}

static napi_value queue(napi_env env, struct job *j, napi_value done, const char *name) {
    napi_value resource_name;
    if (napi_create_reference(env, done, 1, &j->done) != napi_ok ||
        napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
        napi_create_async_work(env, NULL, resource_name, execute, complete, j, &j->work) != napi_ok ||
        napi_queue_async_work(env, j->work) != napi_ok) {
        job_free(env, j);
        napi_throw_error(env, NULL, "berth-durable: cannot queue the job");
        return NULL;
    }
    return NULL;
}

/*
 * The call's arguments (exactly `want`, the last a function) and a new job of
 * `kind`; NULL with a JS exception pending when they are not that.
 */
static struct job *new_job(napi_env env, napi_callback_info info, enum job_kind kind, size_t want, napi_value *argv, const char *usage) {
    size_t argc = want;
    napi_valuetype last;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want ||
        napi_typeof(env, argv[want - 1], &last) != napi_ok || last != napi_function) {
        napi_throw_type_error(env, NULL, usage);
        return NULL;
    }
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        napi_throw_error(env, NULL, "berth-durable: out of memory");
        return NULL;
    }
    j->kind = kind;
    return j;
}

static napi_value bad_arguments(napi_env env, struct job *j, const char *usage) {
    job_free(env, j);
    napi_throw_type_error(env, NULL, usage);
    return NULL;
}

static napi_value replace_file(napi_env env, napi_callback_info info) {
    static const char usage[] =
        "replaceFile(tmp: string, target: string, data: Buffer, mode: number, syncFile: boolean, keepOld: boolean, dir: string, done)";
    napi_value argv[8];
    struct job *j = new_job(env, info, JOB_REPLACE, 8, argv, usage);
    void *bytes;
    size_t len;
    uint32_t mode;
    bool sync_file, keep_old, is_buffer;
    if (j == NULL) return NULL;
    j->tmp = string_arg(env, argv[0]);
    j->target = string_arg(env, argv[1]);
    j->dir = string_arg(env, argv[6]);
    if (j->tmp == NULL || j->target == NULL || j->dir == NULL || napi_is_buffer(env, argv[2], &is_buffer) != napi_ok || !is_buffer ||
        napi_get_buffer_info(env, argv[2], &bytes, &len) != napi_ok || napi_get_value_uint32(env, argv[3], &mode) != napi_ok ||
        napi_get_value_bool(env, argv[4], &sync_file) != napi_ok || napi_get_value_bool(env, argv[5], &keep_old) != napi_ok)
        return bad_arguments(env, j, usage);
    /* A copy: the job outlives this call, and JS may reuse the buffer. */
    j->data = malloc(len > 0 ? len : 1);
    if (j->data == NULL) {
        job_free(env, j);
        napi_throw_error(env, NULL, "berth-durable: out of memory");
        return NULL;
    }
    memcpy(j->data, bytes, len);
    j->len = len;
    j->mode = (mode_t)(mode & 07777);
    j->sync_file = sync_file;
    j->keep_old = keep_old;
    return queue(env, j, argv[7], "berth-durable:replaceFile");
}

/* A job on one directory: fn(dir: string, done). */
static napi_value dir_job(napi_env env, napi_callback_info info, enum job_kind kind, const char *usage, const char *name) {
    napi_value argv[2];
    struct job *j = new_job(env, info, kind, 2, argv, usage);
    if (j == NULL) return NULL;
    j->target = string_arg(env, argv[0]);
    if (j->target == NULL) return bad_arguments(env, j, usage);
    if (kind == JOB_REMOVE_TREE && (j->where = malloc(WHERE_LEN)) == NULL) {
        job_free(env, j);
        napi_throw_error(env, NULL, "berth-durable: out of memory");
        return NULL;
    }
    return queue(env, j, argv[1], name);
}

static napi_value sync_dir(napi_env env, napi_callback_info info) {
    return dir_job(env, info, JOB_SYNC_DIR, "syncDir(dir: string, done)", "berth-durable:syncDir");
}

static napi_value remove_tree_fn(napi_env env, napi_callback_info info) {
    return dir_job(env, info, JOB_REMOVE_TREE, "removeTree(dir: string, done)", "berth-durable:removeTree");
}

NAPI_MODULE_INIT() {
    napi_value fn;
    if (napi_create_function(env, "replaceFile", NAPI_AUTO_LENGTH, replace_file, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "replaceFile", fn) != napi_ok)
        return NULL;
    if (napi_create_function(env, "syncDir", NAPI_AUTO_LENGTH, sync_dir, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "syncDir", fn) != napi_ok)
        return NULL;
    if (napi_create_function(env, "removeTree", NAPI_AUTO_LENGTH, remove_tree_fn, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "removeTree", fn) != napi_ok)
        return NULL;
    return exports;
}
