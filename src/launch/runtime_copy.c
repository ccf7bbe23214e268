/* Sealed memfd copies of the OCI runtime binary (runc) for the children that
 * exec it: berth-exec supervisors (`runc exec`) and berth-shim (`runc create`).
 *
 * Why: against CVE-2019-5736, every `runc init` of runc 1.1 re-execs itself
 * from a read-only bind mount (or a sealed memfd copy) of its own binary,
 * unless /proc/self/exe already is a memfd sealed with exactly
 * F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE (cloned_binary.c,
 * is_self_cloned). Run from such a copy, made once here, it skips that step
 * (a mount, an umount and a second exec of a 9 MB binary per call). The copy
 * cannot be written, resized or unsealed by anyone, so a container process
 * that reaches /proc/<runc pid>/exe cannot overwrite the host's runc through
 * it: the protection runc wants, made once. Children get a read-only fd. */
#define _GNU_SOURCE
#include "runtime_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable on purpose (vm.memfd_noexec) */
#endif
#define RUNC_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
#define MAX_COPIES 4 /* runtime binaries copied at once (one per handler; runc is the only one today) */

struct copy {
	char path[PATH_MAX];
	struct stat st; /* of the file the copy was made from */
	int fd;         /* read-only, O_CLOEXEC */
};

static struct copy copies[MAX_COPIES];
static int n_copies;

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Copies the open file `src` (of `st`) into a new memfd and seals it: a read-only fd of it, or -1. */
static int make_copy(int src, const struct stat *st)
{
	int mfd = memfd_create("berth-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (mfd < 0 && errno == EINVAL)
		mfd = memfd_create("berth-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING); /* before Linux 6.3 */
	if (mfd < 0)
		return -1;
	int ro = -1, err = 0;
	off_t off = 0;
	while (off < st->st_size) {
		ssize_t n = sendfile(mfd, src, &off, (size_t)(st->st_size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO; /* shorter than it was: being replaced */
			goto out;
		}
	}
	struct stat after;
	if (fstat(src, &after) < 0 || !same_file(st, &after)) {
		err = EAGAIN; /* written while we copied */
		goto out;
	}
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", mfd);
	if (fchmod(mfd, 0555) < 0 || fcntl(mfd, F_ADD_SEALS, RUNC_SEALS) < 0) {
		err = errno;
		goto out;
	}
	/* Exactly runc's set: another seal (F_SEAL_EXEC) and runc would not trust it. */
	if (fcntl(mfd, F_GET_SEALS) != RUNC_SEALS) {
		err = EPERM;
		goto out;
	}
	/* A new open file description, read-only: nobody holding it can even try to write. */
	ro = open(self, O_RDONLY | O_CLOEXEC);
	if (ro < 0)
		err = errno;
out:
	close(mfd);
	errno = err;
	return ro;
}

int runtime_copy(const char *path)
{
	if (path[0] != '/' || strlen(path) >= PATH_MAX) {
		errno = EINVAL;
		return -1;
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	struct copy *c = NULL;
	for (int i = 0; i < n_copies && !c; i++)
		if (!strcmp(copies[i].path, path))
			c = &copies[i];
	if (c && same_file(&c->st, &st))
		return c->fd;
	if (!c && n_copies == MAX_COPIES) {
		errno = ENOSPC;
		return -1;
	}
	int src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return -1;
	int fd = -1;
	if (fstat(src, &st) < 0)
		fd = -1;
	else if (!S_ISREG(st.st_mode))
		errno = EACCES;
	else
		fd = make_copy(src, &st);
	int err = errno;
	close(src);
	if (fd < 0) {
		errno = err;
		return -1;
	}
	if (!c) {
		c = &copies[n_copies++];
		snprintf(c->path, sizeof(c->path), "%s", path);
	} else {
		close(c->fd); /* the old binary's copy: children already started hold their own */
	}
	c->st = st;
	c->fd = fd;
	return fd;
}
