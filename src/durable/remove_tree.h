/* rm -r that refuses to go through a mount (remove_tree.c). */
#ifndef BERTH_REMOVE_TREE_H
#define BERTH_REMOVE_TREE_H
#include <stddef.h>

/* Levels below the removed directory; a deeper tree is refused with ELOOP. */
#define REMOVE_TREE_MAX_DEPTH 32

/*
 * Removes the absolute directory dir and everything below it, or nothing
 * when any entry is a mount point (EXDEV) or the tree is too deep. A missing
 * dir is success. Returns 0 or an errno; on failure the path it is about is
 * in where (cut to where_len) and the failed call's name in *syscall_name.
 */
int remove_tree(const char *dir, char *where, size_t where_len, const char **syscall_name);

#endif
