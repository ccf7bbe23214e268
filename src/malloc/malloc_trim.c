/*
 * berth-malloc.node: a Node-API module that gives memory back to the kernel.
 * trim() calls glibc's malloc_trim(0); lowMemory() is V8's (low_memory.cc).
 * glibc gives freed memory back to the kernel only
 * from the top of a heap; what a burst of work frees below a chunk still in
 * use (network buffers, a worker thread's isolate) stays resident until
 * malloc_trim releases those pages (madvise MADV_DONTNEED). berthd calls it
 * once it has gone quiet (src/util/malloc_trim.ts).
 */
#include <malloc.h>
#include <node_api.h>

/* low_memory.cc */
napi_value berth_low_memory(napi_env env, napi_callback_info info);

/* trim() -> true when memory was released to the kernel. */
static napi_value trim(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value released;
    if (napi_get_boolean(env, malloc_trim(0) != 0, &released) != napi_ok) return NULL;
    return released;
}

static int export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
    napi_value fn;
    if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) != napi_ok) return -1;
    return napi_set_named_property(env, exports, name, fn) == napi_ok ? 0 : -1;
}

NAPI_MODULE_INIT() {
    if (export_function(env, exports, "trim", trim) != 0) return NULL;
    if (export_function(env, exports, "lowMemory", berth_low_memory) != 0) return NULL;
    return exports;
}
