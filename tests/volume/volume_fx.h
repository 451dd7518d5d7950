/* SPDX-License-Identifier: MIT */
/*
 * volume_fx.h - fixture and helpers shared by the files of the volume suite
 * (tests/volume/).  Test code only: every helper that can fail aborts the
 * running test (Check fork mode) rather than returning an error.
 */
#ifndef EVFS_TEST_VOLUME_FX_H
#define EVFS_TEST_VOLUME_FX_H

#include <check.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine.h"
#include "kms/kms.h"
#include "tc.h"
#include "tc_kms.h"

#define KiB 1024ull
#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

/* Assertion for loops: ck_assert records its location on every call. */
#define REQUIRE(cond, ...)                         \
	do {                                       \
		if (!(cond))                       \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)

extern char g_base[TC_PATH_MAX];           /* base temp dir of the run (main) */
extern const struct kms_caller CALLER;     /* {0, "root", "p1"} */

#define FX_LINEAGES 2

struct fx {
	char dir[1024];                      /* this test's temp dir */
	char pools[1100];                    /* dir/pools */
	struct engine *e;
	int enc;
	uint32_t cs;
	int nlin;
	uint8_t lin[FX_LINEAGES][CHUNK_LINEAGE_BYTES];
	char lhex[FX_LINEAGES][33];
	struct tc_kms kx;                    /* the key store in dir (tests/common) */
	struct kms *k;                       /* kx.k */
	char key_id[KMS_ID_LEN + 1];         /* evs/default of p1 */
	uint8_t wrapped[FX_LINEAGES][KMS_WRAPPED_MAX];
	size_t wlen[FX_LINEAGES];
	pthread_mutex_t log_lock;
	char log[16384];
	size_t log_len;
	unsigned log_lines;
};

/* --- helpers (volume_fx.c) ------------------------------------------------ */
uint64_t splitmix(uint64_t *s);
uint64_t rnd(uint64_t *s, uint64_t n);
void rnd_fill(uint64_t *s, uint8_t *p, size_t n);
uint8_t pat_byte(uint64_t seed, uint64_t x);
void pat_fill(uint8_t *p, size_t n, uint64_t off, uint64_t seed);
int64_t pat_check(const uint8_t *p, size_t n, uint64_t off, uint64_t seed);
int64_t first_diff(const uint8_t *a, const uint8_t *b, size_t n);
int all_zero(const uint8_t *p, size_t n);
int all_byte(const uint8_t *p, size_t n, uint8_t b);
double now_s(void);
void *xmalloc(size_t n);
void *xcalloc(size_t n);
void rm_rf(const char *dir);
int64_t file_blocks(const char *path);
int64_t file_size(const char *path);
void file_pread(const char *path, void *buf, size_t n, uint64_t off);
void file_pwrite(const char *path, const void *buf, size_t n, uint64_t off);
void file_flip(const char *path, uint64_t off, uint8_t mask);
void log_cb(void *ctx, int level, const char *msg);
int log_has(struct fx *f, const char *needle);
void fx_engine_start(struct fx *f);
void fx_engine_stop(struct fx *f);
void fx_engine_restart(struct fx *f);
int fx_lineage_add(struct fx *f);
void fx_init_cs(struct fx *f, int enc, uint32_t cs);
void fx_init(struct fx *f, int enc);
void fx_fini(struct fx *f);
struct kms_dk *fx_dk_any(struct fx *f, int li);
struct kms_dk *fx_dk(struct fx *f, int li);
void fx_path(struct fx *f, int li, const char *name, char *out, size_t n);
void fx_map_path(struct fx *f, int li, const char *id, char *out, size_t n);
void fx_create(struct fx *f, int li, const char *id, uint64_t size);
struct vol *fx_open_li(struct fx *f, int li, const char *id, int writable);
struct vol *fx_open(struct fx *f, const char *id, int writable);
/* The pool format under test: EVFS_TEST_FORMAT (ctest volume_v2), else 1. */
int fx_format(void);
/* Under format 2, a test of format 1's files says so and returns 1. */
int fx_format1_only(const char *test, const char *instead);
#define FX_FORMAT1_ONLY(instead)                     \
	do {                                         \
		if (fx_format1_only(__func__, instead)) \
			return;                      \
	} while (0)
uint64_t fx_map_entry(struct fx *f, int li, const char *id, uint64_t index);
uint64_t fx_slot(struct fx *f, int li, const char *id, uint64_t index);
void xwrite(struct vol *v, const void *buf, size_t len, uint64_t off);
void xread(struct vol *v, void *buf, size_t len, uint64_t off);
void ref_compare(struct vol *v, const uint8_t *ref, uint64_t size, const char *what);
uint64_t ref_nonzero_chunks(const uint8_t *ref, uint64_t size, uint32_t cs);
struct engine_map_stats fx_stats(struct fx *f, int li, const char *id);

/* --- the tests, one file per concern; each adds its tests to a TCase ---- */
void volume_add_io(TCase *tc);             /* core: I/O (volume_io.c) */
void volume_add_layout(TCase *tc);         /* core: size, seek, handles (volume_layout.c) */
void volume_add_cow(TCase *tc);            /* cow (volume_cow.c) */
void volume_add_tamper(TCase *tc);         /* tamper (volume_tamper.c) */
void volume_add_concurrency(TCase *tc);    /* concurrency (volume_concurrency.c) */
void volume_add_par(TCase *tc);            /* concurrency (volume_par.c) */
void volume_add_persistence(TCase *tc);    /* persistence (volume_persistence.c) */
void volume_add_fsck(TCase *tc);           /* fsck (volume_fsck.c) */
void volume_add_crash(TCase *tc);
void volume_add_v2(TCase *tc);             /* format2 (volume_v2.c), format 2 runs only */          /* crash (volume_crash.c): power-cut ordering */

#endif
