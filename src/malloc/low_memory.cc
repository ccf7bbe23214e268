/*
 * lowMemory(): tells V8 the process is low on memory (Isolate::
 * LowMemoryNotification). V8 then collects everything it can with its
 * memory-reducing flags: it compacts the old generation, shrinks the young
 * generation back to its initial size and gives the emptied pages back to the
 * kernel. A plain full collection (gc()) does neither of the last two: after a
 * burst had grown the young generation to 2 x 16 MiB it stayed so; V8's own
 * memory reducer shrinks it only after 30 s and more of quiet, and not at all
 * after an explicit gc() (measured on Node 20). berthd calls it once quiet
 * after a burst (src/util/malloc_trim.ts), so it may let the young generation
 * grow while busy.
 *
 * C++ only for v8::Isolate; the functions used are stable across Node 20-24.
 */
#include <node_api.h>
#include <v8.h>

extern "C" napi_value berth_low_memory(napi_env env, napi_callback_info info) {
    (void)env;
    (void)info;
    v8::Isolate *isolate = v8::Isolate::GetCurrent();
    if (isolate != nullptr) isolate->LowMemoryNotification();
    return nullptr;
}
