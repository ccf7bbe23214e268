/* Sealed memfd copies of an OCI runtime binary (runtime_copy.c). */
#ifndef BERTH_LAUNCH_RUNTIME_COPY_H
#define BERTH_LAUNCH_RUNTIME_COPY_H

/* A read-only, close-on-exec fd of a sealed memfd copy of the file at the
 * absolute path `path` (kept here; the caller must not close it), made on
 * first use and re-made when the file's dev/ino/size/mtime change; -1 with
 * errno when there is none (not absolute, not a regular file, no memfd,
 * a seal missing). */
int runtime_copy(const char *path);

#endif
