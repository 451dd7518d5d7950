/* SPDX-License-Identifier: MIT */
/* store_int.h - store internals shared by store*.c (private to fs/). */
#ifndef EVFS_STORE_INT_H
#define EVFS_STORE_INT_H

#include <pthread.h>

#include "engine.h"
#include "kms/kms.h"
#include "store.h"

struct attachment {
	char id[META_ID_LEN + 1];
	char lineage[META_LINEAGE_LEN + 1];
	struct vol *v;                 /* holds one reference while attached */
	struct attachment *next;
};

struct store {
	char *dir;
	struct evfs_config cfg;
	struct meta_db *meta;
	struct meta_db *fresh;          /* a second catalog connection that never waits: the
					   pools' freshness records, written under their commit
					   locks (engine_fresh_ops) */
	struct kms *kms;
	struct engine *eng;
	int lock_fd;
	int mounted;                    /* opened by the mount daemon */
	store_log_fn log;
	void *log_ctx;
	pthread_mutex_t cause_lock;     /* protects `cause` and `recent` (logged from any thread) */
	char cause[512];                /* last error the engine, catalog or KMS logged during
					   the current command: store_seterr appends it */
	struct store_recent_error recent[STORE_RECENT];   /* protected by cause_lock */
	uint64_t nrecent;               /* errors noted so far; protected by cause_lock */
	int64_t opened;                 /* time the store was opened */
	pthread_mutex_t lock;           /* protects `attached` */
	struct attachment *attached;
	char *mountpoint;               /* of the mount that opened the store, else NULL */
	pthread_mutex_t files_lock;     /* protects `files` */
	struct store_file *files;       /* files open in the mount (R35) */
};

/* -EBUSY, with the message for `op`, when volume o is attached on another
 * host (store_owner_check does it too). */
int store_host_check(struct store *s, const struct store_caller *c, const struct meta_object *o, const char *op);

/* store_shared.c: the catalog and key store of a store (SQLite files in
 * dir, or PostgreSQL schemas <schema>_catalog and <schema>_kms) and the
 * settings its hosts share. */
/* The PostgreSQL schema of `part` ("catalog" or "kms") in buf, or NULL if
 * that part is an SQLite file of the store directory. */
const char *store_shared_schema(const struct evfs_config *c, const char *part, char *buf, size_t n);
/* meta_open or meta_open_pg as c says; `where` names the catalog for messages. */
int store_shared_catalog(const struct evfs_config *c, const char *dir, int create, struct meta_db **db,
			 meta_log_fn log, void *log_ctx, char *where, size_t wn);
/* Write (init) or read (join) the store.* settings every host shares. */
int store_shared_save(struct meta_db *db, const struct evfs_config *c);
int store_shared_load(struct meta_db *db, struct evfs_config *c, char *err, size_t errsz);

/* The caller's error message (c->err; dropped if c or c->err is NULL),
 * with what the engine, catalog or KMS last logged appended. */
void store_seterr(struct store *s, const struct store_caller *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void store_logf(struct store *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void store_kcaller(const struct store_caller *c, struct kms_caller *k, const char *project);

/* Resolve the key an encrypted object of project c->project will use
 * (NULL name: evs/default); checks grant and state (R10, R14). */
int store_key_choose(struct store *s, const struct store_caller *c, const char *name, struct kms_key_info *ki);
/* Explain a KMS error about key `ki` (or name) in c->err. */
int store_key_error(struct store *s, const struct store_caller *c, int err, const char *what, const struct kms_key_info *ki, const char *name);
/* New lineage (pool + catalog row); *dk gets the plaintext DK if dk != NULL. */
int store_lineage_new(struct store *s, const struct store_caller *c, int encrypted, const char *key_id,
		      char lineage[static META_LINEAGE_LEN + 1], struct kms_dk **dk);
/* Unwrap the DK of a lineage for c (NULL for unencrypted lineages); while
 * a rekey is under way the handle carries both generations. */
int store_lineage_unwrap(struct store *s, const struct store_caller *c, const char *project, const char *lineage,
			 struct kms_dk **dk);
/* The DK that opens object o's chunks: a backup's own (the copy in its
 * file: it was taken under it), else the lineage's (store_lineage_unwrap). */
int store_object_unwrap(struct store *s, const struct store_caller *c, const struct meta_object *o,
			struct kms_dk **dk);
/* Backup freshness (store_backup.c): check that o's file is the one the
 * catalog recorded (-EIO with a message and a log line if not; a backup
 * from before the records passes), and record a file's current checksum
 * after the store rewrote it. */
int store_backup_fresh_check(struct store *s, const struct store_caller *c, const struct meta_object *o);
void store_backup_fresh_record(struct store *s, const char *id, const char *dir);
/* A new wrapped DK for an encrypted lineage (a rekey), under its key,
 * with the same checks and messages as an unwrap. */
int store_lineage_new_key(struct store *s, const struct store_caller *c, const char *project, const char *lineage,
			  uint8_t wrapped[static KMS_WRAPPED_MAX], size_t *wrapped_len);
/* Drop the lineage's pool and catalog row if nothing uses them any more. */
void store_lineage_gc(struct store *s, const char *lineage);
/* A new object's name: 1-63 of letters, digits, '.', '_', '-', not
 * starting with '.' (a file name in the mount), and not taken in
 * c->project (-EINVAL / -EEXIST with a message). */
int store_name_check(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name);
/* A volume size: a multiple of STORE_SECTOR, at most STORE_VOLUME_MAX
 * (-EINVAL / -EFBIG with a message). */
int store_size_check(struct store *s, const struct store_caller *c, const char *name, uint64_t size);
/* R35: how many files of the mount hold object o open; who gets "N open
 * file handles in the mount at M, loop device /dev/loopK" (store_files.c). */
int store_file_holders(struct store *s, const struct meta_object *o, char *who, size_t n);
/* Find an object of c->project by kind and name (message on failure). */
int store_object_find(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name,
		      struct meta_object *o);
/* 0 if c is root or owns o, else -EPERM with "OP NAME: permission denied"
 * (R27).  Every operation that changes an object or copies its data out
 * (snapshot, backup, image, volume from it, export) checks it. */
int store_owner_check(struct store *s, const struct store_caller *c, const struct meta_object *o, const char *op);
/* Copy src's data into dst, or into fd when dst is NULL (store_copy.c). */
struct progress;
int store_copy_data(struct vol *src, struct vol *dst, int fd, struct progress *p);
/* Restore: write every chunk of backup bk (opened with dk; NULL if not
 * encrypted) into dst (attached) and sync it (store_copy.c). */
int store_copy_backup(const struct meta_object *bk, const struct kms_dk *dk, struct vol *dst, struct progress *p);
/* Open map `id` and attach dk (consumed; NULL for unencrypted). */
int store_open_attached(struct store *s, const char *lineage, const char *id, int writable, struct kms_dk *dk,
			struct vol **out);
int store_attach_object(struct store *s, const struct store_caller *c, const struct meta_object *o);
int store_detach_object(struct store *s, const char *id);

/* The catalog and the KMS of the store: for the store's own files and for
 * white-box tests only (never in store.h). */
struct meta_db *store_meta(struct store *s);
struct kms *store_kms(struct store *s);

#endif
