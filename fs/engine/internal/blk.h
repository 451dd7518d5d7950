/* SPDX-License-Identifier: MIT */
/*
 * blk.h - journaled 4 KiB block files of a format 2 pool (private to
 * fs/engine/; see blk.c).  Knows no tree and no pool: the bottom of the
 * format 2 file chain, below tree.c.
 */
#ifndef EVFS_BLK_H
#define EVFS_BLK_H

#include <stddef.h>
#include <stdint.h>

#include "pdev.h"

#define BLK_SIZE 4096u
#define BLK_SEG_SHIFT 18u                     /* 2^18 blocks (1 GiB) a mapping */
#define BLK_JOURNAL_RESERVE (4ull << 20)     /* allocated up front; checkpoint past it */

/* The block files are the pool device's first four files. */
enum blk_file { BLK_PAGES = PDEV_PAGES, BLK_SREFS = PDEV_SREFS, BLK_PREFS = PDEV_PREFS, BLK_ROOTS = PDEV_ROOTS,
		BLK_NFILES };
_Static_assert((int)BLK_NFILES == (int)PDEV_JOURNAL, "block files first");

struct blk_ent;

/* The block files of one pool.  Every call but blk_commit_io() and
 * blk_close() needs the owner's lock (tree.c: pool->lock); blk_commit_io()
 * needs only that commits do not overlap (tree.c: the commit mutex). */
struct blkset {
	struct pdev *dev;                         /* not owned */
	int cached;                               /* the device cannot map: segments are read copies */
	unsigned seg_shift;                       /* blocks a segment: 2^seg_shift */
	uint64_t nblk[BLK_NFILES];                /* blocks readable through the segments */
	uint8_t **seg[BLK_NFILES];                /* read-only mappings (1 GiB) or copies (4 MiB), made on demand */
	size_t nseg[BLK_NFILES];
	struct blk_ent **tab;                     /* overlay: modified blocks by key */
	size_t tab_cap, tab_n;
	uint64_t ver;                             /* modification counter */
	uint64_t dirty;                           /* blocks modified since the last capture */
	uint64_t jtail;                           /* journal bytes in use (commit mutex) */
};

/* A captured transaction: block images to make durable together. */
struct blk_txn {
	uint64_t gen;
	size_t n;
	uint64_t *keys;                           /* file << 56 | block */
	uint64_t *vers;
	uint8_t *img;                             /* n * BLK_SIZE */
	int committed;                            /* the record is durable (io) */
	int homes_ok;                             /* and every home write succeeded */
};

/* The block files and the journal of device dev (which must hold them
 * open and outlive the set; create: they are new and empty).  Replays a
 * journal left by a crash (every complete record, in order) and empties
 * it.  *replayed gets the number of records applied.  Errors: -errno,
 * -EUCLEAN for files of the wrong length. */
int blk_open(struct blkset *bs, struct pdev *dev, int create, unsigned *replayed);
void blk_close(struct blkset *bs);

/* The current content of block b of file f (the overlay's copy, the home
 * file's, or zeros past its end).  Valid until the owner's lock is
 * dropped. */
const uint8_t *blk_get(struct blkset *bs, enum blk_file f, uint64_t b);
/* A modifiable copy of block b, part of the open transaction.  NULL only
 * on -ENOMEM. */
uint8_t *blk_mut(struct blkset *bs, enum blk_file f, uint64_t b);
/* 1 if block b was modified since the last capture. */
int blk_is_mod(struct blkset *bs, enum blk_file f, uint64_t b);

/* Commit in three steps: capture (owner's lock held: copies every block
 * modified since the last capture), io (no lock: one journal record,
 * fdatasync, then the home files; checkpoint when the journal is large),
 * done (owner's lock held, always called after io, failed or not: the
 * overlay drops what the homes now hold; blocks of a record that did not
 * become durable are marked modified again and go with the next commit;
 * blocks whose home write failed stay in the overlay, and the journal
 * replays them at the next open).  Then blk_txn_free(). */
int blk_capture(struct blkset *bs, uint64_t gen, struct blk_txn *t);
int blk_commit_io(struct blkset *bs, struct blk_txn *t);
void blk_commit_done(struct blkset *bs, const struct blk_txn *t);
void blk_txn_free(struct blk_txn *t);
/* fdatasync every home file and empty the journal. */
int blk_checkpoint(struct blkset *bs);

#endif
