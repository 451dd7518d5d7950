/* SPDX-License-Identifier: MIT */
/* engine_int.h - structures shared by pool.c, volume.c, vol_handle.c and engine_fsck.c (private to fs/). */
#ifndef EVFS_ENGINE_INT_H
#define EVFS_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"

#define POOL_HDR_BYTES 4096u
#define POOL_SEG_SHIFT 20u                    /* 2^20 tag entries a segment */
#define POOL_SEG_ENTRIES (1ull << POOL_SEG_SHIFT)
#define POOL_SEG_BYTES (POOL_SEG_ENTRIES * sizeof(struct chunk_tag))
#define POOL_MAX_SEGS 4096u                   /* 2^32 slots */
#define POOL_PENDING UINT32_MAX               /* refcount of a freed, not yet reusable slot */
#define MAP_HDR_BYTES 4096u
#define VOL_STRIPES 64u
#define VOL_PENDING_SYNC 16384u               /* sync after this many deferred frees */
#define VOL_PENDING_PUNCH (1ull << 63)        /* pending entry: punch the slot once freed */

struct par;

struct engine {
	char *dir;                                /* STORE/pools */
	engine_log_fn log;
	void *log_ctx;
	pthread_mutex_t lock;                     /* protects the two lists below */
	struct pool *pools;                       /* open pools */
	struct vol *vols;                         /* open volume handles */
	atomic_uint log_budget;                   /* rate limit of chunk error logs */
	struct par *par;                          /* crypto helpers for large requests (par.h) */
};

struct pool {
	struct engine *eng;
	struct pool *next;                        /* protected by eng->lock */
	unsigned users;                           /* protected by eng->lock */
	uint8_t lineage[CHUNK_LINEAGE_BYTES];
	char lineage_hex[33];
	uint32_t chunk_size;
	unsigned chunk_shift;
	int encrypted;
	int dir_fd, data_fd, tags_fd;
	/* Tag segments are mapped read-only once and never unmapped while the
	 * pool is open; readers load the pointer atomically. */
	_Atomic(const struct chunk_tag *) seg[POOL_MAX_SEGS];
	pthread_mutex_t lock;                     /* allocator state below */
	uint32_t *refs;                           /* per slot; protected by lock */
	uint64_t nslots;                          /* slots ever allocated; lock */
	uint64_t cap;                             /* refs capacity; lock */
	uint64_t nfree;                           /* refs == 0 in [0,nslots); lock */
	uint64_t cursor;                          /* next-fit scan start; lock */
};

struct vol {
	struct engine *eng;
	struct vol *next;                         /* protected by eng->lock */
	unsigned users;                           /* protected by eng->lock */
	struct pool *pool;
	char id[ENGINE_ID_MAX];
	int writable;
	int map_fd;
	/* The map: header then one u64 per chunk (0 hole, else slot + 1),
	 * mapped read-only; updates go through pwrite on map_fd. */
	pthread_rwlock_t lock;                    /* shared: I/O; exclusive: attach,
						     detach, extend, clone */
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
};

/* pool.c internals used by volume.c */
int pool_alloc(struct pool *p, uint64_t n, uint64_t *slots);
void pool_release_new(struct pool *p, const uint64_t *slots, uint64_t n);
int pool_unref(struct pool *p, uint64_t slot);   /* returns 1 if now unreferenced */
void pool_free_pending(struct pool *p, const uint64_t *slots, size_t n);
void pool_punch(struct pool *p, uint64_t slot);
void pool_punch_run(struct pool *p, uint64_t first, uint64_t count);   /* slots first..first+count-1 */
const struct chunk_tag *pool_tag(struct pool *p, uint64_t slot);
int pool_tags_store(struct pool *p, uint64_t slot, const struct chunk_tag *tags, uint64_t n);
int pool_get(struct pool **out, struct engine *e, const char *lineage);
void pool_put(struct pool *p);
void pool_close_final(struct pool *p);
int pool_ref(struct pool *p, uint64_t slot);
uint32_t pool_refcount(struct pool *p, uint64_t slot);
int pool_sync(struct pool *p);
/* volume.c: fdatasync the map of every open writable volume of the pool
 * (but `except`); then slots that only an older map state referenced may
 * be reused.  pool_punch_free: that, then punch and free `slots` (PENDING). */
int pool_maps_sync(struct pool *p, const struct vol *except);
void pool_punch_free(struct pool *p, const uint64_t *slots, size_t n);
/* fsck: check the tag table header of a pool's tags file (-EUCLEAN if bad). */
int pool_header_check(int tags_fd, const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint32_t *chunk_size,
		      int *encrypted);
int map_ref_cb(void *ctx, uint64_t index, uint64_t slot);
void engine_logf(struct engine *e, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void engine_chunk_error(struct engine *e, const char *vol, uint64_t index, int err);

#endif
