/* SPDX-License-Identifier: MIT */
/*
 * kms.h - the local key management service.
 *
 * The KMS owns every master key.  It keeps its own key store - an SQLite
 * file (STORE/kms.db), or for several hosts sharing one store a schema of a
 * PostgreSQL database (kms_options.pg_conninfo) - holding, per project and
 * region, customer master keys (CMKs) that exist in the store only wrapped
 * by the store's root key.  The root key comes
 * from a key file (32 random bytes) or from a passphrase through Argon2id; it
 * is never stored.  Callers never see a master key: they ask the KMS to
 * generate a data key (DK) wrapped under a CMK, or to unwrap one, and receive
 * an opaque struct kms_dk whose bytes live in sodium_malloc'd, read-only,
 * non-dumpable memory until kms_dk_destroy() wipes them.
 *
 * Errors: every int function returns 0 (or a count) on success, a negative
 * errno on failure:
 *   -EINVAL        bad argument (bad alias, days out of range, ...)
 *   -ENOENT        no such key / project / record
 *   -EEXIST        alias already exists in the project
 *   -ENOTUNIQ      a name matches more than one key (use the id)
 *   -EPERM         caller is not a security administrator, or the operation
 *                  is never allowed (e.g. disabling evs/default)
 *   -EACCES        project has no KMS grant, or the key is not shared with
 *                  the caller's project
 *   -ENOKEY        key is not Enabled (Disabled, PendingDeletion, Deleted);
 *                  kms_key_lookup() tells the state for the message
 *   -EALREADY      state transition that is a no-op (disable a Disabled key)
 *   -EKEYREJECTED  wrong root key (key file / passphrase does not match)
 *   -EBADMSG       a wrapped blob failed authentication
 *   -EUCLEAN       key store inconsistent (bad schema, bad row)
 *   -EBUSY         key store locked by another process for too long
 *   -ECONNREFUSED  PostgreSQL: the server cannot be reached
 *   -EPROTONOSUPPORT  PostgreSQL: evfs was built without libpq
 *   -ENOMEM, -EIO
 * The module never prints; it reports through the optional log callback.
 * Thread-safety: a struct kms may be shared by threads; calls serialise on an
 * internal mutex.  A struct kms_dk is immutable and may be read concurrently.
 */
#ifndef EVFS_KMS_H
#define EVFS_KMS_H

#include <stddef.h>
#include <stdint.h>

#define KMS_KEY_BYTES 32u          /* CMK, root key and DK size */
#define KMS_ID_LEN 36u             /* key ids are UUID text, 36 chars + NUL */
#define KMS_ALIAS_MAX 64u          /* alias incl. NUL */
#define KMS_PROJECT_MAX 64u
#define KMS_DESC_MAX 256u
#define KMS_WRAPPED_MAX 128u       /* upper bound of a wrapped DK blob */
#define KMS_DEFAULT_ALIAS "evs/default"
#define KMS_PASSPHRASE_MIN 8          /* characters of a new store's passphrase */
#define KMS_MIN_DELETION_DAYS 7
#define KMS_MAX_DELETION_DAYS 1096

#define KMS_WUR __attribute__((warn_unused_result))

struct kms;
struct kms_dk;

/* Where the root key lives.  PKCS11 (R34): an AES-256 key object inside a
 * PKCS#11 token; the key never enters evfs's memory, the token seals and
 * unseals CMK material itself (docs/kms-pkcs11.md). */
enum kms_root_kind { KMS_ROOT_KEYFILE = 1, KMS_ROOT_PASSPHRASE = 2, KMS_ROOT_PKCS11 = 3 };
#define KMS_PKCS11_KEY_DEFAULT "evfs-root"   /* label of the token's key object */

enum kms_key_state {
	KMS_KEY_ENABLED = 1,
	KMS_KEY_DISABLED = 2,
	KMS_KEY_PENDING_DELETION = 3,
	KMS_KEY_DELETED = 4,
};

/* Who is asking.  `user` is the Unix user name of `uid`; `project` is the
 * project the request is made in.  Strings are borrowed for the call. */
struct kms_caller {
	uint32_t uid;
	const char *user;
	const char *project;
};

struct kms_key_info {
	char id[KMS_ID_LEN + 1];
	char alias[KMS_ALIAS_MAX];
	char project[KMS_PROJECT_MAX];     /* owning project */
	char description[KMS_DESC_MAX];
	enum kms_key_state state;
	int is_default;                    /* evs/default of its project */
	int64_t created;                   /* unix seconds */
	int64_t deletion_date;             /* unix seconds, 0 unless pending */
	uint32_t version;                  /* newest key version (rotation) */
	uint32_t versions_in_use;          /* versions still holding material */
};

typedef void (*kms_log_fn)(void *ctx, int level, const char *msg);

struct kms_options {
	enum kms_root_kind root_kind;
	const char *secret_path;        /* key file, passphrase file, or (PKCS11)
					 * the file holding the token's user PIN */
	const char *pkcs11_module;      /* PKCS11: path of the module (.so) */
	const char *pkcs11_token;       /* PKCS11: token label (1..32 chars) */
	const char *pkcs11_key;         /* PKCS11: key label; NULL/"" = default */
	const char *region;             /* store region, recorded at create */
	const char *security_admins;    /* comma/space separated user names */
	kms_log_fn log;                 /* may be NULL */
	void *log_ctx;
	const char *pg_conninfo; /* non-NULL: the store lives in PostgreSQL */
	const char *pg_schema; /* its schema ([a-z_][a-z0-9_]*) */
};

/* Create a new key store at db_path (must not exist; file mode 0600).
 * With opt->pg_conninfo the store is made in PostgreSQL instead, in schema
 * opt->pg_schema (created if missing; -EEXIST if it already holds a key
 * store or other tables) and db_path is ignored (may be NULL).
 * KEYFILE: uses the 32-byte key in secret_path, creating the file (mode
 * 0400, random key) if it does not exist.  PASSPHRASE: reads the passphrase
 * file (first line, trailing newline stripped, must be non-empty), derives
 * the root key with Argon2id (random salt stored in the key store).  A root
 * key verifier (a MAC, not the key) is stored so later opens detect a wrong
 * key.  Returns 0, -EEXIST, -EINVAL, -EIO, ... */
int kms_create(const char *db_path, const struct kms_options *opt) KMS_WUR;

/* Open an existing key store and load the root key into guarded memory
 * (PKCS11: open one session on the token; the key stays in it).
 * -EKEYREJECTED if the key does not match the verifier (PKCS11: the
 * token's key with that label is not the one the store was created with), -ENOENT if the db
 * or secret file is missing, -EUCLEAN if it is not an evfs key store.
 * With opt->pg_conninfo: the store in schema opt->pg_schema (db_path is
 * ignored, may be NULL); -ENOENT if the schema does not exist or is empty.
 * Opening also destroys the material of PendingDeletion keys whose date has
 * passed (they become Deleted).  *out owned by caller: kms_close(). */
int kms_open(struct kms **out, const char *db_path, const struct kms_options *opt) KMS_WUR;
void kms_close(struct kms *k);     /* wipes the root key; NULL is fine */

/* Returns 1 if user is listed in security_admins, else 0. Cannot fail. */
int kms_is_admin(const struct kms *k, const char *user);

/* --- grants (R10, R11) ------------------------------------------------- */
/* Grant the project the right to use encryption.  Only security admins
 * (-EPERM otherwise).  Creates evs/default for the project if missing.
 * Granting twice is fine (returns 0). */
int kms_grant(struct kms *k, const struct kms_caller *c, const char *project) KMS_WUR;
/* Revoke: admins only; keys stay, but the project can no longer wrap or
 * unwrap (-EACCES) until granted again. -ENOENT if not granted. */
int kms_revoke(struct kms *k, const struct kms_caller *c, const char *project) KMS_WUR;
/* 1 granted, 0 not, negative errno on failure. */
int kms_is_granted(struct kms *k, const char *project) KMS_WUR;

/* --- keys (R11-R14) ---------------------------------------------------- */
/* Create a custom key (Enabled) in c->project.  Requires a grant (-EACCES).
 * alias: 1..63 chars of [A-Za-z0-9/_.-], must not start with "evs/"
 * (-EINVAL), unique per project (-EEXIST). desc may be NULL. */
int kms_key_create(struct kms *k, const struct kms_caller *c, const char *alias,
		   const char *desc, struct kms_key_info *out) KMS_WUR;

/* Resolve KEY (an id, or an alias of c->project, or an alias of a key
 * shared with c->project) into info.  Own-project alias wins over shared
 * ones; two shared keys with the alias -> -ENOTUNIQ.  A key of another
 * project that is not shared with c->project is -ENOENT (unless the caller
 * is a security admin).  Works for keys in every state. */
int kms_key_lookup(struct kms *k, const struct kms_caller *c, const char *name,
		   struct kms_key_info *out) KMS_WUR;

typedef int (*kms_key_cb)(void *ctx, const struct kms_key_info *ki);
/* List keys visible to c->project (own and shared-in), ordered by alias.
 * Stops early and returns the callback's value if it returns non-zero. */
int kms_key_list(struct kms *k, const struct kms_caller *c, kms_key_cb cb, void *ctx) KMS_WUR;

/* State changes; name as in kms_key_lookup but only the owning project may
 * change a key (-EACCES for a shared-in key).
 * disable: Enabled -> Disabled (-EALREADY if Disabled, -ENOKEY if pending or
 *          deleted, -EPERM for the default key).
 * enable:  Disabled -> Enabled (-EALREADY if Enabled, -ENOKEY otherwise).
 * schedule_deletion: Enabled|Disabled -> PendingDeletion at now+days*86400
 *          (days 7..1096 else -EINVAL; -EPERM for default; -EALREADY if
 *          pending; -ENOKEY if deleted).
 * cancel_deletion: PendingDeletion -> Disabled (-EALREADY/-ENOKEY otherwise).
 * On success *out (may be NULL) receives the new info. */
int kms_key_disable(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out) KMS_WUR;
int kms_key_enable(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out) KMS_WUR;
int kms_key_schedule_deletion(struct kms *k, const struct kms_caller *c, const char *name, int days,
			      struct kms_key_info *out) KMS_WUR;
int kms_key_cancel_deletion(struct kms *k, const struct kms_caller *c, const char *name,
			    struct kms_key_info *out) KMS_WUR;

/* Share a key of c->project with another project (R13) / stop sharing.
 * -EINVAL sharing with its own project, -EEXIST already shared (share),
 * -ENOENT not shared (unshare). */
int kms_key_share(struct kms *k, const struct kms_caller *c, const char *name, const char *project,
		  struct kms_key_info *out) KMS_WUR;
int kms_key_unshare(struct kms *k, const struct kms_caller *c, const char *name, const char *project,
		    struct kms_key_info *out) KMS_WUR;
/* Projects a key is shared with, one callback per project. */
typedef int (*kms_share_cb)(void *ctx, const char *project);
int kms_key_shares(struct kms *k, const char *key_id, kms_share_cb cb, void *ctx) KMS_WUR;

/* Rotation: add a new key version; new DKs wrap under it.  Old versions
 * keep unwrapping until kms_key_retire_old() after a rewrap. */
int kms_key_rotate(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out) KMS_WUR;
/* Destroy the material of every version but the newest (call after all
 * DKs were rewrapped). Returns the number of versions destroyed. */
int kms_key_retire_old(struct kms *k, const struct kms_caller *c, const char *key_id) KMS_WUR;

/* --- data keys (R14, R15) ---------------------------------------------- */
/* Would kms_dk_generate() with KEY succeed for c?  The same checks, in the
 * same order, without touching key material; a refusal is audited as a
 * refused "dk.generate".  *ki is filled as far as the key resolved (for
 * the caller's message: state, alias). */
int kms_key_use_check(struct kms *k, const struct kms_caller *c, const char *name,
		      struct kms_key_info *ki) KMS_WUR;
/* The same question without the attempt: could c's project use KEY now?
 * Nothing is audited (detach asks it of a volume's project, R18).  0, or
 * -EACCES / -ENOKEY / -ENOENT with *ki filled as far as the key is known. */
int kms_key_usable(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *ki) KMS_WUR;
/* Generate a fresh random DK and wrap it under the key's newest version.
 * The key must be Enabled (-ENOKEY), the caller's project granted
 * (-EACCES) and the key its own or shared with it (-EACCES).  `context`
 * (e.g. the lineage id) is bound into the wrap: unwrap must pass the same.
 * wrapped must have KMS_WRAPPED_MAX bytes; *wrapped_len gets the length.
 * *dk (may be NULL if the caller only wants the blob) receives the
 * plaintext DK; caller destroys it with kms_dk_destroy(). */
int kms_dk_generate(struct kms *k, const struct kms_caller *c, const char *key_id,
		    const void *context, size_t context_len,
		    uint8_t wrapped[static KMS_WRAPPED_MAX], size_t *wrapped_len,
		    struct kms_dk **dk) KMS_WUR;
/* Unwrap a DK with the same checks as generate. -EBADMSG if the blob or
 * context was tampered with, -ENOKEY if the key (or the blob's version) has
 * no material any more. */
int kms_dk_unwrap(struct kms *k, const struct kms_caller *c, const char *key_id,
		  const void *context, size_t context_len,
		  const uint8_t *wrapped, size_t wrapped_len, struct kms_dk **dk) KMS_WUR;
/* Re-wrap a blob under the key's newest version (rotation); same checks. */
int kms_dk_rewrap(struct kms *k, const struct kms_caller *c, const char *key_id,
		  const void *context, size_t context_len,
		  const uint8_t *wrapped, size_t wrapped_len,
		  uint8_t out[static KMS_WRAPPED_MAX], size_t *out_len) KMS_WUR;
/* Version of the CMK a blob is wrapped under (0 if malformed). Cannot fail. */
uint32_t kms_dk_blob_version(const uint8_t *wrapped, size_t wrapped_len);

/* The 32 plaintext DK bytes (read-only guarded memory).  Only the chunk
 * cipher (fs/cipher) and test tools read them; everything else passes the
 * handle.  Cannot fail. */
const uint8_t *kms_dk_bytes(const struct kms_dk *dk);
/* Another reference to the same handle (returned; NULL gives NULL).
 * Thread-safe; cannot fail. */
struct kms_dk *kms_dk_ref(const struct kms_dk *dk);
/* Drop one reference; the last one wipes and frees.  NULL is fine. */
void kms_dk_destroy(struct kms_dk *dk);
/* Data-key generations (a rekey, R33).  A handle is generation 0 unless
 * chained: kms_dk_chain, before the handle is shared, makes dk generation
 * `gen` and hands it `older` (ownership moves; NULL: none), the generation
 * it replaces, so one handle opens chunks of both while a rekey runs.
 * kms_dk_for_gen returns the handle of generation gen in dk's chain, NULL
 * if none (the key was destroyed).  None can fail. */
void kms_dk_chain(struct kms_dk *dk, uint32_t gen, struct kms_dk *older);
uint32_t kms_dk_gen(const struct kms_dk *dk);
const struct kms_dk *kms_dk_for_gen(const struct kms_dk *dk, uint32_t gen);

/* --- audit (tamper-evident log) ----------------------------------------- */
struct kms_audit_entry {
	int64_t seq;
	int64_t time;
	uint32_t uid;
	char user[64];
	char project[KMS_PROJECT_MAX];
	char op[32];                 /* "grant", "key.create", "dk.unwrap", ... */
	char key[KMS_ID_LEN + 1];    /* key id or "" */
	int result;                  /* 0 or negative errno */
};
typedef int (*kms_audit_cb)(void *ctx, const struct kms_audit_entry *e);
/* Entries in order; key_id NULL for all. */
int kms_audit_list(struct kms *k, const char *key_id, kms_audit_cb cb, void *ctx) KMS_WUR;
/* Verify the MAC chain. Returns 0 if intact, -EBADMSG with *bad_seq set to
 * the first entry that does not verify. */
int kms_audit_verify(struct kms *k, int64_t *bad_seq) KMS_WUR;

/* Names: "Enabled", "Disabled", "PendingDeletion", "Deleted". Cannot fail. */
const char *kms_state_name(enum kms_key_state s);

/* A pool's freshness (generation, header hash) kept on the PKCS#11 token,
 * outside the store's files (kms_fresh.c); lineage: 32 lowercase hex.
 * set moves it only forward unless force.  -EOPNOTSUPP without a token,
 * -ENOENT (get) when none was kept. */
int kms_fresh_get(struct kms *k, const char *lineage, uint64_t *gen, uint8_t hash[static 32]) KMS_WUR;
int kms_fresh_set(struct kms *k, const char *lineage, uint64_t gen, const uint8_t hash[static 32], int force) KMS_WUR;
int kms_fresh_drop(struct kms *k, const char *lineage) KMS_WUR;

#endif
