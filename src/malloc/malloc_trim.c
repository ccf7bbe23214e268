/*
 * berth-malloc.node: a Node-API module with one function, trim(), which calls
 * glibc's malloc_trim(0). glibc gives freed memory back to the kernel only
 * from the top of a heap; what a burst of work frees below a chunk still in
 * use (network buffers, a worker thread's isolate) stays resident until
 * malloc_trim releases those pages (madvise MADV_DONTNEED). berthd calls it
 * once it has gone quiet (src/util/malloc_trim.ts).
 */
#include <malloc.h>
#include <node_api.h>

/* trim() -> true when memory was released to the kernel. */
static napi_value trim(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value released;
    if (napi_get_boolean(env, malloc_trim(0) != 0, &released) != napi_ok) return NULL;
    return released;
}

NAPI_MODULE_INIT() {
    napi_value fn;
    if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
    return exports;
}
