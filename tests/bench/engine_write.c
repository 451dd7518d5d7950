// SPDX-License-Identifier: MIT
/*
 * engine_write.c - the engine's small-write path without FUSE: pool format
 * 1 against format 2, in one run.
 *
 * Through the mount a 4 KiB write costs the FUSE round trip (~40 µs here,
 * ../shared/PEERS.md) plus what the engine does with it; this measures the
 * second part alone, so a change to the engine shows up without the
 * round trip's noise.  Per round and format: a fresh encrypted pool under
 * DIR, a 1 GiB volume with its first half written sequentially (so the
 * random writes overwrite, as a database does), then WRITES random 4 KiB
 * writes (the timed part) and a sync.  The formats run in turn each round;
 * the last lines are the medians and format 2 / format 1.  A bench, not a
 * test: it asserts nothing about speed.
 *
 *   usage: bench_engine_write DIR [ROUNDS [WRITES]]   (default 5, 100000)
 *   perf:  perf record -g build/tests/bench/bench_engine_write /var/tmp 1
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "kms/kms_testhooks.h"

#include "engine.h"

#define LIN "00112233445566778899aabbccddeeff"
#define VOL_BYTES (1ull << 30)
#define FILL_BYTES (512ull << 20)
#define MAX_ROUNDS 99

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "bench_engine_write: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return -1;
}

/* One round of one format: IOPS of the random writes, or -1. */
static double run(const char *base, int format, long writes)
{
	static const uint8_t key[32] = { 7 };
	static uint8_t buf[1 << 20];
	struct kms_dk *dk = NULL;
	char dir[4096], cmd[4200];
	struct engine *e = NULL;
	struct vol *v = NULL;
	double t0, t1 = 0;
	int err;

	snprintf(dir, sizeof(dir), "%s/evfs-engine-bench.XXXXXX", base);
	if (!mkdtemp(dir))
		return fail(dir, errno);
	err = engine_create(&e, dir, NULL, NULL);
	if (!err)
		err = engine_set_format(e, format);
	if (!err)
		err = engine_pool_create(e, LIN, 4096, 1);
	if (!err)
		err = engine_map_create(e, LIN, "v", VOL_BYTES);
	if (!err)
		err = engine_vol_open(&v, e, LIN, "v", 1);
	if (!err)
		err = kms_test_dk_import(key, &dk);
	if (!err && (err = vol_attach(v, dk)) == 0)
		dk = NULL;                      /* the volume owns it now */
	kms_dk_destroy(dk);
	randombytes_buf(buf, sizeof(buf));
	for (uint64_t off = 0; !err && off < FILL_BYTES; off += sizeof(buf))
		err = vol_write(v, buf, sizeof(buf), off) == (ssize_t)sizeof(buf) ? 0 : -EIO;
	if (!err)
		err = vol_sync(v);
	t0 = now();
	for (long i = 0; !err && i < writes; i++) {
		uint64_t off = (uint64_t)randombytes_uniform((uint32_t)(FILL_BYTES / 4096)) * 4096;

		buf[0] = (uint8_t)i;
		err = vol_write(v, buf, 4096, off) == 4096 ? 0 : -EIO;
	}
	t1 = now();
	if (!err)
		err = vol_sync(v);
	if (v) {
		if (vol_is_attached(v) && vol_detach(v) < 0 && !err)
			err = -EIO;
		engine_vol_close(v);
	}
	engine_destroy(e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_engine_write: could not remove %s\n", dir);
	if (err)
		return fail("write", err);
	return (double)writes / (t1 - t0);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	double iops[2][MAX_ROUNDS], med[2];
	long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 5, writes = argc > 3 ? strtol(argv[3], NULL, 10) : 100000;

	if (argc < 2 || rounds < 1 || rounds > MAX_ROUNDS || writes < 1) {
		fprintf(stderr, "usage: bench_engine_write DIR [ROUNDS (1-%d) [WRITES]]\n", MAX_ROUNDS);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "bench_engine_write: libsodium cannot be initialised\n");
		return 1;
	}
	for (long r = 0; r < rounds; r++)
		for (int f = 0; f < 2; f++) {
			iops[f][r] = run(argv[1], f + 1, writes);
			if (iops[f][r] < 0)
				return 1;
			printf("round %ld format %d: %ld random 4 KiB writes: %.0f IOPS (%.1f us each)\n", r + 1, f + 1,
			       writes, iops[f][r], 1e6 / iops[f][r]);
			fflush(stdout);
		}
	for (int f = 0; f < 2; f++) {
		qsort(iops[f], (size_t)rounds, sizeof(double), cmp_d);
		med[f] = rounds % 2 ? iops[f][rounds / 2] : (iops[f][rounds / 2 - 1] + iops[f][rounds / 2]) / 2;
		printf("median format %d: %.0f IOPS (%.1f us each)\n", f + 1, med[f], 1e6 / med[f]);
	}
	printf("format 2 / format 1: %.2f\n", med[1] / med[0]);
	return 0;
}
