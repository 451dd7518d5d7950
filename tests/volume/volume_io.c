// SPDX-License-Identifier: MIT
/*
 * volume_io.c - TCase "core", I/O half: reads of unwritten space, writes
 * and reads at chunk boundaries and odd offsets (against an in-memory
 * reference), a seeded random sequence of writes / reads / discards, the end
 * of the volume, attach / detach, raw chunk access, zero chunks as holes,
 * discard and the space it returns (none spent discarding a thin range), a
 * write whose map update is cut short.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "volume_fx.h"

/* =============================== core ================================= */

START_TEST(test_unwritten_zeros)
{
	struct fx f;
	uint64_t size = 10 * MiB + 123;
	uint8_t *buf;
	struct vol *v;
	struct engine_map_stats st;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	ck_assert_uint_eq(vol_size(v), size);
	ck_assert_uint_eq(vol_chunk_size(v), 4096);
	ck_assert_str_eq(vol_id(v), "vol1");
	ck_assert_mem_eq(vol_lineage(v), f.lin[0], CHUNK_LINEAGE_BYTES);
	if (_i)
		ck_assert(vol_has_key(v));
	else
		ck_assert(!vol_has_key(v));
	buf = xmalloc(size);
	memset(buf, 0xee, size);
	xread(v, buf, size, 0);
	ck_assert(all_zero(buf, size));
	memset(buf, 0xee, 8193);
	xread(v, buf, 8193, 4095);
	ck_assert(all_zero(buf, 8193));
	memset(buf, 0xee, 1);
	xread(v, buf, 1, size - 1);
	ck_assert_uint_eq(buf[0], 0);
	st = fx_stats(&f, 0, "vol1");
	ck_assert_uint_eq(st.size, size);
	ck_assert_uint_eq(st.chunks, 0);
	ck_assert_uint_eq(st.exclusive, 0);
	ck_assert_uint_eq(st.chunk_size, 4096);
	engine_vol_close(v);
	free(buf);
	fx_fini(&f);
}
END_TEST

/* _i: 0 unencrypted/4096, 1 encrypted/4096, 2 encrypted/65536,
 * 3 unencrypted/8192 */
START_TEST(test_boundaries)
{
	static const uint32_t css[] = { 4096, 4096, 65536, 8192 };
	struct fx f;
	uint32_t cs = css[_i];
	uint64_t size = 3 * MiB + 1000 + 16ull * cs, seed = 1000 + (uint64_t)_i;
	uint8_t *ref, *buf, *got;
	struct vol *v;
	uint64_t offs[32];
	size_t noffs = 0;
	static const uint64_t lens[] = { 1, 2, 7, 4095, 4096, 4097, 8191, 8192, 8193, 12288, 12289 };

	fx_init_cs(&f, _i == 1 || _i == 2, cs);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	ref = xcalloc(size);
	buf = xmalloc(2 * MiB);
	got = xmalloc(2 * MiB);
	{
		const uint64_t base[] = { 0, 1, 4095, 4096, 4097, 8191, 8192, cs - 1, cs, cs + 1, 2ull * cs - 1,
					  2ull * cs, 3ull * cs - 1, size - 1, size - 4096, size - 4097, size - cs,
					  size - cs - 1, size / 2 };

		for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
			offs[noffs++] = base[i];
	}
	for (size_t i = 0; i < noffs; i++) {
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]) + 3; j++) {
			uint64_t off = offs[i];
			uint64_t len = j < sizeof(lens) / sizeof(lens[0]) ? lens[j] : (uint64_t)cs * (j - 10);
			uint64_t want = len < size - off ? len : size - off;
			uint64_t lo = off >= 2ull * cs ? off - 2ull * cs : 0;
			uint64_t hi = off + want + 2ull * cs < size ? off + want + 2ull * cs : size;
			ssize_t r;

			rnd_fill(&seed, buf, len);
			r = vol_write(v, buf, len, off);
			REQUIRE(r == (ssize_t)want, "write %llu at %llu: %zd, want %llu", (unsigned long long)len,
				(unsigned long long)off, r, (unsigned long long)want);
			memcpy(ref + off, buf, want);
			/* The neighbourhood, read as one request. */
			memset(got, 0xcc, hi - lo);
			xread(v, got, hi - lo, lo);
			REQUIRE(first_diff(got, ref + lo, hi - lo) < 0, "after write %llu at %llu: differs at %lld",
				(unsigned long long)len, (unsigned long long)off,
				(long long)(lo + (uint64_t)first_diff(got, ref + lo, hi - lo)));
			/* The written range alone. */
			memset(got, 0xcc, want);
			xread(v, got, want, off);
			REQUIRE(memcmp(got, buf, want) == 0, "read back %llu at %llu", (unsigned long long)want,
				(unsigned long long)off);
		}
	}
	/* A 1 MiB + 3 write at an odd offset (more than one engine pass). */
	{
		uint64_t off = 4093, len = MiB + 3;

		rnd_fill(&seed, buf, len);
		xwrite(v, buf, len, off);
		memcpy(ref + off, buf, len);
		memset(got, 0, len);
		xread(v, got, len, off);
		ck_assert(memcmp(got, buf, len) == 0);
		off = 2 * MiB - 1;
		rnd_fill(&seed, buf, len);
		xwrite(v, buf, len, off);
		memcpy(ref + off, buf, len);
	}
	ref_compare(v, ref, size, "boundaries");
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, ref_nonzero_chunks(ref, size, cs));
	/* Reads of every size 1..3 chunks at odd offsets, against ref. */
	for (uint64_t off = 1; off + 3ull * cs < size; off += 3ull * cs + 4097) {
		for (uint64_t len = 1; len <= 3ull * cs; len += cs / 2 + 1) {
			xread(v, got, len, off);
			REQUIRE(memcmp(got, ref + off, len) == 0, "read %llu at %llu", (unsigned long long)len,
				(unsigned long long)off);
		}
	}
	engine_vol_close(v);
	free(ref);
	free(buf);
	free(got);
	fx_fini(&f);
}
END_TEST

/* ~3000 random writes / reads / discards against a reference buffer. */
START_TEST(test_random_ops)
{
	struct fx f;
	const uint64_t size = 6 * MiB + 1234, maxlen = 300 * KiB;
	uint64_t seed = 20240601 + (uint64_t)_i;
	uint8_t *ref, *buf, *got;
	struct vol *v;
	unsigned nw = 0, nr = 0, nd = 0;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	ref = xcalloc(size);
	buf = xmalloc(maxlen);
	got = xmalloc(maxlen);
	for (int op = 0; op < 3000; op++) {
		uint64_t kind = rnd(&seed, 100), off = rnd(&seed, size), len = rnd(&seed, maxlen + 1), want;

		if (rnd(&seed, 4) == 0) {          /* chunk aligned */
			off &= ~4095ull;
			len = (len + 4095) & ~4095ull;
		}
		want = len < size - off ? len : size - off;
		if (kind < 45) {
			ssize_t r;

			rnd_fill(&seed, buf, len);
			if (rnd(&seed, 6) == 0) {          /* zeros, whole or in part */
				uint64_t a = rnd(&seed, len + 1), b = rnd(&seed, len + 1);

				if (a > b) {
					uint64_t t = a;

					a = b;
					b = t;
				}
				if (rnd(&seed, 3) == 0) {
					a = 0;
					b = len;
				}
				memset(buf + a, 0, b - a);
			}
			r = vol_write(v, buf, len, off);
			REQUIRE(r == (ssize_t)want, "op %d: write %llu at %llu = %zd", op, (unsigned long long)len,
				(unsigned long long)off, r);
			memcpy(ref + off, buf, want);
			nw++;
		} else if (kind < 80) {
			ssize_t r;

			memset(got, 0xcc, len);
			r = vol_read(v, got, len, off);
			REQUIRE(r == (ssize_t)want, "op %d: read %llu at %llu = %zd", op, (unsigned long long)len,
				(unsigned long long)off, r);
			REQUIRE(memcmp(got, ref + off, want) == 0, "op %d: read %llu at %llu differs at +%lld", op,
				(unsigned long long)len, (unsigned long long)off,
				(long long)first_diff(got, ref + off, want));
			nr++;
		} else {
			int r = vol_discard(v, off, len);

			REQUIRE(r == 0, "op %d: discard %llu at %llu = %d", op, (unsigned long long)len,
				(unsigned long long)off, r);
			memset(ref + off, 0, want);
			nd++;
		}
		if (op % 500 == 499) {
			ref_compare(v, ref, size, "random ops");
			REQUIRE(fx_stats(&f, 0, "vol1").chunks == ref_nonzero_chunks(ref, size, 4096),
				"op %d: mapped chunks %llu, non-zero chunks %llu", op,
				(unsigned long long)fx_stats(&f, 0, "vol1").chunks,
				(unsigned long long)ref_nonzero_chunks(ref, size, 4096));
			ck_assert_int_eq(vol_sync(v), 0);
		}
	}
	ref_compare(v, ref, size, "random ops (end)");
	/* SEEK_DATA / SEEK_HOLE agree with the reference at chunk level. */
	for (int i = 0; i < 200; i++) {
		uint64_t off = rnd(&seed, size), c = off / 4096, nchunks = (size + 4095) / 4096;
		int64_t wd = -ENXIO, wh = (int64_t)size;

		for (uint64_t k = c; k < nchunks; k++) {
			uint64_t l = size - k * 4096 < 4096 ? size - k * 4096 : 4096;

			if (!all_zero(ref + k * 4096, l)) {
				wd = (int64_t)(k == c ? off : k * 4096);
				break;
			}
		}
		for (uint64_t k = c; k < nchunks; k++) {
			uint64_t l = size - k * 4096 < 4096 ? size - k * 4096 : 4096;

			if (all_zero(ref + k * 4096, l)) {
				wh = (int64_t)(k == c ? off : k * 4096);
				break;
			}
		}
		REQUIRE(vol_seek(v, off, SEEK_DATA) == wd, "SEEK_DATA %llu: %lld want %lld", (unsigned long long)off,
			(long long)vol_seek(v, off, SEEK_DATA), (long long)wd);
		REQUIRE(vol_seek(v, off, SEEK_HOLE) == wh, "SEEK_HOLE %llu: %lld want %lld", (unsigned long long)off,
			(long long)vol_seek(v, off, SEEK_HOLE), (long long)wh);
	}
	printf("random ops (%s): %u writes, %u reads, %u discards, %llu chunks mapped\n", _i ? "encrypted" : "plain",
	       nw, nr, nd, (unsigned long long)fx_stats(&f, 0, "vol1").chunks);
	fflush(stdout);
	engine_vol_close(v);
	free(ref);
	free(buf);
	free(got);
	fx_fini(&f);
}
END_TEST

START_TEST(test_end_of_volume)
{
	struct fx f;
	const uint64_t size = 5 * 4096 + 100;
	uint8_t buf[3 * 4096], got[3 * 4096];
	struct vol *v;
	uint64_t seed = 7;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	/* Past the end. */
	ck_assert_int_eq(vol_write(v, buf, 1, size), -EFBIG);
	ck_assert_int_eq(vol_write(v, buf, 4096, size + 4096), -EFBIG);
	ck_assert_int_eq(vol_write(v, buf, 1, UINT64_MAX), -EFBIG);
	ck_assert_int_eq(vol_write(v, buf, 0, size), 0);
	ck_assert_int_eq(vol_write(v, buf, 0, 0), 0);
	/* Crossing the end: short count. */
	ck_assert_int_eq(vol_write(v, buf, sizeof(buf), size - 10), 10);
	ck_assert_int_eq(vol_write(v, buf, sizeof(buf), size - 4096), 4096);
	memset(got, 0xcc, sizeof(got));
	ck_assert_int_eq(vol_read(v, got, sizeof(got), size - 4096), 4096);
	ck_assert_mem_eq(got, buf, 4096);
	ck_assert_uint_eq(got[4096], 0xcc);                    /* nothing beyond */
	/* Reads at and past the end. */
	ck_assert_int_eq(vol_read(v, got, 10, size), 0);
	ck_assert_int_eq(vol_read(v, got, 10, size + 1), 0);
	ck_assert_int_eq(vol_read(v, got, 10, UINT64_MAX), 0);
	ck_assert_int_eq(vol_read(v, got, sizeof(got), size - 1), 1);
	ck_assert_uint_eq(got[0], buf[4095]);
	ck_assert_int_eq(vol_read(v, got, 0, 0), 0);
	/* Discard past the end is a no-op; crossing the end clips. */
	ck_assert_int_eq(vol_discard(v, size, 4096), 0);
	ck_assert_int_eq(vol_discard(v, size - 50, UINT64_MAX), 0);
	ck_assert_int_eq(vol_read(v, got, 100, size - 100), 100);
	ck_assert_mem_eq(got, buf + 4096 - 100, 50);
	ck_assert(all_zero(got + 50, 50));
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

START_TEST(test_detached)
{
	struct fx f;
	uint8_t buf[8192], got[8192];
	struct vol *v;
	struct kms_dk *dk;
	struct chunk_tag tag;
	uint8_t cipher[4096];
	uint64_t seed = 99;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", MiB);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1), 0);
	ck_assert(!vol_is_attached(v));
	ck_assert(!vol_has_key(v));
	ck_assert_int_eq(vol_read(v, got, 10, 0), -ENOKEY);
	ck_assert_int_eq(vol_write(v, buf, 10, 0), -ENOKEY);
	ck_assert_int_eq(vol_discard(v, 0, 4096), -ENOKEY);
	ck_assert_int_eq(vol_detach(v), -ENOKEY);
	/* The wrong kind of key is refused (and stays the caller's). */
	if (_i) {
		ck_assert_int_eq(vol_attach(v, NULL), -EINVAL);
	} else {
		dk = fx_dk_any(&f, 0);
		ck_assert_int_eq(vol_attach(v, dk), -EINVAL);
		kms_dk_destroy(dk);
	}
	ck_assert(!vol_is_attached(v));
	ck_assert_int_eq(vol_attach(v, fx_dk(&f, 0)), 0);
	ck_assert(vol_is_attached(v));
	/* A second attach: -EALREADY, the key stays the caller's. */
	dk = fx_dk(&f, 0);
	ck_assert_int_eq(vol_attach(v, dk), -EALREADY);
	kms_dk_destroy(dk);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 4096);
	ck_assert_int_eq(vol_detach(v), 0);
	ck_assert(!vol_is_attached(v));
	ck_assert(!vol_has_key(v));
	memset(got, 0xcc, sizeof(got));
	ck_assert_int_eq(vol_read(v, got, sizeof(got), 4096), -ENOKEY);
	ck_assert(all_byte(got, sizeof(got), 0xcc));          /* nothing copied out */
	ck_assert_int_eq(vol_write(v, buf, 10, 0), -ENOKEY);
	ck_assert_int_eq(vol_discard(v, 0, 4096), -ENOKEY);
	ck_assert_int_eq(vol_detach(v), -ENOKEY);
	/* What needs no key still works detached. */
	ck_assert_int_eq(vol_seek(v, 0, SEEK_DATA), 4096);
	ck_assert_int_eq(vol_chunk_load(v, 1, cipher, &tag), 1);
	ck_assert_int_eq(vol_chunk_load(v, 0, cipher, &tag), 0);
	ck_assert_int_eq(vol_chunk_load(v, 256, cipher, &tag), -EINVAL);
	ck_assert_int_eq(vol_sync(v), 0);
	/* Re-attach: the data is intact. */
	ck_assert_int_eq(vol_attach(v, fx_dk(&f, 0)), 0);
	xread(v, got, sizeof(got), 4096);
	ck_assert_mem_eq(got, buf, sizeof(got));
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* vol_chunk_load returns the stored ciphertext and tag of a chunk; they
 * open with chunk_decrypt under the lineage's key and the chunk index. */
START_TEST(test_chunk_load)
{
	struct fx f;
	uint8_t buf[4096], cipher[4096], plain[4096];
	struct chunk_tag tag;
	struct vol *v;
	struct kms_dk *dk;
	uint64_t seed = 5;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 17 * 4096);
	ck_assert_int_eq(vol_detach(v), 0);
	ck_assert_int_eq(vol_chunk_load(v, 17, cipher, &tag), 1);
	ck_assert_uint_eq(tag.index_le, 17);             /* little-endian host */
	if (_i)
		ck_assert_int_ne(memcmp(cipher, buf, sizeof(buf)), 0);
	else
		ck_assert_mem_eq(cipher, buf, sizeof(buf));
	dk = fx_dk(&f, 0);
	ck_assert_int_eq((dk ? chunk_decrypt(dk, f.lin[0], 17, cipher, plain, 4096, &tag) : chunk_plain_open(f.lin[0], 17, cipher, plain, 4096, &tag)), 0);
	ck_assert_mem_eq(plain, buf, sizeof(buf));
	ck_assert_int_eq((dk ? chunk_decrypt(dk, f.lin[0], 16, cipher, plain, 4096, &tag) : chunk_plain_open(f.lin[0], 16, cipher, plain, 4096, &tag)),
			 -EBADMSG);
	kms_dk_destroy(dk);
	ck_assert_int_eq(vol_chunk_load(v, 16, cipher, &tag), 0);
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

START_TEST(test_zero_chunks_are_holes)
{
	struct fx f;
	uint8_t *zero = xcalloc(64 * 4096), *buf = xmalloc(64 * 4096), got[4096];
	struct vol *v;
	uint64_t seed = 3;
	struct engine_map_stats st;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", 4 * MiB);
	v = fx_open(&f, "vol1", 1);
	xwrite(v, zero, 64 * 4096, 0);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, 0);
	ck_assert_int_eq(vol_seek(v, 0, SEEK_DATA), -ENXIO);
	rnd_fill(&seed, buf, 64 * 4096);
	xwrite(v, buf, 64 * 4096, 0);
	st = fx_stats(&f, 0, "vol1");
	ck_assert_uint_eq(st.chunks, 64);
	ck_assert_uint_eq(st.exclusive, 64);
	/* Whole zero chunks over data: holes again. */
	xwrite(v, zero, 16 * 4096, 8 * 4096);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, 48);
	ck_assert_uint_eq(fx_map_entry(&f, 0, "vol1", 8), 0);
	ck_assert_uint_eq(fx_map_entry(&f, 0, "vol1", 23), 0);
	ck_assert_uint_ne(fx_map_entry(&f, 0, "vol1", 24), 0);
	/* A partial zero write inside data keeps the chunk. */
	xwrite(v, zero, 100, 30 * 4096 + 7);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, 48);
	xread(v, got, 4096, 30 * 4096);
	ck_assert(all_zero(got + 7, 100));
	ck_assert_mem_eq(got, buf + 30 * 4096, 7);
	ck_assert_mem_eq(got + 107, buf + 30 * 4096 + 107, 4096 - 107);
	/* Partial zero writes that leave the whole chunk zero: a hole. */
	xwrite(v, zero, 4000, 40 * 4096);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, 48);
	xwrite(v, zero, 96, 40 * 4096 + 4000);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, 47);
	ck_assert_uint_eq(fx_map_entry(&f, 0, "vol1", 40), 0);
	engine_vol_close(v);
	free(zero);
	free(buf);
	fx_fini(&f);
}
END_TEST

START_TEST(test_discard)
{
	struct fx f;
	const uint64_t size = 8 * MiB;
	uint8_t *ref = xmalloc(size);
	char data[PATH_MAX + 64];
	int64_t b0, b1, b2;
	struct vol *v;
	uint64_t seed = 11;

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, size);
	xwrite(v, ref, size, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	b0 = file_blocks(data);
	ck_assert_int_ge(b0 * 512, (int64_t)size);
	/* Whole chunks: space goes back to the file system. */
	ck_assert_int_eq(vol_discard(v, 1 * MiB, 2 * MiB), 0);
	memset(ref + MiB, 0, 2 * MiB);
	ck_assert_int_eq(vol_sync(v), 0);
	b1 = file_blocks(data);
	printf("discard (%s): data file %lld KiB -> %lld KiB after discarding 2 MiB\n", _i ? "encrypted" : "plain",
	       (long long)(b0 / 2), (long long)(b1 / 2));
	fflush(stdout);
	ck_assert_msg(b1 <= b0 - (int64_t)(2 * MiB / 512), "data blocks %lld -> %lld", (long long)b0, (long long)b1);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, (size - 2 * MiB) / 4096);
	ref_compare(v, ref, size, "after aligned discard");
	/* Unaligned: partial edges zeroed, the rest of those chunks kept. */
	ck_assert_int_eq(vol_discard(v, 5 * MiB + 100, 3 * 4096 + 50), 0);
	memset(ref + 5 * MiB + 100, 0, 3 * 4096 + 50);
	ck_assert_int_eq(vol_discard(v, 6 * MiB + 1, 1), 0);
	memset(ref + 6 * MiB + 1, 0, 1);
	ck_assert_int_eq(vol_discard(v, 7 * MiB + 4095, 2), 0);
	memset(ref + 7 * MiB + 4095, 0, 2);
	ck_assert_int_eq(vol_discard(v, 0, 0), 0);
	ref_compare(v, ref, size, "after unaligned discards");
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, ref_nonzero_chunks(ref, size, 4096));
	/* Discarding everything leaves (almost) nothing allocated. */
	ck_assert_int_eq(vol_discard(v, 0, size), 0);
	ck_assert_int_eq(vol_sync(v), 0);
	b2 = file_blocks(data);
	ck_assert_uint_eq(fx_stats(&f, 0, "vol1").chunks, 0);
	ck_assert_msg(b2 * 512 <= (int64_t)(64 * KiB), "data file still holds %lld KiB", (long long)(b2 / 2));
	memset(ref, 0, size);
	ref_compare(v, ref, size, "after full discard");
	engine_vol_close(v);
	free(ref);
	fx_fini(&f);
}
END_TEST

/*
 * Regression: a map update cut short by the file system (ENOSPC on a full
 * disk; here RLIMIT_FSIZE makes the map pwrite stop at 1 MiB, half-way
 * through the entries of one write) left the entries already written
 * pointing at slots the failed write then handed back to the allocator:
 * the next write reused them and those chunks read another chunk's data
 * (plain) or EIO (encrypted), and their old slots leaked.  Each chunk of a
 * failed write must read its old or its new content, and keep it.
 */
START_TEST(test_map_write_cut_short)
{
	FX_FORMAT1_ONLY("a failed commit: test_v2_commit_cut_short");
	struct fx f;
	const uint32_t cs = 4096;
	const uint64_t lim = MiB;
	const uint64_t i0 = (lim - 4096) / 8 - 2;    /* entries i0, i0+1 below lim, i0+2, i0+3 above */
	const uint64_t size = (i0 + 64) * cs;
	uint8_t *a = xmalloc(4 * cs), *b = xmalloc(4 * cs), *other = xmalloc(16 * cs);
	uint8_t *got = xmalloc(16 * cs), *after = xmalloc(4 * cs);
	uint64_t seed = 4242, slots[20];
	struct rlimit old, rl;
	struct vol *v;
	ssize_t r;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, a, 4 * cs);
	rnd_fill(&seed, b, 4 * cs);
	rnd_fill(&seed, other, 16 * cs);
	xwrite(v, a, 4 * cs, i0 * cs);
	ck_assert_int_eq(vol_sync(v), 0);

	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = lim;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	r = vol_write(v, b, 4 * cs, i0 * cs);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_msg(r == -EFBIG, "write with the map cut short: %zd (want -EFBIG)", r);

	xread(v, after, 4 * cs, i0 * cs);
	for (unsigned k = 0; k < 4; k++)
		ck_assert_msg(memcmp(after + k * cs, a + k * cs, cs) == 0 || memcmp(after + k * cs, b + k * cs, cs) == 0,
			      "chunk %u of the failed write reads neither its old nor its new content", k);
	ck_assert_msg(memcmp(after + 2 * cs, a + 2 * cs, 2 * cs) == 0, "entries past the cut must keep the old data");

	/* New writes must not take the slots the map still points at. */
	ck_assert_int_eq(vol_sync(v), 0);
	xwrite(v, other, 16 * cs, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	xread(v, got, 4 * cs, i0 * cs);
	ck_assert_msg(memcmp(got, after, 4 * cs) == 0, "the failed write's chunks changed after later writes");
	xread(v, got, 16 * cs, 0);
	ck_assert(memcmp(got, other, 16 * cs) == 0);
	for (unsigned k = 0; k < 20; k++) {
		slots[k] = fx_slot(&f, 0, "vol1", k < 16 ? k : i0 + k - 16);
		for (unsigned j = 0; j < k; j++)
			ck_assert_msg(slots[j] != slots[k], "chunks share slot %llu", (unsigned long long)slots[k]);
	}
	engine_vol_close(v);

	/* Reopened (refcounts rebuilt from the maps): the same bytes. */
	fx_engine_restart(&f);
	v = fx_open(&f, "vol1", 1);
	xread(v, got, 4 * cs, i0 * cs);
	ck_assert(memcmp(got, after, 4 * cs) == 0);
	xread(v, got, 16 * cs, 0);
	ck_assert(memcmp(got, other, 16 * cs) == 0);
	engine_vol_close(v);
	free(a);
	free(b);
	free(other);
	free(got);
	free(after);
	fx_fini(&f);
}
END_TEST

/* Discarding a range never written changes no map entry: it must write
 * nothing (no map blocks allocated, no ENOSPC on a full disk). */
START_TEST(test_discard_thin_range)
{
	FX_FORMAT1_ONLY("map pages are blocks of one pages file");
	struct fx f;
	char map[PATH_MAX + 128];
	uint8_t buf[4096];
	int64_t b0;
	struct vol *v;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", GiB);
	fx_map_path(&f, 0, "vol1", map, sizeof(map));
	v = fx_open(&f, "vol1", 1);
	memset(buf, 0x5a, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 0);
	ck_assert_int_eq(vol_sync(v), 0);
	b0 = file_blocks(map);
	ck_assert_int_eq(vol_discard(v, 512 * MiB, 256 * MiB), 0);
	ck_assert_int_eq(vol_sync(v), 0);
	ck_assert_msg(file_blocks(map) == b0, "discarding 256 MiB never written grew the map from %lld to %lld KiB",
		      (long long)(b0 / 2), (long long)(file_blocks(map) / 2));
	xread(v, buf, sizeof(buf), 0);
	ck_assert(all_byte(buf, sizeof(buf), 0x5a));
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

void volume_add_io(TCase *tc)
{
	tcase_add_loop_test(tc, test_unwritten_zeros, 0, 2);
	tcase_add_loop_test(tc, test_boundaries, 0, 4);
	tcase_add_loop_test(tc, test_random_ops, 0, 2);
	tcase_add_loop_test(tc, test_end_of_volume, 0, 2);
	tcase_add_loop_test(tc, test_detached, 0, 2);
	tcase_add_loop_test(tc, test_chunk_load, 0, 2);
	tcase_add_loop_test(tc, test_zero_chunks_are_holes, 0, 2);
	tcase_add_loop_test(tc, test_discard, 0, 2);
	tcase_add_loop_test(tc, test_map_write_cut_short, 0, 2);
	tcase_add_loop_test(tc, test_discard_thin_range, 0, 2);
}
