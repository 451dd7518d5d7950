// SPDX-License-Identifier: MIT
/*
 * bfile.c - one backup file as a format: open it, check its header and
 * index against the file's size and checksums, and the small helpers
 * (whole-buffer I/O, backup ids, paths) the writer (backup.c) and the
 * reader (backup_read.c) share.  The layout is described in backup.c and
 * docs/format.md.  The bottom of the backup code's chain:
 * bfile <- backup_read <- backup.
 */
#include "backup_int.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

static const uint8_t zero_id[BK_UUID_BYTES];


/* ============================= helpers ================================= */

/* Whole-buffer pread/pwrite: a short read means a damaged (truncated) file,
 * a write that makes no progress a full disk. */
int bfile_io_all(int fd, void *buf, size_t len, uint64_t off, int wr)
{
	while (len) {
		ssize_t n = wr ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : wr ? -ENOSPC : -EUCLEAN;
		buf = (uint8_t *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

void bfile_uuid_format(const uint8_t in[static BK_UUID_BYTES], char out[static BACKUP_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t j = 0;

	for (size_t i = 0; i < BK_UUID_BYTES; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[in[i] >> 4];
		out[j++] = hex[in[i] & 15];
	}
	out[j] = '\0';
}

int bfile_id_is_zero(const uint8_t *id)
{
	return !memcmp(id, zero_id, BK_UUID_BYTES);
}

/* Canonical lowercase UUID text -> 16 bytes; the nil UUID is refused. */
int bfile_uuid_parse(const char *s, uint8_t u[static BK_UUID_BYTES])
{
	char back[BACKUP_ID_LEN + 1];

	if (!s || strlen(s) != BACKUP_ID_LEN ||
	    sscanf(s, "%2hhx%2hhx%2hhx%2hhx-%2hhx%2hhx-%2hhx%2hhx-%2hhx%2hhx-%2hhx%2hhx%2hhx%2hhx%2hhx%2hhx", &u[0],
		   &u[1], &u[2], &u[3], &u[4], &u[5], &u[6], &u[7], &u[8], &u[9], &u[10], &u[11], &u[12], &u[13],
		   &u[14], &u[15]) != BK_UUID_BYTES)
		return -EINVAL;
	bfile_uuid_format(u, back);
	return strcmp(back, s) || bfile_id_is_zero(u) ? -EINVAL : 0;
}

int bfile_path(char out[static PATH_MAX], const char *dir, const char *prefix, const char *id)
{
	int n = snprintf(out, PATH_MAX, "%s/%s%s.evb", dir, prefix, id);

	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

void bfile_close(struct bfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->ent);
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

int bfile_same_lineage(const struct bfile *a, const struct bfile *b)
{
	return !memcmp(a->h.lineage, b->h.lineage, CHUNK_LINEAGE_BYTES) && a->h.chunk_size == b->h.chunk_size &&
	       a->h.encrypted == b->h.encrypted;
}

/* ========================= header and index ============================ */

/* Little-endian <-> host, in place (the same swap both ways). */
void bfile_header_le(struct bk_header *h)
{
	uint32_t *w[] = { &h->version, &h->chunk_size, &h->encrypted, &h->wrapped_len };
	uint64_t *d[] = { &h->size, (uint64_t *)&h->created, &h->n_entries, &h->n_records, &h->index_off, &h->data_off };

	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		*w[i] = htole32(*w[i]);
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++)
		*d[i] = htole64(*d[i]);
}

void bfile_entries_le(struct entry *e, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		e[i].index = htole64(e[i].index);
		e[i].record = htole64(e[i].record);
	}
}

/* Every count and offset against the file size (so no later read or
 * allocation can go out of bounds): -EUCLEAN if inconsistent. */
static int hdr_check(const struct bk_header *h, uint64_t fsize)
{
	uint64_t cs = h->chunk_size, es = sizeof(struct entry);

	if (memcmp(h->magic, BK_MAGIC, 8) || h->version != BK_VERSION || !chunk_size_valid(cs) ||
	    h->encrypted > 1 || h->wrapped_len > BACKUP_WRAPPED_MAX || !memchr(h->key_id, 0, sizeof(h->key_id)) ||
	    h->size > UINT64_MAX - CHUNK_MAX_BYTES || h->n_entries > chunk_count(h->size, (uint32_t)cs) ||
	    h->data_off != BK_HDR_BYTES || h->n_records > fsize / cs || h->n_entries > fsize / es ||
	    h->index_off != h->data_off + h->n_records * cs || h->index_off > fsize ||
	    fsize - h->index_off != h->n_entries * es || bfile_id_is_zero(h->id))
		return -EUCLEAN;
	return 0;
}

/* Read, checksum and check the index: sorted, in range, records present. */
static int index_load(struct bfile *f)
{
	uint64_t n = f->h.n_entries, nchunks = chunk_count(f->h.size, f->h.chunk_size);
	uint8_t sum[BK_SUM_BYTES];
	int err;

	f->ent = malloc(n ? (size_t)n * sizeof(*f->ent) : 1);
	if (!f->ent)
		return -ENOMEM;
	f->cap = (size_t)n;
	err = bfile_io_all(f->fd, f->ent, (size_t)n * sizeof(*f->ent), f->h.index_off, 0);
	if (err)
		return err;
	crypto_generichash(sum, sizeof(sum), (const uint8_t *)f->ent, (size_t)n * sizeof(*f->ent), NULL, 0);
	if (sodium_memcmp(sum, f->h.isum, sizeof(sum)) != 0)
		return -EUCLEAN;
	bfile_entries_le(f->ent, n);
	for (uint64_t i = 0; i < n; i++) {
		struct entry *e = &f->ent[i];

		if (!memcmp(e->holder, f->h.id, BK_UUID_BYTES))
			memset(e->holder, 0, BK_UUID_BYTES);
		if (e->index >= nchunks || (i && e->index <= e[-1].index) ||
		    (bfile_id_is_zero(e->holder) && e->record >= f->h.n_records))
			return -EUCLEAN;
	}
	return 0;
}

/* Open dir/<id>.evb and check its header (and index if asked). */
int bfile_open(struct bfile *f, const char *dir, const char *id, int with_index)
{
	uint8_t raw[BK_HDR_BYTES], want[BK_UUID_BYTES], sum[BK_SUM_BYTES];
	char path[PATH_MAX];
	struct stat sb;
	int err;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	if ((err = bfile_uuid_parse(id, want)) || (err = bfile_path(path, dir, "", id)))
		return err;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	if (fstat(f->fd, &sb) < 0)
		err = -errno;
	else if (sb.st_size < (off_t)BK_HDR_BYTES)
		err = -EUCLEAN;
	if (!err)
		err = bfile_io_all(f->fd, raw, sizeof(raw), 0, 0);
	if (!err) {
		crypto_generichash(sum, sizeof(sum), raw, offsetof(struct bk_header, sum), NULL, 0);
		memcpy(&f->h, raw, sizeof(f->h));
		bfile_header_le(&f->h);
		if (sodium_memcmp(sum, f->h.sum, sizeof(sum)) != 0 || hdr_check(&f->h, (uint64_t)sb.st_size) ||
		    memcmp(f->h.id, want, BK_UUID_BYTES) != 0)       /* renamed or misplaced file */
			err = -EUCLEAN;
	}
	if (!err && with_index)
		err = index_load(f);
	if (err)
		bfile_close(f);
	return err;
}

