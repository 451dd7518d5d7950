// SPDX-License-Identifier: MIT
/*
 * cli_util.c - what every command file of the CLI shares: the usage and
 * failure messages (exit codes 2 and 1), argument count checks and time
 * formatting.  The bottom of cli/'s file chain:
 * cli_util <- cli_keys <- cli (the command table).
 */
#include "cli_int.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

int usage(struct cmdctx *x, const char *fmt, ...)
{
	va_list ap;

	fprintf(x->err, "evfsctl: ");
	va_start(ap, fmt);
	vfprintf(x->err, fmt, ap);
	va_end(ap);
	fprintf(x->err, "\n(run 'evfsctl --help' for the command list)\n");
	return EXIT_USAGE;
}

int fail(struct cmdctx *x)
{
	const char *e = evfs_err_msg(x->c->err);
	/* A full disk can surface from any layer: name the remedy once. */
	int nospc = strstr(e, strerror(ENOSPC)) && !strstr(e, "free space");

	fprintf(x->err, "evfsctl: %s%s\n", e,
		nospc ? "; the filesystem holding the store is full: free space on it and retry" : "");
	return 1;
}

int want_pos(struct cmdctx *x, const struct args *a, int n, const char *what)
{
	if (a->n != n)
		return usage(x, "expected: %s", what);
	return 0;
}

void fmt_time(int64_t t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&tt, &tm))
		snprintf(buf, n, "-");
	else
		strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
