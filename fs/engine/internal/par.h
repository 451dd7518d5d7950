/* SPDX-License-Identifier: MIT */
/*
 * par.h - a small fork-join pool for the chunk crypto of large requests.
 *
 * A 1 MiB FUSE write is one request on one worker thread; with fio-like
 * writers (one request in flight) the second core would idle while the
 * first encrypts 256 chunks.  par_for() splits such a loop: the calling
 * thread runs one part and idle helper threads the others; a part no
 * helper has picked up yet is taken back by the caller, so a busy pool
 * never makes a request wait longer than doing it alone.
 *
 * The pool knows nothing of chunks or keys: fn gets [from, to) and its
 * argument, which the caller keeps alive until par_for() returns.
 */
#ifndef EVFS_PAR_H
#define EVFS_PAR_H

#include <stddef.h>

struct par;
typedef void (*par_fn)(void *arg, size_t from, size_t to);

/* helpers: number of helper threads (0: par_for runs everything inline). */
int par_create(struct par **out, unsigned helpers);
void par_destroy(struct par *p);                 /* NULL-safe; joins the helpers */
/* Run fn over [0, n) in parts of at least min_part items; returns when
 * every part has run.  p may be NULL (inline). */
void par_for(struct par *p, size_t n, size_t min_part, par_fn fn, void *arg);

#endif
