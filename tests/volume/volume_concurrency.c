// SPDX-License-Identifier: MIT
/*
 * volume_concurrency.c - TCase "concurrency": threads writing disjoint
 * regions (with a vol_sync racing them), partial writers sharing chunks (no
 * lost update), readers against a writer of self-describing chunks (a read
 * never mixes generations inside a chunk nor goes back in time), snapshots
 * taken under writes, detach racing I/O, and clone racing the close of its
 * source.  Each runs for about a second.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>
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

/* ============================ concurrency ============================= */

struct region_arg {
	struct vol *v;
	uint64_t base, len, seed;
	double deadline;
	unsigned ops;
	char err[256];
};

/* Writes and verifies its own region, keeping a reference copy. */
static void *region_worker(void *arg)
{
	struct region_arg *a = arg;
	uint8_t *ref = calloc(1, a->len), *buf = malloc(256 * KiB), *got = malloc(256 * KiB);
	uint64_t s = a->seed;

	if (!ref || !buf || !got) {
		snprintf(a->err, sizeof(a->err), "out of memory");
		goto out;
	}
	while (now_s() < a->deadline && !a->err[0]) {
		uint64_t off = rnd(&s, a->len), len = 1 + rnd(&s, 256 * KiB), roff, rlen;
		ssize_t r;

		if (len > a->len - off)
			len = a->len - off;
		rnd_fill(&s, buf, len);
		r = vol_write(a->v, buf, len, a->base + off);
		if (r != (ssize_t)len) {
			snprintf(a->err, sizeof(a->err), "write %llu at %llu: %zd", (unsigned long long)len,
				 (unsigned long long)(a->base + off), r);
			break;
		}
		memcpy(ref + off, buf, len);
		roff = rnd(&s, a->len);
		rlen = 1 + rnd(&s, 256 * KiB);
		if (rlen > a->len - roff)
			rlen = a->len - roff;
		r = vol_read(a->v, got, rlen, a->base + roff);
		if (r != (ssize_t)rlen || memcmp(got, ref + roff, rlen) != 0) {
			snprintf(a->err, sizeof(a->err), "read %llu at %llu: %zd / content differs at +%lld",
				 (unsigned long long)rlen, (unsigned long long)(a->base + roff), r,
				 (long long)first_diff(got, ref + roff, rlen));
			break;
		}
		a->ops++;
	}
	/* Final check of the whole region. */
	for (uint64_t off = 0; !a->err[0] && off < a->len; off += 256 * KiB) {
		uint64_t n = a->len - off < 256 * KiB ? a->len - off : 256 * KiB;
		ssize_t r = vol_read(a->v, got, n, a->base + off);

		if (r != (ssize_t)n || memcmp(got, ref + off, n) != 0)
			snprintf(a->err, sizeof(a->err), "final check at %llu: %zd", (unsigned long long)off, r);
	}
out:
	free(ref);
	free(buf);
	free(got);
	return NULL;
}

struct syncer_arg {
	struct vol *v;
	double deadline;
	unsigned syncs;
	int err;
};

/* vol_sync in a loop: freed slots become reusable while others write. */
static void *syncer_main(void *arg)
{
	struct syncer_arg *a = arg;

	while (now_s() < a->deadline) {
		int r = vol_sync(a->v);

		if (r) {
			a->err = r;
			break;
		}
		a->syncs++;
		usleep(500);
	}
	return NULL;
}

START_TEST(test_disjoint_writers)
{
	struct fx f;
	const uint64_t region = 8 * MiB + 4095;              /* regions not chunk aligned */
	struct region_arg a[4];
	struct syncer_arg sy;
	pthread_t th[4], syt;
	struct vol *v;
	double deadline;
	unsigned total = 0;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", 4 * region + 3);
	v = fx_open(&f, "vol1", 1);
	deadline = now_s() + 1.0;
	for (int i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].v = v;
		a[i].base = (uint64_t)i * region;
		a[i].len = region;
		a[i].seed = 1000 + (uint64_t)i;
		a[i].deadline = deadline;
		ck_assert_int_eq(pthread_create(&th[i], NULL, region_worker, &a[i]), 0);
	}
	memset(&sy, 0, sizeof(sy));
	sy.v = v;
	sy.deadline = deadline;
	ck_assert_int_eq(pthread_create(&syt, NULL, syncer_main, &sy), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += a[i].ops;
	}
	pthread_join(syt, NULL);
	ck_assert_int_eq(sy.err, 0);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(a[i].err[0] == '\0', "thread %d: %s", i, a[i].err);
	printf("disjoint writers (%s): %u write+verify rounds in 1 s over 4 threads, %u concurrent vol_sync\n",
	       _i ? "encrypted" : "plain", total, sy.syncs);
	fflush(stdout);
	ck_assert_uint_gt(total, 4);
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

#define PW_CHUNKS 16u
#define PW_SPLIT 2000u                  /* thread 0: bytes [0, 2000) of each chunk */

struct pw_arg {
	struct vol *v;
	int who;
	double deadline;
	uint32_t iter;                  /* last iteration fully written */
	char err[200];
};

static void pw_fill(uint8_t *p, size_t n, int who, uint32_t iter, uint32_t chunk)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(iter * 7 + chunk * 13 + (uint32_t)i + (uint32_t)who * 101);
}

/* Two threads write different byte ranges of the same chunks: each partial
 * write is a read-modify-write of the chunk, so a lost update would bring
 * back an older version of the other thread's bytes. */
static void *pw_main(void *arg)
{
	struct pw_arg *a = arg;
	uint8_t buf[4096], got[4096];
	uint32_t lo = a->who ? PW_SPLIT : 0, n = a->who ? 4096 - PW_SPLIT : PW_SPLIT;

	for (uint32_t iter = 1; now_s() < a->deadline; iter++) {
		for (uint32_t c = 0; c < PW_CHUNKS; c++) {
			ssize_t r;

			pw_fill(buf, n, a->who, iter, c);
			r = vol_write(a->v, buf, n, (uint64_t)c * 4096 + lo);
			if (r != (ssize_t)n) {
				snprintf(a->err, sizeof(a->err), "write chunk %u: %zd", c, r);
				return NULL;
			}
			r = vol_read(a->v, got, n, (uint64_t)c * 4096 + lo);
			if (r != (ssize_t)n || memcmp(got, buf, n) != 0) {
				snprintf(a->err, sizeof(a->err), "chunk %u iteration %u: own bytes lost (%zd)", c, iter,
					 r);
				return NULL;
			}
		}
		a->iter = iter;
	}
	return NULL;
}

START_TEST(test_partial_writers)
{
	struct fx f;
	struct pw_arg a[2];
	pthread_t th[2];
	struct vol *v;
	uint8_t got[4096], want[4096];

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	for (int i = 0; i < 2; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].v = v;
		a[i].who = i;
		a[i].deadline = now_s() + 0.7;
		ck_assert_int_eq(pthread_create(&th[i], NULL, pw_main, &a[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ck_assert_msg(a[0].err[0] == '\0', "thread 0: %s", a[0].err);
	ck_assert_msg(a[1].err[0] == '\0', "thread 1: %s", a[1].err);
	printf("partial writers (%s): %u + %u rounds over %u shared chunks\n", _i ? "encrypted" : "plain", a[0].iter,
	       a[1].iter, PW_CHUNKS);
	fflush(stdout);
	ck_assert_uint_gt(a[0].iter, 0);
	ck_assert_uint_gt(a[1].iter, 0);
	for (uint32_t c = 0; c < PW_CHUNKS; c++) {
		xread(v, got, sizeof(got), (uint64_t)c * 4096);
		pw_fill(want, PW_SPLIT, 0, a[0].iter, c);
		pw_fill(want + PW_SPLIT, 4096 - PW_SPLIT, 1, a[1].iter, c);
		ck_assert_msg(memcmp(got, want, sizeof(got)) == 0, "chunk %u: lost update (differs at %lld)", c,
			      (long long)first_diff(got, want, sizeof(got)));
	}
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* Generations: chunk k of generation g holds the 64-bit word g << 32 | k
 * repeated. */
#define GEN_CHUNKS 128u

struct gen_state {
	struct vol *v;
	atomic_uint started;          /* generation being written */
	atomic_uint done;             /* last generation fully written */
	atomic_int stop;
	double deadline;
	char err[256];
	pthread_mutex_t err_lock;
	unsigned reads, writes;
};

static void gen_fail(struct gen_state *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void gen_fail(struct gen_state *g, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&g->err_lock);
	if (!g->err[0]) {
		va_start(ap, fmt);
		vsnprintf(g->err, sizeof(g->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&g->err_lock);
	atomic_store(&g->stop, 1);
}

static void gen_fill(uint8_t *buf, uint64_t first_chunk, uint64_t nchunks, uint32_t gen)
{
	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t w = (uint64_t)gen << 32 | (first_chunk + c);

		for (unsigned i = 0; i < 4096 / 8; i++)
			memcpy(buf + c * 4096 + i * 8, &w, 8);
	}
}

/* Check [off, off+len) of the region (8-byte aligned); returns the gen of
 * each chunk piece in gens[] (indexed by chunk) or 0 on a bad piece. */
static int gen_check(const uint8_t *buf, uint64_t off, uint64_t len, uint32_t *gens, char *why, size_t whysz)
{
	for (uint64_t p = 0; p < len;) {
		uint64_t at = off + p, chunk = at / 4096, end = (chunk + 1) * 4096, n, w0;

		if (end > off + len)
			end = off + len;
		n = end - at;
		memcpy(&w0, buf + p, 8);
		if ((w0 & 0xffffffffu) != chunk || (w0 >> 32) == 0) {
			snprintf(why, whysz, "chunk %llu holds word %016llx", (unsigned long long)chunk,
				 (unsigned long long)w0);
			return -1;
		}
		for (uint64_t i = 8; i < n; i += 8) {
			uint64_t w;

			memcpy(&w, buf + p + i, 8);
			if (w != w0) {
				snprintf(why, whysz, "chunk %llu mixes generations %llu and %llu at +%llu",
					 (unsigned long long)chunk, (unsigned long long)(w0 >> 32),
					 (unsigned long long)(w >> 32), (unsigned long long)(at % 4096 + i));
				return -1;
			}
		}
		gens[chunk] = (uint32_t)(w0 >> 32);
		p += n;
	}
	return 0;
}

static void *gen_writer(void *arg)
{
	struct gen_state *g = arg;
	uint8_t *buf = malloc(GEN_CHUNKS * 4096);
	uint64_t s = 4242;
	uint32_t gen = atomic_load(&g->done);

	if (!buf) {
		gen_fail(g, "out of memory");
		return NULL;
	}
	while (!atomic_load(&g->stop) && now_s() < g->deadline) {
		gen++;
		atomic_store(&g->started, gen);
		for (uint64_t c = 0; c < GEN_CHUNKS;) {
			uint64_t n = 1 + rnd(&s, 40);
			ssize_t r;

			if (n > GEN_CHUNKS - c)
				n = GEN_CHUNKS - c;
			gen_fill(buf, c, n, gen);
			r = vol_write(g->v, buf, n * 4096, c * 4096);
			if (r != (ssize_t)(n * 4096)) {
				gen_fail(g, "writer: gen %u chunks %llu+%llu: %zd", gen, (unsigned long long)c,
					 (unsigned long long)n, r);
				free(buf);
				return NULL;
			}
			c += n;
			g->writes++;
			/* Freed slots become reusable at once: a reader that
			 * did not hold its chunks would read reused slots. */
			r = vol_sync(g->v);
			if (r != 0) {
				gen_fail(g, "writer: vol_sync: %zd", r);
				free(buf);
				return NULL;
			}
		}
		atomic_store(&g->done, gen);
	}
	free(buf);
	return NULL;
}

struct gen_reader {
	struct gen_state *g;
	uint64_t seed;
	unsigned reads;
};

static void *gen_reader_main(void *arg)
{
	struct gen_reader *rd = arg;
	struct gen_state *g = rd->g;
	uint8_t *buf = malloc(GEN_CHUNKS * 4096);
	uint32_t last[GEN_CHUNKS] = { 0 }, gens[GEN_CHUNKS];
	uint64_t s = rd->seed;
	char why[160];

	if (!buf) {
		gen_fail(g, "out of memory");
		return NULL;
	}
	while (!atomic_load(&g->stop) && now_s() < g->deadline) {
		uint64_t off = rnd(&s, GEN_CHUNKS * 4096 / 8) * 8, len = 8 * (1 + rnd(&s, 200 * KiB / 8));
		uint32_t done_before, started_after;
		ssize_t r;

		if (len > GEN_CHUNKS * 4096 - off)
			len = GEN_CHUNKS * 4096 - off;
		done_before = atomic_load(&g->done);
		r = vol_read(g->v, buf, len, off);
		started_after = atomic_load(&g->started);
		if (r != (ssize_t)len) {
			gen_fail(g, "reader: read %llu at %llu: %zd", (unsigned long long)len, (unsigned long long)off,
				 r);
			break;
		}
		memset(gens, 0, sizeof(gens));
		if (gen_check(buf, off, len, gens, why, sizeof(why)) < 0) {
			gen_fail(g, "reader: read %llu at %llu: %s", (unsigned long long)len, (unsigned long long)off,
				 why);
			break;
		}
		for (uint64_t c = off / 4096; c <= (off + len - 1) / 4096; c++) {
			if (gens[c] < done_before || gens[c] > started_after || gens[c] < last[c]) {
				gen_fail(g, "reader: chunk %llu gen %u (completed %u, started %u, seen before %u)",
					 (unsigned long long)c, gens[c], done_before, started_after, last[c]);
				break;
			}
			last[c] = gens[c];
		}
		rd->reads++;
	}
	free(buf);
	return NULL;
}

static void gen_setup(struct fx *f, struct gen_state *g, const char *id)
{
	uint8_t *buf = xmalloc(GEN_CHUNKS * 4096);

	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->err_lock, NULL);
	fx_create(f, 0, id, GEN_CHUNKS * 4096 + MiB);
	g->v = fx_open(f, id, 1);
	gen_fill(buf, 0, GEN_CHUNKS, 1);
	xwrite(g->v, buf, GEN_CHUNKS * 4096, 0);
	atomic_store(&g->started, 1);
	atomic_store(&g->done, 1);
	free(buf);
}

START_TEST(test_readers_vs_writer)
{
	struct fx f;
	struct gen_state g;
	struct gen_reader rd[2];
	pthread_t w, r[2];

	fx_init(&f, _i);
	gen_setup(&f, &g, "vol1");
	g.deadline = now_s() + 1.0;
	for (int i = 0; i < 2; i++) {
		rd[i].g = &g;
		rd[i].seed = 77 + (uint64_t)i;
		rd[i].reads = 0;
		ck_assert_int_eq(pthread_create(&r[i], NULL, gen_reader_main, &rd[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&w, NULL, gen_writer, &g), 0);
	pthread_join(w, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(r[i], NULL);
	ck_assert_msg(g.err[0] == '\0', "%s", g.err);
	printf("readers vs writer (%s): %u generations, %u writes, %u + %u reads\n", _i ? "encrypted" : "plain",
	       atomic_load(&g.done), g.writes, rd[0].reads, rd[1].reads);
	fflush(stdout);
	ck_assert_uint_gt(atomic_load(&g.done), 2);
	ck_assert_uint_gt(rd[0].reads + rd[1].reads, 10);
	engine_vol_close(g.v);
	pthread_mutex_destroy(&g.err_lock);
	fx_fini(&f);
}
END_TEST

/* Snapshots of a volume under write: every chunk whole, and at least as
 * new as the last generation acknowledged before the clone. */
START_TEST(test_snapshot_under_writes)
{
	struct fx f;
	struct gen_state g;
	pthread_t w;
	uint8_t *buf = xmalloc(GEN_CHUNKS * 4096);
	uint32_t gens[GEN_CHUNKS];
	char why[160];
	int nsnap = 0;

	fx_init(&f, _i);
	gen_setup(&f, &g, "vol1");
	g.deadline = now_s() + 1.2;
	ck_assert_int_eq(pthread_create(&w, NULL, gen_writer, &g), 0);
	while (now_s() < g.deadline - 0.1 && !atomic_load(&g.stop)) {
		char id[32];
		uint32_t done_before, started_after;
		struct vol *s;
		int r;

		snprintf(id, sizeof(id), "snap%d", nsnap);
		done_before = atomic_load(&g.done);
		r = engine_map_clone(f.e, f.lhex[0], "vol1", id, 0, 0);
		started_after = atomic_load(&g.started);
		if (r != 0) {
			gen_fail(&g, "clone %s: %d", id, r);
			break;
		}
		s = fx_open(&f, id, 0);
		xread(s, buf, GEN_CHUNKS * 4096, 0);
		if (gen_check(buf, 0, GEN_CHUNKS * 4096, gens, why, sizeof(why)) < 0) {
			gen_fail(&g, "%s: %s", id, why);
			engine_vol_close(s);
			break;
		}
		for (unsigned c = 0; c < GEN_CHUNKS; c++) {
			if (gens[c] < done_before || gens[c] > started_after) {
				gen_fail(&g, "%s: chunk %u gen %u (completed %u, started %u)", id, c, gens[c],
					 done_before, started_after);
				break;
			}
		}
		engine_vol_close(s);
		ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], id), 0);
		nsnap++;
		usleep(20000);
	}
	atomic_store(&g.stop, 1);
	pthread_join(w, NULL);
	ck_assert_msg(g.err[0] == '\0', "%s", g.err);
	printf("snapshots under writes (%s): %d snapshots, %u generations\n", _i ? "encrypted" : "plain", nsnap,
	       atomic_load(&g.done));
	fflush(stdout);
	ck_assert_int_gt(nsnap, 2);
	engine_vol_close(g.v);
	pthread_mutex_destroy(&g.err_lock);
	free(buf);
	fx_fini(&f);
}
END_TEST

struct race_arg {
	struct gen_state *g;
	atomic_int *detached;         /* set once vol_detach returned */
	uint64_t seed;
	unsigned ok, nokey, after;
};

static void *race_worker(void *arg)
{
	struct race_arg *a = arg;
	struct gen_state *g = a->g;
	uint8_t *buf = malloc(16 * 4096);
	uint64_t s = a->seed;
	char why[160];
	uint32_t gens[GEN_CHUNKS];

	if (!buf) {
		gen_fail(g, "out of memory");
		return NULL;
	}
	while (!atomic_load(&g->stop) && now_s() < g->deadline) {
		uint64_t c = rnd(&s, GEN_CHUNKS - 16), n = 1 + rnd(&s, 16);
		int was_detached = atomic_load(a->detached), is_write = (int)rnd(&s, 2);
		ssize_t r;

		if (is_write) {
			gen_fill(buf, c, n, (uint32_t)(2 + rnd(&s, 1000)));
			r = vol_write(g->v, buf, n * 4096, c * 4096);
		} else {
			r = vol_read(g->v, buf, n * 4096, c * 4096);
		}
		if (r == (ssize_t)(n * 4096)) {
			if (was_detached) {
				gen_fail(g, "%s succeeded after vol_detach returned", is_write ? "write" : "read");
				break;
			}
			if (!is_write && gen_check(buf, c * 4096, n * 4096, gens, why, sizeof(why)) < 0) {
				gen_fail(g, "read during detach race: %s", why);
				break;
			}
			a->ok++;
		} else if (r == -ENOKEY) {
			a->nokey++;
			if (++a->after > 200)
				break;
		} else {
			gen_fail(g, "%s of %llu chunks: %zd (want success or -ENOKEY)", is_write ? "write" : "read",
				 (unsigned long long)n, r);
			break;
		}
	}
	free(buf);
	return NULL;
}

/* Regression (found by this suite, since fixed): fs/vol_handle.c engine_vol_open()
 * initialised v->lock with default attributes; glibc's default rwlock
 * prefers readers, so with several threads doing I/O (each holding v->lock
 * shared) vol_detach()'s wrlock never got in: it blocked 1-2.8 s, until the
 * I/O threads stopped by themselves (vol_extend and engine_map_clone of an
 * open source starve the same way).  v->lock now prefers writers. */
START_TEST(test_detach_race)
{
	struct fx f;
	struct gen_state g;
	struct race_arg a[3];
	pthread_t th[3];
	atomic_int detached = 0;
	uint8_t *buf = xmalloc(GEN_CHUNKS * 4096);
	uint32_t gens[GEN_CHUNKS];
	char why[160];
	unsigned ok = 0, nokey = 0;
	double t0, t_detach;

	fx_init(&f, _i);
	gen_setup(&f, &g, "vol1");
	g.deadline = now_s() + 3.0;
	for (int i = 0; i < 3; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].g = &g;
		a[i].detached = &detached;
		a[i].seed = 500 + (uint64_t)i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_worker, &a[i]), 0);
	}
	usleep(200000);
	t0 = now_s();
	ck_assert_int_eq(vol_detach(g.v), 0);
	t_detach = now_s() - t0;
	atomic_store(&detached, 1);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		ok += a[i].ok;
		nokey += a[i].nokey;
	}
	ck_assert_msg(g.err[0] == '\0', "%s", g.err);
	printf("detach race (%s): vol_detach waited %.2f ms; %u ops succeeded before, %u got -ENOKEY\n",
	       _i ? "encrypted" : "plain", t_detach * 1e3, ok, nokey);
	fflush(stdout);
	/* vol_detach "waits for in-flight I/O", not for the I/O to stop. */
	ck_assert_msg(t_detach < 0.5, "vol_detach blocked %.0f ms while I/O went on", t_detach * 1e3);
	ck_assert_uint_gt(ok, 0);
	ck_assert_uint_gt(nokey, 0);
	ck_assert_int_eq(vol_detach(g.v), -ENOKEY);
	ck_assert(!vol_is_attached(g.v));
	/* Attached again: every chunk is whole (no write was cut by the
	 * detach). */
	ck_assert_int_eq(vol_attach(g.v, fx_dk(&f, 0)), 0);
	xread(g.v, buf, GEN_CHUNKS * 4096, 0);
	ck_assert_msg(gen_check(buf, 0, GEN_CHUNKS * 4096, gens, why, sizeof(why)) == 0, "%s", why);
	{
		struct kms_dk *dk = fx_dk(&f, 0);

		ck_assert_int_eq(engine_map_verify(f.e, f.lhex[0], "vol1", dk, NULL, NULL), 0);
		kms_dk_destroy(dk);
	}
	engine_vol_close(g.v);
	pthread_mutex_destroy(&g.err_lock);
	free(buf);
	fx_fini(&f);
}
END_TEST

/* Test hook: while g_watch_rwlocks is set, pthread_rwlock_destroy (the
 * engine's, interposed here) counts the locks destroyed while still held
 * (pthread_rwlock_trywrlock fails), which glibc itself never reports. */
static atomic_int g_watch_rwlocks, g_destroyed_locked;

int pthread_rwlock_destroy(pthread_rwlock_t *l)
{
	static int (*real)(pthread_rwlock_t *);

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "pthread_rwlock_destroy");
	if (atomic_load(&g_watch_rwlocks)) {
		if (pthread_rwlock_trywrlock(l) == 0)
			pthread_rwlock_unlock(l);
		else
			atomic_fetch_add(&g_destroyed_locked, 1);
	}
	return real(l);
}

struct close_arg {
	struct fx *f;
	double deadline;
	atomic_int *stop;
	unsigned opens;
	int err;
};

/* Opens and closes vol1 (its last reference) in a loop. */
static void *open_close_worker(void *arg)
{
	struct close_arg *a = arg;

	while (!atomic_load(a->stop) && now_s() < a->deadline) {
		struct vol *v;
		int r = engine_vol_open(&v, a->f->e, a->f->lhex[0], "vol1", 1);

		if (r) {
			a->err = r;
			break;
		}
		usleep(100);                 /* open long enough to be found */
		engine_vol_close(v);
		a->opens++;
	}
	return NULL;
}

/* Fails the running test if it is still running `secs` from now (a hang
 * would otherwise only end at the TCase timeout). */
struct watchdog {
	pthread_t th;
	double secs;
	const char *what;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void *watchdog_main(void *arg)
{
	struct watchdog *w = arg;
	struct timespec ts;
	int fired;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)w->secs;
	pthread_mutex_lock(&w->lock);
	while (!w->done && pthread_cond_timedwait(&w->cond, &w->lock, &ts) != ETIMEDOUT)
		;
	fired = !w->done;
	pthread_mutex_unlock(&w->lock);
	if (fired) {
		fprintf(stderr, "watchdog: %s still running after %.0f s\n", w->what, w->secs);
		ck_abort_msg("%s hung (still running after %.0f s)", w->what, w->secs);
	}
	return NULL;
}

static void watchdog_start(struct watchdog *w, double secs, const char *what)
{
	w->secs = secs;
	w->what = what;
	w->done = 0;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	ck_assert_int_eq(pthread_create(&w->th, NULL, watchdog_main, w), 0);
}

static void watchdog_stop(struct watchdog *w)
{
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->th, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

/* engine_map_clone freezes an open source through the engine's table of
 * handles; the source may be closed (and freed) meanwhile. */
/* Regression (found by this suite, since fixed): fs/maps.c
 * engine_map_clone() took `sv = open_vol_find(e, src_id)` without a
 * reference and locked/unlocked sv->lock while another thread's engine_vol_close()
 * could drop the last reference and vol_free() the handle: a use-after-free
 * (ThreadSanitizer: "destroy of a locked mutex" in vol_free); here it made
 * the clone loop hang within a second.  The watchdog turns a hang into a
 * failure. */
START_TEST(test_clone_vs_close)
{
	struct fx f;
	struct close_arg a;
	pthread_t th;
	atomic_int stop = 0;
	uint8_t buf[4096], got[4096];
	struct vol *v;
	struct watchdog wd;
	int clones = 0;

	fx_init(&f, 0);
	fx_create(&f, 0, "vol1", MiB);
	v = fx_open(&f, "vol1", 1);
	memset(buf, 0x42, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 0);
	engine_vol_close(v);
	memset(&a, 0, sizeof(a));
	a.f = &f;
	a.stop = &stop;
	a.deadline = now_s() + 0.7;
	watchdog_start(&wd, 10, "clone vs close");
	atomic_store(&g_watch_rwlocks, 1);
	ck_assert_int_eq(pthread_create(&th, NULL, open_close_worker, &a), 0);
	while (now_s() < a.deadline) {
		int r = engine_map_clone(f.e, f.lhex[0], "vol1", "snap", 0, 0);

		if (r) {
			atomic_store(&stop, 1);
			pthread_join(th, NULL);
			ck_abort_msg("clone %d: %d", clones, r);
		}
		r = engine_map_delete(f.e, f.lhex[0], "snap");
		if (r) {
			atomic_store(&stop, 1);
			pthread_join(th, NULL);
			ck_abort_msg("delete %d: %d", clones, r);
		}
		clones++;
	}
	pthread_join(th, NULL);
	atomic_store(&g_watch_rwlocks, 0);
	watchdog_stop(&wd);
	ck_assert_int_eq(a.err, 0);
	printf("clone vs close: %d clones, %u open/close cycles, %d handles freed while clone held their lock\n",
	       clones, a.opens, atomic_load(&g_destroyed_locked));
	fflush(stdout);
	ck_assert_msg(atomic_load(&g_destroyed_locked) == 0,
		      "%d vol handles were destroyed while engine_map_clone held their lock",
		      atomic_load(&g_destroyed_locked));
	v = fx_open(&f, "vol1", 0);
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, buf, sizeof(got));
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

void volume_add_concurrency(TCase *tc)
{
	tcase_add_loop_test(tc, test_disjoint_writers, 0, 2);
	tcase_add_loop_test(tc, test_readers_vs_writer, 0, 2);
	tcase_add_loop_test(tc, test_partial_writers, 0, 2);
	tcase_add_loop_test(tc, test_snapshot_under_writes, 0, 2);
	tcase_add_loop_test(tc, test_detach_race, 0, 2);
	tcase_add_test(tc, test_clone_vs_close);
}
