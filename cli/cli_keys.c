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

	if (x->json)
		fputs("\"dependents\":[", x->out);
	else
		fprintf(x->out, "%s\n", intro);
	if (store_key_dependents(x->s, k->id, project, dep_cb, &d) < 0)
		fprintf(x->err, "evfsctl: could not list the objects using the key\n");
	if (x->json)
		fputs("]", x->out);
	else if (!d.n)
		fprintf(x->out, "  (none)\n");
}

static int key_change(struct cmdctx *x, const char *sub, struct args *a)
{
	static const struct {
		const char *name;
		enum store_key_op op;
	} ops[] = {
		{ "disable", STORE_KEY_DISABLE }, { "enable", STORE_KEY_ENABLE },
		{ "cancel-deletion", STORE_KEY_CANCEL_DELETION }, { "rotate", STORE_KEY_ROTATE },
		{ "schedule-deletion", STORE_KEY_SCHEDULE_DELETION }, { "share", STORE_KEY_SHARE },
		{ "unshare", STORE_KEY_UNSHARE },
	};
	struct kms_key_info k;
	long days = 0;
	size_t i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]) && strcmp(sub, ops[i].name) != 0; i++)
		;
	if (i == sizeof(ops) / sizeof(ops[0]))
		return usage(x, "unknown key command '%s'", sub);
	if (ops[i].op == STORE_KEY_SCHEDULE_DELETION) {
		char *end;

		days = a->days ? strtol(a->days, &end, 10) : -1;
		if (!a->days || *end || days < KMS_MIN_DELETION_DAYS || days > KMS_MAX_DELETION_DAYS) {
			fprintf(x->err, "evfsctl: key schedule-deletion %s: --days must be a number from %d to %d\n",
				a->pos[0], KMS_MIN_DELETION_DAYS, KMS_MAX_DELETION_DAYS);
			return 2;
		}
	}
	if ((ops[i].op == STORE_KEY_SHARE || ops[i].op == STORE_KEY_UNSHARE) && !a->with)
		return usage(x, "key %s KEY --with PROJECT", sub);
	if (store_key_change(x->s, x->c, ops[i].op, a->pos[0], (int)days, a->with, &k))
		return fail(x);
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

static int key_rewrap(struct cmdctx *x, const char *name)
{
	struct kms_key_info k;
	size_t n = 0;
	int retired = 0;

	if (store_key_rewrap(x->s, x->c, name, &k, &n, &retired))
		return fail(x);
	if (x->json)
		fprintf(x->out, "{\"key\":\"%s\",\"rewrapped\":%zu,\"versions_retired\":%d}\n", k.id, n, retired);
	else
		fprintf(x->out, "key %s: %zu data key(s) rewrapped under version %u; %d old version(s) destroyed\n",
			k.alias, n, k.version, retired);
	return 0;
}

int cmd_key(struct cmdctx *x, const char *sub, struct args *a)
{
	struct kms_key_info k;
	int rc;

	if (strcmp(sub, "list") == 0) {
		struct klist_ctx l = { x, 0 };

		if (x->json)
			fputc('[', x->out);
		else
			fprintf(x->out, "%-24s %-36s %-16s %-12s %s\n", "ALIAS", "ID", "STATE", "PROJECT", "DELETION");
		rc = store_key_list(x->s, x->c, klist_cb, &l);
		if (x->json)
			fputs("]\n", x->out);
		return rc < 0 ? fail(x) : 0;
	}
	if ((rc = want_pos(x, a, 1, "key COMMAND KEY")))
		return rc;
	if (strcmp(sub, "create") == 0) {
		if (store_key_create(x->s, x->c, a->pos[0], a->desc, &k))
			return fail(x);
		if (x->json) {
			key_print(x, &k, 0);
			fputc('\n', x->out);
		} else {
			fprintf(x->out, "created key %s (%s) in project %s\n", k.alias, k.id, k.project);
		}
		return 0;
	}
	if (strcmp(sub, "show") == 0) {
		if (store_key_lookup(x->s, x->c, a->pos[0], "show", &k))
			return fail(x);
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
	if (au->x->json && !au->n)
		fputc('[', au->x->out);
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
	int rc;

	if (strcmp(sub, "grant") == 0 || strcmp(sub, "revoke") == 0) {
		if (store_kms_grant(x->s, x->c, project, sub[0] == 'g'))
			return fail(x);
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
			if (store_key_lookup(x->s, x->c, a->key, "audit", &k))
				return fail(x);
			key_id = k.id;
		}
		if (a->verify) {
			int64_t bad = 0;

			if (store_audit_verify(x->s, x->c, &bad))
				return fail(x);
			fprintf(x->out, x->json ? "{\"audit\":\"intact\"}\n" : "audit log intact\n");
			return 0;
		}
		rc = store_audit_list(x->s, x->c, key_id, audit_cb, &au);   /* "[" with the first entry */
		if (rc < 0)
			return fail(x);
		if (x->json)
			fputs(au.n ? "]\n" : "[]\n", x->out);
		return 0;
	}
	return usage(x, "unknown kms command '%s'", sub);
}
