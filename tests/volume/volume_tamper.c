// SPDX-License-Identifier: MIT
/*
 * volume_tamper.c - TCase "tamper": damaged, moved or truncated store files.
 * A bad chunk reads as -EBADMSG (or -EUCLEAN for missing bytes) with the
 * caller's buffer all zeros, never other data; damaged headers refuse to
 * open with -EUCLEAN; engine_map_verify counts the bad chunks.  Files are
 * changed while the engine is stopped, then everything is reopened.
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

/* ============================== tamper ================================ */

/* Reopen everything (nothing cached) after the test changed files. */
static struct vol *reopen(struct fx *f, const char *id, int writable)
{
	fx_engine_restart(f);
	return fx_open(f, id, writable);
}

START_TEST(test_flip_data)
{
	struct fx f;
	uint8_t *ref = xcalloc(8 * 4096), *got = xmalloc(8 * 4096), buf[4096];
	char data[PATH_MAX + 64];
	struct vol *v;
	uint64_t seed = 61, slot;
	static const uint64_t flips[] = { 0, 1, 100, 2048, 4095 };

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, 8 * 4096);
	memset(ref + 3 * 4096, 0, 4096);                   /* chunk 3 a hole */
	xwrite(v, ref, 8 * 4096, 0);
	engine_vol_close(v);
	slot = fx_slot(&f, 0, "vol1", 5);
	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		file_flip(data, slot * 4096 + flips[i], 0x04);
		v = reopen(&f, "vol1", 1);
		memset(got, 0xaa, 4096);
		ck_assert_int_eq(vol_read(v, got, 4096, 5 * 4096), -EBADMSG);
		ck_assert(all_zero(got, 4096));
		/* Partial read of the chunk. */
		memset(got, 0xaa, 10);
		ck_assert_int_eq(vol_read(v, got, 10, 5 * 4096 + 7), -EBADMSG);
		ck_assert(all_zero(got, 10));
		/* A read spanning good and bad chunks: all zeros. */
		memset(got, 0xaa, 8 * 4096);
		ck_assert_int_eq(vol_read(v, got, 8 * 4096, 0), -EBADMSG);
		ck_assert(all_zero(got, 8 * 4096));
		memset(got, 0xaa, 8 * 4096);
		ck_assert_int_eq(vol_read(v, got, 8 * 4096 - 1, 1), -EBADMSG);
		ck_assert(all_zero(got, 8 * 4096 - 1));
		/* The other chunks still read. */
		xread(v, got, 5 * 4096, 0);
		ck_assert_mem_eq(got, ref, 5 * 4096);
		xread(v, got, 2 * 4096, 6 * 4096);
		ck_assert_mem_eq(got, ref + 6 * 4096, 2 * 4096);
		/* A partial write needs the old content: refused. */
		ck_assert_int_eq(vol_write(v, buf, 10, 5 * 4096), -EBADMSG);
		engine_vol_close(v);
		file_flip(data, slot * 4096 + flips[i], 0x04);  /* undo */
		v = reopen(&f, "vol1", 0);
		xread(v, got, 8 * 4096, 0);
		ck_assert_mem_eq(got, ref, 8 * 4096);
		engine_vol_close(v);
	}
	ck_assert(log_has(&f, "vol1"));
	ck_assert(log_has(&f, "chunk 5"));
	/* A whole-chunk overwrite replaces a damaged chunk. */
	file_flip(data, slot * 4096 + 9, 0x80);
	v = reopen(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 5 * 4096);
	memcpy(ref + 5 * 4096, buf, 4096);
	xread(v, got, 8 * 4096, 0);
	ck_assert_mem_eq(got, ref, 8 * 4096);
	engine_vol_close(v);
	free(ref);
	free(got);
	fx_fini(&f);
}
END_TEST

/* The read path opens whole-chunk runs in place, one engine pass (1 MiB) at
 * a time: a bad chunk in a later pass must not leave the plaintext of the
 * earlier passes in the caller's buffer. */
/* Regression (found by this suite, since fixed): fs/volume.c vol_read()
 * works in SEG_MAX (1 MiB) passes and used to wipe only the failing pass,
 * so a 2 MiB read with chunk 300 damaged returned -EBADMSG with the first
 * 1 MiB of plaintext left in the caller's buffer. */
START_TEST(test_flip_wipes_whole_request)
{
	struct fx f;
	const uint64_t len = 2 * MiB;
	uint8_t *ref = xmalloc(len), *got = xmalloc(len);
	char data[PATH_MAX + 64];
	struct vol *v;
	uint64_t seed = 62;

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_create(&f, 0, "vol1", 4 * MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, len);
	xwrite(v, ref, len, 0);
	engine_vol_close(v);
	file_flip(data, fx_slot(&f, 0, "vol1", 300) * 4096 + 17, 0x01);
	v = reopen(&f, "vol1", 0);
	memset(got, 0xaa, len);
	ck_assert_int_eq(vol_read(v, got, len, 0), -EBADMSG);
	{
		uint64_t nz = 0;

		while (nz < len && got[nz] == 0)
			nz++;
		ck_assert_msg(nz == len, "buffer holds data after -EBADMSG: first non-zero byte at %llu",
			      (unsigned long long)nz);
	}
	engine_vol_close(v);
	free(ref);
	free(got);
	fx_fini(&f);
}
END_TEST

START_TEST(test_flip_tag)
{
	FX_FORMAT1_ONLY("tags live in the leaf entries: test_v2_tamper_page");
	struct fx f;
	uint8_t ref[4 * 4096], got[4 * 4096];
	char tags[PATH_MAX + 64];
	struct vol *v;
	uint64_t seed = 63, slot;
	/* nonce bytes (authenticated only with a key), mac bytes */
	static const unsigned enc_pos[] = { 0, 11, 23, 24, 31, 39 };
	static const unsigned plain_pos[] = { 24, 31, 39 };

	fx_init(&f, _i);
	fx_path(&f, 0, "tags", tags, sizeof(tags));
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, sizeof(ref));
	xwrite(v, ref, sizeof(ref), 0);
	engine_vol_close(v);
	slot = fx_slot(&f, 0, "vol1", 2);
	for (size_t i = 0; i < (_i ? 6 : 3); i++) {
		unsigned pos = _i ? enc_pos[i] : plain_pos[i];

		file_flip(tags, 4096 + 64 * slot + pos, 0x10);
		v = reopen(&f, "vol1", 0);
		memset(got, 0xaa, sizeof(got));
		ck_assert_msg(vol_read(v, got, sizeof(got), 0) == -EBADMSG, "tag byte %u", pos);
		ck_assert(all_zero(got, sizeof(got)));
		xread(v, got, 2 * 4096, 0);
		ck_assert_mem_eq(got, ref, 2 * 4096);
		engine_vol_close(v);
		file_flip(tags, 4096 + 64 * slot + pos, 0x10);
	}
	fx_fini(&f);
}
END_TEST

/* Copy slot A's ciphertext and tag entry over slot B's. */
static void copy_slot(struct fx *f, int la, uint64_t a, int lb, uint64_t b)
{
	char da[PATH_MAX + 64], ta[PATH_MAX + 64], db[PATH_MAX + 64], tb[PATH_MAX + 64];
	uint8_t chunk[4096], tag[64];

	fx_path(f, la, "data", da, sizeof(da));
	fx_path(f, la, "tags", ta, sizeof(ta));
	fx_path(f, lb, "data", db, sizeof(db));
	fx_path(f, lb, "tags", tb, sizeof(tb));
	file_pread(da, chunk, sizeof(chunk), a * 4096);
	file_pread(ta, tag, sizeof(tag), 4096 + 64 * a);
	file_pwrite(db, chunk, sizeof(chunk), b * 4096);
	file_pwrite(tb, tag, sizeof(tag), 4096 + 64 * b);
}

START_TEST(test_swap_chunks)
{
	FX_FORMAT1_ONLY("tags live in the leaf entries: test_v2_tamper_page");
	struct fx f;
	uint8_t ref[12 * 4096], got[12 * 4096];
	struct vol *v;
	uint64_t seed = 64;
	int l2;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, sizeof(ref));
	xwrite(v, ref, sizeof(ref), 0);
	engine_vol_close(v);
	/* Chunk 2 moved to chunk 9's place (same lineage). */
	copy_slot(&f, 0, fx_slot(&f, 0, "vol1", 2), 0, fx_slot(&f, 0, "vol1", 9));
	v = reopen(&f, "vol1", 0);
	memset(got, 0xaa, 4096);
	ck_assert_int_eq(vol_read(v, got, 4096, 9 * 4096), -EBADMSG);
	ck_assert(all_zero(got, 4096));
	xread(v, got, 4096, 2 * 4096);
	ck_assert_mem_eq(got, ref + 2 * 4096, 4096);
	ck_assert_int_eq(vol_read(v, got, sizeof(got), 0), -EBADMSG);
	ck_assert(all_zero(got, sizeof(got)));
	engine_vol_close(v);
	/* Chunk 4 of another lineage put in place of chunk 4 here. */
	l2 = fx_lineage_add(&f);
	fx_create(&f, l2, "other", MiB);
	v = fx_open_li(&f, l2, "other", 1);
	xwrite(v, ref, sizeof(ref), 0);                    /* same plaintext */
	engine_vol_close(v);
	copy_slot(&f, l2, fx_slot(&f, l2, "other", 4), 0, fx_slot(&f, 0, "vol1", 4));
	v = reopen(&f, "vol1", 0);
	memset(got, 0xaa, 4096);
	ck_assert_int_eq(vol_read(v, got, 4096, 4 * 4096), -EBADMSG);
	ck_assert(all_zero(got, 4096));
	xread(v, got, 4096, 5 * 4096);
	ck_assert_mem_eq(got, ref + 5 * 4096, 4096);
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* A volume attached with another lineage's data key: nothing decrypts. */
START_TEST(test_wrong_key)
{
	struct fx f;
	uint8_t ref[4 * 4096], got[4 * 4096];
	struct vol *v;
	uint64_t seed = 69;
	int l2;

	fx_init(&f, 1);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, sizeof(ref));
	xwrite(v, ref, sizeof(ref), 0);
	engine_vol_close(v);
	l2 = fx_lineage_add(&f);
	fx_engine_restart(&f);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1), 0);
	ck_assert_int_eq(vol_attach(v, fx_dk(&f, l2)), 0);
	memset(got, 0xaa, sizeof(got));
	ck_assert_int_eq(vol_read(v, got, sizeof(got), 0), -EBADMSG);
	ck_assert(all_zero(got, sizeof(got)));
	memset(got, 0xaa, 100);
	ck_assert_int_eq(vol_read(v, got, 100, 4096 + 1), -EBADMSG);
	ck_assert(all_zero(got, 100));
	ck_assert_int_eq(vol_write(v, ref, 100, 4096 + 1), -EBADMSG);     /* needs the old content */
	ck_assert_int_eq(vol_detach(v), 0);
	ck_assert_int_eq(vol_attach(v, fx_dk(&f, 0)), 0);
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, ref, sizeof(got));
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

START_TEST(test_truncate_data)
{
	struct fx f;
	uint8_t ref[6 * 4096], got[6 * 4096];
	char data[PATH_MAX + 64];
	struct vol *v;
	uint64_t seed = 65, last;

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, sizeof(ref));
	xwrite(v, ref, sizeof(ref), 0);
	engine_vol_close(v);
	last = fx_slot(&f, 0, "vol1", 5);
	ck_assert_uint_eq(last, 5);                         /* one run, in order */
	/* Cut inside the last chunk, then at its start, then everything. */
	{
		const uint64_t cuts[] = { last * 4096 + 4095, last * 4096 + 1, last * 4096, 2 * 4096 + 100, 0 };

		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			ssize_t r;

			ck_assert_int_eq(truncate(data, (off_t)cuts[i]), 0);
			v = reopen(&f, "vol1", 1);
			memset(got, 0xaa, sizeof(got));
			r = vol_read(v, got, sizeof(got), 0);
			ck_assert_msg(r == -EUCLEAN || r == -EBADMSG, "cut at %llu: whole read %zd",
				      (unsigned long long)cuts[i], r);
			ck_assert(all_zero(got, sizeof(got)));
			memset(got, 0xaa, 100);
			r = vol_read(v, got, 100, 5 * 4096 + 50);
			ck_assert_msg(r == -EUCLEAN || r == -EBADMSG, "cut at %llu: partial read %zd",
				      (unsigned long long)cuts[i], r);
			ck_assert(all_zero(got, 100));
			r = vol_write(v, got, 10, 5 * 4096);
			ck_assert_msg(r == -EUCLEAN || r == -EBADMSG, "cut at %llu: partial write %zd",
				      (unsigned long long)cuts[i], r);
			/* Holes still read. */
			xread(v, got, 4096, 100 * 4096);
			ck_assert(all_zero(got, 4096));
			{
				struct kms_dk *dk = fx_dk(&f, 0);

				ck_assert_int_ge(engine_map_verify(f.e, f.lhex[0], "vol1", dk, NULL, NULL), 1);
				kms_dk_destroy(dk);
			}
			engine_vol_close(v);
		}
	}
	fx_fini(&f);
}
END_TEST

START_TEST(test_damaged_headers)
{
	FX_FORMAT1_ONLY("test_v2_tamper_roots");
	struct fx f;
	uint8_t buf[4096];
	char map[PATH_MAX + 128], map2[PATH_MAX + 128], tags[PATH_MAX + 64];
	struct vol *v, *v2;
	uint64_t seed = 66;
	/* struct map_header (112 bytes): magic 0-7, version 8-11, chunk size
	 * 12-15, lineage 16-31, id 32-71, size 72-79, pad 80-95, sum 96-111 */
	static const uint64_t map_pos[] = { 0, 7, 8, 12, 16, 31, 32, 35, 36, 71, 72, 79, 80, 96, 111 };

	fx_init(&f, _i);
	fx_map_path(&f, 0, "vol1", map, sizeof(map));
	fx_path(&f, 0, "tags", tags, sizeof(tags));
	fx_create(&f, 0, "vol1", MiB);
	fx_create(&f, 0, "vol2", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 0);
	engine_vol_close(v);
	/* Each header byte of the map: magic, version, chunk size, lineage,
	 * id, size, checksum. */
	for (size_t i = 0; i < sizeof(map_pos) / sizeof(map_pos[0]); i++) {
		int r;

		file_flip(map, map_pos[i], 0x01);
		/* Pool not open yet. */
		fx_engine_restart(&f);
		r = engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1);
		ck_assert_msg(r == -EUCLEAN, "map header byte %llu: vol_open = %d", (unsigned long long)map_pos[i], r);
		/* Pool already open through another map: damage after the scan. */
		file_flip(map, map_pos[i], 0x01);
		fx_engine_restart(&f);
		ck_assert_int_eq(engine_vol_open(&v2, f.e, f.lhex[0], "vol2", 1), 0);
		file_flip(map, map_pos[i], 0x01);
		r = engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1);
		ck_assert_msg(r == -EUCLEAN, "map header byte %llu (pool open): vol_open = %d",
			      (unsigned long long)map_pos[i], r);
		engine_vol_close(v2);
		file_flip(map, map_pos[i], 0x01);
	}
	ck_assert(log_has(&f, "vol1"));
	/* A map file under another name (its header names vol1). */
	fx_map_path(&f, 0, "vol3", map2, sizeof(map2));
	ck_assert_int_eq(link(map, map2), 0);
	fx_engine_restart(&f);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "vol3", 1), -EUCLEAN);
	ck_assert_int_eq(unlink(map2), 0);
	/* A truncated map header. */
	{
		uint8_t saved[4096];

		file_pread(map, saved, sizeof(saved), 0);
		fx_engine_stop(&f);
		ck_assert_int_eq(truncate(map, 100), 0);
		fx_engine_start(&f);
		ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1), -EUCLEAN);
		fx_engine_stop(&f);
		ck_assert_int_eq(truncate(map, 4096 + 8 * 256), 0);
		file_pwrite(map, saved, sizeof(saved), 0);
		file_pwrite(map, (uint8_t[8]){ 1 }, 8, 4096);    /* chunk 0 in slot 0 */
		fx_engine_start(&f);
	}
	v = fx_open(&f, "vol1", 0);
	{
		uint8_t got[4096];

		xread(v, got, sizeof(got), 0);
		ck_assert_mem_eq(got, buf, sizeof(got));
	}
	engine_vol_close(v);
	/* The tag table header. */
	for (uint64_t pos = 0; pos < 72; pos += 9) {
		file_flip(tags, pos, 0x20);
		fx_engine_restart(&f);
		ck_assert_msg(engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1) == -EUCLEAN, "tags header byte %llu",
			      (unsigned long long)pos);
		file_flip(tags, pos, 0x20);
	}
	/* A tag table cut short of the slots the maps use. */
	ck_assert_int_eq(truncate(tags, 4096 + 32), 0);
	fx_engine_restart(&f);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1), -EUCLEAN);
	/* A map entry pointing beyond the tag table. */
	ck_assert_int_eq(truncate(tags, 4096 + 64), 0);
	file_pwrite(map, (uint8_t[8]){ 0x10, 0x27 }, 8, 4096 + 8 * 3);   /* slot 9999 */
	fx_engine_restart(&f);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1), -EUCLEAN);
	fx_fini(&f);
}
END_TEST

/* A map file shorter than its header's size says (header intact). */
/* Regression (found by this suite, since fixed): fs/vol_handle.c engine_vol_open()
 * did not compare the map file's length with the size in its header; it
 * mapped map_entry_off(nchunks) bytes of the shorter file and the first
 * access to an entry in a page past EOF (vol_read of chunk 10000 of a
 * 64 MiB volume whose map was cut to 4096 + 80 bytes) died with SIGBUS
 * instead of vol_open failing with -EUCLEAN. */
START_TEST(test_truncated_map)
{
	FX_FORMAT1_ONLY("test_v2_tamper_page");
	struct fx f;
	uint8_t buf[4096], got[4096];
	char map[PATH_MAX + 128];
	struct vol *v = NULL;
	uint64_t seed = 68;
	int r;

	fx_init(&f, _i);
	fx_map_path(&f, 0, "vol1", map, sizeof(map));
	fx_create(&f, 0, "vol1", 64 * MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 0);
	xwrite(v, buf, sizeof(buf), 10000 * 4096);
	engine_vol_close(v);
	fx_engine_stop(&f);
	ck_assert_int_eq(truncate(map, 4096 + 80), 0);
	fx_engine_start(&f);
	r = engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1);
	ck_assert_msg(r == 0 || r == -EUCLEAN, "vol_open = %d", r);
	if (r == 0) {
		ssize_t n;

		ck_assert_int_eq(vol_attach(v, fx_dk(&f, 0)), 0);
		xread(v, got, sizeof(got), 0);
		ck_assert_mem_eq(got, buf, sizeof(got));
		n = vol_read(v, got, sizeof(got), 10000 * 4096);
		ck_assert_msg(n == -EUCLEAN || n == (ssize_t)sizeof(got), "read past the short map: %zd", n);
		n = vol_write(v, buf, sizeof(buf), 12000 * 4096);
		ck_assert_msg(n == -EUCLEAN || n == (ssize_t)sizeof(buf), "write past the short map: %zd", n);
		engine_vol_close(v);
	}
	fx_fini(&f);
}
END_TEST

struct bad_list {
	uint64_t idx[64];
	int err[64];
	int n;
};

static void bad_cb(void *ctx, uint64_t index, int err)
{
	struct bad_list *b = ctx;

	if (b->n < 64) {
		b->idx[b->n] = index;
		b->err[b->n] = err;
	}
	b->n++;
}

START_TEST(test_verify)
{
	struct fx f;
	uint8_t ref[10 * 4096];
	char data[PATH_MAX + 64];
	struct vol *v;
	struct kms_dk *dk;
	struct bad_list bl;
	uint64_t seed = 67;
	static const uint64_t bad[] = { 1, 4, 8 };
	int r, seen[10] = { 0 };

	fx_init(&f, _i);
	fx_path(&f, 0, "data", data, sizeof(data));
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, sizeof(ref));
	xwrite(v, ref, sizeof(ref), 0);
	xwrite(v, ref, 4096, 100 * 4096);
	engine_vol_close(v);
	dk = fx_dk(&f, 0);
	ck_assert_int_eq(engine_map_verify(f.e, f.lhex[0], "vol1", dk, NULL, NULL), 0);
	for (size_t i = 0; i < 3; i++)
		file_flip(data, fx_slot(&f, 0, "vol1", bad[i]) * 4096 + 1000, 0x02);
	memset(&bl, 0, sizeof(bl));
	r = engine_map_verify(f.e, f.lhex[0], "vol1", dk, bad_cb, &bl);
	ck_assert_int_eq(r, 3);
	ck_assert_int_eq(bl.n, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(bl.err[i], -EBADMSG);
		ck_assert_uint_lt(bl.idx[i], 10);
		seen[bl.idx[i]]++;
	}
	ck_assert_int_eq(seen[1] + seen[4] + seen[8], 3);
	ck_assert_int_eq(engine_map_verify(f.e, f.lhex[0], "nope", dk, NULL, NULL), -ENOENT);
	if (_i) {
		struct kms_dk *other;
		int l2;

		ck_assert_int_eq(engine_map_verify(f.e, f.lhex[0], "vol1", NULL, NULL, NULL), -ENOKEY);
		/* Another lineage's key: every chunk is bad. */
		l2 = fx_lineage_add(&f);
		other = fx_dk(&f, l2);
		ck_assert_int_eq(engine_map_verify(f.e, f.lhex[0], "vol1", other, NULL, NULL), 11);
		kms_dk_destroy(other);
	}
	/* The snapshot of a damaged volume has the same bad chunks. */
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	ck_assert_int_eq(engine_map_verify(f.e, f.lhex[0], "snap1", dk, NULL, NULL), 3);
	kms_dk_destroy(dk);
	fx_fini(&f);
}
END_TEST

void volume_add_tamper(TCase *tc)
{
	tcase_add_loop_test(tc, test_flip_data, 0, 2);
	tcase_add_loop_test(tc, test_flip_wipes_whole_request, 0, 2);
	tcase_add_loop_test(tc, test_flip_tag, 0, 2);
	tcase_add_loop_test(tc, test_swap_chunks, 0, 2);
	tcase_add_test(tc, test_wrong_key);
	tcase_add_loop_test(tc, test_truncate_data, 0, 2);
	tcase_add_loop_test(tc, test_damaged_headers, 0, 2);
	tcase_add_loop_test(tc, test_truncated_map, 0, 2);
	tcase_add_loop_test(tc, test_verify, 0, 2);
}
