// SPDX-License-Identifier: MIT
/*
 * store_fsck.c - evfsctl fsck: the catalog, the pools and the backup files
 * checked against each other, and every chunk against its tag.
 *
 * The engine (engine_fsck.c) knows pools and maps; it cannot tell an orphan
 * from an object.  This file holds the catalog's side:
 *
 *   objects   every volume, snapshot and image has its map in the pool of
 *             its lineage; every backup has its file, of its lineage, with
 *             its lineage's wrapped data key in the catalog and, if
 *             incremental, the backup it builds on.
 *   orphans   a map, pool, lineage row or backup file no catalog object
 *             refers to.  Commands write data first and the catalog last,
 *             so an interrupted one leaves exactly these; --repair removes
 *             them (never anything a catalog object refers to).
 *   chunks    every chunk of every object authenticates under the data key
 *             (unwrapped through the KMS for the object's project; objects
 *             whose key is not Enabled are listed as not checked).
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
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"
#include "engine_fsck.h"

struct fsck {
	struct store *s;
	const struct store_caller *c;
	const struct store_fsck_opts *o;
	FILE *out;
	struct meta_object *objs;
	size_t nobj, capobj;
	struct meta_lineage *lins;
	size_t nlin, caplin;
	char (*pools)[META_LINEAGE_LEN + 1];
	size_t npool, cappool;
	const struct meta_object *cur;     /* object whose chunks are verified */
	const char *pool;                  /* pool being checked */
	uint32_t cs;
	struct seen { size_t obj; uint64_t index; } *seen;   /* chunks with a broken map entry */
	size_t nseen, capseen;
	uint64_t *bad;                     /* bad chunk indexes of cur (quarantine) */
	size_t nbad, capbad;
	int items;
	unsigned problems, repaired, warnings, checked, unchecked, bad_chunks, damaged_maps;
	uint64_t leaked, leaked_bytes;
};

/* ============================== output ================================= */

static void json_escape(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

/* One finding: a text line, or one element of the JSON "items" array. */
static void emit(struct fsck *f, const char *sev, const char *code, const struct meta_object *o, int range,
		 uint64_t index, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void emit(struct fsck *f, const char *sev, const char *code, const struct meta_object *o, int range,
		 uint64_t index, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(sev, "problem") == 0)
		f->problems++;
	else if (strcmp(sev, "repaired") == 0)
		f->repaired++;
	else if (strcmp(sev, "warning") == 0)
		f->warnings++;
	if (!f->o->json) {
		fprintf(f->out, "%s: %s\n", sev, msg);
		return;
	}
	fprintf(f->out, "%s{\"severity\":\"%s\",\"code\":\"%s\"", f->items++ ? "," : "", sev, code);
	if (o) {
		fprintf(f->out, ",\"kind\":\"%s\",\"name\":", meta_kind_name(o->kind));
		json_escape(f->out, o->name);
		fprintf(f->out, ",\"id\":\"%s\",\"project\":", o->id);
		json_escape(f->out, o->project);
	}
	if (f->pool)
		fprintf(f->out, ",\"lineage\":\"%s\"", f->pool);
	if (range)
		fprintf(f->out, ",\"chunk\":%llu,\"offset\":%llu,\"length\":%u", (unsigned long long)index,
			(unsigned long long)(index * f->cs), (unsigned)f->cs);
	fputs(",\"message\":", f->out);
	json_escape(f->out, msg);
	fputc('}', f->out);
}

static int seen_cmp(const void *a, const void *b)
{
	const struct seen *x = a, *y = b;

	return x->obj != y->obj ? (x->obj < y->obj ? -1 : 1) : x->index < y->index ? -1 : x->index > y->index;
}

/* Remember a chunk whose map entry was reported broken. */
static void seen_add(struct fsck *f, const struct meta_object *o, uint64_t index)
{
	if (f->nseen == f->capseen) {
		size_t cap = f->capseen ? f->capseen * 2 : 256;
		struct seen *n = realloc(f->seen, cap * sizeof(*n));

		if (!n)
			return;
		f->seen = n;
		f->capseen = cap;
	}
	f->seen[f->nseen++] = (struct seen){ (size_t)(o - f->objs), index };
}

/* Was this chunk's entry already reported (so its failed read is no news)? */
static int seen_has(const struct fsck *f, const struct meta_object *o, uint64_t index)
{
	struct seen k = { (size_t)(o - f->objs), index };

	return f->nseen && bsearch(&k, f->seen, f->nseen, sizeof(k), seen_cmp) != NULL;
}

static const char *errword(int err)
{
	return err == -EBADMSG ? "authentication failed (tampered, moved or damaged)" :
	       err == -EUCLEAN ? "missing or short on disk" : strerror(-err);
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

static const struct meta_object *obj_by_id(const struct fsck *f, const char *id)
{
	for (size_t i = 0; i < f->nobj; i++)
		if (strcmp(f->objs[i].id, id) == 0)
			return &f->objs[i];
	return NULL;
}

static const struct meta_lineage *lin_by_id(const struct fsck *f, const char *id)
{
	for (size_t i = 0; i < f->nlin; i++)
		if (strcmp(f->lins[i].id, id) == 0)
			return &f->lins[i];
	return NULL;
}

static int pool_exists(const struct fsck *f, const char *lineage)
{
	for (size_t i = 0; i < f->npool; i++)
		if (strcmp(f->pools[i], lineage) == 0)
			return 1;
	return 0;
}

/* Objects with a map (not backups) in lineage; backups counted apart. */
static int lineage_users(const struct fsck *f, const char *lineage, int *backups)
{
	int maps = 0;

	*backups = 0;
	for (size_t i = 0; i < f->nobj; i++) {
		if (strcmp(f->objs[i].lineage, lineage) != 0)
			continue;
		if (f->objs[i].kind == META_BACKUP)
			(*backups)++;
		else
			maps++;
	}
	return maps;
}

static int pool_dir_present(struct store *s, const char *lineage)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/pools/%s", s->dir, lineage);
	return stat(path, &st) == 0;
}

static int map_present(struct store *s, const struct meta_object *o)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/pools/%s/maps/%s.map", s->dir, o->lineage, o->id);
	return stat(path, &st) == 0;
}

/* ============================ pool checks ============================== */

static void issue_cb(void *ctx, const struct engine_fsck_issue *is)
{
	struct fsck *f = ctx;
	const struct meta_object *o = is->map ? obj_by_id(f, is->map) : NULL;
	char who[256];

	if (is->chunk_size)
		f->cs = is->chunk_size;

	if (is->what == ENGINE_FSCK_CHUNK_BAD) {
		f->bad_chunks++;
		f->cs = is->chunk_size ? is->chunk_size : f->cs;
		if (f->bad && f->nbad == f->capbad) {
			uint64_t *n = realloc(f->bad, f->capbad * 2 * sizeof(*n));

			if (n) {
				f->bad = n;
				f->capbad *= 2;
			}
		}
		if (f->bad && f->nbad < f->capbad)
			f->bad[f->nbad++] = is->index;
		if (seen_has(f, f->cur, is->index))
			return;
		emit(f, "problem", "bad_chunk", f->cur, 1, is->index, "%s %s: chunk %llu (bytes %llu-%llu): %s",
		     meta_kind_name(f->cur->kind), f->cur->name, (unsigned long long)is->index,
		     (unsigned long long)(is->index * f->cs), (unsigned long long)((is->index + 1) * f->cs - 1),
		     errword(is->err));
		return;
	}
	if (is->what == ENGINE_FSCK_MAP_HEADER || is->what == ENGINE_FSCK_MAP_SHORT)
		f->damaged_maps++;
	if (o)
		snprintf(who, sizeof(who), "%s %s (map %s, pool %s)", meta_kind_name(o->kind), o->name, is->map,
			 is->lineage);
	else if (is->map)
		snprintf(who, sizeof(who), "map %s in pool %s (no catalog object)", is->map, is->lineage);
	else
		snprintf(who, sizeof(who), "pool %s", is->lineage);
	switch (is->what) {
	case ENGINE_FSCK_MAP_RANGE:
	case ENGINE_FSCK_SLOT_BEYOND:
	case ENGINE_FSCK_SLOT_EMPTY:
	case ENGINE_FSCK_SLOT_INDEX:
		if (o)
			seen_add(f, o, is->index);
		emit(f, "problem", "map_entry", o, o != NULL, is->index,
		     "%s: chunk %llu (bytes %llu-%llu) -> slot %llu: %s%s", who, (unsigned long long)is->index,
		     (unsigned long long)(is->index * f->cs), (unsigned long long)((is->index + 1) * f->cs - 1),
		     (unsigned long long)is->slot, engine_fsck_what_str(is->what),
		     o && o->kind != META_BACKUP ? "; fsck --repair --quarantine NAME turns it into zeros" : "");
		break;
	case ENGINE_FSCK_SLOT_FREE:
	case ENGINE_FSCK_REFCOUNT:
		emit(f, "problem", "refcount", NULL, 0, 0, "%s: slot %llu: %s (memory says %llu); remount to rebuild "
		     "the counts", who, (unsigned long long)is->slot, engine_fsck_what_str(is->what),
		     (unsigned long long)is->count);
		break;
	case ENGINE_FSCK_TMP_MAP:
		break;                               /* handled with the map list */
	default:
		emit(f, "problem", "pool", o, 0, 0, "%s: %s%s%s", who, engine_fsck_what_str(is->what),
		     is->err ? ": " : "", is->err ? strerror(-is->err) : "");
	}
}

struct maplist {
	struct fsck *f;
	const char *lineage;
	char (*ids)[ENGINE_ID_MAX];
	int *tmp;
	size_t n, cap;
};

static int maplist_cb(void *ctx, const char *id, int tmp)
{
	struct maplist *m = ctx;

	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 32;
		char (*n)[ENGINE_ID_MAX] = realloc(m->ids, cap * sizeof(*n));
		int *t = n ? realloc(m->tmp, cap * sizeof(*t)) : NULL;

		if (n)
			m->ids = n;
		if (!t)
			return -ENOMEM;
		m->tmp = t;
		m->cap = cap;
	}
	snprintf(m->ids[m->n], ENGINE_ID_MAX, "%s", id);
	m->tmp[m->n++] = tmp;
	return 0;
}

/* Maps with no catalog object, leftovers of clones; whole orphan pools. */
static void pool_orphans(struct fsck *f, const char *lineage, int whole_orphan)
{
	struct store *s = f->s;
	struct maplist m = { f, lineage, NULL, NULL, 0, 0 };
	int rc = engine_map_list(s->eng, lineage, maplist_cb, &m), left = 0;

	for (size_t i = 0; rc >= 0 && i < m.n; i++) {
		const struct meta_object *o = obj_by_id(f, m.ids[i]);

		if (m.tmp[i]) {
			emit(f, "problem", "tmp_map", NULL, 0, 0, "pool %s: temporary map .tmp-%s.map left by an "
			     "interrupted snapshot/clone%s", lineage, m.ids[i], f->o->repair ? "" : "; --repair removes it");
			if (f->o->repair && ((rc = engine_map_tmp_remove(s->eng, lineage, m.ids[i])) == 0 ||
					     rc == -ENOENT))
				emit(f, "repaired", "tmp_map", NULL, 0, 0, "removed .tmp-%s.map from pool %s", m.ids[i],
				     lineage);
			rc = 0;
			continue;
		}
		if (o && o->kind != META_BACKUP && strcmp(o->lineage, lineage) == 0)
			continue;
		if (o) {
			emit(f, "problem", "misplaced_map", o, 0, 0, "map %s in pool %s belongs to %s %s of lineage %s; "
			     "not removed", m.ids[i], lineage, meta_kind_name(o->kind), o->name, o->lineage);
			left++;
			continue;
		}
		emit(f, "problem", "orphan_map", NULL, 0, 0, "pool %s: map %s has no catalog object (left by an "
		     "interrupted command)%s", lineage, m.ids[i], f->o->repair ? "" : "; --repair removes it");
		if (!f->o->repair) {
			left++;
			continue;
		}
		rc = engine_map_delete(s->eng, lineage, m.ids[i]);
		if (rc == 0)
			emit(f, "repaired", "orphan_map", NULL, 0, 0, "removed orphan map %s from pool %s (its "
			     "unshared chunks freed)", m.ids[i], lineage);
		else
			emit(f, "problem", "repair_failed", NULL, 0, 0, "orphan map %s of pool %s not removed: %s%s",
			     m.ids[i], lineage, strerror(-rc), rc == -EBUSY ? " (open in the mount; close it and retry)"
									    : "");
		left += rc != 0;
		rc = 0;
	}
	if (rc < 0)
		emit(f, "problem", "pool", NULL, 0, 0, "pool %s: cannot list its maps: %s", lineage, strerror(-rc));
	if (whole_orphan && rc >= 0) {
		emit(f, "problem", "orphan_pool", NULL, 0, 0, "pool %s belongs to no volume, snapshot or image (left "
		     "by an interrupted command)%s", lineage, f->o->repair ? "" : "; --repair removes it");
		if (f->o->repair && !left) {
			rc = engine_pool_delete(s->eng, lineage);
			if (rc == 0)
				emit(f, "repaired", "orphan_pool", NULL, 0, 0, "removed orphan pool %s", lineage);
			else
				emit(f, "problem", "repair_failed", NULL, 0, 0, "orphan pool %s not removed: %s",
				     lineage, strerror(-rc));
		}
	}
	free(m.ids);
	free(m.tmp);
}

/* Structure, counts, orphans and leaks of one pool. */
static void pool_fsck(struct fsck *f, const char *lineage)
{
	struct store *s = f->s;
	struct engine_pool_report r;
	int backups, users = lineage_users(f, lineage, &backups), rc, missing = 0;
	unsigned damaged = f->damaged_maps;

	f->pool = lineage;
	f->cs = s->cfg.chunk_size;
	rc = engine_pool_check(s->eng, lineage, issue_cb, f, &r);
	if (rc < 0) {
		emit(f, "problem", "pool", NULL, 0, 0, "pool %s cannot be checked: %s", lineage, strerror(-rc));
		f->pool = NULL;
		return;
	}
	if (r.chunk_size)
		f->cs = r.chunk_size;
	pool_orphans(f, lineage, users == 0);
	for (size_t i = 0; i < f->nobj; i++)
		missing += f->objs[i].kind != META_BACKUP && strcmp(f->objs[i].lineage, lineage) == 0 &&
			   !map_present(s, &f->objs[i]);
	if (r.leaked && users > 0) {
		int hold = missing || f->damaged_maps != damaged;

		emit(f, "warning", "leaked", NULL, 0, 0, "pool %s: %llu slot(s) (%llu bytes) hold data no map "
		     "references (overwritten or interrupted writes)%s", lineage, (unsigned long long)r.leaked,
		     (unsigned long long)r.leaked_bytes,
		     hold ? "; kept: a map of this lineage is missing or damaged" :
		     f->o->repair ? "" : "; --repair gives the space back");
		f->leaked += r.leaked;
		f->leaked_bytes += r.leaked_bytes;
		if (f->o->repair && !hold) {
			uint64_t n = 0;

			rc = engine_pool_reclaim(s->eng, lineage, &n);
			if (rc)
				emit(f, "problem", "repair_failed", NULL, 0, 0, "pool %s: leaked slots not reclaimed: %s",
				     lineage, strerror(-rc));
			else
				emit(f, "repaired", "leaked", NULL, 0, 0, "pool %s: punched %llu leaked slot(s) (%llu "
				     "bytes given back)", lineage, (unsigned long long)n,
				     (unsigned long long)(n * r.chunk_size));
		}
	}
	f->pool = NULL;
}

/* ============================ catalog checks =========================== */

static void object_files(struct fsck *f, const struct meta_object *o)
{
	struct store *s = f->s;
	const struct meta_lineage *l = lin_by_id(f, o->lineage);
	struct backup_info bi;
	int rc;

	if (!l)
		emit(f, "problem", "lineage_missing", o, 0, 0, "%s %s: its lineage %s (with the wrapped data key) is "
		     "missing from the catalog; its data cannot be decrypted", meta_kind_name(o->kind), o->name,
		     o->lineage);
	if (o->kind != META_BACKUP) {
		if (!map_present(s, o))
			emit(f, "problem", "map_missing", o, 0, 0, "%s %s: its map pools/%s/maps/%s.map is missing: "
			     "its data is lost; restore it from a backup (evfsctl volume create --from-backup) or "
			     "delete it", meta_kind_name(o->kind), o->name, o->lineage, o->id);
		return;
	}
	rc = backup_info_load(o->location, o->id, &bi);
	if (rc) {
		emit(f, "problem", "backup_file", o, 0, 0, "backup %s: its file %s/%s.evb is %s; take a new backup "
		     "and delete this one", o->name, o->location, o->id,
		     rc == -ENOENT ? "missing" : "damaged or unreadable");
		return;
	}
	{
		char hex[META_LINEAGE_LEN + 1];

		engine_lineage_format(bi.lineage, hex);
		if (strcmp(hex, o->lineage) != 0)
			emit(f, "problem", "backup_file", o, 0, 0, "backup %s: its file belongs to lineage %s, the "
			     "catalog says %s", o->name, hex, o->lineage);
	}
	if (o->encrypted && (!l || l->wrapped_len == 0) && bi.wrapped_len == 0)
		emit(f, "problem", "wrapped_key_missing", o, 0, 0, "backup %s: no wrapped data key in the catalog "
		     "or the file: it cannot be restored", o->name);
	if (bi.parent_id[0]) {
		const struct meta_object *p = obj_by_id(f, bi.parent_id);
		struct backup_info pi;

		if (!p || p->kind != META_BACKUP)
			emit(f, "problem", "chain_parent", o, 0, 0, "backup %s: the backup %s it builds on is not in "
			     "the catalog", o->name, bi.parent_id);
		if (backup_info_load(p ? p->location : o->location, bi.parent_id, &pi) < 0)
			emit(f, "problem", "chain_parent", o, 0, 0, "backup %s: the file of the backup %s it builds "
			     "on is missing or damaged; it cannot be restored", o->name, bi.parent_id);
	}
}

/* Backup files no catalog object refers to, and interrupted writes. */
static void backup_dir_orphans(struct fsck *f, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		size_t l = strlen(n);
		int tmp = strncmp(n, ".tmp-", 5) == 0;
		char id[META_ID_LEN + 1], path[4096];
		const struct meta_object *o;
		struct backup_info bi;
		char hex[META_LINEAGE_LEN + 1];

		if (l != (tmp ? 5u : 0u) + META_ID_LEN + 4 || strcmp(n + l - 4, ".evb") != 0)
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)META_ID_LEN, n + (tmp ? 5 : 0));
		snprintf(path, sizeof(path), "%s/%s", dir, n);
		o = obj_by_id(f, id);
		if (!tmp && o && o->kind == META_BACKUP)
			continue;
		if (!tmp && backup_info_load(dir, id, &bi) == 0) {
			engine_lineage_format(bi.lineage, hex);
			if (!lin_by_id(f, hex) && !pool_exists(f, hex)) {
				emit(f, "warning", "foreign_backup", NULL, 0, 0, "%s: a backup file of lineage %s, unknown "
				     "to this store (another store's?); left alone", path, hex);
				continue;
			}
		}
		emit(f, "problem", tmp ? "tmp_backup" : "orphan_backup", NULL, 0, 0, "%s: %s%s", path,
		     tmp ? "partial backup file left by an interrupted backup create/delete"
			 : "backup file with no catalog object (left by an interrupted backup create)",
		     f->o->repair ? "" : "; --repair removes it");
		if (f->o->repair) {
			if (unlink(path) == 0)
				emit(f, "repaired", tmp ? "tmp_backup" : "orphan_backup", NULL, 0, 0, "removed %s", path);
			else
				emit(f, "problem", "repair_failed", NULL, 0, 0, "%s not removed: %s", path,
				     strerror(errno));
		}
	}
	closedir(d);
}

/* Lineage rows no object refers to (an interrupted create). */
static void lineage_orphans(struct fsck *f)
{
	for (size_t i = 0; i < f->nlin; i++) {
		const char *id = f->lins[i].id;
		int b, rc;

		if (lineage_users(f, id, &b) || b || pool_dir_present(f->s, id))
			continue;
		emit(f, "problem", "orphan_lineage", NULL, 0, 0, "lineage %s: catalog row (wrapped data key) used by "
		     "no object (left by an interrupted command)%s", id, f->o->repair ? "" : "; --repair removes it");
		if (!f->o->repair)
			continue;
		rc = meta_lineage_delete(f->s->meta, id);
		if (rc == 0)
			emit(f, "repaired", "orphan_lineage", NULL, 0, 0, "removed lineage row %s", id);
		else
			emit(f, "problem", "repair_failed", NULL, 0, 0, "lineage row %s not removed: %s", id,
			     strerror(-rc));
	}
}

/* ============================ chunk checks ============================= */

static void bk_bad_cb(void *ctx, uint64_t index, int err)
{
	struct engine_fsck_issue is = { .what = ENGINE_FSCK_CHUNK_BAD, .index = index, .err = err };

	issue_cb(ctx, &is);
}

/* Returns 0 checked, 1 not checked (key), <0 error (reported). */
static int object_chunks(struct fsck *f, const struct meta_object *o, int quarantine)
{
	struct store *s = f->s;
	struct kms_dk *dk = NULL;
	unsigned before = f->bad_chunks;
	int rc;

	if ((o->kind != META_BACKUP && !map_present(s, o)) || !lin_by_id(f, o->lineage))
		return 0;                          /* reported by object_files */
	rc = store_lineage_unwrap(s, f->c, o->project, o->lineage, &dk);
	if (rc) {
		f->unchecked++;
		emit(f, "unchecked", "key_unusable", o, 0, 0, "%s %s: chunks not checked: %s", meta_kind_name(o->kind),
		     o->name, s->err);
		return 1;
	}
	f->cur = o;
	f->nbad = 0;
	f->pool = o->lineage;
	if (o->kind == META_BACKUP) {
		struct backup_info bi;

		f->cs = backup_info_load(o->location, o->id, &bi) == 0 ? bi.chunk_size : s->cfg.chunk_size;
		rc = backup_verify(o->location, o->id, dk ? kms_dk_bytes(dk) : NULL, bk_bad_cb, f);
	} else {
		rc = engine_map_check(s->eng, o->lineage, o->id, dk, issue_cb, f);
	}
	kms_dk_destroy(dk);
	f->checked++;
	if (rc < 0)
		emit(f, "problem", "unreadable", o, 0, 0, "%s %s: chunks could not be checked: %s",
		     meta_kind_name(o->kind), o->name, strerror(-rc));
	for (size_t i = 0; quarantine && rc >= 0 && i < f->nbad; i++) {
		uint64_t ix = f->bad[i];
		int q = engine_map_quarantine(s->eng, o->lineage, o->id, ix);

		if (q >= 0)
			emit(f, "repaired", "quarantined", o, 1, ix, "%s %s: chunk %llu (bytes %llu-%llu) replaced by "
			     "zeros", meta_kind_name(o->kind), o->name, (unsigned long long)ix,
			     (unsigned long long)(ix * f->cs), (unsigned long long)((ix + 1) * f->cs - 1));
		else
			emit(f, "problem", "repair_failed", o, 1, ix, "%s %s: chunk %llu not quarantined: %s",
			     meta_kind_name(o->kind), o->name, (unsigned long long)ix, strerror(-q));
	}
	if (f->bad_chunks > before && !quarantine && o->kind != META_BACKUP)
		emit(f, "warning", "hint", o, 0, 0, "%s %s: %u bad chunk(s); restore the data from a backup, or "
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
	store_seterr(f->s, "fsck %s: permission denied: only root or the store's owner may check the whole store "
		     "or repair (R27)", f->o->name ? f->o->name : "--all");
	return -EPERM;
}

static int collect(struct fsck *f)
{
	int rc = meta_object_list(f->s->meta, NULL, obj_cb, f);

	if (rc >= 0)
		rc = meta_lineage_list(f->s->meta, NULL, lin_cb, f);
	if (rc >= 0)
		rc = engine_pool_list(f->s->eng, pool_cb, f);
	if (rc < 0)
		store_seterr(f->s, "fsck: cannot read the catalog or the pools directory: %s", strerror(-rc));
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
		store_seterr(s, "fsck: --quarantine needs --repair and an object name");
		return -EINVAL;
	}
	rc = collect(&f);
	if (rc)
		goto out;
	if (o->name) {
		static const enum meta_kind kinds[] = { META_VOLUME, META_SNAPSHOT, META_IMAGE, META_BACKUP };

		for (size_t i = 0; i < f.nobj && !target; i++)
			for (size_t k = 0; k < 4 && !target; k++)
				if (f.objs[i].kind == kinds[k] && strcmp(f.objs[i].name, o->name) == 0 &&
				    strcmp(f.objs[i].project, c->project) == 0)
					target = &f.objs[i];
		if (!target) {
			store_seterr(s, "fsck: no volume, snapshot, image or backup named '%s' in project %s", o->name,
				     c->project);
			rc = -ENOENT;
			goto out;
		}
		if (o->quarantine && target->kind == META_BACKUP) {
			store_seterr(s, "fsck %s: a backup cannot be quarantined (it is an immutable copy); take a new "
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
		json_escape(out, o->name ? o->name : "all");
		fputs(",\"items\":[", out);
	}
	if (target) {
		if (target->kind != META_BACKUP && pool_exists(&f, target->lineage))
			pool_fsck(&f, target->lineage);
		object_files(&f, target);
		if (f.nseen) /* qsort(NULL, 0, ...) is undefined (found by fuzz_cli) */
			qsort(f.seen, f.nseen, sizeof(*f.seen), seen_cmp);
		rc = object_chunks(&f, target, o->quarantine);
		if (rc == 1) {
			summary(&f);
			char why[sizeof(s->err)];

			/* s->err is the destination: never also a source. */
			snprintf(why, sizeof(why), "%s", s->err);
			store_seterr(s, "fsck %s: its chunks could not be checked: %s", o->name, why);
			rc = -ENOKEY;
			goto out;
		}
	} else {
		for (size_t i = 0; i < f.npool; i++)
			pool_fsck(&f, f.pools[i]);
		for (size_t i = 0; i < f.nobj; i++) {
			object_files(&f, &f.objs[i]);
			if (f.objs[i].kind != META_BACKUP && !pool_exists(&f, f.objs[i].lineage) &&
			    map_present(s, &f.objs[i]))
				emit(&f, "problem", "pool", &f.objs[i], 0, 0, "pool of %s %s is unreadable",
				     meta_kind_name(f.objs[i].kind), f.objs[i].name);
		}
		lineage_orphans(&f);
		backup_dir_orphans(&f, s->cfg.backup_dir);
		for (size_t i = 0; i < f.nobj; i++) {
			int seen = f.objs[i].kind != META_BACKUP || strcmp(f.objs[i].location, s->cfg.backup_dir) == 0;

			for (size_t j = 0; j < i && !seen; j++)
				seen = f.objs[j].kind == META_BACKUP && strcmp(f.objs[j].location, f.objs[i].location) == 0;
			if (!seen)
				backup_dir_orphans(&f, f.objs[i].location);
		}
		if (f.nseen) /* qsort(NULL, 0, ...) is undefined (found by fuzz_cli) */
			qsort(f.seen, f.nseen, sizeof(*f.seen), seen_cmp);
		for (size_t i = 0; i < f.nobj; i++)
			(void)object_chunks(&f, &f.objs[i], 0);
	}
	summary(&f);
	rc = (int)(f.problems > f.repaired ? f.problems - f.repaired : 0);
out:
	free(f.objs);
	free(f.lins);
	free(f.pools);
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
		(unsigned long long)(index * f->cs), (unsigned long long)((index + 1) * f->cs - 1), errword(err));
}

int store_fsck(struct store *s, const struct store_caller *c, const char *name, FILE *out)
{
	static const enum meta_kind kinds[] = { META_VOLUME, META_SNAPSHOT, META_IMAGE, META_BACKUP };
	struct verify_ctx f = { out, name, s->cfg.chunk_size };
	struct meta_object o;
	struct kms_dk *dk = NULL;
	int rc = -ENOENT;

	for (size_t i = 0; i < 4 && rc == -ENOENT; i++)
		rc = meta_object_lookup(s->meta, kinds[i], c->project, name, &o);
	if (rc) {
		store_seterr(s, "fsck: no volume, snapshot, image or backup named '%s' in project %s", name,
			     c->project);
		return rc;
	}
	rc = store_lineage_unwrap(s, c, o.project, o.lineage, &dk);
	if (rc)
		return rc;
	if (o.kind == META_BACKUP) {
		struct backup_info bi;

		if (backup_info_load(o.location, o.id, &bi) == 0)
			f.cs = bi.chunk_size;
		rc = backup_verify(o.location, o.id, dk ? kms_dk_bytes(dk) : NULL, bad_cb, &f);
	} else {
		struct engine_map_stats st;

		if (engine_map_stats(s->eng, o.lineage, o.id, &st) == 0)
			f.cs = st.chunk_size;
		rc = engine_map_verify(s->eng, o.lineage, o.id, dk, bad_cb, &f);
	}
	kms_dk_destroy(dk);
	if (rc < 0)
		store_seterr(s, "fsck %s: %s", name, strerror(-rc));
	return rc;
}
