// SPDX-License-Identifier: MIT
/*
 * backup_read.c - reading backup files: the plaintext reader (the FUSE file
 * backups/NAME, restores), verify, and header info (R7, R25).
 *
 * A reader opens one backup's header and index (format: backup.c and
 * docs/format.md).  Every entry names the file that really holds its
 * record, so a read never walks the chain: holder files are opened on first
 * use, their headers checked and their lineage compared with the reader's,
 * and kept until close.  Runs of records consecutive in one holder are read
 * with one pread and opened in place; an absent chunk reads as zeros.
 *
 * Secrets and threads: plaintext only lives in the caller's buffer or in
 * guarded buffers wiped after use; a reader holds a reference to the data
 * key handle (kms_dk_ref),
 * read-only, wiped on close.  A reader is shared by threads: data is read
 * with pread only, and its holder table and spare buffers sit under its
 * mutex (never held across I/O other than opening a holder file).  This
 * file does not talk to the KMS or the catalog: callers unwrap keys and
 * record chains.
 */
#include "backup_int.h"

#include "kms/kms.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

/* The file holding the records of `id` (zero: this one); holder files are
 * opened on first use and kept until close. */
int backup_reader_holder(struct backup_reader *r, const uint8_t *id, const struct bfile **out)
{
	char text[BACKUP_ID_LEN + 1];
	struct bfile *g = NULL, **n;
	size_t k;
	int err = 0;

	*out = &r->f;
	if (bfile_id_is_zero(id))
		return 0;
	pthread_mutex_lock(&r->lock);
	for (k = 0; k < r->nhold && memcmp(r->hold[k]->h.id, id, BK_UUID_BYTES); k++)
		;
	if (k == r->nhold) {
		bfile_uuid_format(id, text);
		n = realloc(r->hold, (k + 1) * sizeof(*n));
		r->hold = n ? n : r->hold;
		err = n && (g = calloc(1, sizeof(*g))) ? bfile_open(g, r->dir, text, 0) : -ENOMEM;
		if (!err && !bfile_same_lineage(g, &r->f))
			err = -EUCLEAN;
		if (err && g)
			bfile_close(g);
		if (err)
			free(g);
		else
			r->hold[r->nhold++] = g;
	}
	if (!err)
		*out = r->hold[k];
	pthread_mutex_unlock(&r->lock);
	return err;
}

static uint8_t *bounce_get(struct backup_reader *r)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&r->lock);
	if (r->nbounce)
		b = r->bounce[--r->nbounce];
	pthread_mutex_unlock(&r->lock);
	return b ? b : sodium_malloc(r->f.h.chunk_size);
}

static void bounce_put(struct backup_reader *r, uint8_t *b)
{
	sodium_memzero(b, r->f.h.chunk_size);
	pthread_mutex_lock(&r->lock);
	if (r->nbounce < BK_BOUNCE) {
		r->bounce[r->nbounce++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	sodium_free(b);
}

/* Read and open n entries whose records are consecutive in one holder into
 * dst (one pread).  Each bad chunk is reported to bad() and counted in
 * *nbad when given; returns the first error. */
static int load_run(struct backup_reader *r, const struct entry *e, size_t n, uint8_t *dst, engine_bad_cb bad,
		    void *ctx, int *nbad)
{
	uint32_t cs = r->f.h.chunk_size;
	const struct bfile *h;
	int err = backup_reader_holder(r, e->holder, &h), first = 0;

	if (!err && (e->record >= h->h.n_records || h->h.n_records - e->record < n))
		err = -EUCLEAN;
	if (!err)
		err = bfile_io_all(h->fd, dst, n * cs, h->h.data_off + e->record * cs, 0);
	for (size_t j = 0; j < n; j++) {
		struct chunk_tag t = { .index_le = htole64(e[j].index) };
		int rc = err;

		memcpy(t.nonce, e[j].nonce, CHUNK_NONCE_BYTES);
		memcpy(t.mac, e[j].mac, CHUNK_TAG_BYTES);
		if (!rc)
			rc = r->f.h.encrypted ? chunk_decrypt(r->dk, r->f.h.lineage, e[j].index, dst + j * cs, dst + j * cs, cs, &t)
					       : chunk_plain_open(r->f.h.lineage, e[j].index, dst + j * cs, dst + j * cs, cs, &t);
		if (rc) {
			first = first ? first : rc;
			if (nbad)
				(*nbad)++;
			if (bad)
				bad(ctx, e[j].index, rc);
		}
	}
	return first;
}

/* Entries from e[0] on (at most max) whose records follow each other in
 * one holder; with dense set, also at consecutive chunk indexes. */
static size_t run_len(const struct entry *e, size_t avail, size_t max, int dense)
{
	size_t n = 1;

	while (n < avail && n < max && e[n].record == e[0].record + n &&
	       !memcmp(e[n].holder, e[0].holder, BK_UUID_BYTES) && (!dense || e[n].index == e[0].index + n))
		n++;
	return n;
}

/* Open header + index, and take a copy of the key unless nokey (used to
 * look at a parent: entries and holders only, nothing decrypted). */
int backup_reader_open_index(struct backup_reader **out, const char *dir, const char *id, const struct kms_dk *dk,
			     int nokey)
{
	struct backup_reader *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	err = bfile_open(&r->f, dir, id, 1);
	if (!err && !(r->dir = strdup(dir)))
		err = -ENOMEM;
	if (!err && r->f.h.encrypted && !nokey) {        /* unencrypted: the key is ignored */
		if (!dk)
			err = -ENOKEY;
		else
			r->dk = kms_dk_ref(dk);              /* the reader holds its own reference */
	}
	if (err)
		backup_reader_close(r);
	else
		*out = r;
	return err;
}

int backup_reader_open(struct backup_reader **out, const char *dir, const char *id, const struct kms_dk *dk)
{
	return backup_reader_open_index(out, dir, id, dk, 0);
}

void backup_reader_close(struct backup_reader *r)
{
	if (!r)
		return;
	for (size_t k = 0; k < r->nhold; k++) {
		bfile_close(r->hold[k]);
		free(r->hold[k]);
	}
	for (size_t k = 0; k < r->nbounce; k++)
		sodium_free(r->bounce[k]);
	kms_dk_destroy(r->dk);                   /* drops the reader's reference */
	bfile_close(&r->f);
	pthread_mutex_destroy(&r->lock);
	free(r->hold);
	free(r->dir);
	free(r);
}

uint64_t backup_reader_size(const struct backup_reader *r)
{
	return r->f.h.size;
}

ssize_t backup_reader_read(struct backup_reader *r, void *buf, size_t len, uint64_t off)
{
	uint32_t cs = r->f.h.chunk_size;
	uint64_t size = r->f.h.size, first, count;
	uint8_t *out = buf;
	size_t pos;
	int err = 0;

	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	chunk_range(off, len, cs, &first, &count);
	pos = 0;
	for (size_t hi = (size_t)r->f.h.n_entries; pos < hi;) {    /* first entry with index >= first */
		size_t mid = pos + (hi - pos) / 2;

		if (r->f.ent[mid].index < first)
			pos = mid + 1;
		else
			hi = mid;
	}
	for (uint64_t k = 0; k < count && !err;) {
		const struct entry *e = pos < r->f.h.n_entries ? &r->f.ent[pos] : NULL;
		uint64_t idx = first + k, in_buf;
		uint32_t in_chunk, n;
		size_t run = 1;

		chunk_piece(off, len, cs, idx, &in_chunk, &n, &in_buf);
		if (!e || e->index != idx) {
			memset(out + in_buf, 0, n);          /* absent: zeros */
			k++;
			continue;
		}
		if (n < cs) {
			uint8_t *b = bounce_get(r);

			err = b ? load_run(r, e, 1, b, NULL, NULL, NULL) : -ENOMEM;
			if (!err)
				memcpy(out + in_buf, b + in_chunk, n);
			if (b)
				bounce_put(r, b);
		} else {
			/* whole chunks from idx on: one pread per run of records */
			run = run_len(e, (size_t)(r->f.h.n_entries - pos), (size_t)((off + len) / cs - idx), 1);
			err = load_run(r, e, run, out + in_buf, NULL, NULL, NULL);
		}
		pos += run;
		k += run;
	}
	if (err) {
		sodium_memzero(buf, len);                /* never partial plaintext */
		return err;
	}
	return (ssize_t)len;
}

/* Every entry, in runs through a guarded batch buffer: to cb (foreach), or
 * counting bad chunks (verify, nbad set). */
static int walk(struct backup_reader *r, backup_chunk_cb cb, void *ctx, engine_bad_cb bad, void *bctx, int *nbad)
{
	uint32_t cs = r->f.h.chunk_size;
	uint8_t *b = sodium_malloc(BK_BATCH);
	int err = 0;

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < r->f.h.n_entries && !err;) {
		const struct entry *e = &r->f.ent[i];
		size_t run = run_len(e, (size_t)(r->f.h.n_entries - i), BK_BATCH / cs, 0);

		err = load_run(r, e, run, b, bad, bctx, nbad);
		if (nbad)
			err = 0;                         /* verify: count and go on */
		for (size_t j = 0; j < run && !err && cb; j++)
			err = cb(ctx, e[j].index, b + j * cs, cs);
		sodium_memzero(b, run * cs);
		i += run;
	}
	sodium_free(b);
	return err;
}

int backup_reader_foreach(struct backup_reader *r, backup_chunk_cb cb, void *ctx)
{
	return walk(r, cb, ctx, NULL, NULL, NULL);
}

int backup_verify(const char *dir, const char *id, const struct kms_dk *dk, engine_bad_cb cb, void *ctx)
{
	struct backup_reader *r;
	int nbad = 0, err = backup_reader_open(&r, dir, id, dk);

	if (err)
		return err;
	err = walk(r, NULL, NULL, cb, ctx, &nbad);
	backup_reader_close(r);
	return err < 0 ? err : nbad;
}

int backup_info_load(const char *dir, const char *id, struct backup_info *in)
{
	struct bfile f;
	int err = bfile_open(&f, dir, id, 0);

	if (err)
		return err;
	memset(in, 0, sizeof(*in));
	bfile_uuid_format(f.h.id, in->id);
	if (!bfile_id_is_zero(f.h.parent))
		bfile_uuid_format(f.h.parent, in->parent_id);
	memcpy(in->lineage, f.h.lineage, CHUNK_LINEAGE_BYTES);
	in->chunk_size = f.h.chunk_size;
	in->size = f.h.size;
	in->encrypted = (int)f.h.encrypted;
	memcpy(in->key_id, f.h.key_id, sizeof(in->key_id) - 1);
	memcpy(in->wrapped, f.h.wrapped, f.h.wrapped_len);
	in->wrapped_len = f.h.wrapped_len;
	in->created = f.h.created;
	in->chunks = f.h.n_entries;
	in->own_chunks = f.h.n_records;
	memcpy(in->sum, f.h.sum, sizeof(in->sum));
	bfile_close(&f);
	return 0;
}
