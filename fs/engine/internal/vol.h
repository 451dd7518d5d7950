/* SPDX-License-Identifier: MIT */
/*
 * vol.h - struct vol, an open map with its locks and (while attached) its
 * data key (private to fs/engine/).  vol_handle.c creates, attaches and
 * freezes it; volume.c runs I/O on it.  Above maps.h and pool.h in the
 * engine's file chain; the engine table (engine.c) shares handles.
 */
#ifndef EVFS_VOL_H
#define EVFS_VOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "maps.h"
#include "tree.h"

#define VOL_STRIPES 64u
#define VOL_PENDING_BYTES (64u << 20)         /* sync once this much freed space waits */
#define VOL_PENDING_PUNCH (1ull << 63)        /* pending entry: punch the slot once freed */

struct par;
struct kms_dk;

struct vol {
	/* The engine table's fields (engine.c; protected by engine->lock). */
	struct engine *eng;
	struct vol *next;
	unsigned users;

	struct pool *pool;                        /* immutable */
	struct elog *log;                         /* immutable */
	struct par *par;                          /* crypto helpers (par.h); immutable */
	char id[ENGINE_ID_MAX];
	int writable;
	int map_fd;                               /* format 1: the map file */
	uint32_t root;                            /* format 2: the map's root record (tree.c) */
	/* The map: header then one u64 per chunk (0 hole, else slot + 1),
	 * mapped read-only; updates go through pwrite on map_fd. */
	pthread_rwlock_t lock;                    /* shared: I/O; exclusive: attach,
						     detach, extend, freeze */
	const uint64_t *map;                      /* protected by lock */
	size_t map_len;                           /* protected by lock */
	uint64_t size;                            /* protected by lock */
	uint64_t nchunks;                         /* protected by lock */
	struct kms_dk *dk;                        /* protected by lock */
	int attached;                             /* protected by lock */
	pthread_rwlock_t stripe[VOL_STRIPES];     /* chunk index % VOL_STRIPES */
	pthread_mutex_t pending_lock;
	uint64_t *pending;                        /* freed slots awaiting sync */
	size_t npending, pending_cap;             /* protected by pending_lock */
	/* Since the handle was opened (status): lock-free counters. */
	atomic_uint_fast64_t stat_read, stat_written, stat_chunk_errors;
};

/* vol_handle.c.  A handle on map `id` of pool p (the caller holds p for
 * the handle's life); log and par must outlive it. */
int vol_create(struct vol **out, struct pool *p, const char *id, int writable, struct elog *log, struct par *par);
void vol_destroy(struct vol *v);                 /* wipes the data key */
/* Hold off every reader and writer of v (vol->lock exclusive): the map
 * then holds every acknowledged write and does not change. */
void vol_freeze(struct vol *v);
void vol_thaw(struct vol *v);
/* A dup() of a writable map's fd (-EROFS for a read-only map). */
int vol_map_dup(const struct vol *v);
int vol_is_writable(const struct vol *v);
/* Replace an attached handle's data key by another reference to dk (a
 * rekey: the new generation chained to the old); v frozen by the caller. */
void vol_key_swap_frozen(struct vol *v, const struct kms_dk *dk);

/* volume.c.  Call cb(ctx, index, slot) for every mapped chunk, each under
 * its chunk stripe (shared) and the volume lock (shared), so I/O goes on;
 * map-file holes are skipped without being read.  Stops at a non-zero
 * return of cb. */
int vol_chunks_foreach(struct vol *v, int (*cb)(void *ctx, uint64_t index, uint64_t slot), void *ctx);

#endif
