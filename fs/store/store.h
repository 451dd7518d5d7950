/* SPDX-License-Identifier: MIT */
/*
 * store.h - the store service: config + catalog (meta/) + KMS (kms/) +
 * volume engine, with the product rules (R1-R28) in one place.
 *
 * evfsctl and the mount daemon both drive a struct store.  Exactly one
 * process operates a store at a time: the holder of STORE/evfs.lock (the
 * mount for its whole life, else the evfsctl command).  While a store is
 * mounted, evfsctl forwards its command line to the mount's control socket
 * and the mount runs it here, with the caller's credentials.
 *
 * Errors are negative errno values; every failing call that takes a
 * caller also leaves a message for the user in the caller's own error
 * object (c->err) naming the object, the rule and the remedy, so calls
 * from several threads never share a buffer.  Knows nothing of FUSE.
 */
#ifndef EVFS_STORE_H
#define EVFS_STORE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"
#include "err.h"
#include "kms/kms.h"    /* key information types; the KMS itself stays behind the store */
#include "meta/meta.h"

#define STORE_WUR __attribute__((warn_unused_result))
#define STORE_SECTOR 512u                        /* volume sizes are whole sectors */
#define STORE_VOLUME_MAX (1ull << 50)            /* 1 PiB: the largest volume */

struct store;
struct store_file;

struct store_caller {
	uint32_t uid;
	uint32_t gid;
	char user[64];
	char project[64];
	FILE *progress;          /* progress bars of long operations go here; NULL: none */
	struct evfs_err *err;    /* caller-owned: why the call failed; NULL: not wanted */
};

typedef void (*store_log_fn)(void *ctx, int level, const char *msg);

/* Create a new store directory (mode 0700) with evfs.ini, catalog.db,
 * kms.db and pools/; keyfile or passphrase file per SPEC section 2. */
struct store_init_opts {
	const char *region;          /* NULL: default */
	const char *keyfile;         /* exactly one of keyfile/passphrase_file/ */
	const char *passphrase_file; /* pkcs11_module */
	const char *pkcs11_module;   /* R34: root key in a PKCS#11 token; then */
	const char *pkcs11_token;    /* token and pin file are required, */
	const char *pkcs11_pin_file; /* key NULL: "evfs-root" (created in the */
	const char *pkcs11_key;      /* token if missing) */
	const char *security_admins; /* NULL: the calling user */
	uint32_t chunk_size;         /* 0: default */
	const char *rados_conf;      /* non-NULL: the pools in RADOS (R29): */
	const char *rados_pool;      /* the cluster's ceph.conf, the pool */
	const char *rados_id;        /* and the client name (NULL: admin) */
	const char *pg_conninfo;     /* non-NULL: catalog and key store in */
	const char *pg_schema;       /* PostgreSQL schemas <schema>_catalog and
					_kms (NULL: made up, evfs_<16 hex>) */
	const char *host_name;       /* NULL: the hostname at each open */
	int join;                    /* add this host to the shared store
					named by pg_conninfo and pg_schema: its
					settings come from the catalog, the root
					key must open its key store */
	FILE *warn;                  /* warnings (key file placement); NULL: none */
};
int store_init(const char *dir, const struct store_init_opts *o, char *err, size_t errsz) STORE_WUR;

/* Open a store: parse the config, open catalog and KMS (root key), the
 * engine.  Takes the store lock (-EBUSY with the holder named in err if a
 * mount holds it).  mountpoint: non-NULL when opened by the mount daemon
 * (recorded in the lock file for the "already mounted" message). */
int store_open(struct store **out, const char *dir, const char *mountpoint, store_log_fn log, void *log_ctx,
	       char *err, size_t errsz) STORE_WUR;
/* Detach everything (wiping data keys) and close. */
void store_close(struct store *s);

/* Forget what the lower layers logged so far (a command starts). */
void store_cause_clear(struct store *s);
const struct evfs_config *store_config(const struct store *s);
const char *store_dir(const struct store *s);
/* Fill a caller from uid/gid (user name from the passwd db; project = the
 * config's default unless `project` is given). */
void store_caller_init(const struct store *s, struct store_caller *c, uid_t uid, gid_t gid, const char *project);

/* --- mount lifetime (R21) -------------------------------------------------- */
/* Re-attach every volume recorded as attached whose key is Enabled; the
 * others are reported through the log.  Returns the number attached. */
int store_reattach_all(struct store *s) STORE_WUR;
/* Detach every volume (data keys wiped) without changing the recorded
 * desired state, so the next mount re-attaches them. */
void store_detach_all(struct store *s);

/* --- files presented by the mount ----------------------------------------- */
struct store_entry {
	enum meta_kind kind;
	char name[META_NAME_MAX + META_PROJECT_MAX + 2];   /* "name" or "name@project" */
	char id[META_ID_LEN + 1];
	uint64_t size;
	uint32_t uid;
	uint32_t mode;               /* 0600 volumes, 0400 snapshots/backups/images, 0000 encrypted images */
	int64_t created;
};
typedef int (*store_entry_cb)(void *ctx, const struct store_entry *e);
/* Entries of one directory kind (volumes, snapshots, backups, images). */
int store_dir_list(struct store *s, enum meta_kind kind, store_entry_cb cb, void *ctx) STORE_WUR;
int store_entry_lookup(struct store *s, enum meta_kind kind, const char *name, struct store_entry *out) STORE_WUR;

/* Open a file of the mount.  Volumes open read-write (I/O fails -ENOKEY
 * while detached); snapshots/backups/images read-only: their data key is
 * unwrapped for the caller at open (-ENOKEY/-EACCES with the reason in the
 * log).  Encrypted images refuse reading: -EACCES (R9). */
int store_file_open(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name,
		    int writable, struct store_file **out) STORE_WUR;
void store_file_close(struct store_file *f);
ssize_t store_file_read(struct store_file *f, void *buf, size_t len, uint64_t off) STORE_WUR;
ssize_t store_file_write(struct store_file *f, const void *buf, size_t len, uint64_t off) STORE_WUR;
int store_file_discard(struct store_file *f, uint64_t off, uint64_t len) STORE_WUR;
int store_file_sync(struct store_file *f) STORE_WUR;
int64_t store_file_seek(struct store_file *f, uint64_t off, int whence) STORE_WUR;
uint64_t store_file_size(struct store_file *f);
/* truncate(2) on a volume: growing extends it (R23), shrinking -EINVAL. */
int store_file_truncate(struct store *s, const struct store_caller *c, const char *name, uint64_t size) STORE_WUR;

/* Extended attributes (R28): user.evfs.encrypted, .key, .key_state,
 * .source, .attached.  get returns the value length (-ENODATA unknown);
 * list writes NUL-separated names, returns total length. Setting or
 * removing any of them is -EPERM (R1: immutable), logged. */
int store_xattr_get(struct store *s, enum meta_kind kind, const char *name, const char *attr, char *out,
		    size_t outsz) STORE_WUR;
int store_xattr_list(char *out, size_t outsz) STORE_WUR;

/* --- operations (store_ops.c, store_backup.c) ----------------------------- */
struct store_volume_spec {
	const char *name;
	uint64_t size;               /* bytes; 0 = the source's size */
	int encrypt;                 /* -1 not given, 0 --no-encrypt, 1 --encrypt */
	const char *key;             /* --key (name or id) or NULL */
	enum meta_kind from_kind;    /* META_ANY: empty volume */
	const char *from;            /* source name */
	const char *type;            /* "data" / "system" or NULL */
};
int store_volume_create(struct store *s, const struct store_caller *c, const struct store_volume_spec *sp,
			struct meta_object *out) STORE_WUR;
int store_volume_extend(struct store *s, const struct store_caller *c, const char *name, uint64_t size) STORE_WUR;
int store_volume_rollback(struct store *s, const struct store_caller *c, const char *name,
			  const char *snap) STORE_WUR;
/* A new data key for the volume's lineage (the volume, its snapshots and
 * images and the volumes made from them), every stored chunk re-sealed
 * under it while the volume stays attached, then the old key destroyed
 * (R33; store_rekey.c).  Resumes an interrupted rekey.  Backups keep the
 * key they were taken with. */
struct store_rekey_result {
	uint32_t gen;                /* the lineage's data-key generation now */
	uint64_t chunks;             /* chunks re-encrypted by this run */
	uint64_t entries;            /* map entries moved to them (shared chunks count once per map) */
	int resumed;                 /* an interrupted rekey was picked up */
};
int store_volume_rekey(struct store *s, const struct store_caller *c, const char *name,
		       struct store_rekey_result *res) STORE_WUR;
/* kind META_SNAPSHOT or META_IMAGE: a CoW copy of the volume's map. */
int store_snapshot_create(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *vol,
			  const char *name, struct meta_object *out) STORE_WUR;
int store_image_copy(struct store *s, const struct store_caller *c, const char *img, const char *name,
		     int encrypt, const char *key, struct meta_object *out) STORE_WUR;
int store_image_export(struct store *s, const struct store_caller *c, const char *img, const char *file) STORE_WUR;
int store_image_replicate(struct store *s, const struct store_caller *c, const char *img,
			  const char *to_store) STORE_WUR;
/* A volume open in the mount (R35) is deleted only with force, with a
 * warning on warn (may be NULL). */
int store_object_delete(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name,
			int force, FILE *warn) STORE_WUR;
int store_backup_create(struct store *s, const struct store_caller *c, const char *vol, const char *name,
			int incremental, struct meta_object *out) STORE_WUR;
int store_backup_delete(struct store *s, const struct store_caller *c, const struct meta_object *o) STORE_WUR;
int store_attach(struct store *s, const struct store_caller *c, const char *name) STORE_WUR;
/* attach --steal: a volume attached on another host of a shared store
 * whose lease on the volume's pool ran out (the host died or hangs) is
 * taken: that host is blocklisted (it cannot write again), its record
 * cleared (a warning on warn), then the volume attached here.  -EBUSY
 * while that host's lease is alive.  A volume not attached elsewhere is
 * simply attached. */
int store_attach_steal(struct store *s, const struct store_caller *c, const char *name, FILE *warn) STORE_WUR;
int store_detach(struct store *s, const struct store_caller *c, const char *name, int force, FILE *warn) STORE_WUR;
/* Verify every chunk of an object; bad chunks reported on out. Returns
 * the number of bad chunks or a negative errno. */
int store_fsck(struct store *s, const struct store_caller *c, const char *name, FILE *out) STORE_WUR;
/* evfsctl fsck (store_fsck.c): the whole store (name NULL; root or the
 * store's owner) or one object and its lineage's pool.  Findings go to out
 * as text lines or one JSON document.  Nothing is written unless repair
 * (orphans removed, leaked slots punched) or quarantine (with repair and a
 * name: unreadable chunks become holes).  Returns the number of problems
 * left (0: clean) or a negative errno (message in store_error). */
struct store_fsck_opts {
	const char *name;
	int repair;
	int quarantine;
	int json;
};
int store_fsck_run(struct store *s, const struct store_caller *c, const struct store_fsck_opts *o,
		   FILE *out) STORE_WUR;
/* evfsctl upgrade (store_fsck.c): every format 1 pool of the store to
 * format 2, one line per pool on out.  Root or the store's owner, on an
 * unmounted store.  Returns 0 or a negative errno (message in store_error;
 * the pools done so far stay done, the failed one is unchanged). */
int store_upgrade(struct store *s, const struct store_caller *c, FILE *out) STORE_WUR;
int store_volume_resize(struct store *s, const struct store_caller *c, const struct meta_object *o,
			uint64_t size) STORE_WUR;
/* "Enabled", ... for a key id as seen from project (for listings). */
const char *store_key_state_of(struct store *s, const char *project, const char *key_id);
int store_is_attached(struct store *s, const char *id);

/* --- keys and the catalog (store_keys.c) ---------------------------------
 * The key commands for a caller: kms/ enforces R10-R14 with the caller's
 * identity; on a refusal c->err says what was refused and why.  The KMS
 * and the catalog themselves are never handed out. */
int store_kms_grant(struct store *s, const struct store_caller *c, const char *project, int grant) STORE_WUR;
int store_key_create(struct store *s, const struct store_caller *c, const char *alias, const char *desc,
		     struct kms_key_info *out) STORE_WUR;
/* op names the command in the message ("show", "audit", ...). */
int store_key_lookup(struct store *s, const struct store_caller *c, const char *name, const char *op,
		     struct kms_key_info *out) STORE_WUR;
int store_key_list(struct store *s, const struct store_caller *c, kms_key_cb cb, void *ctx) STORE_WUR;
enum store_key_op {
	STORE_KEY_DISABLE,
	STORE_KEY_ENABLE,
	STORE_KEY_CANCEL_DELETION,
	STORE_KEY_ROTATE,
	STORE_KEY_SCHEDULE_DELETION,     /* days: 7..1096 */
	STORE_KEY_SHARE,                 /* project: the other project */
	STORE_KEY_UNSHARE,
};
int store_key_change(struct store *s, const struct store_caller *c, enum store_key_op op, const char *name,
		     int days, const char *project, struct kms_key_info *out) STORE_WUR;
/* R20: every object encrypted under key_id (of `project` only, if given). */
typedef int (*store_object_cb)(void *ctx, const struct meta_object *o);
int store_key_dependents(struct store *s, const char *key_id, const char *project, store_object_cb cb,
			 void *ctx) STORE_WUR;
/* Re-wrap every lineage's data key under the key's newest version (one
 * catalog transaction), then destroy the older versions' material. */
int store_key_rewrap(struct store *s, const struct store_caller *c, const char *name, struct kms_key_info *k,
		     size_t *rewrapped, int *retired) STORE_WUR;
int store_audit_list(struct store *s, const struct store_caller *c, const char *key_id, kms_audit_cb cb,
		     void *ctx) STORE_WUR;
/* -EBADMSG with *bad_seq set if the log was tampered with. */
int store_audit_verify(struct store *s, const struct store_caller *c, int64_t *bad_seq) STORE_WUR;
/* Catalog listings and lookups (-ENOENT with a message naming the object). */
int store_object_list(struct store *s, const struct meta_filter *f, store_object_cb cb, void *ctx) STORE_WUR;
int store_object_lookup(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name,
			struct meta_object *out) STORE_WUR;

/* --- status (store_status.c) -------------------------------------------- */
#define STORE_RECENT 8u
struct store_recent_error {
	int64_t time;                /* seconds since the epoch */
	char msg[256];
};
struct store_mount_status {
	int mounted;                 /* opened by a mount (else: an evfsctl process) */
	long pid;
	char mountpoint[4096];
	char store[4096];
	int64_t started;             /* when the store was opened */
	uint64_t errors_total;       /* errors and warnings the mount logged */
	unsigned nrecent;
	struct store_recent_error recent[STORE_RECENT];   /* newest first */
};
struct store_volume_status {
	char name[META_NAME_MAX], project[META_PROJECT_MAX], id[META_ID_LEN + 1], key_id[40];
	int encrypted;
	const char *key_state;       /* "Enabled", ..., "-" when not encrypted */
	uint64_t size;
	unsigned open_handles;       /* files of the mount holding it open (R35) */
	char holders[512];           /* who, in words ("" if none) */
	uint64_t bytes_read, bytes_written, chunk_errors;   /* since attach */
};
typedef int (*store_volume_status_cb)(void *ctx, const struct store_volume_status *v);
/* The mount's state and one call per attached volume.  Thread-safe. */
int store_status(struct store *s, struct store_mount_status *m, store_volume_status_cb cb, void *ctx) STORE_WUR;
/* Remember a line the mount logged at LOG_WARNING or worse (status shows
 * the last STORE_RECENT).  Thread-safe; cannot fail. */
void store_error_note(struct store *s, const char *msg);

/* --- control ------------------------------------------------------------- */
/* Runs one evfsctl command line (argv after the global options) for a
 * caller, writing to out/err; returns the exit code (0, 1, 2).  Set by
 * the CLI library; the mount calls it for control-socket requests. */
typedef int (*store_command_fn)(struct store *s, const struct store_caller *c, int json, int argc, char **argv,
				FILE *out, FILE *err);

/* Commands between the hosts of a shared store.  The mount sets the
 * function that runs a request another host sends it (ctl_forward_serve);
 * NULL stops it, waiting for a request under way.  store_volume_forward
 * sends req to the host volume `name` (of c's project) is attached on and
 * waits for its answer: 1 when the volume is not attached on another host
 * (run the command here), 0 with *reply (malloc'd), else -errno with the
 * message in c->err (-EHOSTUNREACH: that host does not answer). */
typedef void (*store_forward_fn)(void *ctx, const void *req, size_t len, void **reply, size_t *rlen);
void store_set_forward(struct store *s, store_forward_fn fn, void *ctx);
int store_volume_forward(struct store *s, const struct store_caller *c, const char *name, const void *req, size_t len,
			 void **reply, size_t *rlen) STORE_WUR;

#endif
