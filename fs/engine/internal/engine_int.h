/* SPDX-License-Identifier: MIT */
/*
 * engine_int.h - the engine table (private to fs/engine/; see engine.c):
 * what engine_map.c, engine_fsck.c and the backup code use to reach open
 * pools and volumes.  The top of the engine's file chain:
 *
 *   elog <- pool <- maps <- vol (vol_handle, volume; par) <- engine
 *        <- engine_map <- engine_fsck, backup (bfile <- backup_read <- backup)
 */
#ifndef EVFS_ENGINE_INT_H
#define EVFS_ENGINE_INT_H

#include <pthread.h>

#include "engine.h"
#include "vol.h"

struct par;

struct engine {
	char *dir;                                /* STORE/pools, or "rados:<pool>"; immutable */
	void *rados, *rados_io;                   /* rados_t, rados_ioctx_t: pools in RADOS (else NULL) */
	struct elog log;
	pthread_mutex_t lock;                     /* the table below; engine.c only */
	pthread_cond_t pool_closed;               /* a closing pool left the table; with lock */
	struct pool *pools;                       /* open (and closing) pools; lock */
	struct vol *vols;                         /* open volume handles; lock */
	struct par *par;                          /* crypto helpers for large requests (par.h) */
	int format;                               /* of new pools: 1 or 2 (engine_set_format) */
	const struct engine_fresh_ops *fresh;     /* engine_set_fresh; set before use */
	void *fresh_ctx;
	char owner[65];                           /* engine_set_owner: whose writer locks, */
	unsigned lease;                           /* and their lease in seconds (0: none) */
	engine_forward_fn fwd;                    /* engine_set_forward; lock */
	void *fwd_ctx;                            /* lock */
	int fwd_busy;                             /* requests running fwd; lock */
	pthread_cond_t fwd_idle;                  /* fwd_busy fell to 0; with lock */
};

/* The pool of `lineage`, opened if needed (its maps scanned), refcount
 * raised; engine_pool_put drops it (the last user closes it). */
int engine_pool_get(struct pool **out, struct engine *e, const char *lineage);
/* The same, for fsck: *rolled_back set when the open was refused because
 * the pool's files are older than the freshness record (-EUCLEAN). */
int engine_pool_get_fsck(struct pool **out, struct engine *e, const char *lineage, int *rolled_back);
void engine_pool_put(struct pool *p);
/* The pool if it is open (refcount raised), else NULL. */
struct pool *engine_pool_find(struct engine *e, const char *lineage);
/* Is a handle on map id open? */
int engine_vol_is_open(struct engine *e, const char *id);
/* The open writable volumes of p, each with its refcount raised (drop with
 * engine_vol_close); -ENOMEM leaves the ones listed so far. */
int engine_vols_of_pool(struct engine *e, struct pool *p, struct vol ***out, size_t *n);
/* Every open handle of p (read-only ones too) frozen (vol_freeze), with
 * the table locked so that none opens meanwhile; engine_pool_thaw undoes
 * both.  The handles' I/O must not need the table (format 2's does not).
 * On error (-ENOMEM) nothing is frozen or locked. */
int engine_pool_freeze(struct engine *e, struct pool *p, struct vol ***out, size_t *n);
void engine_pool_thaw(struct engine *e, struct vol **vols, size_t n);

#endif
