// SPDX-License-Identifier: MIT
/*
 * fs_ops.c - the FUSE frontend: requests in, store_* calls out.
 *
 * The mount shows a fixed two-level tree:
 *
 *     /                  0755, owned by the mounting user
 *     /volumes/NAME      read-write, size = volume size (thin)
 *     /snapshots/NAME    read-only
 *     /backups/NAME      read-only
 *     /images/NAME       read-only; encrypted images cannot be opened (R9)
 *
 * Every file is an object of the store's catalog; its owner and mode come
 * from the catalog (0600 volumes, 0400 others, 0000 encrypted images) and
 * the kernel enforces them (main always mounts with default_permissions,
 * R27).  Objects are created, renamed and deleted only with evfsctl: the
 * namespace operations here fail with EPERM and log what to run instead.
 *
 * Data path.  open() resolves the path once and keeps a struct fs_file in
 * fi->fh (opendir keeps the directory's index); read, write, fsync,
 * fallocate, lseek and release use only that handle, never the path
 * (cfg->nullpath_ok), so they do no catalog lookup, no allocation and take
 * no lock here: the engine behind store_file_* does the locking and the
 * chunk crypto.  This file does no crypto and no SQL.
 *
 * Caching.  No writeback cache: a write is acknowledged only once it is in
 * the daemon, so a snapshot taken through the control socket sees every
 * acknowledged write.  The page cache is dropped at each open (keep_cache
 * = 0) because evfsctl may change a volume (rollback) between opens.
 * Requests are up to 1 MiB (max_read/max_write), the FUSE round trip being
 * the dominant cost of small I/O.
 *
 * Errors.  This is the FUSE boundary (STYLE B3): handlers return -errno.
 * -EBADMSG (a chunk failed authentication) and -EUCLEAN (inconsistent
 * on-disk structure) become -EIO after one rate-limited log line naming
 * the file (the engine logs the chunk index); -ENOKEY (volume detached,
 * "Required key not available") passes through so the user learns why.
 *
 * Lifetime.  fs_op_init() (FUSE_INIT, in the daemonized process, before
 * any other request) opens the store with fs_ctx_open() (main.c);
 * fs_op_destroy() closes it.  Without a store, handlers fail with EIO.
 *
 * Threads.  Handlers run on several FUSE worker threads at once.  The only
 * shared state is struct fs_ctx (see fs_ops.h for why it needs no lock)
 * and the store's own, which the store serialises.  No static mutable
 * data: log lines are formatted on the stack.
 */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <linux/falloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>

#include "fs_ops.h"
#include "store.h"

#define FS_MAX_IO (1u << 20)          /* max_write, max_readahead: 1 MiB */
#define FS_BLKSIZE 4096
#define FS_XATTR_PREFIX "user.evfs."
#define FS_XATTR_MAX 1024             /* longest value or name list we pass */

typedef char fs_name_t[sizeof(((struct store_entry *)0)->name)];

/* The four directories under "/" and the kind of object each holds. */
struct fs_dir {
	const char *name;     /* directory name */
	enum meta_kind kind;
	const char *noun;     /* evfsctl command group */
};

static const struct fs_dir fs_dirs[] = {
	{ "volumes", META_VOLUME, "volume" },
	{ "snapshots", META_SNAPSHOT, "snapshot" },
	{ "backups", META_BACKUP, "backup" },
	{ "images", META_IMAGE, "image" },
};
#define FS_NDIRS (sizeof(fs_dirs) / sizeof(fs_dirs[0]))

/* An open file, kept in fi->fh from open to release.  Immutable after
 * open; the store file does its own locking. */
struct fs_file {
	struct store_file *f;       /* the store's handle */
	const struct fs_dir *dir;   /* where it lives */
	struct store_entry e;       /* catalog entry at open: owner, mode, times
				       (the size is read live from f) */
};

enum fs_node { FS_ROOT, FS_DIR, FS_FILE };

struct fs_path {
	enum fs_node node;
	const struct fs_dir *dir;   /* FS_DIR, FS_FILE */
	fs_name_t name;             /* FS_FILE */
};

/* ------------------------------------------------------------------------ */
/* Paths and errors                                                         */
/* ------------------------------------------------------------------------ */

static struct fs_ctx *ctx_get(void)
{
	return fuse_get_context()->private_data;
}

static void caller_get(const struct fs_ctx *ctx, struct store_caller *c)
{
	const struct fuse_context *fc = fuse_get_context();

	store_caller_init(ctx->s, c, fc->uid, fc->gid, NULL);
}

static struct fs_file *file_of(const struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

/* Directory handles are odd (1: "/", 3, 5, ...: fs_dirs[0], [1], ...); a
 * struct fs_file pointer is even, being malloc'ed. */
static int dir_handle_is(uint64_t fh)
{
	return (fh & 1) != 0;
}

static int dir_handle_path(uint64_t fh, struct fs_path *p)
{
	size_t i = (size_t)(fh >> 1);

	if (i > FS_NDIRS)
		return -EBADF;
	p->node = i ? FS_DIR : FS_ROOT;
	p->dir = i ? &fs_dirs[i - 1] : NULL;
	return 0;
}

/* "/", "/DIR" or "/DIR/NAME"; anything else does not exist. */
static int path_parse(const char *path, struct fs_path *p)
{
	const char *comp, *slash;
	size_t len, i;

	if (!path || path[0] != '/')
		return -ENOENT;
	if (path[1] == '\0') {
		p->node = FS_ROOT;
		return 0;
	}
	comp = path + 1;
	slash = strchr(comp, '/');
	len = slash ? (size_t)(slash - comp) : strlen(comp);
	p->dir = NULL;
	for (i = 0; i < FS_NDIRS; i++)
		if (strlen(fs_dirs[i].name) == len && memcmp(fs_dirs[i].name, comp, len) == 0)
			p->dir = &fs_dirs[i];
	if (!p->dir)
		return -ENOENT;
	if (!slash) {
		p->node = FS_DIR;
		return 0;
	}
	comp = slash + 1;
	if (comp[0] == '\0' || strchr(comp, '/'))
		return -ENOENT;
	if (strlen(comp) >= sizeof(p->name))
		return -ENAMETOOLONG;
	strcpy(p->name, comp);
	p->node = FS_FILE;
	return 0;
}

/* Errors of the metadata path: the store has already logged the cause. */
static int map_err(int err)
{
	if (err == -EBADMSG || err == -EUCLEAN)
		return -EIO;
	return err;
}

/* Errors of the data path: log (rate-limited) and convert. */
static int io_err(const struct fs_file *ff, const char *op, uint64_t off, size_t len, int err)
{
	int vol = ff->dir->kind == META_VOLUME;
	struct fs_ctx *ctx;

	ctx = ctx_get();
	if (err != -EBADMSG && err != -EUCLEAN && err != -ENOKEY) {
		/* EFBIG, ENOSPC, EROFS...: passed on as they are, but said
		 * once in the log too, so no failed I/O goes unexplained. */
		fs_log_rl(ctx, &ctx->rl_io, LOG_WARNING, "%s /%s/%s at offset %llu (+%zu): %s", op, ff->dir->name,
			  ff->e.name, (unsigned long long)off, len, evfs_strerror(err));
		return err;
	}
	if (err == -ENOKEY) {
		fs_log_rl(ctx, &ctx->rl_io, LOG_WARNING, "%s /%s/%s: %s%s%s", op, ff->dir->name, ff->e.name,
			  evfs_strerror(err), vol ? "; attach it with: evfsctl attach " : "",
			  vol ? ff->e.name : "");
		return err;
	}
	fs_log_rl(ctx, &ctx->rl_io, LOG_ERR, "%s /%s/%s at offset %llu (+%zu): %s; returning EIO", op, ff->dir->name,
		  ff->e.name, (unsigned long long)off, len, evfs_strerror(err));
	return -EIO;
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                 */
/* ------------------------------------------------------------------------ */

static void *fs_op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	struct fuse_context *fc = fuse_get_context();
	struct fs_ctx *ctx = fc->private_data;
	int rc;

	conn->max_write = FS_MAX_IO;
	conn->max_read = ctx->max_read;          /* must equal -o max_read (libfuse checks) */
	conn->max_readahead = FS_MAX_IO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	/* O_TRUNC arrives in open() instead of as truncate(0), which a
	 * volume refuses (never shrunk); open ignores it like a disk does. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Acknowledged writes must be in the daemon (snapshots, fsync). */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;

	cfg->use_ino = 0;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->kernel_cache = 0;
	cfg->auto_cache = 0;
	cfg->direct_io = 0;
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;

	rc = fs_ctx_open(ctx);
	if (rc < 0) {
		ctx->init_err = rc;
		fuse_exit(fc->fuse);
	}
	return ctx;
}

static void fs_op_destroy(void *private_data)
{
	fs_ctx_close(private_data);
}

/* ------------------------------------------------------------------------ */
/* Attributes and directories                                               */
/* ------------------------------------------------------------------------ */

static void stat_dir(const struct fs_ctx *ctx, struct stat *st, nlink_t nlink)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = nlink;
	st->st_uid = ctx->mount_uid;
	st->st_gid = ctx->mount_gid;
	st->st_blksize = FS_BLKSIZE;
	st->st_atim = st->st_mtim = st->st_ctim = ctx->mount_time;
}

static void stat_file(const struct store_entry *e, uint64_t size, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFREG | (e->mode & 07777);
	st->st_nlink = 1;
	st->st_uid = e->uid;
	st->st_gid = 0;
	st->st_size = (off_t)size;
	st->st_blksize = FS_BLKSIZE;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = (time_t)e->created;
}

static int fs_op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = ctx_get();
	struct store_entry e;
	struct fs_path p;
	int rc;

	if (fi && fi->fh && !dir_handle_is(fi->fh)) {
		const struct fs_file *ff = file_of(fi);

		stat_file(&ff->e, store_file_size(ff->f), st);
		return 0;
	}
	rc = (!path && fi && dir_handle_is(fi->fh)) ? dir_handle_path(fi->fh, &p) : path_parse(path, &p);
	if (rc < 0)
		return rc;
	switch (p.node) {
	case FS_ROOT:
		stat_dir(ctx, st, 2 + FS_NDIRS);
		return 0;
	case FS_DIR:
		stat_dir(ctx, st, 2);
		return 0;
	case FS_FILE:
		break;
	}
	if (!ctx->s)
		return -EIO;
	rc = store_entry_lookup(ctx->s, p.dir->kind, p.name, &e);
	if (rc < 0)
		return map_err(rc);
	stat_file(&e, e.size, st);
	return 0;
}

/* opendir: readdir gets no path (nullpath_ok), so the handle says which
 * directory it is. */
static int fs_op_opendir(const char *path, struct fuse_file_info *fi)
{
	struct fs_path p;
	int rc = path_parse(path, &p);

	if (rc < 0)
		return rc;
	if (p.node == FS_FILE)
		return -ENOTDIR;
	fi->fh = p.node == FS_ROOT ? 1 : (uint64_t)(p.dir - fs_dirs + 1) * 2 + 1;
	return 0;
}

struct readdir_state {
	void *buf;
	fuse_fill_dir_t filler;
	enum fuse_fill_dir_flags flags;   /* FUSE_FILL_DIR_PLUS when asked */
};

static int readdir_entry(void *arg, const struct store_entry *e)
{
	struct readdir_state *rs = arg;
	struct stat st;

	stat_file(e, e->size, &st);
	return rs->filler(rs->buf, e->name, &st, 0, rs->flags) ? 1 : 0;
}

static int fs_op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off, struct fuse_file_info *fi,
			 enum fuse_readdir_flags flags)
{
	struct fs_ctx *ctx = ctx_get();
	struct readdir_state rs = { buf, filler, (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : 0 };
	struct fs_path p;
	struct stat st;
	size_t i;
	int rc;

	(void)off;
	if (!ctx->s)
		return -EIO;
	rc = (fi && dir_handle_is(fi->fh)) ? dir_handle_path(fi->fh, &p) : path_parse(path, &p);
	if (rc < 0)
		return rc;
	if (p.node == FS_FILE)
		return -ENOTDIR;
	/* no stat for these: libfuse would pass its st_ino 0 on, and readdir(3)
	 * skips entries with inode 0 */
	if (filler(buf, ".", NULL, 0, 0) || filler(buf, "..", NULL, 0, 0))
		return 0;
	if (p.node == FS_ROOT) {
		stat_dir(ctx, &st, 2);
		for (i = 0; i < FS_NDIRS; i++)
			if (filler(buf, fs_dirs[i].name, &st, 0, rs.flags))
				break;
		return 0;
	}
	rc = store_dir_list(ctx->s, p.dir->kind, readdir_entry, &rs);
	return rc < 0 ? map_err(rc) : 0;
}

static int fs_op_statfs(const char *path, struct statvfs *sv)
{
	struct fs_ctx *ctx = ctx_get();

	(void)path;
	/* The space left for volumes is the space left where the store is. */
	if (statvfs(ctx->store_dir, sv) != 0)
		return -errno;
	sv->f_namemax = sizeof(fs_name_t) - 1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Open files                                                               */
/* ------------------------------------------------------------------------ */

static int fs_op_open(const char *path, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = ctx_get();
	struct store_caller c;
	struct fs_file *ff;
	struct fs_path p;
	int writable, rc;

	if (!ctx->s)
		return -EIO;
	rc = path_parse(path, &p);
	if (rc < 0)
		return rc;
	if (p.node != FS_FILE)
		return -EISDIR;
	writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (writable && p.dir->kind != META_VOLUME)
		return -EACCES;   /* snapshots, backups and images are read-only */

	ff = calloc(1, sizeof(*ff));
	if (!ff)
		return -ENOMEM;
	rc = store_entry_lookup(ctx->s, p.dir->kind, p.name, &ff->e);
	if (rc < 0)
		goto fail;
	caller_get(ctx, &c);
	rc = store_file_open(ctx->s, &c, p.dir->kind, p.name, writable, &ff->f);
	if (rc < 0)
		goto fail;
	ff->dir = p.dir;
	/* O_TRUNC (FUSE_CAP_ATOMIC_O_TRUNC) is ignored: a volume has a fixed
	 * size like a disk, so `cp disk.img volumes/v` overwrites in place. */
	fi->fh = (uint64_t)(uintptr_t)ff;
	fi->direct_io = 0;
	fi->keep_cache = 0;
	return 0;
fail:
	free(ff);
	return map_err(rc);
}

static int fs_op_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	const struct fs_file *ff = file_of(fi);
	ssize_t n;

	(void)path;
	if (off < 0)
		return -EINVAL;
	n = store_file_read(ff->f, buf, size, (uint64_t)off);
	if (n < 0)
		return io_err(ff, "read", (uint64_t)off, size, (int)n);
	return (int)n;
}

static int fs_op_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	const struct fs_file *ff = file_of(fi);
	ssize_t n;

	(void)path;
	if (off < 0)
		return -EINVAL;
	n = store_file_write(ff->f, buf, size, (uint64_t)off);
	if (n < 0)
		return io_err(ff, "write", (uint64_t)off, size, (int)n);
	return (int)n;
}

static int fs_op_flush(const char *path, struct fuse_file_info *fi)
{
	/* Nothing is buffered here (no writeback cache): close(2) has nothing
	 * to push.  Durability is fsync's job. */
	(void)path, (void)fi;
	return 0;
}

static int fs_op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	const struct fs_file *ff = file_of(fi);
	int rc;

	(void)path, (void)datasync;
	rc = store_file_sync(ff->f);
	return rc < 0 ? io_err(ff, "fsync", 0, 0, rc) : 0;
}

static int fs_op_release(const char *path, struct fuse_file_info *fi)
{
	struct fs_file *ff = file_of(fi);

	(void)path;
	store_file_close(ff->f);
	free(ff);
	fi->fh = 0;
	return 0;
}

/*
 * Thin volumes: punching a hole (or zeroing a range, which reads the same)
 * is a discard that gives the space back (R23); allocating is a no-op.
 * Nothing may change the size.
 */
static int fs_op_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	const struct fs_file *ff = file_of(fi);
	uint64_t size = store_file_size(ff->f), end;
	int rc;

	(void)path;
	if (off < 0 || len <= 0)
		return -EINVAL;
	if ((uint64_t)len > (uint64_t)INT64_MAX - (uint64_t)off)
		return -EFBIG;
	end = (uint64_t)off + (uint64_t)len;
	switch (mode) {
	case 0:
		return end <= size ? 0 : -EOPNOTSUPP;
	case FALLOC_FL_KEEP_SIZE:
		return 0;
	case FALLOC_FL_ZERO_RANGE:
		if (end > size)
			return -EOPNOTSUPP;
		break;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		break;
	default:
		return -EOPNOTSUPP;
	}
	if ((uint64_t)off >= size)
		return 0;
	if (end > size)
		end = size;
	rc = store_file_discard(ff->f, (uint64_t)off, end - (uint64_t)off);
	return rc < 0 ? io_err(ff, "discard", (uint64_t)off, (size_t)(end - (uint64_t)off), rc) : 0;
}

/* SEEK_DATA/SEEK_HOLE only: the kernel does SEEK_SET/CUR/END itself. */
static off_t fs_op_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
	const struct fs_file *ff = file_of(fi);
	int64_t r;

	(void)path;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (off < 0)
		return -ENXIO;
	r = store_file_seek(ff->f, (uint64_t)off, whence);
	if (r == -ENXIO)         /* no data (or hole) past off: an answer, not an error */
		return -ENXIO;
	if (r < 0)
		return io_err(ff, "lseek", (uint64_t)off, 0, (int)r);
	return (off_t)r;
}

/* truncate(2)/ftruncate(2): a volume grows (R23), never shrinks. */
static int fs_op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = ctx_get();
	const struct fs_dir *dir;
	struct store_caller c;
	const char *name;
	struct fs_path p;
	int rc;

	if (!ctx->s)
		return -EIO;
	if (size < 0)
		return -EINVAL;
	if (fi && fi->fh) {
		const struct fs_file *ff = file_of(fi);

		if (dir_handle_is(fi->fh))
			return -EISDIR;
		dir = ff->dir;
		name = ff->e.name;
	} else {
		rc = path_parse(path, &p);
		if (rc < 0)
			return rc;
		if (p.node != FS_FILE)
			return -EISDIR;
		dir = p.dir;
		name = p.name;
	}
	if (dir->kind != META_VOLUME)
		return -EACCES;
	caller_get(ctx, &c);
	/* shrinking is -EINVAL, with the reason in the log (R23) */
	rc = store_file_truncate(ctx->s, &c, name, (uint64_t)size);
	return rc < 0 ? map_err(rc) : 0;
}

/* ------------------------------------------------------------------------ */
/* Extended attributes (R28: read-only view of the object's attributes)     */
/* ------------------------------------------------------------------------ */

static int xattr_ours(const char *name)
{
	return strncmp(name, FS_XATTR_PREFIX, sizeof(FS_XATTR_PREFIX) - 1) == 0;
}

/* The getxattr/listxattr protocol: size 0 asks for the length. */
static int xattr_copy(char *out, size_t size, const char *v, int len)
{
	if (len < 0)
		return map_err(len);
	if (size != 0 && (size_t)len > size)
		return -ERANGE;
	if (size != 0)
		memcpy(out, v, (size_t)len);
	return len;
}

static int fs_op_getxattr(const char *path, const char *name, char *value, size_t size)
{
	struct fs_ctx *ctx;
	char v[FS_XATTR_MAX];
	struct fs_path p;
	int rc;

	/* First and cheap: the kernel asks for security.capability before
	 * every write. */
	if (!xattr_ours(name))
		return -ENODATA;
	ctx = ctx_get();
	if (!ctx->s)
		return -EIO;
	rc = path_parse(path, &p);
	if (rc < 0)
		return rc;
	if (p.node != FS_FILE)
		return -ENODATA;
	rc = store_xattr_get(ctx->s, p.dir->kind, p.name, name, v, sizeof(v));
	return xattr_copy(value, size, v, rc);
}

static int fs_op_listxattr(const char *path, char *list, size_t size)
{
	char v[FS_XATTR_MAX];
	struct fs_path p;
	int rc;

	rc = path_parse(path, &p);
	if (rc < 0)
		return rc;
	if (p.node != FS_FILE)
		return 0;
	rc = store_xattr_list(v, sizeof(v));
	return xattr_copy(list, size, v, rc);
}

/* Ours are immutable (R1); no other attribute can be stored. */
static int xattr_refuse(const char *path, const char *name)
{
	struct fs_ctx *ctx = ctx_get();

	if (!xattr_ours(name))
		return -ENOTSUP;
	fs_log_rl(ctx, &ctx->rl_refuse, LOG_NOTICE, "xattr %s on %s: the encryption attribute is immutable (R1)", name,
		  path ? path : "?");
	return -EPERM;
}

static int fs_op_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	(void)value, (void)size, (void)flags;
	return xattr_refuse(path, name);
}

static int fs_op_removexattr(const char *path, const char *name)
{
	return xattr_refuse(path, name);
}

/* ------------------------------------------------------------------------ */
/* The namespace belongs to evfsctl                                         */
/* ------------------------------------------------------------------------ */

static int refuse(const char *op, const char *path, const char *hint)
{
	struct fs_ctx *ctx = ctx_get();

	fs_log_rl(ctx, &ctx->rl_refuse, LOG_NOTICE, "%s %s: not done through the mount; %s", op, path ? path : "?",
		  hint);
	return -EPERM;
}

static int fs_op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)mode, (void)fi;
	return refuse("create", path, "create objects with evfsctl, e.g.: evfsctl volume create NAME --size SIZE");
}

static int fs_op_mknod(const char *path, mode_t mode, dev_t rdev)
{
	(void)mode, (void)rdev;
	return refuse("mknod", path, "create objects with evfsctl, e.g.: evfsctl volume create NAME --size SIZE");
}

static int fs_op_mkdir(const char *path, mode_t mode)
{
	(void)mode;
	return refuse("mkdir", path, "the tree is fixed (volumes, snapshots, backups, images)");
}

static int fs_op_rmdir(const char *path)
{
	return refuse("rmdir", path, "the tree is fixed (volumes, snapshots, backups, images)");
}

static int fs_op_unlink(const char *path)
{
	char hint[256];
	struct fs_path p;

	if (path_parse(path, &p) == 0 && p.node == FS_FILE)
		snprintf(hint, sizeof(hint), "delete it with: evfsctl %s delete %s", p.dir->noun, p.name);
	else
		snprintf(hint, sizeof(hint), "delete objects with evfsctl");
	return refuse("unlink", path, hint);
}

static int fs_op_rename(const char *from, const char *to, unsigned int flags)
{
	(void)to, (void)flags;
	return refuse("rename", from, "names are fixed at creation; manage objects with evfsctl");
}

static int fs_op_link(const char *from, const char *to)
{
	(void)from;
	return refuse("link", to, "links are not supported; manage objects with evfsctl");
}

static int fs_op_symlink(const char *target, const char *path)
{
	(void)target;
	return refuse("symlink", path, "links are not supported; manage objects with evfsctl");
}

/* Owner and mode follow the object (R27). */
static int fs_op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)path, (void)mode, (void)fi;
	return -EPERM;
}

static int fs_op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	(void)path, (void)uid, (void)gid, (void)fi;
	return -EPERM;
}

/* Times are the object's creation time; setting them (touch, cp -p) is
 * accepted and ignored rather than failing the tool. */
static int fs_op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)path, (void)tv, (void)fi;
	return 0;
}

static const struct fuse_operations fs_ops = {
	.init = fs_op_init,
	.destroy = fs_op_destroy,
	.getattr = fs_op_getattr,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.statfs = fs_op_statfs,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.flush = fs_op_flush,
	.fsync = fs_op_fsync,
	.release = fs_op_release,
	.fallocate = fs_op_fallocate,
	.lseek = fs_op_lseek,
	.truncate = fs_op_truncate,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.setxattr = fs_op_setxattr,
	.removexattr = fs_op_removexattr,
	.create = fs_op_create,
	.mknod = fs_op_mknod,
	.mkdir = fs_op_mkdir,
	.rmdir = fs_op_rmdir,
	.unlink = fs_op_unlink,
	.rename = fs_op_rename,
	.link = fs_op_link,
	.symlink = fs_op_symlink,
	.chmod = fs_op_chmod,
	.chown = fs_op_chown,
	.utimens = fs_op_utimens,
};

const struct fuse_operations *fs_ops_get(void)
{
	return &fs_ops;
}
