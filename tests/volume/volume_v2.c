// SPDX-License-Identifier: MIT
/*
 * volume_v2.c - what only format 2 promises (tcase "format2", registered
 * when EVFS_TEST_FORMAT=2: ctest volume_v2).
 *
 * The rest of the suite runs unchanged on format 2 pools and asserts the
 * same behaviour as on format 1; these tests look at what format 2 adds:
 * a clone costs a root record, not a copy of the map; every map page is
 * bound by hash to its parent and the root records to the header, so a
 * page altered or rolled back on disk is refused rather than read; one
 * journal commit makes data, tree and counts durable together, so a
 * process that dies after vol_sync() loses nothing and a commit the
 * file system cuts short changes nothing on disk.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine_fsck.h"
#include "engine_int.h"
#include "tree.h"

#include "volume_fx.h"

/* Bytes the pool's metadata (home block files, journal apart) take on disk. */
static int64_t meta_blocks(struct fx *f)
{
	static const char *const names[] = { "pages", "srefs", "prefs", "roots" };
	char path[PATH_MAX + 128];
	int64_t n = 0;

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		fx_path(f, 0, names[i], path, sizeof(path));
		n += file_blocks(path);
	}
	return n * 512;
}

/*
 * Twenty snapshots of a volume with 32 MiB of data: each costs a root
 * record (no page, no chunk), so the metadata does not grow with them;
 * one chunk written to the origin afterwards copies one path of pages
 * (depth pages), not the map; deleting the snapshots frees no chunk the
 * origin still names.
 */
START_TEST(test_v2_clone_is_o1)
{
	struct fx f;
	const uint64_t size = 1 * GiB, data = 32 * MiB;
	uint8_t *buf = xmalloc(data), got[4096];
	char data_path[PATH_MAX + 128], id[32];
	uint64_t seed = 77;
	int64_t m0, m1, m2, d0, d1;
	struct vol *v;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, data);
	xwrite(v, buf, data, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	fx_path(&f, 0, "data", data_path, sizeof(data_path));
	m0 = meta_blocks(&f);
	d0 = file_blocks(data_path);
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "snap%02d", i);
		ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", id, 0, 0), 0);
	}
	ck_assert_int_eq(vol_sync(v), 0);
	m1 = meta_blocks(&f);
	d1 = file_blocks(data_path);
	printf("format 2 clone (%s): metadata %lld KiB -> %lld KiB after 20 snapshots of %llu MiB written\n",
	       _i ? "encrypted" : "plain", (long long)m0 / 1024, (long long)m1 / 1024,
	       (unsigned long long)(data / MiB));
	ck_assert_int_eq(d1, d0);                       /* no chunk copied */
	ck_assert_int_le(m1 - m0, 8 * 1024);            /* root records, no map copy */
	{
		struct engine_map_stats st = fx_stats(&f, 0, "snap07");

		ck_assert_uint_eq(st.chunks, data / f.cs);
		ck_assert_uint_eq(st.exclusive, 0);     /* all shared with vol1 and the others */
	}
	/* One chunk in the origin: one path of pages shadowed. */
	xwrite(v, buf + 4096, 4096, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	m2 = meta_blocks(&f);
	ck_assert_int_le(m2 - m1, 256 * 1024);
	{
		struct vol *s = fx_open(&f, "snap07", 0);

		xread(s, got, sizeof(got), 0);
		ck_assert_mem_eq(got, buf, sizeof(got));        /* the snapshot kept the old chunk */
		engine_vol_close(s);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "snap%02d", i);
		ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], id), 0);
	}
	ck_assert_int_eq(vol_sync(v), 0);
	/* Only chunk 0's old copy is gone; vol1 reads as written. */
	ck_assert_int_ge(file_blocks(data_path), d0 - 2 * (int64_t)(f.cs / 512));
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, buf + 4096, sizeof(got));
	xread(v, got, sizeof(got), data - 4096);
	ck_assert_mem_eq(got, buf + data - 4096, sizeof(got));
	engine_vol_close(v);
	free(buf);
	fx_fini(&f);
}
END_TEST

/* Write, sync and close; returns the data written (cs bytes at chunk 3). */
static void write_closed(struct fx *f, uint8_t *buf, size_t n)
{
	struct vol *v;
	uint64_t seed = 99;

	fx_create(f, 0, "vol1", 64 * MiB);
	v = fx_open(f, "vol1", 1);
	rnd_fill(&seed, buf, n);
	xwrite(v, buf, n, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	fx_engine_stop(f);
}

/*
 * A map page altered on disk (one bit of the pages file, where the leaf
 * names chunk 0) is refused: the read fails with -EUCLEAN instead of
 * returning zeros or another chunk, and the log names the file.
 */
START_TEST(test_v2_tamper_page)
{
	struct fx f;
	uint8_t buf[4 * 4096], got[4096];
	char path[PATH_MAX + 128];
	int64_t npages;
	struct vol *v;

	fx_init(&f, _i);
	write_closed(&f, buf, sizeof(buf));
	fx_path(&f, 0, "pages", path, sizeof(path));
	npages = file_size(path) / 4096;
	ck_assert_int_ge(npages, 1);
	/* Every page in use holds chunk 0's path: flip a bit of each one's
	 * first entry. */
	for (int64_t pg = 0; pg < npages; pg++)
		file_flip(path, (uint64_t)pg * 4096 + 1, 0x01);
	fx_engine_start(&f);
	v = fx_open(&f, "vol1", 1);
	ck_assert_int_eq(vol_read(v, got, sizeof(got), 0), -EUCLEAN);
	ck_assert_int_eq(vol_write(v, got, sizeof(got), 0), -EUCLEAN);
	ck_assert(log_has(&f, "does not match its parent's hash"));
	engine_vol_close(v);
	/* Put the bits back: the pool reads as written (nothing was
	 * committed over the damage). */
	fx_engine_stop(&f);
	for (int64_t pg = 0; pg < npages; pg++)
		file_flip(path, (uint64_t)pg * 4096 + 1, 0x01);
	fx_engine_start(&f);
	v = fx_open(&f, "vol1", 0);
	xread(v, got, sizeof(got), 4096);
	ck_assert_mem_eq(got, buf + 4096, sizeof(got));
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* A root record altered on disk: the pool is refused as a whole. */
START_TEST(test_v2_tamper_roots)
{
	struct fx f;
	uint8_t buf[4096];
	char path[PATH_MAX + 128];
	struct vol *v = NULL;

	fx_init(&f, _i);
	write_closed(&f, buf, sizeof(buf));
	fx_path(&f, 0, "roots", path, sizeof(path));
	file_flip(path, 4096 + 60, 0x80);              /* root record 0: its size */
	fx_engine_start(&f);
	ck_assert_int_eq(engine_vol_open(&v, f.e, f.lhex[0], "vol1", 1), -EUCLEAN);
	ck_assert(log_has(&f, "do not match the header"));
	fx_fini(&f);
}
END_TEST

/*
 * A process that dies right after vol_sync() (here: a child that
 * _exit()s without closing anything) leaves a journal the next open
 * replays: every synced write reads back; chunks written after the last
 * sync read old or new, never anything else.
 */
START_TEST(test_v2_replay)
{
	struct fx f;
	const size_t n = 2 * MiB;
	uint8_t *a = xmalloc(n), *b = xmalloc(n), *got = xmalloc(n);
	uint64_t seed = 5;
	pid_t pid;
	int st;
	struct vol *v;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", 16 * MiB);
	rnd_fill(&seed, a, n);
	rnd_fill(&seed, b, n);
	fx_engine_stop(&f);                 /* the child is the pool's only user */
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		fx_engine_start(&f);
		v = fx_open(&f, "vol1", 1);
		if (vol_write(v, a, n, 0) != (ssize_t)n || vol_sync(v) != 0)
			_exit(2);
		if (engine_map_clone(f.e, f.lhex[0], "vol1", "snap", 0, 0) != 0 || vol_sync(v) != 0)
			_exit(3);
		if (vol_write(v, b, n, 0) != (ssize_t)n)   /* not synced */
			_exit(4);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	fx_engine_start(&f);
	v = fx_open(&f, "snap", 0);
	xread(v, got, n, 0);
	ck_assert_msg(memcmp(got, a, n) == 0, "the synced snapshot lost data");
	engine_vol_close(v);
	v = fx_open(&f, "vol1", 0);
	xread(v, got, n, 0);
	for (size_t off = 0; off < n; off += f.cs)
		ck_assert_msg(memcmp(got + off, a + off, f.cs) == 0 || memcmp(got + off, b + off, f.cs) == 0,
			      "chunk at %zu reads neither its synced nor its later content", off);
	engine_vol_close(v);
	ck_assert(log_has(&f, "replayed"));
	free(a);
	free(b);
	free(got);
	fx_fini(&f);
}
END_TEST

/*
 * A commit the file system cuts short (RLIMIT_FSIZE stops the journal
 * write; ENOSPC on a full disk alike): vol_sync() reports it, the
 * volume keeps serving what was written, and the next vol_sync() with
 * room commits it all; after a restart everything reads back.
 */
START_TEST(test_v2_commit_cut_short)
{
	struct fx f;
	const size_t n = 4 * MiB;
	uint8_t *a = xmalloc(n), *got = xmalloc(n);
	char path[PATH_MAX + 128];
	struct rlimit old, rl;
	uint64_t seed = 11;
	struct vol *v;
	int r;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", 64 * MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, a, n);
	xwrite(v, a, 4096, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	xwrite(v, a, n, 0);
	fx_path(&f, 0, "journal", path, sizeof(path));
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = 4096;                 /* the record (past the first one) cannot be written */
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	r = vol_sync(v);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* A short write is reported as -ENOSPC, a refused one as -EFBIG. */
	ck_assert_msg(r == -EFBIG || r == -ENOSPC, "vol_sync with the journal cut short: %d (want -EFBIG)", r);
	xread(v, got, n, 0);
	ck_assert(memcmp(got, a, n) == 0);
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	fx_engine_restart(&f);
	v = fx_open(&f, "vol1", 0);
	xread(v, got, n, 0);
	ck_assert(memcmp(got, a, n) == 0);
	engine_vol_close(v);
	free(a);
	free(got);
	fx_fini(&f);
}
END_TEST

struct issues {
	int n, hash, count, slot_free;
};

static void issue_cb(void *ctx, const struct engine_fsck_issue *is)
{
	struct issues *x = ctx;

	x->n++;
	x->hash += is->what == ENGINE_FSCK_PAGE_HASH;
	x->count += is->what == ENGINE_FSCK_REFCOUNT || is->what == ENGINE_FSCK_PAGE_COUNT;
	x->slot_free += is->what == ENGINE_FSCK_SLOT_FREE;
}

/*
 * fsck of a format 2 pool: clean with a snapshot sharing every chunk; a
 * count changed on disk is found; a free slot that still holds data (a
 * punch a crash cut off) is a leak, and reclaim gives it back; a page
 * altered on disk is named, and the map check reports it instead of
 * passing.
 */
START_TEST(test_v2_fsck)
{
	struct fx f;
	struct engine_pool_report r;
	struct issues x;
	uint8_t buf[8 * 4096];
	char path[PATH_MAX + 128];
	struct kms_dk *dk;
	uint64_t seed = 3, old0, n;
	uint32_t one = 1;
	struct vol *v;

	fx_init(&f, _i);
	write_closed(&f, buf, sizeof(buf));
	fx_engine_start(&f);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	memset(&x, 0, sizeof(x));
	ck_assert_int_eq(engine_pool_check(f.e, f.lhex[0], issue_cb, &x, &r), 0);
	ck_assert_int_eq(x.n, 0);
	ck_assert_uint_eq(r.maps, 2);
	ck_assert_uint_eq(r.referenced, 8);
	ck_assert_uint_eq(r.leaked, 0);
	dk = fx_dk(&f, 0);
	ck_assert_int_eq(engine_map_check(f.e, f.lhex[0], "snap1", dk, issue_cb, &x), 0);
	/* Overwrite chunk 0 in vol1, drop snap1: chunk 0's old slot is
	 * free, and punched by the commit. */
	old0 = fx_slot(&f, 0, "vol1", 0);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, 4096);
	xwrite(v, buf, 4096, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	ck_assert_int_eq(engine_map_delete(f.e, f.lhex[0], "snap1"), 0);
	fx_engine_stop(&f);
	/* A leak: data in the free slot (a punch a crash cut off). */
	fx_path(&f, 0, "data", path, sizeof(path));
	file_pwrite(path, buf, 4096, old0 * 4096);
	fx_engine_start(&f);
	v = fx_open(&f, "vol1", 0);         /* the pool stays open (closing gives free space back) */
	memset(&x, 0, sizeof(x));
	ck_assert_int_eq(engine_pool_check(f.e, f.lhex[0], issue_cb, &x, &r), 0);
	ck_assert_uint_eq(r.leaked, 1);
	ck_assert_int_eq(engine_pool_reclaim(f.e, f.lhex[0], &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(engine_pool_check(f.e, f.lhex[0], issue_cb, &x, &r), 0);
	ck_assert_uint_eq(r.leaked, 0);
	engine_vol_close(v);
	fx_engine_stop(&f);
	/* A stored count changed behind the engine: the free slot says 1. */
	fx_path(&f, 0, "srefs", path, sizeof(path));
	file_pwrite(path, &one, 4, old0 * 4);
	fx_engine_start(&f);
	memset(&x, 0, sizeof(x));
	ck_assert_int_eq(engine_pool_check(f.e, f.lhex[0], issue_cb, &x, &r), 1);
	ck_assert_int_eq(x.count, 1);
	fx_engine_stop(&f);
	file_pwrite(path, (uint32_t[]){ 0 }, 4, old0 * 4);
	/* A page altered on disk. */
	fx_path(&f, 0, "pages", path, sizeof(path));
	for (int64_t pg = 0; pg < file_size(path) / 4096; pg++)
		file_flip(path, (uint64_t)pg * 4096 + 1, 0x01);
	fx_engine_start(&f);
	memset(&x, 0, sizeof(x));
	ck_assert_int_ge(engine_pool_check(f.e, f.lhex[0], issue_cb, &x, &r), 1);
	ck_assert_int_ge(x.hash, 1);
	memset(&x, 0, sizeof(x));
	ck_assert_int_ge(engine_map_check(f.e, f.lhex[0], "vol1", dk, issue_cb, &x), 1);
	ck_assert_int_ge(x.hash, 1);
	kms_dk_destroy(dk);
	fx_fini(&f);
}
END_TEST

/* The store's freshness record, kept in memory here (the catalog in
 * evfsctl: meta_fresh.c). */
struct rec {
	int have, saves;
	uint64_t gen;
	uint8_t hash[32];
};

static int rec_load(void *ctx, const char *lineage, uint64_t *gen, uint8_t hash[static 32])
{
	struct rec *r = ctx;

	(void)lineage;
	if (!r->have)
		return -ENOENT;
	*gen = r->gen;
	memcpy(hash, r->hash, 32);
	return 0;
}

static int rec_save(void *ctx, const char *lineage, uint64_t gen, const uint8_t hash[static 32], int force)
{
	struct rec *r = ctx;

	(void)lineage;
	r->saves++;
	if (force || !r->have || gen > r->gen) {
		r->have = 1;
		r->gen = gen;
		memcpy(r->hash, hash, 32);
	}
	return 0;
}

static const struct engine_fresh_ops rec_ops = { .load = rec_load, .save = rec_save };

static int reopen(struct fx *f, struct rec *r)
{
	struct vol *v = NULL;
	int err;

	fx_engine_restart(f);
	engine_set_fresh(f->e, &rec_ops, r);
	err = engine_vol_open(&v, f->e, f->lhex[0], "vol1", 0);
	if (!err)
		engine_vol_close(v);
	return err;
}

/*
 * The freshness record: every durable commit moves it forward; a pool
 * older than it (put back from an older copy), or at its generation with
 * another header, is refused and logged; a pool ahead of it (the record
 * lagged: a crash between the pool's commit and the catalog's write) is
 * the normal case and moves it forward; engine_pool_accept takes the pool
 * as it is.
 */
START_TEST(test_v2_fresh)
{
	struct fx f;
	struct rec r = { 0 };
	uint8_t buf[4096];
	struct vol *v;
	uint64_t g;
	int saves;

	fx_init(&f, _i);
	engine_set_fresh(f.e, &rec_ops, &r);
	fx_create(&f, 0, "vol1", 64 * MiB);
	v = fx_open(&f, "vol1", 1);
	memset(buf, 0x3c, sizeof(buf));
	saves = r.saves;
	xwrite(v, buf, sizeof(buf), 0);
	ck_assert_int_eq(vol_sync(v), 0);
	ck_assert_int_gt(r.saves, saves);              /* the commit was recorded */
	ck_assert(r.have);
	g = r.gen;
	xwrite(v, buf, sizeof(buf), 4096);
	ck_assert_int_eq(vol_sync(v), 0);
	ck_assert_uint_gt(r.gen, g);                   /* and moves forward */
	engine_vol_close(v);
	fx_engine_stop(&f);
	g = r.gen;

	ck_assert_int_eq(reopen(&f, &r), 0);           /* fresh */
	r.gen = g + 3;                                 /* the pool is older than the record */
	ck_assert_int_eq(reopen(&f, &r), -EUCLEAN);
	ck_assert(log_has(&f, "rolled back: its files in"));
	ck_assert(log_has(&f, "evfsctl fsck --repair"));
	r.gen = g;
	r.hash[0] ^= 1;                                /* same generation, other contents */
	ck_assert_int_eq(reopen(&f, &r), -EUCLEAN);
	ck_assert(log_has(&f, "with other contents"));
	r.hash[0] ^= 1;
	r.gen = g - 1;                                 /* the record lagged: fine, and caught up */
	ck_assert_int_eq(reopen(&f, &r), 0);
	ck_assert_uint_eq(r.gen, g);
	r.gen = g + 3;
	ck_assert_int_eq(engine_pool_accept(f.e, f.lhex[0]), 0);
	ck_assert_uint_eq(r.gen, g);                   /* forced back to the pool's */
	ck_assert_int_eq(reopen(&f, &r), 0);
	fx_fini(&f);
}
END_TEST

/* Two threads, each opening the volume, writing its own chunks, syncing
 * and closing it again, so that one closes the pool (its last commit,
 * give-back and checkpoint) while the other opens it.  The open must wait
 * for the close: a second instance opened meanwhile replays a journal the
 * first is still writing (found by e2e_stress: a chunk that failed
 * authentication after a detach/attach race). */
struct reopen_arg {
	struct fx *f;
	int who, rounds, err;
};

static void *reopen_main(void *arg)
{
	struct reopen_arg *a = arg;
	uint8_t buf[4096];

	for (int r = 0; r < a->rounds && !a->err; r++) {
		struct vol *v = NULL;
		uint64_t idx = (uint64_t)(a->who * 512 + r % 512);

		a->err = engine_vol_open(&v, a->f->e, a->f->lhex[0], "vol1", 1);
		if (a->err)
			break;
		{
			struct kms_dk *dk = fx_dk(a->f, 0);

			a->err = vol_attach(v, dk);
			if (a->err == -EALREADY) {      /* the shared handle, attached by the other thread */
				kms_dk_destroy(dk);
				a->err = 0;
			}
		}
		/* Overwrites free slots (kept for reuse); the close gives the
		 * free ones back (punches them). */
		for (int k = 3; !a->err && k >= 0; k--) {
			memset(buf, (int)(idx * 7 + (uint64_t)r + (uint64_t)k), sizeof(buf));
			buf[0] = (uint8_t)r;
			if (vol_write(v, buf, sizeof(buf), idx * 4096) != (ssize_t)sizeof(buf))
				a->err = -EIO;
			else if (k == 2)
				a->err = vol_sync(v);  /* the later writes stay in the open transaction */
		}
		engine_vol_close(v);
	}
	return NULL;
}

START_TEST(test_v2_reopen_race)
{
	struct fx f;
	struct reopen_arg a[2];
	pthread_t th[2];
	uint8_t got[4096], want[4096];
	struct vol *v;

	fx_init(&f, _i);
	fx_create(&f, 0, "vol1", 16 * MiB);
	for (int i = 0; i < 2; i++) {
		a[i] = (struct reopen_arg){ .f = &f, .who = i, .rounds = 300 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, reopen_main, &a[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(a[i].err == 0, "thread %d: %d", i, a[i].err);
	}
	v = fx_open(&f, "vol1", 0);
	for (int i = 0; i < 2; i++)
		for (int r = 300 - 512 > 0 ? 300 - 512 : 0; r < 300; r++) {
			uint64_t idx = (uint64_t)(i * 512 + r % 512);

			memset(want, (int)(idx * 7 + (uint64_t)r), sizeof(want));
			want[0] = (uint8_t)r;
			xread(v, got, sizeof(got), idx * 4096);
			ck_assert_msg(memcmp(got, want, sizeof(got)) == 0, "chunk %llu", (unsigned long long)idx);
		}
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

/* ============================ rekey (R33) ============================== */

struct wrapped_dk {
	uint8_t b[KMS_WRAPPED_MAX];
	size_t n;
};

/* A new data key of lineage 0 for a rekey, wrapped by the fixture's KMS. */
static void dk_new(struct fx *f, struct wrapped_dk *w)
{
	ck_assert_int_eq(kms_dk_generate(f->k, &CALLER, f->key_id, f->lin[0], CHUNK_LINEAGE_BYTES, w->b, &w->n, NULL),
			 0);
}

/* Key w unwrapped as generation `gen`, chained to older (may be NULL). */
static struct kms_dk *dk_gen(struct fx *f, const struct wrapped_dk *w, uint32_t gen, struct kms_dk *older)
{
	struct kms_dk *dk = NULL;

	ck_assert_int_eq(kms_dk_unwrap(f->k, &CALLER, f->key_id, f->lin[0], CHUNK_LINEAGE_BYTES, w->b, w->n, &dk), 0);
	kms_dk_chain(dk, gen, older);
	return dk;
}

static struct vol *open_with(struct fx *f, const char *id, int writable, struct kms_dk *dk)
{
	struct vol *v = NULL;

	ck_assert_int_eq(engine_vol_open(&v, f->e, f->lhex[0], id, writable), 0);
	ck_assert_int_eq(vol_attach(v, dk), 0);
	return v;
}

struct rk_writer {
	struct vol *v;
	uint8_t *ref;                /* the volume's expected content */
	uint64_t from, len;          /* the region written */
	atomic_int stop;
	unsigned writes;
};

/* Writes whole chunks at random into [from, from+len) until told to stop. */
static void *rk_write(void *arg)
{
	struct rk_writer *w = arg;
	uint64_t seed = 4242;
	uint8_t buf[4096];

	while (!atomic_load(&w->stop) || w->writes < 64) {
		uint64_t off = w->from + rnd(&seed, w->len / sizeof(buf)) * sizeof(buf);

		rnd_fill(&seed, buf, sizeof(buf));
		if (vol_write(w->v, buf, sizeof(buf), off) != (ssize_t)sizeof(buf))
			break;
		memcpy(w->ref + off, buf, sizeof(buf));
		w->writes++;
	}
	return NULL;
}

struct rk_kill {
	uint64_t at;
};

/* The step callback of the child that dies half way. */
static void rk_die(void *ctx, uint64_t done, uint64_t total)
{
	struct rk_kill *k = ctx;

	(void)total;
	if (done >= k->at)
		_exit(0);
}

/*
 * volume rekey at the engine: a volume with two snapshots, the second
 * sharing everything; a rekey that dies half way (the child _exit()s in
 * its progress callback, nothing closed) leaves a pool that reads right
 * with both keys, and the rerun resumes while a writer keeps writing the
 * volume.  Afterwards every chunk of every map names generation 1, the
 * snapshots still share their chunks (the rekey re-sealed each shared
 * chunk once), and every map reads back, through the new key alone.
 */
START_TEST(test_v2_rekey)
{
	struct fx f;
	const uint64_t size = 64 * MiB, data = 16 * MiB;
	uint8_t *ref = xcalloc(size), *snap1 = xcalloc(size), *got = xmalloc(size);
	struct wrapped_dk key1;
	struct engine_map_stats s1, s2, a1, a2;
	struct engine_rekey_stats st;
	struct rk_writer w = { 0 };
	uint64_t seed = 31, stale = 1;
	struct kms_dk *dk1;
	pthread_t th;
	pid_t pid;
	int status;
	struct vol *v;

	fx_init(&f, 1);
	fx_create(&f, 0, "vol1", size);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, ref, data);
	xwrite(v, ref, data, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap1", 0, 0), 0);
	memcpy(snap1, ref, size);
	rnd_fill(&seed, ref, 4 * MiB);
	xwrite(v, ref, 4 * MiB, 0);
	ck_assert_int_eq(vol_sync(v), 0);
	ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", "snap2", 0, 0), 0);
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	s1 = fx_stats(&f, 0, "snap1");
	s2 = fx_stats(&f, 0, "snap2");
	dk_new(&f, &key1);

	/* A rekey that dies half way through its walk. */
	fx_engine_stop(&f);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rk_kill k = { .at = data * 3 / 4 };

		fx_engine_start(&f);
		dk1 = dk_gen(&f, &key1, 1, fx_dk(&f, 0));
		if (engine_lineage_rekey(f.e, f.lhex[0], dk1, rk_die, &k, &st) != 0)
			_exit(3);
		_exit(4);                   /* the callback should have ended it */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	fx_engine_start(&f);
	ck_assert_int_eq(engine_lineage_key_scan(f.e, f.lhex[0], 1, &stale), 0);
	printf("rekey killed half way: %llu entries of generation 0 left\n", (unsigned long long)stale);
	ck_assert_uint_gt(stale, 0);
	ck_assert_uint_lt(stale, 3 * data / f.cs);     /* some of the work was committed */
	/* Half rotated: reads pick the key by the entry. */
	dk1 = dk_gen(&f, &key1, 1, fx_dk(&f, 0));
	v = open_with(&f, "snap1", 0, kms_dk_ref(dk1));
	xread(v, got, size, 0);
	ck_assert_msg(memcmp(got, snap1, size) == 0, "snap1 reads wrong half way through the rekey");
	engine_vol_close(v);

	/* The rerun, with a writer in the volume's untouched second half. */
	v = open_with(&f, "vol1", 1, fx_dk(&f, 0));
	w.v = v;
	w.ref = ref;
	w.from = size / 2;
	w.len = size / 4;
	ck_assert_int_eq(pthread_create(&th, NULL, rk_write, &w), 0);
	ck_assert_int_eq(engine_lineage_set_key(f.e, f.lhex[0], dk1), 0);
	ck_assert_int_eq(engine_lineage_rekey(f.e, f.lhex[0], dk1, NULL, NULL, &st), 0);
	atomic_store(&w.stop, 1);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	printf("rekey resumed: %llu entries re-sealed, %llu raced by the writer (%u writes), %u passes\n",
	       (unsigned long long)st.resealed, (unsigned long long)st.raced, w.writes, st.passes);
	ck_assert_uint_eq(st.left, 0);
	ck_assert_uint_eq(st.bad, 0);
	ck_assert_uint_gt(st.resealed, 0);
	ck_assert_uint_lt(st.chunks, st.resealed);     /* shared chunks re-sealed once */
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	ck_assert_int_eq(engine_lineage_key_scan(f.e, f.lhex[0], 1, &stale), 0);
	ck_assert_uint_eq(stale, 0);
	/* The snapshots share what they shared: no chunk sealed twice. */
	a1 = fx_stats(&f, 0, "snap1");
	a2 = fx_stats(&f, 0, "snap2");
	ck_assert_uint_eq(a1.chunks, s1.chunks);
	ck_assert_uint_eq(a1.exclusive, s1.exclusive);
	ck_assert_uint_eq(a2.chunks, s2.chunks);
	ck_assert_uint_eq(a2.exclusive, s2.exclusive);
	kms_dk_destroy(dk1);

	/* After a restart, the new key alone reads every map. */
	fx_engine_restart(&f);
	v = open_with(&f, "vol1", 0, dk_gen(&f, &key1, 1, NULL));
	xread(v, got, size, 0);
	ck_assert_msg(memcmp(got, ref, size) == 0, "vol1 reads wrong after the rekey");
	engine_vol_close(v);
	v = open_with(&f, "snap1", 0, dk_gen(&f, &key1, 1, NULL));
	xread(v, got, size, 0);
	ck_assert_msg(memcmp(got, snap1, size) == 0, "snap1 reads wrong after the rekey");
	engine_vol_close(v);
	/* ... and the old one alone reads none of it. */
	v = fx_open(&f, "snap2", 0);
	ck_assert_int_lt(vol_read(v, got, f.cs, 0), 0);
	engine_vol_close(v);
	free(ref);
	free(snap1);
	free(got);
	fx_fini(&f);
}
END_TEST

/*
 * More distinct chunks in one leaf range than a pass holds (seven maps that
 * each have their own 64 chunks there): the rekey takes more passes and
 * leaves nothing stale; every map reads back through the new key alone.
 */
START_TEST(test_v2_rekey_divergent)
{
	struct fx f;
	const size_t n = 64 * 4096;
	uint8_t *data[7], *got = xmalloc(n);
	struct engine_rekey_stats st;
	struct wrapped_dk key1;
	uint64_t seed = 8, stale = 1;
	struct kms_dk *dk1;
	char id[16];
	struct vol *v;

	fx_init(&f, 1);
	fx_create(&f, 0, "vol1", 4 * MiB);
	v = fx_open(&f, "vol1", 1);
	for (int i = 0; i < 7; i++) {
		data[i] = xmalloc(n);
		rnd_fill(&seed, data[i], n);
		xwrite(v, data[i], n, 0);
		ck_assert_int_eq(vol_sync(v), 0);
		if (i < 6) {
			snprintf(id, sizeof(id), "snap%d", i);
			ck_assert_int_eq(engine_map_clone(f.e, f.lhex[0], "vol1", id, 0, 0), 0);
		}
	}
	engine_vol_close(v);
	dk_new(&f, &key1);
	dk1 = dk_gen(&f, &key1, 1, fx_dk(&f, 0));
	ck_assert_int_eq(engine_lineage_rekey(f.e, f.lhex[0], dk1, NULL, NULL, &st), 0);
	printf("rekey of 7 divergent maps: %llu chunks in %u passes\n", (unsigned long long)st.chunks, st.passes);
	ck_assert_uint_eq(st.left, 0);
	ck_assert_uint_eq(st.chunks, 7 * 64);
	ck_assert_uint_ge(st.passes, 2);
	ck_assert_int_eq(engine_lineage_key_scan(f.e, f.lhex[0], 1, &stale), 0);
	ck_assert_uint_eq(stale, 0);
	kms_dk_destroy(dk1);
	fx_engine_restart(&f);
	for (int i = 0; i < 7; i++) {
		snprintf(id, sizeof(id), i < 6 ? "snap%d" : "vol1", i);
		v = open_with(&f, id, 0, dk_gen(&f, &key1, 1, NULL));
		xread(v, got, n, 0);
		ck_assert_msg(memcmp(got, data[i], n) == 0, "%s reads wrong after the rekey", id);
		engine_vol_close(v);
		free(data[i]);
	}
	free(got);
	fx_fini(&f);
}
END_TEST

/*
 * The rekey's compare-and-set against a writer (engine_rekey.c stores its
 * entries with tree_cas): an entry changed since it was read keeps the
 * writer's value, the others take the new one, and *done says which.
 */
START_TEST(test_v2_tree_cas)
{
	struct fx f;
	uint8_t buf[4 * 4096], got[4 * 4096];
	struct tree_ent before[4], want[4];
	uint64_t seed = 3, done = 0, slots[4];
	struct vol *v;
	uint32_t ri;

	fx_init(&f, 1);
	fx_create(&f, 0, "vol1", 1 * MiB);
	v = fx_open(&f, "vol1", 1);
	rnd_fill(&seed, buf, sizeof(buf));
	xwrite(v, buf, sizeof(buf), 0);
	ck_assert_int_eq(tree_root_find(v->pool, "vol1", &ri), 0);
	ck_assert_int_eq(tree_get(v->pool, ri, 0, 4, before), 0);
	/* "The writer": chunk 2 rewritten after the entries were read. */
	rnd_fill(&seed, buf + 2 * 4096, 4096);
	xwrite(v, buf + 2 * 4096, 4096, 2 * 4096);
	/* "The rekey": each entry moved to a copy of its chunk in a new slot
	 * (same ciphertext, nonce and tag: it reads the same). */
	ck_assert_int_eq(tree_slots_alloc(v->pool, 4, slots), 0);
	for (int i = 0; i < 4; i++) {
		uint8_t c[4096];

		ck_assert_int_eq(pool_chunk_load(v->pool, le64toh(before[i].slot1) - 1, c), 0);
		ck_assert_int_eq(pool_chunk_store(v->pool, slots[i], c), 0);
		want[i] = before[i];
		want[i].slot1 = htole64(slots[i] + 1);
	}
	ck_assert_int_eq(tree_cas(v->pool, ri, 0, 4, before, want, &done), 0);
	ck_assert_uint_eq(done, 0xb);                    /* 0, 1, 3: not 2 */
	tree_slots_release_new(v->pool, &slots[2], 1);
	ck_assert_int_eq(tree_get(v->pool, ri, 0, 4, before), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(le64toh(before[i].slot1) == slots[i] + 1, i != 2);
	xread(v, got, sizeof(got), 0);
	ck_assert_mem_eq(got, buf, sizeof(got));         /* the writer's chunk 2 kept */
	ck_assert_int_eq(tree_cas(v->pool, ri, 1, 64, before, want, &done), -EINVAL);   /* beyond one leaf */
	ck_assert_int_eq(vol_sync(v), 0);
	engine_vol_close(v);
	fx_fini(&f);
}
END_TEST

void volume_add_v2(TCase *tc)
{
	tcase_add_test(tc, test_v2_tree_cas);
	tcase_add_test(tc, test_v2_rekey);
	tcase_add_test(tc, test_v2_rekey_divergent);
	tcase_add_loop_test(tc, test_v2_reopen_race, 0, 2);
	tcase_add_loop_test(tc, test_v2_fresh, 0, 2);
	tcase_add_loop_test(tc, test_v2_fsck, 0, 2);
	tcase_add_loop_test(tc, test_v2_clone_is_o1, 0, 2);
	tcase_add_loop_test(tc, test_v2_tamper_page, 0, 2);
	tcase_add_loop_test(tc, test_v2_tamper_roots, 0, 2);
	tcase_add_loop_test(tc, test_v2_replay, 0, 2);
	tcase_add_loop_test(tc, test_v2_commit_cut_short, 0, 2);
}
