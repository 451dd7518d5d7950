/* SPDX-License-Identifier: MIT */
/*
 * pool.h - one lineage's chunk pool: data, tag table, slot reference
 * counts (private to fs/engine/; see pool.c).  Below maps, volumes and the
 * engine table in the engine's file chain: it knows none of them.
 */
#ifndef EVFS_POOL_H
#define EVFS_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "chunk.h"
#include "elog.h"
#include "pdev.h"

#define POOL_HDR_BYTES 4096u
#define POOL_SEG_SHIFT 20u                    /* 2^20 tag entries a segment */
#define POOL_SEG_ENTRIES (1ull << POOL_SEG_SHIFT)
#define POOL_SEG_BYTES (POOL_SEG_ENTRIES * sizeof(struct chunk_tag))
#define POOL_MAX_SEGS 4096u                   /* 2^32 slots */
#define POOL_PENDING UINT32_MAX               /* refcount of a freed, not yet reusable slot */

struct engine;
struct kms_dk;
struct pool;
struct tree_state;
struct vol;

/* fdatasync every open writable map of the pool but `except` (installed
 * by the engine table, which alone knows the open maps). */
typedef int (*pool_maps_sync_fn)(void *ctx, struct pool *p, const struct vol *except);
/* Told of every durable commit of a format 2 pool (installed by the engine
 * table, which alone knows the store's freshness record). */
typedef void (*pool_committed_fn)(void *ctx, struct pool *p, uint64_t gen, const uint8_t hash[static 32]);

struct pool {
	/* The engine table's fields (engine.c; protected by engine->lock).
	 * Nothing below engine.c uses them. */
	struct engine *eng;
	struct pool *next;
	unsigned users;
	int closing;                              /* last user gone, files being closed: not reusable,
						     and no second instance may open them yet */
	pool_maps_sync_fn maps_sync;              /* immutable once in the table */
	void *maps_sync_ctx;
	pool_committed_fn committed;              /* immutable once in the table; may be NULL */
	void *committed_ctx;

	struct elog *log;
	const char *pools_dir;                    /* STORE/pools, for messages */
	uint8_t lineage[CHUNK_LINEAGE_BYTES];
	char lineage_hex[33];
	uint32_t chunk_size;
	unsigned chunk_shift;
	int encrypted;
	int version;                              /* format: 1 (maps.c) or 2 (tree.c); immutable */
	struct tree_state *tree;                  /* format 2: tree.c's (opened by the engine table) */
	int dir_fd, tags_fd;                      /* the pool directory; format 1's tag table */
	struct pdev *dev;                         /* the data file (format 2: and the block files) */
	/* Tag segments are mapped read-only once and never unmapped while the
	 * pool is open; readers load the pointer atomically. */
	_Atomic(const struct chunk_tag *) seg[POOL_MAX_SEGS];
	pthread_mutex_t lock;                     /* allocator state below; pool.c only */
	uint32_t *refs;                           /* per slot; protected by lock */
	uint64_t nslots;                          /* slots ever allocated; lock */
	uint64_t cap;                             /* refs capacity; lock */
	uint64_t nfree;                           /* refs == 0 in [0,nslots); lock */
	uint64_t cursor;                          /* next-fit scan start; lock */
	uint64_t released;                        /* slots freed since open or the last give-back; lock */
};

/* Lineage hex (32 lowercase hex digits) to bytes; -EINVAL if malformed. */
int pool_lineage_parse(const char *hex, uint8_t out[static CHUNK_LINEAGE_BYTES]);
/* New pool directory pools_dir/<lineage>/ with data, tags, maps/. */
int pool_files_create(const char *pools_dir, const char *lineage, uint32_t chunk_size, int encrypted);
/* Remove an empty pool's files; -EBUSY while maps remain. */
int pool_files_remove(const char *pools_dir, const char *lineage);

/* Opening a format 1 pool takes three steps: pool_open (files, header,
 * tag mappings), then the owner counts every map's references
 * (pool_ref_load, from map_dir_load_refs), then pool_refs_loaded.  A
 * format 2 pool (a `roots` file) is opened by pool_open (directory and
 * data file only) and then tree_open.  pools_dir and log must outlive the
 * pool. */
int pool_open(struct pool **out, const char *pools_dir, const char *lineage, struct elog *log);
/* A format 2 pool on a device opened elsewhere (RADOS: pdev_rados_open);
 * the pool owns dev from the call on, failed or not.  Then tree_open. */
int pool_open_dev(struct pool **out, struct pdev *dev, const char *pools_dir, const char *lineage, struct elog *log);
/* One reference of a map to slot, while loading; -ERANGE (logged) for a
 * slot beyond the tag table. */
int pool_ref_load(struct pool *p, uint64_t slot);
void pool_refs_loaded(struct pool *p);
/* The pool's last user is gone: punch every free slot, so space freed by
 * overwrites goes back to the filesystem without an fsck.  Only for a pool
 * whose counts were loaded (never on an open that failed). */
void pool_give_back(struct pool *p);
void pool_close(struct pool *p);

/* Slots and reference counts (pool->lock inside; never blocks on I/O). */
int pool_alloc(struct pool *p, uint64_t n, uint64_t *slots);
void pool_release_new(struct pool *p, const uint64_t *slots, uint64_t n);
int pool_unref(struct pool *p, uint64_t slot);   /* returns 1 if now unreferenced (PENDING) */
int pool_ref(struct pool *p, uint64_t slot);
uint32_t pool_refcount(struct pool *p, uint64_t slot);
uint64_t pool_nslots(struct pool *p);
void pool_free_pending(struct pool *p, const uint64_t *slots, size_t n);
/* fsck reclaim: mark up to max consecutive free slots from `first` for
 * which want() holds PENDING (the allocator skips them); returns how many. */
uint64_t pool_claim_run(struct pool *p, uint64_t first, uint64_t max, int (*want)(void *ctx, uint64_t slot),
			void *ctx);

/* Data and tags. */
const struct chunk_tag *pool_tag(struct pool *p, uint64_t slot);
int pool_tags_store(struct pool *p, uint64_t slot, const struct chunk_tag *tags, uint64_t n);
int pool_chunk_load(struct pool *p, uint64_t slot, uint8_t *cipher);   /* -EUCLEAN if short */
/* Chunks k < n whose slot1[k] (slot + 1) is not 0, into cipher + k *
 * chunk_size: one device read per run of consecutive slots (on RADOS one
 * chunk at a time is a round trip each).  ok[k] says which arrived whole;
 * returns the first error (-EUCLEAN if short), 0 if none. */
int pool_chunks_load(struct pool *p, const uint64_t *slot1, size_t n, uint8_t *cipher, uint8_t *ok);
int pool_chunk_store(struct pool *p, uint64_t slot, const uint8_t *cipher);  /* not synced */
/* Seal / open one chunk of this pool: under dk for an encrypted pool, as
 * checksummed plaintext otherwise (dk unused).  -EBADMSG on a bad chunk. */
int pool_chunk_seal(const struct pool *p, const struct kms_dk *dk, uint64_t index,
		    const uint8_t nonce[static CHUNK_NONCE_BYTES], const uint8_t *plain, uint8_t *out,
		    struct chunk_tag *tag);
int pool_chunk_open(const struct pool *p, const struct kms_dk *dk, uint64_t index, const uint8_t *in,
		    uint8_t *out, const struct chunk_tag *tag);
void pool_punch(struct pool *p, uint64_t slot);
int pool_punch_run(struct pool *p, uint64_t first, uint64_t count);   /* slots first..first+count-1 */
int pool_sync(struct pool *p);
/* Every open writable map of the pool (but `except`) made durable: after
 * that, slots only an older map state referenced may be reused. */
int pool_maps_sync(struct pool *p, const struct vol *except);
/* pool_maps_sync, then punch and free `slots` (which are PENDING). */
void pool_punch_free(struct pool *p, const uint64_t *slots, size_t n);
/* fsck: check the tag table header of a pool's tags file (-EUCLEAN if bad). */
int pool_header_check(int tags_fd, const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint32_t *chunk_size,
		      int *encrypted);

#endif
