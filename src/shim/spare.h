/* A spare shim waiting for its orders (spare.c). */
#ifndef BERTH_SHIM_SPARE_H
#define BERTH_SHIM_SPARE_H

/* Listens on the abstract socket --spare-socket, reports "SPARE <pid>" on the
 * ready fd, takes one connection of our uid and reads the orders on it into
 * opt; the ready line is then written on that connection. Exits 0 when the
 * peer closes before giving orders (or none connects within 10 s). */
void await_orders(int argc, char **argv);

#endif
