// SPDX-License-Identifier: MIT
/*
 * engine_map.c - whole maps: create, clone (snapshots, images, rollback),
 * delete, statistics and verification, by lineage and id.
 *
 * These are the operations that must know which maps are open: cloning an
 * open volume freezes it (vol_freeze) so the copy holds every acknowledged
 * write; deleting or replacing an open map is refused.  The file format is
 * maps.c's, the slots' bookkeeping pool.c's; the table of open handles is
 * engine.c's, reached only through its functions.
 */
#include "engine_int.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#define SCAN_BYTES (64u * 1024u)

static int maps_dir(struct pool *p)
{
	int fd = openat(p->dir_fd, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static int map_name(char *out, size_t sz, const char *prefix, const char *id)
{
	if (!id || !*id || strchr(id, '/') || strlen(id) >= ENGINE_ID_MAX)
		return -EINVAL;
	snprintf(out, sz, "%s%s.map", prefix, id);
	return 0;
}

/* Write a fresh map file `prefix+id` of `size`; returns its fd. */
static int map_file_new(struct pool *p, int dfd, const char *name, const char *id, uint64_t size)
{
	int fd = openat(dfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600), err;

	if (fd < 0)
		return -errno;
	err = map_header_store(p, fd, id, size);
	if (!err && ftruncate(fd, (off_t)map_entry_off(chunk_count(size, p->chunk_size))) < 0)
		err = -errno;
	if (err) {
		close(fd);
		(void)unlinkat(dfd, name, 0);
		return err;
	}
	return fd;
}

int engine_map_create(struct engine *e, const char *lineage, const char *id, uint64_t size)
{
	struct pool *p;
	char name[128];
	int dfd, fd, err = map_name(name, sizeof(name), "", id);

	if (err)
		return err;
	err = engine_pool_get(&p, e, lineage);
	if (err)
		return err;
	if (p->version == 2) {
		uint32_t ri;

		err = tree_root_add(p, id, size, &ri);
		if (!err)
			err = tree_commit(p);
		engine_pool_put(p);
		return err;
	}
	dfd = maps_dir(p);
	if (dfd < 0) {
		engine_pool_put(p);
		return dfd;
	}
	fd = map_file_new(p, dfd, name, id, size);
	err = fd < 0 ? fd : 0;
	if (fd >= 0) {
		if (fsync(fd) < 0 || fsync(dfd) < 0)
			err = -errno;
		close(fd);
	}
	close(dfd);
	engine_pool_put(p);
	return err;
}

struct copy_ctx {
	struct pool *pool;
	int dst_fd;
	int err;
};

static int ref_cb(void *ctx, uint64_t index, uint64_t slot)
{
	(void)index;
	return pool_ref(ctx, slot);
}

/* Slots a dropped map referenced last: PENDING until pool_punch_free(). */
struct unref_ctx {
	struct pool *pool;
	uint64_t *slots;
	size_t n, cap;
};

static int unref_cb(void *ctx, uint64_t index, uint64_t slot)
{
	struct unref_ctx *u = ctx;

	(void)index;
	if (!pool_unref(u->pool, slot))
		return 0;
	if (u->n == u->cap) {
		size_t cap = u->cap ? 2 * u->cap : 1024;
		uint64_t *n = realloc(u->slots, cap * sizeof(*n));

		if (!n)
			return 0;       /* stays PENDING: leaked until the pool is reopened */
		u->slots = n;
		u->cap = cap;
	}
	u->slots[u->n++] = slot;
	return 0;
}

/* Drop the references of the (already unlinked or replaced) map open as
 * fd.  The freed slots are reused, and punched, only once every open map
 * of the pool is durable: one of them may have dropped a shared slot in a
 * write not yet synced, and its durable state still points at it. */
static void map_fd_unref(struct pool *p, int fd)
{
	struct unref_ctx u = { .pool = p };

	(void)map_fd_foreach(p, fd, unref_cb, &u);
	pool_punch_free(p, u.slots, u.n);
	free(u.slots);
}

/* Copy the data extents of a map file (entries only; header rewritten). */
static int copy_entries(int src, int dst, uint64_t nchunks)
{
	static const size_t blk = SCAN_BYTES;
	uint8_t *buf = malloc(blk);
	off_t pos = MAP_HDR_BYTES, end = (off_t)map_entry_off(nchunks);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	while (!err && pos < end) {
		off_t data = lseek(src, pos, SEEK_DATA), hole;

		if (data < 0 || data >= end)
			break;
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		for (pos = data; pos < hole;) {
			size_t want = (size_t)(hole - pos) < blk ? (size_t)(hole - pos) : blk;
			ssize_t r = pread(src, buf, want, pos);

			if (r <= 0) {
				err = r < 0 ? -errno : -EUCLEAN;
				break;
			}
			if (!chunk_is_zero(buf, (size_t)r) && pwrite(dst, buf, (size_t)r, pos) != r) {
				err = errno ? -errno : -ENOSPC;
				break;
			}
			pos += r;
		}
	}
	free(buf);
	return err;
}

int engine_map_clone(struct engine *e, const char *lineage, const char *src_id, const char *dst_id,
		     uint64_t size, int replace)
{
	char sname[128], dname[128], tname[128];
	struct map_header h;
	struct pool *p;
	struct vol *sv;
	int dfd = -1, sfd = -1, tfd = -1, ofd = -1, err;

	if ((err = map_name(sname, sizeof(sname), "", src_id)) || (err = map_name(dname, sizeof(dname), "", dst_id)) ||
	    (err = map_name(tname, sizeof(tname), ".tmp-", dst_id)))
		return err;
	if (replace && engine_vol_is_open(e, dst_id))
		return -EBUSY;
	err = engine_pool_get(&p, e, lineage);
	if (err)
		return err;
	if (engine_vol_lookup(&sv, e, src_id) < 0)     /* holds a reference while frozen */
		sv = NULL;
	if (p->version == 2) {
		/* O(1): the clone names the source's root page. */
		uint32_t si;

		if (sv)
			vol_freeze(sv);
		err = tree_root_find(p, src_id, &si);
		if (!err)
			err = tree_root_clone(p, si, dst_id, size, replace);
		if (!err)
			err = tree_commit(p);
		if (sv) {
			vol_thaw(sv);
			engine_vol_close(sv);
		}
		engine_pool_put(p);
		return err;
	}
	/* Flush most of the pool's dirty data before freezing the source, so
	 * the sync under the freeze (below) has little left to write. */
	(void)pool_sync(p);
	if (sv)
		vol_freeze(sv);   /* every acknowledged write is in the map */
	dfd = maps_dir(p);
	if (dfd < 0) {
		err = dfd;
		goto out;
	}
	sfd = openat(dfd, sname, O_RDONLY | O_CLOEXEC);
	if (sfd < 0) {
		err = -errno;
		goto out;
	}
	err = map_header_load(p, sfd, src_id, &h);
	if (err)
		goto out;
	if (replace) {
		ofd = openat(dfd, dname, O_RDONLY | O_CLOEXEC);
		if (ofd < 0) {
			err = -errno;
			goto out;
		}
	} else if (faccessat(dfd, dname, F_OK, 0) == 0) {
		err = -EEXIST;
		goto out;
	}
	(void)unlinkat(dfd, tname, 0);
	tfd = map_file_new(p, dfd, tname, dst_id, size > h.size ? size : h.size);
	if (tfd < 0) {
		err = tfd;
		goto out;
	}
	err = copy_entries(sfd, tfd, chunk_count(h.size, p->chunk_size));
	/* The chunks the clone points at must be durable before the clone is:
	 * writes acknowledged but not yet fsynced sit in the page cache. */
	if (!err)
		err = pool_sync(p);
	if (!err && fsync(tfd) < 0)
		err = -errno;
	if (!err && renameat(dfd, tname, dfd, dname) < 0)
		err = -errno;
	if (err) {
		(void)unlinkat(dfd, tname, 0);
		goto out;
	}
	if (fsync(dfd) < 0)
		err = -errno;
	/* The clone is durable: count its references, drop the old ones. */
	if (map_fd_foreach(p, tfd, ref_cb, p) < 0)
		elog_printf(&e->log, LOG_ERR, "pool %s: clone %s references a slot outside the pool", lineage, dst_id);
out:
	if (sv) {
		vol_thaw(sv);
		engine_vol_close(sv);
	}
	/* Replaced: the old map's slots (after the unlock: syncing the open
	 * maps takes the engine table lock, which comes first). */
	if (!err && ofd >= 0)
		map_fd_unref(p, ofd);
	if (tfd >= 0)
		close(tfd);
	if (ofd >= 0)
		close(ofd);
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	engine_pool_put(p);
	return err;
}

int engine_map_delete(struct engine *e, const char *lineage, const char *id)
{
	char name[128];
	struct pool *p;
	int dfd, fd, err = map_name(name, sizeof(name), "", id);

	if (err)
		return err;
	if (engine_vol_is_open(e, id))
		return -EBUSY;
	err = engine_pool_get(&p, e, lineage);
	if (err)
		return err;
	if (p->version == 2) {
		/* Frees what only this map referenced; costs what it frees. */
		uint32_t ri;

		err = tree_root_find(p, id, &ri);
		if (!err)
			err = tree_root_drop(p, ri);
		if (!err)
			err = tree_commit(p);
		engine_pool_put(p);
		return err;
	}
	dfd = maps_dir(p);
	if (dfd < 0) {
		engine_pool_put(p);
		return dfd;
	}
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
	} else if (unlinkat(dfd, name, 0) < 0 || fsync(dfd) < 0) {
		err = -errno;
	} else {
		map_fd_unref(p, fd);
	}
	if (fd >= 0)
		close(fd);
	close(dfd);
	engine_pool_put(p);
	return err;
}

struct stats_ctx {
	struct pool *pool;
	struct engine_map_stats *st;
};

static int stats_cb(void *ctx, uint64_t index, uint64_t slot)
{
	struct stats_ctx *c = ctx;

	(void)index;
	c->st->chunks++;
	c->st->exclusive += pool_refcount(c->pool, slot) == 1;
	return 0;
}

static int with_map_fd(struct engine *e, const char *lineage, const char *id, struct pool **pp, int *fdp)
{
	char name[128];
	int dfd, err = map_name(name, sizeof(name), "", id);

	if (err)
		return err;
	err = engine_pool_get(pp, e, lineage);
	if (err)
		return err;
	dfd = maps_dir(*pp);
	if (dfd < 0) {
		engine_pool_put(*pp);
		return dfd;
	}
	*fdp = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	err = *fdp < 0 ? -errno : 0;
	close(dfd);
	if (err)
		engine_pool_put(*pp);
	return err;
}

/* Format 2 maps by id: the pool held, the root found. */
static int with_root(struct engine *e, const char *lineage, const char *id, struct pool **pp, uint32_t *ri)
{
	int err = engine_pool_get(pp, e, lineage);

	if (err)
		return err;
	if ((*pp)->version != 2)
		err = -EPROTO;
	else
		err = tree_root_find(*pp, id, ri);
	if (err)
		engine_pool_put(*pp);
	return err;
}

int engine_pool_format(struct engine *e, const char *lineage)
{
	struct pool *p;
	int v;

	if (engine_pool_get(&p, e, lineage) < 0)
		return 1;           /* the format 1 path reports the error */
	v = p->version;
	engine_pool_put(p);
	return v;
}

int engine_map_stats(struct engine *e, const char *lineage, const char *id, struct engine_map_stats *st)
{
	struct stats_ctx c = { .st = st };
	struct map_header h;
	int fd, err;

	if (engine_pool_format(e, lineage) == 2) {
		uint32_t ri;

		memset(st, 0, sizeof(*st));
		err = with_root(e, lineage, id, &c.pool, &ri);
		if (err)
			return err;
		st->size = tree_root_size(c.pool, ri);
		st->chunk_size = c.pool->chunk_size;
		err = tree_stats(c.pool, ri, &st->chunks, &st->exclusive);
		engine_pool_put(c.pool);
		return err;
	}
	err = with_map_fd(e, lineage, id, &c.pool, &fd);
	if (err)
		return err;
	memset(st, 0, sizeof(*st));
	err = map_header_load(c.pool, fd, id, &h);
	if (!err) {
		st->size = h.size;
		st->chunk_size = c.pool->chunk_size;
		err = map_fd_foreach(c.pool, fd, stats_cb, &c);
	}
	close(fd);
	engine_pool_put(c.pool);
	return err;
}

struct verify_ctx {
	struct pool *pool;
	const struct kms_dk *dk;     /* NULL: unencrypted lineage */
	uint8_t *buf;
	engine_bad_cb cb;
	void *cb_ctx;
	int bad;
};

static int verify_cb(void *ctx, uint64_t index, uint64_t slot)
{
	struct verify_ctx *c = ctx;
	const struct chunk_tag *t = slot < c->pool->nslots ? pool_tag(c->pool, slot) : NULL;
	int err = t ? pool_chunk_load(c->pool, slot, c->buf) : -EUCLEAN;

	if (!err)
		err = pool_chunk_open(c->pool, c->dk, index, c->buf, c->buf, t);
	if (err) {
		c->bad++;
		if (c->cb)
			c->cb(c->cb_ctx, index, err);
	}
	return 0;
}

/* Format 2: the tag comes from the leaf entry. */
static int verify2_cb(void *ctx, uint64_t index, const struct tree_ent *te)
{
	struct verify_ctx *c = ctx;
	uint64_t slot = le64toh(te->slot1) - 1;
	struct chunk_tag t;
	int err = pool_chunk_load(c->pool, slot, c->buf);

	tree_ent_tag(te, index, &t);
	if (!err)
		err = pool_chunk_open(c->pool, c->dk, index, c->buf, c->buf, &t);
	if (err) {
		c->bad++;
		if (c->cb)
			c->cb(c->cb_ctx, index, err);
	}
	return 0;
}

int engine_map_verify(struct engine *e, const char *lineage, const char *id, const struct kms_dk *dk,
		      engine_bad_cb cb, void *ctx)
{
	struct verify_ctx c = { .cb = cb, .cb_ctx = ctx };
	int fd, err;

	if (engine_pool_format(e, lineage) == 2) {
		uint32_t ri;

		err = with_root(e, lineage, id, &c.pool, &ri);
		if (err)
			return err;
		if (c.pool->encrypted && !dk) {
			engine_pool_put(c.pool);
			return -ENOKEY;
		}
		c.dk = dk;
		c.buf = sodium_malloc(c.pool->chunk_size);
		err = c.buf ? tree_foreach(c.pool, ri, verify2_cb, &c) : -ENOMEM;
		sodium_free(c.buf);
		engine_pool_put(c.pool);
		return err < 0 ? err : c.bad;
	}
	err = with_map_fd(e, lineage, id, &c.pool, &fd);
	if (err)
		return err;
	if (c.pool->encrypted && !dk) {
		err = -ENOKEY;
		goto out;
	}
	c.dk = dk;
	c.buf = sodium_malloc(c.pool->chunk_size);
	if (!c.buf) {
		err = -ENOMEM;
		goto out;
	}
	err = map_fd_foreach(c.pool, fd, verify_cb, &c);
	sodium_free(c.buf);
out:
	close(fd);
	engine_pool_put(c.pool);
	return err < 0 ? err : c.bad;
}
