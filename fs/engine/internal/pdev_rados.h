/* SPDX-License-Identifier: MIT */
/*
 * pdev_rados.h - a pool's storage device as objects in a RADOS pool
 * (private to fs/engine/; see pdev_rados.c for the object layout).  Built
 * only when librados was found (EVFS_HAVE_RADOS).
 *
 * A lineage (32 lowercase hex characters) names the pool's objects:
 * `<lineage>.hdr` and `<lineage>.<file>.<extent>`.  The device uses the
 * caller's ioctx, which must outlive it; every call may run on any thread.
 * Errors are -errno, whatever librados returned (a blocklisted client gets
 * its -EBLOCKLISTED / -ESHUTDOWN / -ETIMEDOUT back from every call).
 */
#ifndef EVFS_PDEV_RADOS_H
#define EVFS_PDEV_RADOS_H

#include <rados/librados.h>

#include "pdev.h"

/* Connect to the cluster of ceph.conf `conf` as client.<client> (NULL:
 * admin) and open pool `pool`, its objects in namespace ns (NULL or "":
 * the default one).  pdev_rados_disconnect undoes it. */
int pdev_rados_connect(const char *conf, const char *pool, const char *ns, const char *client, rados_t *cluster,
		       rados_ioctx_t *io);
void pdev_rados_disconnect(rados_t cluster, rados_ioctx_t io);

/* Open lineage's device in io.  files: bits of enum pdev_file (PDEV_BIT);
 * the other files answer -EBADF.  With create the pool is new: -EEXIST if
 * its header exists and is published (what an unpublished build left is
 * removed first); the device is invisible to opens without create until
 * pdev_rados_publish.  Without create, a missing or unpublished lineage is
 * -ENOENT.  `where` becomes "rados:<pool>/<lineage>", "rados:<pool>/<ns>/<lineage>"
 * when io has a namespace. */
int pdev_rados_open(struct pdev **out, rados_ioctx_t io, const char *lineage, unsigned files, int create);
/* Take the pool's writer lock (a RADOS exclusive lock on its header,
 * cookie "<owner> <pid> <random>") for as long as the device is open: the
 * device keeps sizes in memory, so one writer per lineage in the whole
 * cluster.  With lease > 0 the lock lasts `lease` seconds unless renewed,
 * which a thread of the device does every third of it; a renewal that
 * fails, or a lease that ran out by this process's clock (it was stopped
 * or stalled), ends the device's I/O: -EIO from then on, checked before
 * every request.  -EBUSY if another client holds it, who in holder ("host
 * B (pid N, client.X)").  A lock whose holder is a dead process of this
 * same owner is taken over after fencing that client (blocklisted for an
 * hour, so nothing it sent can land after us): returns 1.  A lock whose
 * lease ran out is simply taken (its holder fences itself): returns 2.
 * holder then names the previous one.  owner: no spaces. */
/* fwd (may be NULL): while it holds the lock the device watches the
 * header and runs fwd for each notify another host sends there
 * (pdev_rados_forward); *reply (malloc'd, may stay NULL) is the answer. */
typedef void (*pdev_rados_forward_fn)(void *ctx, const void *req, size_t len, void **reply, size_t *rlen);
int pdev_rados_lock(struct pdev *d, const char *owner, unsigned lease, pdev_rados_forward_fn fwd, void *fwd_ctx,
		    char *holder, size_t n);
/* Send req to whoever holds lineage's lock (its watch) and wait up to
 * timeout_ms for its answer: 0 with *reply (malloc'd) and *rlen, or
 * -EHOSTUNREACH when no holder answered, -errno. */
int pdev_rados_forward(rados_ioctx_t io, const char *lineage, const void *req, size_t len, unsigned timeout_ms,
		       void **reply, size_t *rlen);
/* Fence host `owner` off lineage's pool, if it holds (or held) the writer
 * lock there: its client is blocklisted for an hour, its lock broken and
 * its `writer` record removed.  lease != 0 (a takeover, attach --steal):
 * only once owner's lock is past its lease of `lease` seconds, -EBUSY
 * before; 0 (the operator says the host is gone, detach --force): now.
 * A lock whose lease ran out is no longer shown; the record it left names
 * the client then.  1 if owner was fenced, 0 if the lock is free (and no
 * record of owner's left) or someone else's, -errno. */
int pdev_rados_fence(rados_ioctx_t io, const char *lineage, const char *owner, unsigned lease);
/* Persist every file's size and mark the pool published: other opens see it. */
int pdev_rados_publish(struct pdev *d);
/* 1: the lineage is published; 0: it is not (or absent); <0: error. */
int pdev_rados_exists(rados_ioctx_t io, const char *lineage);
/* Every lineage in io with a header, published or not (an unpublished one
 * is a build in progress or cut short, as its directory would be): cb gets
 * each; a non-zero return stops the listing (a negative one is returned).
 * Returns the number listed or a negative errno.  Lists the whole pool. */
int pdev_rados_list(rados_ioctx_t io, int (*cb)(void *ctx, const char *lineage), void *ctx);
/* Unpublish (the header goes first), then remove every object of the
 * lineage (a listing of the pool).  0 when there was nothing to remove. */
int pdev_rados_remove(rados_ioctx_t io, const char *lineage);

#endif
