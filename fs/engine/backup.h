/* SPDX-License-Identifier: MIT */
/*
 * backup.h - backup files: independent, self-contained copies of a volume
 * in the backup directory (R25).
 *
 * A backup copies the volume's chunk *ciphertext* and tags as they are (no
 * key needed to take one) together with the lineage id and the wrapped data
 * key, so it stays readable after the volume, its snapshots and its pool are
 * gone.  An incremental backup stores only the chunks whose nonce/tag differ
 * from the previous backup of the chain and refers to older files for the
 * rest.  Format: see backup.c and docs/format.md.
 */
#ifndef EVFS_BACKUP_H
#define EVFS_BACKUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunk.h"
#include "engine.h"

#define BACKUP_WUR __attribute__((warn_unused_result))
#define BACKUP_ID_LEN 36u
#define BACKUP_WRAPPED_MAX 128u

struct backup_info {
	char id[BACKUP_ID_LEN + 1];          /* this backup's id (UUID text) */
	char parent_id[BACKUP_ID_LEN + 1];   /* previous backup of the chain, "" for a full one */
	uint8_t lineage[CHUNK_LINEAGE_BYTES];
	uint32_t chunk_size;
	uint64_t size;                       /* volume size in bytes */
	int encrypted;
	char key_id[40];                     /* "" if not encrypted */
	uint8_t wrapped[BACKUP_WRAPPED_MAX]; /* wrapped data key */
	uint32_t wrapped_len;
	int64_t created;
	uint64_t chunks;                     /* chunks present (index entries) */
	uint64_t own_chunks;                 /* chunk records stored in this file */
	uint8_t sum[32];                     /* backup_info_load: the header's checksum, which
						binds the header and the index (the records are
						bound by the index's nonces and tags) */
};

/* Progress callback: done/total in bytes; may be NULL. */
typedef void (*backup_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Write the backup of open volume `v` (attached or not: ciphertext is
 * copied) to dir/<info->id>.evb.  info supplies id, parent_id, key_id,
 * wrapped, encrypted, created; lineage, chunk_size and size are taken from
 * v.  If parent_id is set, dir/<parent_id>.evb must exist and belong to the
 * same lineage: chunks identical to the parent chain (same nonce and tag at
 * the same index) are referenced, not copied.  Written to a temporary name,
 * fsynced and renamed: a crash leaves no partial backup.  On success
 * info->chunks/own_chunks are filled.  The caller freezes nothing: the
 * chunk-level reads are consistent per chunk; take the backup from a
 * snapshot for a point-in-time copy. */
int backup_create(struct vol *v, const char *dir, struct backup_info *info, backup_progress_fn progress,
		  void *pctx) BACKUP_WUR;

/* Replace the wrapped data key in the header of dir/<id>.evb (a key
 * rewrap: the same key under a newer KMS key version).  One 4 KiB header
 * write in place, then fdatasync. */
int backup_set_wrapped(const char *dir, const char *id, const uint8_t *wrapped, uint32_t len) BACKUP_WUR;

/* Read the header of dir/<id>.evb (checks magic, version, checksum). */
int backup_info_load(const char *dir, const char *id, struct backup_info *info) BACKUP_WUR;

/* An open backup for reading plaintext (the FUSE file backups/NAME and
 * restores).  dk: the lineage's data-key handle, NULL if not encrypted
 * (-ENOKEY if one is needed); the reader takes its own reference and drops
 * it on close. */
struct kms_dk;
struct backup_reader;
int backup_reader_open(struct backup_reader **out, const char *dir, const char *id,
		       const struct kms_dk *dk) BACKUP_WUR;
void backup_reader_close(struct backup_reader *r);
uint64_t backup_reader_size(const struct backup_reader *r);
/* Plaintext bytes [off, off+len) (zeros for absent chunks); -EBADMSG if a
 * chunk fails authentication (buffer zeroed), short at the end. Thread-safe. */
ssize_t backup_reader_read(struct backup_reader *r, void *buf, size_t len, uint64_t off) BACKUP_WUR;
/* Call cb for every present chunk: index and plaintext (chunk_size bytes).
 * Used by restore to write only the chunks that exist. */
typedef int (*backup_chunk_cb)(void *ctx, uint64_t index, const uint8_t *plain, uint32_t len);
int backup_reader_foreach(struct backup_reader *r, backup_chunk_cb cb, void *ctx) BACKUP_WUR;
/* Verify every chunk; returns number of bad chunks or negative errno. */
int backup_verify(const char *dir, const char *id, const struct kms_dk *dk, engine_bad_cb cb, void *ctx) BACKUP_WUR;

/* Delete dir/<id>.evb keeping every other backup of the chain restorable:
 * chunk records that later backups (children listed in `children`, ids of
 * every backup whose chain includes id) refer to are first copied into the
 * oldest child, the others are repointed to it; each rewritten file is
 * replaced atomically, and the oldest child's header takes id's parent as
 * its own parent_id (the caller updates the catalog the same way).
 * children are given oldest first. */
int backup_delete(const char *dir, const char *id, const char *const *children, size_t nchildren) BACKUP_WUR;

#endif
