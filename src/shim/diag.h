/* berth-shim diagnostics (shim.log) and the start-up report on --ready-fd. */
#ifndef BERTH_SHIM_DIAG_H
#define BERTH_SHIM_DIAG_H

void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes one "OK ..." or "ERR ..." line to the ready fd, once. */
void report_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports ERR, removes what start-up created, exits 1. */
void fail_start(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
