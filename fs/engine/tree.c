// SPDX-License-Identifier: MIT
/*
 * tree.c - format 2 chunk maps: a copy-on-write tree of map pages per map,
 * shared between maps, with reference counts kept on disk.
 *
 * Format 1 (maps.c) gives every map a flat file of slot numbers, so a
 * snapshot copies the whole map and opening a pool reads every map of the
 * lineage to count references.  Here a map is a root record pointing at a
 * tree of 4 KiB pages (64 entries each: leaves name a chunk's slot with its
 * nonce and tag, interior pages name child pages with the BLAKE2b-256 hash
 * of their content), and trees share pages:
 *
 *   snapshot, image, clone   a new root record naming the same root page,
 *                            whose count goes up by one: O(1);
 *   write                    the path from the root to the leaf is made
 *                            private first: a page counted more than once
 *                            is copied (its children each gain one count,
 *                            it loses one), a page counted once is changed
 *                            in place (Rodeh's "shadowing" B-trees, as in
 *                            Btrfs);
 *   delete, rollback         the root loses a count; a page or slot that
 *                            reaches zero is freed and its children lose
 *                            one: the walk stops at shared pages, so it
 *                            costs what it frees.
 *
 * The counts (u32 per slot in `srefs`, per page in `prefs`), the pages and
 * the roots (a header block, then 32 records of 128 bytes a block) are
 * block files that change together through blk.c's journal.  A commit
 * (tree_commit: every fsync, detach, close) hashes the modified pages
 * bottom-up into their parents and the root records, bumps the header's
 * generation, and writes one journal record.  Opening a pool reads its
 * header and replays the journal: nothing scans a map.
 *
 * Slots and pages freed by a change must not be reused before the commit
 * that stops referencing them is durable (else a crash could leave the
 * durable tree naming reused space).  Until then their count reads
 * PENDING in memory; the committed image says 0; after the commit they
 * are free, and freed slots are punched.
 *
 * Every function here takes pool->lock itself; it covers the blocks, the
 * counts and the allocators.  Under it run memory work, page faults, the
 * check of a page on its first use (one BLAKE2b of 4 KiB) and, on a
 * device that cannot map (RADOS), the first read of each 4 MiB segment of
 * a block file (blk.c): once per segment per open, and every lookup of
 * the pool waits for it.  A lookup of a warm tree holds it for a few hash
 * table probes and one copy of the entries.  Commits are serialised by
 * their own mutex and do their I/O without pool->lock.
 */
#include "tree.h"

#include "err.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#define REFS_PER_BLK (BLK_SIZE / 4u)
#define ROOTS_PER_BLK (BLK_SIZE / sizeof(struct tree_root))
#define PENDING UINT32_MAX

struct tree_hdr {
	char magic[8];
	uint32_t version;            /* 2 */
	uint32_t chunk_size;
	uint8_t lineage[CHUNK_LINEAGE_BYTES];
	uint32_t encrypted;
	uint32_t root_blocks;        /* root record blocks in use (after block 0) */
	uint64_t gen;                /* commits so far */
	uint64_t nslots, nfree_slots;
	uint64_t npages, nfree_pages;
	uint8_t roots_hash[32];      /* BLAKE2b-256 of the root record blocks */
	uint8_t pad[128];
	uint8_t sum[32];             /* BLAKE2b-256 of the bytes before it */
};

struct tree_root {
	char id[ENGINE_ID_MAX];
	uint64_t page1;              /* root page + 1; 0: all holes */
	uint8_t hash[32];            /* of the root page */
	uint64_t size;               /* nominal bytes */
	uint32_t depth;              /* levels, leaf included */
	uint32_t used;
	uint8_t pad[32];
};
_Static_assert(sizeof(struct tree_root) == 128, "root record");

struct vec {
	uint64_t *v;
	size_t n, cap;
};

struct tree_state {
	struct blkset bs;
	struct tree_hdr hdr;         /* pool->lock; as of the open transaction */
	uint8_t fresh_hash[32];      /* of the last committed header block */
	uint64_t fresh_gen;
	pthread_mutex_t commit_lock;
	uint64_t scur, pcur;         /* next-fit cursors */
	struct vec sfree, pfree;     /* freed in the open transaction (PENDING) */
	struct vec skeep;            /* of sfree: freed by an overwrite, kept (not punched) for reuse */
	int failed;                  /* allocation failure inside a change */
	int failed_once;             /* path_mut: a page failed its check */
	uint8_t *ok;                 /* pages checked against their parent's hash (bit per page) */
	uint64_t okbits;
	int bad_logged;
	struct pool *pool;
};

static inline struct tree_state *TS(struct pool *p)
{
	return p->tree;
}

static int vec_push(struct vec *v, uint64_t x)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? 2 * v->cap : 256;
		uint64_t *n = realloc(v->v, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}

static void hash32(const void *buf, size_t len, uint8_t out[32])
{
	crypto_generichash(out, 32, buf, len, NULL, 0);
}

/* ========================= authenticated pages ========================= */

static int page_ok(const struct tree_state *ts, uint64_t pg)
{
	return pg < ts->okbits && (ts->ok[pg / 8] >> (pg % 8) & 1);
}

/* A page this process wrote or checked: it needs no check again. */
static void page_mark_ok(struct tree_state *ts, uint64_t pg)
{
	if (pg >= ts->okbits) {
		uint64_t bits = (pg + 1 > ts->okbits * 2 ? pg + 1 : ts->okbits * 2) + 4095;
		uint8_t *n = realloc(ts->ok, (size_t)(bits / 8));

		if (!n)
			return;                  /* checked again next time */
		memset(n + ts->okbits / 8, 0, (size_t)(bits / 8 - ts->okbits / 8));
		ts->ok = n;
		ts->okbits = bits / 8 * 8;
	}
	ts->ok[pg / 8] |= (uint8_t)(1u << (pg % 8));
}

/* Page pg, whose parent (interior entry or root record) names it with
 * hash `want`: read and, on first use, checked against that hash, so a
 * page altered or rolled back on disk is refused (NULL, -EUCLEAN in *err)
 * instead of being read as entries or laundered by the next commit. */
static const uint8_t *page_read(struct tree_state *ts, uint64_t pg, const uint8_t *want, int *err)
{
	const uint8_t *b = blk_get(&ts->bs, BLK_PAGES, pg);
	uint8_t h[32];

	if (!b) {
		*err = -EIO;
		return NULL;
	}
	if (page_ok(ts, pg))
		return b;
	hash32(b, BLK_SIZE, h);
	if (sodium_memcmp(h, want, 32) != 0) {
		if (!ts->bad_logged++)
			elog_printf(ts->pool->log, LOG_ERR, "pool %s: map page %" PRIu64 " of %s/%s/pages does not match "
				    "its parent's hash (altered or rolled back on disk); the chunks below it are refused: "
				    "restore the pool from a copy", ts->pool->lineage_hex, pg, ts->pool->pools_dir,
				    ts->pool->lineage_hex);
		*err = -EUCLEAN;
		return NULL;
	}
	page_mark_ok(ts, pg);
	return b;
}

static unsigned depth_for(uint64_t size, uint32_t chunk_size)
{
	uint64_t n = chunk_count(size, chunk_size);
	unsigned d = 1;

	while (d < TREE_MAX_DEPTH && (1ull << (TREE_SHIFT * d)) < n)
		d++;
	return d;
}

void tree_ent_tag(const struct tree_ent *e, uint64_t index, struct chunk_tag *t)
{
	memset(t, 0, sizeof(*t));
	memcpy(t->nonce, e->nonce, sizeof(t->nonce));
	memcpy(t->mac, e->mac, sizeof(t->mac));
	t->index_le = htole64(index);
	t->dkgen_le = e->dkgen;      /* both little-endian */
}

/* ============================ counts =================================== */

static uint32_t ref_get(struct tree_state *ts, enum blk_file f, uint64_t i)
{
	const uint8_t *b = blk_get(&ts->bs, f, i / REFS_PER_BLK);
	uint32_t v;

	if (!b)
		return PENDING;              /* unreadable: never taken for free */
	memcpy(&v, b + (i % REFS_PER_BLK) * 4, 4);
	return le32toh(v);
}

static int ref_put(struct tree_state *ts, enum blk_file f, uint64_t i, uint32_t v)
{
	uint8_t *b = blk_mut(&ts->bs, f, i / REFS_PER_BLK);

	if (!b) {
		ts->failed = -ENOMEM;
		return -ENOMEM;
	}
	v = htole32(v);
	memcpy(b + (i % REFS_PER_BLK) * 4, &v, 4);
	return 0;
}

static void ref_inc(struct tree_state *ts, enum blk_file f, uint64_t i)
{
	uint32_t r = ref_get(ts, f, i);

	if (r != PENDING && r != PENDING - 1)
		(void)ref_put(ts, f, i, r + 1);
}

/* One count less; at zero the slot or page is PENDING until the commit. */
static int ref_dec(struct tree_state *ts, enum blk_file f, uint64_t i)
{
	uint32_t r = ref_get(ts, f, i);

	if (r == 0 || r == PENDING)
		return 0;                    /* damaged counts: leak rather than double free */
	if (r > 1)
		return ref_put(ts, f, i, r - 1), 0;
	if (ref_put(ts, f, i, PENDING) < 0)
		return 0;
	if (vec_push(f == BLK_SREFS ? &ts->sfree : &ts->pfree, i) < 0)
		ts->failed = -ENOMEM;        /* stays PENDING: leaked until fsck */
	return 1;
}

/* Next-fit over counts [0, *count): n free ones, else grow the file. */
static int alloc_n(struct tree_state *ts, enum blk_file f, uint64_t *count, uint64_t *nfree, uint64_t *cursor,
		   uint64_t n, uint64_t *out)
{
	uint64_t got = 0;
	int err = 0;

	for (uint64_t scanned = 0; got < n && *nfree > 0 && scanned < *count; scanned++) {
		uint64_t i = *cursor;

		*cursor = i + 1 >= *count ? 0 : i + 1;
		if (ref_get(ts, f, i) == 0) {
			if ((err = ref_put(ts, f, i, 1)) < 0)
				break;
			(*nfree)--;
			out[got++] = i;
		}
	}
	while (!err && got < n) {
		if ((err = ref_put(ts, f, *count, 1)) < 0)
			break;
		out[got++] = (*count)++;
	}
	if (err) {
		for (uint64_t i = 0; i < got; i++)
			(void)ref_put(ts, f, out[i], 0);
		*nfree += got;       /* approximately: grown ones counted free, harmless */
	}
	return err;
}

static int page_alloc(struct tree_state *ts, uint64_t *pg)
{
	return alloc_n(ts, BLK_PREFS, &ts->hdr.npages, &ts->hdr.nfree_pages, &ts->pcur, 1, pg);
}

/* A page reached zero: its children lose one count each. */
static void page_unref(struct tree_state *ts, uint64_t pg, const uint8_t *want, unsigned level)
{
	const uint8_t *b;
	int err;

	/* A page that fails its check names nothing we trust: its
	 * children keep their counts (a leak fsck reports). */
	if (!page_read(ts, pg, want, &err) || !ref_dec(ts, BLK_PREFS, pg))
		return;
	for (unsigned i = 0; i < TREE_FANOUT; i++) {
		uint64_t c;
		uint8_t h[32];

		b = blk_get(&ts->bs, BLK_PAGES, pg);   /* the recursion may have remapped */
		if (!b) {
			ts->failed = -EIO;
			return;
		}
		memcpy(&c, b + i * 64, 8);   /* slot1 / page1 alike */
		memcpy(h, b + i * 64 + 8, 32);
		c = le64toh(c);
		if (!c)
			continue;
		if (level)
			page_unref(ts, c - 1, h, level - 1);
		else
			(void)ref_dec(ts, BLK_SREFS, c - 1);
	}
}

/* ============================ roots ==================================== */

static struct tree_root *root_mut(struct tree_state *ts, uint32_t ri)
{
	uint8_t *b = blk_mut(&ts->bs, BLK_ROOTS, 1 + ri / ROOTS_PER_BLK);

	if (!b) {
		ts->failed = -ENOMEM;
		return NULL;
	}
	return (struct tree_root *)(b + (ri % ROOTS_PER_BLK) * sizeof(struct tree_root));
}

static const struct tree_root *root_get(struct tree_state *ts, uint32_t ri)
{
	const uint8_t *b = blk_get(&ts->bs, BLK_ROOTS, 1 + ri / ROOTS_PER_BLK);

	return b ? (const struct tree_root *)(b + (ri % ROOTS_PER_BLK) * sizeof(struct tree_root)) : NULL;
}

static uint32_t nroots(const struct tree_state *ts)
{
	return ts->hdr.root_blocks * (uint32_t)ROOTS_PER_BLK;
}

static int root_find_locked(struct tree_state *ts, const char *id, uint32_t *ri)
{
	for (uint32_t i = 0; i < nroots(ts); i++) {
		const struct tree_root *r = root_get(ts, i);

		if (r && r->used && strncmp(r->id, id, ENGINE_ID_MAX) == 0) {
			*ri = i;
			return 0;
		}
	}
	return -ENOENT;
}

static int root_new_locked(struct tree_state *ts, const char *id, uint32_t *ri)
{
	uint32_t i;
	struct tree_root *r;

	for (i = 0; i < nroots(ts); i++) {
		const struct tree_root *o = root_get(ts, i);

		if (o && !o->used)
			break;
	}
	if (i == nroots(ts))
		ts->hdr.root_blocks++;
	r = root_mut(ts, i);
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->used = 1;
	*ri = i;
	return 0;
}

int tree_root_find(struct pool *p, const char *id, uint32_t *ri)
{
	int err;

	pthread_mutex_lock(&p->lock);
	err = root_find_locked(TS(p), id, ri);
	pthread_mutex_unlock(&p->lock);
	return err;
}

int tree_root_add(struct pool *p, const char *id, uint64_t size, uint32_t *ri)
{
	struct tree_state *ts = TS(p);
	struct tree_root *r;
	int err;

	if (strlen(id) >= ENGINE_ID_MAX)
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	err = root_find_locked(ts, id, ri) == 0 ? -EEXIST : root_new_locked(ts, id, ri);
	if (!err && (r = root_mut(ts, *ri))) {
		r->size = htole64(size);
		r->depth = htole32(depth_for(size, p->chunk_size));
	}
	pthread_mutex_unlock(&p->lock);
	return err ? err : ts->failed;
}

static void root_release_tree(struct tree_state *ts, const struct tree_root *r)
{
	uint64_t pg = le64toh(r->page1);

	if (pg)
		page_unref(ts, pg - 1, r->hash, le32toh(r->depth) - 1);
}

int tree_root_clone(struct pool *p, uint32_t src, const char *dst_id, uint64_t size, int replace)
{
	struct tree_state *ts = TS(p);
	struct tree_root s, *d;
	uint32_t di;
	int err = 0;

	pthread_mutex_lock(&p->lock);
	{
		const struct tree_root *r = root_get(ts, src);

		if (!r || !r->used)
			err = -ENOENT;
		else
			s = *r;
	}
	if (!err) {
		if (root_find_locked(ts, dst_id, &di) == 0) {
			if (!replace)
				err = -EEXIST;
			else if (di == src)
				err = -EINVAL;
		} else {
			err = replace ? -ENOENT : root_new_locked(ts, dst_id, &di);
		}
	}
	if (!err && le64toh(s.page1))
		ref_inc(ts, BLK_PREFS, le64toh(s.page1) - 1);   /* before the old tree goes */
	if (!err && replace) {
		const struct tree_root *o = root_get(ts, di);
		struct tree_root old = *o;

		root_release_tree(ts, &old);
	}
	if (!err && (d = root_mut(ts, di))) {
		*d = s;
		memset(d->id, 0, sizeof(d->id));
		snprintf(d->id, sizeof(d->id), "%s", dst_id);
		d->used = 1;
		if (size > le64toh(s.size))
			d->size = htole64(size);
	}
	pthread_mutex_unlock(&p->lock);
	if (!err && size > le64toh(s.size))
		err = tree_extend(p, di, size);
	return err ? err : ts->failed;
}

int tree_root_drop(struct pool *p, uint32_t ri)
{
	struct tree_state *ts = TS(p);
	struct tree_root *r;
	int err = 0;

	pthread_mutex_lock(&p->lock);
	r = root_mut(ts, ri);
	if (!r || !r->used) {
		err = r ? -ENOENT : -ENOMEM;
	} else {
		struct tree_root old = *r;

		memset(r, 0, sizeof(*r));
		root_release_tree(ts, &old);
	}
	pthread_mutex_unlock(&p->lock);
	return err ? err : ts->failed;
}

uint64_t tree_root_size(struct pool *p, uint32_t ri)
{
	const struct tree_root *r;
	uint64_t s = 0;

	pthread_mutex_lock(&p->lock);
	r = root_get(TS(p), ri);
	if (r)
		s = le64toh(r->size);
	pthread_mutex_unlock(&p->lock);
	return s;
}

int tree_root_list(struct pool *p, int (*cb)(void *ctx, const char *id), void *ctx)
{
	struct tree_state *ts = TS(p);
	char id[ENGINE_ID_MAX];
	int err = 0;

	for (uint32_t i = 0; !err; i++) {
		const struct tree_root *r;
		int have = 0;

		pthread_mutex_lock(&p->lock);
		if (i >= nroots(ts)) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		r = root_get(ts, i);
		if (r && r->used) {
			memcpy(id, r->id, sizeof(id));
			id[sizeof(id) - 1] = 0;
			have = 1;
		}
		pthread_mutex_unlock(&p->lock);
		if (have)
			err = cb(ctx, id);
	}
	return err;
}

int tree_extend(struct pool *p, uint32_t ri, uint64_t size)
{
	struct tree_state *ts = TS(p);
	struct tree_root *r;
	unsigned want = depth_for(size, p->chunk_size);
	int err = 0;

	pthread_mutex_lock(&p->lock);
	r = root_mut(ts, ri);
	if (!r) {
		err = -ENOMEM;
	} else if (size < le64toh(r->size)) {
		err = -EINVAL;
	} else {
		/* Each new level is a page whose first child is the old root. */
		while (!err && le32toh(r->depth) < want) {
			uint64_t pg;
			uint8_t *b;

			if (le64toh(r->page1)) {
				if ((err = page_alloc(ts, &pg)) < 0)
					break;
				b = blk_mut(&ts->bs, BLK_PAGES, pg);
				if (!b) {
					err = -ENOMEM;
					break;
				}
				page_mark_ok(ts, pg);
				memset(b, 0, BLK_SIZE);
				memcpy(b, &r->page1, 8);
				memcpy(b + 8, r->hash, 32);
				r->page1 = htole64(pg + 1);
			}
			r->depth = htole32(le32toh(r->depth) + 1);
		}
		if (!err)
			r->size = htole64(size);
	}
	pthread_mutex_unlock(&p->lock);
	return err ? err : ts->failed;
}

/* ============================ the tree ================================= */

static unsigned child_of(uint64_t index, unsigned level)
{
	return (unsigned)(index >> (TREE_SHIFT * level)) & (TREE_FANOUT - 1);
}

static int get_locked(struct tree_state *ts, uint32_t ri, uint64_t first, uint64_t n, struct tree_ent *out)
{
	const struct tree_root *r = root_get(ts, ri);
	const uint8_t *want;
	uint64_t pg;
	unsigned level;
	int err = 0;

	memset(out, 0, n * sizeof(*out));
	if (!r)
		return -ENOENT;
	pg = le64toh(r->page1);
	want = r->hash;
	level = le32toh(r->depth);
	while (pg && level-- > 0) {
		const uint8_t *b = page_read(ts, pg - 1, want, &err);
		const struct tree_ptr *c;

		if (!b)
			return err;
		if (level == 0) {
			memcpy(out, b + child_of(first, 0) * sizeof(struct tree_ent), n * sizeof(*out));
			return 0;
		}
		c = (const struct tree_ptr *)b + child_of(first, level);
		pg = le64toh(c->page1);
		want = c->hash;
	}
	return 0;
}

int tree_get(struct pool *p, uint32_t ri, uint64_t first, uint64_t n, struct tree_ent *out)
{
	int err;

	pthread_mutex_lock(&p->lock);
	err = get_locked(TS(p), ri, first, n, out);
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* The leaf holding `index`, made private and modifiable: every page on
 * the path that is shared is copied, every hole gets a fresh page. */
static uint8_t *path_mut(struct tree_state *ts, uint32_t ri, uint64_t index)
{
	struct tree_root *r = root_mut(ts, ri);
	uint8_t *ptr, *b = NULL;
	unsigned level;
	int err = 0;

	if (!r)
		return NULL;
	ptr = (uint8_t *)&r->page1;
	for (level = le32toh(r->depth); level-- > 0;) {
		uint64_t pg, cur;

		memcpy(&cur, ptr, 8);
		cur = le64toh(cur);
		/* ptr + 8: the hash beside page1, in a root record and in an
		 * interior entry alike. */
		if (cur && !page_read(ts, cur - 1, ptr + 8, &err)) {
			ts->failed_once = err;
			return NULL;
		}
		if (!cur || ref_get(ts, BLK_PREFS, cur - 1) != 1) {
			const uint8_t *src;

			if (page_alloc(ts, &pg) < 0)
				return NULL;
			b = blk_mut(&ts->bs, BLK_PAGES, pg);
			if (!b)
				return NULL;
			page_mark_ok(ts, pg);
			if (!cur) {
				memset(b, 0, BLK_SIZE);
			} else {
				/* Shadow a shared page: the copy's children gain
				 * a parent, the original loses one. */
				src = blk_get(&ts->bs, BLK_PAGES, cur - 1);
				memcpy(b, src, BLK_SIZE);
				for (unsigned i = 0; i < TREE_FANOUT; i++) {
					uint64_t c;

					memcpy(&c, b + i * 64, 8);
					c = le64toh(c);
					if (c)
						ref_inc(ts, level ? BLK_PREFS : BLK_SREFS, c - 1);
				}
				(void)ref_dec(ts, BLK_PREFS, cur - 1);
			}
			pg = htole64(pg + 1);
			memcpy(ptr, &pg, 8);
		} else {
			b = blk_mut(&ts->bs, BLK_PAGES, cur - 1);
			if (!b)
				return NULL;
		}
		if (level)
			ptr = b + child_of(index, level) * sizeof(struct tree_ptr);
	}
	return b;
}

/* Store entries [idx, idx + run), within one leaf, with pool->lock held. */
static int set_run_locked(struct tree_state *ts, uint32_t ri, uint64_t idx, uint64_t run, const struct tree_ent *ents)
{
	struct tree_ent cur[TREE_FANOUT];
	uint8_t *leaf;
	int changed = 0, err = get_locked(ts, ri, idx, run, cur);

	/* A discard of a hole leaves the tree as it is. */
	for (uint64_t j = 0; j < run && !err && !changed; j++)
		changed = memcmp(&cur[j], &ents[j], sizeof(cur[j])) != 0;
	if (err || !changed)
		return err;
	ts->failed_once = 0;
	leaf = path_mut(ts, ri, idx);
	if (!leaf)
		return ts->failed ? ts->failed : ts->failed_once ? ts->failed_once : -ENOMEM;
	for (uint64_t j = 0; j < run; j++) {
		struct tree_ent *e = (struct tree_ent *)leaf + child_of(idx + j, 0);
		uint64_t old = le64toh(e->slot1);

		*e = ents[j];
		/* An overwritten chunk's slot is soon taken by another write:
		 * punching it would cost a discard now and an allocation then.
		 * Holes and dropped maps give their space back. */
		if (old && old != le64toh(e->slot1) && ref_dec(ts, BLK_SREFS, old - 1) && e->slot1 &&
		    vec_push(&ts->skeep, old - 1) < 0)
			ts->skeep.n = 0;   /* out of memory: punch them all */
	}
	return 0;
}

int tree_set(struct pool *p, uint32_t ri, uint64_t first, uint64_t n, const struct tree_ent *ents)
{
	struct tree_state *ts = TS(p);
	int err = 0;

	pthread_mutex_lock(&p->lock);
	for (uint64_t k = 0; k < n && !err;) {
		uint64_t idx = first + k, run = TREE_FANOUT - (idx & (TREE_FANOUT - 1));

		if (run > n - k)
			run = n - k;
		err = set_run_locked(ts, ri, idx, run, ents + k);
		k += run;
	}
	pthread_mutex_unlock(&p->lock);
	return err ? err : ts->failed;
}

int tree_cas(struct pool *p, uint32_t ri, uint64_t first, uint64_t n, const struct tree_ent *expect,
	     const struct tree_ent *ents, uint64_t *done)
{
	struct tree_state *ts = TS(p);
	struct tree_ent want[TREE_FANOUT];
	int err;

	*done = 0;
	if (!n || n > TREE_FANOUT - (first & (TREE_FANOUT - 1)))
		return -EINVAL;
	pthread_mutex_lock(&p->lock);
	err = get_locked(ts, ri, first, n, want);
	for (uint64_t j = 0; j < n && !err; j++)
		if (!memcmp(&want[j], &expect[j], sizeof(want[j]))) {
			want[j] = ents[j];
			*done |= 1ull << j;
		}
	if (!err && *done)
		err = set_run_locked(ts, ri, first, n, want);
	pthread_mutex_unlock(&p->lock);
	if (err)
		*done = 0;
	return err ? err : ts->failed;
}

int tree_slots_alloc(struct pool *p, uint64_t n, uint64_t *slots)
{
	struct tree_state *ts = TS(p);
	int err;

	pthread_mutex_lock(&p->lock);
	err = alloc_n(ts, BLK_SREFS, &ts->hdr.nslots, &ts->hdr.nfree_slots, &ts->scur, n, slots);
	pthread_mutex_unlock(&p->lock);
	return err;
}

void tree_slots_release_new(struct pool *p, const uint64_t *slots, uint64_t n)
{
	struct tree_state *ts = TS(p);

	pthread_mutex_lock(&p->lock);
	for (uint64_t i = 0; i < n; i++)
		(void)ref_dec(ts, BLK_SREFS, slots[i]);   /* PENDING until the commit: never written durably */
	pthread_mutex_unlock(&p->lock);
}

/* First index >= from under page pg (level `level`, covering base...). */
static int seek_rec(struct tree_state *ts, uint64_t pg1, const uint8_t *want, unsigned level, uint64_t base,
		    uint64_t from, int want_data, uint64_t *out)
{
	uint64_t span = 1ull << (TREE_SHIFT * level);     /* chunks per child */
	const uint8_t *b;
	int err;

	if (!pg1) {
		if (want_data)
			return 0;
		*out = from > base ? from : base;
		return 1;
	}
	b = page_read(ts, pg1 - 1, want, &err);
	if (!b) {
		/* Unreadable: call it data, so the read there reports it. */
		*out = from > base ? from : base;
		return 1;
	}
	for (unsigned i = 0; i < TREE_FANOUT; i++) {
		uint64_t cb = base + i * span, c;
		uint8_t h[32];

		if (cb + span <= from)
			continue;
		memcpy(&c, b + i * 64, 8);
		c = le64toh(c);
		if (level == 0) {
			if ((c != 0) == (want_data != 0)) {
				*out = cb;
				return 1;
			}
			continue;
		}
		memcpy(h, b + i * 64 + 8, 32);
		if (seek_rec(ts, c, h, level - 1, cb, from, want_data, out))
			return 1;
		b = blk_get(&ts->bs, BLK_PAGES, pg1 - 1);
	}
	return 0;
}

uint64_t tree_seek(struct pool *p, uint32_t ri, uint64_t from, uint64_t nchunks, int want_data)
{
	struct tree_state *ts = TS(p);
	const struct tree_root *r;
	uint64_t at = nchunks;

	pthread_mutex_lock(&p->lock);
	r = root_get(ts, ri);
	if (r && !seek_rec(ts, le64toh(r->page1), r->hash, le32toh(r->depth) - 1, 0, from, want_data, &at))
		at = nchunks;
	pthread_mutex_unlock(&p->lock);
	return at < nchunks ? at : nchunks;
}

int tree_foreach(struct pool *p, uint32_t ri, int (*cb)(void *ctx, uint64_t index, const struct tree_ent *e),
		 void *ctx)
{
	uint64_t n = chunk_count(tree_root_size(p, ri), p->chunk_size), idx = 0;
	struct tree_ent ents[TREE_FANOUT];
	int err = 0;

	while (!err && (idx = tree_seek(p, ri, idx, n, 1)) < n) {
		uint64_t leaf = idx & ~(uint64_t)(TREE_FANOUT - 1), cnt = n - leaf < TREE_FANOUT ? n - leaf : TREE_FANOUT;

		err = tree_get(p, ri, leaf, cnt, ents);
		for (uint64_t j = idx - leaf; j < cnt && !err; j++)
			if (ents[j].slot1)
				err = cb(ctx, leaf + j, &ents[j]);
		idx = leaf + cnt;
	}
	return err;
}

/* Exclusive: reached through pages counted once and itself counted once. */
static void stats_rec(struct tree_state *ts, uint64_t pg1, const uint8_t *want, unsigned level, int shared,
		      uint64_t *chunks, uint64_t *excl)
{
	int err;
	const uint8_t *b = page_read(ts, pg1 - 1, want, &err);

	shared |= ref_get(ts, BLK_PREFS, pg1 - 1) != 1;
	for (unsigned i = 0; b && i < TREE_FANOUT; i++) {
		uint64_t c;

		memcpy(&c, b + i * 64, 8);
		c = le64toh(c);
		if (!c)
			continue;
		if (level) {
			uint8_t h[32];

			memcpy(h, b + i * 64 + 8, 32);
			stats_rec(ts, c, h, level - 1, shared, chunks, excl);
			b = blk_get(&ts->bs, BLK_PAGES, pg1 - 1);
		} else {
			(*chunks)++;
			*excl += !shared && ref_get(ts, BLK_SREFS, c - 1) == 1;
		}
	}
}

int tree_stats(struct pool *p, uint32_t ri, uint64_t *chunks, uint64_t *exclusive)
{
	struct tree_state *ts = TS(p);
	const struct tree_root *r;

	*chunks = *exclusive = 0;
	pthread_mutex_lock(&p->lock);
	r = root_get(ts, ri);
	if (r && le64toh(r->page1))
		stats_rec(ts, le64toh(r->page1), r->hash, le32toh(r->depth) - 1, 0, chunks, exclusive);
	pthread_mutex_unlock(&p->lock);
	return r ? 0 : -ENOENT;
}

/* ============================= checks ================================== */

struct walk {
	struct tree_state *ts;
	uint32_t *pcount, *scount;
	uint8_t *seen;
	uint64_t npages, nslots, data_slots;
	const char *map;
	void (*cb)(void *ctx, const struct tree_chk_issue *is);
	void *ctx;
	int issues;
};

static void walk_issue(struct walk *w, enum tree_chk_what what, uint64_t index, uint64_t slot, uint64_t count)
{
	struct tree_chk_issue is = { .what = what, .map = w->map, .index = index, .slot = slot, .count = count };

	w->issues++;
	w->cb(w->ctx, &is);
}

/* One pointer to page pg1 (0: hole) with hash `want`, covering chunks
 * from `base`; the page's own entries are walked once however many
 * parents share it. */
static void walk_page(struct walk *w, uint64_t pg1, const uint8_t *want, unsigned level, uint64_t base)
{
	uint64_t pg = pg1 - 1, span = 1ull << (TREE_SHIFT * level);
	const uint8_t *b;
	uint8_t h[32], copy[BLK_SIZE];

	if (!pg1)
		return;
	if (pg >= w->npages) {
		walk_issue(w, TREE_CHK_PAGE_RANGE, pg, 0, w->npages);
		return;
	}
	if (w->pcount[pg] < UINT32_MAX - 2)
		w->pcount[pg]++;
	if (w->seen[pg / 8] >> (pg % 8) & 1)
		return;
	w->seen[pg / 8] |= (uint8_t)(1u << (pg % 8));
	b = blk_get(&w->ts->bs, BLK_PAGES, pg);
	if (b)
		hash32(b, BLK_SIZE, h);
	/* A page changed since the last commit (by a writer fsck did not
	 * freeze) is memory, not disk: its parent's hash is not yet due. */
	if (!b || (sodium_memcmp(h, want, 32) != 0 && !blk_is_mod(&w->ts->bs, BLK_PAGES, pg))) {
		walk_issue(w, TREE_CHK_PAGE_HASH, pg, 0, 0);
		return;
	}
	memcpy(copy, b, BLK_SIZE);       /* the recursion may remap */
	for (unsigned i = 0; i < TREE_FANOUT; i++) {
		uint64_t c;

		memcpy(&c, copy + i * 64, 8);
		c = le64toh(c);
		if (level) {
			walk_page(w, c, copy + i * 64 + 8, level - 1, base + i * span);
			continue;
		}
		if (!c)
			continue;
		if (c - 1 >= w->nslots) {
			walk_issue(w, TREE_CHK_SLOT_RANGE, base + i, c - 1, w->nslots);
			continue;
		}
		if (c - 1 >= w->data_slots)
			walk_issue(w, TREE_CHK_SLOT_BEYOND, base + i, c - 1, 0);
		if (w->scount[c - 1] < UINT32_MAX - 2)
			w->scount[c - 1]++;
	}
}

int tree_check(struct pool *p, void (*cb)(void *ctx, const struct tree_chk_issue *is), void *ctx, uint32_t **refs,
	       uint64_t *nslots, uint64_t *maps)
{
	struct tree_state *ts = TS(p);
	struct walk w = { .ts = ts, .cb = cb, .ctx = ctx };
	uint64_t dsize;
	char id[ENGINE_ID_MAX];
	int err = tree_commit(p);

	*refs = NULL;
	*nslots = *maps = 0;
	if (err)
		return err;
	pthread_mutex_lock(&ts->commit_lock);
	pthread_mutex_lock(&p->lock);
	w.npages = ts->hdr.npages;
	w.nslots = ts->hdr.nslots;
	w.data_slots = pdev_size(p->dev, PDEV_DATA, &dsize) == 0 ? dsize >> p->chunk_shift : 0;
	w.pcount = calloc(w.npages + 1, sizeof(*w.pcount));
	w.scount = calloc(w.nslots + 1, sizeof(*w.scount));
	w.seen = calloc(w.npages / 8 + 1, 1);
	if (!w.pcount || !w.scount || !w.seen) {
		err = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < nroots(ts); i++) {
		const struct tree_root *r = root_get(ts, i);

		if (!r || !r->used)
			continue;
		memcpy(id, r->id, sizeof(id));
		id[sizeof(id) - 1] = 0;
		w.map = id;
		(*maps)++;
		walk_page(&w, le64toh(r->page1), r->hash, le32toh(r->depth) - 1, 0);
		r = NULL;
	}
	w.map = NULL;
	for (uint64_t pg = 0; pg < w.npages; pg++) {
		uint32_t stored = ref_get(ts, BLK_PREFS, pg);

		if (stored != w.pcount[pg])
			walk_issue(&w, TREE_CHK_PAGE_COUNT, pg, 0, stored);
	}
	for (uint64_t s = 0; s < w.nslots; s++) {
		uint32_t stored = ref_get(ts, BLK_SREFS, s);

		if (w.scount[s] && (stored == 0 || stored == PENDING))
			walk_issue(&w, TREE_CHK_SLOT_FREE, 0, s, stored);
		else if (stored != w.scount[s])
			walk_issue(&w, TREE_CHK_SLOT_COUNT, 0, s, stored);
		w.scount[s] = stored == PENDING ? UINT32_MAX : stored;
	}
	*refs = w.scount;
	*nslots = w.nslots;
	w.scount = NULL;
	err = w.issues;
out:
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&ts->commit_lock);
	free(w.pcount);
	free(w.scount);
	free(w.seen);
	return err;
}

int tree_reclaim(struct pool *p, uint64_t nslots, int (*has_data)(void *ctx, uint64_t slot), void *ctx,
		 uint64_t *n)
{
	struct tree_state *ts = TS(p);
	int err = 0;

	*n = 0;
	/* Under the pool lock: no writer can take a slot while it is
	 * punched.  A repair, rare: the I/O it holds up is short. */
	pthread_mutex_lock(&p->lock);
	for (uint64_t s = 0; !err && s < nslots && s < ts->hdr.nslots; s++) {
		if (ref_get(ts, BLK_SREFS, s) != 0 || !has_data(ctx, s))
			continue;
		err = pool_punch_run(p, s, 1);
		if (!err)
			(*n)++;
	}
	pthread_mutex_unlock(&p->lock);
	return err;
}

int tree_give_back(struct pool *p)
{
	struct tree_state *ts = TS(p);
	uint64_t s = 0, n;
	int err = 0;

	pthread_mutex_lock(&p->lock);
	n = ts->hdr.nslots;
	while (!err && s < n) {
		uint64_t run = 0;

		while (s + run < n && ref_get(ts, BLK_SREFS, s + run) == 0)
			run++;
		if (run)
			err = pool_punch_run(p, s, run);
		s += run + 1;
	}
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* ============================ commits ================================== */

/* Hash a modified page after its modified children (interior pointers get
 * their children's new hashes). */
static int rehash(struct tree_state *ts, uint64_t pg, unsigned level, uint8_t out[32])
{
	uint8_t *b = blk_mut(&ts->bs, BLK_PAGES, pg);

	if (!b)
		return -ENOMEM;
	for (unsigned i = 0; level && i < TREE_FANOUT; i++) {
		struct tree_ptr *c = (struct tree_ptr *)b + i;
		uint64_t c1 = le64toh(c->page1);

		if (c1 && blk_is_mod(&ts->bs, BLK_PAGES, c1 - 1) && rehash(ts, c1 - 1, level - 1, c->hash) < 0)
			return -ENOMEM;
	}
	hash32(b, BLK_SIZE, out);
	return 0;
}

static void header_seal(struct tree_hdr *h)
{
	hash32(h, offsetof(struct tree_hdr, sum), h->sum);
}

/* The on-disk header for this commit: counts little-endian, PENDING
 * entries counted free (they are, once the commit is durable). */
/* BLAKE2b-256 over the root record blocks: the header binds them. */
static void roots_digest(struct tree_state *ts, uint8_t out[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	for (uint32_t b = 0; b < ts->hdr.root_blocks; b++) {
		const uint8_t *blk = blk_get(&ts->bs, BLK_ROOTS, 1 + b);

		crypto_generichash_update(&st, blk ? blk : (const uint8_t *)"", blk ? BLK_SIZE : 0);
	}
	crypto_generichash_final(&st, out, 32);
}

static void header_image(struct tree_state *ts, struct tree_hdr *out)
{
	*out = ts->hdr;
	roots_digest(ts, out->roots_hash);
	out->version = htole32(2);
	out->chunk_size = htole32(ts->hdr.chunk_size);
	out->encrypted = htole32(ts->hdr.encrypted);
	out->root_blocks = htole32(ts->hdr.root_blocks);
	out->gen = htole64(ts->hdr.gen);
	out->nslots = htole64(ts->hdr.nslots);
	out->nfree_slots = htole64(ts->hdr.nfree_slots + ts->sfree.n);
	out->npages = htole64(ts->hdr.npages);
	out->nfree_pages = htole64(ts->hdr.nfree_pages + ts->pfree.n);
	header_seal(out);
}

static void pending_to_zero(uint8_t *img)
{
	for (unsigned i = 0; i < REFS_PER_BLK; i++) {
		uint32_t v;

		memcpy(&v, img + i * 4, 4);
		if (v == PENDING)
			memset(img + i * 4, 0, 4);
	}
}

/* Slots/pages of a durable commit: free now (their overlay copy, if any,
 * says PENDING; the home already says 0). */
static void pending_release(struct tree_state *ts, enum blk_file f, const struct vec *v)
{
	for (size_t i = 0; i < v->n; i++) {
		uint64_t b = v->v[i] / REFS_PER_BLK;

		if (blk_get(&ts->bs, f, b) && ref_get(ts, f, v->v[i]) == PENDING) {
			uint8_t *m = (uint8_t *)blk_get(&ts->bs, f, b);

			/* Only an overlay copy can say PENDING; change it in
			 * place without making it modified again. */
			memset(m + (v->v[i] % REFS_PER_BLK) * 4, 0, 4);
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int tree_commit(struct pool *p)
{
	struct tree_state *ts = TS(p);
	struct tree_hdr img;
	struct vec sfree, pfree, skeep;
	struct blk_txn t;
	uint64_t fresh_gen = 0;
	uint8_t fresh_hash[32] = { 0 };
	int err = 0, committed;

	pthread_mutex_lock(&ts->commit_lock);
	pthread_mutex_lock(&p->lock);
	err = ts->failed;
	for (uint32_t i = 0; !err && i < nroots(ts); i++) {
		const struct tree_root *r = root_get(ts, i);
		uint64_t pg = r ? le64toh(r->page1) : 0;
		uint8_t h[32];

		if (!pg || !r->used || !blk_is_mod(&ts->bs, BLK_PAGES, pg - 1))
			continue;
		err = rehash(ts, pg - 1, le32toh(r->depth) - 1, h);
		if (!err) {
			struct tree_root *m = root_mut(ts, i);

			if (m)
				memcpy(m->hash, h, 32);
			else
				err = -ENOMEM;
		}
	}
	if (err || !ts->bs.dirty) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&ts->commit_lock);
		return err;
	}
	ts->hdr.gen++;
	header_image(ts, &img);
	{
		uint8_t *b = blk_mut(&ts->bs, BLK_ROOTS, 0);

		if (!b)
			err = -ENOMEM;
		else {
			memset(b, 0, BLK_SIZE);
			memcpy(b, &img, sizeof(img));
		}
	}
	if (!err)
		err = blk_capture(&ts->bs, ts->hdr.gen, &t);
	if (err) {
		ts->hdr.gen--;
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&ts->commit_lock);
		return err;
	}
	for (size_t i = 0; i < t.n; i++) {
		enum blk_file f = (enum blk_file)(t.keys[i] >> 56);

		if (f == BLK_SREFS || f == BLK_PREFS)
			pending_to_zero(t.img + i * BLK_SIZE);
	}
	sfree = ts->sfree;
	pfree = ts->pfree;
	skeep = ts->skeep;
	memset(&ts->skeep, 0, sizeof(ts->skeep));
	memset(&ts->sfree, 0, sizeof(ts->sfree));
	memset(&ts->pfree, 0, sizeof(ts->pfree));
	pthread_mutex_unlock(&p->lock);

	/* The chunks the new tree names must be durable before it is. */
	err = pdev_sync(p->dev, PDEV_DATA);
	if (!err)
		err = blk_commit_io(&ts->bs, &t);
	/* Give freed chunks' space back, one call per run, while their
	 * counts still say PENDING: no writer can have taken one yet. */
	if (t.committed && sfree.n) {
		uint64_t *v = malloc(sfree.n * sizeof(*v));
		size_t n = 0;

		qsort(sfree.v, sfree.n, sizeof(uint64_t), cmp_u64);
		if (skeep.n) /* qsort's base may not be NULL, even for 0 items */
			qsort(skeep.v, skeep.n, sizeof(uint64_t), cmp_u64);
		for (size_t i = 0, k = 0; v && i < sfree.n; i++) {      /* sfree minus skeep */
			while (k < skeep.n && skeep.v[k] < sfree.v[i])
				k++;
			if (k == skeep.n || skeep.v[k] != sfree.v[i])
				v[n++] = sfree.v[i];
		}
		for (size_t i = 0, run; v && i < n; i += run) {
			for (run = 1; i + run < n && v[i + run] == v[i] + run; run++)
				;
			(void)pool_punch_run(p, v[i], run);
		}
		free(v);
	}

	pthread_mutex_lock(&p->lock);
	blk_commit_done(&ts->bs, &t);
	if (t.committed) {
		pending_release(ts, BLK_SREFS, &sfree);
		pending_release(ts, BLK_PREFS, &pfree);
		ts->hdr.nfree_slots += sfree.n;
		ts->hdr.nfree_pages += pfree.n;
		ts->fresh_gen = ts->hdr.gen;
		for (size_t i = 0; i < t.n; i++)
			if (t.keys[i] == ((uint64_t)BLK_ROOTS << 56))
				hash32(t.img + i * BLK_SIZE, BLK_SIZE, ts->fresh_hash);
		fresh_gen = ts->fresh_gen;
		memcpy(fresh_hash, ts->fresh_hash, 32);
	} else {
		/* Not durable: the frees wait for the next commit. */
		ts->hdr.gen--;
		for (size_t i = 0; i < sfree.n; i++)
			(void)vec_push(&ts->sfree, sfree.v[i]);
		for (size_t i = 0; i < pfree.n; i++)
			(void)vec_push(&ts->pfree, pfree.v[i]);
		for (size_t i = 0; i < skeep.n; i++)
			(void)vec_push(&ts->skeep, skeep.v[i]);
		sfree.n = 0;
	}
	pthread_mutex_unlock(&p->lock);
	committed = t.committed;
	blk_txn_free(&t);                  /* (zeroes t) */
	/* Durable now: tell the freshness record (still under commit_lock,
	 * so the records go out in generation order). */
	if (committed && p->committed)
		p->committed(p->committed_ctx, p, fresh_gen, fresh_hash);
	if (err && committed)
		elog_printf(p->log, LOG_ERR, "pool %s: a committed change could not be written to its home files (%s); "
			    "the journal holds it and the next open replays it", p->lineage_hex, evfs_strerror(err));
	free(sfree.v);
	free(pfree.v);
	free(skeep.v);
	pthread_mutex_unlock(&ts->commit_lock);
	return committed ? 0 : err;
}

uint64_t tree_dirty_bytes(struct pool *p)
{
	uint64_t n;

	/* Modified metadata, and space freed that only a commit gives back
	 * (overwrites without fsync must not fill the disk). */
	pthread_mutex_lock(&p->lock);
	n = TS(p)->bs.dirty * BLK_SIZE + (uint64_t)TS(p)->sfree.n * p->chunk_size;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void tree_fresh(struct pool *p, uint64_t *gen, uint8_t hash[static 32])
{
	pthread_mutex_lock(&p->lock);
	*gen = TS(p)->fresh_gen;
	memcpy(hash, TS(p)->fresh_hash, 32);
	pthread_mutex_unlock(&p->lock);
}

/* ============================ pool files =============================== */

int tree_pool_is_v2(int dir_fd)
{
	return faccessat(dir_fd, "roots", F_OK, 0) == 0;
}

int tree_pool_init(struct pdev *dev, const char *lineage, uint32_t chunk_size, int encrypted)
{
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	struct tree_state ts;
	struct tree_hdr img;
	struct blk_txn t;
	uint8_t *b;
	int err;

	if (pool_lineage_parse(lineage, lin) < 0 || !chunk_size_valid(chunk_size))
		return -EINVAL;
	memset(&ts, 0, sizeof(ts));
	err = blk_open(&ts.bs, dev, 1, NULL);
	if (err)
		return err;
	memcpy(ts.hdr.magic, TREE_MAGIC, 8);
	ts.hdr.chunk_size = chunk_size;
	ts.hdr.encrypted = encrypted ? 1 : 0;
	memcpy(ts.hdr.lineage, lin, sizeof(lin));
	ts.hdr.gen = 1;
	header_image(&ts, &img);
	b = blk_mut(&ts.bs, BLK_ROOTS, 0);
	err = b ? 0 : -ENOMEM;
	if (b)
		memcpy(b, &img, sizeof(img));
	if (!err)
		err = blk_capture(&ts.bs, 1, &t);
	if (!err) {
		err = blk_commit_io(&ts.bs, &t);
		blk_txn_free(&t);
	}
	if (!err)
		err = blk_checkpoint(&ts.bs);
	blk_close(&ts.bs);
	return err;
}

int tree_pool_create(const char *pools_dir, const char *lineage, uint32_t chunk_size, int encrypted)
{
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	struct pdev *dev;
	char path[4096];
	int dfd = -1, fd, err;

	if (pool_lineage_parse(lineage, lin) < 0 || !chunk_size_valid(chunk_size))
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/%s", pools_dir, lineage);
	if (mkdir(path, 0700) < 0)
		return -errno;
	dfd = open(pools_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		err = -errno;
		if (dfd >= 0)
			close(dfd);
		return err;
	}
	close(dfd);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = openat(dfd, "data", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		close(dfd);
		return err;
	}
	close(fd);
	/* The block files, written under temporary names; `roots` appearing
	 * is what makes the directory a pool. */
	err = pdev_local_open(&dev, dfd, path, PDEV_BIT(PDEV_DATA) | PDEV_BLOCK_FILES, 1, ".new");
	if (!err) {
		err = tree_pool_init(dev, lineage, chunk_size, encrypted);
		pdev_close(dev);
	}
	if (!err)
		err = pdev_local_publish(dfd, ".new");
	close(dfd);
	return err;
}

/* ============================ upgrade ================================== */

int tree_build_begin(struct pool *p1, struct pool **out)
{
	struct pool *p2 = calloc(1, sizeof(*p2));
	struct tree_state *ts = calloc(1, sizeof(*ts));
	int err;

	*out = NULL;
	if (!p2 || !ts) {
		free(p2);
		free(ts);
		return -ENOMEM;
	}
	pdev_local_unpublished(p1->dir_fd, ".new");            /* of an upgrade cut short */
	err = pdev_local_open(&p2->dev, p1->dir_fd, p1->dev->where, PDEV_BIT(PDEV_DATA) | PDEV_BLOCK_FILES, 1,
			      ".new");
	if (!err) {
		err = blk_open(&ts->bs, p2->dev, 1, NULL);
		if (err)
			pdev_close(p2->dev);
	}
	if (err) {
		free(p2);
		free(ts);
		return err;
	}
	p2->log = p1->log;
	p2->pools_dir = p1->pools_dir;
	memcpy(p2->lineage, p1->lineage, sizeof(p2->lineage));
	memcpy(p2->lineage_hex, p1->lineage_hex, sizeof(p2->lineage_hex));
	p2->chunk_size = p1->chunk_size;
	p2->chunk_shift = p1->chunk_shift;
	p2->encrypted = p1->encrypted;
	p2->version = 2;
	p2->dir_fd = p1->dir_fd;
	p2->tags_fd = -1;
	pthread_mutex_init(&p2->lock, NULL);
	pthread_mutex_init(&ts->commit_lock, NULL);
	memcpy(ts->hdr.magic, TREE_MAGIC, 8);
	ts->hdr.chunk_size = p1->chunk_size;
	ts->hdr.encrypted = p1->encrypted ? 1 : 0;
	memcpy(ts->hdr.lineage, p1->lineage, CHUNK_LINEAGE_BYTES);
	ts->pool = p2;
	p2->tree = ts;
	*out = p2;
	return 0;
}

int tree_slots_ref(struct pool *p2, const uint64_t *slots, size_t n)
{
	struct tree_state *ts = TS(p2);
	int err = 0;

	pthread_mutex_lock(&p2->lock);
	for (size_t i = 0; i < n && !err; i++) {
		if (slots[i] >= ts->hdr.nslots)
			ts->hdr.nslots = slots[i] + 1;
		err = ref_put(ts, BLK_SREFS, slots[i], ref_get(ts, BLK_SREFS, slots[i]) + 1);
	}
	pthread_mutex_unlock(&p2->lock);
	return err;
}

int tree_build_end(struct pool *p2, int keep)
{
	struct tree_state *ts = TS(p2);
	int dfd = p2->dir_fd, err = ts->failed;

	if (keep && !err) {
		ts->hdr.nfree_slots = 0;
		for (uint64_t s = 0; s < ts->hdr.nslots; s++)
			ts->hdr.nfree_slots += ref_get(ts, BLK_SREFS, s) == 0;
		/* Header block modified: the commit writes the header even
		 * when no map was built. */
		err = blk_mut(&ts->bs, BLK_ROOTS, 0) ? tree_commit(p2) : -ENOMEM;
	}
	if (keep && !err)
		err = blk_checkpoint(&ts->bs);
	tree_close(p2);
	pdev_close(p2->dev);
	if (keep && !err)
		err = pdev_local_publish(dfd, ".new");
	if (!keep || err)
		pdev_local_unpublished(dfd, ".new");
	pthread_mutex_destroy(&p2->lock);
	free(p2);
	return err;
}

int tree_open(struct pool *p)
{
	struct tree_state *ts = calloc(1, sizeof(*ts));
	struct tree_hdr h, want;
	const uint8_t *b;
	unsigned replayed = 0;
	int err;

	if (!ts)
		return -ENOMEM;
	pthread_mutex_init(&ts->commit_lock, NULL);
	ts->pool = p;
	p->tree = ts;
	err = blk_open(&ts->bs, p->dev, 0, &replayed);
	if (err) {
		elog_printf(p->log, LOG_ERR, "pool %s: the block files of %s/%s cannot be opened (%s); restore them from a "
			    "copy: the lineage's volumes, snapshots and images are refused until then", p->lineage_hex,
			    p->pools_dir, p->lineage_hex, evfs_strerror(err));
		p->tree = NULL;
		free(ts);
		return err == -ENOENT ? -EUCLEAN : err;
	}
	b = blk_get(&ts->bs, BLK_ROOTS, 0);
	if (b)
		memcpy(&h, b, sizeof(h));
	want = h;
	header_seal(&want);
	if (!b || memcmp(h.magic, TREE_MAGIC, 8) != 0 || le32toh(h.version) != 2 ||
	    sodium_memcmp(want.sum, h.sum, 32) != 0 || memcmp(h.lineage, p->lineage, CHUNK_LINEAGE_BYTES) != 0 ||
	    !chunk_size_valid(le32toh(h.chunk_size))) {
		elog_printf(p->log, LOG_ERR, "pool %s: header %s/%s/roots is damaged or not of this lineage; restore the "
			    "pool from a copy: the lineage's volumes, snapshots and images are refused until then",
			    p->lineage_hex, p->pools_dir, p->lineage_hex);
		tree_close(p);
		return -EUCLEAN;
	}
	hash32(b, BLK_SIZE, ts->fresh_hash);
	ts->hdr = h;
	ts->hdr.version = 2;
	ts->hdr.chunk_size = le32toh(h.chunk_size);
	ts->hdr.encrypted = le32toh(h.encrypted);
	ts->hdr.root_blocks = le32toh(h.root_blocks);
	ts->hdr.gen = ts->fresh_gen = le64toh(h.gen);
	ts->hdr.nslots = le64toh(h.nslots);
	ts->hdr.nfree_slots = le64toh(h.nfree_slots);
	ts->hdr.npages = le64toh(h.npages);
	ts->hdr.nfree_pages = le64toh(h.nfree_pages);
	p->chunk_size = ts->hdr.chunk_size;
	p->chunk_shift = (unsigned)__builtin_ctz(p->chunk_size);
	p->encrypted = (int)ts->hdr.encrypted;
	/* The counts drive loops over the files (fsck, give-back, the
	 * allocators): they must fit what the files hold (found by
	 * fuzz_headers with the hash chain recomputed). */
	if ((uint64_t)ts->hdr.root_blocks + 1 > ts->bs.nblk[BLK_ROOTS] ||
	    ts->hdr.nslots > ts->bs.nblk[BLK_SREFS] * REFS_PER_BLK || ts->hdr.nfree_slots > ts->hdr.nslots ||
	    ts->hdr.npages > ts->bs.nblk[BLK_PAGES] || ts->hdr.npages > ts->bs.nblk[BLK_PREFS] * REFS_PER_BLK ||
	    ts->hdr.nfree_pages > ts->hdr.npages) {
		elog_printf(p->log, LOG_ERR, "pool %s: header %s/%s/roots counts more slots, pages or root records than "
			    "the pool's files hold (damaged); restore the pool from a copy: the lineage's volumes, "
			    "snapshots and images are refused until then", p->lineage_hex, p->pools_dir, p->lineage_hex);
		tree_close(p);
		return -EUCLEAN;
	}
	{
		uint8_t rh[32];

		roots_digest(ts, rh);
		if (sodium_memcmp(rh, h.roots_hash, 32) != 0) {
			elog_printf(p->log, LOG_ERR, "pool %s: the root records of %s/%s/roots do not match the header "
				    "(altered or rolled back on disk); restore the pool from a copy: the lineage's "
				    "volumes, snapshots and images are refused until then", p->lineage_hex, p->pools_dir,
				    p->lineage_hex);
			tree_close(p);
			return -EUCLEAN;
		}
	}
	if (replayed)
		elog_printf(p->log, LOG_INFO, "pool %s: replayed %u journal record(s) of an interrupted session",
			    p->lineage_hex, replayed);
	return 0;
}

void tree_close(struct pool *p)
{
	struct tree_state *ts = TS(p);

	if (!ts)
		return;
	/* A clean close (every change in the home files) empties the
	 * journal: the home files alone are the pool, for a copy or a
	 * backup of the directory. */
	if (!ts->bs.dirty && !ts->bs.tab_n && ts->bs.dev && ts->bs.jtail)
		(void)blk_checkpoint(&ts->bs);
	blk_close(&ts->bs);
	pthread_mutex_destroy(&ts->commit_lock);
	free(ts->sfree.v);
	free(ts->pfree.v);
	free(ts->skeep.v);
	free(ts->ok);
	free(ts);
	p->tree = NULL;
}
