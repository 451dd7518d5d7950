// SPDX-License-Identifier: MIT
/*
 * engine_fsck.c - consistency checks and repairs of chunk pools and maps.
 *
 * What can be wrong with a pool (see pool.c and maps.c for the layout):
 *
 *   files     data, tags or maps/ missing; the tag table header damaged or
 *             naming another lineage; the tag table not header + n * 64.
 *   maps      a header that fails its checksum, names another lineage or
 *             another id than its file name; a file shorter than its
 *             nominal size needs; an entry pointing beyond the tag table or
 *             beyond the data file, at a slot whose data was punched or
 *             whose tag is empty (a freed slot), or at a slot whose tag was
 *             written for another chunk index (moved).
 *   counts    reference counts are not stored: they are the number of map
 *             entries naming a slot.  On a pool the engine has open (the
 *             mount's) they are also held in memory, and the two must
 *             agree; a referenced slot counted free in memory would be
 *             handed out again and overwritten.
 *   leaks     a slot no map references whose data still takes space.  The
 *             write path leaves the old slot of an overwritten chunk in
 *             place for reuse, and an interrupted write leaves its new slot
 *             behind, so leaks are normal and harmless: they are counted,
 *             and engine_pool_reclaim() punches them.
 *   chunks    every mapped chunk authenticates under the lineage's key.
 *
 * Checking never writes.  A pool the engine has not opened is read from
 * its files (opening it through engine_pool_get() would delete leftover clones);
 * one it has open is held so it cannot close, and its writable volumes are
 * frozen (their rwlock taken exclusive) while the maps are read and counted,
 * so the counts compare one instant.  Chunk verification of an open volume
 * takes its locks per chunk, like a read, so I/O goes on meanwhile.
 *
 * Repairs are small and separate: punch leaked slots (with the slot marked
 * busy under the pool lock so the allocator cannot hand it out while its
 * hole is punched), clear one map entry (quarantine: the chunk reads as
 * zeros; entry synced before the slot is released), remove an interrupted
 * clone's temporary file.  Removing orphan maps and pools uses
 * engine_map_delete() and engine_pool_delete(); deciding what is an orphan
 * needs the catalog and is done in store_fsck.c.
 */
#include "engine_fsck.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "engine_int.h"
#include "tree.h"
#ifdef EVFS_HAVE_RADOS
#include "pdev_rados.h"
#endif

/* A pool as the checker sees it: the engine's (held) or files opened here. */
struct chk {
	struct engine *e;
	struct pool *open;                   /* the engine's pool (users raised) or NULL */
	struct pool *local;                  /* files opened here when not open */
	struct pool *p;                      /* open or local */
	const struct chunk_tag *tags;        /* local: the whole tag table mapped */
	size_t tags_map_len;
	uint64_t nslots;
	uint64_t data_bytes;
	uint8_t *has_data;                   /* bitmap: slot holds data blocks */
	uint8_t *probed;                     /* no holes: bitmap of slots has_data knows */
	int probe_err;                       /* no holes: the first read that failed */
	uint32_t *refs;                      /* entries naming each slot */
	engine_fsck_cb cb;
	void *ctx;
	int problems;
	const char *map;                     /* map being scanned */
};

static const uint8_t zero_mac[CHUNK_TAG_BYTES];

const char *engine_fsck_what_str(enum engine_fsck_what w)
{
	switch (w) {
	case ENGINE_FSCK_POOL_FILES: return "pool files missing or unreadable";
	case ENGINE_FSCK_POOL_HEADER: return "tag table header damaged or of another lineage";
	case ENGINE_FSCK_POOL_TAGS_LEN: return "tag table length is not a whole number of entries";
	case ENGINE_FSCK_MAP_HEADER: return "map header damaged (checksum, lineage or id)";
	case ENGINE_FSCK_MAP_SHORT: return "map file shorter than its volume size needs";
	case ENGINE_FSCK_MAP_RANGE: return "map entry points beyond the tag table";
	case ENGINE_FSCK_SLOT_BEYOND: return "map entry points beyond the end of the data file";
	case ENGINE_FSCK_SLOT_EMPTY: return "map entry points at a freed slot (no data or empty tag)";
	case ENGINE_FSCK_SLOT_INDEX: return "slot holds another chunk (moved)";
	case ENGINE_FSCK_SLOT_FREE: return "referenced slot is counted free (would be reused)";
	case ENGINE_FSCK_REFCOUNT: return "reference count (in memory; format 2: stored) differs from the maps";
	case ENGINE_FSCK_TMP_MAP: return "interrupted clone left a temporary map";
	case ENGINE_FSCK_CHUNK_BAD: return "chunk failed authentication or could not be read";
	case ENGINE_FSCK_PAGE_HASH: return "map page does not match its parent's hash (altered or rolled back); the "
					   "chunks below it are refused: restore the pool from a copy";
	case ENGINE_FSCK_PAGE_COUNT: return "map page's stored reference count differs from the maps (a page leaked)";
	case ENGINE_FSCK_ROLLED_BACK: return "the pool's files are older than the catalog's freshness record (put back "
					     "from an older copy: rolled back)";
	}
	return "unknown";
}

static void report(struct chk *c, enum engine_fsck_what w, uint64_t index, uint64_t slot, uint64_t count, int err)
{
	struct engine_fsck_issue is = { w, c->p ? c->p->lineage_hex : NULL, c->map, index, slot, count, err,
					c->p ? c->p->chunk_size : 0 };

	c->problems++;
	if (c->cb)
		c->cb(c->ctx, &is);
}

/* ============================ listing ================================== */

int engine_pool_list(struct engine *e, int (*cb)(void *ctx, const char *lineage), void *ctx)
{
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	DIR *d;
	struct dirent *de;
	int n = 0, err = 0;

#ifdef EVFS_HAVE_RADOS
	if (e->rados_io)
		return pdev_rados_list(e->rados_io, cb, ctx);
#endif
	d = opendir(e->dir);
	if (!d)
		return -errno;
	while (!err && (de = readdir(d)))
		if (engine_lineage_parse(de->d_name, lin) == 0 && (err = cb(ctx, de->d_name)) == 0)
			n++;
	closedir(d);
	return err < 0 ? err : n;
}

static int maps_dir_open(struct engine *e, const char *lineage)
{
	char path[4096];
	int fd;

	if (e->rados_io)
		return -ENOENT;                  /* format 2 only: no maps/ */
	snprintf(path, sizeof(path), "%s/%s/maps", e->dir, lineage);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* "<id>.map" -> id (tmp 0); ".tmp-<id>.map" -> id (tmp 1); else -1. */
static int map_file_id(const char *name, char id[static ENGINE_ID_MAX])
{
	size_t l = strlen(name);
	int tmp = strncmp(name, ".tmp-", 5) == 0;
	size_t skip = tmp ? 5 : 0;

	if (l <= skip + 4 || strcmp(name + l - 4, ".map") != 0 || l - skip - 4 >= ENGINE_ID_MAX ||
	    (!tmp && name[0] == '.'))
		return -1;
	memcpy(id, name + skip, l - skip - 4);
	id[l - skip - 4] = 0;
	return tmp;
}

/* 1 if the pool of `lineage` is format 2 (open or on disk), 0 if not,
 * or a negative errno. */
static int pool_is_v2(struct engine *e, const char *lineage)
{
	struct pool *p = engine_pool_find(e, lineage);
	char path[4096];
	int fd, v2;

	if (p) {
		v2 = p->version == 2;
		engine_pool_put(p);
		return v2;
	}
#ifdef EVFS_HAVE_RADOS
	if (e->rados_io)
		return (v2 = pdev_rados_exists(e->rados_io, lineage)) < 0 ? v2 : v2 ? 1 : -ENOENT;
#endif
	snprintf(path, sizeof(path), "%s/%s", e->dir, lineage);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	v2 = tree_pool_is_v2(fd);
	close(fd);
	return v2;
}

struct list_v2 {
	int (*cb)(void *ctx, const char *id, int tmp);
	void *ctx;
	int n;
};

static int list_v2_cb(void *ctx, const char *id)
{
	struct list_v2 *l = ctx;
	int err = l->cb(l->ctx, id, 0);

	l->n += err == 0;
	return err > 0 ? err : 0;
}

/* Format 2: the root records (no temporary files: a clone is one
 * commit). */
static int map_list_v2(struct engine *e, const char *lineage, int (*cb)(void *ctx, const char *id, int tmp),
		       void *ctx)
{
	struct list_v2 l = { .cb = cb, .ctx = ctx };
	struct pool *p;
	int err = engine_pool_get(&p, e, lineage);

	if (err)
		return err;
	err = tree_root_list(p, list_v2_cb, &l);
	engine_pool_put(p);
	return err < 0 ? err : l.n;
}

int engine_map_exists(struct engine *e, const char *lineage, const char *id)
{
	char name[ENGINE_ID_MAX + 8];
	struct stat st;
	struct pool *p;
	uint32_t ri;
	int fd, found;

	if (!id || !*id || strchr(id, '/') || strlen(id) >= ENGINE_ID_MAX ||
	    engine_lineage_parse(lineage, (uint8_t[CHUNK_LINEAGE_BYTES]){ 0 }) < 0)
		return 0;
	if (pool_is_v2(e, lineage) == 1) {
		if (engine_pool_get(&p, e, lineage) < 0)
			return 0;
		found = tree_root_find(p, id, &ri) == 0;
		engine_pool_put(p);
		return found;
	}
	fd = maps_dir_open(e, lineage);
	if (fd < 0)
		return 0;
	snprintf(name, sizeof(name), "%s.map", id);
	found = fstatat(fd, name, &st, 0) == 0;
	close(fd);
	return found;
}

int engine_map_list(struct engine *e, const char *lineage, int (*cb)(void *ctx, const char *id, int tmp), void *ctx)
{
	char id[ENGINE_ID_MAX];
	int fd = maps_dir_open(e, lineage), n = 0, err = 0, tmp;
	struct dirent *de;
	DIR *d;

	if (fd == -ENOENT && pool_is_v2(e, lineage) == 1)
		return map_list_v2(e, lineage, cb, ctx);
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		err = -errno;
		close(fd);
		return err;
	}
	while (!err && (de = readdir(d))) {
		if ((tmp = map_file_id(de->d_name, id)) < 0)
			continue;
		if ((err = cb(ctx, id, tmp)) == 0)
			n++;
	}
	closedir(d);
	return err < 0 ? err : n;
}

/* ========================== holding a pool ============================= */

static void chk_fini(struct chk *c)
{
	if (c->open)
		engine_pool_put(c->open);
	if (c->tags)
		munmap((void *)((const uint8_t *)c->tags - POOL_HDR_BYTES), c->tags_map_len);
	if (c->local) {
		pdev_close(c->local->dev);
		if (c->local->tags_fd >= 0)
			close(c->local->tags_fd);
		if (c->local->dir_fd >= 0)
			close(c->local->dir_fd);
		free(c->local);
	}
	free(c->has_data);
	free(c->probed);
	free(c->refs);
	memset(c, 0, sizeof(*c));
}

/* Mark the slots whose data range holds allocated blocks: all at once
 * from SEEK_DATA/SEEK_HOLE, or, on a device without holes, slot windows
 * as has_data() is asked (before, every byte of RADOS counted as data:
 * each free slot was a "leak" that no repair could clear). */
static int data_extents(struct chk *c)
{
	struct pdev *dev = c->p->dev;
	unsigned shift = c->p->chunk_shift;
	int64_t pos = 0, end = (int64_t)c->data_bytes;

	c->has_data = calloc(c->nslots / 8 + 1, 1);
	if (!c->has_data)
		return -ENOMEM;
	if (!pdev_holes(dev)) {
		c->probed = calloc(c->nslots / 8 + 1, 1);
		return c->probed ? 0 : -ENOMEM;
	}
	while (pos < end) {
		int64_t d = pdev_seek(dev, PDEV_DATA, (uint64_t)pos, SEEK_DATA), h;

		if (d < 0)
			return d == -ENXIO ? 0 : (int)d;
		h = pdev_seek(dev, PDEV_DATA, (uint64_t)d, SEEK_HOLE);
		if (h < 0)
			h = end;
		for (uint64_t s = (uint64_t)d >> shift; s < c->nslots && (s << shift) < (uint64_t)h; s++)
			c->has_data[s / 8] |= (uint8_t)(1u << (s % 8));
		pos = h;
	}
	return 0;
}

#define BIT(map, i) ((map)[(i) / 8] >> ((i) % 8) & 1)
#define BIT_SET(map, i) ((map)[(i) / 8] |= (uint8_t)(1u << ((i) % 8)))

/* On a device without holes, the window of slots from `slot` (1 MiB, up
 * to the next slot already known) is read, and a slot holds data if any
 * of its bytes is not zero: punched, removed and never-written space all
 * read as zeros, and ciphertext never does.  A failed read counts its
 * slots as data (a repair punches only free slots, so this is safe) and is
 * kept in probe_err for the caller's result. */
static void probe(struct chk *c, uint64_t slot)
{
	struct pool *p = c->p;
	uint32_t cs = p->chunk_size;
	uint64_t n = 1, max = (1u << 20) / cs;
	uint8_t *buf;
	ssize_t r;

	while (n < max && slot + n < c->nslots && !BIT(c->probed, slot + n))
		n++;
	buf = malloc(n * cs);
	r = buf ? pdev_read(p->dev, PDEV_DATA, buf, n * cs, slot << p->chunk_shift) : -ENOMEM;
	if (r < 0 && !c->probe_err)
		c->probe_err = (int)r;
	for (uint64_t k = 0; k < n; k++) {
		uint64_t at = k * cs;
		int data = r < 0 || (at < (uint64_t)r && !sodium_is_zero(buf + at, (uint64_t)r - at < cs ? (size_t)((uint64_t)r - at) : cs));

		BIT_SET(c->probed, slot + k);
		if (data)
			BIT_SET(c->has_data, slot + k);
	}
	free(buf);
}

/* Callers ask only about free slots: on a device without holes, only
 * those windows are read. */
static int has_data(struct chk *c, uint64_t slot)
{
	if (slot >= c->nslots)
		return 0;
	if (c->probed && !BIT(c->probed, slot))
		probe(c, slot);
	return BIT(c->has_data, slot);
}

static int has_data_cb(void *ctx, uint64_t slot)
{
	return has_data(ctx, slot);
}

static const struct chunk_tag *tag_at(const struct chk *c, uint64_t slot)
{
	if (slot >= c->nslots)
		return NULL;
	if (c->open)
		return pool_tag(c->open, slot);
	return &c->tags[slot];
}

/* Hold the pool of `lineage` for checking: the engine's if open, else its
 * files read-only.  Problems with the files are reported. */
static int chk_init(struct chk *c, struct engine *e, const char *lineage, engine_fsck_cb cb, void *ctx)
{
	char path[4096];
	struct stat st;
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	struct pool *l;
	int err;

	memset(c, 0, sizeof(*c));
	c->e = e;
	c->cb = cb;
	c->ctx = ctx;
	if (engine_lineage_parse(lineage, lin) < 0)
		return -EINVAL;
	c->open = engine_pool_find(e, lineage);
	if (c->open) {
		c->p = c->open;
	} else {
		l = c->local = calloc(1, sizeof(*l));
		if (!l)
			return -ENOMEM;
		l->eng = e;
		l->tags_fd = -1;
		memcpy(l->lineage, lin, sizeof(lin));
		memcpy(l->lineage_hex, lineage, 33);
		c->p = l;
		snprintf(path, sizeof(path), "%s/%s", e->dir, lineage);
		l->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (l->dir_fd < 0)
			return -errno;
		l->tags_fd = openat(l->dir_fd, "tags", O_RDONLY | O_CLOEXEC);
		if (l->tags_fd < 0 || pdev_local_open(&l->dev, l->dir_fd, path, PDEV_BIT(PDEV_DATA), 0, NULL) < 0) {
			report(c, ENGINE_FSCK_POOL_FILES, 0, 0, 0, -ENOENT);
			return -EUCLEAN;
		}
		err = pool_header_check(l->tags_fd, lin, &l->chunk_size, &l->encrypted);
		if (err) {
			report(c, ENGINE_FSCK_POOL_HEADER, 0, 0, 0, err);
			return -EUCLEAN;
		}
		l->chunk_shift = (unsigned)__builtin_ctz(l->chunk_size);
	}
	if (fstat(c->p->tags_fd, &st) < 0)
		return -errno;
	if (st.st_size < POOL_HDR_BYTES || (st.st_size - POOL_HDR_BYTES) % sizeof(struct chunk_tag))
		report(c, ENGINE_FSCK_POOL_TAGS_LEN, 0, 0, (uint64_t)st.st_size, 0);
	c->nslots = st.st_size > POOL_HDR_BYTES ? ((uint64_t)st.st_size - POOL_HDR_BYTES) / sizeof(struct chunk_tag)
						: 0;
	if (c->open && c->nslots > c->open->nslots)
		c->nslots = c->open->nslots;          /* tail being extended right now */
	if (!c->open && c->nslots) {
		void *m;

		c->tags_map_len = (size_t)(POOL_HDR_BYTES + c->nslots * sizeof(struct chunk_tag));
		m = mmap(NULL, c->tags_map_len, PROT_READ, MAP_SHARED, c->p->tags_fd, 0);
		if (m == MAP_FAILED)
			return -errno;
		c->tags = (const struct chunk_tag *)((const uint8_t *)m + POOL_HDR_BYTES);
	}
	return pdev_size(c->p->dev, PDEV_DATA, &c->data_bytes);
}

/* ============================ pool check =============================== */

static int count_cb(void *ctx, uint64_t index, uint64_t slot)
{
	struct chk *c = ctx;
	const struct chunk_tag *t;

	if (slot >= c->nslots) {
		report(c, ENGINE_FSCK_MAP_RANGE, index, slot, c->nslots, 0);
		return 0;
	}
	if (c->refs[slot] < UINT32_MAX - 1)
		c->refs[slot]++;
	t = tag_at(c, slot);
	if ((slot + 1) << c->p->chunk_shift > c->data_bytes)
		report(c, ENGINE_FSCK_SLOT_BEYOND, index, slot, 0, 0);
	else if (!has_data(c, slot) || !t || memcmp(t->mac, zero_mac, sizeof(zero_mac)) == 0)
		report(c, ENGINE_FSCK_SLOT_EMPTY, index, slot, 0, 0);
	else if (le64toh(t->index_le) != index)
		report(c, ENGINE_FSCK_SLOT_INDEX, index, slot, le64toh(t->index_le), 0);
	return 0;
}

static void map_scan(struct chk *c, int dfd, const char *name, const char *id, struct engine_pool_report *r)
{
	struct map_header h;
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC), err;

	c->map = id;
	if (fd < 0) {
		report(c, ENGINE_FSCK_MAP_HEADER, 0, 0, 0, -errno);
		goto out;
	}
	err = map_header_load(c->p, fd, id, &h);
	if (err) {
		report(c, ENGINE_FSCK_MAP_HEADER, 0, 0, 0, err);
		goto out;
	}
	r->maps++;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < map_entry_off(chunk_count(h.size, c->p->chunk_size))) {
		report(c, ENGINE_FSCK_MAP_SHORT, 0, 0, (uint64_t)st.st_size, 0);
		goto out;
	}
	err = map_fd_foreach(c->p, fd, count_cb, c);
	if (err)
		report(c, ENGINE_FSCK_MAP_SHORT, 0, 0, (uint64_t)st.st_size, err);
out:
	if (fd >= 0)
		close(fd);
	c->map = NULL;
}

/* Open writable volumes of pool p, users raised, frozen. */
static struct vol **freeze(struct engine *e, struct pool *p, size_t *n)
{
	struct vol **list;

	(void)engine_vols_of_pool(e, p, &list, n);     /* short of memory: those listed */
	for (size_t i = 0; i < *n; i++)
		vol_freeze(list[i]);
	return list;
}

static void thaw(struct vol **list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		vol_thaw(list[i]);
		engine_vol_close(list[i]);
	}
	free(list);
}

/* Compare the maps' counts with the open pool's memory; count leaks. */
static void counts_compare(struct chk *c, struct engine_pool_report *r)
{
	struct pool *p = c->open;
	uint64_t open_slots = p ? pool_nslots(p) : 0;

	for (uint64_t s = 0; s < c->nslots; s++) {
		uint32_t disk = c->refs[s], mem = p && s < open_slots ? pool_refcount(p, s) : 0;

		r->referenced += disk > 0;
		if (p && disk && (mem == 0 || mem == POOL_PENDING))
			report(c, ENGINE_FSCK_SLOT_FREE, 0, s, mem, 0);
		else if (p && mem != POOL_PENDING && mem != disk)
			report(c, ENGINE_FSCK_REFCOUNT, 0, s, mem, 0);
		else if (!disk && mem == 0 && has_data(c, s)) {
			r->leaked++;
			r->leaked_bytes += c->p->chunk_size;
		}
	}
}

static const enum engine_fsck_what tree_what[] = {
	[TREE_CHK_PAGE_HASH] = ENGINE_FSCK_PAGE_HASH,
	[TREE_CHK_PAGE_RANGE] = ENGINE_FSCK_PAGE_HASH,
	[TREE_CHK_PAGE_COUNT] = ENGINE_FSCK_PAGE_COUNT,
	[TREE_CHK_SLOT_RANGE] = ENGINE_FSCK_MAP_RANGE,
	[TREE_CHK_SLOT_BEYOND] = ENGINE_FSCK_SLOT_BEYOND,
	[TREE_CHK_SLOT_FREE] = ENGINE_FSCK_SLOT_FREE,
	[TREE_CHK_SLOT_COUNT] = ENGINE_FSCK_REFCOUNT,
};

static void tree_issue_cb(void *ctx, const struct tree_chk_issue *is)
{
	struct chk *c = ctx;

	c->map = is->map;
	report(c, tree_what[is->what], is->index, is->what == TREE_CHK_PAGE_HASH ? is->index : is->slot, is->count,
	       is->what == TREE_CHK_PAGE_HASH ? -EUCLEAN : 0);
	c->map = NULL;
}

/* Format 2: the engine opens the pool (replaying a journal a crash left),
 * writers are frozen, the trees are walked and the counts recomputed
 * (tree_check); free slots that still hold data are leaks. */
static int pool_check_v2(struct engine *e, const char *lineage, engine_fsck_cb cb, void *ctx,
			 struct engine_pool_report *r)
{
	struct vol **frozen;
	size_t nfrozen = 0;
	struct pool *p;
	struct chk c;
	uint32_t *stored = NULL;
	struct pool *o = engine_pool_find(e, lineage);
	int was_open = o != NULL, rolled, err;

	if (o)
		engine_pool_put(o);
	memset(&c, 0, sizeof(c));
	c.e = e;
	c.cb = cb;
	c.ctx = ctx;
	err = engine_pool_get_fsck(&p, e, lineage, &rolled);
	if (err) {
		if (err == -EUCLEAN) {
			struct engine_fsck_issue is = { rolled ? ENGINE_FSCK_ROLLED_BACK : ENGINE_FSCK_POOL_HEADER,
							lineage, NULL, 0, 0, 0, rolled ? 0 : err, 0 };

			c.problems++;
			if (cb)
				cb(ctx, &is);
			return c.problems;
		}
		return err;
	}
	c.p = p;
	r->open = was_open;
	r->format = 2;
	r->chunk_size = p->chunk_size;
	r->encrypted = p->encrypted;
	r->usable = 1;
	frozen = freeze(e, p, &nfrozen);
	err = tree_check(p, tree_issue_cb, &c, &stored, &c.nslots, &r->maps);
	if (err >= 0)
		(void)pdev_size(p->dev, PDEV_DATA, &c.data_bytes);
	r->slots = c.nslots;
	r->data_bytes = c.data_bytes;
	if (err >= 0)
		err = data_extents(&c);
	for (uint64_t s = 0; err >= 0 && s < c.nslots; s++) {
		r->referenced += stored[s] != 0;
		if (!stored[s] && has_data(&c, s)) {
			r->leaked++;
			r->leaked_bytes += p->chunk_size;
		}
	}
	if (err >= 0 && c.probe_err)
		err = c.probe_err;
	thaw(frozen, nfrozen);
	free(stored);
	free(c.has_data);
	free(c.probed);
	engine_pool_put(p);
	return err < 0 ? err : c.problems;
}

int engine_pool_check(struct engine *e, const char *lineage, engine_fsck_cb cb, void *ctx,
		      struct engine_pool_report *r)
{
	struct vol **frozen = NULL;
	size_t nfrozen = 0;
	struct chk c;
	struct dirent *de;
	char id[ENGINE_ID_MAX];
	DIR *d = NULL;
	int err, dfd, tmp;

	memset(r, 0, sizeof(*r));
	if (engine_lineage_parse(lineage, (uint8_t[CHUNK_LINEAGE_BYTES]){ 0 }) == 0 && pool_is_v2(e, lineage) == 1)
		return pool_check_v2(e, lineage, cb, ctx, r);
	err = chk_init(&c, e, lineage, cb, ctx);
	if (err) {
		int problems = c.problems;

		chk_fini(&c);
		return err == -EUCLEAN ? problems : err;
	}
	r->open = c.open != NULL;
	r->format = 1;
	r->chunk_size = c.p->chunk_size;
	r->encrypted = c.p->encrypted;
	r->usable = c.problems == 0;
	dfd = maps_dir_open(e, lineage);
	if (dfd < 0) {
		c.map = NULL;
		report(&c, ENGINE_FSCK_POOL_FILES, 0, 0, 0, dfd);
		r->usable = 0;
		goto out;
	}
	d = fdopendir(dfd);
	if (!d) {
		err = -errno;
		close(dfd);
		goto out;
	}
	if (c.open)
		frozen = freeze(e, c.open, &nfrozen);
	/* Lengths are read with the writers frozen. */
	{
		(void)pdev_size(c.p->dev, PDEV_DATA, &c.data_bytes);
		if (c.open && c.nslots > pool_nslots(c.open))
			c.nslots = pool_nslots(c.open);
	}
	r->slots = c.nslots;
	r->data_bytes = c.data_bytes;
	c.refs = calloc(c.nslots + 1, sizeof(*c.refs));
	err = c.refs ? data_extents(&c) : -ENOMEM;
	while (!err && (de = readdir(d))) {
		if ((tmp = map_file_id(de->d_name, id)) < 0)
			continue;
		if (tmp) {
			c.map = id;
			report(&c, ENGINE_FSCK_TMP_MAP, 0, 0, 0, 0);
			c.map = NULL;
			continue;
		}
		map_scan(&c, dirfd(d), de->d_name, id, r);
	}
	if (!err)
		counts_compare(&c, r);
	if (frozen)
		thaw(frozen, nfrozen);
out:
	if (d)
		closedir(d);
	err = err ? err : c.problems;
	chk_fini(&c);
	return err;
}

/* =========================== chunk check =============================== */

struct verify {
	struct chk *c;
	const struct kms_dk *dk;     /* NULL: unencrypted lineage */
	uint8_t *buf;
	int bad;
};

static int chunk_check(struct verify *vf, struct pool *p, const struct chunk_tag *t, uint64_t index, uint64_t slot)
{
	int err = t ? pool_chunk_load(p, slot, vf->buf) : -EUCLEAN;

	if (!err)
		err = pool_chunk_open(p, vf->dk, index, vf->buf, vf->buf, t);
	sodium_memzero(vf->buf, p->chunk_size);
	if (err) {
		vf->bad++;
		report(vf->c, ENGINE_FSCK_CHUNK_BAD, index, slot, 0, err);
	}
	return 0;
}

static int verify_cb(void *ctx, uint64_t index, uint64_t slot)
{
	struct verify *vf = ctx;

	return chunk_check(vf, vf->c->p, tag_at(vf->c, slot), index, slot);
}

static int open_vol_cb(void *ctx, uint64_t index, uint64_t slot)
{
	struct verify *vf = ctx;
	struct pool *p = vf->c->p;

	(void)chunk_check(vf, p, slot < pool_nslots(p) ? pool_tag(p, slot) : NULL, index, slot);
	return 0;
}

/* An open volume: chunk by chunk under its locks (vol_chunks_foreach), so
 * the mount keeps running. */
static int check_open_vol(struct verify *vf, struct vol *v)
{
	return vol_chunks_foreach(v, open_vol_cb, vf);
}

/* Format 2: the chunks of one leaf [first, first + cnt) re-read with their
 * entries under their stripes (vol_chunks_load: one read per run of
 * slots), so writers go on and a chunk replaced meanwhile is checked as it
 * is now.  If the window cannot be read whole, chunk by chunk, so each bad
 * one is reported; a map page that fails its hash is the caller's. */
static int check_leaf_v2(struct verify *vf, struct vol *v, uint64_t first, uint64_t cnt, uint8_t *win)
{
	struct pool *p = v->pool;
	uint32_t cs = p->chunk_size;
	struct chunk_tag tags[VOL_LOAD_MAX];
	struct tree_ent ents[TREE_FANOUT];
	uint8_t present[VOL_LOAD_MAX];
	int r = vol_chunks_load(v, first, cnt, win, tags, present), e2;

	if (r < 0 && (e2 = tree_get(p, v->root, first, cnt, ents)) < 0)
		return e2;
	for (uint64_t j = 0; j < cnt; j++) {
		int rc = 0;

		if (r < 0) {
			rc = vol_chunk_load(v, first + j, win + j * cs, &tags[j]);
			present[j] = rc == 1;
		}
		if (rc >= 0 && present[j])
			rc = pool_chunk_open(p, vf->dk, first + j, win + j * cs, vf->buf, &tags[j]);
		sodium_memzero(vf->buf, cs);
		if (rc < 0) {
			vf->bad++;
			report(vf->c, ENGINE_FSCK_CHUNK_BAD, first + j, 0, 0, rc);
		}
	}
	return 0;
}

static int map_check_v2(struct engine *e, const char *lineage, const char *id, const struct kms_dk *dk,
			engine_fsck_cb cb, void *ctx)
{
	struct verify vf = { 0 };
	struct vol *v;
	struct chk c;
	uint8_t *win = NULL;
	int err;

	memset(&c, 0, sizeof(c));
	c.e = e;
	c.cb = cb;
	c.ctx = ctx;
	c.map = id;
	vf.c = &c;
	vf.dk = dk;
	err = engine_vol_open(&v, e, lineage, id, 0);
	if (err)
		return err;
	if (v->pool->encrypted && !dk) {
		engine_vol_close(v);
		return -ENOKEY;
	}
	vf.buf = sodium_malloc(v->pool->chunk_size);
	win = malloc((size_t)VOL_LOAD_MAX * v->pool->chunk_size);
	if (!vf.buf || !win) {
		err = -ENOMEM;
	} else {
		/* leaf by leaf, holes skipped (as tree_foreach) */
		uint64_t n = chunk_count(vol_size(v), v->pool->chunk_size), idx = 0;

		while (!err && (idx = tree_seek(v->pool, v->root, idx, n, 1)) < n) {
			uint64_t leaf = idx & ~(uint64_t)(TREE_FANOUT - 1);
			uint64_t cnt = n - leaf < TREE_FANOUT ? n - leaf : TREE_FANOUT;

			err = check_leaf_v2(&vf, v, leaf, cnt, win);
			idx = leaf + cnt;
		}
	}
	if (err == -EUCLEAN) {               /* a map page failed its hash */
		vf.bad++;
		report(&c, ENGINE_FSCK_PAGE_HASH, 0, 0, 0, err);
		err = 0;
	}
	sodium_free(vf.buf);
	free(win);
	engine_vol_close(v);
	return err < 0 ? err : vf.bad;
}

int engine_map_check(struct engine *e, const char *lineage, const char *id, const struct kms_dk *dk,
		     engine_fsck_cb cb, void *ctx)
{
	struct verify vf = { 0 };
	struct vol *v = NULL;
	struct chk c;
	char name[ENGINE_ID_MAX + 8];
	int err, fd = -1, dfd;

	if (!id || !*id || strchr(id, '/') || strlen(id) >= ENGINE_ID_MAX)
		return -EINVAL;
	if (pool_is_v2(e, lineage) == 1)
		return map_check_v2(e, lineage, id, dk, cb, ctx);
	err = chk_init(&c, e, lineage, NULL, NULL);
	if (err) {
		chk_fini(&c);
		return err;
	}
	c.cb = cb;
	c.ctx = ctx;
	c.map = id;
	vf.c = &c;
	if (c.p->encrypted && !dk) {
		err = -ENOKEY;
		goto out;
	}
	vf.dk = dk;
	vf.buf = sodium_malloc(c.p->chunk_size);
	if (!vf.buf) {
		err = -ENOMEM;
		goto out;
	}
	if (engine_vol_lookup(&v, e, id) == 0) {
		if (strcmp(v->pool->lineage_hex, lineage) == 0)
			err = check_open_vol(&vf, v);
		else
			err = -EUCLEAN;
		engine_vol_close(v);
		goto out;
	}
	dfd = maps_dir_open(e, lineage);
	if (dfd < 0) {
		err = dfd;
		goto out;
	}
	snprintf(name, sizeof(name), "%s.map", id);
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	err = fd < 0 ? -errno : 0;
	close(dfd);
	if (!err)
		err = map_fd_foreach(c.p, fd, verify_cb, &vf);
out:
	if (fd >= 0)
		close(fd);
	sodium_free(vf.buf);
	chk_fini(&c);
	return err < 0 ? err : vf.bad;
}

/* ============================== repairs ================================ */

int engine_pool_reclaim(struct engine *e, const char *lineage, uint64_t *slots)
{
	struct pool *p;
	struct chk c;
	int err;

	*slots = 0;
	err = engine_pool_get(&p, e, lineage);
	if (err)
		return err;
	if (p->version == 2) {
		memset(&c, 0, sizeof(c));
		c.p = p;
		err = tree_commit(p);            /* slots freed so far: punched and free */
		if (!err)
			err = pdev_size(p->dev, PDEV_DATA, &c.data_bytes);
		if (!err) {
			c.nslots = c.data_bytes >> p->chunk_shift;
			err = data_extents(&c);
		}
		if (!err)
			err = tree_reclaim(p, c.nslots, has_data_cb, &c, slots);
		if (!err && c.probe_err)
			err = c.probe_err;
		free(c.has_data);
		free(c.probed);
		engine_pool_put(p);
		return err;
	}
	err = chk_init(&c, e, lineage, NULL, NULL);      /* finds p open: holds it */
	if (!err)
		err = data_extents(&c);
	for (uint64_t s = 0; !err && s < c.nslots;) {
		/* A run of leaked slots, busy while punched (the allocator
		 * skips them meanwhile), then one punch for the run. */
		uint64_t run = pool_claim_run(p, s, c.nslots - s, has_data_cb, &c);
		int perr;

		if (!run) {
			s++;
			continue;
		}
		perr = pool_punch_run(p, s, run);
		if (perr)
			err = perr;
		else
			*slots += run;
		for (uint64_t k = 0; k < run; k++) {
			uint64_t x = s + k;

			pool_free_pending(p, &x, 1);
		}
		s += run;
	}
	chk_fini(&c);
	engine_pool_put(p);
	return err;
}

/* Format 2: the entry becomes a hole in one commit; the slot loses its
 * reference (freed by that commit if it was the last). */
static int quarantine_v2(struct engine *e, struct pool *p, const char *id, uint64_t index)
{
	struct tree_ent te, hole;
	struct vol *v = NULL;
	uint32_t ri;
	int err = tree_root_find(p, id, &ri);

	if (err)
		return err;
	if (index >= chunk_count(tree_root_size(p, ri), p->chunk_size))
		return -EINVAL;
	if (engine_vol_lookup(&v, e, id) == 0)
		vol_freeze(v);                   /* readers and writers wait */
	memset(&hole, 0, sizeof(hole));
	err = tree_get(p, ri, index, 1, &te);
	if (!err && te.slot1)
		err = tree_set(p, ri, index, 1, &hole);
	if (!err && te.slot1)
		err = tree_commit(p);
	if (v) {
		vol_thaw(v);
		engine_vol_close(v);
	}
	return err ? err : te.slot1 != 0;
}

int engine_map_quarantine(struct engine *e, const char *lineage, const char *id, uint64_t index)
{
	struct map_header h;
	struct pool *p;
	struct vol *v = NULL;
	char name[ENGINE_ID_MAX + 8];
	uint64_t ent = 0, zero = 0;
	int err, fd = -1, dfd;

	if (!id || !*id || strchr(id, '/') || strlen(id) >= ENGINE_ID_MAX)
		return -EINVAL;
	err = engine_pool_get(&p, e, lineage);
	if (err)
		return err;
	if (p->version == 2) {
		err = quarantine_v2(e, p, id, index);
		engine_pool_put(p);
		return err;
	}
	dfd = openat(p->dir_fd, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		err = -errno;
		goto out;
	}
	snprintf(name, sizeof(name), "%s.map", id);
	fd = openat(dfd, name, O_RDWR | O_CLOEXEC);
	err = fd < 0 ? -errno : 0;
	close(dfd);
	if (err)
		goto out;
	if (engine_vol_lookup(&v, e, id) == 0)
		vol_freeze(v);        /* readers and writers wait */
	err = map_header_load(p, fd, id, &h);
	if (!err && index >= chunk_count(h.size, p->chunk_size))
		err = -EINVAL;
	if (!err && pread(fd, &ent, sizeof(ent), (off_t)map_entry_off(index)) != (ssize_t)sizeof(ent))
		err = -EUCLEAN;
	ent = le64toh(ent);
	if (!err && ent) {
		if (pwrite(fd, &zero, sizeof(zero), (off_t)map_entry_off(index)) != (ssize_t)sizeof(zero) ||
		    fdatasync(fd) < 0)
			err = errno ? -errno : -EIO;
		else if (pool_unref(p, ent - 1))          /* durable; once every open map is: reuse */
			pool_punch_free(p, (uint64_t[]){ ent - 1 }, 1);
	}
	if (v) {
		vol_thaw(v);
		engine_vol_close(v);
	}
out:
	if (fd >= 0)
		close(fd);
	engine_pool_put(p);
	return err ? err : ent != 0;
}

int engine_map_tmp_remove(struct engine *e, const char *lineage, const char *id)
{
	char name[ENGINE_ID_MAX + 16];
	int dfd = maps_dir_open(e, lineage), err = 0;

	if (dfd < 0)
		return dfd == -ENOENT && pool_is_v2(e, lineage) == 1 ? -ENOENT : dfd;   /* format 2: none */
	if (!*id || strchr(id, '/') || strlen(id) >= ENGINE_ID_MAX)
		err = -EINVAL;
	snprintf(name, sizeof(name), ".tmp-%s.map", id);
	if (!err && (unlinkat(dfd, name, 0) < 0 || fsync(dfd) < 0))
		err = -errno;
	close(dfd);
	return err;
}
