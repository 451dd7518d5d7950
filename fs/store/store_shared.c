// SPDX-License-Identifier: MIT
/*
 * store_shared.c - where a store's catalog and key store live, and what
 * every host of a shared store must agree on.
 *
 * A store used by one host keeps both in SQLite files of its directory.  A
 * store shared by several hosts keeps its pools in RADOS and both databases
 * in one PostgreSQL database: the catalog in schema <schema>_catalog, the
 * KMS's key store in <schema>_kms, where <schema> is [catalog] schema.
 * Each host still has its own store directory: evfs.ini (how this host
 * reaches the cluster and the database, where its root key is, its name
 * among the hosts), the store lock of its one mount, and its backups.
 *
 * What must be the same on every host - the region, the pools' RADOS pool
 * and namespace, the chunk size and pool format of new pools, the security
 * administrators - is written by init into the catalog's settings
 * (store.*), on SQLite as well so that both look alike.  `evfsctl init
 * --join` reads it from there instead of asking the operator to repeat
 * it, so a host cannot join with a different namespace and silently see
 * an empty store.
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The settings every host shares, by name in the catalog. */
#define SET_REGION "store.region"
#define SET_CHUNK "store.chunk_size"
#define SET_FORMAT "store.pool_format"
#define SET_ADMINS "store.security_admins"
#define SET_BACKEND "store.backend"
#define SET_POOL "store.rados_pool"
#define SET_NS "store.rados_namespace"

static int is_pg(const char *backend)
{
	return strcmp(backend, "postgresql") == 0;
}

const char *store_shared_schema(const struct evfs_config *c, const char *part, char *buf, size_t n)
{
	if (!is_pg(strcmp(part, "kms") == 0 ? c->kms_store : c->catalog_backend))
		return NULL;
	snprintf(buf, n, "%s_%s", c->pg_schema, part);
	return buf;
}

int store_shared_catalog(const struct evfs_config *c, const char *dir, int create, struct meta_db **db,
			 meta_log_fn log, void *log_ctx, char *where, size_t wn)
{
	char schema[80], path[4096];

	if (store_shared_schema(c, "catalog", schema, sizeof schema)) {
		snprintf(where, wn, "PostgreSQL schema %s", schema);
		return meta_open_pg(db, c->pg_conninfo, schema, create, log, log_ctx);
	}
	snprintf(path, sizeof path, "%s/catalog.db", dir);
	snprintf(where, wn, "%s", path);
	return meta_open(db, path, create, log, log_ctx);
}

int store_shared_save(struct meta_db *db, const struct evfs_config *c)
{
	char chunk[24];
	int rc;

	snprintf(chunk, sizeof chunk, "%" PRIu32, c->chunk_size);
	rc = meta_begin(db);
	if (rc)
		return rc;
	if (!(rc = meta_setting_set(db, SET_REGION, c->region)) && !(rc = meta_setting_set(db, SET_CHUNK, chunk)) &&
	    !(rc = meta_setting_set(db, SET_FORMAT, c->pool_format)) &&
	    !(rc = meta_setting_set(db, SET_ADMINS, c->security_admins)) &&
	    !(rc = meta_setting_set(db, SET_BACKEND, c->store_backend)) &&
	    !(rc = meta_setting_set(db, SET_POOL, c->rados_pool)))
		rc = meta_setting_set(db, SET_NS, c->rados_namespace);
	if (rc) {
		meta_rollback(db);
		return rc;
	}
	return meta_commit(db);
}

/* One setting into a config field of n bytes; a missing one is -ENOENT. */
static int load_one(struct meta_db *db, const char *name, char *out, size_t n, char *err, size_t errsz)
{
	int rc = meta_setting_get(db, name, out, n);

	if (rc == -ENOENT || rc == -ENODATA)
		snprintf(err, errsz, "the catalog has no setting %s: it was made by an evfsctl init that never "
			 "records what its hosts share (an older evfs); initialise a new shared store", name);
	else if (rc < 0)
		snprintf(err, errsz, "cannot read the catalog setting %s: %s", name, evfs_strerror(rc));
	return rc < 0 ? rc : 0;
}

int store_shared_load(struct meta_db *db, struct evfs_config *c, char *err, size_t errsz)
{
	char chunk[24], *end;
	unsigned long v;
	int rc;

	if ((rc = load_one(db, SET_REGION, c->region, sizeof c->region, err, errsz)) ||
	    (rc = load_one(db, SET_CHUNK, chunk, sizeof chunk, err, errsz)) ||
	    (rc = load_one(db, SET_FORMAT, c->pool_format, sizeof c->pool_format, err, errsz)) ||
	    (rc = load_one(db, SET_ADMINS, c->security_admins, sizeof c->security_admins, err, errsz)) ||
	    (rc = load_one(db, SET_BACKEND, c->store_backend, sizeof c->store_backend, err, errsz)) ||
	    (rc = load_one(db, SET_POOL, c->rados_pool, sizeof c->rados_pool, err, errsz)) ||
	    (rc = load_one(db, SET_NS, c->rados_namespace, sizeof c->rados_namespace, err, errsz)))
		return rc;
	errno = 0;
	v = strtoul(chunk, &end, 10);
	if (errno || *end || v == 0 || v > UINT32_MAX) {
		snprintf(err, errsz, "the catalog setting %s = %s is not a chunk size: the catalog is damaged",
			 SET_CHUNK, chunk);
		return -EUCLEAN;
	}
	c->chunk_size = (uint32_t)v;
	if (strcmp(c->store_backend, "rados") != 0) {
		snprintf(err, errsz, "the store keeps its pools in the directory of its first host (store.backend = "
			 "%s), so no other host can reach its data; only a store whose pools are in RADOS "
			 "(evfsctl init --rados-conf --rados-pool) can be joined", c->store_backend);
		return -EOPNOTSUPP;
	}
	return 0;
}
