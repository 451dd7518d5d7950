// SPDX-License-Identifier: MIT
/*
 * crashio.c - crash-consistency writer and verifier for volume files (R26).
 *
 *   crashio write FILE JOURNAL --blocks N [--bs 4096] [--seed S] [--threads T]
 *                 [--seconds S] [--discard PCT] [--fsync-every K]
 *   crashio verify FILE JOURNAL [--any]
 *
 * The unit of checking is a 512-byte sector.  Every sector written carries
 * a self-describing header and a payload derived from it:
 *
 *   0   "CRASHIO1"
 *   8   u64 sector number (byte offset / 512)
 *   16  u64 generation (one global counter per journal: every op gets one)
 *   24  u64 run seed
 *   32  u64 checksum of bytes [0,32) and [40,512)
 *   40  472 bytes of pseudo-random payload from (seed, sector, generation)
 *
 * so a torn, corrupted or misplaced sector (another block's data, another
 * run's data) is told apart from an old or new one.  Blocks are --bs bytes
 * (the volume's chunk size by default, 4096): whole-block writes, multi-block
 * writes across chunk boundaries (and across the engine's 1 MiB segments and
 * FUSE's max_write), sector-aligned but chunk-unaligned writes (partial-chunk
 * read-modify-write, sometimes across two chunks) and discards (fallocate
 * punch-hole, whole blocks or sector ranges) are mixed.
 *
 * The writer loops (until an I/O error, typically ENOTCONN once the mount is
 * killed, or --seconds) in T threads, each owning a disjoint range of blocks
 * and its own fd.  Before each op it appends "W|Z tid gen first_sector n" to
 * JOURNAL; every K ops (random 1..fsync-every) it fsyncs FILE and, after a
 * successful fsync, appends "S tid gen" (every op of thread tid up to gen is
 * now durable) and fdatasyncs JOURNAL.  JOURNAL must live outside the store.
 * A writer started on an existing journal continues it (new thread ids,
 * later generations), so rounds accumulate.
 *
 * verify replays the journal: for each sector, D = the last op made durable
 * by an fsync (a write of generation g, or a discard), plus the ops never
 * covered by an fsync ("in flight").  A sector must read as:
 *   - D's data, or the data of an in-flight write newer than D, or
 *   - zeros if D is "never written" or a discard, or an in-flight discard
 *     newer than D covers it.
 * Anything else is a failure, printed with block, sector, what was found and
 * what the journal allows: a read error (EIO), a checksum failure, another
 * sector's data, data older than the last fsync, data never written.
 * --any (snapshots taken while writing): any sector the journal ever wrote,
 * or zeros, is accepted; read errors and bad sectors still fail.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/xattr.h>

#define SECT 512u
#define MAGIC "CRASHIO1"
#define MAX_THREADS 16
#define MAX_FAIL_PRINT 40
#define IO_MAX (1u << 20)

/* ============================== sectors =============================== */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t sector_sum(const uint8_t *s)
{
	uint64_t h = 0x6a09e667f3bcc908ull;

	for (unsigned i = 0; i < SECT; i += 8) {
		if (i == 32)
			continue;
		h = (h ^ get64(s + i)) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

static void sector_fill(uint8_t *s, uint64_t sector, uint64_t gen, uint64_t seed)
{
	uint64_t st = seed ^ (sector * 0x9e3779b97f4a7c15ull) ^ (gen << 1);

	memcpy(s, MAGIC, 8);
	put64(s + 8, sector);
	put64(s + 16, gen);
	put64(s + 24, seed);
	for (unsigned i = 40; i < SECT; i += 8)
		put64(s + i, splitmix(&st));
	put64(s + 32, sector_sum(s));
}

enum sector_state { S_ZERO, S_VALID, S_NOHDR, S_SUM, S_MISPLACED, S_FOREIGN, S_PAYLOAD };

static const char *const state_name[] = {
	[S_ZERO] = "zeros",
	[S_VALID] = "valid",
	[S_NOHDR] = "garbage (no crashio header, not zeros)",
	[S_SUM] = "checksum failure (torn or corrupted sector)",
	[S_MISPLACED] = "another sector's data (misplaced)",
	[S_FOREIGN] = "data of another run (seed differs)",
	[S_PAYLOAD] = "payload differs from its header (corrupted)",
};

static enum sector_state sector_check(const uint8_t *s, uint64_t sector, uint64_t seed, uint64_t *gen)
{
	uint8_t want[SECT];
	int zero = 1;

	for (unsigned i = 0; i < SECT && zero; i += 8)
		zero = get64(s + i) == 0;
	if (zero)
		return S_ZERO;
	if (memcmp(s, MAGIC, 8) != 0)
		return S_NOHDR;
	*gen = get64(s + 16);
	if (get64(s + 32) != sector_sum(s))
		return S_SUM;
	if (get64(s + 8) != sector)
		return S_MISPLACED;
	if (get64(s + 24) != seed)
		return S_FOREIGN;
	sector_fill(want, sector, *gen, seed);
	return memcmp(want, s, SECT) == 0 ? S_VALID : S_PAYLOAD;
}

/* ============================== journal =============================== */

struct op {
	char type;               /* 'W' write, 'Z' discard */
	unsigned tid;
	uint64_t gen, first, n;  /* sectors [first, first + n) */
};

struct journal {
	uint64_t blocks, bs, seed;
	uint64_t max_gen;
	unsigned max_tid;
	int have_tid;
	struct op *ops;
	size_t nops, cap;
	size_t syncs;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("crashio: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* Read JOURNAL; *exists = 0 if missing or empty. */
static void journal_load(const char *path, struct journal *j, int *exists)
{
	FILE *f = fopen(path, "r");
	char line[256];
	unsigned long lineno = 0;

	memset(j, 0, sizeof(*j));
	*exists = 0;
	if (!f) {
		if (errno == ENOENT)
			return;
		die("journal %s: %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f)) {
		struct op o = { 0 };
		char t;

		lineno++;
		if (lineno == 1) {
			if (sscanf(line, "crashio1 blocks=%" SCNu64 " bs=%" SCNu64 " seed=%" SCNu64, &j->blocks, &j->bs,
				   &j->seed) != 3)
				die("journal %s: line 1 is not a crashio1 header; delete it to start over", path);
			*exists = 1;
			continue;
		}
		if (!strchr(line, '\n'))
			break;   /* a torn last line (writer killed mid-append): ignore */
		t = line[0];
		if (t == 'W' || t == 'Z') {
			if (sscanf(line + 1, " %u %" SCNu64 " %" SCNu64 " %" SCNu64, &o.tid, &o.gen, &o.first, &o.n) !=
			    4)
				die("journal %s:%lu: bad op line", path, lineno);
			o.type = t;
		} else if (t == 'S') {
			if (sscanf(line + 1, " %u %" SCNu64, &o.tid, &o.gen) != 2)
				die("journal %s:%lu: bad sync line", path, lineno);
			o.type = 'S';
			j->syncs++;
		} else if (t == 'E' || t == '#') {
			continue;
		} else {
			die("journal %s:%lu: unknown record '%c'", path, lineno, t);
		}
		if (o.gen > j->max_gen)
			j->max_gen = o.gen;
		if (!j->have_tid || o.tid > j->max_tid)
			j->max_tid = o.tid;
		j->have_tid = 1;
		if (j->nops == j->cap) {
			j->cap = j->cap ? j->cap * 2 : 4096;
			j->ops = realloc(j->ops, j->cap * sizeof(*j->ops));
			if (!j->ops)
				die("out of memory");
		}
		j->ops[j->nops++] = o;
	}
	fclose(f);
}

/* =============================== writer =============================== */

struct writer {
	const char *file;
	int jfd;
	uint64_t blocks, bs, seed;
	unsigned threads;
	unsigned tid_base;
	int discard_pct;
	unsigned fsync_every;
	double seconds;
	_Atomic uint64_t next_gen;
	atomic_int stop;
	atomic_int failed;           /* an error other than "the mount went away" */
	_Atomic uint64_t nops, nsyncs;
};

struct wthread {
	struct writer *w;
	unsigned idx;
	pthread_t th;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void jappend(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jappend(struct writer *w, const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* O_APPEND: one write(2) per record, never interleaved. */
	if (write(w->jfd, line, (size_t)n) != n)
		die("journal write failed: %s", strerror(errno));
}

/* The mount went away (daemon killed): the expected way for a writer to end. */
static int gone(int err)
{
	return err == ENOTCONN || err == ECONNABORTED;
}

/* A request whose reply the daemon was writing when SIGKILL hit ends with
 * EIO in the kernel (the reply copy fails), not ENOTCONN.  Such an EIO is
 * the kill only if the mount is gone right after: ask the daemon something
 * the kernel never caches (an xattr). */
static int killed_mid_reply(const struct writer *w, int err)
{
	char v[8];

	return err == EIO && getxattr(w->file, "user.evfs.attached", v, sizeof(v)) < 0 && gone(errno);
}

static int thread_stop(struct writer *w, unsigned tid, const char *what, uint64_t off, uint64_t len, int err)
{
	jappend(w, "E %u %s %s at %" PRIu64 "+%" PRIu64 "\n", tid, what, strerror(err), off, len);
	if (killed_mid_reply(w, err))
		fprintf(stderr, "crashio: thread %u: %s at offset %" PRIu64 " got EIO as the mount died (reply cut "
			"by the kill); counted as the mount going away\n", tid, what, off);
	else if (!gone(err)) {
		fprintf(stderr, "crashio: thread %u: %s at offset %" PRIu64 " (+%" PRIu64 ") failed: %s\n", tid,
			what, off, len, strerror(err));
		atomic_store(&w->failed, 1);
	}
	atomic_store(&w->stop, 1);
	return -1;
}

static void *writer_thread(void *arg)
{
	struct wthread *t = arg;
	struct writer *w = t->w;
	unsigned tid = w->tid_base + t->idx;
	uint64_t spb = w->bs / SECT;
	uint64_t lo = w->blocks * t->idx / w->threads, hi = w->blocks * (t->idx + 1) / w->threads;
	uint64_t nb = hi - lo, rng = w->seed ^ ((uint64_t)tid << 40) ^ atomic_load(&w->next_gen);
	uint64_t last_gen = 0, since_sync = 0, sync_at = 1 + splitmix(&rng) % w->fsync_every;
	uint8_t *buf = aligned_alloc(4096, IO_MAX + w->bs);
	int fd = open(w->file, O_RDWR | O_CLOEXEC);
	double end = w->seconds > 0 ? now() + w->seconds : 0;

	if (!buf || fd < 0)
		die("thread %u: open %s: %s", tid, w->file, strerror(errno));
	while (!atomic_load(&w->stop) && nb > 0) {
		uint64_t r = splitmix(&rng) % 100, first, n, gen;
		char type = 'W';

		if (end && now() >= end)
			break;
		if (r < 45) {                       /* one whole block */
			first = (lo + splitmix(&rng) % nb) * spb;
			n = spb;
		} else if (r < 65) {                /* several blocks, across chunk/segment boundaries */
			uint64_t span = splitmix(&rng) % 8 == 0 ? 300 : 31;
			uint64_t k = 2 + splitmix(&rng) % span;

			if (k > nb)
				k = nb;
			first = (lo + splitmix(&rng) % (nb - k + 1)) * spb;
			n = k * spb;
		} else if (r < 100 - (uint64_t)w->discard_pct) {   /* sector range, not chunk aligned */
			n = 1 + splitmix(&rng) % (2 * spb - 1);
			if (n > nb * spb)
				n = nb * spb;
			first = lo * spb + splitmix(&rng) % (nb * spb - n + 1);
			if (first % spb == 0 && n % spb == 0 && n > 1)
				n--;
		} else {                            /* discard: blocks or a sector range */
			type = 'Z';
			if (splitmix(&rng) % 3) {
				uint64_t k = 1 + splitmix(&rng) % 16;

				if (k > nb)
					k = nb;
				first = (lo + splitmix(&rng) % (nb - k + 1)) * spb;
				n = k * spb;
			} else {
				n = 1 + splitmix(&rng) % (2 * spb - 1);
				if (n > nb * spb)
					n = nb * spb;
				first = lo * spb + splitmix(&rng) % (nb * spb - n + 1);
			}
		}
		gen = atomic_fetch_add(&w->next_gen, 1);
		jappend(w, "%c %u %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", type, tid, gen, first, n);
		if (type == 'Z') {
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(first * SECT),
				      (off_t)(n * SECT)) < 0) {
				thread_stop(w, tid, "discard", first * SECT, n * SECT, errno);
				break;
			}
		} else {
			uint64_t done = 0;

			while (done < n) {
				uint64_t m = n - done < IO_MAX / SECT ? n - done : IO_MAX / SECT;
				ssize_t wr;

				for (uint64_t i = 0; i < m; i++)
					sector_fill(buf + i * SECT, first + done + i, gen, w->seed);
				wr = pwrite(fd, buf, m * SECT, (off_t)((first + done) * SECT));
				if (wr != (ssize_t)(m * SECT)) {
					thread_stop(w, tid, "write", (first + done) * SECT, m * SECT,
						    wr < 0 ? errno : EIO);
					break;
				}
				done += m;
			}
			if (done < n)
				break;
		}
		atomic_fetch_add(&w->nops, 1);
		last_gen = gen;
		if (++since_sync >= sync_at) {
			if (fsync(fd) < 0) {
				thread_stop(w, tid, "fsync", 0, 0, errno);
				break;
			}
			jappend(w, "S %u %" PRIu64 "\n", tid, last_gen);
			if (fdatasync(w->jfd) < 0)
				die("journal fdatasync failed: %s", strerror(errno));
			atomic_fetch_add(&w->nsyncs, 1);
			since_sync = 0;
			sync_at = 1 + splitmix(&rng) % w->fsync_every;
		}
	}
	close(fd);
	free(buf);
	return NULL;
}

static int writer_run(struct writer *w, const char *jpath)
{
	struct wthread t[MAX_THREADS];
	struct journal j;
	int exists;

	journal_load(jpath, &j, &exists);
	if (exists) {
		if (j.blocks != w->blocks || j.bs != w->bs)
			die("journal %s is for --blocks %" PRIu64 " --bs %" PRIu64 "; use the same or a new journal",
			    jpath, j.blocks, j.bs);
		w->seed = j.seed;
		atomic_store(&w->next_gen, j.max_gen + 1);
		w->tid_base = j.have_tid ? j.max_tid + 1 : 0;
	} else {
		atomic_store(&w->next_gen, 1);
	}
	free(j.ops);
	w->jfd = open(jpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (w->jfd < 0)
		die("journal %s: %s", jpath, strerror(errno));
	if (!exists) {
		jappend(w, "crashio1 blocks=%" PRIu64 " bs=%" PRIu64 " seed=%" PRIu64 "\n", w->blocks, w->bs, w->seed);
		if (fdatasync(w->jfd) < 0)
			die("journal fdatasync failed: %s", strerror(errno));
	}
	for (unsigned i = 0; i < w->threads; i++) {
		t[i].w = w;
		t[i].idx = i;
		if (pthread_create(&t[i].th, NULL, writer_thread, &t[i]) != 0)
			die("pthread_create failed");
	}
	for (unsigned i = 0; i < w->threads; i++)
		pthread_join(t[i].th, NULL);
	(void)fdatasync(w->jfd);
	close(w->jfd);
	printf("crashio write: %" PRIu64 " ops, %" PRIu64 " fsyncs, generations up to %" PRIu64 "%s\n",
	       atomic_load(&w->nops), atomic_load(&w->nsyncs), atomic_load(&w->next_gen) - 1,
	       atomic_load(&w->failed) ? " (stopped by an I/O error, see above)" : "");
	return atomic_load(&w->failed) ? 1 : 0;
}

/* =============================== verify =============================== */

struct vstate {
	uint64_t *dgen;          /* per sector: generation of the last durable op, 0 = never */
	uint8_t *dzero;          /* per sector: that op was a discard */
	struct op *maybe;        /* ops no fsync covered (in flight at a crash) */
	size_t nmaybe;
	uint64_t seed, max_gen;
	int any;
	unsigned long failures;
	uint64_t n_durable, n_newer, n_zero, n_never;
};

static void journal_replay(struct journal *j, struct vstate *vs)
{
	/* Per thread: ops not yet covered by an fsync. */
	struct op **pend = calloc(j->max_tid + 1, sizeof(*pend));
	size_t *np = calloc(j->max_tid + 1, sizeof(*np)), *cap = calloc(j->max_tid + 1, sizeof(*cap));

	if (!pend || !np || !cap)
		die("out of memory");
	for (size_t i = 0; i < j->nops; i++) {
		struct op *o = &j->ops[i];
		unsigned t = o->tid;

		if (o->type != 'S') {
			if (o->first + o->n > j->blocks * (j->bs / SECT))
				die("journal op %c gen %" PRIu64 " beyond --blocks", o->type, o->gen);
			if (np[t] == cap[t]) {
				cap[t] = cap[t] ? cap[t] * 2 : 64;
				pend[t] = realloc(pend[t], cap[t] * sizeof(**pend));
				if (!pend[t])
					die("out of memory");
			}
			pend[t][np[t]++] = *o;
			continue;
		}
		/* Every op of thread t up to o->gen completed before this fsync began. */
		size_t keep = 0;

		for (size_t k = 0; k < np[t]; k++) {
			struct op *p = &pend[t][k];

			if (p->gen > o->gen) {
				pend[t][keep++] = *p;
				continue;
			}
			for (uint64_t s = p->first; s < p->first + p->n; s++) {
				vs->dgen[s] = p->gen;
				vs->dzero[s] = p->type == 'Z';
			}
		}
		np[t] = keep;
	}
	for (unsigned t = 0; t <= j->max_tid; t++) {
		for (size_t k = 0; k < np[t]; k++) {
			vs->maybe = realloc(vs->maybe, (vs->nmaybe + 1) * sizeof(*vs->maybe));
			if (!vs->maybe)
				die("out of memory");
			vs->maybe[vs->nmaybe++] = pend[t][k];
		}
		free(pend[t]);
	}
	free(pend);
	free(np);
	free(cap);
}

/* 1 if an in-flight op of `type` newer than the durable one covers sector s
 * (with generation gen, if gen != 0). */
static int maybe_has(const struct vstate *vs, uint64_t s, char type, uint64_t gen)
{
	for (size_t i = 0; i < vs->nmaybe; i++) {
		const struct op *o = &vs->maybe[i];

		if (o->type == type && s >= o->first && s < o->first + o->n && o->gen > vs->dgen[s] &&
		    (!gen || o->gen == gen))
			return 1;
	}
	return 0;
}

static void describe_expected(const struct vstate *vs, uint64_t s, char *out, size_t len)
{
	int n = snprintf(out, len, "last fsynced: %s", vs->dgen[s] == 0 ? "never written (zeros)" : "");

	if (vs->dgen[s])
		n += snprintf(out + n, len - (size_t)n, "%s gen %" PRIu64, vs->dzero[s] ? "discard" : "write",
			      vs->dgen[s]);
	for (size_t i = 0; i < vs->nmaybe && (size_t)n < len - 40; i++) {
		const struct op *o = &vs->maybe[i];

		if (s >= o->first && s < o->first + o->n && o->gen > vs->dgen[s])
			n += snprintf(out + n, len - (size_t)n, "; in flight: %s gen %" PRIu64,
				      o->type == 'Z' ? "discard" : "write", o->gen);
	}
}

static void fail(struct vstate *vs, uint64_t bs, uint64_t s, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(struct vstate *vs, uint64_t bs, uint64_t s, const char *fmt, ...)
{
	char exp[512], what[256];
	va_list ap;

	if (vs->failures++ >= MAX_FAIL_PRINT)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	describe_expected(vs, s, exp, sizeof(exp));
	printf("FAIL block %" PRIu64 " sector %" PRIu64 " (byte offset %" PRIu64 "): %s; %s\n", s * SECT / bs,
	       s % (bs / SECT), s * SECT, what, vs->any ? "any journal content allowed" : exp);
}

static void sector_verify(struct vstate *vs, uint64_t bs, uint64_t s, const uint8_t *data)
{
	uint64_t gen = 0;
	enum sector_state st = sector_check(data, s, vs->seed, &gen);

	if (st == S_ZERO) {
		if (vs->any || vs->dgen[s] == 0 || vs->dzero[s] || maybe_has(vs, s, 'Z', 0)) {
			vs->n_zero++;
			vs->n_never += vs->dgen[s] == 0;
		} else {
			fail(vs, bs, s, "reads zeros");
		}
		return;
	}
	if (st != S_VALID) {
		fail(vs, bs, s, "%s (header gen %" PRIu64 ")", state_name[st], gen);
		return;
	}
	if (vs->any) {
		if (gen == 0 || gen > vs->max_gen)
			fail(vs, bs, s, "generation %" PRIu64 " was never written", gen);
		else
			vs->n_durable++;
	} else if (gen == vs->dgen[s] && !vs->dzero[s]) {
		vs->n_durable++;
	} else if (gen > vs->dgen[s] && maybe_has(vs, s, 'W', gen)) {
		vs->n_newer++;
	} else {
		fail(vs, bs, s, "reads write gen %" PRIu64 " (%s)", gen,
		     gen < vs->dgen[s] ? "older than the last fsync: fsynced data lost" : "not a write of this sector");
	}
}

static int verify_run(const char *file, const char *jpath, int any)
{
	struct journal j;
	struct vstate vs = { .any = any };
	uint64_t nsect, spb;
	uint8_t *buf;
	unsigned long read_errors = 0;
	int exists, fd;

	journal_load(jpath, &j, &exists);
	if (!exists)
		die("journal %s missing or empty: nothing to verify", jpath);
	if (j.bs < SECT || j.bs % SECT || j.bs > IO_MAX)
		die("journal %s: bad block size %" PRIu64, jpath, j.bs);
	spb = j.bs / SECT;
	nsect = j.blocks * spb;
	vs.seed = j.seed;
	vs.max_gen = j.max_gen;
	vs.dgen = calloc(nsect, sizeof(*vs.dgen));
	vs.dzero = calloc(nsect, 1);
	buf = aligned_alloc(4096, IO_MAX);
	if (!vs.dgen || !vs.dzero || !buf)
		die("out of memory");
	journal_replay(&j, &vs);
	fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", file, strerror(errno));
	for (uint64_t b = 0; b < j.blocks;) {
		uint64_t nblk = IO_MAX / j.bs < j.blocks - b ? IO_MAX / j.bs : j.blocks - b;
		ssize_t r = pread(fd, buf, nblk * j.bs, (off_t)(b * j.bs));

		if (r != (ssize_t)(nblk * j.bs)) {
			/* Find the failing blocks one by one. */
			for (uint64_t k = 0; k < nblk; k++) {
				ssize_t r1 = pread(fd, buf + k * j.bs, j.bs, (off_t)((b + k) * j.bs));

				if (r1 != (ssize_t)j.bs) {
					read_errors++;
					if (vs.failures++ < MAX_FAIL_PRINT)
						printf("FAIL block %" PRIu64 " (byte offset %" PRIu64 "): read %s\n", b + k,
						       (b + k) * j.bs, r1 < 0 ? strerror(errno) : "short");
					memset(buf + k * j.bs, 0, j.bs);
					continue;
				}
				for (uint64_t i = 0; i < spb; i++)
					sector_verify(&vs, j.bs, (b + k) * spb + i, buf + k * j.bs + i * SECT);
			}
		} else {
			for (uint64_t i = 0; i < nblk * spb; i++)
				sector_verify(&vs, j.bs, b * spb + i, buf + i * SECT);
		}
		b += nblk;
	}
	close(fd);
	if (vs.failures > MAX_FAIL_PRINT)
		printf("... %lu more failures not shown\n", vs.failures - MAX_FAIL_PRINT);
	printf("crashio verify %s: %" PRIu64 " blocks (%" PRIu64 " sectors), %zu fsyncs and %zu journal ops, "
	       "%zu in flight: %" PRIu64 " sectors at the fsynced generation, %" PRIu64 " newer (in flight), %" PRIu64
	       " zeros (%" PRIu64 " never written); %lu read errors, %lu failures%s\n",
	       file, j.blocks, nsect, j.syncs, j.nops - j.syncs, vs.nmaybe, vs.n_durable, vs.n_newer, vs.n_zero,
	       vs.n_never, read_errors, vs.failures, any ? " (--any)" : "");
	free(vs.dgen);
	free(vs.dzero);
	free(vs.maybe);
	free(j.ops);
	free(buf);
	return vs.failures ? 1 : 0;
}

/* ================================ main ================================ */

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	fprintf(stderr, "usage: crashio write FILE JOURNAL --blocks N [--bs 4096] [--seed S] [--threads T]\n"
			"                     [--seconds S] [--discard PCT] [--fsync-every K]\n"
			"       crashio verify FILE JOURNAL [--any]\n");
	exit(2);
}

static uint64_t num(const char *opt, const char *v)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v ? v : "", &end, 0);
	if (!v || errno || *end)
		die("%s needs a number (got '%s')", opt, v ? v : "");
	return x;
}

int main(int argc, char **argv)
{
	struct writer w = { .bs = 4096, .threads = 1, .discard_pct = 5, .fsync_every = 8 };
	int any = 0;

	if (argc < 4)
		usage();
	w.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	for (int i = 4; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--any") == 0) {
			any = 1;
			continue;
		}
		if (strcmp(o, "--blocks") == 0)
			w.blocks = num(o, v);
		else if (strcmp(o, "--bs") == 0)
			w.bs = num(o, v);
		else if (strcmp(o, "--seed") == 0)
			w.seed = num(o, v);
		else if (strcmp(o, "--threads") == 0)
			w.threads = (unsigned)num(o, v);
		else if (strcmp(o, "--seconds") == 0)
			w.seconds = (double)num(o, v);
		else if (strcmp(o, "--discard") == 0)
			w.discard_pct = (int)num(o, v);
		else if (strcmp(o, "--fsync-every") == 0)
			w.fsync_every = (unsigned)num(o, v);
		else
			usage();
		i++;
	}
	if (strcmp(argv[1], "verify") == 0)
		return verify_run(argv[2], argv[3], any);
	if (strcmp(argv[1], "write") != 0)
		usage();
	if (!w.blocks || w.bs < SECT || w.bs % SECT || w.bs > IO_MAX / 2 || !w.threads || w.threads > MAX_THREADS ||
	    w.threads > w.blocks || w.discard_pct < 0 || w.discard_pct > 50 || !w.fsync_every)
		die("bad options: need --blocks >= --threads (1..%d), --bs a multiple of 512 up to %u, --discard 0..50, "
		    "--fsync-every >= 1", MAX_THREADS, IO_MAX / 2);
	w.file = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);
	return writer_run(&w, argv[3]);
}
