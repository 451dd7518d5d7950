// SPDX-License-Identifier: MIT
/*
 * elog.c - the engine's log sink.
 *
 * Every engine file reports through a struct elog (elog.h) owned by the
 * engine: the sink function and its context are set once by
 * engine_create() and never change, so logging takes no lock.  Chunk
 * errors are rate limited (a damaged disk must not flood the log), with an
 * atomic counter as the only shared state.  Knows nothing of pools or
 * volumes; it formats text and hands it on.
 */
#include "elog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

void elog_printf(struct elog *l, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!l->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->fn(l->ctx, level, msg);
}

void elog_chunk_error(struct elog *l, const char *vol, uint64_t index, int err)
{
	/* At most 100 lines, then one every 1000 errors. */
	unsigned n = atomic_fetch_add(&l->budget, 1);

	if (n < 100 || n % 1000 == 0)
		elog_printf(l, LOG_ERR, "volume %s: chunk %llu (offset %llu chunks in) failed %s; returning EIO",
			    vol, (unsigned long long)index, (unsigned long long)index,
			    err == -EBADMSG ? "authentication (tampered, moved or wrong key)" :
					      "to read (store file damaged or truncated)");
}
