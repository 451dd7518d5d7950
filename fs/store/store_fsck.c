// SPDX-License-Identifier: MIT
/*
 * store_fsck.c - evfsctl fsck: the catalog, the pools and the backup files
 * checked against each other, and every chunk against its tag.
 *
 * The engine (engine_fsck.c) knows pools and maps; it cannot tell an orphan
 * from an object.  The catalog's side is checked in two files:
 *
 *   objects   (store_fsck_scan.c) every object has its files; see there.
 *   orphans   (store_fsck_scan.c) maps, pools, lineage rows and backup
 *             files no catalog object refers to; see there.
 *   chunks    every chunk of every object authenticates under the data key
 *             (unwrapped through the KMS for the object's project; objects
 *             whose key is not Enabled are listed as not checked).
 *
 * This file holds the driver, the findings (text lines or JSON, counted
 * by severity) and the chunk checks.  The run's state, struct fsck, is in
 * store_fsck_int.h.
 *
 * Findings are "problem" (counts toward exit status 1), "warning" (leaked
 * slots: harmless, space not yet given back), "repaired", "unchecked".
 * Without --repair nothing is written.  --repair removes orphans and
 * reclaims leaked slots (not in a lineage with a missing map: those slots
 * may be all that is left of it); --quarantine (with --repair, one named
 * object) turns unreadable chunks into holes.
 *
 * Run inside the mount when the store is mounted (evfsctl forwards it), so
 * the engine's open pools and volumes are checked as the mount sees them.
 */
#include "json.h"
#include "progress.h"
#include "store_fsck_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backup.h"

/* NAME as fsck takes it: a volume, else a snapshot, image or backup of the
 * caller's project. */
static int object_find_named(struct store *s, const struct store_caller *c, const char *name,
			     struct meta_object *o)
{
	static const enum meta_kind kinds[] = { META_VOLUME, META_SNAPSHOT, META_IMAGE, META_BACKUP };
	int rc = -ENOENT;

	for (size_t i = 0; i < 4 && rc == -ENOENT; i++)
		rc = meta_object_lookup(s->meta, kinds[i], c->project, name, o);
	if (rc)
		store_seterr(s, c, "fsck: no volume, snapshot, image or backup named '%s' in project %s", name,
			     c->project);
	return rc;
}

/* ============================ collecting =============================== */

static int obj_cb(void *ctx, const struct meta_object *o)
{
	struct fsck *f = ctx;

	if (f->nobj == f->capobj) {
		size_t cap = f->capobj ? f->capobj * 2 : 64;
		struct meta_object *n = realloc(f->objs, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		f->objs = n;
		f->capobj = cap;
	}
	f->objs[f->nobj++] = *o;
	return 0;
}

static int lin_cb(void *ctx, const struct meta_lineage *l)
{
	struct fsck *f = ctx;

	if (f->nlin == f->caplin) {
		size_t cap = f->caplin ? f->caplin * 2 : 64;
		struct meta_lineage *n = realloc(f->lins, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		f->lins = n;
		f->caplin = cap;
	}
	f->lins[f->nlin++] = *l;
	return 0;
}

static int pool_cb(void *ctx, const char *lineage)
{
	struct fsck *f = ctx;

	if (f->npool == f->cappool) {
		size_t cap = f->cappool ? f->cappool * 2 : 64;
		char (*n)[META_LINEAGE_LEN + 1] = realloc(f->pools, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		f->pools = n;
		f->cappool = cap;
	}
	snprintf(f->pools[f->npool++], META_LINEAGE_LEN + 1, "%s", lineage);
	return 0;
}

/* ============================ chunk checks ============================= */

static void bk_bad_cb(void *ctx, uint64_t index, int err)
{
	struct engine_fsck_issue is = { .what = ENGINE_FSCK_CHUNK_BAD, .index = index, .err = err };

	fsck_issue_cb(ctx, &is);
}

/* Returns 0 checked, 1 not checked (key), <0 error (reported). */
static int object_chunks(struct fsck *f, const struct meta_object *o, int quarantine)
{
	struct store *s = f->s;
	struct kms_dk *dk = NULL;
	unsigned before = f->bad_chunks;
	int rc;

	if ((o->kind != META_BACKUP && (fsck_pool_refused(f, o->lineage) || !fsck_map_present(s, o))) ||
	    !fsck_lin_by_id(f, o->lineage))
		return 0;                          /* reported by fsck_object_files or fsck_pool */
	{
		struct store_caller wc = *f->c;

		wc.err = &f->why;
		evfs_err_clear(&f->why);
		rc = store_object_unwrap(s, &wc, o, &dk);
	}
	if (rc) {
		f->unchecked++;
		fsck_emit(f, "unchecked", "key_unusable", o, 0, 0, "%s %s: chunks not checked: %s",
			  meta_kind_name(o->kind), o->name, f->why.msg);
		return 1;
	}
	f->cur = o;
	f->nbad = 0;
	f->pool = o->lineage;
	if (o->kind == META_BACKUP) {
		struct backup_info bi;

		f->cs = backup_info_load(o->location, o->id, &bi) == 0 ? bi.chunk_size : s->cfg.chunk_size;
		rc = backup_verify(o->location, o->id, dk, bk_bad_cb, f);
	} else {
		rc = engine_map_check(s->eng, o->lineage, o->id, dk, fsck_issue_cb, f);
	}
	kms_dk_destroy(dk);
	f->checked++;
	if (rc < 0)
		fsck_emit(f, "problem", "unreadable", o, 0, 0, "%s %s: chunks could not be checked: %s",
			  meta_kind_name(o->kind), o->name, evfs_strerror(rc));
	for (size_t i = 0; quarantine && rc >= 0 && i < f->nbad; i++) {
		uint64_t ix = f->bad[i];
		int q = engine_map_quarantine(s->eng, o->lineage, o->id, ix);

		if (q >= 0)
			fsck_emit(f, "repaired", "quarantined", o, 1, ix, "%s %s: chunk %llu (bytes %llu-%llu) "
				  "replaced by zeros", meta_kind_name(o->kind), o->name, (unsigned long long)ix,
				  (unsigned long long)(ix * f->cs), (unsigned long long)((ix + 1) * f->cs - 1));
		else
			fsck_emit(f, "problem", "repair_failed", o, 1, ix, "%s %s: chunk %llu not quarantined: %s",
				  meta_kind_name(o->kind), o->name, (unsigned long long)ix, evfs_strerror(q));
	}
	if (f->bad_chunks > before && !quarantine && o->kind != META_BACKUP)
		fsck_emit(f, "warning", "hint", o, 0, 0, "%s %s: %u bad chunk(s); restore the data from a backup, or "
			  "'evfsctl fsck %s --repair --quarantine' to make them read as zeros", meta_kind_name(o->kind),
			  o->name, f->bad_chunks - before, o->name);
	f->cur = NULL;
	f->pool = NULL;
	return 0;
}

/* ================================ driver =============================== */

static int may_repair(struct fsck *f)
{
	struct stat st;

	if (f->c->uid == 0 || (stat(f->s->dir, &st) == 0 && st.st_uid == f->c->uid))
		return 0;
	store_seterr(f->s, f->c, "fsck %s: permission denied: only root or the store's owner may check the whole store "
		     "or repair (R27)", f->o->name ? f->o->name : "--all");
	return -EPERM;
}

struct upgrade {
	struct store *s;
	const struct store_caller *c;
	FILE *out;
	unsigned done, already;
	int err;
	struct progress pr;             /* of the pool being converted */
	int bar;                        /* pr begun */
	char what[64];
};

static void upgrade_step(void *ctx, uint64_t done, uint64_t total)
{
	struct upgrade *u = ctx;

	if (!u->bar) {
		progress_begin(&u->pr, u->c->progress, u->what, total);
		u->bar = 1;
	}
	progress_update(&u->pr, done);
}

static int upgrade_cb(void *ctx, const char *lineage)
{
	struct upgrade *u = ctx;
	uint64_t maps = 0;
	int rc;

	snprintf(u->what, sizeof(u->what), "upgrade pool %.8s", lineage);
	u->bar = 0;
	rc = engine_pool_upgrade(u->s->eng, lineage, &maps, upgrade_step, u);
	if (u->bar)
		progress_end(&u->pr, rc >= 0);

	if (rc == 1) {
		u->already++;
		return 0;
	}
	if (rc < 0) {
		store_seterr(u->s, u->c, "upgrade: pool %s: %s; it is unchanged (format 1)%s", lineage, evfs_strerror(rc),
			     rc == -EUCLEAN ? ": run evfsctl fsck, repair or restore the pool, then run upgrade again"
					    : rc == -ENOSPC ? ": free some space (the new maps need about 1/64 of the "
							      "volumes' written data) and run upgrade again" : "");
		u->err = rc;
		return 1;
	}
	u->done++;
	fprintf(u->out, "pool %s: upgraded to format 2 (%llu map(s))\n", lineage, (unsigned long long)maps);
	return 0;
}

int store_upgrade(struct store *s, const struct store_caller *c, FILE *out)
{
	struct stat st;
	struct upgrade u = { .s = s, .c = c, .out = out };
	int rc;

	if (c->uid != 0 && (stat(s->dir, &st) != 0 || st.st_uid != c->uid)) {
		store_seterr(s, c, "upgrade: permission denied: only root or the store's owner may upgrade the store");
		return -EPERM;
	}
	if (s->mounted) {
		store_seterr(s, c, "upgrade: the store is mounted: unmount it (fusermount3 -u MOUNTPOINT) and run "
			     "evfsctl upgrade again; pools in use cannot be converted");
		return -EBUSY;
	}
	rc = engine_pool_list(s->eng, upgrade_cb, &u);
	if (u.err)
		return u.err;
	if (rc < 0) {
		store_seterr(s, c, "upgrade: cannot read the pools directory: %s", evfs_strerror(rc));
		return rc;
	}
	fprintf(out, "upgrade: %u pool(s) upgraded to format 2, %u already format 2\n", u.done, u.already);
	return 0;
}

static int collect(struct fsck *f)
{
	int rc = meta_object_list(f->s->meta, NULL, obj_cb, f);

	if (rc >= 0)
		rc = meta_lineage_list(f->s->meta, NULL, lin_cb, f);
	if (rc >= 0)
		rc = engine_pool_list(f->s->eng, pool_cb, f);
	if (rc < 0)
		store_seterr(f->s, f->c, "fsck: cannot read the catalog or the pools directory: %s", evfs_strerror(rc));
	return rc < 0 ? rc : 0;
}

static void summary(struct fsck *f)
{
	unsigned left = f->problems > f->repaired ? f->problems - f->repaired : 0;

	if (f->o->json) {
		fprintf(f->out, "],\"summary\":{\"objects_checked\":%u,\"objects_unchecked\":%u,\"pools\":%zu,"
			"\"bad_chunks\":%u,\"problems\":%u,\"repaired\":%u,\"problems_left\":%u,\"warnings\":%u,"
			"\"leaked_slots\":%llu,\"leaked_bytes\":%llu,\"clean\":%s}}\n", f->checked, f->unchecked,
			f->npool, f->bad_chunks, f->problems, f->repaired, left, f->warnings,
			(unsigned long long)f->leaked, (unsigned long long)f->leaked_bytes, left ? "false" : "true");
		return;
	}
	fprintf(f->out, "fsck %s: %u object(s) checked, %u not checked (key not usable), %zu pool(s); %u bad "
		"chunk(s); %u problem(s) found, %u repaired, %u left; %llu leaked slot(s) (%llu bytes)%s\n",
		f->o->name ? f->o->name : "(whole store)", f->checked, f->unchecked, f->npool, f->bad_chunks,
		f->problems, f->repaired, left, (unsigned long long)f->leaked, (unsigned long long)f->leaked_bytes,
		left ? "" : f->unchecked ? "; clean except the objects not checked" : "; clean");
}

int store_fsck_run(struct store *s, const struct store_caller *c, const struct store_fsck_opts *o, FILE *out)
{
	struct fsck f = { .s = s, .c = c, .o = o, .out = out, .cs = s->cfg.chunk_size };
	const struct meta_object *target = NULL;
	int rc;

	if ((!o->name || o->repair) && (rc = may_repair(&f)) != 0)
		return rc;
	if (o->quarantine && (!o->repair || !o->name)) {
		store_seterr(s, c, "fsck: --quarantine needs --repair and an object name");
		return -EINVAL;
	}
	rc = collect(&f);
	if (rc)
		goto out;
	if (o->name) {
		struct meta_object want;

		if ((rc = object_find_named(s, c, o->name, &want)) != 0)
			goto out;
		for (size_t i = 0; i < f.nobj && !target; i++)
			if (strcmp(f.objs[i].id, want.id) == 0)
				target = &f.objs[i];
		if (!target) {   /* commands run one at a time: cannot vanish */
			rc = -ENOENT;
			goto out;
		}
		if (o->quarantine && target->kind == META_BACKUP) {
			store_seterr(s, c, "fsck %s: a backup cannot be quarantined (it is an immutable copy); take a new "
				     "backup and delete this one", o->name);
			rc = -EINVAL;
			goto out;
		}
	}
	if (o->quarantine && !(f.bad = malloc(64 * sizeof(*f.bad)))) {
		rc = -ENOMEM;
		goto out;
	}
	f.capbad = f.bad ? 64 : 0;
	if (o->json) {
		fputs("{\"scope\":", out);
		json_str(out, o->name ? o->name : "all");
		fputs(",\"items\":[", out);
	}
	if (target) {
		if (target->kind != META_BACKUP && fsck_pool_exists(&f, target->lineage))
			fsck_pool(&f, target->lineage);
		fsck_object_files(&f, target);
		fsck_seen_sort(&f);
		rc = object_chunks(&f, target, o->quarantine);
		if (rc == 1) {
			summary(&f);
			store_seterr(s, c, "fsck %s: its chunks could not be checked: %s", o->name, f.why.msg);
			rc = -ENOKEY;
			goto out;
		}
	} else {
		for (size_t i = 0; i < f.npool; i++)
			fsck_pool(&f, f.pools[i]);
		for (size_t i = 0; i < f.nobj; i++) {
			fsck_object_files(&f, &f.objs[i]);
			if (f.objs[i].kind != META_BACKUP && !fsck_pool_exists(&f, f.objs[i].lineage) &&
			    fsck_map_present(s, &f.objs[i]))
				fsck_emit(&f, "problem", "pool", &f.objs[i], 0, 0, "pool of %s %s is unreadable",
					  meta_kind_name(f.objs[i].kind), f.objs[i].name);
		}
		fsck_lineage_orphans(&f);
		fsck_backup_dir_orphans(&f, s->cfg.backup_dir);
		for (size_t i = 0; i < f.nobj; i++) {
			int seen = f.objs[i].kind != META_BACKUP || strcmp(f.objs[i].location, s->cfg.backup_dir) == 0;

			for (size_t j = 0; j < i && !seen; j++)
				seen = f.objs[j].kind == META_BACKUP && strcmp(f.objs[j].location, f.objs[i].location) == 0;
			if (!seen)
				fsck_backup_dir_orphans(&f, f.objs[i].location);
		}
		fsck_seen_sort(&f);
		for (size_t i = 0; i < f.nobj; i++)
			(void)object_chunks(&f, &f.objs[i], 0);
	}
	summary(&f);
	rc = (int)(f.problems > f.repaired ? f.problems - f.repaired : 0);
out:
	free(f.objs);
	free(f.lins);
	free(f.pools);
	free(f.refused);
	free(f.bad);
	free(f.seen);
	return rc;
}

/* =================== one object's chunks (backup verify) ================= */

struct verify_ctx {
	FILE *out;
	const char *name;
	uint32_t cs;
};

static void bad_cb(void *ctx, uint64_t index, int err)
{
	struct verify_ctx *f = ctx;

	fprintf(f->out, "%s: chunk %llu (bytes %llu-%llu): %s\n", f->name, (unsigned long long)index,
		(unsigned long long)(index * f->cs), (unsigned long long)((index + 1) * f->cs - 1), fsck_errword(err));
}

int store_fsck(struct store *s, const struct store_caller *c, const char *name, FILE *out)
{
	struct verify_ctx f = { out, name, s->cfg.chunk_size };
	struct meta_object o;
	struct kms_dk *dk = NULL;
	int rc = object_find_named(s, c, name, &o);

	if (rc)
		return rc;
	rc = store_object_unwrap(s, c, &o, &dk);
	if (rc)
		return rc;
	if (o.kind == META_BACKUP) {
		struct backup_info bi;

		if (backup_info_load(o.location, o.id, &bi) == 0)
			f.cs = bi.chunk_size;
		rc = backup_verify(o.location, o.id, dk, bad_cb, &f);
	} else {
		struct engine_map_stats st;

		if (engine_map_stats(s->eng, o.lineage, o.id, &st) == 0)
			f.cs = st.chunk_size;
		rc = engine_map_verify(s->eng, o.lineage, o.id, dk, bad_cb, &f);
	}
	kms_dk_destroy(dk);
	if (rc < 0)
		store_seterr(s, c, "fsck %s: %s", name, evfs_strerror(rc));
	return rc;
}
