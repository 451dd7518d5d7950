/* SPDX-License-Identifier: MIT */
/*
 * pdev.h - a pool's storage device: the byte files one lineage's pool is
 * made of, on whatever holds them (private to fs/engine/; see pdev.c,
 * pdev_local.c).  The bottom of the engine's file chain: knows no pool,
 * no tree, no block.
 *
 * A format 2 pool is six files: the chunk slots (`data`), four files of
 * 4 KiB blocks (pages, srefs, prefs, roots) and the journal that changes
 * them together (blk.c).  What the engine needs of them is small, and it
 * is what both a local file system and Ceph RADOS give directly:
 *
 *   read      bytes at an offset; holes read as zeros, the count is short
 *             only at the end of the file;
 *   writev    bytes at an offset, all or an error (a write within one
 *             4 MiB-aligned extent is all-or-nothing on RADOS, and a
 *             torn journal record is caught by its checksum anyway);
 *   punch     give the space of a range back, the size unchanged;
 *   sync      make every completed write of the file durable (a RADOS
 *             write is durable when it completes: nothing to do);
 *   size / truncate / reserve;
 *   map       an optional read-only mapping (local files: mmap; RADOS
 *             has none, and blk.c then reads blocks into its own cache);
 *   seek      where data and holes are (fsck's leak check; optional).
 *
 * The device names itself (`where`) for the messages that tell an
 * operator which files to restore.  Errors are -errno.
 */
#ifndef EVFS_PDEV_H
#define EVFS_PDEV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum pdev_file { PDEV_PAGES, PDEV_SREFS, PDEV_PREFS, PDEV_ROOTS, PDEV_JOURNAL, PDEV_DATA, PDEV_NFILES };

/* File names (local: in the pool directory; RADOS: in object names). */
extern const char *const pdev_file_names[PDEV_NFILES];

struct pdev;

struct pdev_ops {
	ssize_t (*read)(struct pdev *d, enum pdev_file f, void *buf, size_t len, uint64_t off);
	int (*writev)(struct pdev *d, enum pdev_file f, const struct iovec *iov, int iovcnt, uint64_t off);
	int (*punch)(struct pdev *d, enum pdev_file f, uint64_t off, uint64_t len);
	int (*sync)(struct pdev *d, enum pdev_file f);
	int (*size)(struct pdev *d, enum pdev_file f, uint64_t *size);
	int (*truncate)(struct pdev *d, enum pdev_file f, uint64_t size);
	/* Space for the first `len` bytes allocated now (best effort). */
	void (*reserve)(struct pdev *d, enum pdev_file f, uint64_t len);
	/* NULL on error.  A device that cannot map leaves map and unmap NULL. */
	const uint8_t *(*map)(struct pdev *d, enum pdev_file f, uint64_t off, size_t len);
	void (*unmap)(struct pdev *d, const uint8_t *m, size_t len);
	/* lseek(2)'s SEEK_DATA / SEEK_HOLE: the first offset >= off in data
	 * (-ENXIO: none) or in a hole (the end of the file counts).  May be
	 * NULL: then the whole file counts as data. */
	int64_t (*seek)(struct pdev *d, enum pdev_file f, uint64_t off, int whence);
	void (*close)(struct pdev *d);
};

struct pdev {
	const struct pdev_ops *ops;
	char where[4096];                         /* "STORE/pools/<lineage>", "rados:POOL/<lineage>" */
	unsigned files;                           /* bit per enum pdev_file the device holds open */
	/* A data write costs more per call than per byte (an op to an OSD,
	 * an O_DIRECT write): the sealing hands a whole pass over in one
	 * write per run of slots instead of pieces overlapped with it. */
	int large_writes;
};

/* Calls through d->ops: the engine uses these, never the table. */
ssize_t pdev_read(struct pdev *d, enum pdev_file f, void *buf, size_t len, uint64_t off);
int pdev_write(struct pdev *d, enum pdev_file f, const void *buf, size_t len, uint64_t off);
int pdev_writev(struct pdev *d, enum pdev_file f, const struct iovec *iov, int iovcnt, uint64_t off);
int pdev_punch(struct pdev *d, enum pdev_file f, uint64_t off, uint64_t len);
int pdev_sync(struct pdev *d, enum pdev_file f);
int pdev_size(struct pdev *d, enum pdev_file f, uint64_t *size);
int pdev_truncate(struct pdev *d, enum pdev_file f, uint64_t size);
void pdev_reserve(struct pdev *d, enum pdev_file f, uint64_t len);
const uint8_t *pdev_map(struct pdev *d, enum pdev_file f, uint64_t off, size_t len);
void pdev_unmap(struct pdev *d, const uint8_t *m, size_t len);
int64_t pdev_seek(struct pdev *d, enum pdev_file f, uint64_t off, int whence);
/* 1 if pdev_seek tells punched space from data (local files); 0 if every
 * byte below the size counts as data (RADOS: the C API has no sparse read,
 * and a zeroed range reads like any other). */
int pdev_holes(const struct pdev *d);
void pdev_close(struct pdev *d);

/* --- local files (pdev_local.c) ----------------------------------------
 * The pool directory dir_fd (the device dups it).  `files` says which to
 * open (bits of enum pdev_file); with create, the block files and the
 * journal are made (O_EXCL) under their name followed by sfx (".new": a
 * pool being built, renamed into place by pdev_local_publish).  `data` is
 * never created here (its pool's creator makes it) and has no suffix.  `where` names the directory in messages. */
int pdev_local_open(struct pdev **out, int dir_fd, const char *where, unsigned files, int create, const char *sfx);
/* The directory the device was opened on (a pool's v1 files, maps/). */
int pdev_local_dir_fd(const struct pdev *d);
/* A pool built under sfx made the pool: sync the files, rename the journal,
 * then the block files with `roots` last (what makes the directory a
 * format 2 pool), fsync the directory.  pdev_local_unpublished removes
 * whatever files a build under sfx left. */
int pdev_local_publish(int dir_fd, const char *sfx);
void pdev_local_unpublished(int dir_fd, const char *sfx);

#define PDEV_BIT(f) (1u << (f))
#define PDEV_BLOCK_FILES (PDEV_BIT(PDEV_PAGES) | PDEV_BIT(PDEV_SREFS) | PDEV_BIT(PDEV_PREFS) | PDEV_BIT(PDEV_ROOTS) | \
			  PDEV_BIT(PDEV_JOURNAL))

#endif
