/* SPDX-License-Identifier: MIT */
/*
 * tree.h - format 2 chunk maps: copy-on-write trees of map pages with
 * persisted reference counts (private to fs/engine/; see tree.c).  Above
 * pool.h and blk.h in the engine's file chain, beside maps.h (format 1).
 */
#ifndef EVFS_TREE_H
#define EVFS_TREE_H

#include "blk.h"
#include "pool.h"

#define TREE_MAGIC "EVFSPL2"
#define TREE_FANOUT 64u
#define TREE_SHIFT 6u
#define TREE_MAX_DEPTH 10u      /* 2^60 chunks: any size at 4 KiB chunks */
#define TREE_ROOT_NONE UINT32_MAX

/* A leaf entry: where chunk i lives and how it was sealed.  The nonce and
 * tag are the chunk's own (format 1 kept them in the tags table), so an
 * older copy of the chunk no longer matches its entry. */
struct tree_ent {
	uint64_t slot1;              /* slot + 1; 0: hole (little-endian) */
	uint8_t nonce[CHUNK_NONCE_BYTES];
	uint8_t mac[CHUNK_TAG_BYTES];
	uint32_t dkgen;              /* data key generation that sealed it */
	uint32_t flags;
	uint64_t reserved;
};
_Static_assert(sizeof(struct tree_ent) == 64, "leaf entry");

/* An interior entry: a child page and the hash of its content. */
struct tree_ptr {
	uint64_t page1;              /* page + 1; 0: everything below is a hole */
	uint8_t hash[32];
	uint8_t reserved[24];
};
_Static_assert(sizeof(struct tree_ptr) == 64, "interior entry");

/* Pool state of format 2 (hangs off struct pool). */
struct tree_state;

/* New pool directory pools_dir/<lineage>/ in format 2. */
int tree_pool_create(const char *pools_dir, const char *lineage, uint32_t chunk_size, int encrypted);
/* An empty format 2 pool (its header) written to a newly created device
 * that holds the block files; the caller publishes it (pdev_*_publish). */
int tree_pool_init(struct pdev *dev, const char *lineage, uint32_t chunk_size, int encrypted);
/* 1 if the pool directory (dir_fd) holds a format 2 pool. */
int tree_pool_is_v2(int dir_fd);
/* After pool_open() of a format 2 pool: header, journal replay, counts. */
int tree_open(struct pool *p);
void tree_close(struct pool *p);
/* Header generation and hash (BLAKE2b-256 of the header block), as of the
 * last commit. */
void tree_fresh(struct pool *p, uint64_t *gen, uint8_t hash[static 32]);

/* Maps (pool->lock taken inside).  A map is a root record, by index. */
int tree_root_find(struct pool *p, const char *id, uint32_t *ri);
int tree_root_add(struct pool *p, const char *id, uint64_t size, uint32_t *ri);
/* dst (new, or replaced if replace) shares src's tree: O(1). */
int tree_root_clone(struct pool *p, uint32_t src, const char *dst_id, uint64_t size, int replace);
/* Drop a map: its pages and chunks lose a reference (freed at 0). */
int tree_root_drop(struct pool *p, uint32_t ri);
uint64_t tree_root_size(struct pool *p, uint32_t ri);
int tree_extend(struct pool *p, uint32_t ri, uint64_t size);
/* cb(ctx, id) for every map of the pool. */
int tree_root_list(struct pool *p, int (*cb)(void *ctx, const char *id), void *ctx);

/* Entries of chunks [first, first+n) of map ri, n within one leaf. */
int tree_get(struct pool *p, uint32_t ri, uint64_t first, uint64_t n, struct tree_ent *out);
/* Store entries (slot1 0: hole); old slots lose a reference.  The new
 * slots come from tree_slots_alloc (counted 1 each). */
int tree_set(struct pool *p, uint32_t ri, uint64_t first, uint64_t n, const struct tree_ent *ents);
/* Compare and set, for a rekey racing the volume's writers: each entry k
 * of [first, first+n) (n within one leaf) becomes ents[k] only if it still
 * equals expect[k]; bit k of *done says it did. */
int tree_cas(struct pool *p, uint32_t ri, uint64_t first, uint64_t n, const struct tree_ent *expect,
	     const struct tree_ent *ents, uint64_t *done);
/* Slots named once more: a new slot stored in several maps (a rekey), or
 * a format 1 slot by the maps being built (the count table grows). */
int tree_slots_ref(struct pool *p, const uint64_t *slots, size_t n);
int tree_slots_alloc(struct pool *p, uint64_t n, uint64_t *slots);
void tree_slots_release_new(struct pool *p, const uint64_t *slots, uint64_t n);
/* First index >= from that is mapped (want_data) or a hole; nchunks if none. */
uint64_t tree_seek(struct pool *p, uint32_t ri, uint64_t from, uint64_t nchunks, int want_data);
/* cb(ctx, index, entry) for every mapped chunk, leaf by leaf (pool->lock
 * dropped between leaves).  Stops at a non-zero return. */
int tree_foreach(struct pool *p, uint32_t ri, int (*cb)(void *ctx, uint64_t index, const struct tree_ent *e),
		 void *ctx);
/* Chunks mapped, and of those referenced through this map only. */
int tree_stats(struct pool *p, uint32_t ri, uint64_t *chunks, uint64_t *exclusive);
/* Make every change so far durable (one journal commit). */
int tree_commit(struct pool *p);
/* Bytes of metadata modified and of chunks freed since the last commit. */
uint64_t tree_dirty_bytes(struct pool *p);

/* --- checks (engine_fsck.c) ------------------------------------------- */
enum tree_chk_what {
	TREE_CHK_PAGE_HASH,          /* a page fails its parent's hash (index: page) */
	TREE_CHK_PAGE_RANGE,         /* a pointer beyond the pages file (index: page) */
	TREE_CHK_PAGE_COUNT,         /* stored page count (count) differs from the pointers */
	TREE_CHK_SLOT_RANGE,         /* an entry names a slot beyond the count table */
	TREE_CHK_SLOT_BEYOND,        /* an entry names a slot beyond the data file */
	TREE_CHK_SLOT_FREE,          /* a referenced slot counted free (would be reused) */
	TREE_CHK_SLOT_COUNT,         /* stored slot count (count) differs from the entries */
};
struct tree_chk_issue {
	enum tree_chk_what what;
	const char *map;             /* the map reached through, or NULL */
	uint64_t index;              /* chunk index, or page number */
	uint64_t slot;
	uint64_t count;
};
/* Commit, then walk every map with the pool locked: every page checked
 * against its parent's hash (ignoring what was checked before), page and
 * slot counts recomputed and compared with the stored ones.  *refs (caller
 * frees) gets each slot's stored count (0: free), *nslots their number,
 * *maps the maps.  Returns the number of issues or a negative errno. */
int tree_check(struct pool *p, void (*cb)(void *ctx, const struct tree_chk_issue *is), void *ctx, uint32_t **refs,
	       uint64_t *nslots, uint64_t *maps);
/* Punch every free slot for which has_data(ctx, slot) (space a crash or a
 * failed punch left behind); *n gets the number punched. */
int tree_reclaim(struct pool *p, uint64_t nslots, int (*has_data)(void *ctx, uint64_t slot), void *ctx,
		 uint64_t *n);

/* Punch every free slot: the space of chunks overwritten since the open
 * (kept for reuse, see tree_set) goes back when the pool closes. */
int tree_give_back(struct pool *p);

/* --- format 1 to 2 (engine_upgrade.c) --------------------------------- */
/* A format 2 pool built beside format 1 pool p1's files, under temporary
 * names (*.new): a pool shell sharing p1's directory and data file, on
 * which tree_root_add and tree_set build the maps. */
int tree_build_begin(struct pool *p1, struct pool **out);
/* keep: commit the new files and rename them into place, `roots` last:
 * from then on the directory is a format 2 pool.  !keep: remove them.
 * Frees p2 either way. */
int tree_build_end(struct pool *p2, int keep);

/* A chunk_tag (for the chunk cipher) from a leaf entry. */
void tree_ent_tag(const struct tree_ent *e, uint64_t index, struct chunk_tag *t);

#endif
