// SPDX-License-Identifier: MIT
/*
 * volume_crash.c - TCase "crash": the power-cut ordering rules of
 * docs/format.md.  A SIGKILL keeps the page cache (tests/e2e/e2e_crash.sh
 * covers that); a power cut keeps only what was fsynced.  Here we check the
 * orderings directly:
 *   - a discard punches the old slot only after vol_sync made the map
 *     durable; a "power-cut image" (pool files as they are, map as last
 *     fsynced) taken before the sync still reads the old content;
 *   - a slot freed by one map is reused only once every other open map of
 *     the pool that dropped it earlier is durable (vol_sync, delete);
 *   - a clone fsyncs the pool's data and tags before its map.
 * fdatasync is wrapped (-Wl,--wrap=fdatasync) to record which files were
 * synced; the wrapper always calls the real one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "volume_fx.h"

/* ======================= fdatasync recorder =========================== */

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static ino_t synced[4096];
static unsigned nsynced;

int __wrap_fdatasync(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0) {
		pthread_mutex_lock(&sync_lock);
		if (nsynced < sizeof(synced) / sizeof(synced[0]))
			synced[nsynced++] = st.st_ino;
		pthread_mutex_unlock(&sync_lock);
	}
	return __real_fdatasync(fd);
}

static void sync_log_reset(void)
{
	pthread_mutex_lock(&sync_lock);
	nsynced = 0;
	pthread_mutex_unlock(&sync_lock);
}

/* 1 if the file at path was fdatasynced since the last reset. */
static int was_synced(const char *path)
{
	struct stat st;
	int found = 0;

	ck_assert_int_eq(stat(path, &st), 0);
	pthread_mutex_lock(&sync_lock);
	for (unsigned i = 0; i < nsynced && !found; i++)
		found = synced[i] == st.st_ino;
	pthread_mutex_unlock(&sync_lock);
	return found;
}

/* =============================== helpers ============================== */

static void *file_load(const char *path, size_t *len)
{
	int64_t n = file_size(path);
	void *b = xmalloc(n > 0 ? (size_t)n : 1);

	if (n > 0)
		file_pread(path, b, (size_t)n, 0);
	*len = (size_t)n;
	return b;
}

static void file_store(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, b, len), (ssize_t)len);
	close(fd);
}

static void file_copy(const char *from, const char *to)
{
	size_t n;
	void *b = file_load(from, &n);

	file_store(to, b, n);
	free(b);
}

/* ================================ tests =============================== */

/* A discard gives the old slot's space back only after vol_sync; a power
 * cut before it leaves the old map entry, which must still read. */
START_TEST(test_discard_punch_after_sync)
{
	FX_FORMAT1_ONLY("one journal commit orders data, tree and counts: test_v2_replay");
	struct fx f;
	uint8_t a[4096], got[4096], ct[4096], ct2[4096];
	char data[PATH_MAX + 64], map[PATH_MAX + 128], dir[PATH_MAX + 256], path[PATH_MAX + 400];
	void *durable_map;
	size_t map_len;
	uint64_t seed = 5, s0;
	struct vol *v;

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_map_path(&f, 0, "vol1", map, sizeof(map));
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, a, sizeof(a));
	xwrite(v, a, sizeof(a), 0);
	xwrite(v, a, sizeof(a), 8192);
	ck_assert_int_eq(vol_sync(v), 0);
	s0 = fx_slot(&f, 0, "vol1", 0);
	file_pread(data, ct, sizeof(ct), s0 * 4096);
	durable_map = file_load(map, &map_len);        /* the map as last fsynced */

	ck_assert_int_eq(vol_discard(v, 0, 4096), 0);
	ck_assert_uint_eq(fx_map_entry(&f, 0, "vol1", 0), 0);
	file_pread(data, ct2, sizeof(ct2), s0 * 4096);
	ck_assert_msg(memcmp(ct, ct2, sizeof(ct)) == 0, "slot %llu punched before the map change was durable",
		      (unsigned long long)s0);

	/* Power-cut image: pool files as they are now, the durable map. */
	snprintf(dir, sizeof(dir), "%s/cut", f.dir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, f.lhex[0]);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s/maps", dir, f.lhex[0]);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/%s/data", dir, f.lhex[0]);
	file_copy(data, path);
	fx_path(&f, 0, "tags", data, sizeof(data));
	snprintf(path, sizeof(path), "%s/%s/tags", dir, f.lhex[0]);
	file_copy(data, path);
	snprintf(path, sizeof(path), "%s/%s/maps/vol1.map", dir, f.lhex[0]);
	file_store(path, durable_map, map_len);
	{
		struct engine *e2;
		struct vol *v2;

		ck_assert_int_eq(engine_create(&e2, dir, log_cb, &f), 0);
		ck_assert_int_eq(engine_vol_open(&v2, e2, f.lhex[0], "vol1", 0), 0);
		ck_assert_int_eq(vol_attach(v2, fx_dk(&f, 0)), 0);
		ck_assert_int_eq(vol_read(v2, got, sizeof(got), 0), (ssize_t)sizeof(got));
		ck_assert_mem_eq(got, a, sizeof(a));
		engine_vol_close(v2);
		engine_destroy(e2);
	}

	/* After the sync the space goes back and the slot is reused. */
	fx_path(&f, 0, "data", data, sizeof(data));
	ck_assert_int_eq(vol_sync(v), 0);
	file_pread(data, ct2, sizeof(ct2), s0 * 4096);
	ck_assert(all_zero(ct2, sizeof(ct2)));
	xwrite(v, a, sizeof(a), 4096);
	ck_assert_uint_eq(fx_slot(&f, 0, "vol1", 1), s0);
	xread(v, got, sizeof(got), 0);
	ck_assert(all_zero(got, sizeof(got)));
	engine_vol_close(v);
	free(durable_map);
	fx_fini(&f);
}
END_TEST

/* vol1 and its clone vol2 share a slot; vol2 drops it in a write not yet
 * synced, then vol1 drops it too.  Before the slot is reused, vol2's map
 * must be durable (else after a power cut vol2 would point at another
 * chunk's data). */
START_TEST(test_shared_slot_waits_for_every_map)
{
	FX_FORMAT1_ONLY("one journal commit orders data, tree and counts: test_v2_replay");
	struct fx f;
	uint8_t a[4096], b[4096], c[4096];
	char map2[PATH_MAX + 128];
	struct vol *v1, *v2;
	uint64_t seed = 9, x;

	fx_init(&f, _i);
	fx_map_path(&f, 0, "vol2", map2, sizeof(map2));
	fx_create(&f, 0, "vol1", MiB);
	v1 = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, a, sizeof(a));
	rnd_fill(&seed, b, sizeof(b));
	rnd_fill(&seed, c, sizeof(c));
	xwrite(v1, a, sizeof(a), 0);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "vol2", 0, 0), 0);
	v2 = fx_open(&f, "vol2", 1);
	x = fx_slot(&f, 0, "vol1", 0);
	ck_assert_uint_eq(fx_slot(&f, 0, "vol2", 0), x);
	xwrite(v2, b, sizeof(b), 0);                 /* vol2 drops x (not synced) */
	xwrite(v1, c, sizeof(c), 0);                 /* vol1 drops x: now pending */
	sync_log_reset();
	ck_assert_int_eq(vol_sync(v1), 0);
	ck_assert_msg(was_synced(map2), "slot %llu freed while vol2's map (which dropped it) was not durable",
		      (unsigned long long)x);
	/* And with vol2 synced it is reusable. */
	xwrite(v1, a, sizeof(a), 4096);
	ck_assert_uint_eq(fx_slot(&f, 0, "vol1", 1), x);
	engine_vol_close(v2);
	engine_vol_close(v1);
	fx_fini(&f);
}
END_TEST

/* Deleting a snapshot frees the slots only it still references; an open
 * volume that dropped one of them in an unsynced write must be synced
 * first.  A clone syncs the pool's data and tags (unsynced writes). */
START_TEST(test_delete_and_clone_sync)
{
	FX_FORMAT1_ONLY("one journal commit orders data, tree and counts: test_v2_replay");
	struct fx f;
	uint8_t a[4096], b[4096], got[4096];
	char map1[PATH_MAX + 128], data[PATH_MAX + 64], tags[PATH_MAX + 64];
	struct vol *v1, *s;
	uint64_t seed = 13;

	fx_init(&f, _i);
	fx_map_path(&f, 0, "vol1", map1, sizeof(map1));
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_path(&f, 0, "tags", tags, sizeof(tags));
	fx_create(&f, 0, "vol1", MiB);
	v1 = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, a, sizeof(a));
	rnd_fill(&seed, b, sizeof(b));
	xwrite(v1, a, sizeof(a), 0);
	sync_log_reset();
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	ck_assert_msg(was_synced(data) && was_synced(tags), "clone made durable before the chunks it points at");
	xwrite(v1, b, sizeof(b), 0);                 /* vol1 drops the shared slot (not synced) */
	sync_log_reset();
	ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], "snap1"), 0);
	ck_assert_msg(was_synced(map1), "snapshot's last slot freed while vol1's map was not durable");
	xread(v1, got, sizeof(got), 0);
	ck_assert_mem_eq(got, b, sizeof(b));
	/* Rollback (replace) frees the replaced map's slots the same way. */
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap2", 0, 0), 0);
	xwrite(v1, a, sizeof(a), 0);
	ck_assert_int_eq(engine_map_create(f.e, f.lhex[0], "vol3", MiB), 0);
	s = fx_open(&f, "vol3", 1);
	xwrite(s, a, sizeof(a), 0);
	engine_vol_close(s);
	sync_log_reset();
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "snap2", "vol3", 0, 1), 0);
	ck_assert_msg(was_synced(map1), "replaced map's slots freed while vol1's map was not durable");
	s = fx_open(&f, "vol3", 0);
	xread(s, got, sizeof(got), 0);
	ck_assert_mem_eq(got, b, sizeof(b));
	engine_vol_close(s);
	engine_vol_close(v1);
	fx_fini(&f);
}
END_TEST

void volume_add_crash(TCase *tc)
{
	tcase_add_loop_test(tc, test_discard_punch_after_sync, 0, 2);
	tcase_add_loop_test(tc, test_shared_slot_waits_for_every_map, 0, 2);
	tcase_add_loop_test(tc, test_delete_and_clone_sync, 0, 2);
}
