// SPDX-License-Identifier: MIT
/*
 * store_forward.c - commands that must run on the host a volume is
 * attached on.
 *
 * In a store shared by hosts, the host that has a volume attached is the
 * writer of its lineage: it alone knows the writes it acknowledged and
 * holds the pool open.  A snapshot, image or backup of that volume asked
 * on another host is therefore taken there: the CLI packs the command
 * line (ctl_forward_build), this file sends it to whoever holds the
 * volume's pool (engine_forward: a RADOS notify on the pool's header,
 * which the holder watches) and hands back the answer; the holder runs it
 * like a control-socket request (ctl_forward_serve, set by the mount with
 * store_set_forward).  Nobody answering - the host is down, hung or cut
 * off - is an error naming it and the way out (attach --steal).
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>

#include "engine.h"

void store_set_forward(struct store *s, store_forward_fn fn, void *ctx)
{
	engine_set_forward(s->eng, fn, ctx);
}

int store_volume_forward(struct store *s, const struct store_caller *c, const char *name, const void *req, size_t len,
			 void **reply, size_t *rlen)
{
	struct meta_object o;
	int rc = store_object_find(s, c, META_VOLUME, name, &o);

	*reply = NULL;
	*rlen = 0;
	if (rc)
		return rc;
	if (store_host_check(s, NULL, &o, "forward") == 0)
		return 1;
	/* A backup reads the whole volume there: allow it two minutes. */
	rc = engine_forward(s->eng, o.lineage, req, len, 120000, reply, rlen);
	if (rc == -EHOSTUNREACH)
		store_seterr(s, c, "volume %s is attached on host %s, which does not answer (its mount is down, hung "
			     "or cut off); run the command there, or take the volume: evfsctl attach %s --steal once "
			     "its lease is over", name, o.attached_host, name);
	else if (rc)
		store_seterr(s, c, "volume %s is attached on host %s; the request to it failed: %s", name,
			     o.attached_host, evfs_strerror(rc));
	return rc;
}
