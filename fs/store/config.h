/* SPDX-License-Identifier: MIT */
/*
 * config.h - the store's configuration file, STORE/evfs.ini (inih).
 *
 * The file names key *files* and users, never keys: it holds no secrets
 * (inih's line buffers are never wiped, so nothing secret may pass through
 * them).  See config.c for the syntax rules and examples/evfs.ini for an
 * annotated file.
 *
 * Errors (negative errno):
 *   -EINVAL        bad content (unknown section or key, bad value, duplicate
 *                  key, a line that is not "key = value"); *err says where
 *   -ENOENT, -EACCES, ...  the file (or the store directory) cannot be
 *                  opened or read
 *   -EEXIST        config_store: the file already exists
 *   -ENOMEM
 */
#ifndef EVFS_CONFIG_H
#define EVFS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_FILE_NAME "evfs.ini"
#define CONFIG_WUR __attribute__((warn_unused_result))

struct evfs_config {
	char region[64];            /* [store] region, default "region-1"; [A-Za-z0-9._-]{1,63} */
	char backup_dir[4096];      /* [store] backup_dir, default "backups"; config_load makes it absolute
	                               (relative to the store directory) */
	uint32_t chunk_size;        /* [store] chunk_size, default 4096; power of two 4096..65536 */
	char pool_format[4];        /* [store] pool_format: "2" (default) or "1", of new pools */
	char store_backend[16];     /* [store] backend: "local" (default: STORE/pools) or "rados" */
	/* [store] backend = rados only (conf and pool required then; "" = not set): */
	char rados_conf[4096];      /* [rados] conf: absolute path of the cluster's ceph.conf */
	char rados_pool[128];       /* [rados] pool: the RADOS pool holding the chunk pools */
	char rados_id[64];          /* [rados] id: client name without "client."; "" = admin */
	char rados_namespace[64];   /* [rados] namespace: the store's objects' namespace in the pool (so
	                               stores share a pool); evfsctl init makes one up; required */
	/* The catalog and the KMS's key store: SQLite files in the store directory (one host), or
	 * schemas of one PostgreSQL database (every host of a shared store): */
	char catalog_backend[16];   /* [catalog] backend: "sqlite" (default) or "postgresql" */
	char pg_conninfo[1024];     /* [catalog] conninfo: libpq connection string; required when the
	                               catalog or the key store is in PostgreSQL; never a password */
	char pg_schema[48];         /* [catalog] schema: the store's name in the database (schemas
	                               <schema>_catalog, <schema>_kms); evfsctl init makes one up */
	char kms_store[16];         /* [kms] store: "sqlite" (default: STORE/kms.db) or "postgresql" */
	char host_name[64];         /* [host] name: this host among the store's hosts; config_load
	                               puts the hostname here when the file leaves it empty */
	uint32_t host_lease;        /* [host] lease: seconds, 3..3600, default 15 */
	char kms_backend[16];       /* [kms] backend: "local" or "pkcs11" (R34) */
	char key_source[16];        /* [kms] key_source: "keyfile", "passphrase" or "" (not set); local only */
	char key_path[4096];        /* [kms] key_path: absolute path of the key or passphrase file, or ""; local only */
	/* [kms] backend = pkcs11 only (all required then but pkcs11_key; "" = not set): */
	char pkcs11_module[4096];   /* pkcs11_module: absolute path of the PKCS#11 module (.so) */
	char pkcs11_token[33];      /* pkcs11_token: token label, 1..32 characters */
	char pkcs11_pin_file[4096]; /* pkcs11_pin_file: absolute path of the file holding the user PIN */
	char pkcs11_key[64];        /* pkcs11_key: label of the key object; "" = "evfs-root" */
	char security_admins[512];  /* [kms] security_admins, default "root"; comma/space separated */
	char default_project[64];   /* [defaults] project, default "default"; same charset as region */
	int allow_other;            /* [mount] allow_other (yes/no/true/false/on/off/1/0), default 0 */
	char log_file[4096];        /* [mount] log_file, default "" (stderr/syslog); made absolute like
	                               backup_dir */
	char metrics_file[4096];    /* [mount] metrics_file, default "" (none): Prometheus text file the
	                               mount rewrites; made absolute like backup_dir */
};

/* Fill c with the defaults listed above.  Cannot fail.  Thread-safe. */
void config_defaults(struct evfs_config *c);

/*
 * Parse the INI file `path` into c, starting from config_defaults().
 * Relative backup_dir and log_file are resolved against store_dir (NULL:
 * the directory holding `path`), which must exist and is made canonical
 * with realpath(3); on success both paths are absolute.  Empty key_source
 * and key_path mean "not set" (both or neither must be set).  With backend =
 * pkcs11, pkcs11_module, pkcs11_token and pkcs11_pin_file are required and
 * key_source/key_path refused; with backend = local, the pkcs11_* keys are
 * refused.
 *
 * Returns 0, or a negative errno (see above) with a one-line message in err
 * (errsz bytes, always NUL-terminated when errsz > 0; err may be NULL):
 *   "<file>:<line>: [section] key = value: <what is wrong>; <what to do>"
 * Only the first error is reported.  On error c holds partial results and
 * must not be used.  Thread-safe (no global state is modified); allocates
 * only temporaries.
 */
int config_load(struct evfs_config *c, const char *path, const char *store_dir, char *err,
		size_t errsz) CONFIG_WUR;

/*
 * Write c to the new file `path` as a commented INI file (mode 0600, created
 * with O_EXCL; the comments explain every key and say the file holds no
 * secrets).  Every value is first checked by the same rules config_load
 * applies, so a stored file always loads back to the same values.
 * Returns 0, -EEXIST if path exists, -EINVAL if a value is invalid or cannot
 * be written (e.g. contains a newline or " ;"), or another negative errno
 * (the partial file is removed).  Thread-safe.
 */
int config_store(const struct evfs_config *c, const char *path) CONFIG_WUR;
/* -EINVAL with "[section] key = value: what is wrong; what to do" in why
 * for the first value of c the loader would refuse (evfsctl init checks
 * its options with the loader's words); 0 if all are fine. */
int config_check(const struct evfs_config *c, char *why, size_t n) CONFIG_WUR;

/* 1 if `user` is one of the names in c->security_admins (exact match), else
 * 0 (also for NULL or ""). Cannot fail.  Thread-safe. */
int config_is_admin(const struct evfs_config *c, const char *user) CONFIG_WUR;

#endif
