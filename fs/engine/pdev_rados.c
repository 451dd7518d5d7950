// SPDX-License-Identifier: MIT
/*
 * pdev_rados.c - a pool's storage device as objects in a RADOS pool, so
 * that a pool can live in Ceph instead of a local directory.
 *
 * RADOS stores objects, not files, and an object is best kept to a few
 * MiB, so each of the six files of lineage L is striped over objects of
 * 4 MiB extents:
 *
 *   L.hdr                      the header: no data, only xattrs
 *       published              "1" once the pool exists for other opens
 *       size.<file>            the file's size, decimal (missing: 0)
 *   L.<file>.<k>               bytes [k * 4 MiB, (k + 1) * 4 MiB) of <file>
 *                              (pdev_file_names; k as 16 lowercase hex)
 *
 * A missing object, or the part of one past its end, reads as zeros: the
 * files are sparse the way local ones are, and punching a whole extent is
 * removing its object.  A write within one extent is one write op, so it
 * is applied whole or not at all; a longer read or write is one op per
 * extent, all in flight together (up to INFLIGHT), which matters on the
 * data path where 128 KiB - 1 MiB requests are common.  Writes are durable
 * once they return, except the data file's chunk writes: those stay in
 * flight until the data file's sync (see "data writes in flight").
 *
 * Sizes are the one piece of state kept here: RADOS has no size for a
 * striped file, and asking every extent would be a round trip per extent.
 * The device is its lineage's single writer (pdev_rados_lock, below), so it
 * keeps each size in memory, raises it at once when a write
 * ends past it (a CAS loop: writers run on many threads), and persists it
 * in the header on sync, truncate and publish, only when it changed.  A
 * write past the persisted size that is not followed by a sync before a
 * crash is forgotten with the size: its bytes past the end are invisible,
 * but they come back should the file grow over them without writing them
 * first: a write past the end leaves what lies between as it finds it.
 * A truncate clears everything between the old end and the new.
 *
 * Publishing mirrors pdev_local's rename into place: a create makes the
 * header exclusively and unpublished, the builder writes the files, and
 * pdev_rados_publish persists the sizes and sets `published` in one op.
 * An unpublished header is what a build cut short left behind: a create
 * removes it and the lineage's objects first.  Removal goes the other way:
 * the header first (the pool is gone for everyone at once), then every
 * object with the lineage's prefix, found by listing the pool.
 *
 * The lineages of a pool (fsck) are the header objects a listing of the
 * pool finds; the objects are in the ioctx's namespace (a store's own,
 * pdev_rados_connect), so `where` names it: "rados:<pool>/<ns>/<lineage>",
 * or "rados:<pool>/<lineage>" in the default namespace.
 *
 * One writer per lineage in the cluster: the engine takes the exclusive
 * lock `evfs.writer` on the header for as long as the pool is open, as a
 * lease renewed by a thread of the device, and records itself in the
 * header's `writer` xattr; past its lease, by its own clock, the device
 * does no more I/O, and another host may take over after blocklisting it
 * (pdev_rados_fence).  While it holds the lock the device also watches the
 * header: another host's request for the lineage's writer (a snapshot of
 * a volume attached here) arrives as a notify there (pdev_rados_forward).
 *
 * Header updates after the create carry an assert_exists, so a device
 * whose lineage was removed under it gets -ENOENT instead of making an
 * orphan header.  Errors are librados' own negative errno values (a
 * blocklisted client gets its error from every call); nothing is printed.
 */
#include "pdev_rados.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#define EXT_SHIFT 22
#define EXT_SIZE ((uint64_t)1 << EXT_SHIFT)
#define EXT_MASK (EXT_SIZE - 1)
#define INFLIGHT 32                       /* ops in flight per call */
#define WB_MAX 128                        /* data writes in flight between syncs */
#define WB_BYTES (32u << 20)              /* and their bytes (librados holds a copy of each) */
#define LINEAGE_LEN 32
#define OID_MAX 64                        /* "<lineage>.journal.<16 hex>" and a NUL: 58 */
#define XATTR_PUBLISHED "published"
#define XATTR_SIZE "size."
#define LOCK_NAME "evfs.writer"
#define XATTR_WRITER "writer"                  /* who holds LOCK_NAME, for a steal */
#define COOKIE_MAX 128                    /* "<owner> <pid> <16 hex>" */

struct pdev_rados {
	struct pdev d;
	rados_ioctx_t io;
	char lineage[LINEAGE_LEN + 1];
	char hdr[OID_MAX];
	_Atomic uint64_t size[PDEV_NFILES];     /* in memory: what reads see */
	pthread_mutex_t mu;                     /* header updates; saved[] */
	uint64_t saved[PDEV_NFILES];            /* as persisted in the header */
	char cookie[COOKIE_MAX];                /* of the writer lock it holds, or "" */
	unsigned lease;                         /* seconds the lock lasts unrenewed; 0: for ever */
	pthread_t renewer;                      /* renews it every lease / 3 (lease > 0) */
	pthread_mutex_t lmu;                    /* stop, with lcv: wakes the renewer */
	pthread_cond_t lcv;
	int stop;
	_Atomic int lost;                       /* a renewal failed: no more I/O */
	_Atomic int64_t renewed;                /* CLOCK_MONOTONIC ns when the last renewal that
						   succeeded was sent */
	pthread_mutex_t wmu;                    /* the data writes in flight below */
	struct aio *wb;                         /* ring of WB_MAX data writes not yet reaped */
	unsigned wb_head, wb_n;
	size_t wb_bytes;
	int wb_err;                             /* the first that failed, for the next sync */
	pdev_rados_forward_fn fwd;              /* runs requests other hosts notify */
	void *fwd_ctx;
	uint64_t watch;                         /* the header watch, when fwd is set */
	int watching;
};

static inline struct pdev_rados *R(struct pdev *d)
{
	return (struct pdev_rados *)d;
}

static int lineage_ok(const char *lineage)
{
	size_t i;

	if (!lineage)
		return 0;
	for (i = 0; i < LINEAGE_LEN; i++)
		if (!((lineage[i] >= '0' && lineage[i] <= '9') || (lineage[i] >= 'a' && lineage[i] <= 'f')))
			return 0;
	return lineage[i] == 0;
}

static void hdr_oid(char *oid, const char *lineage)
{
	snprintf(oid, OID_MAX, "%s.hdr", lineage);
}

static void ext_oid(char *oid, const struct pdev_rados *r, enum pdev_file f, uint64_t k)
{
	snprintf(oid, OID_MAX, "%s.%s.%016" PRIx64, r->lineage, pdev_file_names[f], k);
}

static int file_ok(struct pdev *d, enum pdev_file f)
{
	return (unsigned)f < PDEV_NFILES && (d->files & PDEV_BIT(f));
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether r may still do I/O: its lock held, and with a lease, renewed
 * less than a lease ago as this process's clock counts (the OSD counts
 * from when it applied the renewal, which is later).  A process stopped
 * past its lease (SIGSTOP, a stall) finds this false when it wakes, before
 * any request of its own goes out, whether or not its renewer ran yet. */
static int lease_ok(struct pdev_rados *r)
{
	if (atomic_load(&r->lost))
		return 0;
	if (r->lease && mono_ns() - atomic_load(&r->renewed) >= (int64_t)r->lease * 1000000000) {
		atomic_store(&r->lost, 1);
		return 0;
	}
	return 1;
}

/* ---- ops in flight --------------------------------------------------- */

struct aio {
	rados_completion_t c;
	rados_write_op_t op;                    /* released once complete */
	char *fill;                             /* reads: zero [result, len) of fill */
	size_t len;                             /* of fill; of a write in flight */
	int enoent_ok;                          /* a missing object is no error */
};

struct batch {
	int n;
	int err;                                /* the first error */
	struct aio a[INFLIGHT];
};

/* Wait for every op of b and take their results; b->err is the first error. */
static int batch_reap(struct batch *b)
{
	for (int i = 0; i < b->n; i++) {
		struct aio *a = &b->a[i];
		int ret;

		rados_aio_wait_for_complete(a->c);
		ret = rados_aio_get_return_value(a->c);
		rados_aio_release(a->c);
		if (a->op)
			rados_release_write_op(a->op);
		if (ret == -ENOENT && (a->enoent_ok || a->fill))
			ret = 0;
		if (ret >= 0 && a->fill && (size_t)ret < a->len)
			memset(a->fill + ret, 0, a->len - (size_t)ret);
		if (ret < 0 && !b->err)
			b->err = ret;
	}
	b->n = 0;
	return b->err;
}

/* A free slot with a fresh completion, after waiting for the ops in flight
 * if every slot is taken; NULL once the batch failed.  The caller fills the
 * slot, issues the op and then calls batch_issued. */
static struct aio *batch_slot(struct batch *b)
{
	struct aio *a;

	if (b->n == INFLIGHT)
		batch_reap(b);
	if (b->err)
		return NULL;
	a = &b->a[b->n];
	memset(a, 0, sizeof(*a));
	if (rados_aio_create_completion2(NULL, NULL, &a->c) < 0) {
		b->err = -ENOMEM;
		return NULL;
	}
	return a;
}

/* ret: what issuing the op in the slot returned. */
static void batch_issued(struct batch *b, struct aio *a, int ret)
{
	if (ret >= 0) {
		b->n++;
		return;
	}
	rados_aio_release(a->c);
	if (a->op)
		rados_release_write_op(a->op);
	if (!b->err)
		b->err = ret;
}

static void batch_remove(struct batch *b, rados_ioctx_t io, const char *oid)
{
	struct aio *a = batch_slot(b);

	if (!a)
		return;
	a->enoent_ok = 1;
	batch_issued(b, a, rados_aio_remove(io, oid, a->c));
}

/* Zero [off, off + len) of an existing object, or cut it at off when the
 * range reaches the end of its extent; nothing if the object is missing. */
static void batch_clear(struct batch *b, rados_ioctx_t io, const char *oid, uint64_t off, uint64_t len)
{
	struct aio *a = batch_slot(b);

	if (!a)
		return;
	a->enoent_ok = 1;
	a->op = rados_create_write_op();
	if (!a->op) {
		batch_issued(b, a, -ENOMEM);
		return;
	}
	rados_write_op_assert_exists(a->op);
	if (off + len == EXT_SIZE)
		rados_write_op_truncate(a->op, off);
	else
		rados_write_op_zero(a->op, off, len);
	batch_issued(b, a, rados_aio_write_op_operate(a->op, io, a->c, oid, NULL, 0));
}

/* ---- data writes in flight --------------------------------------------
 *
 * A chunk is one 4 KiB write of the data file, and waiting for each before
 * acknowledging it made a sequential write one round trip per chunk.  So
 * a data write is issued (one op per extent it touches) and returns; up to
 * WB_MAX writes and WB_BYTES stay in flight (past either, the oldest is
 * waited for), and sync of the data file waits for all of them and reports
 * the first that failed, the way a page cache reports writeback errors at
 * fsync.  The engine syncs the data file before a tree naming the chunks
 * is committed (tree.c), so nothing durable ever points at a chunk still
 * in flight.  Reads and later writes of the same object are ordered after
 * it by RADOS (one client, one object: in order), so nobody sees an older
 * chunk. */

/* Wait for the oldest write in flight; under wmu. */
static void wb_reap_one(struct pdev_rados *r)
{
	struct aio *a = &r->wb[r->wb_head];
	int ret;

	rados_aio_wait_for_complete(a->c);
	ret = rados_aio_get_return_value(a->c);
	rados_aio_release(a->c);
	rados_release_write_op(a->op);
	if (ret < 0 && !r->wb_err)
		r->wb_err = ret;
	r->wb_bytes -= a->len;
	r->wb_head = (r->wb_head + 1) % WB_MAX;
	r->wb_n--;
}

/* Wait for every data write in flight: 0, or the first error since the
 * last drain. */
static int wb_drain(struct pdev_rados *r)
{
	int err;

	pthread_mutex_lock(&r->wmu);
	while (r->wb_n)
		wb_reap_one(r);
	err = r->wb_err;
	r->wb_err = 0;
	pthread_mutex_unlock(&r->wmu);
	return err;
}

/* Add to op the writes of the next n bytes of iov, from piece *i, byte
 * *ioff on, at offset o of the object; the cursor moves past them.  The
 * pieces are not copied here: librados copies each into the op. */
static void op_write_iov(rados_write_op_t op, const struct iovec *iov, int *i, size_t *ioff, size_t n, uint64_t o)
{
	while (n) {
		size_t k;

		while (*ioff == iov[*i].iov_len) {
			(*i)++;
			*ioff = 0;
		}
		k = iov[*i].iov_len - *ioff < n ? iov[*i].iov_len - *ioff : n;
		rados_write_op_write(op, (const char *)iov[*i].iov_base + *ioff, k, o);
		*ioff += k;
		o += k;
		n -= k;
	}
}

/* Issue the data write of the next n bytes of iov (cursor *i, *ioff) at
 * off, within one extent; returns once it is in flight. */
static int wb_write(struct pdev_rados *r, const struct iovec *iov, int *i, size_t *ioff, uint64_t off, size_t n)
{
	char oid[OID_MAX];
	struct aio *a;
	int err;

	ext_oid(oid, r, PDEV_DATA, off >> EXT_SHIFT);
	pthread_mutex_lock(&r->wmu);
	while (r->wb_n == WB_MAX || (r->wb_n && r->wb_bytes + n > WB_BYTES))
		wb_reap_one(r);
	a = &r->wb[(r->wb_head + r->wb_n) % WB_MAX];
	memset(a, 0, sizeof(*a));
	err = rados_aio_create_completion2(NULL, NULL, &a->c);
	if (!err && !(a->op = rados_create_write_op())) {
		rados_aio_release(a->c);
		err = -ENOMEM;
	}
	if (!err) {
		op_write_iov(a->op, iov, i, ioff, n, off & EXT_MASK);
		err = rados_aio_write_op_operate(a->op, r->io, a->c, oid, NULL, 0);
		if (err < 0) {
			rados_aio_release(a->c);
			rados_release_write_op(a->op);
		}
	}
	if (!err) {
		a->len = n;
		r->wb_n++;
		r->wb_bytes += n;
	}
	pthread_mutex_unlock(&r->wmu);
	return err;
}

/* ---- the header ------------------------------------------------------ */

static int parse_size(const char *val, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return -EIO;
	for (size_t i = 0; i < len; i++) {
		unsigned dig = (unsigned)(val[i] - '0');

		if (dig > 9 || v > (UINT64_MAX - dig) / 10)
			return -EIO;
		v = v * 10 + dig;
	}
	*out = v;
	return 0;
}

/* The header's state in one round trip: 1 published, 0 not; -ENOENT when
 * there is no header.  size (optional) gets the persisted file sizes. */
static int hdr_read(rados_ioctx_t io, const char *hdr, uint64_t size[PDEV_NFILES])
{
	rados_xattrs_iter_t it;
	const char *name, *val;
	size_t len;
	int published = 0, err;

	if (size)
		memset(size, 0, PDEV_NFILES * sizeof(size[0]));
	err = rados_getxattrs(io, hdr, &it);
	if (err < 0)
		return err;
	for (;;) {
		err = rados_getxattrs_next(it, &name, &val, &len);
		if (err < 0 || !name)
			break;
		if (!strcmp(name, XATTR_PUBLISHED)) {
			published = len == 1 && val[0] == '1';
			continue;
		}
		if (!size || strncmp(name, XATTR_SIZE, strlen(XATTR_SIZE)))
			continue;
		for (int f = 0; f < PDEV_NFILES; f++)
			if (!strcmp(name + strlen(XATTR_SIZE), pdev_file_names[f]))
				err = parse_size(val, len, &size[f]);
		if (err < 0)
			break;
	}
	rados_getxattrs_end(it);
	return err < 0 ? err : published;
}

/* Persist the sizes of the files in mask that changed (all of them with
 * publish, which also marks the pool published).  Under r->mu. */
static int hdr_update(struct pdev_rados *r, unsigned mask, int publish)
{
	char val[PDEV_NFILES][24], name[PDEV_NFILES][32];
	uint64_t now[PDEV_NFILES];
	rados_write_op_t op;
	int n = 0, err;

	for (int f = 0; f < PDEV_NFILES; f++) {
		now[f] = atomic_load(&r->size[f]);
		if (!(mask & PDEV_BIT(f)) || (!publish && now[f] == r->saved[f]))
			continue;
		snprintf(name[f], sizeof(name[f]), XATTR_SIZE "%s", pdev_file_names[f]);
		snprintf(val[f], sizeof(val[f]), "%" PRIu64, now[f]);
		n++;
	}
	if (!n && !publish)
		return 0;
	if (!lease_ok(r))
		return -EIO;
	op = rados_create_write_op();
	if (!op)
		return -ENOMEM;
	rados_write_op_assert_exists(op);
	for (int f = 0; f < PDEV_NFILES; f++)
		if ((mask & PDEV_BIT(f)) && (publish || now[f] != r->saved[f]))
			rados_write_op_setxattr(op, name[f], val[f], strlen(val[f]));
	if (publish)
		rados_write_op_setxattr(op, XATTR_PUBLISHED, "1", 1);
	err = rados_write_op_operate(op, r->io, r->hdr, NULL, 0);
	rados_release_write_op(op);
	if (err < 0)
		return err;
	for (int f = 0; f < PDEV_NFILES; f++)
		if (mask & PDEV_BIT(f))
			r->saved[f] = now[f];
	return 0;
}

/* ---- the operations -------------------------------------------------- */

static ssize_t rados_dev_read(struct pdev *d, enum pdev_file f, void *buf, size_t len, uint64_t off)
{
	struct pdev_rados *r = R(d);
	struct batch b = { 0 };
	char oid[OID_MAX];
	uint64_t size;
	size_t done;

	if (!file_ok(d, f))
		return -EBADF;
	if (!lease_ok(R(d)))
		return -EIO;              /* the writer lock is no longer ours */
	size = atomic_load(&r->size[f]);
	if (off >= size || !len)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if ((off & EXT_MASK) + len <= EXT_SIZE) {
		/* one extent: no completion to set up */
		int ret;

		ext_oid(oid, r, f, off >> EXT_SHIFT);
		ret = rados_read(r->io, oid, buf, len, off & EXT_MASK);
		if (ret == -ENOENT)
			ret = 0;
		if (ret < 0)
			return ret;
		memset((char *)buf + ret, 0, len - (size_t)ret);
		return (ssize_t)len;
	}
	for (done = 0; done < len;) {
		uint64_t pos = off + done, o = pos & EXT_MASK;
		size_t n = len - done < EXT_SIZE - o ? len - done : (size_t)(EXT_SIZE - o);
		struct aio *a = batch_slot(&b);

		if (!a)
			break;
		a->fill = (char *)buf + done;
		a->len = n;
		ext_oid(oid, r, f, pos >> EXT_SHIFT);
		batch_issued(&b, a, rados_aio_read(r->io, oid, a->c, a->fill, n, o));
		done += n;
	}
	return batch_reap(&b) < 0 ? b.err : (ssize_t)len;
}

/* What reads see grows to end (writes of other threads may race). */
static void size_grow(struct pdev_rados *r, enum pdev_file f, uint64_t end)
{
	uint64_t cur = atomic_load(&r->size[f]);

	while (cur < end && !atomic_compare_exchange_weak(&r->size[f], &cur, end))
		;
}

static int rados_dev_writev(struct pdev *d, enum pdev_file f, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct pdev_rados *r = R(d);
	struct batch b = { 0 };
	char oid[OID_MAX];
	uint64_t total = 0, done;
	size_t ioff = 0;
	int i = 0;

	if (!file_ok(d, f))
		return -EBADF;
	if (!lease_ok(R(d)))
		return -EIO;              /* the writer lock is no longer ours */
	if (iovcnt < 0)
		return -EINVAL;
	for (int j = 0; j < iovcnt; j++) {
		if (total + iov[j].iov_len < total)
			return -EINVAL;
		total += iov[j].iov_len;
	}
	if (!total)
		return 0;
	if (off + total < off)
		return -EFBIG;
	/* One op per extent the request touches: data writes stay in flight
	 * (write-behind, above), the others up to INFLIGHT at a time until all
	 * are done. */
	for (done = 0; done < total;) {
		uint64_t pos = off + done, o = pos & EXT_MASK;
		size_t n = total - done < EXT_SIZE - o ? (size_t)(total - done) : (size_t)(EXT_SIZE - o);
		struct aio *a;

		if (f == PDEV_DATA) {
			int err = wb_write(r, iov, &i, &ioff, pos, n);

			if (err < 0)
				return err;
			done += n;
			continue;
		}
		if (!(a = batch_slot(&b)))
			break;
		a->op = rados_create_write_op();
		if (!a->op) {
			batch_issued(&b, a, -ENOMEM);
			break;
		}
		op_write_iov(a->op, iov, &i, &ioff, n, o);
		ext_oid(oid, r, f, pos >> EXT_SHIFT);
		batch_issued(&b, a, rados_aio_write_op_operate(a->op, r->io, a->c, oid, NULL, 0));
		done += n;
	}
	if (batch_reap(&b) < 0)
		return b.err;
	size_grow(r, f, off + total);
	return 0;
}

static int rados_dev_punch(struct pdev *d, enum pdev_file f, uint64_t off, uint64_t len)
{
	struct pdev_rados *r = R(d);
	struct batch b = { 0 };
	char oid[OID_MAX];
	uint64_t end, lim, size;

	if (!file_ok(d, f))
		return -EBADF;
	if (!lease_ok(R(d)))
		return -EIO;              /* the writer lock is no longer ours */
	/* nothing lies past the extent holding the end of the file (see the
	 * opening comment for bytes a crash left past it) */
	size = atomic_load(&r->size[f]);
	lim = size > UINT64_MAX - EXT_MASK ? UINT64_MAX : (size + EXT_MASK) & ~EXT_MASK;
	end = off + len < off ? UINT64_MAX : off + len;
	if (end > lim)
		end = lim;
	for (uint64_t pos = off; pos < end && !b.err;) {
		uint64_t o = pos & EXT_MASK, n = end - pos < EXT_SIZE - o ? end - pos : EXT_SIZE - o;

		ext_oid(oid, r, f, pos >> EXT_SHIFT);
		if (n == EXT_SIZE)
			batch_remove(&b, r->io, oid);
		else
			batch_clear(&b, r->io, oid, o, n);
		pos += n;
	}
	return batch_reap(&b);
}

static int rados_dev_sync(struct pdev *d, enum pdev_file f)
{
	struct pdev_rados *r = R(d);
	int err;

	if (!file_ok(d, f))
		return -EBADF;
	if (!lease_ok(R(d)))
		return -EIO;              /* the writer lock is no longer ours */
	if (f == PDEV_DATA && (err = wb_drain(r)) < 0)
		return err;
	pthread_mutex_lock(&r->mu);
	err = hdr_update(r, PDEV_BIT(f), 0);
	pthread_mutex_unlock(&r->mu);
	return err;
}

static int rados_dev_size(struct pdev *d, enum pdev_file f, uint64_t *size)
{
	if (!file_ok(d, f))
		return -EBADF;
	if (!lease_ok(R(d)))
		return -EIO;              /* the writer lock is no longer ours */
	*size = atomic_load(&R(d)->size[f]);
	return 0;
}

static int rados_dev_truncate(struct pdev *d, enum pdev_file f, uint64_t size)
{
	struct pdev_rados *r = R(d);
	struct batch b = { 0 };
	char oid[OID_MAX];
	uint64_t cur, lo, hi;
	int err;

	if (!file_ok(d, f))
		return -EBADF;
	if (!lease_ok(R(d)))
		return -EIO;              /* the writer lock is no longer ours */
	if (size > UINT64_MAX - EXT_MASK)
		return -EFBIG;
	pthread_mutex_lock(&r->mu);
	cur = atomic_load(&r->size[f]);
	/* Nothing may remain between the old end and the new: shrinking cuts
	 * the bytes off, growing must read zeros there (not what a crash left
	 * past an unsynced size).  The objects first: a crash before the size
	 * is persisted leaves zeros, never stale bytes. */
	lo = size < cur ? size : cur;
	hi = size < cur ? cur : size;
	if (lo < hi) {
		if (lo & EXT_MASK) {
			ext_oid(oid, r, f, lo >> EXT_SHIFT);
			batch_clear(&b, r->io, oid, lo & EXT_MASK, EXT_SIZE - (lo & EXT_MASK));
		}
		for (uint64_t k = (lo + EXT_MASK) >> EXT_SHIFT; k < (hi + EXT_MASK) >> EXT_SHIFT && !b.err; k++) {
			ext_oid(oid, r, f, k);
			batch_remove(&b, r->io, oid);
		}
		err = batch_reap(&b);
		if (err < 0)
			goto out;
	}
	atomic_store(&r->size[f], size);
	err = hdr_update(r, PDEV_BIT(f), 0);
out:
	pthread_mutex_unlock(&r->mu);
	return err;
}

static void rados_dev_reserve(struct pdev *d, enum pdev_file f, uint64_t len)
{
	(void)d;
	(void)f;
	(void)len;
}



static void rados_dev_close(struct pdev *d)
{
	struct pdev_rados *r = R(d);

	(void)wb_drain(r);        /* nothing may land after the lock is let go */

	if (r->lease) {
		pthread_mutex_lock(&r->lmu);
		r->stop = 1;
		pthread_cond_signal(&r->lcv);
		pthread_mutex_unlock(&r->lmu);
		pthread_join(r->renewer, NULL);
		pthread_cond_destroy(&r->lcv);
		pthread_mutex_destroy(&r->lmu);
	}
	if (r->watching)
		(void)rados_unwatch2(r->io, r->watch);   /* waits for a callback under way */
	if (r->cookie[0] && !atomic_load(&r->lost)) {
		/* The record first: one without a lock means a lease ran out. */
		(void)rados_rmxattr(r->io, r->hdr, XATTR_WRITER);
		(void)rados_unlock(r->io, r->hdr, LOCK_NAME, r->cookie);
	}
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->wmu);
	free(r->wb);
	free(d);
}

static const struct pdev_ops rados_ops = {
	.read = rados_dev_read,
	.writev = rados_dev_writev,
	.punch = rados_dev_punch,
	.sync = rados_dev_sync,
	.size = rados_dev_size,
	.truncate = rados_dev_truncate,
	.reserve = rados_dev_reserve,
	.map = NULL,                          /* no mappings: blk.c reads copies */
	.unmap = NULL,
	.seek = NULL,                         /* every byte counts as data (pdev_holes: 0) */
	.close = rados_dev_close,
};

/* ---- the lineage ----------------------------------------------------- */

int pdev_rados_open(struct pdev **out, rados_ioctx_t io, const char *lineage, unsigned files, int create)
{
	struct pdev_rados *r;
	uint64_t size[PDEV_NFILES];
	char pool[256], ns[256];
	int err;

	*out = NULL;
	if (!lineage_ok(lineage) || (files & ~((1u << PDEV_NFILES) - 1)))
		return -EINVAL;
	err = rados_ioctx_get_pool_name(io, pool, sizeof(pool));
	if (err >= 0)
		err = rados_ioctx_get_namespace(io, ns, sizeof(ns));
	if (err < 0)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->d.ops = &rados_ops;
	r->d.files = files;
	r->d.large_writes = 1;
	r->io = io;
	memcpy(r->lineage, lineage, LINEAGE_LEN + 1);
	hdr_oid(r->hdr, lineage);
	snprintf(r->d.where, sizeof(r->d.where), "rados:%s/%s%s%s", pool, ns, ns[0] ? "/" : "", lineage);
	err = hdr_read(io, r->hdr, size);
	if (create) {
		rados_write_op_t op;

		if (err == 1)
			err = -EEXIST;
		else if (err == 0)              /* a build cut short */
			err = pdev_rados_remove(io, lineage);
		else if (err == -ENOENT)
			err = 0;
		if (err < 0)
			goto fail;
		memset(size, 0, sizeof(size));
		op = rados_create_write_op();
		if (!op) {
			err = -ENOMEM;
			goto fail;
		}
		rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
		err = rados_write_op_operate(op, io, r->hdr, NULL, 0);
		rados_release_write_op(op);
	} else if (err == 0) {
		err = -ENOENT;
	}
	if (err < 0)
		goto fail;
	for (int f = 0; f < PDEV_NFILES; f++) {
		atomic_init(&r->size[f], size[f]);
		r->saved[f] = size[f];
	}
	r->wb = calloc(WB_MAX, sizeof(*r->wb));
	if (!r->wb) {
		err = -ENOMEM;
		goto fail;
	}
	err = -pthread_mutex_init(&r->mu, NULL);
	if (!err && (err = -pthread_mutex_init(&r->wmu, NULL)) < 0)
		pthread_mutex_destroy(&r->mu);
	if (err < 0)
		goto fail;
	*out = &r->d;
	return 0;
fail:
	free(r->wb);
	free(r);
	return err;
}

int pdev_rados_publish(struct pdev *d)
{
	struct pdev_rados *r = R(d);
	int err;

	pthread_mutex_lock(&r->mu);
	err = hdr_update(r, (1u << PDEV_NFILES) - 1, 1);
	pthread_mutex_unlock(&r->mu);
	return err;
}

/* ---- the writer lock -------------------------------------------------- */

/* The lockers of r's header: their clients, cookies and addresses, each a
 * run of NUL-terminated strings; the count, or -errno. */
static ssize_t lockers(rados_ioctx_t io, const char *hdr, char *clients, char *cookies, char *addrs, size_t n)
{
	char tag[128];
	size_t tl = sizeof(tag), cl = n, kl = n, al = n;
	int excl;

	return rados_list_lockers(io, hdr, LOCK_NAME, &excl, tag, &tl, clients, &cl, cookies, &kl, addrs, &al);
}

/* Fence a locker off the OSDs for an hour, then break its lock. */
static int fence(rados_ioctx_t io, const char *hdr, const char *client, const char *cookie, const char *addr)
{
	char a[1024];
	int err;

	snprintf(a, sizeof(a), "%s", addr);
	err = rados_blocklist_add(rados_ioctx_get_cluster(io), a, 3600);
	if (!err)
		err = rados_break_lock(io, hdr, LOCK_NAME, client, cookie);
	return err == -ENOENT ? 0 : err;
}

/* A lock of this host's `owner` whose process is gone (a killed mount):
 * its client is fenced off the OSDs, then its lock broken.  1 if it was. */
static int break_stale(struct pdev_rados *r, const char *owner, const char *client, const char *cookie,
		       const char *addr)
{
	char who[COOKIE_MAX];
	long pid;
	int n = 0;

	if (sscanf(cookie, "%127s %ld %n", who, &pid, &n) != 2 || !n || strcmp(who, owner) != 0 || pid <= 0 ||
	    pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
		return 0;
	/* Whatever the dead client still had in flight must not land after us. */
	return fence(r->io, r->hdr, client, cookie, addr) == 0;
}

static void copy_str(char *dst, size_t n, const char *src)
{
	size_t l = strnlen(src, n - 1);

	memcpy(dst, src, l);
	dst[l] = '\0';
}

/* The writer record of hdr (XATTR_WRITER: "<cookie>\n<client>\n<addr>"):
 * 1 with its parts copied out, 0 if there is none, or -errno. */
static int writer_get(rados_ioctx_t io, const char *hdr, char *client, char *cookie, char *addr, size_t n)
{
	char buf[3 * COOKIE_MAX + 2048], *a, *b;
	int len = rados_getxattr(io, hdr, XATTR_WRITER, buf, sizeof(buf) - 1);

	if (len == -ENODATA || len == -ENOENT)
		return 0;
	if (len < 0)
		return len;
	buf[len] = '\0';
	if (!(a = strchr(buf, '\n')) || !(b = strchr(a + 1, '\n')))
		return -EIO;
	*a++ = '\0';
	*b++ = '\0';
	copy_str(cookie, n, buf);
	copy_str(client, n, a);
	copy_str(addr, n, b);
	return 1;
}

static void watch_cb(void *arg, uint64_t notify_id, uint64_t handle, uint64_t notifier, void *data, size_t len);
static void watch_err(void *arg, uint64_t cookie, int err);

/* Renew r's lock every third of its lease until closed; a renewal that
 * fails (another host took the pool after the lease ran out, or this client
 * was blocklisted) ends the device's I/O for good.  It also mends the
 * header watch. */
static void *renew_main(void *arg)
{
	struct pdev_rados *r = arg;
	struct timeval tv = { .tv_sec = r->lease };
	struct timespec at;

	pthread_mutex_lock(&r->lmu);
	while (!r->stop) {
		clock_gettime(CLOCK_REALTIME, &at);
		at.tv_sec += r->lease / 3 ? r->lease / 3 : 1;
		if (pthread_cond_timedwait(&r->lcv, &r->lmu, &at) != ETIMEDOUT || r->stop)
			continue;
		pthread_mutex_unlock(&r->lmu);
		int64_t t = mono_ns();
		int err = lease_ok(r) ? rados_lock_exclusive(r->io, r->hdr, LOCK_NAME, r->cookie, "evfs pool writer",
							     &tv, LIBRADOS_LOCK_FLAG_MAY_RENEW)
				      : -ETIMEDOUT;
		if (!err && r->fwd && (!r->watching || rados_watch_check(r->io, r->watch) < 0)) {
			/* The watch broke (a lost session, an OSD restarting):
			 * forwarded requests would find nobody until it is back. */
			if (r->watching)
				(void)rados_unwatch2(r->io, r->watch);
			r->watching = rados_watch2(r->io, r->hdr, &r->watch, watch_cb, watch_err, r) == 0;
		}
		pthread_mutex_lock(&r->lmu);
		if (err < 0) {
			atomic_store(&r->lost, 1);
			break;
		}
		atomic_store(&r->renewed, t);
	}
	pthread_mutex_unlock(&r->lmu);
	return NULL;
}

/* The one locker of hdr, if any: 1 with its client, cookie and address
 * copied out, 0 if none, or -errno. */
static int one_locker(rados_ioctx_t io, const char *hdr, char *client, char *cookie, char *addr, size_t n)
{
	ssize_t k = lockers(io, hdr, client, cookie, addr, n);

	if (k == -ENOENT || k == 0)
		return 0;
	return k < 0 ? (int)k : 1;
}

int pdev_rados_fence(rados_ioctx_t io, const char *lineage, const char *owner, unsigned lease)
{
	char hdr[OID_MAX], clients[1024], cookies[1024], addrs[1024], who[COOKIE_MAX], mine[COOKIE_MAX];
	struct timeval tv = { .tv_sec = lease };
	uint8_t rnd[8];
	int err, shown;

	if (!lineage_ok(lineage) || !owner || !owner[0])
		return -EINVAL;
	hdr_oid(hdr, lineage);
	/* The lock as the OSD shows it, else the record its holder left: an
	 * expired lock is not shown (its holder may be hung, not gone), and a
	 * holder that let go removed the record first. */
	err = shown = one_locker(io, hdr, clients, cookies, addrs, sizeof(clients));
	if (err == 0)
		err = writer_get(io, hdr, clients, cookies, addrs, sizeof(clients));
	if (err <= 0 || sscanf(cookies, "%127s", who) != 1 || strcmp(who, owner) != 0)
		return err;
	if (lease) {
		/* Only past the lease: a lock of our own is granted only then,
		 * and keeps the holder from renewing while we fence it. */
		randombytes_buf(rnd, sizeof(rnd));
		snprintf(mine, sizeof(mine), "steal %ld %02x%02x%02x%02x%02x%02x%02x%02x", (long)getpid(), rnd[0],
			 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
		err = rados_lock_exclusive(io, hdr, LOCK_NAME, mine, "evfs pool steal", &tv, 0);
		if (err < 0)
			return err;
		shown = 0;
	}
	/* Whatever the holder still has in flight must not land after us. */
	err = shown == 1 ? fence(io, hdr, clients, cookies, addrs)
			 : rados_blocklist_add(rados_ioctx_get_cluster(io), addrs, 3600);
	if (!err)
		(void)rados_rmxattr(io, hdr, XATTR_WRITER);
	if (lease)
		(void)rados_unlock(io, hdr, LOCK_NAME, mine);
	return err < 0 ? err : 1;
}

/* A notify on the header: a request of another host for whoever holds the
 * lineage.  Run here, in librados's watch thread (requests are short: a
 * snapshot, an image, a backup), and answered with the ack's payload. */
static void watch_cb(void *arg, uint64_t notify_id, uint64_t handle, uint64_t notifier, void *data, size_t len)
{
	struct pdev_rados *r = arg;
	void *reply = NULL;
	size_t rlen = 0;

	(void)notifier;
	if (r->fwd && lease_ok(r))
		r->fwd(r->fwd_ctx, data, len, &reply, &rlen);
	(void)rados_notify_ack(r->io, r->hdr, notify_id, handle, reply, rlen);
	free(reply);
}

static void watch_err(void *arg, uint64_t cookie, int err)
{
	(void)arg, (void)cookie, (void)err;      /* the lease decides; the renewer mends the watch */
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int pdev_rados_forward(rados_ioctx_t io, const char *lineage, const void *req, size_t len, unsigned timeout_ms,
		       void **reply, size_t *rlen)
{
	char hdr[OID_MAX], *buf = NULL;
	size_t blen = 0, at = 4;
	uint32_t acks;
	int err;

	*reply = NULL;
	*rlen = 0;
	if (!lineage_ok(lineage))
		return -EINVAL;
	hdr_oid(hdr, lineage);
	err = rados_notify2(io, hdr, req, (int)len, timeout_ms, &buf, &blen);
	if (err < 0 && err != -ETIMEDOUT) {
		rados_buffer_free(buf);
		return err;
	}
	/* The acks: le32 n, n x (le64 gid, le64 cookie, le32 len, bytes), then
	 * the watchers that timed out.  The one with a payload answered. */
	acks = blen >= 4 ? get_le32((const unsigned char *)buf) : 0;
	err = -EHOSTUNREACH;
	for (uint32_t i = 0; i < acks && at + 20 <= blen; i++) {
		const unsigned char *p = (const unsigned char *)buf + at;
		uint32_t n = get_le32(p + 16);

		at += 20;
		if (n > blen - at)
			break;
		if (n && !*reply) {
			*reply = malloc(n);
			if (!*reply) {
				err = -ENOMEM;
				break;
			}
			memcpy(*reply, buf + at, n);
			*rlen = n;
			err = 0;
		}
		at += n;
	}
	rados_buffer_free(buf);
	return err;
}

int pdev_rados_lock(struct pdev *d, const char *owner, unsigned lease, pdev_rados_forward_fn fwd, void *fwd_ctx,
		    char *holder, size_t n)
{
	struct pdev_rados *r = R(d);
	char clients[1024], cookies[1024], addrs[1024];
	char pclient[1024] = "", pcookie[1024] = "", paddr[1024] = "";
	struct timeval tv = { .tv_sec = lease };
	uint8_t rnd[8];
	int64_t t0;
	int err, taken = 0, prev;

	if (!owner || !owner[0] || strchr(owner, ' ') || strlen(owner) > 64)
		return -EINVAL;
	randombytes_buf(rnd, sizeof(rnd));
	snprintf(r->cookie, sizeof(r->cookie), "%s %ld %016" PRIx64, owner, (long)getpid(),
		 ((uint64_t)rnd[0] << 56) | ((uint64_t)rnd[1] << 48) | ((uint64_t)rnd[2] << 40) |
		 ((uint64_t)rnd[3] << 32) | ((uint64_t)rnd[4] << 24) | ((uint64_t)rnd[5] << 16) |
		 ((uint64_t)rnd[6] << 8) | rnd[7]);
	/* Who held it before: if our lock succeeds over them, their lease ran
	 * out, and they are fenced before this device writes anything. */
	prev = one_locker(r->io, r->hdr, pclient, pcookie, paddr, sizeof(pclient));
	t0 = mono_ns();
	for (int tries = 0; tries < 3; tries++) {
		ssize_t k;

		err = rados_lock_exclusive(r->io, r->hdr, LOCK_NAME, r->cookie, "evfs pool writer", lease ? &tv : NULL, 0);
		if (err != -EBUSY)
			break;
		k = lockers(r->io, r->hdr, clients, cookies, addrs, sizeof(clients));
		if (k == 0 || k == -ENOENT)
			continue;          /* let go between our lock and the listing */
		if (k != 1 || !break_stale(r, owner, clients, cookies, addrs))
			break;
		if (holder && n)
			snprintf(holder, n, "%s (%s)", cookies, clients);
		taken = 1;
	}
	if (err == -EBUSY && holder && n) {
		long pid = 0;
		char who[COOKIE_MAX] = "";

		if (lockers(r->io, r->hdr, clients, cookies, addrs, sizeof(clients)) >= 1)
			(void)sscanf(cookies, "%127s %ld", who, &pid);
		if (who[0])
			snprintf(holder, n, "host %s (pid %ld, %s)", who, pid, clients);
		else
			snprintf(holder, n, "another client");
	}
	if (!err) {
		/* Who we are, as the OSD saw our lock, for a host that must
		 * fence us should our lease run out (pdev_rados_fence). */
		char rec[3 * 1024 + 2];
		int k;

		err = one_locker(r->io, r->hdr, clients, cookies, addrs, sizeof(clients));
		if (err == 1 && strcmp(cookies, r->cookie) == 0) {
			k = snprintf(rec, sizeof(rec), "%s\n%s\n%s", cookies, clients, addrs);
			err = rados_setxattr(r->io, r->hdr, XATTR_WRITER, rec, (size_t)k);
		} else if (err >= 0) {
			err = -EIO;       /* our own lock is not there */
		}
		if (err < 0)
			(void)rados_unlock(r->io, r->hdr, LOCK_NAME, r->cookie);
	}
	if (!err && !taken && prev == 1) {
		/* Its lease ran out (or it let go just now): it fences itself
		 * (lease_ok), so no blocklisting here, which would hit a holder
		 * that merely let go at the wrong moment. */
		if (holder && n)
			snprintf(holder, n, "%s (%s)", pcookie, pclient);
		taken = 2;
	}
	if (!err && fwd) {
		/* Requests of other hosts for the lineage's writer come here. */
		r->fwd = fwd;
		r->fwd_ctx = fwd_ctx;
		err = rados_watch2(r->io, r->hdr, &r->watch, watch_cb, watch_err, r);
		r->watching = err == 0;
		if (err < 0)
			(void)rados_unlock(r->io, r->hdr, LOCK_NAME, r->cookie);
	}
	if (!err && lease) {
		r->lease = lease;
		atomic_store(&r->renewed, t0);
		pthread_mutex_init(&r->lmu, NULL);
		pthread_cond_init(&r->lcv, NULL);
		err = -pthread_create(&r->renewer, NULL, renew_main, r);
		if (err) {
			pthread_cond_destroy(&r->lcv);
			pthread_mutex_destroy(&r->lmu);
			r->lease = 0;
			if (r->watching)
				(void)rados_unwatch2(r->io, r->watch);
			r->watching = 0;
			(void)rados_unlock(r->io, r->hdr, LOCK_NAME, r->cookie);
		}
	}
	if (err < 0)
		r->cookie[0] = '\0';
	return err < 0 ? err : taken;
}

int pdev_rados_exists(rados_ioctx_t io, const char *lineage)
{
	char hdr[OID_MAX], val[8];
	int n;

	if (!lineage_ok(lineage))
		return -EINVAL;
	hdr_oid(hdr, lineage);
	n = rados_getxattr(io, hdr, XATTR_PUBLISHED, val, sizeof(val));
	if (n == -ENOENT || n == -ENODATA)
		return 0;
	if (n < 0)
		return n;
	return n == 1 && val[0] == '1';
}

int pdev_rados_remove(rados_ioctx_t io, const char *lineage)
{
	struct batch b = { 0 };
	rados_list_ctx_t ls;
	char hdr[OID_MAX];
	const char *oid;
	int err;

	if (!lineage_ok(lineage))
		return -EINVAL;
	hdr_oid(hdr, lineage);
	err = rados_remove(io, hdr);
	if (err < 0 && err != -ENOENT)
		return err;
	err = rados_nobjects_list_open(io, &ls);
	if (err < 0)
		return err;
	while (!b.err) {
		err = rados_nobjects_list_next(ls, &oid, NULL, NULL);
		if (err < 0)
			break;
		if (!strncmp(oid, lineage, LINEAGE_LEN) && oid[LINEAGE_LEN] == '.')
			batch_remove(&b, io, oid);
	}
	rados_nobjects_list_close(ls);
	if (batch_reap(&b) < 0)
		return b.err;
	return err == -ENOENT ? 0 : err;
}

int pdev_rados_list(rados_ioctx_t io, int (*cb)(void *ctx, const char *lineage), void *ctx)
{
	rados_list_ctx_t ls;
	char lineage[LINEAGE_LEN + 1];
	const char *oid;
	int n = 0, err;

	err = rados_nobjects_list_open(io, &ls);
	if (err < 0)
		return err;
	while ((err = rados_nobjects_list_next(ls, &oid, NULL, NULL)) == 0) {
		if (strlen(oid) != LINEAGE_LEN + 4 || strcmp(oid + LINEAGE_LEN, ".hdr"))
			continue;
		memcpy(lineage, oid, LINEAGE_LEN);
		lineage[LINEAGE_LEN] = 0;
		if (!lineage_ok(lineage))
			continue;
		err = cb(ctx, lineage);
		if (err)
			break;
		n++;
	}
	rados_nobjects_list_close(ls);
	if (err == -ENOENT)                     /* the end of the listing */
		err = 0;
	return err < 0 ? err : n;
}

/* ---- the cluster ----------------------------------------------------- */

int pdev_rados_connect(const char *conf, const char *pool, const char *ns, const char *client, rados_t *cluster,
		       rados_ioctx_t *io)
{
	rados_t c;
	int err;

	*cluster = NULL;
	*io = NULL;
	err = rados_create(&c, client);
	if (err < 0)
		return err;
	err = rados_conf_read_file(c, conf);
	if (!err)
		err = rados_connect(c);
	if (!err)
		err = rados_ioctx_create(c, pool, io);
	if (err < 0) {
		rados_shutdown(c);
		*io = NULL;
		return err;
	}
	if (ns && *ns)
		rados_ioctx_set_namespace(*io, ns);
	*cluster = c;
	return 0;
}

void pdev_rados_disconnect(rados_t cluster, rados_ioctx_t io)
{
	if (io)
		rados_ioctx_destroy(io);
	if (cluster)
		rados_shutdown(cluster);
}
