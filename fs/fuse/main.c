// SPDX-License-Identifier: MIT
/*
 * main.c - the evfs mount program: options, hardening, process lifetime.
 *
 *     evfs [-f] [-d] [-s] [-o OPTIONS] STORE MOUNTPOINT
 *     evfs STORE MOUNTPOINT -o rw,nosuid,...        (as mount.fuse3 calls it)
 *
 * so `mount -t fuse.evfs STORE MNT` and the fstab line
 * `STORE MNT fuse.evfs defaults 0 0` work.  Options meant for mount(8)
 * (defaults, nofail, _netdev, x-*, ...) are dropped before libfuse sees
 * them.  default_permissions is always on (the kernel enforces the 0600
 * modes, R27), allow_other follows [mount] allow_other, fsname is
 * evfs:STORE and subtype evfs.
 *
 * Lifetime.  The store lock, the catalog and every data key must belong to
 * the process that serves requests, and threads do not survive fork().  So
 * the order is:
 *
 *   1. harden (no core dumps, not dumpable), sodium_init();
 *   2. open the store once and close it again, only to report a wrong key,
 *      a bad config or "already mounted on X" on the terminal (the daemon
 *      has no terminal) and to read allow_other;
 *   3. fuse_new() + fuse_mount(), then fuse_daemonize() (fork);
 *   4. in the child, fs_op_init() (the first request, FUSE_INIT) opens the
 *      store for real, re-attaches the volumes that were attached (R21) and
 *      starts the control socket; if that fails the loop ends and the mount
 *      goes away;
 *   5. after the loop: unmount first, then fuse_destroy() runs
 *      fs_op_destroy(), which detaches every volume (data keys wiped) and
 *      closes the store.
 *
 * Between 2 and 4 the store is unlocked for a moment; an evfsctl command
 * that takes the lock then makes step 4 fail, which is logged.
 *
 * This file also owns the daemon's log (syslog, or [mount] log_file, plus
 * stderr with -f; rate limiting for the data path) and struct fs_ctx:
 * fs_ctx_open() is step 4, fs_ctx_close() step 5.  It does not touch store
 * contents: fs_ops.c serves the requests.
 */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"   /* cli_run: evfsctl's commands, run for control-socket requests */
#include "config.h"
#include "ctl.h"
#include "fs_ops.h"
#include "store.h"

#ifndef EVFS_VERSION
#define EVFS_VERSION "unknown"
#endif

#define EVFS_MAX_READ (1u << 20)   /* -o max_read unless given */
/* libfuse's worker cap (10) and the kernel's background limit (12) are
 * kept on purpose: raising both to 32 gave +6% at queue depth 32 on RADOS
 * but -38% on random 4 KiB reads by two jobs on a local store (more
 * readahead in flight, more disk bytes per read).  Measured 2026-12-06. */
#define EVFS_IDLE_THREADS 10u

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */
/* ------------------------------------------------------------------------ */

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error: ";
	case LOG_WARNING:
		return "warning: ";
	default:
		return "";
	}
}

static void log_emit(struct fs_ctx *ctx, int level, const char *msg)
{
	char line[1280];
	int fd = ctx ? atomic_load(&ctx->log_fd) : -1;
	int n;

	if (level == LOG_DEBUG && !(ctx && ctx->debug))
		return;
	if (fd >= 0) {
		char stamp[40] = "";
		struct tm tm;
		time_t now = time(NULL);

		if (localtime_r(&now, &tm))
			strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S%z", &tm);
		n = snprintf(line, sizeof(line), "%s evfs[%ld]: %s%s\n", stamp, (long)getpid(), level_name(level),
			     msg);
		if (n > 0) /* one write(2) per line: O_APPEND keeps lines whole */
			(void)!write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	} else {
		syslog(level, "%s", msg);
	}
	if (ctx && ctx->s && level <= LOG_WARNING)
		store_error_note(ctx->s, msg);      /* evfsctl status shows the last ones */
	if (!ctx || ctx->foreground) {
		n = snprintf(line, sizeof(line), "evfs: %s%s\n", level_name(level), msg);
		if (n > 0)
			(void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	}
}

void fs_log(struct fs_ctx *ctx, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_emit(ctx, level, msg);
}

void fs_log_store(void *log_ctx, int level, const char *msg)
{
	log_emit(log_ctx, level, msg);
}

/* 1 if a line may be logged now; *suppressed: lines dropped before it. */
static int rl_allow(struct fs_ratelimit *rl, uint32_t *suppressed)
{
	struct timespec ts;
	uint64_t w = atomic_load(&rl->window), now, next;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec;
	do {
		if (w >> 8 != now)
			next = now << 8 | 1;
		else if ((w & 0xff) < FS_LOG_BURST)
			next = w + 1;
		else {
			atomic_fetch_add(&rl->suppressed, 1);
			return 0;
		}
	} while (!atomic_compare_exchange_weak(&rl->window, &w, next));
	*suppressed = atomic_exchange(&rl->suppressed, 0);
	return 1;
}

void fs_log_rl(struct fs_ctx *ctx, struct fs_ratelimit *rl, int level, const char *fmt, ...)
{
	char msg[900];
	uint32_t suppressed;
	va_list ap;

	if (!rl_allow(rl, &suppressed))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (suppressed)
		fs_log(ctx, level, "%s (%u similar messages suppressed)", msg, suppressed);
	else
		fs_log(ctx, level, "%s", msg);
}



/* ------------------------------------------------------------------------ */
/* The context                                                              */
/* ------------------------------------------------------------------------ */

int fs_ctx_init(struct fs_ctx *ctx, const char *store_dir, const char *mountpoint, int foreground, int debug,
		unsigned max_read, store_command_fn command)
{
	memset(ctx, 0, sizeof(*ctx));
	if (strlen(store_dir) >= sizeof(ctx->store_dir) || strlen(mountpoint) >= sizeof(ctx->mountpoint))
		return -ENAMETOOLONG;
	strcpy(ctx->store_dir, store_dir);
	strcpy(ctx->mountpoint, mountpoint);
	ctx->foreground = foreground;
	ctx->debug = debug;
	ctx->max_read = max_read;
	ctx->mount_uid = getuid();
	ctx->mount_gid = getgid();
	clock_gettime(CLOCK_REALTIME, &ctx->mount_time);
	ctx->command = command;
	atomic_init(&ctx->log_fd, -1);
	atomic_init(&ctx->rl_io.window, 0);
	atomic_init(&ctx->rl_io.suppressed, 0);
	atomic_init(&ctx->rl_refuse.window, 0);
	atomic_init(&ctx->rl_refuse.suppressed, 0);
	return 0;
}

/* Stop serving control requests, detach every volume (wiping the data
 * keys) and close the store.  Only with no request in flight. */
void fs_ctx_close(struct fs_ctx *ctx)
{
	fs_metrics_stop(ctx);
	if (ctx->ctl) {
		if (ctx->s)
			store_set_forward(ctx->s, NULL, NULL);   /* waits for a request under way */
		ctl_server_stop(ctx->ctl);
		ctx->ctl = NULL;
	}
	if (ctx->s) {
		store_detach_all(ctx->s);
		store_close(ctx->s);
		ctx->s = NULL;
		fs_log(ctx, LOG_NOTICE, "store %s closed: every volume detached, data keys wiped", ctx->store_dir);
	}
}

void fs_ctx_fini(struct fs_ctx *ctx)
{
	int fd;

	fs_ctx_close(ctx);
	fd = atomic_exchange(&ctx->log_fd, -1);
	if (fd >= 0)
		close(fd);
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                 */
/* ------------------------------------------------------------------------ */

/* [mount] log_file: from now on lines go there instead of syslog. */
static void log_file_open(struct fs_ctx *ctx)
{
	const struct evfs_config *cfg = store_config(ctx->s);
	int fd;

	if (!cfg || cfg->log_file[0] == '\0')
		return;
	fd = open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int err = -errno;

		fs_log(ctx, LOG_WARNING, "log_file %s: %s; logging to syslog", cfg->log_file,
		       evfs_strerror(err));
		return;
	}
	atomic_store(&ctx->log_fd, fd);
}

/*
 * Open the store in the serving process.  Threads started here (store,
 * control server) inherit a mask that blocks the termination signals, so
 * those always reach a FUSE thread and end the loop.
 */
int fs_ctx_open(struct fs_ctx *ctx)
{
	char err[512] = "";
	sigset_t block, old;
	struct store *s;
	int rc, n;

	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);

	rc = store_open(&s, ctx->store_dir, ctx->mountpoint, fs_log_store, ctx, err, sizeof(err));
	if (rc < 0) {
		fs_log(ctx, LOG_ERR, "cannot open store %s: %s", ctx->store_dir,
		       err[0] ? err : evfs_strerror(rc));
		goto out;
	}
	ctx->s = s;
	log_file_open(ctx);

	n = store_reattach_all(s);
	if (n < 0)
		fs_log(ctx, LOG_WARNING, "re-attaching volumes failed: %s", evfs_strerror(n));
	else
		fs_log(ctx, LOG_NOTICE, "re-attached %d volume%s", n, n == 1 ? "" : "s");

	if (ctx->command) {
		int c = ctl_server_start(&ctx->ctl, s, ctx->command);

		if (c == 0)     /* other hosts' requests for volumes attached here */
			store_set_forward(s, ctl_forward_serve, ctx->ctl);
		if (c < 0) {
			ctx->ctl = NULL;
			fs_log(ctx, LOG_WARNING,
			       "control socket unavailable (%s): evfsctl cannot reach this mount; "
			       "its commands on %s fail until it is unmounted",
			       evfs_strerror(c), ctx->store_dir);
		}
	}
	{
		int m = fs_metrics_start(ctx);

		if (m < 0)
			fs_log(ctx, LOG_WARNING, "metrics_file: cannot start its writer (%s)", evfs_strerror(m));
	}
	fs_log(ctx, LOG_NOTICE, "serving store %s on %s", ctx->store_dir, ctx->mountpoint);
	rc = 0;
out:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

struct evfs_opts {
	char *store;          /* first positional argument */
	char *mountpoint;     /* second */
	char *extra;          /* third, if any: a usage error */
	char *bad;            /* an unknown command-line flag */
	int help;
	int version;
	int foreground;       /* -f, or -d */
	int single;           /* -s */
	int debug;            /* -d, -o debug */
	int has_fsname;       /* -o fsname=... given: keep it */
	unsigned max_read;    /* -o max_read=N given, else 0 */
};

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_SINGLE,
	KEY_DEBUG,
	KEY_FSNAME,
	KEY_MAX_READ,
};

static const struct fuse_opt evfs_opt_spec[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("max_read=", KEY_MAX_READ),
	/* always set by us */
	FUSE_OPT_KEY("subtype=", FUSE_OPT_KEY_DISCARD),
	/* for mount(8) and fstab, meaningless to FUSE (x-* in opt_proc) */
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("owner", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("group", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("comment=", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nonempty", FUSE_OPT_KEY_DISCARD),   /* libfuse 2; fuse3 refuses it */
	/* access times: the files' times are fixed anyway */
	FUSE_OPT_KEY("atime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("relatime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("norelatime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("strictatime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("lazytime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nolazytime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("diratime", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END,
};

static int keep_first(char **slot, const char *arg)
{
	if (*slot)
		return 0;
	*slot = strdup(arg);
	return *slot ? 0 : -1;
}

/* fuse_opt callback: 1 keeps arg for libfuse, 0 drops it, -1 fails. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct evfs_opts *o = data;
	char *end;
	unsigned long v;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	case KEY_FOREGROUND:
		o->foreground = 1;
		return 0;
	case KEY_SINGLE:
		o->single = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = 1;
		o->foreground = 1;
		return 1;
	case KEY_FSNAME:
		o->has_fsname = 1;
		return 1;
	case KEY_MAX_READ:
		errno = 0;
		v = strtoul(arg + strlen("max_read="), &end, 10);
		if (errno || *end || v == 0 || v > UINT_MAX) {
			fprintf(stderr, "evfs: bad option %s: give a number of bytes\n", arg);
			return -1;
		}
		o->max_read = (unsigned)v;
		return 1;
	case FUSE_OPT_KEY_NONOPT:
		if (!o->store)
			return keep_first(&o->store, arg);
		if (!o->mountpoint)
			return keep_first(&o->mountpoint, arg);
		return keep_first(&o->extra, arg);
	case FUSE_OPT_KEY_OPT:
		if (strncmp(arg, "x-", 2) == 0)   /* x-systemd.*, x-gvfs-*, ... */
			return 0;
		if (arg[0] == '-')                /* libfuse itself takes only -d, -o */
			return keep_first(&o->bad, arg);
		return 1;
	default:
		return 1;
	}
}

static void usage_short(void)
{
	fputs("usage: evfs [-f] [-d] [-s] [-o OPTIONS] STORE MOUNTPOINT\n"
	      "Try 'evfs --help' for more information.\n",
	      stderr);
}

static void usage_long(void)
{
	printf("usage: evfs [-f] [-d] [-s] [-o OPTIONS] STORE MOUNTPOINT\n"
	       "       evfs STORE MOUNTPOINT -o OPTIONS     (the form mount.fuse3 uses)\n"
	       "\n"
	       "Mount the evfs store STORE (made by `evfsctl init`) on MOUNTPOINT.  Volumes,\n"
	       "snapshots, backups and images appear as files under volumes/, snapshots/,\n"
	       "backups/ and images/; volumes are read-write, the others read-only.\n"
	       "Objects are created and deleted with evfsctl.  Unmount with\n"
	       "`fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`; that detaches every\n"
	       "volume, and the next mount re-attaches them.\n"
	       "\n"
	       "options:\n"
	       "    -f                   stay in the foreground, log to stderr too\n"
	       "    -d, -o debug         FUSE debug output (implies -f)\n"
	       "    -s                   serve requests on one thread\n"
	       "    -o OPT[,OPT...]      mount options (below)\n"
	       "    -h, --help           this help\n"
	       "    -V, --version        the version\n"
	       "\n"
	       "Always set: -o default_permissions,fsname=evfs:STORE,subtype=evfs and\n"
	       "max_read=%u; -o allow_other when STORE/evfs.ini has [mount] allow_other = yes.\n"
	       "Options for mount(8) (defaults, auto, noauto, nofail, _netdev, user, users,\n"
	       "x-*, ...) are accepted and ignored.  /etc/fstab:\n"
	       "    STORE  MOUNTPOINT  fuse.evfs  defaults  0 0\n"
	       "\n"
	       "Logs go to syslog (facility daemon) or to [mount] log_file.\n"
	       "\n"
	       "FUSE mount options:\n",
	       EVFS_MAX_READ);
	fuse_lowlevel_help();
}

/* 1 if path is dir or lies under it (both canonical). */
static int path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return 1;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Canonical STORE; a directory holding evfs.ini.  Messages on stderr. */
static int check_store(const char *arg, char out[static PATH_MAX])
{
	char ini[PATH_MAX + sizeof(CONFIG_FILE_NAME) + 1];
	struct stat st;

	if (!realpath(arg, out) || stat(out, &st) != 0) {
		int err = errno;

		if (err == ENOENT)
			fprintf(stderr, "evfs: %s: no such directory; create a store with: evfsctl init --store %s "
				"--keyfile FILE\n", arg, arg);
		else
			fprintf(stderr, "evfs: %s: %s\n", arg, strerror(err));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "evfs: %s: not a directory; a store is a directory made by: evfsctl init --store DIR "
			"--keyfile FILE\n", arg);
		return -1;
	}
	snprintf(ini, sizeof(ini), "%s/%s", out, CONFIG_FILE_NAME);
	if (access(ini, F_OK) != 0) {
		int err = errno;

		if (err == ENOENT)
			fprintf(stderr, "evfs: %s: not an evfs store (no %s); create one with: evfsctl init --store %s "
				"--keyfile FILE\n", arg, CONFIG_FILE_NAME, arg);
		else
			fprintf(stderr, "evfs: %s: %s\n", ini, strerror(err));
		return -1;
	}
	return 0;
}

/* Canonical MOUNTPOINT, a directory that does not hide the store. */
static int check_mountpoint(const char *arg, const char *store, char out[static PATH_MAX])
{
	struct stat st;

	if (!realpath(arg, out) || stat(out, &st) != 0) {
		int err = errno;

		fprintf(stderr, "evfs: %s: %s%s%s\n", arg, strerror(err),
			err == ENOTCONN ? "; a dead mount? unmount it with: fusermount3 -u " : "",
			err == ENOTCONN ? arg : "");
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "evfs: %s: not a directory\n", arg);
		return -1;
	}
	if (path_under(store, out)) {
		fprintf(stderr, "evfs: %s: the mount would hide the store %s; choose a mountpoint outside it\n", arg,
			store);
		return -1;
	}
	return 0;
}

/*
 * Open and close the store in this (foreground) process so that errors
 * reach the terminal: wrong key, bad config, already mounted elsewhere.
 * Returns 0 with *allow_other set, or -1 after printing the message.
 */
static int probe_store(struct fs_ctx *ctx, int *allow_other)
{
	char err[512] = "";
	const struct evfs_config *cfg;
	struct store *s;
	int rc;

	rc = store_open(&s, ctx->store_dir, ctx->mountpoint, fs_log_store, ctx, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "evfs: %s\n", err[0] ? err : evfs_strerror(rc));
		return -1;
	}
	cfg = store_config(s);
	*allow_other = cfg && cfg->allow_other;
	rc = 0;
	if (cfg && cfg->log_file[0] && !ctx->foreground) {
		/* Say it now, while stderr still reaches the user: in the
		 * background the mount would fall back to syslog silently. */
		int fd = open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd < 0)
			fprintf(stderr, "evfs: warning: log_file %s cannot be written (%s); the mount logs to syslog "
				"instead: fix the path or its permissions ([mount] log_file in evfs.ini)\n",
				cfg->log_file, evfs_strerror(-errno));
		else
			close(fd);
	}
	if (cfg && path_under(cfg->backup_dir, ctx->mountpoint)) {
		fprintf(stderr, "evfs: %s: the mount would hide the backup directory %s; choose another mountpoint\n",
			ctx->mountpoint, cfg->backup_dir);
		rc = -1;
	}
	store_close(s);
	return rc;
}

/* Our fixed options, after the user's. */
static int add_fuse_args(struct fuse_args *args, const struct evfs_opts *o, const char *store, int allow_other,
			 unsigned max_read)
{
	char opt[PATH_MAX + 32];
	char *escaped = NULL;
	int rc = 0;

	rc |= fuse_opt_add_arg(args, "-odefault_permissions");
	rc |= fuse_opt_add_arg(args, "-osubtype=evfs");
	if (allow_other)
		rc |= fuse_opt_add_arg(args, "-oallow_other");
	if (!o->max_read) {
		snprintf(opt, sizeof(opt), "-omax_read=%u", max_read);
		rc |= fuse_opt_add_arg(args, opt);
	}
	if (!o->has_fsname) {
		/* commas in the path must survive libfuse's option splitting */
		snprintf(opt, sizeof(opt), "fsname=evfs:%s", store);
		rc |= fuse_opt_add_opt_escaped(&escaped, opt);
		rc |= fuse_opt_add_arg(args, "-o");
		if (escaped)
			rc |= fuse_opt_add_arg(args, escaped);
		free(escaped);
	}
	return rc ? -1 : 0;
}

/*
 * The kernel starts a FUSE mount with 128 KiB readahead, whatever
 * max_readahead says; raise the mount's bdi to 1 MiB so that sequential
 * reads arrive as 1 MiB requests.  Writing sysfs needs root: best effort.
 */
static void readahead_raise(struct fs_ctx *ctx)
{
	char line[PATH_MAX + 256], mp[PATH_MAX], path[64];
	unsigned maj, min, dev_maj = 0, dev_min = 0;
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	int fd, found = 0;

	if (!mi)
		return;
	while (fgets(line, sizeof(line), mi)) {
		char *r, *w;

		if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &maj, &min, mp) != 3)
			continue;
		for (r = w = mp; *r; w++)   /* undo the \ooo escapes of mountinfo */
			if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
				*w = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
				r += 4;
			} else {
				*w = *r++;
			}
		*w = '\0';
		if (strcmp(mp, ctx->mountpoint) == 0) {   /* the last one is ours */
			dev_maj = maj;
			dev_min = min;
			found = 1;
		}
	}
	fclose(mi);
	if (!found)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", dev_maj, dev_min);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || dprintf(fd, "%u\n", EVFS_MAX_READ / 1024) < 0)
		fs_log(ctx, LOG_DEBUG, "%s: %s; readahead stays at the kernel's default", path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static int harden(void)
{
	const struct rlimit no_core = { 0, 0 };

	if (sodium_init() < 0) {
		fputs("evfs: libsodium cannot be initialised\n", stderr);
		return -1;
	}
	if (setrlimit(RLIMIT_CORE, &no_core) != 0) {
		fprintf(stderr, "evfs: setrlimit(RLIMIT_CORE): %s\n", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		fprintf(stderr, "evfs: prctl(PR_SET_DUMPABLE): %s\n", strerror(errno));
		return -1;
	}
	umask(077);
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct evfs_opts o = { 0 };
	char store[PATH_MAX], mnt[PATH_MAX];
	struct fs_ctx *ctx = NULL;
	struct fuse_session *se;
	struct fuse *f = NULL;
	int allow_other = 0, res, ret = 1;
	unsigned max_read;

	if (harden() != 0)
		return 1;
	openlog("evfs", LOG_PID, LOG_DAEMON);

	if (fuse_opt_parse(&args, &o, evfs_opt_spec, opt_proc) == -1) {
		usage_short();
		ret = 2;
		goto out;
	}
	if (o.help) {
		usage_long();
		ret = 0;
		goto out;
	}
	if (o.version) {
		printf("evfs %s\nlibfuse %s (FUSE API %d)\n", EVFS_VERSION, fuse_pkgversion(), FUSE_USE_VERSION);
		ret = 0;
		goto out;
	}
	if (o.bad || !o.mountpoint || o.extra) {
		if (o.bad)
			fprintf(stderr, "evfs: unknown option %s\n", o.bad);
		else if (o.extra)
			fprintf(stderr, "evfs: unexpected argument %s\n", o.extra);
		else
			fprintf(stderr, "evfs: missing %s\n", o.store ? "MOUNTPOINT" : "STORE and MOUNTPOINT");
		usage_short();
		ret = 2;
		goto out;
	}

	if (check_store(o.store, store) != 0 || check_mountpoint(o.mountpoint, store, mnt) != 0)
		goto out;
	max_read = o.max_read ? o.max_read : EVFS_MAX_READ;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx || fs_ctx_init(ctx, store, mnt, o.foreground, o.debug, max_read, cli_run) != 0) {
		fputs("evfs: out of memory\n", stderr);
		goto out;
	}
	if (probe_store(ctx, &allow_other) != 0)
		goto out;
	if (add_fuse_args(&args, &o, store, allow_other, max_read) != 0) {
		fputs("evfs: out of memory\n", stderr);
		goto out;
	}

	f = fuse_new(&args, fs_ops_get(), sizeof(*fs_ops_get()), ctx);
	if (!f) {   /* libfuse has said why: almost always an unknown -o option */
		usage_short();
		ret = 2;
		goto out;
	}
	if (fuse_mount(f, mnt) != 0)
		goto out_destroy;
	readahead_raise(ctx);
	if (fuse_daemonize(o.foreground) != 0)
		goto out_unmount;
	se = fuse_get_session(f);
	if (fuse_set_signal_handlers(se) != 0)
		goto out_unmount;

	/* The store opens in fs_op_init, in this (the serving) process. */
	if (o.single) {
		res = fuse_loop(f);
	} else {
		struct fuse_loop_config lc = { .clone_fd = 0, .max_idle_threads = EVFS_IDLE_THREADS };

		res = fuse_loop_mt(f, &lc);
	}
	fuse_remove_signal_handlers(se);

	if (ctx->init_err) {
		fs_log(ctx, LOG_ERR, "mount of %s on %s given up: the store could not be opened", store, mnt);
	} else if (res < 0) {
		fs_log(ctx, LOG_ERR, "FUSE loop failed: %s", evfs_strerror(res));
	} else {
		if (res > 0)
			fs_log(ctx, LOG_NOTICE, "signal %d: unmounting %s", res, mnt);
		ret = 0;
	}
out_unmount:
	fuse_unmount(f);
out_destroy:
	fuse_destroy(f);   /* runs fs_op_destroy: data keys wiped, store closed */
	if (ret == 0)
		fs_log(ctx, LOG_NOTICE, "unmounted %s from %s", store, mnt);
out:
	if (ctx) {
		fs_ctx_fini(ctx);
		free(ctx);
	}
	fuse_opt_free_args(&args);
	free(o.store);
	free(o.mountpoint);
	free(o.extra);
	free(o.bad);
	closelog();
	return ret;
}
