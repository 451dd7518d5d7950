// SPDX-License-Identifier: MIT
/*
 * store.c - a store directory: lifetime, lock, lineages, attachments and
 * the files the mount presents.
 *
 * Layout of STORE/ (0700, files 0600):
 *   evfs.ini      configuration (no secrets: names the key file)
 *   catalog.db    meta/: objects, lineages with wrapped data keys
 *   kms.db        kms/: master keys wrapped by the root key, audit log
 *   pools/        engine: one chunk pool per lineage
 *   backups/      default backup_dir
 *   evfs.lock     flock'd by the one process operating the store; holds
 *                 "pid mountpoint" of a mount for the "already mounted"
 *                 message
 *
 * (A store shared by hosts has its catalog and key store in PostgreSQL and
 * its pools in RADOS instead: store_shared.c.)
 *
 * Who operates the store: the mount for its whole life, otherwise the
 * evfsctl command.  So the engine's in-memory state (refcounts, open maps,
 * data keys) has exactly one owner on this host.  Between hosts of a
 * shared store, the catalog records which host has a volume attached
 * (claimed in one statement) and the engine holds a pool's RADOS writer
 * lease while it has it open; commands on a volume attached elsewhere are
 * refused (store_host_check) or run there (store_forward.c).
 *
 * Attachments (R15-R18, R21): an attached volume is an engine handle with
 * its data key, held in `attached`.  The catalog keeps the desired state so
 * that a new mount re-attaches what was attached.  Detach wipes the key
 * (vol_detach -> kms_dk_destroy -> sodium_free).
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <syslog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "backup.h"

#define LOCK_NAME "evfs.lock"

/* ============================== messages =============================== */

void store_seterr(struct store *s, const struct store_caller *c, const char *fmt, ...)
{
	struct evfs_err *e = c ? c->err : NULL;
	va_list ap;

	/* The cause below is taken even when nobody wants the message, so it
	 * cannot be appended to a later, unrelated one. */
	if (e) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	/* "Structure needs cleaning" alone does not say which file: add what
	 * the lower layer logged (it names the file and the remedy). */
	pthread_mutex_lock(&s->cause_lock);
	evfs_err_append(e, s->cause);
	s->cause[0] = '\0';
	pthread_mutex_unlock(&s->cause_lock);
}

void store_logf(struct store *s, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!s->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->log(s->log_ctx, level, msg);
}

static void sub_log(void *ctx, int level, const char *msg)
{
	struct store *s = ctx;

	if (level <= 3) {
		pthread_mutex_lock(&s->cause_lock);
		snprintf(s->cause, sizeof(s->cause), "%s", msg);
		pthread_mutex_unlock(&s->cause_lock);
	}

	if (s->log)
		s->log(s->log_ctx, level, msg);
}

static int is_pkcs11(const struct evfs_config *cfg)
{
	return strcmp(cfg->kms_backend, "pkcs11") == 0;
}

/* The pools' freshness records (engine_fresh_ops): the catalog keeps each
 * format 2 pool's generation and header hash, and with the root key in a
 * PKCS#11 token the token keeps a copy (kms_fresh.c: written at detach and
 * close, so a copy of the whole store is caught too); the pool must not be
 * older than the newer of the two.  The engine saves after every commit,
 * under the pool's commit lock, so the catalog connection it saves on
 * must not wait for a transaction this process may hold while it waits
 * for the same pool: it is a connection of its own that gives up at once
 * (the record then lags, which is safe).  A forced save (fsck --repair
 * accepting a restored pool) runs from a command and may wait. */
static int fresh_load(void *ctx, const char *lineage, uint64_t *gen, uint8_t hash[static 32])
{
	struct store *s = ctx;
	uint64_t tgen;
	uint8_t th[32];
	int rc = meta_fresh_get(s->fresh, lineage, gen, hash), trc;

	/* A WAL reader is refused only for a moment (a checkpoint, a
	 * recovery); waiting on the patient connection could deadlock
	 * (this runs under the engine's table lock), so retry, up to 2 s. */
	for (int i = 0; rc == -EBUSY && i < 200; i++) {
		usleep(10000);
		rc = meta_fresh_get(s->fresh, lineage, gen, hash);
	}
	trc = kms_fresh_get(s->kms, lineage, &tgen, th);
	if (trc == 0 && (rc == -ENOENT || (rc == 0 && tgen > *gen))) {
		*gen = tgen;
		memcpy(hash, th, 32);
		rc = 0;
	} else if (trc && trc != -ENOENT && trc != -EOPNOTSUPP && !rc) {
		rc = trc;                         /* the token's record cannot be read */
	}
	return rc;
}

static int fresh_save(void *ctx, const char *lineage, uint64_t gen, const uint8_t hash[static 32], int force)
{
	struct store *s = ctx;
	int rc = meta_fresh_set(force ? s->meta : s->fresh, lineage, gen, hash, force);

	if (!rc && force) {
		int trc = kms_fresh_set(s->kms, lineage, gen, hash, 1);

		if (trc && trc != -EOPNOTSUPP)
			rc = trc;
	}
	return rc;
}

/* Copy a pool's catalog record to the token (detach, close): from then on
 * a copy of the whole store taken before is refused too. */
static void fresh_to_token(struct store *s, const char *lineage)
{
	uint64_t gen;
	uint8_t hash[32];
	int rc;

	if (!is_pkcs11(&s->cfg) || meta_fresh_get(s->meta, lineage, &gen, hash) < 0)
		return;
	rc = kms_fresh_set(s->kms, lineage, gen, hash, 0);
	if (rc)
		store_logf(s, LOG_WARNING, "pool %s: its freshness record could not be written to the token (%s); the "
			   "token's copy lags until the next detach", lineage, evfs_strerror(rc));
}

static const struct engine_fresh_ops store_fresh_ops = { .load = fresh_load, .save = fresh_save };

const struct evfs_config *store_config(const struct store *s)
{
	return &s->cfg;
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}

void store_caller_init(const struct store *s, struct store_caller *c, uid_t uid, gid_t gid, const char *project)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	memset(c, 0, sizeof(*c));
	c->uid = uid;
	c->gid = gid;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(c->user, sizeof(c->user), "%s", pw.pw_name);
	else
		snprintf(c->user, sizeof(c->user), "uid%u", (unsigned)uid);
	snprintf(c->project, sizeof(c->project), "%s", project && *project ? project : s->cfg.default_project);
}

void store_kcaller(const struct store_caller *c, struct kms_caller *k, const char *project)
{
	k->uid = c->uid;
	k->user = c->user;
	k->project = project ? project : c->project;
}

/* ============================ init / open ============================== */

static void join(char *out, size_t sz, const char *dir, const char *name)
{
	snprintf(out, sz, "%s/%s", dir, name);
}

static void kms_opts(const struct evfs_config *cfg, struct kms_options *o, struct store *s)
{
	memset(o, 0, sizeof(*o));
	if (strcmp(cfg->kms_backend, "pkcs11") == 0) {
		o->root_kind = KMS_ROOT_PKCS11;
		o->secret_path = cfg->pkcs11_pin_file;
		o->pkcs11_module = cfg->pkcs11_module;
		o->pkcs11_token = cfg->pkcs11_token;
		o->pkcs11_key = cfg->pkcs11_key[0] ? cfg->pkcs11_key : KMS_PKCS11_KEY_DEFAULT;
	} else {
		o->root_kind = strcmp(cfg->key_source, "passphrase") == 0 ? KMS_ROOT_PASSPHRASE : KMS_ROOT_KEYFILE;
		o->secret_path = cfg->key_path;
	}
	o->region = cfg->region;
	o->security_admins = cfg->security_admins;
	o->log = s ? sub_log : NULL;
	o->log_ctx = s;
}

/* The KMS's first error message (its log; kms_create ends with a generic
 * one), for the user's message. */
struct kms_cause {
	char msg[512];
};

static void kms_cause_log(void *ctx, int level, const char *msg)
{
	struct kms_cause *c = ctx;

	if (level <= LOG_ERR && !c->msg[0])
		snprintf(c->msg, sizeof(c->msg), "%s", strncmp(msg, "kms: ", 5) ? msg : msg + 5);
}

/* The user's message for a PKCS#11 root key that could not be used: what
 * the KMS said (it names the token and the remedy) or, when it said
 * nothing, the error code with the configured names. */
static void pkcs11_explain(const struct evfs_config *cfg, int rc, const char *cause, char *out, size_t n)
{
	const char *token = cfg->pkcs11_token, *key = cfg->pkcs11_key[0] ? cfg->pkcs11_key : KMS_PKCS11_KEY_DEFAULT;

	if (cause && cause[0])
		snprintf(out, n, "%s", cause);
	else if (rc == -ENOENT)
		snprintf(out, n, "PKCS#11 module %.200s or PIN file %.200s does not exist", cfg->pkcs11_module,
			 cfg->pkcs11_pin_file);
	else if (rc == -ELIBBAD)
		snprintf(out, n, "%.200s is not a PKCS#11 module; fix pkcs11_module", cfg->pkcs11_module);
	else if (rc == -ENODEV)
		snprintf(out, n, "no token labelled \"%s\" in %.200s; plug it in or fix pkcs11_token", token,
			 cfg->pkcs11_module);
	else if (rc == -EACCES)
		snprintf(out, n, "wrong PIN for token \"%s\": check pkcs11_pin_file (%.200s)", token,
			 cfg->pkcs11_pin_file);
	else if (rc == -ENOKEY)
		snprintf(out, n, "no key labelled \"%s\" on token \"%s\"; fix pkcs11_key", key, token);
	else if (rc == -EOPNOTSUPP)
		snprintf(out, n, "token \"%s\" does not support AES-GCM (CKM_AES_GCM)", token);
	else
		snprintf(out, n, "PKCS#11 token \"%s\" (module %.200s): %s", token, cfg->pkcs11_module,
			 evfs_strerror(rc));
}

/* Why a root-key source failed (from its file's metadata only: the key and
 * the passphrase are read by kms/ alone).  "" when nothing specific shows. */
static void key_source_explain(const struct evfs_config *cfg, int create, char *out, size_t n)
{
	int keyfile = strcmp(cfg->key_source, "keyfile") == 0;
	const char *what = keyfile ? "key file" : "passphrase file";
	struct stat st;

	out[0] = '\0';
	if (stat(cfg->key_path, &st) < 0) {
		if (errno == ENOENT && !(keyfile && create))
			snprintf(out, n, "%s %.400s does not exist", what, cfg->key_path);
		return;
	}
	if (S_ISDIR(st.st_mode))
		snprintf(out, n, "%s %.400s is a directory; give a file%s", what, cfg->key_path,
			 keyfile && create ? " of exactly 32 bytes, or a new path where init creates one" : "");
	else if (!S_ISREG(st.st_mode))
		snprintf(out, n, "%s %.400s is not a regular file", what, cfg->key_path);
	else if (keyfile && st.st_size != KMS_KEY_BYTES)
		snprintf(out, n, "key file %.400s has %lld bytes: a key file holds exactly %u raw bytes (not hex or "
			 "base64); give the right file, or a new path where init creates one", cfg->key_path,
			 (long long)st.st_size, (unsigned)KMS_KEY_BYTES);
	else if (!keyfile && st.st_size == 0)
		snprintf(out, n, "passphrase file %.400s is empty: its first line is the passphrase", cfg->key_path);
	else if (!keyfile && create)
		snprintf(out, n, "passphrase file %.400s: the passphrase (its first line) must have %d to 4095 characters",
			 cfg->key_path, KMS_PASSPHRASE_MIN);
}

/* Warnings about where a new store's root key lives (evfsctl init). */
static void key_source_warn(const struct evfs_config *cfg, const char *dir, FILE *warn)
{
	char real_dir[PATH_MAX], real_key[PATH_MAX];
	struct stat st;
	size_t n;

	if (!warn || !realpath(dir, real_dir) || !realpath(cfg->key_path, real_key))
		return;
	n = strlen(real_dir);
	if (strncmp(real_key, real_dir, n) == 0 && real_key[n] == '/')
		fprintf(warn, "warning: the %s %s is inside the store directory: whoever copies the store gets the "
			"key with it; keep it elsewhere (another disk, a token)\n",
			strcmp(cfg->key_source, "keyfile") == 0 ? "key file" : "passphrase file", real_key);
	if (stat(real_key, &st) == 0 && (st.st_mode & 0077))
		fprintf(warn, "warning: %s is readable or writable by others (mode %04o); chmod 0400 it\n", real_key,
			(unsigned)(st.st_mode & 07777));
}

/* Warnings about where a new store's PKCS#11 PIN file lives. */
static void pin_file_warn(const struct evfs_config *cfg, const char *dir, FILE *warn)
{
	char real_dir[PATH_MAX], real_pin[PATH_MAX];
	struct stat st;
	size_t n;

	if (!warn || !realpath(dir, real_dir) || !realpath(cfg->pkcs11_pin_file, real_pin))
		return;
	n = strlen(real_dir);
	if (strncmp(real_pin, real_dir, n) == 0 && real_pin[n] == '/')
		fprintf(warn, "warning: the PIN file %s is inside the store directory: whoever copies the store "
			"gets the PIN with it; keep it elsewhere\n", real_pin);
	if (stat(real_pin, &st) == 0 && (st.st_mode & 0077))
		fprintf(warn, "warning: %s is readable or writable by others (mode %04o); chmod 0400 it\n", real_pin,
			(unsigned)(st.st_mode & 07777));
}

/* path made absolute against the working directory. */
static int abs_path(char *out, size_t n, const char *path)
{
	char cwd[2048];

	if (path[0] == '/') {
		snprintf(out, n, "%s", path);
		return 0;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	snprintf(out, n, "%.2000s/%.2000s", cwd, path);
	return 0;
}

/* The engine over the RADOS pool of c's [rados] (init checks the cluster
 * with it; open keeps it); on failure, a message for `who` in err. */
static int rados_engine(const struct evfs_config *c, struct engine **e, engine_log_fn log, void *log_ctx,
			const char *who, char *err, size_t errsz)
{
	int rc = engine_create_rados(e, c->rados_conf, c->rados_pool, c->rados_namespace,
				     c->rados_id[0] ? c->rados_id : NULL, log, log_ctx);

	if (rc)
		snprintf(err, errsz, "%s: cannot reach RADOS pool %s of the Ceph cluster in %s%s%s: %s%s", who,
			 c->rados_pool, c->rados_conf, c->rados_id[0] ? " as client." : "", c->rados_id,
			 evfs_strerror(rc),
			 rc == -ENOTSUP ? " (this evfs was built without librados: install librados-dev and rebuild)"
			 : rc == -ENOENT ? " (no such pool: create it with ceph osd pool create, or fix [rados] pool)"
					 : " (check that the cluster is up and the path of its ceph.conf in [rados] conf)");
	return rc;
}

/* The root key's options of init into cfg. */
static int init_root_key(struct evfs_config *cfg, const struct store_init_opts *o, char *err, size_t errsz)
{
	int rc;

	if (!!o->keyfile + !!o->passphrase_file + !!o->pkcs11_module != 1) {
		snprintf(err, errsz, "init: give exactly one of --keyfile FILE, --passphrase-file FILE or "
			 "--pkcs11-module MODULE");
		return -EINVAL;
	}
	if (o->pkcs11_module && (!o->pkcs11_token || !o->pkcs11_pin_file)) {
		snprintf(err, errsz, "init: --pkcs11-module needs --token LABEL and --pin-file FILE (the file "
			 "holding the token's user PIN)");
		return -EINVAL;
	}
	if (!o->pkcs11_module) {
		snprintf(cfg->key_source, sizeof(cfg->key_source), "%s", o->keyfile ? "keyfile" : "passphrase");
		return abs_path(cfg->key_path, sizeof(cfg->key_path), o->keyfile ? o->keyfile : o->passphrase_file);
	}
	snprintf(cfg->kms_backend, sizeof(cfg->kms_backend), "pkcs11");
	if ((rc = abs_path(cfg->pkcs11_module, sizeof(cfg->pkcs11_module), o->pkcs11_module)) < 0 ||
	    (rc = abs_path(cfg->pkcs11_pin_file, sizeof(cfg->pkcs11_pin_file), o->pkcs11_pin_file)) < 0)
		return rc;
	snprintf(cfg->pkcs11_token, sizeof(cfg->pkcs11_token), "%s", o->pkcs11_token);
	snprintf(cfg->pkcs11_key, sizeof(cfg->pkcs11_key), "%s", o->pkcs11_key ? o->pkcs11_key : KMS_PKCS11_KEY_DEFAULT);
	if (strlen(o->pkcs11_token) >= sizeof(cfg->pkcs11_token) || !o->pkcs11_token[0] ||
	    (o->pkcs11_key && (strlen(o->pkcs11_key) >= sizeof(cfg->pkcs11_key) || !o->pkcs11_key[0]))) {
		snprintf(err, errsz, "init: a token label has 1 to 32 characters, a key label 1 to 63");
		return -EINVAL;
	}
	return 0;
}

/* This host's way to the cluster (--rados-conf, --rados-id) into cfg;
 * the pool and namespace too unless the host joins (they are the store's). */
static int init_rados(struct evfs_config *cfg, const struct store_init_opts *o, char *err, size_t errsz)
{
	int rc;

	if (!o->rados_conf && !o->rados_pool && !o->rados_id)
		return 0;
	if (!o->rados_conf || (!o->rados_pool && !o->join)) {
		snprintf(err, errsz, "init: the pools in RADOS need both --rados-conf FILE (the cluster's "
			 "ceph.conf) and --rados-pool POOL");
		return -EINVAL;
	}
	snprintf(cfg->store_backend, sizeof(cfg->store_backend), "rados");
	if ((rc = abs_path(cfg->rados_conf, sizeof(cfg->rados_conf), o->rados_conf)) < 0)
		return rc;
	if ((o->rados_pool && strlen(o->rados_pool) >= sizeof(cfg->rados_pool)) ||
	    (o->rados_id && strlen(o->rados_id) >= sizeof(cfg->rados_id))) {
		snprintf(err, errsz, "init: a RADOS pool name has at most %zu characters, a client name %zu",
			 sizeof(cfg->rados_pool) - 1, sizeof(cfg->rados_id) - 1);
		return -EINVAL;
	}
	snprintf(cfg->rados_id, sizeof(cfg->rados_id), "%s", o->rados_id ? o->rados_id : "");
	if (!o->join) {
		uint8_t r[8];

		snprintf(cfg->rados_pool, sizeof(cfg->rados_pool), "%s", o->rados_pool);
		randombytes_buf(r, sizeof(r));
		snprintf(cfg->rados_namespace, sizeof(cfg->rados_namespace), "evfs-");
		sodium_bin2hex(cfg->rados_namespace + 5, sizeof(cfg->rados_namespace) - 5, r, sizeof(r));
	}
	return 0;
}

/* The PostgreSQL database and this host's name into cfg. */
static int init_shared(struct evfs_config *cfg, const struct store_init_opts *o, char *err, size_t errsz)
{
	if (o->host_name && (!o->host_name[0] || strlen(o->host_name) >= sizeof(cfg->host_name))) {
		snprintf(err, errsz, "init: --host %s: a host name has 1 to %zu characters", o->host_name,
			 sizeof(cfg->host_name) - 1);
		return -EINVAL;
	}
	snprintf(cfg->host_name, sizeof(cfg->host_name), "%s", o->host_name ? o->host_name : "");
	if (!o->pg_conninfo) {
		if (o->pg_schema || o->join) {
			snprintf(err, errsz, "init: %s goes with --postgresql CONNINFO (the database holding the "
				 "shared catalog and key store)", o->join ? "--join" : "--schema");
			return -EINVAL;
		}
		return 0;
	}
	if (o->join && !o->pg_schema) {
		snprintf(err, errsz, "init: --join needs --schema NAME: the store's name in the database, which "
			 "the first host's evfsctl init printed (and its evfs.ini holds as [catalog] schema)");
		return -EINVAL;
	}
	if (o->join && (o->region || o->security_admins || o->chunk_size || o->rados_pool)) {
		snprintf(err, errsz, "init: --join takes the region, security administrators, chunk size and RADOS "
			 "pool from the store's catalog; leave out --region, --security-admins, --chunk-size and "
			 "--rados-pool");
		return -EINVAL;
	}
	if (o->join && !o->rados_conf) {
		snprintf(err, errsz, "init: --join needs --rados-conf FILE: this host's ceph.conf of the cluster "
			 "holding the store's pools");
		return -EINVAL;
	}
	snprintf(cfg->catalog_backend, sizeof(cfg->catalog_backend), "postgresql");
	snprintf(cfg->kms_store, sizeof(cfg->kms_store), "postgresql");
	if (strlen(o->pg_conninfo) >= sizeof(cfg->pg_conninfo) ||
	    (o->pg_schema && strlen(o->pg_schema) >= sizeof(cfg->pg_schema))) {
		snprintf(err, errsz, "init: the connection string has at most %zu characters, a schema name %zu",
			 sizeof(cfg->pg_conninfo) - 1, sizeof(cfg->pg_schema) - 9);
		return -EINVAL;
	}
	snprintf(cfg->pg_conninfo, sizeof(cfg->pg_conninfo), "%s", o->pg_conninfo);
	if (o->pg_schema) {
		snprintf(cfg->pg_schema, sizeof(cfg->pg_schema), "%s", o->pg_schema);
	} else {
		uint8_t r[8];

		randombytes_buf(r, sizeof(r));
		snprintf(cfg->pg_schema, sizeof(cfg->pg_schema), "evfs_");
		sodium_bin2hex(cfg->pg_schema + 5, sizeof(cfg->pg_schema) - 5, r, sizeof(r));
	}
	return 0;
}

/* Make dir (0700) if missing; it must be a directory that is no store yet. */
static int init_dir(const char *dir, char *err, size_t errsz)
{
	char path[4096];
	struct stat st;
	int rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errsz, "init: cannot create store directory %s: %s", dir, evfs_strerror(rc));
		return rc;
	}
	/* A mistyped path naming a file must change nothing. */
	if (stat(dir, &st) < 0) {
		rc = -errno;
		snprintf(err, errsz, "init: cannot use %s: %s", dir, evfs_strerror(rc));
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errsz, "init: %s is not a directory; give the path of a new or empty directory for "
			 "the store", dir);
		return -ENOTDIR;
	}
	join(path, sizeof(path), dir, CONFIG_FILE_NAME);
	if (access(path, F_OK) == 0) {
		snprintf(err, errsz, "init: %s is already an evfs store (%s exists); choose an empty directory", dir,
			 path);
		return -EEXIST;
	}
	(void)chmod(dir, 0700);
	return 0;
}

/* A catalog that would not open, in words (init and open). */
static void catalog_explain(const struct evfs_config *cfg, int rc, char *out, size_t n)
{
	snprintf(out, n, "%s",
		 rc == -EUCLEAN ? " (damaged or not an evfs catalog; restore it from a copy)"
		 : rc == -ECONNREFUSED ? " (the PostgreSQL server does not answer: check that it is up and "
					 "[catalog] conninfo in evfs.ini)"
		 : rc == -EPROTONOSUPPORT ? " (this evfs was built without libpq: install libpq-dev and rebuild)"
		 : rc == -ENOENT && cfg->pg_conninfo[0] ? " (no evfs store in that schema: check [catalog] schema)"
							 : "");
}

/* The KMS's options for cfg, its PostgreSQL schema in schema[]. */
static void kms_opts_shared(const struct evfs_config *cfg, struct kms_options *o, struct store *s, char *schema,
			    size_t n)
{
	kms_opts(cfg, o, s);
	o->pg_schema = store_shared_schema(cfg, "kms", schema, n);
	o->pg_conninfo = o->pg_schema ? cfg->pg_conninfo : NULL;
}

/* init --join: this host's evfs.ini for the store in cfg's database,
 * once its catalog gave the shared settings, its cluster answered and
 * the root key opened its key store.  Nothing shared is written. */
static int init_join(const char *dir, struct evfs_config *cfg, char *err, size_t errsz)
{
	struct meta_db *db = NULL;
	struct kms_options ko;
	struct kms *k = NULL;
	struct engine *e;
	char where[128], why[256], schema[80], msg[600];
	int rc;

	rc = store_shared_catalog(cfg, dir, 0, &db, NULL, NULL, where, sizeof(where));
	if (rc) {
		catalog_explain(cfg, rc, why, sizeof(why));
		snprintf(err, errsz, "init --join: the catalog in %s cannot be opened: %s%s", where, evfs_strerror(rc),
			 why);
		return rc;
	}
	rc = store_shared_load(db, cfg, msg, sizeof(msg));
	meta_close(db);
	if (rc) {
		snprintf(err, errsz, "init --join: %s: %s", where, msg);
		return rc;
	}
	if (config_check(cfg, msg, sizeof(msg)) < 0) {
		snprintf(err, errsz, "init --join: %s", msg);
		return -EINVAL;
	}
	if ((rc = rados_engine(cfg, &e, NULL, NULL, "init --join", err, errsz)) != 0)
		return rc;
	engine_destroy(e);
	kms_opts_shared(cfg, &ko, NULL, schema, sizeof(schema));
	rc = kms_open(&k, NULL, &ko);
	kms_close(k);
	if (rc) {
		key_source_explain(cfg, 0, why, sizeof(why));
		snprintf(err, errsz, "init --join: the key store in PostgreSQL schema %s cannot be opened with this "
			 "host's root key: %s%s%s", schema, evfs_strerror(rc),
			 rc == -EKEYREJECTED ? " (it is not the root key the store was made with: copy the first "
					       "host's key file, or give its passphrase or token)" : "",
			 why[0] ? why : "");
		return rc;
	}
	if ((rc = init_dir(dir, err, errsz)) != 0)
		return rc;
	join(msg, sizeof(msg), dir, CONFIG_FILE_NAME);
	if ((rc = config_store(cfg, msg)) != 0)
		snprintf(err, errsz, "init --join: cannot write %s: %s", msg, evfs_strerror(rc));
	return rc;
}

int store_init(const char *dir, const struct store_init_opts *o, char *err, size_t errsz)
{
	struct evfs_config cfg;
	struct kms_options ko;
	struct meta_db *db = NULL;
	char path[4096], where[128], schema[80];
	struct kms_cause kc = { "" };
	int rc, kms_made = 0;

	config_defaults(&cfg);
	if ((rc = init_root_key(&cfg, o, err, errsz)) != 0 || (rc = init_shared(&cfg, o, err, errsz)) != 0 ||
	    (rc = init_rados(&cfg, o, err, errsz)) != 0)
		return rc;
	if (o->join)
		return init_join(dir, &cfg, err, errsz);
	if (o->region)
		snprintf(cfg.region, sizeof(cfg.region), "%s", o->region);
	if (o->security_admins)
		snprintf(cfg.security_admins, sizeof(cfg.security_admins), "%s", o->security_admins);
	if (o->chunk_size)
		cfg.chunk_size = o->chunk_size;
	{
		char why[512];

		if (config_check(&cfg, why, sizeof(why)) < 0) {   /* the loader's words for a bad option */
			snprintf(err, errsz, "init: %s", why);
			return -EINVAL;
		}
	}
	if (cfg.rados_conf[0]) {
		/* Reach the cluster first: a wrong pool or a cluster that is
		 * down must change nothing. */
		struct engine *e;

		rc = rados_engine(&cfg, &e, NULL, NULL, "init", err, errsz);
		if (rc)
			return rc;
		engine_destroy(e);
	}
	if (cfg.pg_conninfo[0]) {
		/* The same for the database, and a schema already in use. */
		char why[256];

		rc = store_shared_catalog(&cfg, dir, 0, &db, NULL, NULL, where, sizeof(where));
		meta_close(db);
		db = NULL;
		if (rc == 0) {
			snprintf(err, errsz, "init: %s already holds an evfs store; add this host to it with --join "
				 "--schema %s, or give another --schema", where, cfg.pg_schema);
			return -EEXIST;
		}
		if (rc != -ENOENT) {
			catalog_explain(&cfg, rc, why, sizeof(why));
			snprintf(err, errsz, "init: cannot use %s: %s%s", where, evfs_strerror(rc), why);
			return rc;
		}
	}
	if ((rc = init_dir(dir, err, errsz)) != 0)
		return rc;
	join(path, sizeof(path), dir, CONFIG_FILE_NAME);
	rc = config_store(&cfg, path);
	if (rc) {
		snprintf(err, errsz, "init: cannot write %s: %s", path, evfs_strerror(rc));
		return rc;
	}
	kms_opts_shared(&cfg, &ko, NULL, schema, sizeof(schema));
	ko.log = kms_cause_log;
	ko.log_ctx = &kc;
	join(path, sizeof(path), dir, "kms.db");
	if (ko.pg_schema)
		snprintf(path, sizeof(path), "PostgreSQL schema %s", ko.pg_schema);
	rc = kms_create(ko.pg_schema ? NULL : path, &ko);
	if (rc && is_pkcs11(&cfg)) {
		char why[700];

		pkcs11_explain(&cfg, rc, kc.msg, why, sizeof(why));
		snprintf(err, errsz, "init: %s", why);
		goto undo;
	}
	if (rc) {
		char why[600];

		key_source_explain(&cfg, 1, why, sizeof(why));
		if (why[0])
			snprintf(err, errsz, "init: %s", why);
		else
			snprintf(err, errsz, "init: cannot create the key store %s with %s %s: %s%s", path, cfg.key_source,
				 cfg.key_path, evfs_strerror(rc),
				 rc == -EEXIST ? " (the schema is in use: give another --schema)" : "");
		goto undo;
	}
	kms_made = 1;
	if (!is_pkcs11(&cfg))
		key_source_warn(&cfg, dir, o->warn);
	else
		pin_file_warn(&cfg, dir, o->warn);
	rc = store_shared_catalog(&cfg, dir, 1, &db, NULL, NULL, where, sizeof(where));
	if (!rc)
		rc = store_shared_save(db, &cfg);
	meta_close(db);
	if (rc) {
		snprintf(err, errsz, "init: cannot create the catalog %s: %s", where, evfs_strerror(rc));
		goto undo;
	}
	join(path, sizeof(path), dir, "pools");
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errsz, "init: cannot create %s: %s", path, evfs_strerror(rc));
		goto undo;
	}
	/* The default backup_dir is relative to the store, not to the cwd. */
	if (snprintf(path, sizeof(path), "%s%s%s", cfg.backup_dir[0] == '/' ? "" : dir,
		     cfg.backup_dir[0] == '/' ? "" : "/", cfg.backup_dir) >= (int)sizeof(path)) {
		rc = -ENAMETOOLONG;
		snprintf(err, errsz, "init: the backup directory path under %s is too long", dir);
		goto undo;
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errsz, "init: cannot create backup directory %s: %s", path, evfs_strerror(rc));
		goto undo;
	}
	return 0;
undo:
	/* Leave nothing half-made: the next init must be able to start over. */
	join(path, sizeof(path), dir, CONFIG_FILE_NAME);
	(void)unlink(path);
	join(path, sizeof(path), dir, "kms.db");
	(void)unlink(path);
	join(path, sizeof(path), dir, "catalog.db");
	(void)unlink(path);
	if (kms_made && ko.pg_schema) {
		size_t l = strlen(err);

		/* Dropping a schema is not for evfs to do behind the operator's back. */
		snprintf(err + l, errsz - l, "; the key store was made in PostgreSQL schema %s: drop it (DROP SCHEMA %s "
			 "CASCADE) before trying again", ko.pg_schema, ko.pg_schema);
	}
	return rc;
}

static int take_lock(struct store *s, const char *mountpoint, char *err, size_t errsz)
{
	char path[4096], holder[4200] = "";
	ssize_t n;

	join(path, sizeof(path), s->dir, LOCK_NAME);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0)
		return -errno;
	/* A mount that was just unmounted may still be closing: wait a little. */
	for (int i = 0; i < (mountpoint ? 50 : 0) && flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0 &&
			errno == EWOULDBLOCK; i++)
		usleep(100000);
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		n = pread(s->lock_fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = 0;
		holder[strcspn(holder, "\n")] = 0;
		if (holder[0])
			snprintf(err, errsz,
				 "store %s is already in use by %s; a store is mounted at most once "
				 "(unmount it first: fusermount3 -u MOUNTPOINT)",
				 s->dir, holder);
		else
			snprintf(err, errsz, "store %s is busy (another evfsctl command is running); retry", s->dir);
		/* Not ours: closed here so that nothing (store_close) truncates
		 * the holder's name out of it. */
		close(s->lock_fd);
		s->lock_fd = -1;
		return -EBUSY;
	}
	if (ftruncate(s->lock_fd, 0) == 0) {
		if (mountpoint)
			snprintf(holder, sizeof(holder), "the mount at %s (pid %d)\n", mountpoint, (int)getpid());
		else
			snprintf(holder, sizeof(holder), "an evfsctl command (pid %d)\n", (int)getpid());
		if (pwrite(s->lock_fd, holder, strlen(holder), 0) < 0)
			return -errno;
	}
	return 0;
}

int store_open(struct store **out, const char *dir, const char *mountpoint, store_log_fn log, void *log_ctx,
	       char *err, size_t errsz)
{
	struct store *s = calloc(1, sizeof(*s));
	struct kms_options ko;
	char path[4096], real[4096], schema[80];
	int rc;

	if (!s)
		return -ENOMEM;
	s->lock_fd = -1;
	s->log = log;
	s->log_ctx = log_ctx;
	s->mounted = mountpoint != NULL;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->cause_lock, NULL);
	pthread_mutex_init(&s->files_lock, NULL);
	s->dir = strdup(realpath(dir, real) ? real : dir);
	s->mountpoint = mountpoint ? strdup(mountpoint) : NULL;
	s->opened = (int64_t)time(NULL);
	if (!s->dir || (mountpoint && !s->mountpoint)) {
		rc = -ENOMEM;
		goto fail;
	}
	join(path, sizeof(path), s->dir, CONFIG_FILE_NAME);
	if (access(path, F_OK) < 0) {
		int e = errno;
		struct stat st;

		if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
			rc = -ENOTDIR;
			snprintf(err, errsz, "%s is not a directory: a store is a directory made by evfsctl init; check "
				 "--store or EVFS_STORE", dir);
			goto fail;
		}
		rc = e == EACCES ? -EACCES : -ENOENT;
		if (rc == -EACCES)
			snprintf(err, errsz, "store %s: permission denied (the store is private to its owner)", dir);
		else
			snprintf(err, errsz,
				 "%s: not an evfs store (no %s); create one with: evfsctl init --store %s --keyfile FILE",
				 dir, CONFIG_FILE_NAME, dir);
		goto fail;
	}
	rc = config_load(&s->cfg, path, s->dir, err, errsz);
	if (rc)
		goto fail;
	if (!s->cfg.key_source[0] && !is_pkcs11(&s->cfg)) { /* allowed by the syntax, not by a store */
		rc = -EINVAL;
		snprintf(err, errsz, "%s: [kms] key_source and key_path are missing (the root key cannot be found); "
			 "restore the file from a copy or add them as evfsctl init wrote them", path);
		goto fail;
	}
	rc = take_lock(s, mountpoint, err, errsz);
	if (rc) {
		if (rc != -EBUSY)
			snprintf(err, errsz, "store %s: cannot lock %s: %s", s->dir, LOCK_NAME, evfs_strerror(rc));
		goto fail;
	}
	{
		char where[128], why[256];

		rc = store_shared_catalog(&s->cfg, s->dir, 0, &s->meta, sub_log, s, where, sizeof(where));
		if (rc) {
			catalog_explain(&s->cfg, rc, why, sizeof(why));
			snprintf(err, errsz, "store %s: catalog %s cannot be opened: %s%s", s->dir, where,
				 evfs_strerror(rc), why);
			goto fail;
		}
		rc = store_shared_catalog(&s->cfg, s->dir, 0, &s->fresh, NULL, NULL, where, sizeof(where));
		if (rc) {
			snprintf(err, errsz, "store %s: catalog %s cannot be opened a second time: %s", s->dir, where,
				 evfs_strerror(rc));
			goto fail;
		}
	}
	meta_set_patient(s->fresh, 0);
	kms_opts_shared(&s->cfg, &ko, s, schema, sizeof(schema));
	join(path, sizeof(path), s->dir, "kms.db");
	if (ko.pg_schema)
		snprintf(path, sizeof(path), "in PostgreSQL schema %s", ko.pg_schema);
	rc = kms_open(&s->kms, ko.pg_schema ? NULL : path, &ko);
	if (rc && is_pkcs11(&s->cfg)) {
		char why[700], cause[512];

		pthread_mutex_lock(&s->cause_lock);
		snprintf(cause, sizeof(cause), "%s", strncmp(s->cause, "kms: ", 5) ? s->cause : s->cause + 5);
		s->cause[0] = '\0';
		pthread_mutex_unlock(&s->cause_lock);
		pkcs11_explain(&s->cfg, rc, cause, why, sizeof(why));
		snprintf(err, errsz, "store %s: key store %s cannot be opened: %s", s->dir, path, why);
		goto fail;
	}
	if (rc) {
		if (rc == -EKEYREJECTED)
			snprintf(err, errsz, "store %s: the root key from %s %s does not match this store's key store; "
				 "use the key file or passphrase the store was created with", s->dir,
				 s->cfg.key_source, s->cfg.key_path);
		else {
			char why[600];

			key_source_explain(&s->cfg, 0, why, sizeof(why));
			if (why[0] && (rc == -EINVAL || rc == -ENOENT || rc == -EISDIR))
				snprintf(err, errsz, "store %s: %s (the store's [kms] key_path in evfs.ini)", s->dir, why);
			else
				snprintf(err, errsz, "store %s: key store %s cannot be opened (root key from %s %s): %s%s",
					 s->dir, path, s->cfg.key_source, s->cfg.key_path, evfs_strerror(rc),
					 rc == -EUCLEAN ? " (damaged or not an evfs key store; restore it from a copy)" : "");
		}
		goto fail;
	}
	if (strcmp(s->cfg.store_backend, "rados") == 0) {
		rc = rados_engine(&s->cfg, &s->eng, sub_log, s, s->dir, err, errsz);
		if (rc)
			goto fail;
	} else {
		join(path, sizeof(path), s->dir, "pools");
		rc = engine_create(&s->eng, path, sub_log, s);
		if (rc) {
			snprintf(err, errsz, "store %s: cannot open %s: %s", s->dir, path, evfs_strerror(rc));
			goto fail;
		}
	}
	if (engine_set_format(s->eng, s->cfg.pool_format[0] == '1' ? 1 : 2) < 0)   /* of new pools */
		abort();                  /* config.c admits only "1" and "2" */
	if (engine_set_owner(s->eng, s->cfg.host_name, s->cfg.host_lease) < 0)
		abort();                  /* config.c admits names without spaces */
	engine_set_fresh(s->eng, &store_fresh_ops, s);
	(void)mkdir(s->cfg.backup_dir, 0700);
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_detach_all(s);
	engine_destroy(s->eng);
	kms_close(s->kms);
	meta_close(s->fresh);
	meta_close(s->meta);
	if (s->lock_fd >= 0) {
		if (ftruncate(s->lock_fd, 0) < 0) {
			/* nothing to do: the lock goes with the descriptor */
		}
		close(s->lock_fd);
	}
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->cause_lock);
	pthread_mutex_destroy(&s->files_lock);
	free(s->mountpoint);
	free(s->dir);
	free(s);
}

/* ============================== keys =================================== */

int store_key_error(struct store *s, const struct store_caller *c, int err, const char *what, const struct kms_key_info *ki, const char *name)
{
	const char *n = ki ? ki->alias : name;
	const char *id = ki ? ki->id : "";

	switch (err) {
	case -EACCES:
		store_seterr(s, c, "%s: key %s %s is not usable by this project: the project has no KMS grant or the "
			     "key is not shared with it (R10, R13); ask a security administrator to run "
			     "'evfsctl kms grant --project P', or the key's owner to share it", what, n, id);
		break;
	case -ENOKEY:
		if (ki && ki->state == KMS_KEY_DELETED)
			store_seterr(s, c, "%s: key %s (%s) is Deleted: its material is destroyed and the data it "
				     "protects can never be read again (R19)", what, n, id);
		else if (ki)
			store_seterr(s, c, "%s: key %s (%s) is %s, only an Enabled key can be used (R14, R17); %s", what,
				     n, id, kms_state_name(ki->state),
				     ki->state == KMS_KEY_PENDING_DELETION
					     ? "cancel its deletion with 'evfsctl key cancel-deletion KEY' and then "
					       "enable it with 'evfsctl key enable KEY'"
					     : "enable it with 'evfsctl key enable KEY'");
		else
			store_seterr(s, c, "%s: key %s is not available (R14)", what, n);
		break;
	case -ENOENT:
		store_seterr(s, c, "%s: no key named %s in this project (see 'evfsctl key list')", what, n);
		break;
	case -ENOTUNIQ:
		store_seterr(s, c, "%s: key name %s is ambiguous (several shared keys have it); use the key id", what, n);
		break;
	case -EBADMSG:
		store_seterr(s, c, "%s: the wrapped data key under %s failed authentication (catalog damaged or "
			     "tampered with)", what, n);
		break;
	default:
		store_seterr(s, c, "%s: key %s: %s", what, n, evfs_strerror(err));
	}
	return err;
}

int store_key_choose(struct store *s, const struct store_caller *c, const char *name, struct kms_key_info *ki)
{
	struct kms_caller kc;
	const char *n = name ? name : KMS_DEFAULT_ALIAS;
	int rc;

	/* Ask the KMS (which audits a refusal) before any work is done. */
	store_kcaller(c, &kc, NULL);
	rc = kms_key_use_check(s->kms, &kc, n, ki);
	if (rc == 0)
		return 0;
	if (rc == -EACCES && kms_is_granted(s->kms, c->project) == 0) {
		store_seterr(s, c, "project %s has no KMS grant, so it cannot use encryption yet (R10); ask a security "
			     "administrator (%s) to run 'evfsctl kms grant --project %s'", c->project,
			     s->cfg.security_admins, c->project);
		return -EACCES;
	}
	return store_key_error(s, c, rc, "encrypt", ki->id[0] ? ki : NULL, n);
}

static int key_info_by_id(struct store *s, const struct store_caller *c, const char *project, const char *id,
			  struct kms_key_info *ki)
{
	struct kms_caller kc;
	struct store_caller root = *c;

	/* Lookup by id for messages: done as an administrator view so the
	 * state of a key can always be named. */
	snprintf(root.user, sizeof(root.user), "%s", c->user);
	store_kcaller(&root, &kc, project);
	return kms_key_lookup(s->kms, &kc, id, ki);
}

int store_lineage_new(struct store *s, const struct store_caller *c, int encrypted, const char *key_id,
		      char lineage[static META_LINEAGE_LEN + 1], struct kms_dk **dk)
{
	struct meta_lineage l;
	struct kms_caller kc;
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	int rc;

	memset(&l, 0, sizeof(l));
	engine_lineage_generate(lin);
	engine_lineage_format(lin, lineage);
	memcpy(l.id, lineage, META_LINEAGE_LEN + 1);
	l.encrypted = encrypted;
	l.created = (int64_t)time(NULL);
	if (dk)
		*dk = NULL;
	if (encrypted) {
		store_kcaller(c, &kc, NULL);
		snprintf(l.key_id, sizeof(l.key_id), "%s", key_id);
		rc = kms_dk_generate(s->kms, &kc, key_id, lin, sizeof(lin), l.wrapped, &l.wrapped_len, dk);
		if (rc) {
			struct kms_key_info ki;

			return store_key_error(s, c, rc, "generate data key",
					       key_info_by_id(s, c, NULL, key_id, &ki) == 0 ? &ki : NULL, key_id);
		}
	}
	rc = meta_lineage_insert(s->meta, &l);
	if (!rc)
		rc = engine_pool_create(s->eng, lineage, s->cfg.chunk_size, encrypted);
	if (rc) {
		store_seterr(s, c, "cannot create the chunk pool of a new lineage: %s", evfs_strerror(rc));
		if (dk) {
			kms_dk_destroy(*dk);
			*dk = NULL;
		}
	}
	sodium_memzero(&l, sizeof(l));
	return rc;
}

int store_lineage_unwrap(struct store *s, const struct store_caller *c, const char *project, const char *lineage,
			 struct kms_dk **dk)
{
	struct meta_lineage l;
	struct meta_rekey r;
	struct kms_caller kc;
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	int rc = meta_lineage_get(s->meta, lineage, &l);

	*dk = NULL;
	if (rc) {
		store_seterr(s, c, "lineage %s missing from the catalog: %s; run 'evfsctl fsck'", lineage, evfs_strerror(rc));
		return rc;
	}
	if (!l.encrypted)
		return 0;
	if (engine_lineage_parse(lineage, lin) < 0)
		return -EUCLEAN;
	store_kcaller(c, &kc, project);
	rc = meta_rekey_get(s->meta, lineage, &r);
	if (rc) {
		store_seterr(s, c, "lineage %s: data-key generations unreadable in the catalog: %s; run 'evfsctl fsck'",
			     lineage, evfs_strerror(rc));
		return rc;
	}
	rc = kms_dk_unwrap(s->kms, &kc, l.key_id, lin, sizeof(lin), l.wrapped, l.wrapped_len, dk);
	/* A rekey under way: the handle carries the generation it replaces. */
	if (!rc && r.old_wrapped_len) {
		struct kms_dk *old = NULL;

		rc = kms_dk_unwrap(s->kms, &kc, l.key_id, lin, sizeof(lin), r.old_wrapped, r.old_wrapped_len, &old);
		if (!rc) {
			kms_dk_chain(old, r.old_gen, NULL);
			kms_dk_chain(*dk, r.gen, old);
		}
	} else if (!rc) {
		kms_dk_chain(*dk, r.gen, NULL);
	}
	if (rc) {
		struct kms_key_info ki;

		kms_dk_destroy(*dk);
		*dk = NULL;
		store_key_error(s, c, rc, "unwrap data key", key_info_by_id(s, c, project, l.key_id, &ki) == 0 ? &ki : NULL,
				l.key_id);
	}
	return rc;
}

int store_object_unwrap(struct store *s, const struct store_caller *c, const struct meta_object *o,
			struct kms_dk **dk)
{
	struct backup_info bi;
	struct kms_caller kc;
	uint8_t lin[CHUNK_LINEAGE_BYTES];

	*dk = NULL;
	if (o->kind == META_BACKUP && o->encrypted && backup_info_load(o->location, o->id, &bi) == 0 &&
	    bi.wrapped_len && engine_lineage_parse(o->lineage, lin) == 0) {
		/* A backup opens with the data key it was taken with: a rekey
		 * may have replaced the lineage's since. */
		store_kcaller(c, &kc, o->project);
		if (kms_dk_unwrap(s->kms, &kc, o->key_id, lin, sizeof(lin), bi.wrapped, bi.wrapped_len, dk) == 0)
			return 0;
		/* Else its copy is under a KMS key version a rewrap retired
		 * (backups made before rewraps covered them): the lineage's
		 * key is the same one unless a rekey came since; the lineage's
		 * unwrap explains any key error. */
	}
	return store_lineage_unwrap(s, c, o->project, o->lineage, dk);
}

int store_lineage_new_key(struct store *s, const struct store_caller *c, const char *project, const char *lineage,
			  uint8_t wrapped[static KMS_WRAPPED_MAX], size_t *wrapped_len)
{
	struct meta_lineage l;
	struct kms_caller kc;
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	int rc = meta_lineage_get(s->meta, lineage, &l);

	if (rc) {
		store_seterr(s, c, "lineage %s missing from the catalog: %s; run 'evfsctl fsck'", lineage, evfs_strerror(rc));
		return rc;
	}
	if (!l.encrypted || engine_lineage_parse(lineage, lin) < 0)
		return -EINVAL;
	store_kcaller(c, &kc, project);
	rc = kms_dk_generate(s->kms, &kc, l.key_id, lin, sizeof(lin), wrapped, wrapped_len, NULL);
	if (rc) {
		struct kms_key_info ki;

		store_key_error(s, c, rc, "generate a new data key",
				key_info_by_id(s, c, project, l.key_id, &ki) == 0 ? &ki : NULL, l.key_id);
	}
	return rc;
}

struct count_ctx {
	int maps, backups;
};

static int count_cb(void *ctx, const struct meta_object *o)
{
	struct count_ctx *cc = ctx;

	if (o->kind == META_BACKUP)
		cc->backups++;
	else
		cc->maps++;
	return 0;
}

void store_lineage_gc(struct store *s, const char *lineage)
{
	struct count_ctx cc = { 0, 0 };
	struct meta_filter f = { .lineage = lineage };
	int rc;

	/* The pool goes with the last map; the catalog row (with the wrapped
	 * key that backups still need) with the last object. */
	if (meta_object_list(s->meta, &f, count_cb, &cc) < 0 || cc.maps > 0)
		return;
	rc = engine_pool_delete(s->eng, lineage);
	if (rc && rc != -EBUSY)
		store_logf(s, LOG_WARNING, "lineage %s: pool not removed: %s", lineage, evfs_strerror(rc));
	if (rc == 0 && cc.backups == 0 && meta_lineage_delete(s->meta, lineage) < 0)
		store_logf(s, LOG_WARNING, "lineage %s: catalog row not removed", lineage);
	if (rc == 0) {  /* the pool is gone: so is its freshness (catalog row: cascade) */
		int trc = kms_fresh_drop(s->kms, lineage);

		if (trc && trc != -EOPNOTSUPP)
			store_logf(s, LOG_WARNING, "lineage %s: its freshness object on the token not removed: %s",
				   lineage, evfs_strerror(trc));
	}
}

int store_object_find(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name,
		      struct meta_object *o)
{
	int rc = meta_object_lookup(s->meta, kind, c->project, name, o);

	if (rc == -ENOENT)
		store_seterr(s, c, "no %s named '%s' in project %s (see 'evfsctl %s list')", meta_kind_name(kind), name,
			     c->project, meta_kind_name(kind));
	else if (rc)
		store_seterr(s, c, "%s %s: catalog error: %s", meta_kind_name(kind), name, evfs_strerror(rc));
	return rc;
}

/* ============================ attachments ============================== */

int store_is_attached(struct store *s, const char *id)
{
	int found = 0;

	pthread_mutex_lock(&s->lock);
	for (struct attachment *a = s->attached; a; a = a->next)
		found |= strcmp(a->id, id) == 0;
	pthread_mutex_unlock(&s->lock);
	return found;
}

/* Attach volume o in this process (the mount). */
int store_attach_object(struct store *s, const struct store_caller *c, const struct meta_object *o)
{
	struct attachment *a;
	struct kms_dk *dk = NULL;
	struct vol *v = NULL;
	int rc;

	if (store_is_attached(s, o->id))
		return -EALREADY;
	rc = store_lineage_unwrap(s, c, o->project, o->lineage, &dk);
	if (rc)
		return rc;
	rc = engine_vol_open(&v, s->eng, o->lineage, o->id, 1);
	if (!rc) {
		rc = vol_attach(v, dk);
		if (!rc)
			dk = NULL;
	}
	a = rc ? NULL : calloc(1, sizeof(*a));
	if (!rc && !a)
		rc = -ENOMEM;
	if (rc) {
		kms_dk_destroy(dk);
		if (v && vol_is_attached(v) && vol_detach(v) < 0)
			store_logf(s, LOG_ERR, "volume %s: detach after failed attach failed", o->name);
		engine_vol_close(v);
		if (!evfs_err_msg(c->err)[0] || rc == -ENOMEM)
			store_seterr(s, c, "attach %s: %s", o->name, evfs_strerror(rc));
		return rc;
	}
	snprintf(a->id, sizeof(a->id), "%s", o->id);
	snprintf(a->lineage, sizeof(a->lineage), "%s", o->lineage);
	a->v = v;
	pthread_mutex_lock(&s->lock);
	a->next = s->attached;
	s->attached = a;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Detach in this process; returns -ENOENT if not attached. */
int store_detach_object(struct store *s, const char *id)
{
	struct attachment *a = NULL, **pp;
	int rc;

	pthread_mutex_lock(&s->lock);
	for (pp = &s->attached; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) == 0) {
			a = *pp;
			*pp = a->next;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (!a)
		return -ENOENT;
	rc = vol_sync(a->v);
	if (vol_detach(a->v) < 0)
		store_logf(s, LOG_WARNING, "volume %s was not attached", id);
	engine_vol_close(a->v);
	fresh_to_token(s, a->lineage);
	free(a);
	return rc;
}

void store_detach_all(struct store *s)
{
	for (;;) {
		char id[META_ID_LEN + 1];

		pthread_mutex_lock(&s->lock);
		if (!s->attached) {
			pthread_mutex_unlock(&s->lock);
			return;
		}
		snprintf(id, sizeof(id), "%s", s->attached->id);
		pthread_mutex_unlock(&s->lock);
		if (store_detach_object(s, id) < 0)
			store_logf(s, LOG_ERR, "volume %s: sync at detach failed", id);
	}
}

struct reattach_ctx {
	struct store *s;
	struct meta_object *list;
	size_t n, cap;
};

static int collect_cb(void *ctx, const struct meta_object *o)
{
	struct reattach_ctx *r = ctx;

	if (!o->attached || (o->attached_host[0] && strcmp(o->attached_host, r->s->cfg.host_name) != 0))
		return 0;        /* another host's: it re-attaches them itself */
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct meta_object *l = realloc(r->list, cap * sizeof(*l));

		if (!l)
			return -ENOMEM;
		r->list = l;
		r->cap = cap;
	}
	r->list[r->n++] = *o;
	return 0;
}

int store_reattach_all(struct store *s)
{
	struct reattach_ctx r = { .s = s };
	struct meta_filter f = { .kind = META_VOLUME };
	int n = 0, rc = meta_object_list(s->meta, &f, collect_cb, &r);

	for (size_t i = 0; rc >= 0 && i < r.n; i++) {
		struct store_caller c;
		struct evfs_err why = { "" };

		store_caller_init(s, &c, r.list[i].owner_uid, 0, r.list[i].project);
		c.err = &why;
		if (store_attach_object(s, &c, &r.list[i]) == 0) {
			n++;
			store_logf(s, LOG_INFO, "volume %s (project %s) re-attached", r.list[i].name, r.list[i].project);
		} else {
			store_logf(s, LOG_WARNING, "volume %s (project %s) was attached but cannot be re-attached: %s",
				   r.list[i].name, r.list[i].project, why.msg);
		}
	}
	free(r.list);
	return rc < 0 ? rc : n;
}

struct meta_db *store_meta(struct store *s)
{
	return s->meta;
}

struct kms *store_kms(struct store *s)
{
	return s->kms;
}

void store_cause_clear(struct store *s)
{
	pthread_mutex_lock(&s->cause_lock);
	s->cause[0] = '\0';
	pthread_mutex_unlock(&s->cause_lock);
}

int store_owner_check(struct store *s, const struct store_caller *c, const struct meta_object *o, const char *op)
{
	if (c->uid != 0 && c->uid != o->owner_uid) {
		store_seterr(s, c, "%s %s: permission denied: it belongs to uid %u (R27); ask its owner or root", op,
			     o->name, (unsigned)o->owner_uid);
		return -EPERM;
	}
	return store_host_check(s, c, o, op);
}

/* A volume attached on another host of a shared store is that host's to
 * write: every command that would touch its data or its attachment runs
 * there (this host's engine would work from a state the other one is
 * changing). */
int store_host_check(struct store *s, const struct store_caller *c, const struct meta_object *o, const char *op)
{
	char since[48] = "";
	struct tm tm;
	time_t t = (time_t)o->attached_at;

	if (o->kind != META_VOLUME || !o->attached || !o->attached_host[0] ||
	    strcmp(o->attached_host, s->cfg.host_name) == 0)
		return 0;
	if (t > 0 && gmtime_r(&t, &tm))
		strftime(since, sizeof(since), " since %Y-%m-%d %H:%M:%S UTC", &tm);
	store_seterr(s, c, "%s %s refused: the volume is attached on host %s%s (this is host %s); run the command "
		     "there, or detach it there first (a host that died: evfsctl attach %s --steal once its lease "
		     "is over)", op, o->name, o->attached_host, since, s->cfg.host_name, o->name);
	return -EBUSY;
}

int store_name_check(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name)
{
	struct meta_object o;
	size_t n = strlen(name);

	if (n == 0 || n >= META_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
						"0123456789._-") != n || name[0] == '.') {
		store_seterr(s, c, "%s name '%s' is not valid: use 1-63 letters, digits, '.', '_' or '-', not starting "
			     "with '.'", meta_kind_name(kind), name);
		return -EINVAL;
	}
	if (meta_object_lookup(s->meta, kind, c->project, name, &o) == 0) {
		store_seterr(s, c, "a %s named '%s' already exists in project %s; choose another name",
			     meta_kind_name(kind), name, c->project);
		return -EEXIST;
	}
	return 0;
}

int store_size_check(struct store *s, const struct store_caller *c, const char *name, uint64_t size)
{
	if (size % STORE_SECTOR) {
		store_seterr(s, c, "volume %s: %llu bytes is not a multiple of %u (a disk's sector); use e.g. 10G or "
			     "%llu", name, (unsigned long long)size, STORE_SECTOR,
			     (unsigned long long)(size + STORE_SECTOR - size % STORE_SECTOR));
		return -EINVAL;
	}
	if (size > STORE_VOLUME_MAX) {
		store_seterr(s, c, "volume %s: %llu bytes is larger than the largest volume, %llu bytes (1P)", name,
			     (unsigned long long)size, (unsigned long long)STORE_VOLUME_MAX);
		return -EFBIG;
	}
	return 0;
}
