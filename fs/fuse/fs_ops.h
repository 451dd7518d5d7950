/* SPDX-License-Identifier: MIT */
/*
 * fs_ops.h - the FUSE frontend of the evfs mount daemon.
 *
 * fs_ops.c turns FUSE requests (high-level API, FUSE_USE_VERSION 35) into
 * store_* calls; main.c owns options, the log and the process lifetime
 * (the fs_ctx_* and fs_log* functions below).  The only state they share is
 * one struct fs_ctx, which main passes to fuse_new() as user_data;
 * fs_op_init() opens the store in the serving (daemonized) process with
 * fs_ctx_open() and fs_op_destroy() closes it with fs_ctx_close().
 *
 * This header deliberately does not include the fuse headers: only the two
 * .c files of the frontend do (STYLE B1).
 */
#ifndef EVFS_FS_OPS_H
#define EVFS_FS_OPS_H

#include <limits.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "store.h"

struct fuse_operations;
struct ctl_server;

/* At most FS_LOG_BURST log lines per second per limiter; the rest are
 * counted and the count is reported with the next line that gets through.
 * Lock-free. */
#define FS_LOG_BURST 5u
struct fs_ratelimit {
	_Atomic uint64_t window;       /* CLOCK_MONOTONIC second << 8 | lines logged in it */
	_Atomic uint32_t suppressed;   /* lines dropped since the last one logged */
};

/*
 * Locking: there is no lock in fs_ctx.  Fields fall in three groups:
 *  - set by main (fs_ctx_init) before fuse_new(), immutable afterwards;
 *  - written once by fs_op_init() while it handles FUSE_INIT, before the
 *    INIT reply, so before the kernel sends any other request; cleared by
 *    fs_op_destroy()/fs_ctx_fini() after every worker thread has stopped;
 *  - atomics, for the log and its rate limiters.
 */
struct fs_ctx {
	/* immutable after fs_ctx_init() */
	char store_dir[PATH_MAX];      /* realpath of STORE */
	char mountpoint[PATH_MAX];     /* realpath of MOUNTPOINT */
	int foreground;                /* -f/-d: log to stderr too */
	int debug;                     /* -d: also LOG_DEBUG lines */
	unsigned max_read;             /* the -o max_read passed to FUSE (must match init) */
	uid_t mount_uid;               /* owner of "/" and of the four directories */
	gid_t mount_gid;
	struct timespec mount_time;    /* times of the directories */
	store_command_fn command;      /* control-socket handler (cli_run) */

	/* written once in fs_op_init, cleared in fs_op_destroy (see above) */
	struct store *s;               /* NULL: not open; every handler then fails -EIO */
	struct ctl_server *ctl;        /* NULL: no control socket */
	struct fs_metrics *metrics;    /* NULL: no metrics_file (metrics.c) */
	int init_err;                  /* 0, or the negative errno that stopped fs_op_init */

	/* atomics */
	_Atomic int log_fd;            /* [mount] log_file, or -1 for syslog */
	struct fs_ratelimit rl_io;     /* EIO/ENOKEY lines of the data path */
	struct fs_ratelimit rl_refuse; /* refused namespace/xattr operations */
};

/*
 * Fill ctx for a mount of store_dir (already realpath'd) on mountpoint.
 * command: the control-socket handler, may be NULL (no control socket).
 * Returns 0 or -ENAMETOOLONG.  Does not open anything.
 */
int fs_ctx_init(struct fs_ctx *ctx, const char *store_dir, const char *mountpoint, int foreground, int debug,
		unsigned max_read, store_command_fn command) __attribute__((warn_unused_result));

/*
 * Open the store for serving (fs_op_init calls this in the daemonized
 * process): store_open with the lock, [mount] log_file, re-attach the
 * volumes recorded as attached (R21), start the control socket.  Returns
 * 0, or the negative errno of store_open (logged).  A control socket or
 * re-attach failure is logged and not fatal.  Not thread-safe: run it
 * before any other request.
 */
int fs_ctx_open(struct fs_ctx *ctx) __attribute__((warn_unused_result));

/*
 * Stop the control socket, detach every volume (data keys wiped) and close
 * the store; fs_op_destroy calls it.  Idempotent.  Only with no request in
 * flight.  Cannot fail.
 */
void fs_ctx_close(struct fs_ctx *ctx);

/*
 * fs_ctx_close() plus the log file.  Idempotent.  Call once no FUSE worker
 * runs (after fuse_destroy()).  Cannot fail.
 */
void fs_ctx_fini(struct fs_ctx *ctx);

/*
 * Log one line: to the [mount] log_file when the store configures one, else
 * to syslog (openlog() is main's job); in the foreground also to stderr.
 * LOG_DEBUG lines only with -d.  Never pass key material.  Thread-safe.
 */
void fs_log(struct fs_ctx *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* fs_log, at most FS_LOG_BURST lines a second per limiter rl; the lines
 * dropped are counted in the next one.  Thread-safe, lock-free. */
void fs_log_rl(struct fs_ctx *ctx, struct fs_ratelimit *rl, int level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* store_log_fn adapter: log_ctx is the struct fs_ctx.  Thread-safe. */
void fs_log_store(void *log_ctx, int level, const char *msg);


/* The operations table; pass sizeof(*fs_ops_get()) to fuse_new().  The
 * table is constant.  Cannot fail. */
const struct fuse_operations *fs_ops_get(void);

/* metrics.c: rewrite [mount] metrics_file every few seconds (nothing if
 * unset); stop before the store closes.  start: 0 or a negative errno. */
struct fs_metrics;
int fs_metrics_start(struct fs_ctx *ctx);
void fs_metrics_stop(struct fs_ctx *ctx);

#endif
