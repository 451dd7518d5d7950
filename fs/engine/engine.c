// SPDX-License-Identifier: MIT
/*
 * engine.c - the engine's table of open pools and open volume handles.
 *
 * One struct engine per store.  It owns the only table of what is open:
 * each lineage's pool at most once (pools are opened on first use and
 * closed with their last user), each map id's volume handle at most once
 * (handles are shared and refcounted, so the FUSE file handles, the attach
 * state and the control commands all see one object).  engine->lock guards
 * the table and the refcounts only; it is taken here and nowhere else, and
 * never held across I/O, except that opening a pool (which scans its maps)
 * runs under it, so two threads never build two pools for one lineage:
 * only control paths open pools.  A pool whose last user left stays in the
 * table, marked closing, until its last commit, give-back and checkpoint
 * are done: an open of the same lineage meanwhile waits for it
 * (pool_closed), or it would replay a journal the closing instance is
 * still writing and work from a state that instance then changes.
 *
 * The files below engine.c in the chain (pool.c, maps.c, vol_handle.c,
 * volume.c) know nothing of this table.  When a pool needs "every open map
 * of this pool synced" (before a freed slot may be reused) it calls the
 * hook engine.c installed in it (maps_sync_hook).
 *
 * Lock order (the whole engine): engine->lock, then vol->lock, then the
 * volume's chunk stripes, then pool->lock.  See volume.c.
 */
#include "engine_int.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "par.h"
#ifdef EVFS_HAVE_RADOS
#include "pdev_rados.h"
#endif

/* ========================= engine lifetime ============================ */

static int engine_new(struct engine **out, const char *where, engine_log_fn log, void *log_ctx)
{
	struct engine *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (!e)
		return -ENOMEM;
	e->dir = strdup(where);
	if (!e->dir) {
		free(e);
		return -ENOMEM;
	}
	e->log.fn = log;
	e->log.ctx = log_ctx;
	e->format = 2;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->pool_closed, NULL);
	pthread_cond_init(&e->fwd_idle, NULL);
	{
		/* One helper per extra core (up to 3); without them large
		 * requests are encrypted inline, which is only slower. */
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		if (par_create(&e->par, cpus > 4 ? 3u : cpus > 1 ? (unsigned)cpus - 1 : 0u) < 0)
			e->par = NULL;
	}
	*out = e;
	return 0;
}

int engine_create(struct engine **out, const char *pools_dir, engine_log_fn log, void *log_ctx)
{
	if (mkdir(pools_dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return engine_new(out, pools_dir, log, log_ctx);
}

int engine_create_rados(struct engine **out, const char *conf, const char *pool, const char *ns, const char *client,
			engine_log_fn log, void *log_ctx)
{
#ifdef EVFS_HAVE_RADOS
	char where[512];
	rados_t cluster;
	rados_ioctx_t io;
	int err;

	*out = NULL;
	err = pdev_rados_connect(conf, pool, ns, client, &cluster, &io);
	if (err)
		return err;
	snprintf(where, sizeof(where), "rados:%s/%s", pool, ns);
	err = engine_new(out, where, log, log_ctx);
	if (err) {
		pdev_rados_disconnect(cluster, io);
		return err;
	}
	(*out)->rados = cluster;
	(*out)->rados_io = io;
	return 0;
#else
	(void)conf, (void)pool, (void)ns, (void)client, (void)log, (void)log_ctx;
	*out = NULL;
	return -ENOTSUP;
#endif
}

void engine_destroy(struct engine *e)
{
	if (!e)
		return;
	par_destroy(e->par);
	e->par = NULL;
	if (e->vols)
		elog_printf(&e->log, LOG_WARNING, "engine destroyed with open volume %s", e->vols->id);
	while (e->pools) {
		struct pool *p = e->pools;

		e->pools = p->next;
		p->users = 0;
		if (p->version == 2 && tree_commit(p) < 0)
			elog_printf(&e->log, LOG_ERR, "pool %s: the last commit failed", p->lineage_hex);
		tree_close(p);
		pool_close(p);
	}
	pthread_cond_destroy(&e->pool_closed);
	pthread_cond_destroy(&e->fwd_idle);
	pthread_mutex_destroy(&e->lock);
#ifdef EVFS_HAVE_RADOS
	if (e->rados)
		pdev_rados_disconnect(e->rados, e->rados_io);
#endif
	free(e->dir);
	free(e);
}

int engine_lineage_parse(const char *hex, uint8_t out[static CHUNK_LINEAGE_BYTES])
{
	return pool_lineage_parse(hex, out);
}

void engine_lineage_format(const uint8_t lin[static CHUNK_LINEAGE_BYTES], char out[static 33])
{
	sodium_bin2hex(out, 33, lin, CHUNK_LINEAGE_BYTES);
}

void engine_lineage_generate(uint8_t out[static CHUNK_LINEAGE_BYTES])
{
	randombytes_buf(out, CHUNK_LINEAGE_BYTES);
}


/* =============================== pools ================================ */

/* fdatasync the map of every open writable volume of p but `except`: dup()
 * the fds under the table lock, sync outside it (no I/O under
 * engine->lock). */
static int maps_sync_hook(void *ctx, struct pool *p, const struct vol *except)
{
	struct engine *e = ctx;
	int *fds = NULL, nfd = 0, cap = 0, err = 0;

	pthread_mutex_lock(&e->lock);
	for (struct vol *o = e->vols; o && !err; o = o->next) {
		if (o->pool != p || o == except)
			continue;
		if (nfd == cap) {
			int *n = realloc(fds, (size_t)(cap = cap ? 2 * cap : 8) * sizeof(*fds));

			if (!n) {
				err = -ENOMEM;
				break;
			}
			fds = n;
		}
		fds[nfd] = vol_map_dup(o);
		if (fds[nfd] >= 0)
			nfd++;
		else if (fds[nfd] != -EROFS)
			err = fds[nfd];
	}
	pthread_mutex_unlock(&e->lock);
	for (int i = 0; i < nfd; i++) {
		if (!err && fdatasync(fds[i]) < 0)
			err = -errno;
		close(fds[i]);
	}
	free(fds);
	return err;
}

int engine_set_format(struct engine *e, int format)
{
	if (format != 1 && format != 2)
		return -EINVAL;
	if (format == 1 && e->rados)
		return -ENOTSUP;             /* format 1 is local files only */
	e->format = format;
	return 0;
}

int engine_set_owner(struct engine *e, const char *owner, unsigned lease)
{
	if (!owner || !owner[0] || strlen(owner) >= sizeof(e->owner) || strchr(owner, ' ') || lease > 86400)
		return -EINVAL;
	snprintf(e->owner, sizeof(e->owner), "%s", owner);
	e->lease = lease;
	return 0;
}

void engine_set_forward(struct engine *e, engine_forward_fn fn, void *ctx)
{
	pthread_mutex_lock(&e->lock);
	while (e->fwd_busy)                /* a request under way still uses the old one */
		pthread_cond_wait(&e->fwd_idle, &e->lock);
	e->fwd = fn;
	e->fwd_ctx = ctx;
	pthread_mutex_unlock(&e->lock);
}

#ifdef EVFS_HAVE_RADOS
/* What every pool device in RADOS calls for another host's request: the
 * handler set now, if any (none: no answer), never one being unset. */
static void forward_trampoline(void *ctx, const void *req, size_t len, void **reply, size_t *rlen)
{
	struct engine *e = ctx;
	engine_forward_fn fn;
	void *fctx;

	pthread_mutex_lock(&e->lock);
	fn = e->fwd;
	fctx = e->fwd_ctx;
	e->fwd_busy += fn != NULL;
	pthread_mutex_unlock(&e->lock);
	if (!fn)
		return;
	fn(fctx, req, len, reply, rlen);
	pthread_mutex_lock(&e->lock);
	if (--e->fwd_busy == 0)
		pthread_cond_broadcast(&e->fwd_idle);
	pthread_mutex_unlock(&e->lock);
}
#endif

int engine_forward(struct engine *e, const char *lineage, const void *req, size_t len, unsigned timeout_ms,
		   void **reply, size_t *rlen)
{
#ifdef EVFS_HAVE_RADOS
	if (e->rados_io)
		return pdev_rados_forward(e->rados_io, lineage, req, len, timeout_ms, reply, rlen);
#endif
	(void)e, (void)lineage, (void)req, (void)len, (void)timeout_ms;
	*reply = NULL;
	*rlen = 0;
	return -ENOTSUP;
}

int engine_pool_fence(struct engine *e, const char *lineage, const char *owner, int takeover)
{
#ifdef EVFS_HAVE_RADOS
	if (e->rados_io) {
		int err = pdev_rados_fence(e->rados_io, lineage, owner, takeover ? (e->lease ? e->lease : 1) : 0);

		if (err == 1)
			elog_printf(&e->log, LOG_WARNING, "pool %s: host %s %s; its client is blocklisted for an hour",
				    lineage, owner, takeover ? "let its lease run out" : "lost its writer lock");
		return err;
	}
#endif
	(void)e, (void)lineage, (void)owner, (void)takeover;
	return 0;
}

int engine_pool_create(struct engine *e, const char *lineage, uint32_t chunk_size, int encrypted)
{
#ifdef EVFS_HAVE_RADOS
	if (e->rados_io) {
		struct pdev *dev;
		int err = pdev_rados_open(&dev, e->rados_io, lineage, PDEV_BIT(PDEV_DATA) | PDEV_BLOCK_FILES, 1);

		if (err)
			return err;
		err = tree_pool_init(dev, lineage, chunk_size, encrypted);
		if (!err)
			err = pdev_rados_publish(dev);
		pdev_close(dev);
		return err;
	}
#endif
	if (e->format == 2)
		return tree_pool_create(e->dir, lineage, chunk_size, encrypted);
	return pool_files_create(e->dir, lineage, chunk_size, encrypted);
}

void engine_set_fresh(struct engine *e, const struct engine_fresh_ops *ops, void *ctx)
{
	e->fresh = ops;
	e->fresh_ctx = ctx;
}

/* The pool's commit hook: forward the durable state to the store. */
static void fresh_committed(void *ctx, struct pool *p, uint64_t gen, const uint8_t hash[static 32])
{
	struct engine *e = ctx;

	(void)e->fresh->save(e->fresh_ctx, p->lineage_hex, gen, hash, 0);
}

/* A format 2 pool just opened against its freshness record: 0 (fresh, or
 * ahead of a record that lagged, which then moves forward), -EUCLEAN
 * (older than the record, or at its generation with other contents: put
 * back from an older copy) with *rolled set, or the record's load error. */
static int fresh_check(struct engine *e, struct pool *p, int *rolled)
{
	uint64_t gen, want_gen;
	uint8_t hash[32], want[32];
	int err;

	tree_fresh(p, &gen, hash);
	err = e->fresh->load(e->fresh_ctx, p->lineage_hex, &want_gen, want);
	if (err == -ENOENT || (!err && gen > want_gen))
		return e->fresh->save(e->fresh_ctx, p->lineage_hex, gen, hash, 0), 0;
	if (err) {
		elog_printf(&e->log, LOG_ERR, "pool %s: the catalog's freshness record of the pool cannot be read (%s); "
			    "run evfsctl fsck", p->lineage_hex, evfs_strerror(err));
		return err;
	}
	if (gen == want_gen && sodium_memcmp(hash, want, 32) == 0)
		return 0;
	*rolled = 1;
	elog_printf(&e->log, LOG_ERR, "pool %s: rolled back: its files in %s/%s are at generation %llu but the store "
		    "recorded generation %llu%s (in its catalog, or on its key token); they were put back from an "
		    "older copy. Restore the pool's latest copy, or accept this older state with evfsctl fsck --repair "
		    "(what was written since is lost): the lineage's volumes, snapshots and images are refused until "
		    "then", p->lineage_hex, e->dir,
		    p->lineage_hex, (unsigned long long)gen, (unsigned long long)want_gen,
		    gen == want_gen ? " with other contents" : "");
	return -EUCLEAN;
}

/* The open pool of lineage, or NULL; one whose files are still being
 * closed is waited for (it then is gone).  Under e->lock. */
/* Open lineage's pool where the engine keeps pools (pool_open's files, or
 * a RADOS device). */
static int pool_open_home(struct engine *e, struct pool **out, const char *lineage)
{
#ifdef EVFS_HAVE_RADOS
	if (e->rados_io) {
		struct pdev *dev;
		char holder[256] = "";
		int err = pdev_rados_open(&dev, e->rados_io, lineage, PDEV_BIT(PDEV_DATA) | PDEV_BLOCK_FILES, 0);

		if (err) {
			elog_printf(&e->log, LOG_ERR, "pool %s: its objects in %s cannot be opened (%s)", lineage, e->dir,
				    evfs_strerror(err));
			return err;
		}
		/* One writer per lineage in the cluster: the device keeps the
		 * files' sizes, the pool its journal and free slots in memory. */
		err = pdev_rados_lock(dev, e->owner[0] ? e->owner : "evfs", e->lease, forward_trampoline, e, holder,
				      sizeof(holder));
		if (err == 1)
			elog_printf(&e->log, LOG_WARNING, "pool %s: took over the writer lock of %s, a process of this host "
				    "that is gone; its client is blocklisted for an hour", lineage, holder);
		if (err == 2)
			elog_printf(&e->log, LOG_WARNING, "pool %s: took over the writer lock of %s, whose lease ran out",
				    lineage, holder);
		if (err < 0) {
			elog_printf(&e->log, LOG_ERR, "pool %s: %s%s%s", lineage,
				    err == -EBUSY ? "in use by " : "its writer lock cannot be taken: ",
				    err == -EBUSY ? holder : evfs_strerror(err),
				    err == -EBUSY ? ", which has one of its volumes attached or runs a command on it; "
						    "run the command there, or retry once it is done" : "");
			pdev_close(dev);
			return err;
		}
		return pool_open_dev(out, dev, e->dir, lineage, &e->log);
	}
#endif
	return pool_open(out, e->dir, lineage, &e->log);
}

static struct pool *table_find(struct engine *e, const char *lineage)
{
	struct pool *p;

again:
	for (p = e->pools; p; p = p->next) {
		if (strcmp(p->lineage_hex, lineage) != 0)
			continue;
		if (p->closing) {
			pthread_cond_wait(&e->pool_closed, &e->lock);
			goto again;
		}
		return p;
	}
	return NULL;
}

static int pool_get(struct pool **out, struct engine *e, const char *lineage, int check, int *rolled)
{
	struct pool *p;
	int err;

	pthread_mutex_lock(&e->lock);
	p = table_find(e, lineage);
	if (p) {
		p->users++;
		pthread_mutex_unlock(&e->lock);
		*out = p;
		return 0;
	}
	/* Opening scans maps; done under the table lock so two threads never
	 * build two pools for one lineage.  Only control paths open pools. */
	err = pool_open_home(e, &p, lineage);
	if (!err && p->version == 2) {
		err = tree_open(p);          /* the header and the journal: no scan */
		if (!err && e->fresh && check) {
			err = fresh_check(e, p, rolled);
			if (err)
				tree_close(p);
		}
		if (err)
			pool_close(p);
	} else if (!err) {
		err = map_dir_load_refs(p);
		if (err)
			pool_close(p);
		else
			pool_refs_loaded(p);
	}
	if (!err) {
		p->eng = e;
		p->maps_sync = maps_sync_hook;
		p->maps_sync_ctx = e;
		if (e->fresh && p->version == 2) {
			p->committed = fresh_committed;
			p->committed_ctx = e;
		}
		p->users = 1;
		p->next = e->pools;
		e->pools = p;
		*out = p;
	}
	pthread_mutex_unlock(&e->lock);
	return err;
}

int engine_pool_get(struct pool **out, struct engine *e, const char *lineage)
{
	int rolled = 0;

	return pool_get(out, e, lineage, 1, &rolled);
}

int engine_pool_get_fsck(struct pool **out, struct engine *e, const char *lineage, int *rolled_back)
{
	*rolled_back = 0;
	return pool_get(out, e, lineage, 1, rolled_back);
}

int engine_pool_accept(struct engine *e, const char *lineage)
{
	struct pool *p;
	uint64_t gen;
	uint8_t hash[32];
	int rolled = 0, err;

	if (engine_lineage_parse(lineage, (uint8_t[CHUNK_LINEAGE_BYTES]){ 0 }) < 0)
		return -EINVAL;
	err = pool_get(&p, e, lineage, 0, &rolled);
	if (err)
		return err;
	if (p->version == 2 && e->fresh) {
		tree_fresh(p, &gen, hash);
		err = e->fresh->save(e->fresh_ctx, lineage, gen, hash, 1);
		if (!err)
			elog_printf(&e->log, LOG_WARNING, "pool %s: its files at generation %llu are accepted as they are "
				    "(the catalog's freshness record now says so)", lineage, (unsigned long long)gen);
	}
	engine_pool_put(p);
	return err;
}

struct pool *engine_pool_find(struct engine *e, const char *lineage)
{
	struct pool *p;

	pthread_mutex_lock(&e->lock);
	for (p = e->pools; p; p = p->next)
		if (strcmp(p->lineage_hex, lineage) == 0 && !p->closing)
			break;
	if (p)
		p->users++;
	pthread_mutex_unlock(&e->lock);
	return p;
}

void engine_pool_put(struct pool *p)
{
	struct engine *e = p->eng;
	struct pool **pp;

	pthread_mutex_lock(&e->lock);
	if (--p->users > 0) {
		pthread_mutex_unlock(&e->lock);
		return;
	}
	p->closing = 1;                    /* stays in the table until its files are closed */
	pthread_mutex_unlock(&e->lock);
	if (p->version == 2) {
		if (tree_commit(p) < 0)
			elog_printf(&e->log, LOG_ERR, "pool %s: the last commit failed; the changes since the last fsync are "
				    "lost", p->lineage_hex);
		else
			(void)tree_give_back(p);
		tree_close(p);
	} else {
		pool_give_back(p);
	}
	/* The device too, while the pool is still in the table: a pool in
	 * RADOS lets go of its writer lock there, and an open of the lineage
	 * waiting for this one must not find the lock still held. */
	pdev_close(p->dev);
	p->dev = NULL;
	pthread_mutex_lock(&e->lock);
	for (pp = &e->pools; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	pthread_cond_broadcast(&e->pool_closed);
	pthread_mutex_unlock(&e->lock);
	pool_close(p);
}

static int any_root_cb(void *ctx, const char *id)
{
	(void)ctx;
	(void)id;
	return 1;
}

int engine_pool_delete(struct engine *e, const char *lineage)
{
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	int err = 0;

	if (engine_lineage_parse(lineage, lin) < 0)
		return -EINVAL;
	pthread_mutex_lock(&e->lock);
	if (table_find(e, lineage))
		err = -EBUSY;
	pthread_mutex_unlock(&e->lock);
	if (!err) {
		/* Format 2: refused while a map remains (format 1: maps/ not
		 * empty, pool_files_remove says so). */
		struct pool *p;

		if (engine_pool_get(&p, e, lineage) == 0) {
			if (p->version == 2 && tree_root_list(p, any_root_cb, NULL))
				err = -EBUSY;
			engine_pool_put(p);
		}
	}
	if (err)
		return err;
#ifdef EVFS_HAVE_RADOS
	if (e->rados_io)
		return pdev_rados_remove(e->rados_io, lineage);
#endif
	return pool_files_remove(e->dir, lineage);
}

/* ========================== volume handles ============================ */

int engine_vol_lookup(struct vol **out, struct engine *e, const char *id)
{
	struct vol *v;

	pthread_mutex_lock(&e->lock);
	for (v = e->vols; v; v = v->next)
		if (strcmp(v->id, id) == 0)
			break;
	if (v)
		v->users++;
	pthread_mutex_unlock(&e->lock);
	*out = v;
	return v ? 0 : -ENOENT;
}

int engine_vol_is_open(struct engine *e, const char *id)
{
	int open = 0;

	pthread_mutex_lock(&e->lock);
	for (struct vol *v = e->vols; v && !open; v = v->next)
		open = strcmp(v->id, id) == 0;
	pthread_mutex_unlock(&e->lock);
	return open;
}

int engine_vol_open(struct vol **out, struct engine *e, const char *lineage, const char *id, int writable)
{
	struct pool *p;
	struct vol *v;
	int err;

	if (strlen(id) >= ENGINE_ID_MAX || strchr(id, '/'))
		return -EINVAL;
	if (engine_vol_lookup(out, e, id) == 0)
		return 0;
	err = engine_pool_get(&p, e, lineage);
	if (err)
		return err;
	err = vol_create(&v, p, id, writable, &e->log, e->par);
	if (err) {
		engine_pool_put(p);
		return err;
	}
	pthread_mutex_lock(&e->lock);
	/* Lost a race with another opener?  Use theirs. */
	for (struct vol *o = e->vols; o; o = o->next) {
		if (strcmp(o->id, id) == 0) {
			o->users++;
			pthread_mutex_unlock(&e->lock);
			vol_destroy(v);
			engine_pool_put(p);
			*out = o;
			return 0;
		}
	}
	v->eng = e;
	v->users = 1;
	v->next = e->vols;
	e->vols = v;
	pthread_mutex_unlock(&e->lock);
	*out = v;
	return 0;
}

void engine_vol_close(struct vol *v)
{
	struct engine *e;
	struct pool *p;

	if (!v)
		return;
	e = v->eng;
	pthread_mutex_lock(&e->lock);
	if (--v->users > 0) {
		pthread_mutex_unlock(&e->lock);
		return;
	}
	for (struct vol **pp = &e->vols; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	}
	pthread_mutex_unlock(&e->lock);
	if (vol_is_writable(v) && vol_sync(v) < 0)
		elog_printf(&e->log, LOG_ERR, "volume %s: final sync failed; writes since the last fsync may be lost", v->id);
	p = v->pool;
	vol_destroy(v);
	engine_pool_put(p);
}

int engine_vols_of_pool(struct engine *e, struct pool *p, struct vol ***out, size_t *n)
{
	struct vol **list = NULL, **nl;
	size_t k = 0;
	int err = 0;

	pthread_mutex_lock(&e->lock);
	for (struct vol *v = e->vols; v; v = v->next) {
		if (v->pool != p || !vol_is_writable(v))
			continue;
		nl = realloc(list, (k + 1) * sizeof(*nl));
		if (!nl) {
			err = -ENOMEM;
			break;
		}
		list = nl;
		v->users++;
		list[k++] = v;
	}
	pthread_mutex_unlock(&e->lock);
	*out = list;
	*n = k;
	return err;
}

int engine_pool_freeze(struct engine *e, struct pool *p, struct vol ***out, size_t *n)
{
	struct vol **list = NULL, **nl;
	size_t k = 0;

	pthread_mutex_lock(&e->lock);
	for (struct vol *v = e->vols; v; v = v->next) {
		if (v->pool != p)
			continue;
		nl = realloc(list, (k + 1) * sizeof(*nl));
		if (!nl) {
			for (size_t i = 0; i < k; i++)
				vol_thaw(list[i]);
			free(list);
			pthread_mutex_unlock(&e->lock);
			*out = NULL;
			*n = 0;
			return -ENOMEM;
		}
		list = nl;
		vol_freeze(v);
		list[k++] = v;
	}
	*out = list;
	*n = k;
	/* Stays locked: no handle opens or closes until the thaw.  The list
	 * is not counted: the lock keeps every handle alive. */
	return 0;
}

void engine_pool_thaw(struct engine *e, struct vol **vols, size_t n)
{
	for (size_t i = 0; i < n; i++)
		vol_thaw(vols[i]);
	free(vols);
	pthread_mutex_unlock(&e->lock);
}
