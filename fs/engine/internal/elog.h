/* SPDX-License-Identifier: MIT */
/*
 * elog.h - the engine's log sink (private to fs/engine/).
 *
 * The bottom of the engine's file chain: pools, maps, volumes and the
 * engine table all report through one struct elog that the engine owns,
 * so none of them needs the engine itself to say something.
 */
#ifndef EVFS_ELOG_H
#define EVFS_ELOG_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"

struct elog {
	engine_log_fn fn;          /* NULL: silent; immutable after engine_create */
	void *ctx;
	atomic_uint budget;        /* rate limit of chunk error lines */
};

/* One line at syslog level `level`.  Thread-safe; cannot fail. */
void elog_printf(struct elog *l, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A chunk that failed authentication or could not be read: at most 100
 * lines, then one every 1000 errors.  Thread-safe. */
void elog_chunk_error(struct elog *l, const char *vol, uint64_t index, int err);

#endif
