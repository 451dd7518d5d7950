// SPDX-License-Identifier: MIT
/*
 * store_keys.c - the key commands of a store: grants, the key lifecycle,
 * sharing, rotation and rewrap, the dependents of a key (R20) and the
 * audit log, for a caller.
 *
 * kms/ enforces who may do what with a key (R10-R14); this file turns a
 * caller into a KMS caller, adds what needs the catalog as well (the
 * objects that depend on a key; rewrapping every lineage's data key under
 * a rotated key, in one catalog transaction) and says in the caller's
 * error object why a refused request was refused, so evfsctl only prints.
 * It never sees plaintext key material.
 */
#include "store_int.h"

#include "backup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

/* The words for a KMS refusal of `op` on `key` (a key name, or a project
 * for grant/revoke). */
static int key_error(struct store *s, const struct store_caller *c, int rc, const char *op, const char *key)
{
	const char *why;

	switch (rc) {
	case -EPERM:
		why = strcmp(op, "grant") == 0 || strcmp(op, "revoke") == 0
			      ? "only a security administrator (security_admins in evfs.ini) may do this (R10)"
			      : "evs/default can be neither disabled nor scheduled for deletion (R11)";
		break;
	case -EACCES:
		why = "this project has no KMS grant or does not own the key; ask a security administrator to run "
		      "'evfsctl kms grant --project P' (R10) or use a key of your project";
		break;
	case -ENOKEY:
		why = "the key is not in a state that allows this (see 'evfsctl key show KEY'; R12)";
		break;
	case -EALREADY:
		why = "the key is already in that state; nothing changed";
		break;
	case -ENOENT:
		why = "no such key, project grant or share (see 'evfsctl key list')";
		break;
	case -EEXIST:
		why = "it already exists";
		break;
	case -ENOTUNIQ:
		why = "the name matches several shared keys; use the key id";
		break;
	case -EINVAL:
		why = "invalid value (aliases: 1-63 of A-Z a-z 0-9 / _ . -, not starting with evs/; days 7..1096)";
		break;
	case -ENOSPC:
		why = "No space left on device: the filesystem holding the store is full; free space on it and retry";
		break;
	case -EBUSY:
		why = "a rekey of a volume under this key is unfinished; complete it with 'evfsctl volume rekey VOL' "
		      "and retry";
		break;
	default:
		why = evfs_strerror(rc);
	}
	evfs_err_set(c->err, "%s %s: %s", op, key ? key : "", why);
	pthread_mutex_lock(&s->cause_lock);      /* this message says it all */
	s->cause[0] = '\0';
	pthread_mutex_unlock(&s->cause_lock);
	return rc;
}

static struct kms_caller kcaller(const struct store_caller *c)
{
	struct kms_caller k;

	store_kcaller(c, &k, NULL);
	return k;
}

int store_kms_grant(struct store *s, const struct store_caller *c, const char *project, int grant)
{
	struct kms_caller kc = kcaller(c);
	const char *op = grant ? "grant" : "revoke";
	int rc = grant ? kms_grant(s->kms, &kc, project) : kms_revoke(s->kms, &kc, project);

	if (rc == -EPERM) {
		evfs_err_set(c->err, "%s project %s: refused: user %s is not a security administrator (R10); ask a "
			     "security administrator (%s) to run 'evfsctl kms %s --project %s'", op, project, c->user,
			     s->cfg.security_admins, op, project);
		return rc;
	}
	return rc ? key_error(s, c, rc, op, project) : 0;
}

int store_key_create(struct store *s, const struct store_caller *c, const char *alias, const char *desc,
		     struct kms_key_info *out)
{
	struct kms_caller kc = kcaller(c);
	int rc = kms_key_create(s->kms, &kc, alias, desc, out);

	return rc ? key_error(s, c, rc, "create", alias) : 0;
}

int store_key_lookup(struct store *s, const struct store_caller *c, const char *name, const char *op,
		     struct kms_key_info *out)
{
	struct kms_caller kc = kcaller(c);
	int rc = kms_key_lookup(s->kms, &kc, name, out);

	return rc ? key_error(s, c, rc, op, name) : 0;
}

int store_key_list(struct store *s, const struct store_caller *c, kms_key_cb cb, void *ctx)
{
	struct kms_caller kc = kcaller(c);
	int rc = kms_key_list(s->kms, &kc, cb, ctx);

	return rc < 0 ? key_error(s, c, rc, "list", "") : rc;
}

int store_key_change(struct store *s, const struct store_caller *c, enum store_key_op op, const char *name,
		     int days, const char *project, struct kms_key_info *out)
{
	static const char *const words[] = {
		[STORE_KEY_DISABLE] = "disable", [STORE_KEY_ENABLE] = "enable",
		[STORE_KEY_CANCEL_DELETION] = "cancel-deletion", [STORE_KEY_ROTATE] = "rotate",
		[STORE_KEY_SCHEDULE_DELETION] = "schedule-deletion", [STORE_KEY_SHARE] = "share",
		[STORE_KEY_UNSHARE] = "unshare",
	};
	struct kms_caller kc = kcaller(c);
	int rc;

	switch (op) {
	case STORE_KEY_DISABLE: rc = kms_key_disable(s->kms, &kc, name, out); break;
	case STORE_KEY_ENABLE: rc = kms_key_enable(s->kms, &kc, name, out); break;
	case STORE_KEY_CANCEL_DELETION: rc = kms_key_cancel_deletion(s->kms, &kc, name, out); break;
	case STORE_KEY_ROTATE: rc = kms_key_rotate(s->kms, &kc, name, out); break;
	case STORE_KEY_SCHEDULE_DELETION: rc = kms_key_schedule_deletion(s->kms, &kc, name, days, out); break;
	case STORE_KEY_SHARE: rc = kms_key_share(s->kms, &kc, name, project, out); break;
	case STORE_KEY_UNSHARE: rc = kms_key_unshare(s->kms, &kc, name, project, out); break;
	default: return -EINVAL;
	}
	return rc ? key_error(s, c, rc, words[op], name) : 0;
}

int store_key_dependents(struct store *s, const char *key_id, const char *project, store_object_cb cb, void *ctx)
{
	struct meta_filter f = { .key_id = key_id, .project = project };

	return meta_object_list(s->meta, &f, cb, ctx);
}

/* ============================== rewrap ================================ */

/* The lineages under a key, collected first: a catalog list callback must
 * not write the catalog (it would get -EDEADLK). */
struct rewrap_ctx {
	struct meta_lineage *v;
	size_t n, cap;
};

static int rewrap_collect(void *ctx, const struct meta_lineage *l)
{
	struct rewrap_ctx *r = ctx;

	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct meta_lineage *nv = realloc(r->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		r->v = nv;
		r->cap = cap;
	}
	r->v[r->n++] = *l;
	return 0;
}

/* Re-wrap one lineage's DK under the key's newest version, in the catalog. */
static int rewrap_one(struct store *s, const struct kms_caller *kc, const char *key_id, const struct meta_lineage *l)
{
	struct meta_rekey rk;
	uint8_t out[KMS_WRAPPED_MAX], lin[16];
	size_t outlen;
	int rc;

	if (sodium_hex2bin(lin, sizeof(lin), l->id, strlen(l->id), NULL, NULL, NULL) < 0)
		return -EUCLEAN;
	rc = kms_dk_rewrap(s->kms, kc, key_id, lin, sizeof(lin), l->wrapped, l->wrapped_len, out, &outlen);
	if (!rc)
		rc = meta_rekey_get(s->meta, l->id, &rk);
	if (!rc && rk.old_wrapped_len)
		rc = -EBUSY;            /* its old key would stay under a retired version */
	return rc ? rc : meta_lineage_set_wrapped(s->meta, l->id, out, outlen);
}

/* The backups under a key, collected first (as the lineages above). */
struct bk_list {
	struct meta_object *v;
	size_t n, cap;
};

static int bk_collect(void *ctx, const struct meta_object *o)
{
	struct bk_list *b = ctx;

	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		struct meta_object *nv = realloc(b->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		b->v = nv;
		b->cap = cap;
	}
	b->v[b->n++] = *o;
	return 0;
}

/* Each backup file keeps the wrapped DK it was taken with (a rekey may
 * have replaced the lineage's since): it is re-wrapped too, before the old
 * versions go.  A backup whose copy is already under a retired version
 * opens with its lineage's key (store_object_unwrap) and is left alone. */
static int rewrap_backups(struct store *s, const struct store_caller *c, const struct kms_caller *kc,
			  const char *key_id)
{
	struct meta_filter f = { .kind = META_BACKUP, .key_id = key_id };
	struct bk_list b = { NULL, 0, 0 };
	int rc = meta_object_list(s->meta, &f, bk_collect, &b);

	for (size_t i = 0; rc >= 0 && i < b.n; i++) {
		struct backup_info bi;
		uint8_t out[KMS_WRAPPED_MAX], lin[16];
		size_t outlen;

		if (backup_info_load(b.v[i].location, b.v[i].id, &bi) < 0 || !bi.wrapped_len ||
		    sodium_hex2bin(lin, sizeof(lin), b.v[i].lineage, strlen(b.v[i].lineage), NULL, NULL, NULL) < 0)
			continue;               /* fsck reports unreadable backup files */
		rc = kms_dk_rewrap(s->kms, kc, key_id, lin, sizeof(lin), bi.wrapped, bi.wrapped_len, out, &outlen);
		if (rc == -ENOKEY) {
			rc = 0;
			continue;
		}
		if (!rc)
			rc = meta_fresh_backup_set(s->meta, b.v[i].id, NULL);
		if (!rc)
			rc = backup_set_wrapped(b.v[i].location, b.v[i].id, out, (uint32_t)outlen);
		if (!rc)
			store_backup_fresh_record(s, b.v[i].id, b.v[i].location);
		if (rc)
			store_seterr(s, c, "backup %s: its copy of the data key could not be re-wrapped (%s); the old "
					   "key versions are kept", b.v[i].name, evfs_strerror(rc));
	}
	free(b.v);
	return rc < 0 ? rc : 0;
}

int store_key_rewrap(struct store *s, const struct store_caller *c, const char *name, struct kms_key_info *k,
		     size_t *rewrapped, int *retired)
{
	struct kms_caller kc = kcaller(c);
	struct rewrap_ctx r = { NULL, 0, 0 };
	int rc = kms_key_lookup(s->kms, &kc, name, k);

	if (rc)
		return key_error(s, c, rc, "rewrap", name);
	rc = meta_begin(s->meta);
	if (!rc) {
		rc = meta_lineage_list(s->meta, k->id, rewrap_collect, &r);
		for (size_t i = 0; rc >= 0 && i < r.n; i++)
			rc = rewrap_one(s, &kc, k->id, &r.v[i]);
		free(r.v);
		if (rc < 0) {
			meta_rollback(s->meta);
			return key_error(s, c, rc, "rewrap", name);
		}
		rc = meta_commit(s->meta);
	}
	if (rc)
		return key_error(s, c, rc, "rewrap", name);
	*rewrapped = r.n;
	rc = rewrap_backups(s, c, &kc, k->id);
	if (rc < 0)
		return rc;
	rc = kms_key_retire_old(s->kms, &kc, k->id);
	if (rc < 0)
		return key_error(s, c, rc, "retire old versions of", name);
	*retired = rc;
	return 0;
}

/* =============================== audit ================================ */

/* The audit log tells who did what to which key in every project: it is
 * for root and the security administrators. */
static int audit_reader_check(struct store *s, const struct store_caller *c, const char *op)
{
	if (c->uid == 0 || kms_is_admin(s->kms, c->user))
		return 0;
	evfs_err_set(c->err, "%s: permission denied: the audit log is readable by root and the security "
		     "administrators only (security_admins in evfs.ini: %s)", op, s->cfg.security_admins);
	return -EPERM;
}

int store_audit_list(struct store *s, const struct store_caller *c, const char *key_id, kms_audit_cb cb, void *ctx)
{
	int rc = audit_reader_check(s, c, "kms audit");

	if (rc)
		return rc;
	rc = kms_audit_list(s->kms, key_id, cb, ctx);

	return rc < 0 ? key_error(s, c, rc, "audit", "") : rc;
}

int store_audit_verify(struct store *s, const struct store_caller *c, int64_t *bad_seq)
{
	int rc = audit_reader_check(s, c, "kms audit --verify");

	if (rc)
		return rc;
	rc = kms_audit_verify(s->kms, bad_seq);

	if (rc == -EBADMSG)
		evfs_err_set(c->err, "audit log TAMPERED: entry %lld and later do not verify", (long long)*bad_seq);
	else if (rc)
		key_error(s, c, rc, "audit verify", "");
	return rc;
}

/* ============================== objects =============================== */

int store_object_list(struct store *s, const struct meta_filter *f, store_object_cb cb, void *ctx)
{
	return meta_object_list(s->meta, f, cb, ctx);
}

int store_object_lookup(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name,
			struct meta_object *out)
{
	int rc = meta_object_lookup(s->meta, kind, c->project, name, out);

	if (rc < 0)
		evfs_err_set(c->err, "no %s named '%s' in project %s (see 'evfsctl %s list')", meta_kind_name(kind),
			     name, c->project, meta_kind_name(kind));
	return rc < 0 ? rc : 0;
}
