// SPDX-License-Identifier: MIT
/*
 * backup.c - backup files: self-contained copies of a volume (R7, R19, R25).
 *
 * A backup is one file, BACKUPDIR/<id>.evb (mode 0600), holding the chunk
 * ciphertext of a volume exactly as it sits in the pool, the chunk tags and
 * everything needed to open them again: lineage id (bound into every chunk's
 * associated data), chunk size, volume size, the KMS key id and the wrapped
 * data key.  Taking a backup needs no key: we copy ciphertext.  Reading one
 * needs the data key (unwrapped by the caller through the KMS), so a backup
 * is exactly as readable as its volume, and shredding the key (R19) shreds
 * every backup with it.  Nothing refers back to the pool: a backup restores
 * after the volume, its snapshots and its pool are gone.
 *
 * Layout (integers little-endian, ids 16 UUID bytes; byte offsets in
 * struct bk_header and struct entry below and in docs/format.md):
 *
 *   0      header, 4096 bytes: magic "EVFSBAK1", version, chunk size,
 *          lineage, volume size, encrypted, key id, wrapped data key,
 *          created, id, parent id (zero: a full backup), entry and record
 *          counts, index and data offsets, BLAKE2b-256 of the index region,
 *          BLAKE2b-256 of the header bytes before it; zero padded
 *   4096   data: records of chunk_size bytes, ciphertext as in the pool
 *   index  72-byte entries sorted by chunk index: index, holder (id of the
 *          backup file holding the record; zero: this file), record
 *          number, nonce, mac.  The file ends with the index.
 *
 * Incremental backups.  A backup with a parent stores a record only for a
 * chunk whose (nonce, mac) differ from the parent's entry at that index;
 * otherwise it copies the parent's entry, replacing a zero holder by the
 * parent's id.  Every entry therefore names the file that really holds its
 * ciphertext, so reading never walks the chain: one index per backup, and
 * holder files opened lazily.  Equal (nonce, mac) means the same bytes: the
 * engine draws a fresh random nonce on every write; unencrypted chunks carry
 * a checksum of their content and identity instead, so equal tags there mean
 * equal data too.
 *
 * Deleting a backup that later ones depend on copies the records they still
 * use into the oldest child (appended to its data), repoints the other
 * children to it, and hands the victim's parent to the child whose parent
 * it was.  Every rewrite goes to
 * .tmp-<id>.evb, is fsynced and renamed over; the victim is unlinked last,
 * so a crash at any step leaves every backup restorable (at worst with a
 * duplicate record after a rerun).
 *
 * Integrity: the header and index are checksummed, every count and offset
 * is checked against the file size before use (-EUCLEAN, never a crash on a
 * damaged file); chunk contents are authenticated by chunk_decrypt
 * (-EBADMSG).  The checksums are unkeyed: they catch damage, not forgery;
 * a forged index can drop entries (zeros) or roll a chunk back, as a forged
 * map can, but never make a chunk read as other data.
 *
 * Reading (the reader behind backups/NAME and restores, verify, header
 * info) is in backup_read.c; the structures both share are in backup_int.h.
 * This file does not talk to the KMS or the catalog: callers unwrap keys and
 * record chains.
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
#include <time.h>
#include <unistd.h>
#include <sodium.h>

static const uint8_t zero_id[BK_UUID_BYTES];

/* ============================ writing ================================== */

static int ent_push(struct bfile *f, const struct entry *e)
{
	if (f->h.n_entries == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 4096;
		struct entry *n = realloc(f->ent, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		f->ent = n;
		f->cap = cap;
	}
	f->ent[f->h.n_entries++] = *e;
	return 0;
}

/* Write header h (host order) at offset 0, its checksum computed. */
static int header_store(int fd, const struct bk_header *h)
{
	uint8_t raw[BK_HDR_BYTES] = { 0 };
	struct bk_header le = *h;

	bfile_header_le(&le);
	memcpy(raw, &le, sizeof(le));
	crypto_generichash(raw + offsetof(struct bk_header, sum), BK_SUM_BYTES, raw, offsetof(struct bk_header, sum),
			   NULL, 0);
	return bfile_io_all(fd, raw, sizeof(raw), 0, 1);
}

/* Write the index at h.index_off (setting h.isum), then the header. */
static int index_header_store(int fd, struct bfile *f)
{
	size_t len = (size_t)f->h.n_entries * sizeof(struct entry);
	const uint8_t *p = f->ent ? (const uint8_t *)f->ent : zero_id;
	int err;

	bfile_entries_le(f->ent, f->h.n_entries);
	crypto_generichash(f->h.isum, BK_SUM_BYTES, p, len, NULL, 0);
	err = bfile_io_all(fd, (void *)p, len, f->h.index_off, 1);
	bfile_entries_le(f->ent, f->h.n_entries);
	return err ? err : header_store(fd, &f->h);
}

int backup_set_wrapped(const char *dir, const char *id, const uint8_t *wrapped, uint32_t len)
{
	struct bfile f;
	char path[PATH_MAX];
	int fd, err;

	if (!wrapped || !len || len > BACKUP_WRAPPED_MAX)
		return -EINVAL;
	err = bfile_open(&f, dir, id, 0);
	if (err)
		return err;
	err = bfile_path(path, dir, "", id);
	fd = err ? -1 : open(path, O_WRONLY | O_CLOEXEC);
	if (!err && fd < 0)
		err = -errno;
	if (!err) {
		memset(f.h.wrapped, 0, sizeof(f.h.wrapped));
		memcpy(f.h.wrapped, wrapped, len);
		f.h.wrapped_len = len;
		err = header_store(fd, &f.h);
		if (!err && fdatasync(fd) < 0)
			err = -errno;
	}
	if (fd >= 0)
		close(fd);
	bfile_close(&f);
	return err;
}

static int tmp_create(const char *tmp)
{
	int fd;

	(void)unlink(tmp);                             /* leftover of a crash */
	fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

static int dir_sync(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;

	if (dfd < 0 || fsync(dfd) < 0)
		err = -errno;
	if (dfd >= 0)
		close(dfd);
	return err;
}

/* Finish a temporary file: index + header, fsync, rename, fsync dir; the
 * temporary is removed on failure.  Closes fd. */
static int tmp_commit(int fd, struct bfile *f, const char *dir, const char *tmp, const char *final, int err)
{
	if (!err)
		err = index_header_store(fd, f);
	if (!err && (fsync(fd) < 0 || rename(tmp, final) < 0))
		err = -errno;
	close(fd);
	if (err)
		(void)unlink(tmp);
	return err ? err : dir_sync(dir);
}

/* ============================== create ================================= */

/* Same chunk as the parent's at this index (the engine never reuses a
 * nonce; unencrypted tags are content checksums)? */
static int parent_ref(const struct backup_reader *par, size_t *pi, struct entry *e)
{
	const struct entry *p;

	while (*pi < par->f.h.n_entries && par->f.ent[*pi].index < e->index)
		(*pi)++;
	p = *pi < par->f.h.n_entries ? &par->f.ent[*pi] : NULL;
	if (!p || p->index != e->index || sodium_memcmp(p->nonce, e->nonce, CHUNK_NONCE_BYTES) ||
	    sodium_memcmp(p->mac, e->mac, CHUNK_TAG_BYTES))
		return 0;
	memcpy(e->holder, bfile_id_is_zero(p->holder) ? par->f.h.id : p->holder, BK_UUID_BYTES);
	e->record = p->record;
	return 1;
}

/* The parent: same lineage, and every holder its entries name is there. */
static int parent_open(struct backup_reader **par, const char *dir, const struct backup_info *info, struct vol *v)
{
	const struct bfile *h;
	int err = backup_reader_open_index(par, dir, info->parent_id, NULL, 1);

	if (!err && (memcmp((*par)->f.h.lineage, vol_lineage(v), CHUNK_LINEAGE_BYTES) ||
		     (*par)->f.h.chunk_size != vol_chunk_size(v) || (*par)->f.h.encrypted != !!info->encrypted))
		err = -EINVAL;
	for (uint64_t i = 0; !err && i < (*par)->f.h.n_entries; i++) {
		const struct entry *e = &(*par)->f.ent[i];

		if (!bfile_id_is_zero(e->holder) && !(err = backup_reader_holder(*par, e->holder, &h)) &&
		    e->record >= h->h.n_records)
			err = -EUCLEAN;
	}
	return err;
}

int backup_create(struct vol *v, const char *dir, struct backup_info *info, backup_progress_fn progress,
		  void *pctx)
{
	struct backup_reader *par = NULL;
	struct bfile out = { .fd = -1 };
	char tmp[PATH_MAX], final[PATH_MAX];
	uint32_t cs = vol_chunk_size(v);
	uint64_t size = vol_size(v), n = chunk_count(size, cs), idx, fill = 0, wpos = BK_HDR_BYTES, next = 0;
	uint8_t *buf = NULL, *win = NULL, present[VOL_LOAD_MAX];
	struct chunk_tag tags[VOL_LOAD_MAX];
	size_t pi = 0;
	int fd = -1, err;
	int64_t s;

	if ((err = bfile_uuid_parse(info->id, out.h.id)) || (err = bfile_path(tmp, dir, ".tmp-", info->id)) ||
	    (err = bfile_path(final, dir, "", info->id)))
		return err;
	if (info->wrapped_len > BACKUP_WRAPPED_MAX || !memchr(info->key_id, 0, sizeof(info->key_id)) ||
	    (info->encrypted && !info->wrapped_len) || (vol_has_key(v) && !info->encrypted))
		return -EINVAL;
	if (info->parent_id[0] && ((err = bfile_uuid_parse(info->parent_id, out.h.parent)) ||
				   (err = parent_open(&par, dir, info, v))))
		goto out;
	if (access(final, F_OK) == 0) {
		err = -EEXIST;
		goto out;
	}
	memcpy(out.h.magic, BK_MAGIC, 8);
	out.h.version = BK_VERSION;
	out.h.chunk_size = cs;
	memcpy(out.h.lineage, vol_lineage(v), CHUNK_LINEAGE_BYTES);
	out.h.size = size;
	out.h.encrypted = !!info->encrypted;
	out.h.wrapped_len = info->wrapped_len;
	memcpy(out.h.key_id, info->key_id, strlen(info->key_id));
	memcpy(out.h.wrapped, info->wrapped, info->wrapped_len);
	out.h.created = info->created ? info->created : (int64_t)time(NULL);
	out.h.data_off = BK_HDR_BYTES;
	buf = aligned_alloc(4096, BK_BATCH);
	win = malloc((size_t)VOL_LOAD_MAX * cs);
	fd = buf && win ? tmp_create(tmp) : -ENOMEM;
	if (fd < 0) {
		err = fd;
		goto out;
	}
	s = vol_seek(v, 0, SEEK_DATA);                   /* holes are skipped, not scanned */
	idx = s >= 0 ? (uint64_t)s / cs : n;
	if (s < 0 && s != -ENXIO)
		err = (int)s;
	while (!err && idx < n) {
		uint64_t w = n - idx < VOL_LOAD_MAX ? n - idx : VOL_LOAD_MAX;
		int r;

		if (progress && next > idx * cs && (next - idx * cs + cs - 1) / cs < w)
			w = (next - idx * cs + cs - 1) / cs;      /* a small volume still reports each 1% */
		r = vol_chunks_load(v, idx, w, win, tags, present);        /* a window: one read per run */

		if (r < 0)
			err = r;
		for (uint64_t k = 0; k < w && !err; k++) {
			struct entry e = { .index = idx + k };

			if (!present[k])
				continue;
			/* chunk.c: unencrypted lineages have zero nonces, encrypted random ones */
			if (chunk_is_zero(tags[k].nonce, CHUNK_NONCE_BYTES) == (int)out.h.encrypted) {
				err = -EINVAL;
				break;
			}
			memcpy(e.nonce, tags[k].nonce, CHUNK_NONCE_BYTES);
			memcpy(e.mac, tags[k].mac, CHUNK_TAG_BYTES);
			if (!par || !parent_ref(par, &pi, &e)) {
				e.record = out.h.n_records++;       /* a record of this file */
				memcpy(buf + fill, win + k * cs, cs);
				fill += cs;
				if (fill == BK_BATCH) {
					err = bfile_io_all(fd, buf, fill, wpos, 1);
					wpos += fill;
					fill = 0;
				}
			}
			if (!err)
				err = ent_push(&out, &e);
		}
		idx += w;
		if (progress && idx < n && idx * cs >= next) {
			progress(pctx, idx * cs, size);
			next = idx * cs + (size / 100 ? size / 100 : 1);
		}
		if (!err && idx < n) {                         /* holes are skipped, not scanned */
			s = vol_seek(v, idx * cs, SEEK_DATA);
			if (s < 0 && s != -ENXIO)
				err = (int)s;
			idx = s >= 0 ? (uint64_t)s / cs : n;
		}
	}
	if (!err && fill)
		err = bfile_io_all(fd, buf, fill, wpos, 1);
	out.h.index_off = out.h.data_off + out.h.n_records * cs;
	err = tmp_commit(fd, &out, dir, tmp, final, err);
	if (!err) {
		if (progress)
			progress(pctx, size, size);
		info->created = out.h.created;
		memcpy(info->lineage, out.h.lineage, CHUNK_LINEAGE_BYTES);
		info->chunk_size = cs;
		info->size = size;
		info->chunks = out.h.n_entries;
		info->own_chunks = out.h.n_records;
	}
out:
	free(buf);
	free(win);
	bfile_close(&out);
	backup_reader_close(par);
	return err;
}

/* ============================== delete ================================= */

/* Copy len bytes in@ioff -> out@ooff: in the kernel when it can, else via buf. */
static int copy_range(int in, uint64_t ioff, int out, uint64_t ooff, uint64_t len, uint8_t *buf)
{
	loff_t io = (loff_t)ioff, oo = (loff_t)ooff;
	ssize_t c;

	while (len && (c = copy_file_range(in, &io, out, &oo, len < BK_BATCH ? len : BK_BATCH, 0)) > 0)
		len -= (uint64_t)c;
	while (len) {                            /* EXDEV, ENOSYS, ... or a real error: by hand */
		size_t n = len < BK_BATCH ? (size_t)len : BK_BATCH;
		int err = bfile_io_all(in, buf, n, (uint64_t)io, 0);

		if (!err)
			err = bfile_io_all(out, buf, n, (uint64_t)oo, 1);
		if (err)
			return err;
		io += (loff_t)n;
		oo += (loff_t)n;
		len -= n;
	}
	return 0;
}

/* Replace f's file by a copy with its (edited) entries, the given parent and
 * nextra records of src (numbers in extra[]) appended to its data. */
static int bfile_rewrite(const char *dir, struct bfile *f, const uint8_t *parent, const struct bfile *src,
			 const uint64_t *extra, uint64_t nextra)
{
	char tmp[PATH_MAX], final[PATH_MAX], id[BACKUP_ID_LEN + 1];
	uint32_t cs = f->h.chunk_size;
	uint64_t wpos = BK_HDR_BYTES + f->h.n_records * cs;
	uint8_t *buf = malloc(BK_BATCH);
	size_t fill = 0;
	int fd, err;

	bfile_uuid_format(f->h.id, id);
	if (!buf || (err = bfile_path(tmp, dir, ".tmp-", id)) || (err = bfile_path(final, dir, "", id)) ||
	    (err = fd = tmp_create(tmp)) < 0) {
		free(buf);
		return buf ? err : -ENOMEM;
	}
	err = copy_range(f->fd, f->h.data_off, fd, BK_HDR_BYTES, f->h.n_records * cs, buf);
	for (uint64_t k = 0; !err && k < nextra; k++) {
		err = bfile_io_all(src->fd, buf + fill, cs, src->h.data_off + extra[k] * cs, 0);
		fill += cs;
		if (!err && (fill == BK_BATCH || k + 1 == nextra)) {
			err = bfile_io_all(fd, buf, fill, wpos, 1);
			wpos += fill;
			fill = 0;
		}
	}
	memmove(f->h.parent, parent, BK_UUID_BYTES);
	f->h.n_records += nextra;
	f->h.index_off = BK_HDR_BYTES + f->h.n_records * cs;
	free(buf);
	return tmp_commit(fd, f, dir, tmp, final, err);
}

int backup_delete(const char *dir, const char *id, const char *const *children, size_t nchildren)
{
	struct bfile vic = { .fd = -1 }, *kid = NULL;
	uint64_t *map = NULL, *extra = NULL, nextra = 0;
	char path[PATH_MAX];
	int err;

	if ((err = bfile_uuid_parse(id, vic.h.id)) || (err = bfile_path(path, dir, "", id)))
		return err;
	if (nchildren) {
		err = bfile_open(&vic, dir, id, 1);
		kid = err ? NULL : calloc(nchildren, sizeof(*kid));
		if (!err && !kid)
			err = -ENOMEM;
	}
	for (size_t i = 0; kid && i < nchildren; i++)
		kid[i].fd = -1;
	for (size_t i = 0; !err && i < nchildren; i++) {
		for (size_t j = 0; j < i; j++)
			if (!strcmp(children[i], children[j]))
				err = -EINVAL;           /* listed twice */
		if (!err)
			err = strcmp(children[i], id) ? bfile_open(&kid[i], dir, children[i], 1) : -EINVAL;
		if (!err && !bfile_same_lineage(&kid[i], &vic))
			err = -EINVAL;
	}
	/* Victim records any child uses: map[rec] = its number in kid[0] + 1. */
	if (!err && nchildren) {
		map = calloc((size_t)vic.h.n_records + 1, sizeof(*map));
		extra = calloc((size_t)vic.h.n_records + 1, sizeof(*extra));
		err = map && extra ? 0 : -ENOMEM;
	}
	for (size_t i = 0; !err && i < nchildren; i++) {
		for (uint64_t j = 0; !err && j < kid[i].h.n_entries; j++) {
			uint64_t rec = kid[i].ent[j].record;

			if (memcmp(kid[i].ent[j].holder, vic.h.id, BK_UUID_BYTES))
				continue;
			if (rec >= vic.h.n_records)
				err = -EUCLEAN;
			else if (!map[rec]) {
				extra[nextra] = rec;
				map[rec] = kid[0].h.n_records + ++nextra;
			}
		}
	}
	/* The oldest child first: it receives the records the others then use. */
	for (size_t i = 0; !err && i < nchildren; i++) {
		int orphan = !memcmp(kid[i].h.parent, vic.h.id, BK_UUID_BYTES), changed = orphan || (!i && nextra);

		for (uint64_t j = 0; j < kid[i].h.n_entries; j++) {
			struct entry *e = &kid[i].ent[j];

			if (memcmp(e->holder, vic.h.id, BK_UUID_BYTES))
				continue;
			memcpy(e->holder, i ? kid[0].h.id : zero_id, BK_UUID_BYTES);
			e->record = map[e->record] - 1;
			changed = 1;
		}
		if (changed)
			err = bfile_rewrite(dir, &kid[i], orphan ? vic.h.parent : kid[i].h.parent, &vic,
					    i ? NULL : extra, i ? 0 : nextra);
	}
	if (!err && unlink(path) < 0)
		err = -errno;
	if (!err)
		err = dir_sync(dir);
	for (size_t i = 0; kid && i < nchildren; i++)
		bfile_close(&kid[i]);
	bfile_close(&vic);
	free(kid);
	free(map);
	free(extra);
	return err;
}
