// SPDX-License-Identifier: MIT
/*
 * store_fsck_report.c - how fsck reports: one finding as a text line or a
 * JSON item (fsck_emit), the engine's findings turned into the store's
 * words (fsck_issue_cb), the chunks already reported, and the look-ups of
 * the collected catalog both the scan (store_fsck_scan.c) and the driver
 * (store_fsck.c) need.  The bottom of fsck's file chain:
 * store_fsck_report <- store_fsck_scan <- store_fsck.
 */
#include "store_fsck_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"

/* ============================== output ================================= */

/* One finding: a text line, or one element of the JSON "items" array. */
void fsck_emit(struct fsck *f, const char *sev, const char *code, const struct meta_object *o, int range,
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
		json_str(f->out, o->name);
		fprintf(f->out, ",\"id\":\"%s\",\"project\":", o->id);
		json_str(f->out, o->project);
	}
	if (f->pool)
		fprintf(f->out, ",\"lineage\":\"%s\"", f->pool);
	if (range)
		fprintf(f->out, ",\"chunk\":%llu,\"offset\":%llu,\"length\":%u", (unsigned long long)index,
			(unsigned long long)(index * f->cs), (unsigned)f->cs);
	fputs(",\"message\":", f->out);
	json_str(f->out, msg);
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

const char *fsck_errword(int err)
{
	return err == -EBADMSG ? "authentication failed (tampered, moved or damaged)" :
	       err == -EUCLEAN ? "missing or short on disk" : evfs_strerror(err);
}

const struct meta_object *fsck_obj_by_id(const struct fsck *f, const char *id)
{
	for (size_t i = 0; i < f->nobj; i++)
		if (strcmp(f->objs[i].id, id) == 0)
			return &f->objs[i];
	return NULL;
}

const struct meta_lineage *fsck_lin_by_id(const struct fsck *f, const char *id)
{
	for (size_t i = 0; i < f->nlin; i++)
		if (strcmp(f->lins[i].id, id) == 0)
			return &f->lins[i];
	return NULL;
}

int fsck_pool_exists(const struct fsck *f, const char *lineage)
{
	for (size_t i = 0; i < f->npool; i++)
		if (strcmp(f->pools[i], lineage) == 0)
			return 1;
	return 0;
}

int fsck_pool_refused(const struct fsck *f, const char *lineage)
{
	for (size_t i = 0; f->refused && i < f->npool; i++)
		if (strcmp(f->pools[i], lineage) == 0)
			return f->refused[i];
	return 0;
}

int fsck_map_present(struct store *s, const struct meta_object *o)
{
	return engine_map_exists(s->eng, o->lineage, o->id);
}

/* =========================== engine findings =========================== */

void fsck_issue_cb(void *ctx, const struct engine_fsck_issue *is)
{
	struct fsck *f = ctx;
	const struct meta_object *o = is->map ? fsck_obj_by_id(f, is->map) : NULL;
	char who[256];

	if (is->chunk_size)
		f->cs = is->chunk_size;

	if (is->what == ENGINE_FSCK_CHUNK_BAD) {
		f->bad_chunks++;
		if (f->bad && f->nbad == f->capbad) {
			uint64_t *n = realloc(f->bad, f->capbad * 2 * sizeof(*n));

			if (n) {
				f->bad = n;
				f->capbad *= 2;
			}
		}
		if (f->bad && f->nbad < f->capbad)
			f->bad[f->nbad++] = is->index;
		else if (f->bad)   /* never a silent skip of a chunk the user asked to quarantine */
			fsck_emit(f, "problem", "repair_failed", f->cur, 1, is->index, "%s %s: chunk %llu not "
				  "quarantined: out of memory; run the command again", meta_kind_name(f->cur->kind),
				  f->cur->name, (unsigned long long)is->index);
		if (seen_has(f, f->cur, is->index))
			return;
		fsck_emit(f, "problem", "bad_chunk", f->cur, 1, is->index, "%s %s: chunk %llu (bytes %llu-%llu): %s",
			  meta_kind_name(f->cur->kind), f->cur->name, (unsigned long long)is->index,
			  (unsigned long long)(is->index * f->cs), (unsigned long long)((is->index + 1) * f->cs - 1),
			  fsck_errword(is->err));
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
		fsck_emit(f, "problem", "map_entry", o, o != NULL, is->index,
			  "%s: chunk %llu (bytes %llu-%llu) -> slot %llu: %s%s", who, (unsigned long long)is->index,
			  (unsigned long long)(is->index * f->cs), (unsigned long long)((is->index + 1) * f->cs - 1),
			  (unsigned long long)is->slot, engine_fsck_what_str(is->what),
			  o && o->kind != META_BACKUP ? "; fsck --repair --quarantine NAME turns it into zeros" : "");
		break;
	case ENGINE_FSCK_SLOT_FREE:
	case ENGINE_FSCK_REFCOUNT:
		fsck_emit(f, "problem", "refcount", NULL, 0, 0, "%s: slot %llu: %s (memory says %llu); remount to "
			  "rebuild the counts", who, (unsigned long long)is->slot, engine_fsck_what_str(is->what),
			  (unsigned long long)is->count);
		break;
	case ENGINE_FSCK_TMP_MAP:
		break;                               /* handled with the map list */
	case ENGINE_FSCK_ROLLED_BACK:
		f->rolled_back = 1;
		fsck_emit(f, "problem", "rolled_back", NULL, 0, 0, "%s: %s; restore its latest copy, or accept this "
			  "older state with --repair (what was written since is lost)", who,
			  engine_fsck_what_str(is->what));
		break;
	default:
		fsck_emit(f, "problem", "pool", o, 0, 0, "%s: %s%s%s", who, engine_fsck_what_str(is->what),
			  is->err ? ": " : "", is->err ? evfs_strerror(is->err) : "");
	}
}

void fsck_seen_sort(struct fsck *f)
{
	if (f->nseen)        /* qsort(NULL, 0, ...) is undefined (found by fuzz_cli) */
		qsort(f->seen, f->nseen, sizeof(*f->seen), seen_cmp);
}
