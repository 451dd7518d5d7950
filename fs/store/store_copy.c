// SPDX-License-Identifier: MIT
/*
 * store_copy.c - moving plaintext between objects: a volume into another
 * volume or a file (restore, re-encrypting clones, image copy, export,
 * replicate), and opening a map with its data key for that.
 *
 * Shared by the volume operations (store_ops.c) and the backup and image
 * paths (store_backup.c), below both in the store's file chain.  Holes are
 * skipped (SEEK_DATA), so a copy costs what was written, not the nominal
 * size; progress goes to the caller's progress bar.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "backup.h"
#include "progress.h"

/* ===================== copying between lineages ======================== */

struct restore_ctx {
	struct vol *dst;
	struct progress *pr;
	int err;
};

static int restore_cb(void *ctx, uint64_t index, const uint8_t *plain, uint32_t len)
{
	struct restore_ctx *r = ctx;
	ssize_t w = vol_write(r->dst, plain, len, index * len);

	if (w < 0)
		return (int)w;
	progress_update(r->pr, (index + 1) * len);
	return 0;
}

int store_copy_backup(const struct meta_object *bk, const struct kms_dk *dk, struct vol *dst, struct progress *p)
{
	struct backup_reader *br;
	struct restore_ctx r = { .dst = dst, .pr = p };
	int rc = backup_reader_open(&br, bk->location, bk->id, dk);

	if (!rc) {
		rc = backup_reader_foreach(br, restore_cb, &r);
		backup_reader_close(br);
	}
	return rc ? rc : vol_sync(dst);
}

/* Copy every data range of src (attached) into dst (attached) or, when dst
 * is NULL, into fd; holes are skipped.  Shared by restores, re-encrypting
 * copies, image export and replication. */
int store_copy_data(struct vol *src, struct vol *dst, int fd, struct progress *p)
{
	const size_t blk = 1u << 20;
	uint8_t *buf = malloc(blk);
	uint64_t size = vol_size(src), off = 0;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	while (!rc && off < size) {
		int64_t d = vol_seek(src, off, SEEK_DATA), h;

		if (d < 0) {
			rc = d == -ENXIO ? 0 : (int)d;
			break;
		}
		h = vol_seek(src, (uint64_t)d, SEEK_HOLE);
		if (h < 0)
			h = (int64_t)size;
		for (off = (uint64_t)d; !rc && off < (uint64_t)h;) {
			size_t n = (uint64_t)h - off < blk ? (size_t)((uint64_t)h - off) : blk;
			ssize_t r = vol_read(src, buf, n, off);

			if (r > 0)
				r = dst ? vol_write(dst, buf, (size_t)r, off) : pwrite(fd, buf, (size_t)r, (off_t)off);
			if (r <= 0)
				rc = r < 0 ? (dst ? (int)r : -errno) : -EIO;
			else
				off += (uint64_t)r;
			progress_update(p, off);
		}
	}
	sodium_memzero(buf, blk);
	free(buf);
	if (rc)
		return rc;
	if (dst)
		return vol_sync(dst);
	return ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0 ? -errno : 0;
}

/* Open map `id` of `lineage` and attach the key (NULL for unencrypted). */
int store_open_attached(struct store *s, const char *lineage, const char *id, int writable, struct kms_dk *dk,
			 struct vol **out)
{
	int rc = engine_vol_open(out, s->eng, lineage, id, writable);

	if (rc) {
		kms_dk_destroy(dk);
		return rc;
	}
	if (vol_is_attached(*out)) {
		kms_dk_destroy(dk);
		return 0;
	}
	rc = vol_attach(*out, dk);
	if (rc) {
		kms_dk_destroy(dk);
		engine_vol_close(*out);
	}
	return rc;
}
