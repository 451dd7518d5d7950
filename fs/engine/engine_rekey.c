// SPDX-License-Identifier: MIT
/*
 * engine_rekey.c - a lineage's chunks re-sealed under a new data key while
 * its volume stays attached (R33; docs/format-v2.md section 7).
 *
 * Every leaf entry of a format 2 map names the data-key generation that
 * sealed its chunk, and the key handle the store gives the engine carries
 * the older generation beside the new one (kms_dk_chain), so a half-rotated
 * pool reads correctly: pool_chunk_open picks the key by the entry.  What
 * is left is to move every chunk to the new generation, and that is this
 * file.
 *
 * The walk goes leaf range by leaf range (64 chunks), across every map of
 * the lineage at once.  A chunk shared by a volume and its snapshots sits
 * in one slot named by the same index in each of them, so within a range
 * each old slot is opened once, sealed once into one new slot with a fresh
 * nonce, and the new entry stored in every map that named the old one:
 * the rekey keeps the sharing of data that snapshots and clones rely on.
 * (Leaf pages shared by several maps are shadowed once per map, so after a
 * rekey shared ranges cost one leaf page per map: metadata, 1/64 of the
 * data at 4 KiB chunks.)
 *
 * The volume's writers go on meanwhile.  They seal under the new key (the
 * store swapped the handle before the walk), and the walk stores its
 * entries with tree_cas: an entry a writer replaced since the walk read it
 * keeps the writer's data.  The readers of open maps are held off (the
 * maps frozen) only for the compare-and-set itself, so that none of them
 * still reads an old slot when it is freed.  Every few MiB the walk
 * commits; a crash loses at most the range since, and a rerun resumes by
 * skipping what already names the new generation.  The old slots are freed
 * as the entries move; the walk's end is a scan that finds no chunk of an
 * older generation, after which the caller may destroy the old key.
 */
#include "engine_fsck.h"
#include "engine_int.h"
#include "tree.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sodium.h>

#include "elog.h"
#include "err.h"
#include "kms/kms.h"

#define REKEY_COMMIT_BYTES (8ull << 20)     /* a commit per this much re-sealed */

/* One old chunk of the range and the entry that replaces it. */
struct reseal {
	struct tree_ent old, neu;
	uint64_t slot;               /* the new slot */
	uint32_t uses;               /* maps that named the old entry */
	int stored;                  /* the new entry went into a map */
};

struct rekey {
	struct engine *e;
	struct pool *p;
	const struct kms_dk *dk;
	uint32_t gen;
	uint32_t nmaps, cap;
	uint32_t *ri;
	uint64_t *nchunks;
	struct tree_ent (*cur)[TREE_FANOUT];      /* per map: the range as read */
	struct reseal rs[TREE_FANOUT * 4];        /* per range; more distinct chunks: a second pass */
	unsigned nrs;
	uint8_t *buf;                             /* chunk_size: ciphertext then plaintext */
	/* The range's stale chunks read ahead (prefetch): pre_slot1 (slot + 1)
	 * sorted, their ciphertext at pre + i * chunk_size where pre_ok[i]. */
	uint64_t pre_slot1[TREE_FANOUT];
	uint8_t pre_ok[TREE_FANOUT];
	unsigned npre;
	uint8_t *pre;
	struct engine_rekey_stats *st;
	uint64_t since_commit;
};

static int map_cb(void *ctx, const char *id)
{
	struct rekey *r = ctx;
	uint32_t ri;
	int err = tree_root_find(r->p, id, &ri);

	if (err)
		return err == -ENOENT ? 0 : err;      /* dropped meanwhile */
	if (r->nmaps == r->cap) {
		uint32_t cap = r->cap ? 2 * r->cap : 8;
		uint32_t *nri = realloc(r->ri, cap * sizeof(*nri));
		uint64_t *nn;
		struct tree_ent(*nc)[TREE_FANOUT];

		if (!nri)
			return -ENOMEM;
		r->ri = nri;
		nn = realloc(r->nchunks, cap * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		r->nchunks = nn;
		nc = realloc(r->cur, cap * sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		r->cur = nc;
		r->cap = cap;
	}
	r->ri[r->nmaps] = ri;
	r->nchunks[r->nmaps] = (tree_root_size(r->p, ri) + r->p->chunk_size - 1) >> r->p->chunk_shift;
	r->nmaps++;
	return 0;
}

/* Does entry e still need re-sealing? */
static int stale(const struct rekey *r, const struct tree_ent *e)
{
	return e->slot1 && le32toh(e->dkgen) != r->gen;
}

static int cmp_slot(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Read ahead the first TREE_FANOUT distinct stale slots the maps name in
 * this range (r->cur), sorted so that runs of slots are one read each
 * (pool_chunks_load).  A chunk that did not arrive is left to
 * pool_chunk_load in reseal_of, which reports it. */
static void prefetch(struct rekey *r)
{
	r->npre = 0;
	for (uint32_t m = 0; m < r->nmaps; m++)
		for (unsigned j = 0; j < TREE_FANOUT && r->npre < TREE_FANOUT; j++) {
			uint64_t s1 = le64toh(r->cur[m][j].slot1);
			unsigned i = 0;

			if (!stale(r, &r->cur[m][j]))
				continue;
			while (i < r->npre && r->pre_slot1[i] != s1)
				i++;
			if (i == r->npre)
				r->pre_slot1[r->npre++] = s1;
		}
	qsort(r->pre_slot1, r->npre, sizeof(r->pre_slot1[0]), cmp_slot);
	(void)pool_chunks_load(r->p, r->pre_slot1, r->npre, r->pre, r->pre_ok);
}

/* The ciphertext of `slot` into out: read ahead, or read now. */
static int load(struct rekey *r, uint64_t slot, uint8_t *out)
{
	uint64_t s1 = slot + 1;
	const uint64_t *at = bsearch(&s1, r->pre_slot1, r->npre, sizeof(s1), cmp_slot);

	if (at && r->pre_ok[at - r->pre_slot1]) {
		memcpy(out, r->pre + (size_t)(at - r->pre_slot1) * r->p->chunk_size, r->p->chunk_size);
		return 0;
	}
	return pool_chunk_load(r->p, slot, out);
}

/* The reseal record for old entry e at position j: found, or made by
 * opening the chunk under its generation's key and sealing it under the
 * new one into a fresh slot.  NULL when the range holds too many distinct
 * chunks (the rest wait for the next pass) or on error (*err). */
static struct reseal *reseal_of(struct rekey *r, const struct tree_ent *e, uint64_t index, int *err)
{
	struct pool *p = r->p;
	struct reseal *s;
	struct chunk_tag t;
	uint8_t nonce[CHUNK_NONCE_BYTES];

	for (unsigned i = 0; i < r->nrs; i++)
		if (!memcmp(&r->rs[i].old, e, sizeof(*e)))
			return &r->rs[i];
	if (r->nrs == sizeof(r->rs) / sizeof(r->rs[0]))
		return NULL;
	s = &r->rs[r->nrs];
	tree_ent_tag(e, index, &t);
	*err = load(r, le64toh(e->slot1) - 1, r->buf);
	if (!*err)
		*err = pool_chunk_open(p, r->dk, index, r->buf, r->buf, &t);
	if (*err) {
		r->st->bad++;
		elog_printf(r->p->log, LOG_ERR,
			    "rekey of lineage %s: chunk %llu (slot %llu) cannot be opened (%s); it keeps its old key. "
			    "Run 'evfsctl fsck' to quarantine it, then rerun the rekey",
			    p->lineage_hex, (unsigned long long)index, (unsigned long long)(le64toh(e->slot1) - 1),
			    evfs_strerror(*err));
		*err = 0;                      /* the other chunks go on */
		return NULL;
	}
	*err = tree_slots_alloc(p, 1, &s->slot);
	if (*err)
		return NULL;
	randombytes_buf(nonce, sizeof(nonce));
	*err = pool_chunk_seal(p, r->dk, index, nonce, r->buf, r->buf, &t);
	if (!*err)
		*err = pool_chunk_store(p, s->slot, r->buf);
	if (*err) {
		tree_slots_release_new(p, &s->slot, 1);
		return NULL;
	}
	memset(&s->neu, 0, sizeof(s->neu));
	s->neu.slot1 = htole64(s->slot + 1);
	memcpy(s->neu.nonce, t.nonce, sizeof(s->neu.nonce));
	memcpy(s->neu.mac, t.mac, sizeof(s->neu.mac));
	s->neu.dkgen = t.dkgen_le;
	s->old = *e;
	s->uses = 0;
	s->stored = 0;
	r->nrs++;
	return s;
}

/* Re-seal the stale chunks of range [first, first + TREE_FANOUT). */
static int rekey_range(struct rekey *r, uint64_t first)
{
	struct tree_ent want[TREE_FANOUT];
	struct vol **vols = NULL;
	size_t nvols = 0;
	int err = 0, any = 0;

	r->nrs = 0;
	sodium_memzero(r->buf, r->p->chunk_size);
	for (uint32_t m = 0; m < r->nmaps && !err; m++) {
		uint64_t n = first < r->nchunks[m] ? r->nchunks[m] - first : 0;

		memset(r->cur[m], 0, sizeof(r->cur[m]));
		if (n > TREE_FANOUT)
			n = TREE_FANOUT;
		if (n)
			err = tree_get(r->p, r->ri[m], first, n, r->cur[m]);
	}
	if (!err)
		prefetch(r);
	for (uint32_t m = 0; m < r->nmaps && !err; m++) {
		uint64_t n = first < r->nchunks[m] ? r->nchunks[m] - first : 0;

		if (n > TREE_FANOUT)
			n = TREE_FANOUT;
		for (uint64_t j = 0; j < n && !err; j++)
			if (stale(r, &r->cur[m][j]) && reseal_of(r, &r->cur[m][j], first + j, &err))
				any = 1;
	}
	sodium_memzero(r->buf, r->p->chunk_size);
	if (err || !any)
		goto out;
	/* Every new slot counted once per map about to name it, before any
	 * map does: a commit by a writer meanwhile never sees too few. */
	for (uint32_t m = 0; m < r->nmaps; m++)
		for (unsigned j = 0; j < TREE_FANOUT; j++)
			for (unsigned i = 0; i < r->nrs; i++)
				if (stale(r, &r->cur[m][j]) && !memcmp(&r->rs[i].old, &r->cur[m][j], sizeof(want[0])) &&
				    r->rs[i].uses++ > 0 && (err = tree_slots_ref(r->p, &r->rs[i].slot, 1)) < 0)
					goto out;
	err = engine_pool_freeze(r->e, r->p, &vols, &nvols);
	if (err)
		goto out;
	for (uint32_t m = 0; m < r->nmaps && !err; m++) {
		uint64_t n = first < r->nchunks[m] ? r->nchunks[m] - first : 0, done = 0;
		int mine = 0;

		if (n > TREE_FANOUT)
			n = TREE_FANOUT;
		for (uint64_t j = 0; j < n; j++) {
			want[j] = r->cur[m][j];
			for (unsigned i = 0; i < r->nrs && stale(r, &want[j]); i++)
				if (!memcmp(&r->rs[i].old, &want[j], sizeof(want[j]))) {
					want[j] = r->rs[i].neu;
					mine = 1;
				}
		}
		if (!mine)
			continue;
		err = tree_cas(r->p, r->ri[m], first, n, r->cur[m], want, &done);
		for (uint64_t j = 0; j < n; j++) {
			if (memcmp(&want[j], &r->cur[m][j], sizeof(want[j])) == 0)
				continue;
			if (done >> j & 1) {
				r->st->resealed++;
				for (unsigned i = 0; i < r->nrs; i++)
					if (!r->rs[i].stored && r->rs[i].neu.slot1 == want[j].slot1) {
						r->rs[i].stored = 1;
						r->st->chunks++;
					}
			} else {
				/* A writer replaced it meanwhile: its count goes. */
				uint64_t s = le64toh(want[j].slot1) - 1;

				r->st->raced++;
				tree_slots_release_new(r->p, &s, 1);
			}
		}
	}
	engine_pool_thaw(r->e, vols, nvols);
	r->since_commit += (uint64_t)r->nrs * r->p->chunk_size;
	if (!err && r->since_commit >= REKEY_COMMIT_BYTES) {
		err = tree_commit(r->p);
		r->since_commit = 0;
	}
	return err;
out:
	/* Nothing stored: the new slots go back. */
	for (unsigned i = 0; i < r->nrs; i++)
		for (uint32_t u = r->rs[i].uses ? r->rs[i].uses : 1; u > 0; u--)
			tree_slots_release_new(r->p, &r->rs[i].slot, 1);
	return err;
}

/* The first index >= from where any map has data; UINT64_MAX if none. */
static uint64_t next_data(struct rekey *r, uint64_t from)
{
	uint64_t best = UINT64_MAX;

	for (uint32_t m = 0; m < r->nmaps; m++)
		if (from < r->nchunks[m]) {
			uint64_t i = tree_seek(r->p, r->ri[m], from, r->nchunks[m], 1);

			if (i < r->nchunks[m] && i < best)
				best = i;
		}
	return best;
}

/* One pass over every map; *left gets the stale entries seen. */
static int rekey_pass(struct rekey *r, engine_step_fn step, void *step_ctx, uint64_t *left)
{
	uint64_t total = 0, stale_seen = 0;
	int err;

	r->nmaps = 0;
	err = tree_root_list(r->p, map_cb, r);
	for (uint32_t m = 0; m < r->nmaps; m++)
		if (r->nchunks[m] > total)
			total = r->nchunks[m];
	if (step)
		step(step_ctx, 0, total << r->p->chunk_shift);
	for (uint64_t first = next_data(r, 0); !err && first < total; first = next_data(r, first + TREE_FANOUT)) {
		first &= ~(uint64_t)(TREE_FANOUT - 1);
		err = rekey_range(r, first);
		if (step)
			step(step_ctx, (first + TREE_FANOUT < total ? first + TREE_FANOUT : total) << r->p->chunk_shift,
			     total << r->p->chunk_shift);
		/* What is stale after the range: the next pass's work. */
		for (uint32_t m = 0; m < r->nmaps && !err; m++) {
			struct tree_ent now[TREE_FANOUT];
			uint64_t n = first < r->nchunks[m] ? r->nchunks[m] - first : 0;

			if (n > TREE_FANOUT)
				n = TREE_FANOUT;
			if (n && tree_get(r->p, r->ri[m], first, n, now) == 0)
				for (uint64_t j = 0; j < n; j++)
					stale_seen += stale(r, &now[j]);
		}
	}
	if (!err)
		err = tree_commit(r->p);
	*left = stale_seen;
	return err;
}

int engine_lineage_rekey(struct engine *e, const char *lineage, const struct kms_dk *dk, engine_step_fn step,
			 void *step_ctx, struct engine_rekey_stats *st)
{
	struct rekey r = { .e = e, .dk = dk, .gen = kms_dk_gen(dk), .st = st };
	uint64_t left = 0;
	int err;

	memset(st, 0, sizeof(*st));
	err = engine_pool_get(&r.p, e, lineage);
	if (err)
		return err;
	if (r.p->version != 2 || !r.p->encrypted || !dk) {
		engine_pool_put(r.p);
		return r.p->version != 2 ? -EPROTO : -EINVAL;
	}
	r.buf = sodium_malloc(r.p->chunk_size);
	r.pre = malloc((size_t)TREE_FANOUT * r.p->chunk_size);     /* ciphertext only */
	if (!r.buf || !r.pre)
		err = -ENOMEM;
	/* A pass leaves stale only what it could not take in one range
	 * (more distinct chunks than rs holds: many maps that differ there)
	 * or could not open; passes go on while they make progress. */
	for (int pass = 0; !err; pass++) {
		uint64_t bad = st->bad, done = st->resealed;

		st->passes++;
		err = rekey_pass(&r, pass ? NULL : step, step_ctx, &left);
		if (!err && (left == 0 || st->bad > bad || st->resealed == done))
			break;
	}
	st->left = left;
	sodium_free(r.buf);
	free(r.pre);
	free(r.ri);
	free(r.nchunks);
	free(r.cur);
	engine_pool_put(r.p);
	return err;
}

struct scan_ctx {
	uint32_t gen;
	uint64_t stale;
};

static int scan_cb(void *ctx, uint64_t index, const struct tree_ent *e)
{
	struct scan_ctx *c = ctx;

	(void)index;
	c->stale += le32toh(e->dkgen) != c->gen;
	return 0;
}

struct scan_maps {
	struct pool *p;
	struct scan_ctx c;
};

static int scan_map_cb(void *ctx, const char *id)
{
	struct scan_maps *s = ctx;
	uint32_t ri;
	int err = tree_root_find(s->p, id, &ri);

	return err == -ENOENT ? 0 : err ? err : tree_foreach(s->p, ri, scan_cb, &s->c);
}

int engine_lineage_key_scan(struct engine *e, const char *lineage, uint32_t gen, uint64_t *stale)
{
	struct scan_maps s = { .c = { .gen = gen } };
	int err = engine_pool_get(&s.p, e, lineage);

	*stale = 0;
	if (err)
		return err;
	err = s.p->version == 2 ? tree_root_list(s.p, scan_map_cb, &s) : -EPROTO;
	engine_pool_put(s.p);
	*stale = s.c.stale;
	return err;
}

int engine_lineage_set_key(struct engine *e, const char *lineage, const struct kms_dk *dk)
{
	struct vol **vols = NULL;
	size_t n = 0;
	struct pool *p = engine_pool_find(e, lineage);
	int err;

	if (!p)
		return 0;                   /* nothing open: the next attach unwraps */
	err = engine_pool_freeze(e, p, &vols, &n);
	if (!err) {
		for (size_t i = 0; i < n; i++)
			vol_key_swap_frozen(vols[i], dk);
		engine_pool_thaw(e, vols, n);
	}
	engine_pool_put(p);
	return err;
}
