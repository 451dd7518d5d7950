// SPDX-License-Identifier: MIT
/*
 * cli_keys.c - the `kms` and `key` commands: grants, key lifecycle,
 * sharing, rotation and the audit log.  The KMS enforces the rules (who may
 * grant, which transitions exist); this file explains its answers and, for
 * every change that can make data unreachable (disable, schedule-deletion,
 * unshare), lists the volumes, snapshots, backups and images that depend on
 * the key (R20).
 */
#include "cli_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "kms/kms.h"

static int kerr(struct cmdctx *x, int rc, const char *op, const char *key)
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
	default:
		why = evfs_strerror(rc);
	}
	fprintf(x->err, "evfsctl: %s %s: %s\n", op, key ? key : "", why);
	return 1;
}

static struct kms_caller kcaller(struct cmdctx *x, const char *project)
{
	struct kms_caller k = { x->c->uid, x->c->user, project ? project : x->c->project };

	return k;
}

static void key_print(struct cmdctx *x, const struct kms_key_info *k, int detail)
{
	char ct[32], dt[32];

	fmt_time(k->created, ct, sizeof(ct));
	fmt_time(k->deletion_date, dt, sizeof(dt));
	if (x->json) {
		fprintf(x->out, "{\"id\":\"%s\",\"alias\":", k->id);
		json_str(x->out, k->alias);
		fprintf(x->out, ",\"project\":");
		json_str(x->out, k->project);
		fprintf(x->out, ",\"state\":\"%s\",\"default\":%s,\"created\":\"%s\",\"deletion_date\":\"%s\","
			"\"version\":%u,\"description\":", kms_state_name(k->state), k->is_default ? "true" : "false",
			ct, dt, k->version);
		json_str(x->out, k->description);
		fputc('}', x->out);
		return;
	}
	if (!detail) {
		fprintf(x->out, "%-24s %-36s %-16s %-12s %s\n", k->alias, k->id, kms_state_name(k->state), k->project,
			k->deletion_date ? dt : "-");
		return;
	}
	fprintf(x->out, "key %s\n  id:           %s\n  project:      %s\n  state:        %s\n  default:      %s\n"
		"  created:      %s\n  version:      %u\n  description:  %s\n",
		k->alias, k->id, k->project, kms_state_name(k->state), k->is_default ? "yes" : "no", ct, k->version,
		k->description);
	if (k->deletion_date)
		fprintf(x->out, "  deletion at:  %s\n", dt);
}

struct dep_ctx {
	struct cmdctx *x;
	int n;
};

static int dep_cb(void *ctx, const struct meta_object *o)
{
	struct dep_ctx *d = ctx;

	if (d->x->json) {
		fprintf(d->x->out, "%s{\"kind\":\"%s\",\"name\":", d->n ? "," : "", meta_kind_name(o->kind));
		json_str(d->x->out, o->name);
		fprintf(d->x->out, ",\"project\":");
		json_str(d->x->out, o->project);
		fputc('}', d->x->out);
	} else {
		fprintf(d->x->out, "  %-9s %s (project %s)\n", meta_kind_name(o->kind), o->name, o->project);
	}
	d->n++;
	return 0;
}

/* R20: everything encrypted under the key (in `project` only, if given:
 * unsharing affects only the project the share is withdrawn from). */
static void dependents(struct cmdctx *x, const struct kms_key_info *k, const char *project, const char *intro)
{
	struct dep_ctx d = { x, 0 };
	struct meta_filter f = { .key_id = k->id, .project = project };

	if (x->json)
		fputs("\"dependents\":[", x->out);
	else
		fprintf(x->out, "%s\n", intro);
	if (meta_object_list(store_meta(x->s), &f, dep_cb, &d) < 0)
		fprintf(x->err, "evfsctl: could not list the objects using the key\n");
	if (x->json)
		fputs("]", x->out);
	else if (!d.n)
		fprintf(x->out, "  (none)\n");
}

static int key_change(struct cmdctx *x, const char *sub, struct args *a)
{
	struct kms_caller kc = kcaller(x, NULL);
	struct kms_key_info k;
	struct kms *kms = store_kms(x->s);
	int rc;

	if (strcmp(sub, "disable") == 0)
		rc = kms_key_disable(kms, &kc, a->pos[0], &k);
	else if (strcmp(sub, "enable") == 0)
		rc = kms_key_enable(kms, &kc, a->pos[0], &k);
	else if (strcmp(sub, "cancel-deletion") == 0)
		rc = kms_key_cancel_deletion(kms, &kc, a->pos[0], &k);
	else if (strcmp(sub, "rotate") == 0)
		rc = kms_key_rotate(kms, &kc, a->pos[0], &k);
	else if (strcmp(sub, "schedule-deletion") == 0) {
		char *end;
		long days = a->days ? strtol(a->days, &end, 10) : -1;

		if (!a->days || *end || days < KMS_MIN_DELETION_DAYS || days > KMS_MAX_DELETION_DAYS) {
			fprintf(x->err, "evfsctl: key schedule-deletion %s: --days must be a number from %d to %d\n",
				a->pos[0], KMS_MIN_DELETION_DAYS, KMS_MAX_DELETION_DAYS);
			return 2;
		}
		rc = kms_key_schedule_deletion(kms, &kc, a->pos[0], (int)days, &k);
	} else if (strcmp(sub, "share") == 0 || strcmp(sub, "unshare") == 0) {
		if (!a->with)
			return usage(x, "key %s KEY --with PROJECT", sub);
		rc = sub[0] == 's' ? kms_key_share(kms, &kc, a->pos[0], a->with, &k)
				   : kms_key_unshare(kms, &kc, a->pos[0], a->with, &k);
	} else {
		return usage(x, "unknown key command '%s'", sub);
	}
	if (rc)
		return kerr(x, rc, sub, a->pos[0]);
	if (x->json) {
		fputs("{\"key\":", x->out);
		key_print(x, &k, 0);
	} else {
		fprintf(x->out, "key %s (%s): %s%s%s, now %s\n", k.alias, k.id, sub, a->with ? " with " : "",
			a->with ? a->with : "", kms_state_name(k.state));
	}
	if (strcmp(sub, "disable") == 0 || strcmp(sub, "schedule-deletion") == 0 || strcmp(sub, "unshare") == 0) {
		if (x->json)
			fputc(',', x->out);
		int un = strcmp(sub, "unshare") == 0;

		dependents(x, &k, un ? a->with : NULL,
			   un ? "objects of that project that depend on this key (attached volumes keep working; they "
				"cannot be re-attached or read otherwise until the key is shared again):"
			      : "objects that depend on this key (attached volumes keep working; they cannot be "
				"re-attached or read otherwise until the key is Enabled again):");
	}
	if (x->json)
		fputs("}\n", x->out);
	return 0;
}

struct klist_ctx {
	struct cmdctx *x;
	int n;
};

static int klist_cb(void *ctx, const struct kms_key_info *k)
{
	struct klist_ctx *l = ctx;

	if (l->x->json && l->n)
		fputc(',', l->x->out);
	key_print(l->x, k, 0);
	l->n++;
	return 0;
}

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
static int rewrap_one(struct cmdctx *x, const char *key_id, const struct meta_lineage *l)
{
	struct kms_caller kc = kcaller(x, NULL);
	uint8_t out[KMS_WRAPPED_MAX], lin[16];
	size_t outlen;
	int rc;

	if (sodium_hex2bin(lin, sizeof(lin), l->id, strlen(l->id), NULL, NULL, NULL) < 0)
		return -EUCLEAN;
	rc = kms_dk_rewrap(store_kms(x->s), &kc, key_id, lin, sizeof(lin), l->wrapped, l->wrapped_len, out, &outlen);
	return rc ? rc : meta_lineage_set_wrapped(store_meta(x->s), l->id, out, outlen);
}

static int key_rewrap(struct cmdctx *x, const char *name)
{
	struct kms_caller kc = kcaller(x, NULL);
	struct kms_key_info k;
	struct rewrap_ctx r = { NULL, 0, 0 };
	int rc = kms_key_lookup(store_kms(x->s), &kc, name, &k);

	if (rc)
		return kerr(x, rc, "rewrap", name);
	rc = meta_begin(store_meta(x->s));
	if (!rc) {
		rc = meta_lineage_list(store_meta(x->s), k.id, rewrap_collect, &r);
		for (size_t i = 0; rc >= 0 && i < r.n; i++)
			rc = rewrap_one(x, k.id, &r.v[i]);
		free(r.v);
		if (rc < 0) {
			meta_rollback(store_meta(x->s));
			return kerr(x, rc, "rewrap", name);
		}
		rc = meta_commit(store_meta(x->s));
	}
	if (rc)
		return kerr(x, rc, "rewrap", name);
	rc = kms_key_retire_old(store_kms(x->s), &kc, k.id);
	if (rc < 0)
		return kerr(x, rc, "retire old versions of", name);
	if (x->json)
		fprintf(x->out, "{\"key\":\"%s\",\"rewrapped\":%zu,\"versions_retired\":%d}\n", k.id, r.n, rc);
	else
		fprintf(x->out, "key %s: %zu data key(s) rewrapped under version %u; %d old version(s) destroyed\n",
			k.alias, r.n, k.version, rc);
	return 0;
}

int cmd_key(struct cmdctx *x, const char *sub, struct args *a)
{
	struct kms_caller kc = kcaller(x, NULL);
	struct kms_key_info k;
	int rc;

	if (strcmp(sub, "list") == 0) {
		struct klist_ctx l = { x, 0 };

		if (x->json)
			fputc('[', x->out);
		else
			fprintf(x->out, "%-24s %-36s %-16s %-12s %s\n", "ALIAS", "ID", "STATE", "PROJECT", "DELETION");
		rc = kms_key_list(store_kms(x->s), &kc, klist_cb, &l);
		if (x->json)
			fputs("]\n", x->out);
		return rc < 0 ? kerr(x, rc, "list", "") : 0;
	}
	if ((rc = want_pos(x, a, 1, "key COMMAND KEY")))
		return rc;
	if (strcmp(sub, "create") == 0) {
		rc = kms_key_create(store_kms(x->s), &kc, a->pos[0], a->desc, &k);
		if (rc)
			return kerr(x, rc, "create", a->pos[0]);
		if (x->json) {
			key_print(x, &k, 0);
			fputc('\n', x->out);
		} else {
			fprintf(x->out, "created key %s (%s) in project %s\n", k.alias, k.id, k.project);
		}
		return 0;
	}
	if (strcmp(sub, "show") == 0) {
		rc = kms_key_lookup(store_kms(x->s), &kc, a->pos[0], &k);
		if (rc)
			return kerr(x, rc, "show", a->pos[0]);
		if (x->json)
			fputs("{\"key\":", x->out);
		key_print(x, &k, 1);
		if (x->json)
			fputc(',', x->out);
		dependents(x, &k, NULL, "  used by:");
		if (x->json)
			fputs("}\n", x->out);
		return 0;
	}
	if (strcmp(sub, "rewrap") == 0)
		return key_rewrap(x, a->pos[0]);
	return key_change(x, sub, a);
}

struct audit_ctx {
	struct cmdctx *x;
	int n;
};

static int audit_cb(void *ctx, const struct kms_audit_entry *e)
{
	struct audit_ctx *au = ctx;
	char t[32];

	fmt_time(e->time, t, sizeof(t));
	if (au->x->json)
		fprintf(au->x->out, "%s{\"seq\":%lld,\"time\":\"%s\",\"uid\":%u,\"user\":\"%s\",\"project\":\"%s\","
			"\"op\":\"%s\",\"key\":\"%s\",\"result\":%d}", au->n ? "," : "", (long long)e->seq, t,
			(unsigned)e->uid, e->user, e->project, e->op, e->key, e->result);
	else   /* the audit records the KMS's errno: printed as the C library names it */
		fprintf(au->x->out, "%6lld %s uid=%-5u %-10s %-12s %-20s %-36s %s\n", (long long)e->seq, t,
			(unsigned)e->uid, e->user, e->project, e->op, e->key[0] ? e->key : "-",
			e->result ? strerror(-e->result) : "ok");
	au->n++;
	return 0;
}

int cmd_kms(struct cmdctx *x, const char *sub, struct args *a)
{
	const char *project = a->project ? a->project : x->c->project;
	struct kms_caller kc = kcaller(x, NULL);
	int rc;

	if (strcmp(sub, "grant") == 0 || strcmp(sub, "revoke") == 0) {
		rc = sub[0] == 'g' ? kms_grant(store_kms(x->s), &kc, project) : kms_revoke(store_kms(x->s), &kc, project);
		if (rc == -EPERM) {
			fprintf(x->err, "evfsctl: %s project %s: refused: user %s is not a security administrator (R10); "
				"ask a security administrator (%s) to run 'evfsctl kms %s --project %s'\n", sub, project,
				x->c->user, store_config(x->s)->security_admins, sub, project);
			return 1;
		}
		if (rc)
			return kerr(x, rc, sub, project);
		if (x->json)
			fprintf(x->out, "{\"project\":\"%s\",\"granted\":%s}\n", project, sub[0] == 'g' ? "true" : "false");
		else
			fprintf(x->out, "project %s: KMS access %s%s\n", project, sub[0] == 'g' ? "granted" : "revoked",
				sub[0] == 'g' ? " (default key evs/default ready)" : "");
		return 0;
	}
	if (strcmp(sub, "audit") == 0) {
		struct audit_ctx au = { x, 0 };
		struct kms_key_info k;
		const char *key_id = NULL;

		if (a->key) {
			rc = kms_key_lookup(store_kms(x->s), &kc, a->key, &k);
			if (rc)
				return kerr(x, rc, "audit", a->key);
			key_id = k.id;
		}
		if (a->verify) {
			int64_t bad = 0;

			rc = kms_audit_verify(store_kms(x->s), &bad);
			if (rc == -EBADMSG) {
				fprintf(x->err, "evfsctl: audit log TAMPERED: entry %lld and later do not verify\n",
					(long long)bad);
				return 1;
			}
			if (rc)
				return kerr(x, rc, "audit verify", "");
			fprintf(x->out, x->json ? "{\"audit\":\"intact\"}\n" : "audit log intact\n");
			return 0;
		}
		if (x->json)
			fputc('[', x->out);
		rc = kms_audit_list(store_kms(x->s), key_id, audit_cb, &au);
		if (x->json)
			fputs("]\n", x->out);
		return rc < 0 ? kerr(x, rc, "audit", "") : 0;
	}
	return usage(x, "unknown kms command '%s'", sub);
}
