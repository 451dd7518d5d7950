// SPDX-License-Identifier: MIT
/*
 * fuzz_headers.c - the on-disk parsers: pool tag table (header and
 * entries), chunk data, chunk-map files (header and entries) and backup
 * files (header, index, records, incremental chains).
 *
 * Once, a small valid store is laid out in a temporary directory with the
 * real engine: an unencrypted lineage with a volume "vol" (chunks written,
 * one rewritten, a hole), a copy-on-write snapshot "snap" sharing its
 * slots, a full backup B1 and an incremental backup B2 on top of it; and a
 * second lineage, in a format 2 pool (tree pages, reference counts, roots,
 * journal), holding the same volume and snapshot.  The pristine bytes of
 * every file are kept in memory.
 *
 * Each input damages one of those files and then drives the real open /
 * read / verify / clone / delete paths over it; afterwards every file is
 * put back.  Input layout:
 *
 *   byte 0   target: 0 tags, 1 data, 2 vol.map, 3 snap.map, 4 B1, 5 B2,
 *            format 2: 6 pages, 7 srefs, 8 prefs, 9 roots, 10 journal,
 *            11 data
 *   byte 1   bits 0-1: 0 overlay the payload at offset 0
 *                      1 the file becomes the payload
 *                      2 overlay payload[2..] at offset u16(payload[0..1])
 *                        (counted from the end with bit 4)
 *                      3 truncate at u16(payload[0..1]) (from the end with
 *                        bit 4), then overlay payload[2..] at offset 0
 *            bit 2:    recompute the checksums the format carries (header
 *                      BLAKE2b, backup index BLAKE2b) over the damaged
 *                      bytes, so the fuzzer gets past them to the fields
 *                      (format 2: the journal's first record; for pages,
 *                      srefs, prefs and roots: every page hash of every
 *                      tree, bottom up, the root records' hashes, the
 *                      header's roots hash and checksum, as tree.c makes
 *                      them, so the fuzzer reaches the entries)
 *   byte 2.. payload
 *
 * Every call must return success or a negative errno: never crash, leak,
 * hang or read out of bounds.  One semantic property is checked as well:
 * deleting B1 (its records move into B2) must not change what B2 reads.
 *
 * EVFS_FUZZ_SEEDS=DIR writes seed inputs built from the pristine files
 * (the committed corpus/fuzz_headers was made this way) and exits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "kms/kms_testhooks.h"

#include "backup.h"
#include "engine.h"

#define LIN "00112233445566778899aabbccddeeff"
#define LIN2 "ffeeddccbbaa99887766554433221100"
#define B1 "11111111-2222-4333-8444-555555555555"
#define B2 "66666666-7777-4888-9999-aaaaaaaaaaaa"
#define CS 4096u
#define VOL_BYTES (16u * CS + 1000u)
#define NFILES 12
#define IS_BACKUP(t) ((t) == 4 || (t) == 5)

static char root[256], pools[300], bdir[300];
static struct file {
	const char *name;
	char path[400];
	uint8_t *bytes;
	size_t len;
	unsigned sum_off, sum_len, hdr_len; /* header checksum: BLAKE2b over [0, hdr_len) at sum_off */
} files[NFILES] = {
	{ .name = "tags", .sum_off = 56, .sum_len = 16, .hdr_len = 56 },
	{ .name = "data" },
	{ .name = "vol.map", .sum_off = 96, .sum_len = 16, .hdr_len = 96 },
	{ .name = "snap.map", .sum_off = 96, .sum_len = 16, .hdr_len = 96 },
	{ .name = B1 ".evb", .sum_off = 320, .sum_len = 32, .hdr_len = 320 },
	{ .name = B2 ".evb", .sum_off = 320, .sum_len = 32, .hdr_len = 320 },
	{ .name = "pages" },
	{ .name = "srefs" },
	{ .name = "prefs" },
	{ .name = "roots" },
	{ .name = "journal" },
	{ .name = "data" },
};
static const uint8_t key[CHUNK_KEY_BYTES] = { 1, 2, 3 }; /* used if damage marks a backup encrypted */
static struct kms_dk *dk;   /* a handle holding `key` (made at initialisation) */

/* tmpfs when there is one: the engine fsyncs a lot. */
static const char *fuzz_tmp(void)
{
	const char *t = getenv("EVFS_FUZZ_TMP");

	return t && *t ? t : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_headers setup: %s failed: %s\n", what, strerror(errno));
		abort();
	}
}

/* A negative errno or success: anything else is a bug. */
static long sane(long r)
{
	if (r < -4095) {
		fprintf(stderr, "return value %ld is not a negative errno\n", r);
		abort();
	}
	return r;
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ok = fd >= 0 && (n == 0 || pwrite(fd, p, n, 0) == (ssize_t)n);

	if (fd >= 0)
		close(fd);
	return ok;
}

static void read_file(struct file *f)
{
	struct stat st;
	int fd = open(f->path, O_RDONLY | O_CLOEXEC);

	must(fd >= 0 && fstat(fd, &st) == 0, f->path);
	f->len = (size_t)st.st_size;
	f->bytes = malloc(f->len ? f->len : 1);
	must(f->bytes && pread(fd, f->bytes, f->len, 0) == (ssize_t)f->len, f->path);
	close(fd);
}

/* Remove everything in dir but the names in keep[]. */
static void prune(const char *dir, const char *const *keep, size_t nkeep)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	must(d != NULL, dir);
	while ((de = readdir(d))) {
		size_t k = 0;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		while (k < nkeep && strcmp(de->d_name, keep[k]))
			k++;
		if (k == nkeep)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static void restore_all(void)
{
	static const char *const maps[] = { "vol.map", "snap.map" }, *const bks[] = { B1 ".evb", B2 ".evb" };
	static const char *const v2[] = { "pages", "srefs", "prefs", "roots", "journal", "data" };
	char mdir[400];

	for (int i = 0; i < NFILES; i++)
		must(write_file(files[i].path, files[i].bytes, files[i].len), files[i].path);
	snprintf(mdir, sizeof(mdir), "%s/%s/maps", pools, LIN);
	prune(mdir, maps, 2);
	prune(bdir, bks, 2);
	snprintf(mdir, sizeof(mdir), "%s/%s", pools, LIN2);
	prune(mdir, v2, sizeof(v2) / sizeof(v2[0]));
}

static void fill(uint8_t *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(seed * 31u + i * 7u + (i >> 9));
}

static void setup_write(struct engine *e, const char *lin, const char *id, const unsigned *chunks, size_t n)
{
	struct vol *v;
	uint8_t buf[CS];

	must(engine_vol_open(&v, e, lin, id, 1) == 0 && vol_attach(v, NULL) == 0, "vol_open");
	for (size_t i = 0; i < n; i++) {
		fill(buf, CS, chunks[i]);
		must(vol_write(v, buf, CS, (uint64_t)chunks[i] * CS) == CS, "vol_write");
	}
	fill(buf, 1000, 99);
	must(vol_write(v, buf, 1000, 16u * CS) == 1000 && vol_sync(v) == 0, "tail write");
	engine_vol_close(v);
}

static void setup_backup(struct engine *e, const char *id, const char *parent)
{
	struct backup_info bi = { .created = 1 };
	struct vol *v;

	snprintf(bi.id, sizeof(bi.id), "%s", id);
	snprintf(bi.parent_id, sizeof(bi.parent_id), "%s", parent);
	must(engine_vol_open(&v, e, LIN, "vol", 0) == 0, "vol_open");
	must(backup_create(v, bdir, &bi, NULL, NULL) == 0, "backup_create");
	engine_vol_close(v);
}

static void dump_seeds(const char *dir)
{
	uint8_t buf[2 + 4096 + 2];
	char path[4096];
	int n = 0;

	for (int t = 0; t < NFILES; t++) {
		const struct file *f = &files[t];
		size_t hl = f->hdr_len ? f->sum_off + f->sum_len : 512; /* the header, or a chunk's start */
		uint8_t variants[][2] = { { 0, 0 }, { 0, 4 }, { 1, 4 }, { 3, 4 } };

		for (size_t k = 0; k < sizeof(variants) / sizeof(variants[0]); k++) {
			size_t len = 2;

			buf[0] = (uint8_t)t;
			buf[1] = variants[k][1] | variants[k][0];
			if (k == 1) { /* the header as it is, checksums recomputed */
				memcpy(buf + 2, f->bytes, hl);
				len += hl;
			} else if (k == 2 && f->len <= 4096) { /* the whole small file */
				memcpy(buf + 2, f->bytes, f->len);
				len += f->len;
			} else if (k == 3) { /* cut 8 bytes off the end, header kept */
				buf[1] |= 16;
				buf[2] = 8;
				buf[3] = 0;
				memcpy(buf + 4, f->bytes, hl);
				len += 2 + hl;
			} else if (k) {
				continue;
			}
			snprintf(path, sizeof(path), "%s/seed-%d-%s-%zu", dir, t, f->name, k);
			must(write_file(path, buf, len), path);
			n++;
		}
		if (!strcmp(f->name, "journal")) { /* the checkpointed record, its magic back */
			buf[0] = (uint8_t)t;
			buf[1] = 4;
			memcpy(buf + 2, "EVFSJRN2", 8);
			snprintf(path, sizeof(path), "%s/seed-%d-%s-record", dir, t, f->name);
			must(write_file(path, buf, 10), path);
			n++;
		}
		if (IS_BACKUP(t)) { /* the backup index, from the end, sums fixed */
			size_t il = f->len - 4096 < 4096 ? f->len - 4096 : 4096;

			buf[0] = (uint8_t)t;
			buf[1] = 2 | 4 | 16;
			buf[2] = (uint8_t)il;
			buf[3] = (uint8_t)(il >> 8);
			memcpy(buf + 4, f->bytes + f->len - il, il);
			snprintf(path, sizeof(path), "%s/seed-%d-%s-index", dir, t, f->name);
			must(write_file(path, buf, il + 4), path);
			n++;
		}
	}
	printf("wrote %d seeds to %s\n", n, dir);
}

__attribute__((destructor)) static void cleanup(void)
{
	char cmd[300];

	if (strstr(root, "/evfs-fuzz-headers.")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", root);
	}
}

static void fix_v2(void);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const unsigned first[] = { 0, 1, 2, 4, 5, 6, 7, 8, 9, 12 }, second[] = { 1, 5, 12, 13 };
	struct engine *e;
	char dir[320];

	(void)argc;
	(void)argv;
	must(sodium_init() >= 0, "sodium_init");
	must(kms_test_dk_import(key, &dk) == 0, "data-key handle");
	snprintf(root, sizeof(root), "%s/evfs-fuzz-headers.XXXXXX", fuzz_tmp());
	must(mkdtemp(root) != NULL, "mkdtemp");
	snprintf(pools, sizeof(pools), "%s/pools", root);
	snprintf(bdir, sizeof(bdir), "%s/backups", root);
	must(mkdir(bdir, 0700) == 0, "mkdir backups");
	must(engine_create(&e, pools, NULL, NULL) == 0, "engine_create");
	must(engine_set_format(e, 1) == 0, "engine_set_format"); /* LIN: format 1 */
	must(engine_pool_create(e, LIN, CS, 0) == 0, "engine_pool_create");
	must(engine_map_create(e, LIN, "vol", VOL_BYTES) == 0, "engine_map_create");
	setup_write(e, LIN, "vol", first, sizeof(first) / sizeof(first[0]));
	must(engine_map_clone(e, LIN, "vol", "snap", 0, 0) == 0, "engine_map_clone");
	setup_backup(e, B1, "");
	setup_write(e, LIN, "vol", second, sizeof(second) / sizeof(second[0]));
	setup_backup(e, B2, B1);
	must(engine_set_format(e, 2) == 0, "engine_set_format");
	must(engine_pool_create(e, LIN2, CS, 0) == 0, "engine_pool_create 2");
	must(engine_map_create(e, LIN2, "vol", VOL_BYTES) == 0, "engine_map_create 2");
	setup_write(e, LIN2, "vol", first, sizeof(first) / sizeof(first[0]));
	must(engine_map_clone(e, LIN2, "vol", "snap", 0, 0) == 0, "engine_map_clone 2");
	setup_write(e, LIN2, "vol", second, sizeof(second) / sizeof(second[0]));
	engine_destroy(e);
	for (int i = 0; i < NFILES; i++) {
		if (i >= 6)
			snprintf(dir, sizeof(dir), "%s/" LIN2, pools);
		else
			snprintf(dir, sizeof(dir), IS_BACKUP(i) ? "%s" : i >= 2 ? "%s/" LIN "/maps" : "%s/" LIN,
				 IS_BACKUP(i) ? bdir : pools);
		snprintf(files[i].path, sizeof(files[i].path), "%s/%s", dir, files[i].name);
		read_file(&files[i]);
	}
	/* The hash fixer must know the layout: on the pristine pool it
	 * changes nothing. */
	fix_v2();
	for (int i = 6; i <= 9; i++) {
		struct file g = { .name = "" };

		snprintf(g.path, sizeof(g.path), "%s", files[i].path);
		read_file(&g);
		must(g.len == files[i].len && memcmp(g.bytes, files[i].bytes, g.len) == 0, "fix_v2 is the identity");
		free(g.bytes);
	}
	if (getenv("EVFS_FUZZ_SEEDS")) {
		dump_seeds(getenv("EVFS_FUZZ_SEEDS"));
		exit(0);
	}
	return 0;
}

/* ============================ damage ==================================== */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* The journal's first record: BLAKE2b-256 over its header (sum zeroed),
 * keys and images, as blk.c writes it. */
static void fix_journal_sum(uint8_t *b, size_t n)
{
	crypto_generichash_state st;
	uint64_t cnt;
	size_t kb;

	if (n < 64)
		return;
	memcpy(&cnt, b + 16, 8);
	if (cnt == 0 || cnt > 64)
		return;
	kb = (64 + cnt * 8 + CS - 1) / CS * CS;
	if (kb + cnt * CS > n)
		return;
	memset(b + 32, 0, 32);
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, b, 64 + cnt * 8);
	crypto_generichash_update(&st, b + kb, cnt * CS);
	crypto_generichash_final(&st, b + 32, 32);
}

static void fix_sums(const struct file *f, uint8_t *b, size_t n)
{
	if (!strcmp(f->name, "journal"))
		fix_journal_sum(b, n);
	if (f->hdr_len == 0 || n < f->sum_off + f->sum_len)
		return;
	if (f->sum_len == 32 && n >= 4096) { /* backup: index region first */
		uint64_t ioff;

		memcpy(&ioff, b + 272, 8); /* little-endian host (x86, arm) */
		if (ioff <= n)
			crypto_generichash(b + 288, 32, b + ioff, n - ioff, NULL, 0);
	}
	crypto_generichash(b + f->sum_off, f->sum_len, b, f->hdr_len, NULL, 0);
}

/* ---- format 2: the hash chain, recomputed (tree.c's layout) ---------------
 * Page p is bytes [p * 4096, +4096) of `pages`; an interior entry is
 * { u64 page + 1, hash[32], pad[24] }, 64 to a page; a leaf holds chunks.
 * `roots`: block 0 the header (root blocks in use: u32 at 36; hash of the
 * root blocks at 80; BLAKE2b-256 of the 240 bytes before it at 240), then
 * blocks of 32 records of 128 bytes { id[40], u64 page + 1, hash[32], u64
 * size, u32 depth, u32 used }. */
#define V2_BLK 4096u
#define V2_HDR_ROOT_BLOCKS 36u
#define V2_HDR_ROOTS_HASH 80u
#define V2_HDR_SUM 240u

static uint8_t *v2_pages;
static size_t v2_npages;
static unsigned v2_budget;           /* pages rehashed per input: bounds loops and fan-out */

static int v2_rehash(uint64_t pg, uint32_t depth, uint8_t out[32])
{
	uint8_t *page;

	if (pg >= v2_npages || depth == 0 || depth > 10 || v2_budget == 0)
		return -1;
	v2_budget--;
	page = v2_pages + pg * V2_BLK;
	for (unsigned i = 0; depth > 1 && i < 64; i++) {
		uint64_t c1;

		memcpy(&c1, page + i * 64, 8);
		if (c1)
			(void)v2_rehash(c1 - 1, depth - 1, page + i * 64 + 8);
	}
	crypto_generichash(out, 32, page, V2_BLK, NULL, 0);
	return 0;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	struct file f = { .name = "" };

	snprintf(f.path, sizeof(f.path), "%s", path);
	read_file(&f);
	*n = f.len;
	return f.bytes;
}

static void fix_v2(void)
{
	char pages[400], roots[400];
	uint8_t *r;
	size_t rn, pn;
	uint32_t nblocks;

	snprintf(pages, sizeof(pages), "%s/" LIN2 "/pages", pools);
	snprintf(roots, sizeof(roots), "%s/" LIN2 "/roots", pools);
	v2_pages = slurp(pages, &pn);
	r = slurp(roots, &rn);
	v2_npages = pn / V2_BLK;
	v2_budget = 4096;
	if (rn >= V2_BLK) {
		memcpy(&nblocks, r + V2_HDR_ROOT_BLOCKS, 4);
		if (nblocks > rn / V2_BLK - 1)
			nblocks = (uint32_t)(rn / V2_BLK - 1);
		for (uint32_t b = 0; b < nblocks; b++)
			for (unsigned k = 0; k < V2_BLK / 128; k++) {
				uint8_t *rec = r + (1 + b) * V2_BLK + k * 128;
				uint64_t p1;
				uint32_t depth, used;

				memcpy(&p1, rec + 40, 8);
				memcpy(&depth, rec + 88, 4);
				memcpy(&used, rec + 92, 4);
				if (used && p1)
					(void)v2_rehash(p1 - 1, depth, rec + 48);
			}
		crypto_generichash(r + V2_HDR_ROOTS_HASH, 32, r + V2_BLK, (size_t)nblocks * V2_BLK, NULL, 0);
		crypto_generichash(r + V2_HDR_SUM, 32, r, V2_HDR_SUM, NULL, 0);
	}
	must(write_file(pages, v2_pages, pn), pages);
	must(write_file(roots, r, rn), roots);
	free(v2_pages);
	free(r);
	v2_pages = NULL;
}

/* Build the damaged image of file t and write it in place. */
static void damage(int t, unsigned mode, const uint8_t *p, size_t n)
{
	const struct file *f = &files[t];
	size_t len = f->len, off = 0, cut = len;
	uint8_t *b;

	if ((mode & 3) >= 2) {
		size_t v = n >= 2 ? get16(p) % (len + 1) : 0;

		if ((mode & 3) == 2)
			off = mode & 16 ? len - v : v;
		else
			cut = mode & 16 ? len - v : v;
		p += n >= 2 ? 2 : n;
		n -= n >= 2 ? 2 : n;
	}
	if ((mode & 3) == 1)
		cut = 0;
	len = cut > off + n ? cut : off + n;
	b = calloc(1, len ? len : 1);
	must(b != NULL, "calloc");
	memcpy(b, f->bytes, cut);
	memcpy(b + off, p, n);
	if (mode & 4)
		fix_sums(f, b, len);
	must(write_file(f->path, b, len), f->path);
	if ((mode & 4) && t >= 6 && t <= 9)
		fix_v2();
	free(b);
}

/* ============================ exercise ================================== */

static void bad_cb(void *ctx, uint64_t index, int err)
{
	(void)ctx;
	(void)index;
	sane(err);
}

static void read_all(struct vol *v)
{
	static uint8_t buf[3 * CS + 17];
	uint64_t size = vol_size(v);

	for (uint64_t off = 0; off < size; off += sizeof(buf))
		if (sane(vol_read(v, buf, sizeof(buf), off)) < 0)
			break;
	(void)sane(vol_read(v, buf, 100, CS - 50));
	(void)sane(vol_seek(v, 0, SEEK_DATA));
	(void)sane(vol_seek(v, 3 * CS, SEEK_HOLE));
}

static void engine_paths(const char *lin)
{
	struct engine_map_stats st;
	struct engine *e;
	struct vol *v;
	uint8_t buf[CS + 10];

	if (engine_create(&e, pools, NULL, NULL))
		abort();
	(void)sane(engine_map_verify(e, lin, "vol", NULL, bad_cb, NULL));
	(void)sane(engine_map_stats(e, lin, "snap", &st));
	if (sane(engine_vol_open(&v, e, lin, "vol", 1)) == 0) {
		(void)sane(vol_attach(v, NULL));
		read_all(v);
		fill(buf, sizeof(buf), 7);
		(void)sane(vol_write(v, buf, sizeof(buf), 2 * CS - 5));
		(void)sane(vol_discard(v, 7 * CS, CS));
		(void)sane(vol_sync(v));
		engine_vol_close(v);
	}
	if (sane(engine_vol_open(&v, e, lin, "snap", 0)) == 0) {
		(void)sane(vol_attach(v, NULL));
		read_all(v);
		engine_vol_close(v);
	}
	if (sane(engine_map_clone(e, lin, "snap", "clone", 0, 0)) == 0)
		(void)sane(engine_map_delete(e, lin, "clone"));
	(void)sane(engine_map_clone(e, lin, "snap", "vol", 0, 1)); /* rollback */
	engine_destroy(e);
}

/* Read all of backup id; returns a malloc'd copy of its bytes or NULL. */
static uint8_t *backup_read_all(const char *id, uint64_t *size)
{
	struct backup_reader *r;
	uint8_t *buf = NULL;

	if (sane(backup_reader_open(&r, bdir, id, dk)) < 0)
		return NULL;
	*size = backup_reader_size(r);
	if (*size <= 64u * CS && (buf = malloc(*size + 1))) {
		uint8_t odd[77];
		ssize_t got = sane(backup_reader_read(r, buf, (size_t)*size, 0));

		(void)sane(backup_reader_read(r, odd, sizeof(odd), CS - 7));
		if (got < 0 || (size_t)got != *size) {
			free(buf);
			buf = NULL;
		}
	}
	backup_reader_close(r);
	return buf;
}

static int count_cb(void *ctx, uint64_t index, const uint8_t *plain, uint32_t len)
{
	(void)index;
	(void)plain;
	(void)len;
	++*(int *)ctx;
	return 0;
}

static void backup_paths(void)
{
	static const char *const kids[] = { B2 };
	struct backup_info bi;
	struct backup_reader *r;
	uint64_t size1 = 0, size2 = 0;
	uint8_t *before, *after;
	int n = 0;

	(void)sane(backup_info_load(bdir, B1, &bi));
	(void)sane(backup_info_load(bdir, B2, &bi));
	if (sane(backup_reader_open(&r, bdir, B1, dk)) == 0) {
		(void)sane(backup_reader_foreach(r, count_cb, &n));
		backup_reader_close(r);
	}
	(void)sane(backup_verify(bdir, B2, dk, bad_cb, NULL));
	before = backup_read_all(B2, &size1);
	if (sane(backup_delete(bdir, B1, kids, 1)) == 0 && before) {
		after = backup_read_all(B2, &size2);
		if (!after || size1 != size2 || memcmp(before, after, (size_t)size1)) {
			fprintf(stderr, "backup %s reads differently after deleting its parent\n", B2);
			abort();
		}
		free(after);
	}
	free(before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int t = data[0] % NFILES;

	damage(t, data[1], data + 2, size - 2);
	if (IS_BACKUP(t))
		backup_paths();
	else
		engine_paths(t >= 6 ? LIN2 : LIN);
	restore_all();
	return 0;
}
