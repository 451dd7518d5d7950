/* SPDX-License-Identifier: MIT */
/*
 * err.h - a caller-owned error message, and the one place that turns an
 * errno into words for users.
 *
 * Every store call that can fail says why in a struct evfs_err the caller
 * owns (usually on its stack, reached through struct store_caller), so two
 * threads failing at once never write into one buffer.
 */
#ifndef EVFS_ERR_H
#define EVFS_ERR_H

#include <stddef.h>

#define EVFS_ERR_MAX 1024u

struct evfs_err {
	char msg[EVFS_ERR_MAX];      /* "" until a call fails */
};

/* Set the message (printf format).  err may be NULL (message dropped). */
void evfs_err_set(struct evfs_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append " [text]" unless the message already holds text. */
void evfs_err_append(struct evfs_err *err, const char *text);
void evfs_err_clear(struct evfs_err *err);
/* The message, "" if none (err may be NULL). */
const char *evfs_err_msg(const struct evfs_err *err);

/* Words for a negative (or positive) errno value, with the meanings evfs
 * gives EBADMSG, EUCLEAN, ENOKEY, EROFS and EFBIG, where the C library's
 * text ("Structure needs cleaning") would not tell a user anything.
 * Returns a static string; thread-safe; cannot fail. */
const char *evfs_strerror(int err);

#endif
