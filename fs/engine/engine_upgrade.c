// SPDX-License-Identifier: MIT
/*
 * engine_upgrade.c - format 1 pools to format 2, in place.
 *
 * A format 1 pool keeps one map file per volume and a tag table; format 2
 * keeps every map as a copy-on-write tree in four block files (tree.c).
 * The chunks themselves do not move: a slot of the data file is the same
 * slot in both formats, sealed the same way, and its nonce and tag simply
 * move from the tag table into the leaf entry that names it.  So an
 * upgrade reads each map once and writes only metadata.
 *
 * Crash safety comes from the order of the renames.  The new block files
 * are built under temporary names (*.new) beside the old files, committed
 * and synced, then renamed into place with `roots` last: until that
 * rename the directory is a format 1 pool (format 1 ignores the other
 * block files), after it a format 2 pool (format 2 ignores maps/ and
 * tags, removed right after).  An upgrade cut short anywhere leaves one
 * pool or the other, never a mix, and running it again finishes it.
 *
 * Identical leaf pages are not shared by the upgrade: a format 1 snapshot
 * was a full copy of its map, and it stays a full copy of the tree; only
 * new snapshots share pages.  The pool must not be open (no attached
 * volume, no command using it): its maps could change while read.
 */
#include "engine_fsck.h"

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

#include "engine_int.h"
#include "err.h"
#include "maps.h"
#include "tree.h"

struct up {
	struct pool *p1, *p2;
	uint32_t ri;
	struct tree_ent ents[TREE_FANOUT];
	uint64_t leaf, slots[TREE_FANOUT];
	size_t nslots;
	int have;
};

/* The buffered leaf into the new tree, its slots counted. */
static int up_flush(struct up *u)
{
	int err;

	if (!u->have)
		return 0;
	err = tree_set(u->p2, u->ri, u->leaf, TREE_FANOUT, u->ents);
	if (!err)
		err = tree_slots_ref(u->p2, u->slots, u->nslots);
	memset(u->ents, 0, sizeof(u->ents));
	u->nslots = 0;
	u->have = 0;
	return err;
}

static int up_entry(void *ctx, uint64_t index, uint64_t slot)
{
	struct up *u = ctx;
	const struct chunk_tag *t = pool_tag(u->p1, slot);
	struct tree_ent *e;
	int err;

	if (!t)
		return -EUCLEAN;                 /* beyond the tag table: map_dir_load_refs refused it already */
	if (u->have && (index & ~(uint64_t)(TREE_FANOUT - 1)) != u->leaf && (err = up_flush(u)) < 0)
		return err;
	u->leaf = index & ~(uint64_t)(TREE_FANOUT - 1);
	u->have = 1;
	e = &u->ents[index - u->leaf];
	e->slot1 = htole64(slot + 1);
	memcpy(e->nonce, t->nonce, sizeof(e->nonce));
	memcpy(e->mac, t->mac, sizeof(e->mac));
	u->slots[u->nslots++] = slot;
	return 0;
}

/* One map file of the old pool into a root of the new one. */
static int up_map(struct up *u, int mdfd, const char *name)
{
	char id[ENGINE_ID_MAX];
	struct map_header h;
	size_t len = strlen(name);
	int fd, err;

	if (len <= 4 || strcmp(name + len - 4, ".map") != 0 || name[0] == '.' || len - 4 >= sizeof(id))
		return 0;                        /* not a map (leftover clones were removed at open) */
	memcpy(id, name, len - 4);
	id[len - 4] = 0;
	fd = openat(mdfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = map_header_load(u->p1, fd, id, &h);
	if (!err)
		err = tree_root_add(u->p2, id, h.size, &u->ri);
	if (!err)
		err = map_fd_foreach(u->p1, fd, up_entry, u);
	if (!err)
		err = up_flush(u);
	close(fd);
	return err;
}

/* Remove format 1's files once `roots` is in place. */
static void v1_files_remove(int dfd)
{
	int mfd = openat(dfd, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d = mfd >= 0 ? fdopendir(mfd) : NULL;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
			(void)unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	else if (mfd >= 0)
		close(mfd);
	(void)unlinkat(dfd, "maps", AT_REMOVEDIR);
	(void)unlinkat(dfd, "tags", 0);
	(void)fsync(dfd);
}

/* Bytes of the map files in the maps directory (for the progress bar). */
static uint64_t maps_bytes(DIR *d)
{
	struct dirent *de;
	struct stat st;
	uint64_t total = 0;

	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
	rewinddir(d);
	return total;
}

int engine_pool_upgrade(struct engine *e, const char *lineage, uint64_t *maps, engine_step_fn step,
			void *step_ctx)
{
	struct up u = { 0 };
	struct pool *p;
	struct dirent *de;
	struct stat st;
	DIR *d = NULL;
	uint64_t done = 0, total = 0;
	int err, mfd;

	*maps = 0;
	if (engine_lineage_parse(lineage, (uint8_t[CHUNK_LINEAGE_BYTES]){ 0 }) < 0)
		return -EINVAL;
	p = engine_pool_find(e, lineage);
	if (p) {
		err = p->version == 2 ? 1 : -EBUSY;
		engine_pool_put(p);
		return err;
	}
	err = engine_pool_get(&p, e, lineage);       /* format 1: counts loaded, leftovers removed */
	if (err)
		return err;
	if (p->version == 2) {
		/* roots in place from an upgrade cut short: finish it. */
		v1_files_remove(p->dir_fd);
		engine_pool_put(p);
		return 1;
	}
	u.p1 = p;
	err = tree_build_begin(p, &u.p2);
	if (!err) {
		mfd = openat(p->dir_fd, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		d = mfd >= 0 ? fdopendir(mfd) : NULL;
		if (!d) {
			err = -errno;
			if (mfd >= 0)
				close(mfd);
		}
	}
	if (!err && step) {
		total = maps_bytes(d);
		step(step_ctx, 0, total);
	}
	while (!err && (de = readdir(d))) {
		err = up_map(&u, dirfd(d), de->d_name);
		if (!err && de->d_name[0] != '.' && strstr(de->d_name, ".map"))
			(*maps)++;
		if (!err && step && de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			done += (uint64_t)st.st_size;
			step(step_ctx, done < total ? done : total, total);
		}
	}
	if (d)
		closedir(d);
	if (u.p2)
		err = tree_build_end(u.p2, !err) ?: err;
	if (!err)
		v1_files_remove(p->dir_fd);
	if (err)
		elog_printf(p->log, LOG_ERR, "pool %s: upgrade to format 2 failed (%s); the pool is unchanged (format 1)",
			    lineage, evfs_strerror(err));
	/* Closed as format 1 (nothing of it is written); the next open
	 * finds `roots`. */
	engine_pool_put(p);
	return err;
}
