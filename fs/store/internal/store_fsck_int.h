/* SPDX-License-Identifier: MIT */
/* store_fsck_int.h - the state of one evfsctl fsck run, shared by store_fsck.c
 * (driver, findings, chunks) and store_fsck_scan.c (objects and orphans);
 * private to those two files. */
#ifndef EVFS_STORE_FSCK_INT_H
#define EVFS_STORE_FSCK_INT_H

#include <stdint.h>
#include <stdio.h>

#include "engine_fsck.h"
#include "store_int.h"

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
	unsigned char *refused;            /* per pool (lazily allocated): refused as rolled back; its
					      objects' maps are not looked for */
	const struct meta_object *cur;     /* object whose chunks are verified */
	struct evfs_err why;               /* why the last object's chunks were not checked */
	const char *pool;                  /* pool being checked */
	uint32_t cs;
	struct seen { size_t obj; uint64_t index; } *seen;   /* chunks with a broken map entry */
	size_t nseen, capseen;
	uint64_t *bad;                     /* bad chunk indexes of cur (quarantine) */
	size_t nbad, capbad;
	int items;
	unsigned problems, repaired, warnings, checked, unchecked, bad_chunks, damaged_maps;
	int rolled_back;                /* the pool being checked was refused as rolled back */
	uint64_t leaked, leaked_bytes;
};

/* store_fsck_report.c */
/* One finding: a text line, or one element of the JSON "items" array;
 * counted by severity ("problem", "repaired", "warning", "unchecked"). */
void fsck_emit(struct fsck *f, const char *sev, const char *code, const struct meta_object *o, int range,
	       uint64_t index, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* The engine's findings about a pool, a map or a chunk, as fsck findings. */
void fsck_issue_cb(void *ctx, const struct engine_fsck_issue *is);
const struct meta_object *fsck_obj_by_id(const struct fsck *f, const char *id);
const struct meta_lineage *fsck_lin_by_id(const struct fsck *f, const char *id);
int fsck_pool_exists(const struct fsck *f, const char *lineage);
/* Was the pool refused as rolled back (reported once, its maps unseen)? */
int fsck_pool_refused(const struct fsck *f, const char *lineage);
/* Has object o (not a backup) its map file? */
int fsck_map_present(struct store *s, const struct meta_object *o);

/* Words for a chunk's read error; sort the reported chunks for seen look-ups. */
const char *fsck_errword(int err);
void fsck_seen_sort(struct fsck *f);

/* store_fsck_scan.c */
/* Structure, counts, orphans and leaks of one pool. */
void fsck_pool(struct fsck *f, const char *lineage);
/* The files of one catalog object: map or backup file, lineage row, chain. */
void fsck_object_files(struct fsck *f, const struct meta_object *o);
/* Backup files of dir no catalog object refers to, and interrupted writes. */
void fsck_backup_dir_orphans(struct fsck *f, const char *dir);
/* Lineage rows no object refers to (an interrupted create). */
void fsck_lineage_orphans(struct fsck *f);

#endif
