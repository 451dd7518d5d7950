// SPDX-License-Identifier: MIT
/*
 * maps.c - the chunk map file format: header, entries, and the scan that
 * rebuilds a pool's reference counts from its maps.
 *
 * A map (STORE/pools/<lineage>/maps/<id>.map) is what makes a volume,
 * snapshot or image out of the pool's slots:
 *
 *   0      4 KiB header: "EVFSMAP1", version, chunk size, lineage, id,
 *          nominal size, BLAKE2b-128 checksum
 *   4096   one little-endian u64 per chunk: 0 = hole (reads as zeros,
 *          takes no space), s + 1 = the chunk lives in slot s
 *
 * The file is sparse: a thin 100 GiB volume with 64 MiB written has a map
 * of 128 KiB of data and a large hole.  Cloning reads only the data extents
 * (SEEK_DATA/SEEK_HOLE), so snapshot cost follows the data written, not the
 * nominal size (R24).  Clones are written to ".tmp-<id>.map", synced, then
 * renamed into place: a crash leaves the old state or the new one;
 * map_dir_load_refs() removes stray temporaries when a pool is opened.
 *
 * Creating, cloning and deleting whole maps, which must know the open
 * volumes, is the engine's (engine_map.c); this file knows only pools.
 */
#include "maps.h"

#include "err.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#define SCAN_BYTES (64u * 1024u)

static void header_fill(struct pool *p, struct map_header *h, const char *id, uint64_t size)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, MAP_MAGIC, 8);
	h->version = htole32(CHUNK_FORMAT_VERSION);
	h->chunk_size = htole32(p->chunk_size);
	memcpy(h->lineage, p->lineage, CHUNK_LINEAGE_BYTES);
	snprintf(h->id, sizeof(h->id), "%s", id);
	h->size = htole64(size);
	crypto_generichash(h->sum, sizeof(h->sum), (const uint8_t *)h, offsetof(struct map_header, sum), NULL, 0);
}

int map_header_store(struct pool *p, int fd, const char *id, uint64_t size)
{
	struct map_header h;
	ssize_t w;

	header_fill(p, &h, id, size);
	w = pwrite(fd, &h, sizeof(h), 0);
	if (w < 0)
		return -errno;
	return w == (ssize_t)sizeof(h) ? 0 : -ENOSPC;
}

int map_header_load(struct pool *p, int fd, const char *id, struct map_header *h)
{
	struct map_header want;

	if (pread(fd, h, sizeof(*h), 0) != (ssize_t)sizeof(*h) || !memchr(h->id, 0, sizeof(h->id)))
		return -EUCLEAN; /* short, or an id that is not a string (header_fill reads it as one) */
	header_fill(p, &want, h->id, le64toh(h->size));
	if (memcmp(h, &want, sizeof(want)) != 0 || (id && strncmp(h->id, id, sizeof(h->id)) != 0))
		return -EUCLEAN;
	h->size = le64toh(h->size);
	return 0;
}

int map_fd_foreach(struct pool *p, int fd, map_entry_cb cb, void *ctx)
{
	uint64_t buf[SCAN_BYTES / sizeof(uint64_t)];
	struct map_header h;
	off_t pos = MAP_HDR_BYTES, end;
	struct stat st;
	int err = map_header_load(p, fd, NULL, &h);

	if (err)
		return err;
	end = (off_t)map_entry_off(chunk_count(h.size, p->chunk_size));
	/* Maps are never shorter than their header says (extend grows the
	 * file first): a short one lost entries, whose slots must not be
	 * taken for free. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < end)
		return -EUCLEAN;
	while (pos < end) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0 || data >= end)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		data &= ~(off_t)7;
		for (pos = data; pos < hole;) {
			size_t want = (size_t)(hole - pos) < sizeof(buf) ? (size_t)(hole - pos) : sizeof(buf);
			ssize_t r = pread(fd, buf, want, pos);

			if (r <= 0)
				return r < 0 ? -errno : -EUCLEAN;
			for (size_t i = 0; i < (size_t)r / 8; i++) {
				uint64_t e = le64toh(buf[i]);

				if (e && (err = cb(ctx, ((uint64_t)pos - MAP_HDR_BYTES) / 8 + i, e - 1)))
					return err;
			}
			pos += r & ~(ssize_t)7;
			if (r & 7)
				return -EUCLEAN;
		}
	}
	return 0;
}

int map_file_foreach(struct pool *p, int maps_dirfd, const char *name, map_entry_cb cb, void *ctx)
{
	int fd = openat(maps_dirfd, name, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	err = map_fd_foreach(p, fd, cb, ctx);
	close(fd);
	return err;
}

static int ref_load_cb(void *ctx, uint64_t index, uint64_t slot)
{
	(void)index;
	return pool_ref_load(ctx, slot);
}

int map_dir_load_refs(struct pool *p)
{
	int mfd = openat(p->dir_fd, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int err = 0;

	if (mfd < 0)
		return -errno;
	d = fdopendir(mfd);
	if (!d) {
		err = -errno;
		close(mfd);
		return err;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' && strncmp(de->d_name, ".tmp-", 5) == 0) {
			/* A clone interrupted before its rename: never in use. */
			(void)unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (l < 5 || strcmp(de->d_name + l - 4, ".map") != 0)
			continue;
		err = map_file_foreach(p, dirfd(d), de->d_name, ref_load_cb, p);
		if (err == -ERANGE) {   /* pool_ref_load said why */
			err = -EUCLEAN;
			break;
		}
		if (err < 0) {
			elog_printf(p->log, LOG_ERR, "pool %s: chunk map %s/%s/maps/%s is damaged or unreadable (%s); restore "
				    "the file from a copy: the lineage's volumes, snapshots and images are refused until "
				    "then", p->lineage_hex, p->pools_dir, p->lineage_hex, de->d_name, evfs_strerror(err));
			break;
		}
	}
	closedir(d);
	return err;
}
