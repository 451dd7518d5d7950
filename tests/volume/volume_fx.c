// SPDX-License-Identifier: MIT
/*
 * volume_fx.c - fixture and helpers of the volume suite.
 *
 * A struct fx is one test's world: a temp dir under g_base (made by main),
 * an engine on dir/pools, one or two lineages (pools) and a key store
 * (the tc_kms fixture in dir: dir/kms.db, key file dir/root.key, security
 * admin "root", project p1 granted) holding each lineage's data key wrapped under evs/default with
 * the lineage id as context.  fx_dk() unwraps a fresh struct kms_dk for each
 * vol_attach (whose ownership moves to the vol); unencrypted pools attach
 * with NULL.  Engine log lines are kept in f->log for assertions
 * (EVFS_TEST_LOG=1 also prints them).
 *
 * Randomness is a seeded splitmix64: every test is deterministic.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "volume_fx.h"
#include "tree.h"
#include "vol.h"

char g_base[TC_PATH_MAX];
const struct kms_caller CALLER = { 0, "root", "p1" };

/* ============================== helpers =============================== */

/* The PRNG is the shared splitmix64 (tests/common/tc.h), seeded by each
 * test with a fixed value. */
uint64_t splitmix(uint64_t *s)
{
	return tc_splitmix64(s);
}

uint64_t rnd(uint64_t *s, uint64_t n)
{
	return tc_rand_below(s, n);
}

void rnd_fill(uint64_t *s, uint8_t *p, size_t n)
{
	tc_rand_fill(s, p, n);
}

/* Position-dependent content: byte at volume offset x for `seed`. */
uint8_t pat_byte(uint64_t seed, uint64_t x)
{
	uint64_t s = seed * 0x100000001b3ull ^ (x >> 3);
	uint64_t w = splitmix(&s);

	return (uint8_t)(w >> (8 * (x & 7)));
}

void pat_fill(uint8_t *p, size_t n, uint64_t off, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat_byte(seed, off + i);
}

/* Offset of the first difference or -1. */
int64_t pat_check(const uint8_t *p, size_t n, uint64_t off, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat_byte(seed, off + i))
			return (int64_t)i;
	return -1;
}

int64_t first_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	if (memcmp(a, b, n) == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return (int64_t)i;
	return -1;
}

int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

int all_byte(const uint8_t *p, size_t n, uint8_t b)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != b)
			return 0;
	return 1;
}

double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	ck_assert_msg(p != NULL, "out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	ck_assert_msg(p != NULL, "out of memory (%zu bytes)", n);
	return p;
}

/* Only under a directory made by tc_tmpdir (g_base, the test dirs). */
void rm_rf(const char *dir)
{
	(void)tc_rm_rf(dir);
}

int64_t file_blocks(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return (int64_t)st.st_blocks;
}

int64_t file_size(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
	return (int64_t)st.st_size;
}

void file_pread(const char *path, void *buf, size_t n, uint64_t off)
{
	int fd = open(path, O_RDONLY);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_msg(pread(fd, buf, n, (off_t)off) == (ssize_t)n, "pread %s at %llu", path,
		      (unsigned long long)off);
	close(fd);
}

void file_pwrite(const char *path, const void *buf, size_t n, uint64_t off)
{
	int fd = open(path, O_WRONLY);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_msg(pwrite(fd, buf, n, (off_t)off) == (ssize_t)n, "pwrite %s at %llu", path,
		      (unsigned long long)off);
	close(fd);
}

void file_flip(const char *path, uint64_t off, uint8_t mask)
{
	uint8_t b;

	file_pread(path, &b, 1, off);
	b ^= mask;
	file_pwrite(path, &b, 1, off);
}

/* ============================== fixture =============================== */


void log_cb(void *ctx, int level, const char *msg)
{
	struct fx *f = ctx;
	size_t n = strlen(msg);

	if (getenv("EVFS_TEST_LOG"))
		fprintf(stderr, "[engine %d] %s\n", level, msg);
	pthread_mutex_lock(&f->log_lock);
	f->log_lines++;
	if (f->log_len + n + 2 < sizeof(f->log)) {
		memcpy(f->log + f->log_len, msg, n);
		f->log_len += n;
		f->log[f->log_len++] = '\n';
		f->log[f->log_len] = '\0';
	}
	pthread_mutex_unlock(&f->log_lock);
}

int log_has(struct fx *f, const char *needle)
{
	int r;

	pthread_mutex_lock(&f->log_lock);
	r = strstr(f->log, needle) != NULL;
	pthread_mutex_unlock(&f->log_lock);
	return r;
}

void fx_engine_start(struct fx *f)
{
	ck_assert_int_eq(engine_create(&f->e, f->pools, log_cb, f), 0);
	ck_assert_int_eq(engine_set_format(f->e, fx_format()), 0);
}

void fx_engine_stop(struct fx *f)
{
	engine_destroy(f->e);
	f->e = NULL;
}

void fx_engine_restart(struct fx *f)
{
	fx_engine_stop(f);
	fx_engine_start(f);
}

/* Add a lineage (pool + wrapped DK); returns its number. */
int fx_lineage_add(struct fx *f)
{
	int li = f->nlin++;

	ck_assert_int_lt(li, FX_LINEAGES);
	engine_lineage_generate(f->lin[li]);
	engine_lineage_format(f->lin[li], f->lhex[li]);
	ck_assert_int_eq(engine_pool_create(f->e, f->lhex[li], f->cs, f->enc), 0);
	ck_assert_int_eq(kms_dk_generate(f->k, &CALLER, f->key_id, f->lin[li], CHUNK_LINEAGE_BYTES, f->wrapped[li],
					 &f->wlen[li], NULL),
			 0);
	return li;
}

void fx_init_cs(struct fx *f, int enc, uint32_t cs)
{
	const struct tc_kms_cfg kc = { .region = "region-1", .admins = "root" };

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->log_lock, NULL);
	f->enc = enc;
	f->cs = cs;
	tc_tmpdir(f->dir, sizeof(f->dir), g_base, "t");
	snprintf(f->pools, sizeof(f->pools), "%s/pools", f->dir);
	/* A key store for every test: unencrypted tests use its DKs to check
	 * that an encrypted key is refused. */
	tc_kms_init(&f->kx, f->dir, &kc);
	tc_kms_grant(&f->kx, "p1");
	f->k = f->kx.k;
	snprintf(f->key_id, sizeof(f->key_id), "%s", f->kx.default_key);
	fx_engine_start(f);
	fx_lineage_add(f);
}

void fx_init(struct fx *f, int enc)
{
	fx_init_cs(f, enc, 4096);
}

void fx_fini(struct fx *f)
{
	if (f->e)
		engine_destroy(f->e);
	f->e = NULL;
	tc_kms_fini(&f->kx);
	f->k = NULL;
	rm_rf(f->dir);
	pthread_mutex_destroy(&f->log_lock);
}

/* A fresh data key of lineage li (always one, even for unencrypted pools). */
struct kms_dk *fx_dk_any(struct fx *f, int li)
{
	struct kms_dk *dk = NULL;

	ck_assert_int_eq(kms_dk_unwrap(f->k, &CALLER, f->key_id, f->lin[li], CHUNK_LINEAGE_BYTES, f->wrapped[li],
				       f->wlen[li], &dk),
			 0);
	ck_assert(dk != NULL);
	return dk;
}

/* The key to attach with: NULL for an unencrypted pool. */
struct kms_dk *fx_dk(struct fx *f, int li)
{
	return f->enc ? fx_dk_any(f, li) : NULL;
}

void fx_path(struct fx *f, int li, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s/%s", f->pools, f->lhex[li], name);
}

void fx_map_path(struct fx *f, int li, const char *id, char *out, size_t n)
{
	snprintf(out, n, "%s/%s/maps/%s.map", f->pools, f->lhex[li], id);
}

void fx_create(struct fx *f, int li, const char *id, uint64_t size)
{
	ck_assert_int_eq(engine_map_create(f->e, f->lhex[li], id, size), 0);
}

/* Open (and attach) map id of lineage li. */
struct vol *fx_open_li(struct fx *f, int li, const char *id, int writable)
{
	struct vol *v = NULL;
	int r = engine_vol_open(&v, f->e, f->lhex[li], id, writable);

	ck_assert_msg(r == 0, "engine_vol_open(%s): %d", id, r);
	ck_assert_int_eq(vol_attach(v, fx_dk(f, li)), 0);
	ck_assert(vol_is_attached(v));
	return v;
}

struct vol *fx_open(struct fx *f, const char *id, int writable)
{
	return fx_open_li(f, 0, id, writable);
}

/* Slot + 1 of chunk `index` of map id as stored on disk (0: hole). */
int fx_format(void)
{
	const char *fmt = getenv("EVFS_TEST_FORMAT");

	return fmt && atoi(fmt) == 2 ? 2 : 1;
}

int fx_format1_only(const char *test, const char *instead)
{
	if (fx_format() == 1)
		return 0;
	printf("%s: format 1 files only (format 2: %s)\n", test, instead);
	fflush(stdout);
	return 1;
}

uint64_t fx_map_entry(struct fx *f, int li, const char *id, uint64_t index)
{
	char path[PATH_MAX + 128];
	uint8_t b[8];
	uint64_t e = 0;

	if (fx_format() == 2) {
		/* White box: the leaf entry, through the engine's tree. */
		struct tree_ent te;
		struct vol *v;

		ck_assert_int_eq(engine_vol_open(&v, f->e, f->lhex[li], id, 0), 0);
		ck_assert_int_eq(tree_get(v->pool, v->root, index, 1, &te), 0);
		engine_vol_close(v);
		return le64toh(te.slot1);
	}
	fx_map_path(f, li, id, path, sizeof(path));
	file_pread(path, b, 8, 4096 + 8 * index);
	for (int i = 7; i >= 0; i--)
		e = e << 8 | b[i];
	return e;
}

uint64_t fx_slot(struct fx *f, int li, const char *id, uint64_t index)
{
	uint64_t e = fx_map_entry(f, li, id, index);

	ck_assert_msg(e != 0, "chunk %llu of %s is a hole", (unsigned long long)index, id);
	return e - 1;
}

void xwrite(struct vol *v, const void *buf, size_t len, uint64_t off)
{
	ssize_t r = vol_write(v, buf, len, off);

	REQUIRE(r == (ssize_t)len, "vol_write(%zu at %llu) = %zd", len, (unsigned long long)off, r);
}

void xread(struct vol *v, void *buf, size_t len, uint64_t off)
{
	ssize_t r = vol_read(v, buf, len, off);

	REQUIRE(r == (ssize_t)len, "vol_read(%zu at %llu) = %zd", len, (unsigned long long)off, r);
}

/* Read the whole volume and compare it with ref. */
void ref_compare(struct vol *v, const uint8_t *ref, uint64_t size, const char *what)
{
	uint8_t *buf = xmalloc(size);
	int64_t d;

	memset(buf, 0xcc, size);
	xread(v, buf, size, 0);
	d = first_diff(buf, ref, size);
	REQUIRE(d < 0, "%s: volume differs from the reference at byte %lld (chunk %lld): got %02x want %02x", what,
		(long long)d, (long long)(d / 4096), buf[d < 0 ? 0 : d], ref[d < 0 ? 0 : d]);
	free(buf);
}

uint64_t ref_nonzero_chunks(const uint8_t *ref, uint64_t size, uint32_t cs)
{
	uint64_t n = 0;

	for (uint64_t c = 0; c * cs < size; c++) {
		uint64_t len = size - c * cs < cs ? size - c * cs : cs;

		n += !all_zero(ref + c * cs, len);
	}
	return n;
}

struct engine_map_stats fx_stats(struct fx *f, int li, const char *id)
{
	struct engine_map_stats st;

	ck_assert_int_eq(engine_map_stats(f->e, f->lhex[li], id, &st), 0);
	return st;
}

