// SPDX-License-Identifier: MIT
/*
 * store_fsck_scan.c - evfsctl fsck, structure: the catalog's objects
 * against the files of the store, and the files no object refers to.
 *
 *   objects   every volume, snapshot and image has its map in the pool of
 *             its lineage; every backup has its file, of its lineage, with
 *             its lineage's wrapped data key in the catalog and, if
 *             incremental, the backup it builds on.
 *   orphans   a map, pool, lineage row or backup file no catalog object
 *             refers to.  Commands write data first and the catalog last,
 *             so an interrupted one leaves exactly these; --repair removes
 *             them (never anything a catalog object refers to).
 *
 * A pool is checked through the engine (engine_pool_check: structure,
 * refcounts, leaked slots), whose findings go to fsck_issue_cb (store_fsck.c);
 * its leaked slots are reclaimed only when every map of its lineage is
 * present and sound.  Every finding goes through fsck_emit (store_fsck.c);
 * nothing is written without --repair.
 */
#include "store_fsck_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup.h"

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

/* ============================ pool checks ============================== */

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
/* before: f->problems when the pool's check began (its findings are moot
 * once the whole orphan pool is removed). */
static void pool_orphans(struct fsck *f, const char *lineage, int whole_orphan, unsigned before)
{
	struct store *s = f->s;
	struct maplist m = { f, lineage, NULL, NULL, 0, 0 };
	int rc = engine_map_list(s->eng, lineage, maplist_cb, &m), left = 0;

	/* A pool whose creation was cut short has no maps/ yet: if nothing
	 * uses it, it is an orphan like any other (removed whole below). */
	if (rc == -ENOENT && whole_orphan)
		rc = 0;

	for (size_t i = 0; rc >= 0 && i < m.n; i++) {
		const struct meta_object *o = fsck_obj_by_id(f, m.ids[i]);

		if (m.tmp[i]) {
			fsck_emit(f, "problem", "tmp_map", NULL, 0, 0, "pool %s: temporary map .tmp-%s.map left by an "
				  "interrupted snapshot/clone%s", lineage, m.ids[i],
				  f->o->repair ? "" : "; --repair removes it");
			if (f->o->repair && ((rc = engine_map_tmp_remove(s->eng, lineage, m.ids[i])) == 0 ||
					     rc == -ENOENT))
				fsck_emit(f, "repaired", "tmp_map", NULL, 0, 0, "removed .tmp-%s.map from pool %s",
					  m.ids[i], lineage);
			rc = 0;
			continue;
		}
		if (o && o->kind != META_BACKUP && strcmp(o->lineage, lineage) == 0)
			continue;
		if (o) {
			fsck_emit(f, "problem", "misplaced_map", o, 0, 0, "map %s in pool %s belongs to %s %s of "
				  "lineage %s; not removed", m.ids[i], lineage, meta_kind_name(o->kind), o->name,
				  o->lineage);
			left++;
			continue;
		}
		fsck_emit(f, "problem", "orphan_map", NULL, 0, 0, "pool %s: map %s has no catalog object (left by an "
			  "interrupted command)%s", lineage, m.ids[i], f->o->repair ? "" : "; --repair removes it");
		if (!f->o->repair) {
			left++;
			continue;
		}
		rc = engine_map_delete(s->eng, lineage, m.ids[i]);
		if (rc == 0)
			fsck_emit(f, "repaired", "orphan_map", NULL, 0, 0, "removed orphan map %s from pool %s (its "
				  "unshared chunks freed)", m.ids[i], lineage);
		else
			fsck_emit(f, "problem", "repair_failed", NULL, 0, 0, "orphan map %s of pool %s not removed: "
				  "%s%s", m.ids[i], lineage, evfs_strerror(rc),
				  rc == -EBUSY ? " (open in the mount; close it and retry)" : "");
		left += rc != 0;
		rc = 0;
	}
	if (rc < 0)
		fsck_emit(f, "problem", "pool", NULL, 0, 0, "pool %s: cannot list its maps: %s", lineage,
			  evfs_strerror(rc));
	if (whole_orphan && rc >= 0) {
		fsck_emit(f, "problem", "orphan_pool", NULL, 0, 0, "pool %s belongs to no volume, snapshot or image "
			  "(left by an interrupted command)%s", lineage, f->o->repair ? "" : "; --repair removes it");
		if (f->o->repair && !left) {
			rc = engine_pool_delete(s->eng, lineage);
			if (rc == 0) {
				/* What was wrong inside it (files of a creation cut
				 * short) went with it. */
				f->repaired += f->problems - 1 - before;
				fsck_emit(f, "repaired", "orphan_pool", NULL, 0, 0, "removed orphan pool %s", lineage);
			}
			else
				fsck_emit(f, "problem", "repair_failed", NULL, 0, 0, "orphan pool %s not removed: %s",
					  lineage, evfs_strerror(rc));
		}
	}
	free(m.ids);
	free(m.tmp);
}

/* Structure, counts, orphans and leaks of one pool. */
void fsck_pool(struct fsck *f, const char *lineage)
{
	struct store *s = f->s;
	struct engine_pool_report r;
	int backups, users = lineage_users(f, lineage, &backups), rc, missing = 0;
	unsigned damaged = f->damaged_maps, before = f->problems;

	f->pool = lineage;
	f->cs = s->cfg.chunk_size;
	f->rolled_back = 0;
	rc = engine_pool_check(s->eng, lineage, fsck_issue_cb, f, &r);
	if (rc >= 0 && f->rolled_back && f->o->repair) {
		rc = engine_pool_accept(s->eng, lineage);
		if (rc) {
			fsck_emit(f, "problem", "repair_failed", NULL, 0, 0, "pool %s: its older state not accepted: %s",
				  lineage, evfs_strerror(rc));
			f->pool = NULL;
			return;
		}
		fsck_emit(f, "repaired", "rolled_back", NULL, 0, 0, "pool %s: its files are accepted as they are (the "
			  "catalog's freshness record now matches them)", lineage);
		before = f->problems;
		f->rolled_back = 0;
		rc = engine_pool_check(s->eng, lineage, fsck_issue_cb, f, &r);
	}
	if (rc >= 0 && f->rolled_back) {       /* reported; its maps cannot be looked at */
		if (!f->refused)
			f->refused = calloc(f->npool ? f->npool : 1, 1);
		for (size_t i = 0; f->refused && i < f->npool; i++)
			if (strcmp(f->pools[i], lineage) == 0)
				f->refused[i] = 1;
		f->pool = NULL;
		return;
	}
	if (rc < 0) {
		fsck_emit(f, "problem", "pool", NULL, 0, 0, "pool %s cannot be checked: %s", lineage, evfs_strerror(rc));
		f->pool = NULL;
		return;
	}
	if (r.chunk_size)
		f->cs = r.chunk_size;
	if (r.format == 1)   /* not a problem: what the pool's format gives (R32) */
		fsck_emit(f, "note", "no_freshness", NULL, 0, 0, "pool %s is in format 1: no protection against "
			  "rollback (a chunk with its tag, a map or the whole pool put back from an older copy reads "
			  "as valid); evfsctl upgrade converts it to format 2", lineage);
	pool_orphans(f, lineage, users == 0, before);
	for (size_t i = 0; i < f->nobj; i++)
		missing += f->objs[i].kind != META_BACKUP && strcmp(f->objs[i].lineage, lineage) == 0 &&
			   !fsck_map_present(s, &f->objs[i]);
	if (r.leaked && users > 0) {
		int hold = missing || f->damaged_maps != damaged;

		fsck_emit(f, "warning", "leaked", NULL, 0, 0, "pool %s: %llu slot(s) (%llu bytes) hold data no map "
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
				fsck_emit(f, "problem", "repair_failed", NULL, 0, 0, "pool %s: leaked slots not "
					  "reclaimed: %s", lineage, evfs_strerror(rc));
			else
				fsck_emit(f, "repaired", "leaked", NULL, 0, 0, "pool %s: punched %llu leaked slot(s) "
					  "(%llu bytes given back)", lineage, (unsigned long long)n,
					  (unsigned long long)(n * r.chunk_size));
		}
	}
	f->pool = NULL;
}

/* ============================ catalog checks =========================== */

void fsck_object_files(struct fsck *f, const struct meta_object *o)
{
	struct store *s = f->s;
	const struct meta_lineage *l = fsck_lin_by_id(f, o->lineage);
	struct backup_info bi;
	int rc;

	if (!l)
		fsck_emit(f, "problem", "lineage_missing", o, 0, 0, "%s %s: its lineage %s (with the wrapped data key) "
			  "is missing from the catalog; its data cannot be decrypted", meta_kind_name(o->kind), o->name,
			  o->lineage);
	if (o->kind != META_BACKUP) {
		if (fsck_pool_refused(f, o->lineage))
			return;                      /* the pool's rollback is reported */
		if (!fsck_map_present(s, o))
			fsck_emit(f, "problem", "map_missing", o, 0, 0, "%s %s: its map %s in pool %s is "
				  "missing: its data is lost; restore it from a backup (evfsctl volume create "
				  "--from-backup) or delete it", meta_kind_name(o->kind), o->name, o->id, o->lineage);
		return;
	}
	rc = backup_info_load(o->location, o->id, &bi);
	if (rc) {
		fsck_emit(f, "problem", "backup_file", o, 0, 0, "backup %s: its file %s/%s.evb is %s; take a new "
			  "backup and delete this one", o->name, o->location, o->id,
			  rc == -ENOENT ? "missing" : "damaged or unreadable");
		return;
	}
	{
		uint8_t want[32];

		if (meta_fresh_backup_get(s->meta, o->id, want) == 0 && memcmp(want, bi.sum, sizeof(want)) != 0)
			fsck_emit(f, "problem", "backup_rolled_back", o, 0, 0, "backup %s: its file %s/%s.evb is not the "
				  "one the catalog recorded (an older copy or another backup's file was put back); put "
				  "the right file back, or delete the backup", o->name, o->location, o->id);
	}
	{
		char hex[META_LINEAGE_LEN + 1];

		engine_lineage_format(bi.lineage, hex);
		if (strcmp(hex, o->lineage) != 0)
			fsck_emit(f, "problem", "backup_file", o, 0, 0, "backup %s: its file belongs to lineage %s, "
				  "the catalog says %s", o->name, hex, o->lineage);
	}
	if (o->encrypted && (!l || l->wrapped_len == 0) && bi.wrapped_len == 0)
		fsck_emit(f, "problem", "wrapped_key_missing", o, 0, 0, "backup %s: no wrapped data key in the catalog "
			  "or the file: it cannot be restored", o->name);
	if (bi.parent_id[0]) {
		const struct meta_object *p = fsck_obj_by_id(f, bi.parent_id);
		struct backup_info pi;

		if (!p || p->kind != META_BACKUP)
			fsck_emit(f, "problem", "chain_parent", o, 0, 0, "backup %s: the backup %s it builds on is not "
				  "in the catalog", o->name, bi.parent_id);
		if (backup_info_load(p ? p->location : o->location, bi.parent_id, &pi) < 0)
			fsck_emit(f, "problem", "chain_parent", o, 0, 0, "backup %s: the file of the backup %s it "
				  "builds on is missing or damaged; it cannot be restored", o->name, bi.parent_id);
	}
}

/* Backup files no catalog object refers to, and interrupted writes. */
void fsck_backup_dir_orphans(struct fsck *f, const char *dir)
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
		o = fsck_obj_by_id(f, id);
		if (!tmp && o && o->kind == META_BACKUP)
			continue;
		if (!tmp && backup_info_load(dir, id, &bi) == 0) {
			engine_lineage_format(bi.lineage, hex);
			if (!fsck_lin_by_id(f, hex) && !fsck_pool_exists(f, hex)) {
				fsck_emit(f, "warning", "foreign_backup", NULL, 0, 0, "%s: a backup file of lineage "
					  "%s, unknown to this store (another store's?); left alone", path, hex);
				continue;
			}
		}
		fsck_emit(f, "problem", tmp ? "tmp_backup" : "orphan_backup", NULL, 0, 0, "%s: %s%s", path,
			  tmp ? "partial backup file left by an interrupted backup create/delete"
			 : "backup file with no catalog object (left by an interrupted backup create)",
			  f->o->repair ? "" : "; --repair removes it");
		if (f->o->repair) {
			if (unlink(path) == 0)
				fsck_emit(f, "repaired", tmp ? "tmp_backup" : "orphan_backup", NULL, 0, 0, "removed %s",
					  path);
			else
				fsck_emit(f, "problem", "repair_failed", NULL, 0, 0, "%s not removed: %s", path,
					  strerror(errno));
		}
	}
	closedir(d);
}

/* Lineage rows no object refers to (an interrupted create). */
void fsck_lineage_orphans(struct fsck *f)
{
	for (size_t i = 0; i < f->nlin; i++) {
		const char *id = f->lins[i].id;
		int b, rc;

		if (lineage_users(f, id, &b) || b || pool_dir_present(f->s, id))
			continue;
		fsck_emit(f, "problem", "orphan_lineage", NULL, 0, 0, "lineage %s: catalog row (wrapped data key) used "
			  "by no object (left by an interrupted command)%s", id,
			  f->o->repair ? "" : "; --repair removes it");
		if (!f->o->repair)
			continue;
		rc = meta_lineage_delete(f->s->meta, id);
		if (rc == 0)
			fsck_emit(f, "repaired", "orphan_lineage", NULL, 0, 0, "removed lineage row %s", id);
		else
			fsck_emit(f, "problem", "repair_failed", NULL, 0, 0, "lineage row %s not removed: %s", id,
				  evfs_strerror(rc));
	}
}
