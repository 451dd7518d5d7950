/* SPDX-License-Identifier: MIT */
/*
 * kms_keys.c - grants, key records, names, the state machine and sharing.
 *
 * This file is the KMS's policy: who may do what to which key record.  It
 * never touches plaintext key material (kms_cmk.c does) and never wraps a
 * data key (kms_dk.c does).
 *
 * Grants (R10, R11).  A project may use encryption only after a security
 * administrator (a user listed in kms_options.security_admins) granted it.
 * The grant creates the project's default key, alias "evs/default",
 * is_default = 1, which can be neither disabled nor scheduled for deletion.
 * Revoking leaves keys alone; wrapping and unwrapping fail with -EACCES until
 * the project is granted again (the default key is reused then).
 *
 * Names.  A KEY argument is an id (a v4 UUID in lower-case text) or an alias.
 * Resolution for c->project, in order:
 *   1. an id of a key the project owns or that is shared with it (security
 *      admins see every key by id when looking it up, not when using it);
 *   2. an alias of the project's own keys (aliases are unique per project);
 *   3. an alias of keys shared with the project: one -> that key, two or more
 *      -> -ENOTUNIQ (the caller must use the id).
 * Otherwise -ENOENT; for data-key use an existing id that is neither own nor
 * shared is -EACCES, since the caller plainly named the key.
 * Aliases are 1..63 chars of [A-Za-z0-9/_.-]; "evs/" is reserved.  A Deleted
 * key keeps its record and alias, so its alias stays taken.
 *
 * State machine (R12).  Only the owning project changes a key (-EACCES for a
 * shared-in key):
 *
 *      disable                      schedule_deletion(7..1096 days)
 *   Enabled ------> Disabled  Enabled|Disabled -------------> PendingDeletion
 *   Disabled -----> Enabled   PendingDeletion ---------------> Disabled
 *      enable                       cancel_deletion
 *   PendingDeletion --(deletion_date passed, any call)--> Deleted (material
 *   destroyed, kms_cmk.c)
 *
 * A transition that would not change anything is -EALREADY; one that starts
 * from a state it is not defined for is -ENOKEY (the key is unavailable);
 * touching the default key is -EPERM.  Rotation needs an Enabled key.
 *
 * Every mutation runs in one transaction with its audit entry (kms_finish).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kms_internal.h"

#define KEY_COLS                                                                                   \
	"k.id, k.alias, k.project, k.description, k.state, k.is_default, k.created, k.deletion_date," \
	" (SELECT max(version) FROM key_versions v WHERE v.key_id = k.id),"                         \
	" (SELECT count(*) FROM key_versions v WHERE v.key_id = k.id AND v.material IS NOT NULL)"

/* ------------------------------------------------------------------------
 * Reading key records
 * ------------------------------------------------------------------------ */

static int key_row(struct sqldb_stmt *st, struct kms_key_info *ki)
{
	int64_t state = sqldb_column_int64(st, 4), def = sqldb_column_int64(st, 5);
	int64_t ver = sqldb_column_int64(st, 8), inuse = sqldb_column_int64(st, 9);
	int rc;

	memset(ki, 0, sizeof(*ki));
	if ((rc = kms_col_text(st, 0, ki->id, sizeof(ki->id))) < 0 ||
	    (rc = kms_col_text(st, 1, ki->alias, sizeof(ki->alias))) < 0 ||
	    (rc = kms_col_text(st, 2, ki->project, sizeof(ki->project))) < 0 ||
	    (rc = kms_col_text(st, 3, ki->description, sizeof(ki->description))) < 0)
		return rc;
	if (!kms_is_uuid(ki->id) || state < KMS_KEY_ENABLED || state > KMS_KEY_DELETED || def < 0 || def > 1 ||
	    ver < 1 || ver > INT32_MAX || inuse < 0 || inuse > ver)
		return -EUCLEAN;
	ki->state = (enum kms_key_state)state;
	ki->is_default = (int)def;
	ki->created = sqldb_column_int64(st, 6);
	ki->deletion_date = ki->state == KMS_KEY_PENDING_DELETION ? sqldb_column_int64(st, 7) : 0;
	ki->version = (uint32_t)ver;
	ki->versions_in_use = (uint32_t)inuse;
	return 0;
}

/* Step a prepared key query: the first row into *out; 0 rows -> -ENOENT,
 * more than one -> -ENOTUNIQ.  Finalizes st. */
static int key_fetch(struct kms *k, struct sqldb_stmt *st, struct kms_key_info *out)
{
	int rc = kms_sql_step(k, st);

	if (rc == 0)
		rc = -ENOENT;
	else if (rc == 1 && (rc = key_row(st, out)) == 0)
		rc = kms_sql_step(k, st) == 0 ? 0 : -ENOTUNIQ;
	sqldb_finalize(st);
	if (rc == -EUCLEAN)
		KMS_LOG(k, LOG_ERR, "kms: malformed key record");
	return rc;
}

int kms_key_info_load(struct kms *k, const char *id, struct kms_key_info *out)
{
	struct sqldb_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st, "SELECT " KEY_COLS " FROM keys k WHERE k.id = ?", "t", id);

	return rc < 0 ? rc : key_fetch(k, st, out);
}

static int key_by_own_alias(struct kms *k, const char *project, const char *alias, struct kms_key_info *out)
{
	struct sqldb_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st, "SELECT " KEY_COLS " FROM keys k WHERE k.project = ? AND k.alias = ?", "tt",
			      project, alias);

	return rc < 0 ? rc : key_fetch(k, st, out);
}

static int key_by_shared_alias(struct kms *k, const char *project, const char *alias, struct kms_key_info *out)
{
	struct sqldb_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st,
			      "SELECT " KEY_COLS " FROM keys k WHERE k.alias = ?2 AND k.id IN"
			      " (SELECT key_id FROM shares WHERE project = ?1) ORDER BY k.id LIMIT 2",
			      "tt", project, alias);

	return rc < 0 ? rc : key_fetch(k, st, out);
}

/* 1 shared, 0 not, negative errno. */
static int share_exists(struct kms *k, const char *key_id, const char *project)
{
	struct sqldb_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st, "SELECT 1 FROM shares WHERE key_id = ? AND project = ?", "tt", key_id,
			      project);

	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	sqldb_finalize(st);
	return rc;
}

/* Resolve name for c (see the essay).  use: data-key use (no admin view,
 * hidden id -> -EACCES). */
static int key_resolve(struct kms *k, const struct kms_caller *c, const char *name, int use,
		       struct kms_key_info *out)
{
	int rc, hidden = 0;

	if (kms_is_uuid(name)) {
		rc = kms_key_info_load(k, name, out);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		if (rc == 0) {
			if (strcmp(out->project, c->project) == 0)
				return 0;
			rc = share_exists(k, out->id, c->project);
			if (rc != 0)
				return rc < 0 ? rc : 0;
			if (!use && kms_is_admin(k, c->user))
				return 0;
			hidden = 1;
		}
	}
	rc = key_by_own_alias(k, c->project, name, out);
	if (rc != -ENOENT)
		return rc;
	rc = key_by_shared_alias(k, c->project, name, out);
	if (rc != -ENOENT)
		return rc;
	memset(out, 0, sizeof(*out));
	return hidden && use ? -EACCES : -ENOENT;
}

int kms_key_resolve_use(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out)
{
	return key_resolve(k, c, name, 1, out);
}

/* ------------------------------------------------------------------------
 * Grants
 * ------------------------------------------------------------------------ */

int kms_grant_check(struct kms *k, const char *project)
{
	struct sqldb_stmt *st = NULL;
	int rc = kms_sql_prep(k, &st, "SELECT 1 FROM grants WHERE project = ?", "t", project);

	if (rc < 0)
		return rc;
	rc = kms_sql_step(k, st);
	sqldb_finalize(st);
	return rc < 0 ? rc : rc == 1 ? 0 : -EACCES;
}

/* Insert a key record with material version 1; id receives the new id. */
static int key_insert(struct kms *k, const char *project, const char *alias, const char *desc, int is_default,
		      char id[static KMS_ID_LEN + 1])
{
	int rc;

	kms_uuid_new(id);
	rc = kms_sql_run(k, "INSERT INTO keys(id, alias, project, description, state, is_default, created)"
			    " VALUES (?, ?, ?, ?, ?, ?, ?)",
			 "ttttiiI", id, alias, project, desc ? desc : "", (int)KMS_KEY_ENABLED, is_default, kms_now());
	return rc < 0 ? rc : kms_cmk_new(k, id, 1);
}

int kms_grant(struct kms *k, const struct kms_caller *c, const char *project)
{
	struct kms_key_info ki;
	int rc;

	memset(&ki, 0, sizeof(ki));
	if (!k)
		return -EINVAL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	if (kms_check_caller(c) < 0 || kms_check_project(project) < 0)
		rc = -EINVAL;
	else if (!kms_is_admin(k, c->user))
		rc = -EPERM;
	else
		rc = kms_tx_begin(k);
	if (rc == 0)
		rc = kms_sql_run(k, "INSERT INTO grants(project, granted_by, granted_user, time)"
				    " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
				 "tItI", project, (int64_t)c->uid, c->user, kms_now());
	if (rc >= 0) {
		rc = key_by_own_alias(k, project, KMS_DEFAULT_ALIAS, &ki);
		if (rc == -ENOENT)
			rc = key_insert(k, project, KMS_DEFAULT_ALIAS, "default key of the project", 1, ki.id);
	}
	rc = kms_finish(k, c, project, "grant", ki.id[0] ? ki.id : NULL, rc < 0 ? rc : 0);
	kms_leave(k);
	return rc;
}

int kms_revoke(struct kms *k, const struct kms_caller *c, const char *project)
{
	int rc;

	if (!k)
		return -EINVAL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	if (kms_check_caller(c) < 0 || kms_check_project(project) < 0)
		rc = -EINVAL;
	else if (!kms_is_admin(k, c->user))
		rc = -EPERM;
	else
		rc = kms_tx_begin(k);
	if (rc == 0)
		rc = kms_sql_run(k, "DELETE FROM grants WHERE project = ?", "t", project);
	if (rc == 0)
		rc = -ENOENT;
	rc = kms_finish(k, c, project, "revoke", NULL, rc < 0 ? rc : 0);
	kms_leave(k);
	return rc;
}

int kms_is_granted(struct kms *k, const char *project)
{
	int rc;

	if (!k || kms_check_project(project) < 0)
		return -EINVAL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	rc = kms_grant_check(k, project);
	kms_leave(k);
	return rc == 0 ? 1 : rc == -EACCES ? 0 : rc;
}

/* ------------------------------------------------------------------------
 * Key records
 * ------------------------------------------------------------------------ */

int kms_key_create(struct kms *k, const struct kms_caller *c, const char *alias, const char *desc,
		   struct kms_key_info *out)
{
	struct kms_key_info ki;
	int rc;

	memset(&ki, 0, sizeof(ki));
	if (!k)
		return -EINVAL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	if (kms_check_caller(c) < 0 || kms_check_alias(alias) < 0 ||
	    (desc && strnlen(desc, KMS_DESC_MAX) >= KMS_DESC_MAX))
		rc = -EINVAL;
	else
		rc = kms_tx_begin(k);
	if (rc == 0)
		rc = kms_grant_check(k, c->project);
	if (rc == 0) {
		rc = key_by_own_alias(k, c->project, alias, &ki);
		if (rc == 0)
			rc = -EEXIST;
		else if (rc == -ENOENT)
			rc = key_insert(k, c->project, alias, desc, 0, ki.id);
	}
	if (rc == 0)
		rc = kms_key_info_load(k, ki.id, &ki);
	rc = kms_finish(k, c, NULL, "key.create", rc == 0 ? ki.id : NULL, rc);
	if (rc == 0 && out)
		*out = ki;
	kms_leave(k);
	return rc;
}

int kms_key_lookup(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out)
{
	struct kms_key_info ki;
	int rc;

	if (!k || !out || kms_check_caller(c) < 0 || kms_check_name(name) < 0)
		return -EINVAL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	rc = key_resolve(k, c, name, 0, &ki);
	kms_leave(k);
	if (rc == 0)
		*out = ki;
	return rc;
}

/* Collect the rows of a prepared key query into a heap array. */
static int key_collect(struct kms *k, struct sqldb_stmt *st, struct kms_key_info **out, size_t *count)
{
	struct kms_key_info *v = NULL, *nv;
	size_t n = 0, cap = 0;
	int rc;

	while ((rc = kms_sql_step(k, st)) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		if ((rc = key_row(st, &v[n])) < 0)
			break;
		n++;
	}
	sqldb_finalize(st);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = v;
	*count = n;
	return 0;
}

/* The callback runs without the lock held, so it may call back into kms. */
int kms_key_list(struct kms *k, const struct kms_caller *c, kms_key_cb cb, void *ctx)
{
	struct kms_key_info *v = NULL;
	struct sqldb_stmt *st = NULL;
	size_t i, n = 0;
	int rc;

	if (!k || !cb || kms_check_caller(c) < 0)
		return -EINVAL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	rc = kms_sql_prep(k, &st,
			  "SELECT " KEY_COLS " FROM keys k WHERE k.project = ?1 OR k.id IN"
			  " (SELECT key_id FROM shares WHERE project = ?1) ORDER BY k.alias, k.project, k.id",
			  "t", c->project);
	if (rc == 0)
		rc = key_collect(k, st, &v, &n);
	kms_leave(k);
	for (i = 0; rc == 0 && i < n; i++)
		rc = cb(ctx, &v[i]);
	free(v);
	return rc;
}

/* ------------------------------------------------------------------------
 * State machine
 * ------------------------------------------------------------------------ */

enum key_op { OP_DISABLE, OP_ENABLE, OP_SCHEDULE, OP_CANCEL };
static const char *const key_op_names[] = {
	[OP_DISABLE] = "key.disable",
	[OP_ENABLE] = "key.enable",
	[OP_SCHEDULE] = "key.schedule_deletion",
	[OP_CANCEL] = "key.cancel_deletion",
};

static int key_next_state(const struct kms_key_info *ki, enum key_op op, enum kms_key_state *ns)
{
	enum kms_key_state s = ki->state;

	switch (op) {
	case OP_DISABLE:
		if (ki->is_default)
			return -EPERM;
		*ns = KMS_KEY_DISABLED;
		return s == KMS_KEY_ENABLED ? 0 : s == KMS_KEY_DISABLED ? -EALREADY : -ENOKEY;
	case OP_ENABLE:
		*ns = KMS_KEY_ENABLED;
		return s == KMS_KEY_DISABLED ? 0 : s == KMS_KEY_ENABLED ? -EALREADY : -ENOKEY;
	case OP_SCHEDULE:
		if (ki->is_default)
			return -EPERM;
		*ns = KMS_KEY_PENDING_DELETION;
		return s == KMS_KEY_ENABLED || s == KMS_KEY_DISABLED ? 0 : s == KMS_KEY_PENDING_DELETION ? -EALREADY
													 : -ENOKEY;
	case OP_CANCEL:
		*ns = KMS_KEY_DISABLED;
		return s == KMS_KEY_PENDING_DELETION ? 0 : s == KMS_KEY_DELETED ? -ENOKEY : -EALREADY;
	}
	return -EINVAL;
}

/* Enter, validate, open a transaction and resolve a key the caller owns.
 * Returns 0 with the lock held and a transaction open, or an error with the
 * lock held (rc < 0) - the caller always ends with kms_finish + kms_leave.
 * Only a kms_enter failure returns with the lock released: *entered = 0. */
static int owned_key_begin(struct kms *k, const struct kms_caller *c, const char *name, int *entered,
			   struct kms_key_info *ki)
{
	int rc;

	memset(ki, 0, sizeof(*ki));
	*entered = 0;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	*entered = 1;
	if (kms_check_caller(c) < 0 || kms_check_name(name) < 0)
		return -EINVAL;
	if ((rc = kms_tx_begin(k)) < 0 || (rc = key_resolve(k, c, name, 0, ki)) < 0)
		return rc;
	return strcmp(ki->project, c->project) == 0 ? 0 : -EACCES;
}

static int key_transition(struct kms *k, const struct kms_caller *c, const char *name, enum key_op op, int days,
			  struct kms_key_info *out)
{
	enum kms_key_state ns = KMS_KEY_ENABLED;
	struct kms_key_info ki;
	int64_t when = 0;
	int rc, entered;

	if (!k)
		return -EINVAL;
	rc = owned_key_begin(k, c, name, &entered, &ki);
	if (!entered)
		return rc;
	if (rc == 0 && op == OP_SCHEDULE && (days < KMS_MIN_DELETION_DAYS || days > KMS_MAX_DELETION_DAYS))
		rc = -EINVAL;
	if (rc == 0)
		rc = key_next_state(&ki, op, &ns);
	if (rc == 0) {
		when = op == OP_SCHEDULE ? kms_now() + (int64_t)days * 86400 : 0;
		rc = kms_sql_run(k, "UPDATE keys SET state = ?, deletion_date = ? WHERE id = ?", "iIt", (int)ns,
				 when, ki.id);
	}
	if (rc >= 0)
		rc = kms_key_info_load(k, ki.id, &ki);
	rc = kms_finish(k, c, NULL, key_op_names[op], ki.id[0] ? ki.id : NULL, rc);
	if (rc == 0 && out)
		*out = ki;
	kms_leave(k);
	return rc;
}

int kms_key_disable(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out)
{
	return key_transition(k, c, name, OP_DISABLE, 0, out);
}

int kms_key_enable(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out)
{
	return key_transition(k, c, name, OP_ENABLE, 0, out);
}

int kms_key_schedule_deletion(struct kms *k, const struct kms_caller *c, const char *name, int days,
			      struct kms_key_info *out)
{
	return key_transition(k, c, name, OP_SCHEDULE, days, out);
}

int kms_key_cancel_deletion(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out)
{
	return key_transition(k, c, name, OP_CANCEL, 0, out);
}

/* ------------------------------------------------------------------------
 * Sharing
 * ------------------------------------------------------------------------ */

static int key_share_op(struct kms *k, const struct kms_caller *c, const char *name, const char *project,
			int share, struct kms_key_info *out)
{
	struct kms_key_info ki;
	int rc, entered;

	if (!k)
		return -EINVAL;
	rc = owned_key_begin(k, c, name, &entered, &ki);
	if (!entered)
		return rc;
	if (rc == 0 && (kms_check_project(project) < 0 || strcmp(project, ki.project) == 0))
		rc = -EINVAL;
	if (rc == 0 && share) {
		rc = share_exists(k, ki.id, project);
		if (rc == 1)
			rc = -EEXIST;
		else if (rc == 0)
			rc = kms_sql_run(k, "INSERT INTO shares(key_id, project, time) VALUES (?, ?, ?)", "ttI",
					 ki.id, project, kms_now());
	} else if (rc == 0) {
		rc = kms_sql_run(k, "DELETE FROM shares WHERE key_id = ? AND project = ?", "tt", ki.id, project);
		if (rc == 0)
			rc = -ENOENT;
	}
	rc = kms_finish(k, c, NULL, share ? "key.share" : "key.unshare", ki.id[0] ? ki.id : NULL,
			rc < 0 ? rc : 0);
	if (rc == 0 && out)
		*out = ki;
	kms_leave(k);
	return rc;
}

int kms_key_share(struct kms *k, const struct kms_caller *c, const char *name, const char *project,
		  struct kms_key_info *out)
{
	return key_share_op(k, c, name, project, 1, out);
}

int kms_key_unshare(struct kms *k, const struct kms_caller *c, const char *name, const char *project,
		    struct kms_key_info *out)
{
	return key_share_op(k, c, name, project, 0, out);
}

/* The callback runs without the lock held, so it may call back into kms. */
int kms_key_shares(struct kms *k, const char *key_id, kms_share_cb cb, void *ctx)
{
	struct kms_key_info ki;
	char(*v)[KMS_PROJECT_MAX] = NULL;
	char(*nv)[KMS_PROJECT_MAX];
	struct sqldb_stmt *st = NULL;
	size_t i, n = 0, cap = 0;
	int rc;

	if (!k || !cb || !kms_is_uuid(key_id))
		return -EINVAL;
	if ((rc = kms_enter(k)) < 0)
		return rc;
	rc = kms_key_info_load(k, key_id, &ki);
	if (rc == 0)
		rc = kms_sql_prep(k, &st, "SELECT project FROM shares WHERE key_id = ? ORDER BY project", "t", key_id);
	while (rc == 0 && (rc = kms_sql_step(k, st)) == 1) {
		rc = 0;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		rc = kms_col_text(st, 0, v[n], sizeof(v[n]));
		n++;
	}
	sqldb_finalize(st);
	kms_leave(k);
	for (i = 0; rc == 0 && i < n; i++)
		rc = cb(ctx, v[i]);
	free(v);
	return rc;
}

/* ------------------------------------------------------------------------
 * Rotation
 * ------------------------------------------------------------------------ */

int kms_key_rotate(struct kms *k, const struct kms_caller *c, const char *name, struct kms_key_info *out)
{
	struct kms_key_info ki;
	int rc, entered;

	if (!k)
		return -EINVAL;
	rc = owned_key_begin(k, c, name, &entered, &ki);
	if (!entered)
		return rc;
	if (rc == 0 && ki.state != KMS_KEY_ENABLED)
		rc = -ENOKEY;
	if (rc == 0 && ki.version >= INT32_MAX)
		rc = -EINVAL;
	if (rc == 0)
		rc = kms_cmk_new(k, ki.id, ki.version + 1);
	if (rc == 0)
		rc = kms_key_info_load(k, ki.id, &ki);
	rc = kms_finish(k, c, NULL, "key.rotate", ki.id[0] ? ki.id : NULL, rc);
	if (rc == 0 && out)
		*out = ki;
	kms_leave(k);
	return rc;
}

int kms_key_retire_old(struct kms *k, const struct kms_caller *c, const char *key_id)
{
	struct kms_key_info ki;
	int rc, entered, count = 0;

	if (!k)
		return -EINVAL;
	rc = owned_key_begin(k, c, key_id, &entered, &ki);
	if (!entered)
		return rc;
	if (rc == 0)
		rc = kms_cmk_retire_old(k, ki.id);
	if (rc > 0)
		count = rc;
	rc = kms_finish(k, c, NULL, "key.retire_old", ki.id[0] ? ki.id : NULL, rc < 0 ? rc : 0);
	if (rc == 0 && count > 0)
		kms_checkpoint(k);
	kms_leave(k);
	return rc < 0 ? rc : count;
}
