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

#define BLK_SIZE 4096u
#define BLK_SEG_SHIFT 18u                     /* 2^18 blocks (1 GiB) a mapping */
#define BLK_JOURNAL_RESERVE (4ull << 20)     /* allocated up front; checkpoint past it */

enum blk_file { BLK_PAGES, BLK_SREFS, BLK_PREFS, BLK_ROOTS, BLK_NFILES };

struct blk_ent;

/* The block files of one pool.  Every call but blk_commit_io() and
 * blk_close() needs the owner's lock (tree.c: pool->lock); blk_commit_io()
 * needs only that commits do not overlap (tree.c: the commit mutex). */
struct blkset {
	int dir_fd;                               /* not owned */
	int fd[BLK_NFILES], jfd;
	uint64_t nblk[BLK_NFILES];                /* blocks readable through the mappings */
	uint8_t **seg[BLK_NFILES];                /* read-only 1 GiB mappings, made on demand */
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

/* File names in the pool directory, for messages and the upgrade. */
extern const char *const blk_file_names[BLK_NFILES];

/* Open the block files and the journal under dir_fd (create: make empty
 * files first, O_EXCL, with the suffix `sfx` appended to every name, e.g.
 * ".tmp" for an upgrade in progress).  Replays a journal left by a crash
 * (every complete record, in order) and empties it.  *replayed gets the
 * number of records applied.  Errors: -errno, -EUCLEAN for files of the
 * wrong length. */
int blk_open(struct blkset *bs, int dir_fd, int create, const char *sfx, unsigned *replayed);
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
