/* SPDX-License-Identifier: MIT */
/*
 * progress.h - a progress bar with rate and ETA for long operations
 * (backup, restore, export, copy, replicate).
 *
 * The caller decides whether a bar is wanted (a terminal, not --json) by
 * passing a stream or NULL; with NULL every call is a no-op.  Output is
 * one fwrite per redraw, at most ten redraws a second, so the stream may
 * be a control-socket frame writer as well as stderr.
 */
#ifndef EVFS_PROGRESS_H
#define EVFS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct progress {
	FILE *f;                 /* NULL: no bar */
	const char *what;        /* "backup vol1", ... */
	uint64_t total;          /* bytes */
	struct timespec start, last;
};

void progress_begin(struct progress *p, FILE *f, const char *what, uint64_t total);
void progress_update(struct progress *p, uint64_t done);
/* Final redraw at 100% (ok) or a plain line end (failed). */
void progress_end(struct progress *p, int ok);

#endif
