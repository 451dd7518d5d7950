/* SPDX-License-Identifier: MIT */
/*
 * engine_fsck.h - consistency checks and repairs of chunk pools and maps
 * (private to fs/; see engine_fsck.c).  Knows nothing of the catalog: the
 * store layer (store_fsck.c) decides which maps and pools are orphans.
 *
 * The checks never write.  They work on a pool the engine has open (the
 * mount's) as well as on one it has not: an open pool is compared with the
 * engine's in-memory reference counts, with its writable volumes frozen for
 * the moment of the comparison.
 *
 * Errors: negative errno as in engine.h; -ENOENT for a missing pool or map.
 */
#ifndef EVFS_ENGINE_FSCK_H
#define EVFS_ENGINE_FSCK_H

#include <stdint.h>

#include "engine.h"

enum engine_fsck_what {
	ENGINE_FSCK_POOL_FILES,     /* data / tags / maps missing or unopenable (err) */
	ENGINE_FSCK_POOL_HEADER,    /* tag table header damaged or of another lineage */
	ENGINE_FSCK_POOL_TAGS_LEN,  /* tag table length not header + n * 64 */
	ENGINE_FSCK_MAP_HEADER,     /* map header damaged, other lineage, or id mismatch */
	ENGINE_FSCK_MAP_SHORT,      /* map file shorter than its nominal size needs */
	ENGINE_FSCK_MAP_RANGE,      /* entry points beyond the tag table (slot) */
	ENGINE_FSCK_SLOT_BEYOND,    /* entry points at a slot beyond the data file's end */
	ENGINE_FSCK_SLOT_EMPTY,     /* entry points at a slot with no data or an empty tag (freed) */
	ENGINE_FSCK_SLOT_INDEX,     /* the slot's tag records another chunk index (count = that index) */
	ENGINE_FSCK_SLOT_FREE,      /* open pool: referenced slot counted free (would be reused) */
	ENGINE_FSCK_REFCOUNT,       /* open pool: in-memory count (count) differs from the maps' */
	ENGINE_FSCK_TMP_MAP,        /* a clone interrupted before its rename (.tmp-<map>.map) */
	ENGINE_FSCK_CHUNK_BAD,      /* chunk failed authentication / could not be read (err) */
	ENGINE_FSCK_PAGE_HASH,      /* format 2: a map page fails its parent's hash (slot = page) */
	ENGINE_FSCK_PAGE_COUNT,     /* format 2: a page's stored count (count) differs from its pointers */
	ENGINE_FSCK_ROLLED_BACK,    /* format 2: the pool's files are older than the catalog's record */
};

struct engine_fsck_issue {
	enum engine_fsck_what what;
	const char *lineage;
	const char *map;            /* map id, or NULL for pool-level issues */
	uint64_t index;             /* chunk index in the map */
	uint64_t slot;
	uint64_t count;             /* see enum */
	int err;                    /* negative errno where meaningful, else 0 */
	uint32_t chunk_size;        /* of the pool (0 if unknown) */
};
typedef void (*engine_fsck_cb)(void *ctx, const struct engine_fsck_issue *is);

struct engine_pool_report {
	uint32_t chunk_size;
	int encrypted;
	int usable;                 /* header and files fine: maps can be checked */
	uint64_t slots;             /* tag table entries */
	uint64_t data_bytes;        /* data file length */
	uint64_t maps;              /* map files with a good header */
	uint64_t referenced;        /* slots referenced by at least one map */
	uint64_t leaked;            /* unreferenced slots still holding data */
	uint64_t leaked_bytes;
	int open;                   /* the engine had the pool open (mount) */
	int format;                 /* 1 or 2 (0: not known, the pool could not be read) */
};

/* Lineage directories under pools/ (cb gets each name; non-zero stops).
 * Returns the number listed or a negative errno. */
int engine_pool_list(struct engine *e, int (*cb)(void *ctx, const char *lineage), void *ctx) ENGINE_WUR;
/* Map files of a pool: cb(ctx, id, tmp) for "<id>.map" (tmp 0) and for
 * interrupted clones ".tmp-<id>.map" (tmp 1). */
int engine_map_list(struct engine *e, const char *lineage, int (*cb)(void *ctx, const char *id, int tmp),
		    void *ctx) ENGINE_WUR;

/* Check the pool of `lineage`: header, tag table and data file lengths,
 * every map's header and entries, and the reference counts; each problem
 * goes to cb, totals to *r.  Leaked slots (no map references them but they
 * hold data: space not given back) are counted in r, not reported one by
 * one; they are harmless (free for reuse) and engine_pool_reclaim() gives
 * their space back.  Never writes.  Returns the number of problems
 * reported, or a negative errno (-ENOENT: no such pool). */
int engine_pool_check(struct engine *e, const char *lineage, engine_fsck_cb cb, void *ctx,
		      struct engine_pool_report *r) ENGINE_WUR;

/* Authenticate every mapped chunk of map `id` with dk (NULL for an
 * unencrypted lineage; -ENOKEY if one is needed).  An open volume is read
 * chunk by chunk under its locks, so the mount keeps running.  Each bad
 * chunk goes to cb (ENGINE_FSCK_CHUNK_BAD, err -EBADMSG or -EUCLEAN/-EIO).
 * Returns the number of bad chunks or a negative errno. */
int engine_map_check(struct engine *e, const char *lineage, const char *id, const struct kms_dk *dk,
		     engine_fsck_cb cb, void *ctx) ENGINE_WUR;

/* 1 if pool `lineage` holds map `id` (a map file in format 1, a root
 * record in format 2), 0 if not (or the pool is missing or unreadable). */
int engine_map_exists(struct engine *e, const char *lineage, const char *id);
/* --- repairs -------------------------------------------------------------- */
/* Punch the data of every slot no map references (leaked); *slots gets the
 * number punched.  Opens the pool (fails if a map of it is unreadable). */
int engine_pool_reclaim(struct engine *e, const char *lineage, uint64_t *slots) ENGINE_WUR;
/* Make chunk `index` of map `id` a hole (reads as zeros): the entry is
 * cleared and synced, then the slot is released.  Works on open maps
 * (volumes in use, read-only snapshots).  Returns 1 if the entry was
 * mapped, 0 if it already was a hole, or a negative errno. */
int engine_map_quarantine(struct engine *e, const char *lineage, const char *id, uint64_t index) ENGINE_WUR;
/* Remove the leftover of an interrupted clone (.tmp-<id>.map). */
int engine_map_tmp_remove(struct engine *e, const char *lineage, const char *id) ENGINE_WUR;

/* Convert the format 1 pool of `lineage` to format 2 in place (see
 * engine_upgrade.c); *maps gets the maps converted.  step (may be NULL) is
 * told the bytes of map files converted so far and their total: once with
 * done 0 before the first map, then after each.  Returns 0, 1 if the pool
 * already was format 2, -EBUSY if the engine has it open (a volume
 * attached), or a negative errno (the pool is then unchanged). */
typedef void (*engine_step_fn)(void *ctx, uint64_t done, uint64_t total);
int engine_pool_upgrade(struct engine *e, const char *lineage, uint64_t *maps, engine_step_fn step,
			void *step_ctx) ENGINE_WUR;
/* Data-key rotation of a format 2 lineage (engine_rekey.c, R33).  dk is
 * the new generation, chained (kms_dk_chain) to the one it replaces.
 * engine_lineage_set_key first gives every attached handle of the lineage
 * dk (waiting for their I/O), so that writes seal under it; then
 * engine_lineage_rekey re-seals every chunk of every map that names
 * another generation, while the maps stay in use, telling step its
 * progress.  Returns 0 with st->left the chunks still stale (those that
 * failed authentication: st->bad), -EPROTO for a format 1 pool, or a
 * negative errno; what was committed stays done, and a rerun resumes. */
struct engine_rekey_stats {
	uint64_t chunks;             /* chunks re-sealed (each once, however many maps share it) */
	uint64_t resealed;           /* entries moved to the new generation */
	uint64_t raced;              /* entries a writer replaced first */
	uint64_t bad;                /* chunks that could not be opened */
	uint64_t left;               /* entries of an older generation at the end */
	unsigned passes;
};
int engine_lineage_set_key(struct engine *e, const char *lineage, const struct kms_dk *dk) ENGINE_WUR;
int engine_lineage_rekey(struct engine *e, const char *lineage, const struct kms_dk *dk, engine_step_fn step,
			 void *step_ctx, struct engine_rekey_stats *st) ENGINE_WUR;
/* Entries of every map of the lineage sealed by a generation other than
 * gen (0 after a complete rekey to gen). */
int engine_lineage_key_scan(struct engine *e, const char *lineage, uint32_t gen, uint64_t *stale) ENGINE_WUR;
/* Words for an issue kind ("map entry points beyond the tag table"). */
const char *engine_fsck_what_str(enum engine_fsck_what w);

#endif
