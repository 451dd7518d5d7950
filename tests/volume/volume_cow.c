// SPDX-License-Identifier: MIT
/*
 * volume_cow.c - TCase "cow": snapshots and clones share chunks (copy on
 * write), cost follows the data written rather than the nominal size,
 * deleting a snapshot returns its space, rollback replaces a map, and the
 * exclusive-chunk statistics follow every rewrite.
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

/* ================================ cow ================================= */

/* _i: 0 unencrypted, 1 encrypted */
START_TEST(test_snapshot)
{
	struct fx f;
	const uint64_t size = 4 * MiB + 777, nchunks = (size + 4095) / 4096;
	uint8_t *refA = xmalloc(size), *refB, *refC, *touched = xcalloc(nchunks), *buf = xmalloc(512 * KiB);
	struct vol *v, *s, *c;
	struct engine_map_stats sv, ss;
	uint64_t seed = 31 + (uint64_t)_i, shared = 0;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, refA, size);
	memset(refA + MiB, 0, 256 * KiB);                   /* some holes */
	xwrite(v, refA, size, 0);
	/* Snapshot of an open volume. */
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), -EEXIST);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "nope", "snap2", 0, 0), -ENOENT);
	sv = fx_stats(&f, 0, "vol1");
	ss = fx_stats(&f, 0, "snap1");
	ck_assert_uint_eq(sv.chunks, ref_nonzero_chunks(refA, size, 4096));
	ck_assert_uint_eq(ss.chunks, sv.chunks);
	ck_assert_uint_eq(sv.exclusive, 0);
	ck_assert_uint_eq(ss.exclusive, 0);
	ck_assert_uint_eq(ss.size, size);
	/* Overwrite parts of vol1: partial chunks, whole runs, discards. */
	refB = xmalloc(size);
	memcpy(refB, refA, size);
	for (int i = 0; i < 60; i++) {
		uint64_t off = rnd(&seed, size), len = 1 + rnd(&seed, 300 * KiB), want;

		want = len < size - off ? len : size - off;
		if (i % 5 == 4) {
			ck_assert_int_eq(vol_discard(v, off, len), 0);
			memset(refB + off, 0, want);
		} else {
			rnd_fill(&seed, buf, len);
			ck_assert_int_eq(vol_write(v, buf, len, off), (ssize_t)want);
			memcpy(refB + off, buf, want);
		}
		for (uint64_t k = off / 4096; k <= (off + want - 1) / 4096; k++)
			touched[k] = 1;
	}
	ref_compare(v, refB, size, "vol1 after overwrite");
	s = fx_open(&f, "snap1", 0);
	ref_compare(s, refA, size, "snap1 after overwrite of vol1");
	ck_assert_int_eq(vol_write(s, buf, 10, 0), -EROFS);
	/* Exclusive counts follow the chunks rewritten since the snapshot. */
	for (uint64_t k = 0; k < nchunks; k++) {
		uint64_t l = size - k * 4096 < 4096 ? size - k * 4096 : 4096;

		shared += !touched[k] && !all_zero(refA + k * 4096, l);
	}
	sv = fx_stats(&f, 0, "vol1");
	ss = fx_stats(&f, 0, "snap1");
	ck_assert_uint_eq(sv.chunks, ref_nonzero_chunks(refB, size, 4096));
	ck_assert_uint_eq(ss.chunks, ref_nonzero_chunks(refA, size, 4096));
	ck_assert_uint_eq(sv.exclusive, sv.chunks - shared);
	ck_assert_uint_eq(ss.exclusive, ss.chunks - shared);
	/* A writable clone of the snapshot diverges on its own. */
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "snap1", "clone1", 0, 0), 0);
	c = fx_open(&f, "clone1", 1);
	refC = xmalloc(size);
	memcpy(refC, refA, size);
	rnd_fill(&seed, buf, 100000);
	xwrite(c, buf, 100000, 12345);
	memcpy(refC + 12345, buf, 100000);
	ck_assert_int_eq(vol_discard(c, 2 * MiB, MiB), 0);
	memset(refC + 2 * MiB, 0, MiB);
	ref_compare(c, refC, size, "clone1");
	ref_compare(s, refA, size, "snap1 after writes to clone1");
	ref_compare(v, refB, size, "vol1 after writes to clone1");
	engine_vol_close(c);
	engine_vol_close(s);
	engine_vol_close(v);
	free(refA);
	free(refB);
	free(refC);
	free(touched);
	free(buf);
	fx_fini(&f);
}
END_TEST

/* Clone cost follows the data written, not the nominal size. */
START_TEST(test_clone_thin)
{
	FX_FORMAT1_ONLY("clones share pages: test_v2_clone_is_o1");
	struct fx f;
	const uint64_t sizes[2] = { 1 * GiB, 100 * GiB }, written = 64 * MiB, piece = 4 * MiB;
	const char *ids[2] = { "small", "big" }, *snaps[2] = { "small-snap", "big-snap" };
	double t[2];
	int64_t blocks[2];
	uint8_t *buf = xmalloc(piece), got[4096];

	fx_init(&f, _i);
	for (int i = 0; i < 2; i++) {
		struct vol *v;
		char path[PATH_MAX + 128];
		double t0;

		fx_create(&f, 0, ids[i], sizes[i]);
		v = fx_open(&f, ids[i], 1);
		/* 16 pieces of 4 MiB spread over the volume. */
		for (uint64_t p = 0; p < written / piece; p++) {
			uint64_t off = p * (sizes[i] / (written / piece));

			pat_fill(buf, piece, off, 77);
			xwrite(v, buf, piece, off);
		}
		ck_assert_int_eq(vol_sync(v), 0);
		engine_vol_close(v);
		t0 = now_s();
		ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], ids[i], snaps[i], 0, 0), 0);
		t[i] = now_s() - t0;
		fx_map_path(&f, 0, snaps[i], path, sizeof(path));
		blocks[i] = file_blocks(path);
		ck_assert_int_eq(file_size(path), (int64_t)(4096 + sizes[i] / 4096 * 8));
		ck_assert_uint_eq(fx_stats(&f, 0, snaps[i]).chunks, written / 4096);
		/* Spot checks of the clone's content. */
		v = fx_open(&f, snaps[i], 0);
		for (uint64_t p = 0; p < written / piece; p++) {
			uint64_t off = p * (sizes[i] / (written / piece)) + piece - 4096;

			xread(v, got, sizeof(got), off);
			REQUIRE(pat_check(got, sizeof(got), off, 77) < 0, "%s: piece %llu", snaps[i],
				(unsigned long long)p);
			xread(v, got, sizeof(got), off + 4096);
			REQUIRE(off + 4096 >= sizes[i] || all_zero(got, sizeof(got)), "%s: after piece %llu",
				snaps[i], (unsigned long long)p);
		}
		engine_vol_close(v);
	}
	printf("clone with 64 MiB written (%s): 1 GiB volume %.2f ms (map %lld KiB on disk), "
	       "100 GiB volume %.2f ms (map %lld KiB on disk)\n",
	       _i ? "encrypted" : "plain", t[0] * 1e3, (long long)(blocks[0] / 2), t[1] * 1e3,
	       (long long)(blocks[1] / 2));
	fflush(stdout);
	ck_assert_msg(t[1] < 10 * t[0] + 0.05, "100 GiB clone %.3f s vs 1 GiB clone %.3f s", t[1], t[0]);
	/* 16384 entries of 8 bytes = 128 KiB, plus the header. */
	ck_assert_msg(blocks[1] * 512 <= (int64_t)MiB, "100 GiB clone map uses %lld KiB", (long long)(blocks[1] / 2));
	ck_assert_msg(blocks[0] * 512 <= (int64_t)MiB, "1 GiB clone map uses %lld KiB", (long long)(blocks[0] / 2));
	/* A clone may be larger than its source; the new area reads zeros. */
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "small", "grown", 2 * GiB, 0), 0);
	{
		struct vol *v = fx_open(&f, "grown", 1);

		ck_assert_uint_eq(vol_size(v), 2 * GiB);
		xread(v, got, sizeof(got), 0);
		ck_assert(pat_check(got, sizeof(got), 0, 77) < 0);
		xread(v, got, sizeof(got), GiB + 4096);
		ck_assert(all_zero(got, sizeof(got)));
		xwrite(v, got, 1, 2 * GiB - 1);
		engine_vol_close(v);
	}
	free(buf);
	fx_fini(&f);
}
END_TEST

START_TEST(test_delete_snapshot_space)
{
	struct fx f;
	const uint64_t size = 8 * MiB;
	uint8_t *a = xmalloc(size), *b = xmalloc(size);
	char data[PATH_MAX + 64];
	struct vol *v, *s;
	int64_t b0, b1, b2;
	uint64_t seed = 41;

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, a, size);
	rnd_fill(&seed, b, size);
	xwrite(v, a, size, 0);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	xwrite(v, b, size, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	b0 = file_blocks(data);
	ck_assert_uint_eq(fx_stats(&f, 0, "snap1").exclusive, size / 4096);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").exclusive, size / 4096);
	/* Not while it is open. */
	s = fx_open(&f, "snap1", 0);
	ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], "snap1"), -EBUSY);
	ref_compare(s, a, size, "snap1");
	engine_vol_close(s);
	ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], "snap1"), 0);
	b1 = file_blocks(data);
	printf("snapshot delete (%s): data file %lld KiB -> %lld KiB\n", _i ? "encrypted" : "plain",
	       (long long)(b0 / 2), (long long)(b1 / 2));
	fflush(stdout);
	ck_assert_msg(b1 <= b0 - (int64_t)(size / 512), "data blocks %lld -> %lld", (long long)b0, (long long)b1);
	{
		struct stat st;
		char path[PATH_MAX + 128];

		fx_map_path(&f, 0, "snap1", path, sizeof(path));
		ck_assert_int_eq(stat(path, &st), -1);
	}
	ck_assert_int_eq(engine_vol_open(&s, f.e, f.lhex[0], "snap1", 0), -ENOENT);
	ref_compare(v, b, size, "vol1 after snapshot delete");
	/* The freed slots are reused by new writes: the file does not grow. */
	rnd_fill(&seed, a, size);
	xwrite(v, a, size, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	b2 = file_blocks(data);
	ck_assert_msg(file_size(data) <= (int64_t)(2 * size + 64 * KiB), "data file grew to %lld bytes",
		      (long long)file_size(data));
	ck_assert_int_le(b2, b0 + 64);
	ref_compare(v, a, size, "vol1 after rewrite");
	engine_vol_close(v);
	free(a);
	free(b);
	fx_fini(&f);
}
END_TEST

START_TEST(test_rollback)
{
	struct fx f;
	const uint64_t size = 2 * MiB + 5000;
	uint8_t *a = xmalloc(size), *b = xmalloc(size), *c = xmalloc(size);
	char data[PATH_MAX + 64];
	struct vol *v, *s;
	uint64_t seed = 51;
	int64_t b0, b1;

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, a, size);
	memset(a + 4096, 0, 3 * 4096);
	xwrite(v, a, size, 0);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	memcpy(b, a, size);
	rnd_fill(&seed, b + 100000, MiB);
	memset(b + 1500000, 0, 70000);
	xwrite(v, b + 100000, 1500000 + 70000 - 100000, 100000);
	ref_compare(v, b, size, "vol1 before rollback");
	/* Not while the target is open. */
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "snap1", "vol1", 0, 1), -EBUSY);
	ref_compare(v, b, size, "vol1 after refused rollback");
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	b0 = file_blocks(data);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "snap1", "nope", 0, 1), -ENOENT);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "snap1", "vol1", 0, 1), 0);
	b1 = file_blocks(data);
	/* vol1's own chunks are gone: their space went back. */
	ck_assert_msg(b1 <= b0 - (int64_t)(MiB / 512), "data blocks %lld -> %lld", (long long)b0, (long long)b1);
	v = fx_open(&f, "vol1", 1);
	ref_compare(v, a, size, "vol1 after rollback");
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").exclusive, 0);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, fx_stats(&f, 0, "snap1").chunks);
	/* Writing after the rollback leaves the snapshot alone. */
	memcpy(c, a, size);
	rnd_fill(&seed, c, size / 2);
	xwrite(v, c, size / 2, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	s = fx_open(&f, "snap1", 0);
	ref_compare(s, a, size, "snap1 after writes following rollback");
	ref_compare(v, c, size, "vol1 after writes following rollback");
	engine_vol_close(s);
	engine_vol_close(v);
	/* Rolling back twice is fine too. */
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "snap1", "vol1", 0, 1), 0);
	v = fx_open(&f, "vol1", 0);
	ref_compare(v, a, size, "vol1 after second rollback");
	engine_vol_close(v);
	free(a);
	free(b);
	free(c);
	fx_fini(&f);
}
END_TEST

void volume_add_cow(TCase *tc)
{
	tcase_add_loop_test(tc, test_snapshot, 0, 2);
	tcase_add_loop_test(tc, test_clone_thin, 0, 2);
	tcase_add_loop_test(tc, test_delete_snapshot_space, 0, 2);
	tcase_add_loop_test(tc, test_rollback, 0, 2);
}
