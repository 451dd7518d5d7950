/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the volume engine: chunk pools, chunk maps, volume I/O.
 *
 * Knows nothing of FUSE, SQL or master keys.  Both the mount daemon and
 * evfsctl drive it (only one process at a time per store: the holder of the
 * store lock).  See pool.c for the on-disk layout and volume.c for the I/O
 * path and its locks.
 *
 * Errors: 0 / byte counts on success, negative errno on failure:
 *   -ENOKEY   volume not attached (no data key in memory)
 *   -EBADMSG  a chunk failed authentication (logged with volume and index)
 *   -EUCLEAN  on-disk structure inconsistent (bad header, short data file)
 *   -EROFS    write to a read-only map (snapshot, image)
 *   -EFBIG    write beyond the volume size
 *   -EBUSY    the map is open / in use
 *   -EINVAL, -ENOMEM, -ENOSPC, -EIO, ...
 */
#ifndef EVFS_ENGINE_H
#define EVFS_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunk.h"

#define ENGINE_ID_MAX 40u             /* map ids are UUID text */
#define ENGINE_WUR __attribute__((warn_unused_result))

struct engine;
struct vol;
struct kms_dk;

typedef void (*engine_log_fn)(void *ctx, int level, const char *msg);

/* pools_dir: STORE/pools (created if missing, mode 0700). */
int engine_create(struct engine **out, const char *pools_dir, engine_log_fn log, void *log_ctx) ENGINE_WUR;
/* Pools as objects in namespace `ns` of RADOS pool `pool` of the Ceph
 * cluster that ceph.conf `conf` names, as client `client` (NULL: "admin");
 * format 2 only.  -ENOTSUP when evfs was built without librados; a failed
 * connection is librados's -errno (-ENOENT: no such pool). */
int engine_create_rados(struct engine **out, const char *conf, const char *pool, const char *ns, const char *client,
			engine_log_fn log, void *log_ctx) ENGINE_WUR;
/* Closes every pool; every vol must have been closed. */
void engine_destroy(struct engine *e);

/* Lineage ids travel as 32 hex chars; these convert. */
int engine_lineage_parse(const char *hex, uint8_t out[static CHUNK_LINEAGE_BYTES]) ENGINE_WUR;
void engine_lineage_format(const uint8_t lin[static CHUNK_LINEAGE_BYTES], char out[static 33]);
void engine_lineage_generate(uint8_t out[static CHUNK_LINEAGE_BYTES]);

/* --- pools and maps ------------------------------------------------------ */
/* Format of the pools created from now on: 2 (the default: copy-on-write
 * map trees, tree.c) or 1 (flat maps and a tag table, maps.c; for stores
 * that have not been upgraded).  Existing pools keep theirs. */
int engine_set_format(struct engine *e, int format) ENGINE_WUR;
/* Pools in RADOS are shared by every host of a store: a pool's writer
 * lock (one host at a time, pdev_rados_lock) carries `owner` (this host's
 * name, 1 to 64 characters, no spaces; default "evfs") and lasts `lease`
 * seconds past its last renewal (0: until released).  A pool held by
 * another host cannot be opened: -EBUSY, the holder named in the log. */
int engine_set_owner(struct engine *e, const char *owner, unsigned lease) ENGINE_WUR;
/* Requests between hosts (pools in RADOS): a host that has a lineage's
 * pool open runs `fn` for each request another host sends it with
 * engine_forward (fn may set *reply, malloc'd, as the answer); set before
 * pools are opened.  engine_forward: 0 with the answer, -EHOSTUNREACH if
 * nobody holds the pool or answered within timeout_ms, -ENOTSUP for local
 * pools. */
typedef void (*engine_forward_fn)(void *ctx, const void *req, size_t len, void **reply, size_t *rlen);
void engine_set_forward(struct engine *e, engine_forward_fn fn, void *ctx);
int engine_forward(struct engine *e, const char *lineage, const void *req, size_t len, unsigned timeout_ms,
		   void **reply, size_t *rlen) ENGINE_WUR;
/* Fence host `owner` off lineage's pool and break its writer lock there.
 * takeover (attach --steal): only once owner's lease ran out, -EBUSY while
 * it still renews it; else (detach --force: the operator says the host is
 * gone) at once.  1 if owner held it, 0 if not (or the pools are local),
 * -errno. */
int engine_pool_fence(struct engine *e, const char *lineage, const char *owner, int takeover) ENGINE_WUR;
/* Freshness of format 2 pools.  A pool authenticates its own files, but a
 * whole pool directory put back from an older copy is self-consistent; the
 * store keeps each pool's generation and header hash outside it (the
 * catalog) and the engine checks them at every open.  load: the recorded
 * (gen, hash), -ENOENT if none.  save: after every commit, once it is
 * durable (so the record may lag the pool, never lead it); only forward
 * unless force; it must not block on anything the engine's callers hold
 * (it runs under the pool's commit lock) and its failure only delays the
 * record.  Without ops (the default) nothing is checked. */
struct engine_fresh_ops {
	int (*load)(void *ctx, const char *lineage, uint64_t *gen, uint8_t hash[static 32]);
	int (*save)(void *ctx, const char *lineage, uint64_t gen, const uint8_t hash[static 32], int force);
};
void engine_set_fresh(struct engine *e, const struct engine_fresh_ops *ops, void *ctx);
/* Accept a format 2 pool's files as they are (after a deliberate restore of
 * an older copy): record their generation, whatever the record said.
 * 0 (also for format 1: nothing to record), or the pool's open error. */
int engine_pool_accept(struct engine *e, const char *lineage) ENGINE_WUR;
/* Create the pool directory of a new lineage (data, tags, maps/). */
int engine_pool_create(struct engine *e, const char *lineage, uint32_t chunk_size, int encrypted) ENGINE_WUR;
/* The format of a lineage's pool: 1 or 2 (1 also when it cannot be opened:
 * the format 1 paths report the error). */
int engine_pool_format(struct engine *e, const char *lineage);
/* Remove a lineage's pool; -EBUSY while maps remain or it is open. */
int engine_pool_delete(struct engine *e, const char *lineage) ENGINE_WUR;

/* New empty (all zero) map of `size` bytes. */
int engine_map_create(struct engine *e, const char *lineage, const char *id, uint64_t size) ENGINE_WUR;
/* Copy-on-write clone: dst shares every chunk of src (cost grows with the
 * chunks written, not the nominal size).  If src is open it is frozen for
 * the copy (consistent with every acknowledged write).  replace=1 replaces
 * an existing dst (rollback; dst must not be open: -EBUSY).  size 0 keeps
 * src's size; a larger size extends the clone. */
int engine_map_clone(struct engine *e, const char *lineage, const char *src_id, const char *dst_id,
		     uint64_t size, int replace) ENGINE_WUR;
/* Drop a map and the chunks only it referenced (space returned). */
int engine_map_delete(struct engine *e, const char *lineage, const char *id) ENGINE_WUR;

struct engine_map_stats {
	uint64_t size;           /* nominal bytes */
	uint64_t chunks;         /* chunks mapped (not holes) */
	uint64_t exclusive;      /* of which referenced by this map only */
	uint32_t chunk_size;
};
int engine_map_stats(struct engine *e, const char *lineage, const char *id, struct engine_map_stats *st) ENGINE_WUR;

/* Check every mapped chunk of a map against its tag (key NULL for
 * unencrypted lineages); cb is called for each bad chunk. Returns the
 * number of bad chunks, or a negative errno. */
typedef void (*engine_bad_cb)(void *ctx, uint64_t index, int err);
int engine_map_verify(struct engine *e, const char *lineage, const char *id, const struct kms_dk *dk,
		      engine_bad_cb cb, void *ctx) ENGINE_WUR;

/* --- volume handles ------------------------------------------------------ */
/* Open a handle on map `id`.  Handles are shared: opening an open id
 * returns the same vol with its refcount raised.  writable=0 gives a
 * read-only handle (snapshots, images); a writable open of a map already
 * open read-only upgrades nothing (-EROFS on write). */
int engine_vol_open(struct vol **out, struct engine *e, const char *lineage, const char *id,
		    int writable) ENGINE_WUR;
/* Find an open handle (refcount raised) or -ENOENT. */
int engine_vol_lookup(struct vol **out, struct engine *e, const char *id) ENGINE_WUR;
/* Drop one reference; the last one syncs a writable volume and frees it. */
void engine_vol_close(struct vol *v);

/* Give the handle its data key (ownership moves to the vol; NULL for an
 * unencrypted lineage).  -EALREADY if attached. */
int vol_attach(struct vol *v, struct kms_dk *dk) ENGINE_WUR;
/* Wipe the data key (waits for in-flight I/O). -ENOKEY if not attached. */
int vol_detach(struct vol *v) ENGINE_WUR;
int vol_is_attached(struct vol *v);
uint64_t vol_size(struct vol *v);
const char *vol_id(const struct vol *v);

/* I/O.  Thread-safe; different chunks proceed in parallel. Return the
 * bytes transferred (short at end of volume) or a negative errno. */
ssize_t vol_read(struct vol *v, void *buf, size_t len, uint64_t off) ENGINE_WUR;
ssize_t vol_write(struct vol *v, const void *buf, size_t len, uint64_t off) ENGINE_WUR;
/* Discard (punch hole): whole chunks drop their storage, partial edges are
 * zeroed; the range reads as zeros. */
int vol_discard(struct vol *v, uint64_t off, uint64_t len) ENGINE_WUR;
/* Make every acknowledged write durable (data, tags, map). */
int vol_sync(struct vol *v) ENGINE_WUR;
/* Grow (never shrink: -EINVAL). */
int vol_extend(struct vol *v, uint64_t new_size) ENGINE_WUR;
/* SEEK_DATA / SEEK_HOLE at chunk granularity; -ENXIO past the end. */
int64_t vol_seek(struct vol *v, uint64_t off, int whence) ENGINE_WUR;

/* Raw access for backups: copy chunk `index` ciphertext (chunk_size bytes)
 * and tag.  Returns 1 if present, 0 for a hole.  Works detached. */
int vol_chunk_load(struct vol *v, uint64_t index, uint8_t *cipher, struct chunk_tag *tag) ENGINE_WUR;
/* The same for chunks [first, first + n), n <= VOL_LOAD_MAX: ciphertext at
 * cipher + k * chunk_size and tags[k] where present[k] is 1.  Returns how
 * many are present, or -errno. */
#define VOL_LOAD_MAX 64u
int vol_chunks_load(struct vol *v, uint64_t first, uint64_t n, uint8_t *cipher, struct chunk_tag *tags,
		    uint8_t *present) ENGINE_WUR;
uint32_t vol_chunk_size(const struct vol *v);
/* Lineage bytes of the handle. Cannot fail. */
const uint8_t *vol_lineage(const struct vol *v);
/* Counters since the handle was opened (evfsctl status).  Thread-safe,
 * lock-free; cannot fail. */
struct vol_stats {
	uint64_t bytes_read, bytes_written;
	uint64_t chunk_errors;       /* chunks that failed authentication or could not be read (EIO) */
};
void vol_stats(struct vol *v, struct vol_stats *st);
/* 1 if the handle holds a data key (an attached encrypted volume). */
int vol_has_key(struct vol *v);

#endif
