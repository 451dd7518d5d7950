/* SPDX-License-Identifier: MIT */
/*
 * backup_int.h - the backup file format as both halves of the backup code
 * see it (private to bfile.c, backup_read.c and backup.c): the on-disk header and
 * index entry, an open backup file, an open reader, and the helpers each
 * half lends the other.  Format: bfile.c; readers: backup_read.c; writers:
 * backup.c (the chain is one-way: bfile <- backup_read <- backup).
 */
#ifndef EVFS_BACKUP_INT_H
#define EVFS_BACKUP_INT_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "backup.h"

#define BK_MAGIC "EVFSBAK1"
#define BK_VERSION 1u
#define BK_HDR_BYTES 4096u
#define BK_SUM_BYTES 32u
#define BK_UUID_BYTES 16u
#define BK_BATCH (1024u * 1024u)                /* bytes per buffered write / read */
#define BK_BOUNCE 16u                           /* spare plaintext chunks kept per reader */

/* The header as stored (little-endian), checksummed up to `sum`. */
struct bk_header {
	char magic[8];
	uint32_t version, chunk_size;
	uint8_t lineage[CHUNK_LINEAGE_BYTES];
	uint64_t size;
	uint32_t encrypted, wrapped_len;
	char key_id[40];
	uint8_t wrapped[BACKUP_WRAPPED_MAX];
	int64_t created;
	uint8_t id[BK_UUID_BYTES], parent[BK_UUID_BYTES];
	uint64_t n_entries, n_records, index_off, data_off;
	uint8_t isum[BK_SUM_BYTES];             /* BLAKE2b-256 of the index region */
	uint8_t sum[BK_SUM_BYTES];              /* BLAKE2b-256 of the bytes above */
};
_Static_assert(sizeof(struct bk_header) == 352 && offsetof(struct bk_header, created) == 216 &&
		       offsetof(struct bk_header, n_entries) == 256 && offsetof(struct bk_header, sum) == 320,
	       "backup header layout");

/* An index entry as stored (integers little-endian); host order in memory. */
struct entry {
	uint64_t index;
	uint8_t holder[BK_UUID_BYTES];          /* zero: this file */
	uint64_t record;
	uint8_t nonce[CHUNK_NONCE_BYTES];
	uint8_t mac[CHUNK_TAG_BYTES];
};
_Static_assert(sizeof(struct entry) == 72 && offsetof(struct entry, nonce) == 32, "backup index entry layout");

/* One backup file: header (host order), index if loaded, open fd. */
struct bfile {
	struct bk_header h;
	struct entry *ent;
	size_t cap;
	int fd;
};

struct backup_reader {
	struct bfile f;                          /* immutable after open */
	char *dir;
	struct kms_dk *dk;                       /* a reference; NULL if unencrypted */
	pthread_mutex_t lock;
	struct bfile **hold;                     /* holder files (headers); protected by lock */
	size_t nhold;                            /* protected by lock */
	uint8_t *bounce[BK_BOUNCE];              /* free plaintext chunks; protected by lock */
	size_t nbounce;                          /* protected by lock */
};

/* bfile.c: the format */
/* Whole-buffer pread (wr 0) / pwrite (wr 1): -EUCLEAN on a short read,
 * -ENOSPC on a write that makes no progress. */
int bfile_io_all(int fd, void *buf, size_t len, uint64_t off, int wr);
void bfile_uuid_format(const uint8_t in[static BK_UUID_BYTES], char out[static BACKUP_ID_LEN + 1]);
int bfile_id_is_zero(const uint8_t *id);
/* Same lineage, chunk size and encryption? */
int bfile_same_lineage(const struct bfile *a, const struct bfile *b);
/* Open dir/<id>.evb, check its header (and load and check the index if
 * with_index); f->fd is -1 and nothing is held on failure. */
int bfile_open(struct bfile *f, const char *dir, const char *id, int with_index);
/* Header / entries between host order and the little-endian file order
 * (the same swap both ways). */
void bfile_header_le(struct bk_header *h);
void bfile_entries_le(struct entry *e, uint64_t n);
/* Backup id text <-> bytes (-EINVAL if malformed or zero). */
int bfile_uuid_parse(const char *s, uint8_t u[static BK_UUID_BYTES]);
/* dir/<prefix><id>.evb into out; -ENAMETOOLONG. */
int bfile_path(char out[static PATH_MAX], const char *dir, const char *prefix, const char *id);
void bfile_close(struct bfile *f);

/* backup_read.c: readers (used by backup.c to look at a parent) */
/* backup_reader_open, with nokey: entries and holders only, no key (to
 * look at a parent; nothing is decrypted). */
int backup_reader_open_index(struct backup_reader **out, const char *dir, const char *id, const struct kms_dk *dk,
			     int nokey);
/* The file holding the records of `id` (zero id: r's own file). */
int backup_reader_holder(struct backup_reader *r, const uint8_t *id, const struct bfile **out);

#endif
