// SPDX-License-Identifier: MIT
/*
 * blk.c - journaled block files: how a format 2 pool changes many 4 KiB
 * blocks at once and survives a crash at any point.
 *
 * A format 2 pool keeps its metadata in four files of 4 KiB blocks: the
 * map tree pages, the slot reference counts, the page reference counts and
 * the roots (header and one record per map); see tree.c.  One fsync of a
 * volume changes blocks in all four, and after a power cut they must be
 * all old or all new.  This file gives that, the way a journaling file
 * system does (ext4's jbd2, in miniature):
 *
 *   - a modified block lives in an in-memory overlay (blk_mut) until it
 *     is committed; readers see the overlay first, the home file after;
 *   - a commit appends one record to the `journal` file holding every
 *     modified block, with a BLAKE2b-256 checksum over the whole record,
 *     and fdatasyncs it: that is the commit point;
 *   - then the blocks are written to their home files, without a sync;
 *   - once the journal passes its 4 MiB reserve (and at every open), the
 *     homes are synced and the journal emptied (a checkpoint).
 *
 * The journal's first 4 MiB are allocated when the pool is opened and
 * never given back: a commit that frees space (a discard, a snapshot
 * deleted) must not need space itself, or a full disk could never be
 * emptied through the mount.  So emptying the journal does not truncate
 * it: it zeroes the first record's header, and records are written over
 * older ones.  Leftovers of older records past the last one never replay:
 * their generations are lower than the one the replay waits for.
 *
 * Opening replays every complete record in order (a record is images, so
 * replaying one twice is harmless); a torn record at the tail was never
 * committed and is dropped.  Home files are read through read-only
 * mappings made on demand, 1 GiB at a time, and written with pwrite, so a
 * full disk is an error, never a SIGBUS; only blocks known to be inside
 * the file are read through a mapping.  A device that cannot map (RADOS)
 * is read 4 MiB at a time into copies that the end of each commit keeps
 * up to date, under the owner's lock, from the blocks it wrote home.
 *
 * The files are the pool device's (pdev.h): which files system or
 * cluster holds them is not this file's business.
 */
#include "blk.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sodium.h>

#define JRN_MAGIC "EVFSJRN2"
#define CACHE_SEG_SHIFT 10u                   /* 1024 blocks: one 4 MiB RADOS object */
#define SEG_BYTES(bs) ((size_t)BLK_SIZE << (bs)->seg_shift)

struct blk_ent {
	uint64_t key;
	uint64_t ver;                 /* last modification */
	uint64_t cap;                 /* version captured by the last capture */
	uint8_t *buf;
	struct blk_ent *next;
};

struct jrn_hdr {
	char magic[8];
	uint64_t gen;
	uint64_t n;                   /* blocks in the record */
	uint64_t pad;
	uint8_t sum[32];              /* BLAKE2b-256 of header (sum zeroed), keys, images */
};
_Static_assert(sizeof(struct jrn_hdr) == 64, "journal header");

static const uint8_t zero_block[BLK_SIZE];

static inline uint64_t key_of(enum blk_file f, uint64_t b)
{
	return (uint64_t)f << 56 | b;
}

static inline size_t slot_of(const struct blkset *bs, uint64_t key)
{
	uint64_t h = key * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 20) & (bs->tab_cap - 1);
}

static size_t keys_bytes(uint64_t n)
{
	/* header + keys, rounded up to a block so the images are aligned */
	return ((sizeof(struct jrn_hdr) + n * 8 + BLK_SIZE - 1) / BLK_SIZE) * BLK_SIZE;
}

/* ============================== files ================================== */

static void jrn_sum(const struct jrn_hdr *h, const uint64_t *keys, const uint8_t *img, uint8_t out[32])
{
	crypto_generichash_state st;
	struct jrn_hdr z = *h;

	memset(z.sum, 0, sizeof(z.sum));
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)&z, sizeof(z));
	crypto_generichash_update(&st, (const uint8_t *)keys, h->n * 8);
	crypto_generichash_update(&st, img, h->n * BLK_SIZE);
	crypto_generichash_final(&st, out, 32);
}

#define HOME_RUN 256u                         /* blocks per home write: 1 MiB */

struct home_ord {
	uint64_t key;
	size_t i;
};

static int home_cmp(const void *a, const void *b)
{
	const struct home_ord *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;     /* a block twice: its images in turn */
}

/* Write n block images home (img[i] is the block keys[i] names), in key
 * order: a run of consecutive blocks of one file goes in one write, so a
 * commit of a thousand tree pages is a few writes, not a thousand (each a
 * round trip on RADOS). */
static int homes_write(struct blkset *bs, const uint64_t *keys, const uint8_t *img, size_t n)
{
	struct home_ord *ord = malloc(n * sizeof(*ord));
	struct iovec iov[HOME_RUN];
	int err = 0;

	if (!ord)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		ord[i] = (struct home_ord){ keys[i], i };
	qsort(ord, n, sizeof(*ord), home_cmp);
	for (size_t i = 0, run; i < n && !err; i += run) {
		enum blk_file f = (enum blk_file)(ord[i].key >> 56);
		uint64_t b = ord[i].key & ((1ull << 56) - 1);

		if (f >= BLK_NFILES || b > (uint64_t)INT64_MAX / BLK_SIZE - HOME_RUN) {
			err = -EUCLEAN;
			break;
		}
		for (run = 0; run < HOME_RUN && i + run < n && ord[i + run].key == ord[i].key + run; run++)
			iov[run] = (struct iovec){ (void *)(img + ord[i + run].i * BLK_SIZE), BLK_SIZE };
		err = pdev_writev(bs->dev, (enum pdev_file)f, iov, (int)run, b * BLK_SIZE);
	}
	free(ord);
	return err;
}

/* Replay every complete record of the journal into the home files. */
static int jrn_replay(struct blkset *bs, unsigned *replayed)
{
	uint64_t off = 0, want_gen = 0, jsize;
	int err;

	*replayed = 0;
	if ((err = pdev_size(bs->dev, PDEV_JOURNAL, &jsize)) < 0)
		return err;
	while (off + sizeof(struct jrn_hdr) <= jsize) {
		struct jrn_hdr h;
		uint8_t sum[32], *buf;
		size_t kb, len;

		if (pdev_read(bs->dev, PDEV_JOURNAL, &h, sizeof(h), off) != (ssize_t)sizeof(h) ||
		    memcmp(h.magic, JRN_MAGIC, 8) != 0)
			break;
		h.gen = le64toh(h.gen);
		h.n = le64toh(h.n);
		if (h.n == 0 || h.n > (1ull << 24) || (*replayed && h.gen != want_gen))
			break;
		kb = keys_bytes(h.n);
		len = kb + h.n * BLK_SIZE;
		if (off + len > jsize)
			break;                              /* torn: never committed */
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
		if (pdev_read(bs->dev, PDEV_JOURNAL, buf, len, off) != (ssize_t)len) {
			free(buf);
			return -EIO;
		}
		{
			struct jrn_hdr hh = h;

			hh.gen = htole64(h.gen);
			hh.n = htole64(h.n);
			jrn_sum(&hh, (const uint64_t *)(buf + sizeof(h)), buf + kb, sum);
		}
		if (sodium_memcmp(sum, h.sum, 32) != 0) {
			free(buf);
			break;
		}
		{
			uint64_t *keys = (uint64_t *)(buf + sizeof(h));

			for (uint64_t i = 0; i < h.n; i++)
				keys[i] = le64toh(keys[i]);
			err = homes_write(bs, keys, buf + kb, h.n);
		}
		free(buf);
		if (err)
			return err;
		(*replayed)++;
		want_gen = h.gen + 1;
		off += len;
	}
	return 0;
}

/* Make the record at `off` unreadable (the journal ends there). */
static int jrn_cut(struct blkset *bs, uint64_t off)
{
	static const struct jrn_hdr zero;

	return pdev_write(bs->dev, PDEV_JOURNAL, &zero, sizeof(zero), off);
}

/* The journal's reserve (best effort: a full disk leaves it short, and
 * commits then need new space like any write), and only the reserve. */
static void jrn_reserve(struct blkset *bs)
{
	uint64_t size;

	if (pdev_size(bs->dev, PDEV_JOURNAL, &size) < 0)
		return;
	if (size < BLK_JOURNAL_RESERVE)
		pdev_reserve(bs->dev, PDEV_JOURNAL, BLK_JOURNAL_RESERVE);
	else if (size > BLK_JOURNAL_RESERVE && bs->jtail <= BLK_JOURNAL_RESERVE)
		(void)pdev_truncate(bs->dev, PDEV_JOURNAL, BLK_JOURNAL_RESERVE);
}

static int file_blocks(struct blkset *bs, enum blk_file f)
{
	uint64_t size;
	int err = pdev_size(bs->dev, (enum pdev_file)f, &size);

	if (err)
		return err;
	if (size % BLK_SIZE)
		return -EUCLEAN;
	bs->nblk[f] = size / BLK_SIZE;
	return 0;
}

int blk_open(struct blkset *bs, struct pdev *dev, int create, unsigned *replayed)
{
	int err = 0;
	unsigned r = 0;

	memset(bs, 0, sizeof(*bs));
	if ((dev->files & PDEV_BLOCK_FILES) != PDEV_BLOCK_FILES)
		return -EINVAL;
	bs->dev = dev;
	bs->cached = !dev->ops->map;
	bs->seg_shift = bs->cached ? CACHE_SEG_SHIFT : BLK_SEG_SHIFT;
	bs->tab_cap = 256;
	bs->tab = calloc(bs->tab_cap, sizeof(*bs->tab));
	if (!bs->tab)
		return -ENOMEM;
	if (!create)
		err = jrn_replay(bs, &r);
	if (!err && r)
		err = blk_checkpoint(bs);
	else if (!err && !create)
		err = jrn_cut(bs, 0);                           /* a torn record, or none */
	if (!err)
		jrn_reserve(bs);
	for (int f = 0; f < BLK_NFILES && !err; f++)
		err = file_blocks(bs, (enum blk_file)f);
	if (replayed)
		*replayed = r;
	if (err)
		blk_close(bs);
	return err;
}

void blk_close(struct blkset *bs)
{
	for (int f = 0; f < BLK_NFILES; f++) {
		for (size_t k = 0; k < bs->nseg[f]; k++) {
			if (!bs->seg[f][k])
				continue;
			if (bs->cached)
				free(bs->seg[f][k]);
			else
				pdev_unmap(bs->dev, bs->seg[f][k], SEG_BYTES(bs));
		}
		free(bs->seg[f]);
		bs->seg[f] = NULL;
		bs->nseg[f] = 0;
	}
	for (size_t i = 0; bs->tab && i < bs->tab_cap; i++) {
		for (struct blk_ent *e = bs->tab[i], *n; e; e = n) {
			n = e->next;
			free(e->buf);
			free(e);
		}
	}
	free(bs->tab);
	bs->tab = NULL;
}

int blk_checkpoint(struct blkset *bs)
{
	int err;

	for (int f = 0; f < BLK_NFILES; f++)
		if ((err = pdev_sync(bs->dev, (enum pdev_file)f)) < 0)
			return err;
	if ((err = jrn_cut(bs, 0)) < 0)
		return err;
	if ((err = pdev_sync(bs->dev, PDEV_JOURNAL)) < 0)
		return err;
	bs->jtail = 0;
	jrn_reserve(bs);                   /* what a large record added, back */
	return 0;
}

/* ============================== blocks ================================= */

static struct blk_ent *ent_find(struct blkset *bs, uint64_t key)
{
	for (struct blk_ent *e = bs->tab[slot_of(bs, key)]; e; e = e->next)
		if (e->key == key)
			return e;
	return NULL;
}

static const uint8_t *home_get(struct blkset *bs, enum blk_file f, uint64_t b)
{
	size_t k = (size_t)(b >> bs->seg_shift);

	if (b >= bs->nblk[f])
		return zero_block;
	if (k >= bs->nseg[f]) {
		size_t n = k + 1 > 2 * bs->nseg[f] ? k + 1 : 2 * bs->nseg[f];
		uint8_t **s = realloc(bs->seg[f], n * sizeof(*s));

		if (!s)
			return NULL;
		memset(s + bs->nseg[f], 0, (n - bs->nseg[f]) * sizeof(*s));
		bs->seg[f] = s;
		bs->nseg[f] = n;
	}
	if (!bs->seg[f][k]) {
		uint64_t off = (uint64_t)k * SEG_BYTES(bs);
		uint8_t *m;

		if (bs->cached) {
			ssize_t r;

			m = malloc(SEG_BYTES(bs));
			if (!m)
				return NULL;
			r = pdev_read(bs->dev, (enum pdev_file)f, m, SEG_BYTES(bs), off);
			if (r < 0) {
				free(m);
				return NULL;
			}
			memset(m + r, 0, SEG_BYTES(bs) - (size_t)r);
		} else {
			m = (uint8_t *)pdev_map(bs->dev, (enum pdev_file)f, off, SEG_BYTES(bs));
			if (!m)
				return NULL;
		}
		bs->seg[f][k] = m;
	}
	return bs->seg[f][k] + (size_t)(b & ((1ull << bs->seg_shift) - 1)) * BLK_SIZE;
}

const uint8_t *blk_get(struct blkset *bs, enum blk_file f, uint64_t b)
{
	struct blk_ent *e = ent_find(bs, key_of(f, b));

	return e ? e->buf : home_get(bs, f, b);
}

int blk_is_mod(struct blkset *bs, enum blk_file f, uint64_t b)
{
	const struct blk_ent *e = ent_find(bs, key_of(f, b));

	return e && e->ver != e->cap;
}

static int tab_grow(struct blkset *bs)
{
	size_t cap = bs->tab_cap * 2;
	struct blk_ent **t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < bs->tab_cap; i++) {
		for (struct blk_ent *e = bs->tab[i], *n; e; e = n) {
			size_t s;

			n = e->next;
			bs->tab_cap = cap;            /* slot_of() uses the new size */
			s = slot_of(bs, e->key);
			bs->tab_cap = cap / 2;
			e->next = t[s];
			t[s] = e;
		}
	}
	free(bs->tab);
	bs->tab = t;
	bs->tab_cap = cap;
	return 0;
}

uint8_t *blk_mut(struct blkset *bs, enum blk_file f, uint64_t b)
{
	uint64_t key = key_of(f, b);
	struct blk_ent *e = ent_find(bs, key);
	const uint8_t *cur;
	size_t s;

	if (e) {
		if (e->ver == e->cap)
			bs->dirty++;
		e->ver = ++bs->ver;
		return e->buf;
	}
	if (bs->tab_n >= bs->tab_cap && tab_grow(bs) < 0)
		return NULL;
	cur = home_get(bs, f, b);
	e = calloc(1, sizeof(*e));
	if (!e || !cur || !(e->buf = aligned_alloc(BLK_SIZE, BLK_SIZE))) {
		free(e);
		return NULL;
	}
	memcpy(e->buf, cur, BLK_SIZE);
	e->key = key;
	e->ver = ++bs->ver;
	s = slot_of(bs, key);
	e->next = bs->tab[s];
	bs->tab[s] = e;
	bs->tab_n++;
	bs->dirty++;
	return e->buf;
}

/* ============================== commits ================================ */

void blk_txn_free(struct blk_txn *t)
{
	free(t->keys);
	free(t->vers);
	free(t->img);
	memset(t, 0, sizeof(*t));
}

int blk_capture(struct blkset *bs, uint64_t gen, struct blk_txn *t)
{
	size_t n = 0;

	memset(t, 0, sizeof(*t));
	t->gen = gen;
	for (size_t i = 0; i < bs->tab_cap; i++)
		for (struct blk_ent *e = bs->tab[i]; e; e = e->next)
			n += e->ver != e->cap;
	if (!n)
		return 0;
	t->keys = malloc(n * sizeof(*t->keys));
	t->vers = malloc(n * sizeof(*t->vers));
	t->img = aligned_alloc(BLK_SIZE, n * BLK_SIZE);
	if (!t->keys || !t->vers || !t->img) {
		blk_txn_free(t);
		return -ENOMEM;
	}
	for (size_t i = 0; i < bs->tab_cap; i++) {
		for (struct blk_ent *e = bs->tab[i]; e; e = e->next) {
			if (e->ver == e->cap)
				continue;
			t->keys[t->n] = e->key;
			t->vers[t->n] = e->ver;
			memcpy(t->img + t->n * BLK_SIZE, e->buf, BLK_SIZE);
			t->n++;
		}
	}
	/* Captured: a later blk_mut counts the block dirty again. */
	for (size_t i = 0; i < bs->tab_cap; i++)
		for (struct blk_ent *e = bs->tab[i]; e; e = e->next)
			e->cap = e->ver;
	bs->dirty = 0;
	return 0;
}

int blk_commit_io(struct blkset *bs, struct blk_txn *t)
{
	struct jrn_hdr h;
	size_t kb;
	uint8_t *head;
	struct iovec iov[2];
	int err = 0;

	if (!t->n)
		return 0;
	kb = keys_bytes(t->n);
	head = calloc(1, kb);
	if (!head)
		return -ENOMEM;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, JRN_MAGIC, 8);
	h.gen = htole64(t->gen);
	h.n = htole64(t->n);
	for (size_t i = 0; i < t->n; i++)
		((uint64_t *)(head + sizeof(h)))[i] = htole64(t->keys[i]);
	jrn_sum(&h, (const uint64_t *)(head + sizeof(h)), t->img, h.sum);
	memcpy(head, &h, sizeof(h));
	iov[0] = (struct iovec){ head, kb };
	iov[1] = (struct iovec){ t->img, t->n * BLK_SIZE };
	err = pdev_writev(bs->dev, PDEV_JOURNAL, iov, 2, bs->jtail);
	free(head);
	if (!err)
		err = pdev_sync(bs->dev, PDEV_JOURNAL);
	if (err) {
		/* Nothing committed: unmake what was written (the next
		 * record starts where this one did). */
		(void)jrn_cut(bs, bs->jtail);
		return err;
	}
	bs->jtail += kb + t->n * BLK_SIZE;
	t->committed = 1;
	/* Committed.  The homes get the images; a failure here is repaired
	 * by the replay at the next open, so it is reported, not undone. */
	err = homes_write(bs, t->keys, t->img, t->n);
	if (err)
		return err;
	t->homes_ok = 1;
	return bs->jtail >= BLK_JOURNAL_RESERVE ? blk_checkpoint(bs) : 0;
}

/* A device without mappings: the home copy of block b of f, if read, gets
 * what the commit wrote home (owner's lock held). */
static void cache_update(struct blkset *bs, enum blk_file f, uint64_t b, const uint8_t *img)
{
	size_t k = (size_t)(b >> bs->seg_shift);

	if (k < bs->nseg[f] && bs->seg[f][k])
		memcpy(bs->seg[f][k] + (size_t)(b & ((1ull << bs->seg_shift) - 1)) * BLK_SIZE, img, BLK_SIZE);
}

void blk_commit_done(struct blkset *bs, const struct blk_txn *t)
{
	for (size_t i = 0; i < t->n; i++) {
		enum blk_file f = (enum blk_file)(t->keys[i] >> 56);
		uint64_t b = t->keys[i] & ((1ull << 56) - 1);
		size_t s = slot_of(bs, t->keys[i]);

		if (t->homes_ok && b >= bs->nblk[f])
			bs->nblk[f] = b + 1;   /* the home write reached it: readable through the mapping */
		for (struct blk_ent **pp = &bs->tab[s]; *pp; pp = &(*pp)->next) {
			struct blk_ent *e = *pp;

			if (e->key != t->keys[i])
				continue;
			if (!t->committed) {
				if (e->ver == e->cap)
					bs->dirty++;
				e->cap = 0;           /* modified again: in the next capture */
			} else if (t->homes_ok && e->ver == t->vers[i]) {   /* not modified since: the home holds it */
				if (bs->cached)
					cache_update(bs, f, b, e->buf);
				*pp = e->next;
				free(e->buf);
				free(e);
				bs->tab_n--;
			}
			break;
		}
	}
}
