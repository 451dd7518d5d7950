// SPDX-License-Identifier: MIT
/*
 * err.c - caller-owned error messages and evfs_strerror().
 *
 * Why a caller-owned object: the store serves evfsctl commands and FUSE
 * worker threads at the same time, so a "last error" kept in the store
 * would be written by one thread while another reads it.  The message now
 * lives with the call that failed.
 *
 * evfs_strerror() is the only translation of errno values into user text:
 * a few codes carry evfs-specific meanings (see the errno table in
 * README.md), the others are the C library's words (strerror_r into a
 * thread-local buffer, so it is safe from any thread).
 */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void evfs_err_set(struct evfs_err *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void evfs_err_append(struct evfs_err *err, const char *text)
{
	size_t n;

	if (!err || !text || !*text || strstr(err->msg, text))
		return;
	n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, " [%s]", text);
}

void evfs_err_clear(struct evfs_err *err)
{
	if (err)
		err->msg[0] = '\0';
}

const char *evfs_err_msg(const struct evfs_err *err)
{
	return err ? err->msg : "";
}

const char *evfs_strerror(int err)
{
	static _Thread_local char buf[128];

	if (err < 0)
		err = -err;
	switch (err) {
	case EBADMSG:
		return "authentication failed (data tampered with, moved, or read with the wrong key)";
	case EUCLEAN:
		return "store file damaged (inconsistent on-disk structure)";
	case ENOKEY:
		return "data key not available (volume not attached or key not usable)";
	case EROFS:
		return "read-only object";
	case EFBIG:
		return "beyond the end of the volume";
	default:
		break;
	}
	/* GNU strerror_r returns the text (maybe not in buf). */
	return strerror_r(err, buf, sizeof(buf));
}
