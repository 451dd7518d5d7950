// SPDX-License-Identifier: MIT
/*
 * volume_layout.c - TCase "core", layout half: growing a volume (and sizes
 * the engine cannot map), SEEK_DATA / SEEK_HOLE, thin volumes whose holes
 * must stay holes, read-only handles, handle sharing and the pool / map
 * life cycle.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "volume_fx.h"

START_TEST(test_extend)
{
	struct fx f;
	const uint64_t size = 10000, big = 3 * MiB + 5;
	uint8_t buf[12288], got[12288];
	struct vol *v;
	uint64_t seed = 13;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	/* Fill the volume to its last byte (the last chunk is partial). */
	xwrite(v, buf, size, 0);
	ck_assert_int_eq(vol_write(v, buf, 10, size), -EFBIG);
	ck_assert_int_eq(vol_extend(v, size - 1), -EINVAL);
	ck_assert_int_eq(vol_extend(v, 0), -EINVAL);
	ck_assert_int_eq(vol_extend(v, size), 0);
	ck_assert_uint_eq(vol_size(v), size);
	ck_assert_int_eq(vol_extend(v, big), 0);
	ck_assert_uint_eq(vol_size(v), big);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").size, big);
	/* Old data intact; the tail of the old last chunk and the new area
	 * read as zeros. */
	memset(got, 0xcc, sizeof(got));
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, buf, size);
	ck_assert(all_zero(got + size, sizeof(got) - size));
	{
		uint8_t *z = xmalloc(big - size);

		memset(z, 0xcc, big - size);
		xread(v, z, big - size, size);
		ck_assert(all_zero(z, big - size));
		free(z);
	}
	/* The new area is writable up to the new end. */
	xwrite(v, buf, 100, big - 100);
	ck_assert_int_eq(vol_write(v, buf, 1, big), -EFBIG);
	xread(v, got, 100, big - 100);
	ck_assert_mem_eq(got, buf, 100);
	ck_assert_int_eq(vol_extend(v, big - 1), -EINVAL);
	engine_vol_close(v);
	/* The size is persistent. */
	fx_engine_restart(&f);
	v = fx_open(&f, "vol1", 0);
	ck_assert_uint_eq(vol_size(v), big);
	ck_assert_int_eq(vol_extend(v, big + 4096), -EROFS);
	xread(v, got, 100, big - 100);
	ck_assert_mem_eq(got, buf, 100);
	engine_vol_close(v);
	/* A map of size 0 can be extended. */
	fx_create(&f, 0, "empty", 0);
	v = fx_open(&f, "empty", 1);
	ck_assert_int_eq(vol_read(v, got, 10, 0), 0);
	ck_assert_int_eq(vol_write(v, buf, 10, 0), -EFBIG);
	ck_assert_int_eq(vol_seek(v, 0, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(vol_extend(v, 8192), 0);
	xwrite(v, buf, 8192, 0);
	xread(v, got, 8192, 0);
	ck_assert_mem_eq(got, buf, 8192);
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* An extension the engine cannot map must fail cleanly and leave the
 * volume usable at its old size. */
/* Regression (found by this suite, since fixed): fs/vol_handle.c vol_extend()
 * used to unmap the old map and set v->size before mapping the grown file;
 * when that mmap failed (new_size 2^60 on tmpfs: ftruncate to 2 PiB works,
 * mmap fails with ENOMEM) it left v->map NULL with the new size in memory
 * and on disk, and the next vol_read/vol_write dereferenced NULL. */
START_TEST(test_extend_unmappable)
{
	struct fx f;
	uint8_t buf[4096], got[4096];
	struct vol *v;
	uint64_t seed = 17;
	int r;

	fx_init(&f, 0);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 0);
	r = vol_extend(v, 1ull << 60);
	printf("vol_extend(2^60) = %d (%s)\n", r, r ? strerror(-r) : "ok");
	fflush(stdout);
	if (r != 0) {
		ck_assert_msg(vol_size(v) == MiB, "failed extend changed the size to %llu",
			      (unsigned long long)vol_size(v));
		memset(got, 0, sizeof(got));
		ck_assert_int_eq(vol_read(v, got, sizeof(got), 0), (ssize_t)sizeof(got));
		ck_assert_mem_eq(got, buf, sizeof(got));
		ck_assert_int_eq(vol_write(v, buf, sizeof(buf), 4096), (ssize_t)sizeof(buf));
		ck_assert_int_eq(vol_write(v, buf, 1, MiB), -EFBIG);
	} else {
		ck_assert_uint_eq(vol_size(v), 1ull << 60);
		xread(v, got, sizeof(got), 0);
		ck_assert_mem_eq(got, buf, sizeof(got));
	}
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* A volume whose size is close to 2^64 must be refused, or work. */
/* Regression (found by this suite, since fixed): engine_map_create()
 * accepts any size and chunk_count() (fs/chunk_math.c) used to wrap for
 * size > UINT64_MAX - chunk_size + 1, so a map of size UINT64_MAX got 0
 * entries and vol_open mapped only its header: vol_write at 0 "succeeded"
 * through whatever memory followed the mapping, vol_read at 0 returned
 * -EUCLEAN and vol_write at 1 TiB died with SIGSEGV. */
START_TEST(test_huge_size)
{
	struct fx f;
	uint8_t buf[4096], got[4096];
	struct vol *v = NULL;
	int r;

	memset(buf, 0x3c, sizeof(buf));
	fx_init(&f, 0);
	r = engine_map_create(f.e, f.lhex[0], "huge", UINT64_MAX);
	ck_assert_msg(r == 0 || r == -EINVAL || r == -EFBIG, "engine_map_create(UINT64_MAX) = %d", r);
	if (r == 0) {
		r = engine_vol_open(&v, f.e, f.lhex[0], "huge", 1);
		ck_assert_msg(r == 0 || r == -EINVAL || r == -EFBIG || r == -ENOMEM || r == -EUCLEAN,
			      "vol_open = %d", r);
	}
	if (r == 0) {
		ck_assert_int_eq(vol_attach(v, NULL), 0);
		/* 0, 4 KiB, 4 MiB, ... 4 EiB: stop before the shift wraps. */
		for (uint64_t off = 0; off < UINT64_MAX / 2; off = off > (UINT64_MAX >> 11) ? UINT64_MAX : off ? off << 10 : 4096) {
			ck_assert_int_eq(vol_write(v, buf, sizeof(buf), off), (ssize_t)sizeof(buf));
			memset(got, 0, sizeof(got));
			ck_assert_int_eq(vol_read(v, got, sizeof(got), off), (ssize_t)sizeof(got));
			ck_assert_mem_eq(got, buf, sizeof(got));
		}
		engine_vol_close(v);
	}
	fx_fini(&f);
}
END_TEST

START_TEST(test_seek)
{
	struct fx f;
	const uint64_t nchunks = 4096, size = nchunks * 4096 - 1000;
	static const uint64_t data_chunks[] = { 1, 2, 10, 511, 512, 600, 1023, 1024, 1536, 3000, 4095 };
	uint8_t *is_data = xcalloc(nchunks), buf[4096];
	struct vol *v;

	memset(buf, 0x5a, sizeof(buf));
	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	ck_assert_int_eq(vol_seek(v, 0, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(vol_seek(v, 0, SEEK_HOLE), 0);
	ck_assert_int_eq(vol_seek(v, 123, SEEK_HOLE), 123);
	for (size_t i = 0; i < sizeof(data_chunks) / sizeof(data_chunks[0]); i++) {
		uint64_t c = data_chunks[i], n = c * 4096 + 4096 <= size ? 4096 : size - c * 4096;

		xwrite(v, buf, n, c * 4096);
		is_data[c] = 1;
	}
	/* Data chunk 1536 then discarded again: its map page stays allocated. */
	ck_assert_int_eq(vol_discard(v, 1536 * 4096, 4096), 0);
	is_data[1536] = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t c = 0; c < nchunks; c++) {
			for (uint64_t d = 0; d < 2; d++) {
				uint64_t off = c * 4096 + (d ? 4095 : 0);
				int64_t wd = -ENXIO, wh = (int64_t)size;

				if (off >= size)
					continue;
				for (uint64_t k = c; k < nchunks; k++)
					if (is_data[k]) {
						wd = (int64_t)(k == c ? off : k * 4096);
						break;
					}
				for (uint64_t k = c; k < nchunks; k++)
					if (!is_data[k]) {
						wh = (int64_t)(k == c ? off : k * 4096);
						break;
					}
				REQUIRE(vol_seek(v, off, SEEK_DATA) == wd, "SEEK_DATA %llu: %lld, want %lld",
					(unsigned long long)off, (long long)vol_seek(v, off, SEEK_DATA), (long long)wd);
				REQUIRE(vol_seek(v, off, SEEK_HOLE) == wh, "SEEK_HOLE %llu: %lld, want %lld",
					(unsigned long long)off, (long long)vol_seek(v, off, SEEK_HOLE), (long long)wh);
			}
		}
		/* Second pass: after a reopen (map read from disk). */
		engine_vol_close(v);
		fx_engine_restart(&f);
		v = fx_open(&f, "vol1", 0);
	}
	ck_assert_int_eq(vol_seek(v, size, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(vol_seek(v, size, SEEK_HOLE), -ENXIO);
	ck_assert_int_eq(vol_seek(v, UINT64_MAX, SEEK_DATA), -ENXIO);
	engine_vol_close(v);
	free(is_data);
	fx_fini(&f);
}
END_TEST

/* SEEK_DATA over a huge thin volume must not walk every chunk, nor fill
 * the holes of the map file. */
/* Regression (found by this suite on tmpfs, since fixed): fs/volume.c
 * vol_seek() used to read map_get(v, i) through the MAP_SHARED mapping
 * before asking lseek(map_fd, SEEK_DATA) to skip a hole; on tmpfs a read
 * fault on a hole allocates the page, so lseek then found "data" there and
 * the loop walked every chunk: SEEK_DATA from 0 on a 100 GiB volume with
 * data at 60 GiB took ~0.5 s (6 ms on ext4) and grew the map file from
 * 12 KiB to 200 MiB. */
START_TEST(test_seek_thin)
{
	FX_FORMAT1_ONLY("map pages are blocks of one pages file");
	struct fx f;
	char map[PATH_MAX + 128];
	const uint64_t size = 100 * GiB;
	uint8_t buf[4096];
	struct vol *v;
	double t0, t;

	memset(buf, 0x11, sizeof(buf));
	fx_init(&f, 0);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	xwrite(v, buf, sizeof(buf), 60 * GiB);
	xwrite(v, buf, sizeof(buf), size - 4096);
	fx_map_path(&f, 0, "vol1", map, sizeof(map));
	ck_assert_int_le(file_blocks(map) * 512, (int64_t)(64 * KiB));
	t0 = now_s();
	ck_assert_int_eq(vol_seek(v, 0, SEEK_DATA), (int64_t)(60 * GiB));
	ck_assert_int_eq(vol_seek(v, 60 * GiB + 4096, SEEK_DATA), (int64_t)(size - 4096));
	ck_assert_int_eq(vol_seek(v, 60 * GiB, SEEK_HOLE), (int64_t)(60 * GiB + 4096));
	ck_assert_int_eq(vol_seek(v, size - 4096, SEEK_HOLE), (int64_t)size);
	t = now_s() - t0;
	printf("SEEK_DATA across a 100 GiB thin volume: %.3f ms; map file %lld KiB on disk after\n", t * 1e3,
	       (long long)(file_blocks(map) / 2));
	fflush(stdout);
	ck_assert_msg(t < 2.0, "seek took %.3f s", t);
	ck_assert_msg(file_blocks(map) * 512 <= (int64_t)(64 * KiB),
		      "SEEK_DATA allocated the map file's holes: %lld KiB on disk", (long long)(file_blocks(map) / 2));
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* Reading the holes of a thin volume must not fill the map file. */
/* Regression (found by this suite, since fixed; on tmpfs): fs/volume.c
 * read_locked() reads map entries with map_get() through the read-only
 * MAP_SHARED mapping of the map file; on tmpfs a read fault on a hole page
 * allocates it, so vol_read of 1 GiB of never-written space of a 100 GiB
 * volume grows its map file from 4 KiB to ~2 MiB on disk (in RAM), i.e.
 * 2 MiB per GiB read; reading a whole thin volume (a backup, dd) makes its
 * map as large as a thick one, and clones / SEEK_DATA / stats of it then
 * cost as much as for a fully written volume.  On ext4 nothing is
 * allocated.  vol_seek() already avoids this by asking lseek first; the
 * read path needs the same (or pread of the entries). */
START_TEST(test_read_holes_thin)
{
	FX_FORMAT1_ONLY("map pages are blocks of one pages file");
	struct fx f;
	uint8_t *buf = xmalloc(MiB);
	char map[PATH_MAX + 128];
	struct vol *v;
	int64_t before, after;

	fx_init(&f, 0);
	fx_create(&f, 0, "vol1", 100 * GiB);
	fx_map_path(&f, 0, "vol1", map, sizeof(map));
	v = fx_open(&f, "vol1", 0);
	before = file_blocks(map);
	for (uint64_t i = 0; i < 1024; i++) {
		xread(v, buf, MiB, 10 * GiB + i * MiB);
		REQUIRE(all_zero(buf, MiB), "hole at %llu MiB not zero", (unsigned long long)i);
	}
	after = file_blocks(map);
	printf("reading 1 GiB of holes: map file %lld KiB -> %lld KiB on disk\n", (long long)(before / 2),
	       (long long)(after / 2));
	fflush(stdout);
	ck_assert_msg(after * 512 <= (int64_t)(64 * KiB), "reading holes allocated the map file: %lld KiB",
		      (long long)(after / 2));
	engine_vol_close(v);
	free(buf);
	fx_fini(&f);
}
END_TEST

START_TEST(test_readonly)
{
	struct fx f;
	uint8_t buf[4096], got[4096];
	struct vol *v, *v2;
	uint64_t seed = 21;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 8192);
	engine_vol_close(v);
	v = fx_open(&f, "vol1", 0);
	ck_assert_int_eq(vol_write(v, buf, sizeof(buf), 0), -EROFS);
	ck_assert_int_eq(vol_write(v, buf, 1, 8192), -EROFS);
	ck_assert_int_eq(vol_discard(v, 0, 4096), -EROFS);
	ck_assert_int_eq(vol_extend(v, 2 * MiB), -EROFS);
	xread(v, got, sizeof(got), 8192);
	ck_assert_mem_eq(got, buf, sizeof(got));
	/* A writable open of a map open read-only gives the same handle and
	 * upgrades nothing. */
	ck_assert_int_eq(engine_vol_open(&v2, f.e, f.lhex[0], "vol1", 1), 0);
	ck_assert_ptr_eq(v2, v);
	ck_assert_int_eq(vol_write(v2, buf, sizeof(buf), 0), -EROFS);
	engine_vol_close(v2);
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	/* Read-only also when the map file itself is not writable. */
	if (fx_format() == 1) {
		char path[PATH_MAX + 128];

		fx_map_path(&f, 0, "vol1", path, sizeof(path));
		ck_assert_int_eq(chmod(path, 0400), 0);
		v = fx_open(&f, "vol1", 0);
		xread(v, got, sizeof(got), 8192);
		ck_assert_mem_eq(got, buf, sizeof(got));
		engine_vol_close(v);
	}
	fx_fini(&f);
}
END_TEST

START_TEST(test_handles)
{
	struct fx f;
	struct vol *v, *v2, *v3;
	char hex[33];
	uint8_t lin[CHUNK_LINEAGE_BYTES];
	char longid[ENGINE_ID_MAX + 8];

	fx_init(&f, 0);
	/* Lineage ids. */
	ck_assert_int_eq(engine_lineage_parse(f.lhex[0], lin), 0);
	ck_assert_mem_eq(lin, f.lin[0], sizeof(lin));
	engine_lineage_format(lin, hex);
	ck_assert_str_eq(hex, f.lhex[0]);
	ck_assert_int_eq(engine_lineage_parse("00", lin), -EINVAL);
	ck_assert_int_eq(engine_lineage_parse("0123456789abcdef0123456789abcdeg", lin), -EINVAL);
	ck_assert_int_eq(engine_lineage_parse("0123456789abcdef0123456789abcdef0", lin), -EINVAL);
	/* Pools. */
	ck_assert_int_eq(engine_pool_create(f.e, f.lhex[0], 4096, 0), -EEXIST);
	ck_assert_int_eq(engine_pool_create(f.e, "nothex", 4096, 0), -EINVAL);
	{
		uint8_t l2[CHUNK_LINEAGE_BYTES];
		char h2[33];

		engine_lineage_generate(l2);
		engine_lineage_format(l2, h2);
		ck_assert_int_ne(memcmp(l2, f.lin[0], sizeof(l2)), 0);
		ck_assert_int_eq(engine_pool_create(f.e, h2, 4095, 0), -EINVAL);
		ck_assert_int_eq(engine_pool_create(f.e, h2, 2048, 0), -EINVAL);
		ck_assert_int_eq(engine_pool_create(f.e, h2, 131072, 0), -EINVAL);
		ck_assert_int_eq(engine_map_create(f.e, h2, "x", MiB), -ENOENT);
		ck_assert_int_eq(engine_pool_create(f.e, h2, 16384, 0), 0);
		ck_assert_int_eq(engine_pool_delete(f.e, h2), 0);
		ck_assert_int_eq(engine_map_create(f.e, h2, "x", MiB), -ENOENT);
	}
	/* Maps. */
	fx_create(&f, 0, "vol1", MiB);
	ck_assert_int_eq(engine_map_create(f.e, f.lhex[0], "vol1", MiB), -EEXIST);
	ck_assert_int_eq(engine_map_create(f.e, f.lhex[0], "a/b", MiB), -EINVAL);
	ck_assert_int_eq(engine_map_create(f.e, f.lhex[0], "", MiB), -EINVAL);
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	ck_assert_int_eq(engine_map_create(f.e, f.lhex[0], longid, MiB), -EINVAL);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], longid, 1), -EINVAL);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "a/b", 1), -EINVAL);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "nope", 1), -ENOENT);
	ck_assert_int_eq(engine_vol_lookup(&v, f.e, "vol1"), -ENOENT);
	/* Shared, refcounted handles. */
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1), 0);
	ck_assert_int_eq(engine_vol_open(&v2, f.e, f.lhex[0], "vol1", 1), 0);
	ck_assert_ptr_eq(v, v2);
	ck_assert_int_eq(engine_vol_lookup(&v3, f.e, "vol1"), 0);
	ck_assert_ptr_eq(v3, v);
	ck_assert_int_eq(vol_attach(v, NULL), 0);
	ck_assert(vol_is_attached(v2));
	engine_vol_close(v3);
	engine_vol_close(v2);
	ck_assert_int_eq(engine_vol_lookup(&v3, f.e, "vol1"), 0);
	engine_vol_close(v3);
	ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], "vol1"), -EBUSY);
	ck_assert_int_eq(engine_pool_delete(f.e, f.lhex[0]), -EBUSY);
	engine_vol_close(v);
	ck_assert_int_eq(engine_vol_lookup(&v3, f.e, "vol1"), -ENOENT);
	engine_vol_close(NULL);
	/* Pool deletion: refused while maps remain. */
	ck_assert_int_eq(engine_pool_delete(f.e, f.lhex[0]), -EBUSY);
	ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], "vol1"), 0);
	ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], "vol1"), -ENOENT);
	ck_assert_int_eq(engine_pool_delete(f.e, f.lhex[0]), 0);
	{
		char path[PATH_MAX + 64];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", f.pools, f.lhex[0]);
		ck_assert_int_eq(stat(path, &st), -1);
	}
	fx_fini(&f);
}
END_TEST

void volume_add_layout(TCase *tc)
{
	tcase_add_loop_test(tc, test_extend, 0, 2);
	tcase_add_test(tc, test_extend_unmappable);
	tcase_add_test(tc, test_huge_size);
	tcase_add_loop_test(tc, test_seek, 0, 2);
	tcase_add_test(tc, test_seek_thin);
	tcase_add_test(tc, test_read_holes_thin);
	tcase_add_loop_test(tc, test_readonly, 0, 2);
	tcase_add_test(tc, test_handles);
}
