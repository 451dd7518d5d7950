// SPDX-License-Identifier: MIT
/*
 * tc.c - temp directories, the guarded rm -rf and the seeded PRNG of the
 * unit suites (see tc.h).
 */
#include "tc.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ============================== temp dirs ============================== */

/* The directories this process (or its parent before a fork) made, as
 * canonical paths.  A directory under one already recorded is not
 * recorded again: it is covered. */
#define TC_MADE_MAX 64
static char made[TC_MADE_MAX][PATH_MAX];
static int nmade;

static char root_set[PATH_MAX];

void tc_tmp_root_set(const char *dir)
{
	snprintf(root_set, sizeof(root_set), "%s", dir ? dir : "");
}

const char *tc_tmp_root(void)
{
	const char *t = getenv("EVFS_TEST_TMPDIR");

	if (root_set[0])
		return root_set;
	return t && *t ? t : "/tmp";
}

/* 1 if canonical path p is a recorded directory or lies under one. */
static int covered(const char *p)
{
	for (int i = 0; i < nmade; i++) {
		size_t n = strlen(made[i]);

		if (strncmp(p, made[i], n) == 0 && (p[n] == '\0' || p[n] == '/'))
			return 1;
	}
	return 0;
}

int tc_tmpdir_new(char *out, size_t outsz, const char *parent, const char *prefix)
{
	char canon[PATH_MAX];
	int n;

	if (!out || outsz == 0)
		return -EINVAL;
	out[0] = '\0';
	n = snprintf(out, outsz, "%s/%s.XXXXXX", parent ? parent : tc_tmp_root(), prefix && *prefix ? prefix : "evfs-test");
	if (n < 0 || (size_t)n >= outsz) {
		out[0] = '\0';
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(out)) {
		int err = errno;

		out[0] = '\0';
		return -err;
	}
	if (!realpath(out, canon)) {
		int err = errno;

		(void)rmdir(out);
		out[0] = '\0';
		return -err;
	}
	if (!covered(canon)) {
		if (nmade == TC_MADE_MAX) {
			(void)rmdir(out);
			out[0] = '\0';
			return -ENOSPC;
		}
		memcpy(made[nmade++], canon, strlen(canon) + 1);
	}
	return 0;
}

void tc_tmpdir(char *out, size_t outsz, const char *parent, const char *prefix)
{
	int rc = tc_tmpdir_new(out, outsz, parent, prefix);

	ck_assert_msg(rc == 0, "temp dir %s/%s.XXXXXX: %s", parent ? parent : tc_tmp_root(), prefix ? prefix : "",
		      strerror(-rc));
}

static int rm_first_err;

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DNR && !rm_first_err)
		rm_first_err = -EACCES;
	if (remove(path) < 0 && !rm_first_err)
		rm_first_err = -errno;
	return 0;
}

int tc_rm_rf(const char *dir)
{
	char canon[PATH_MAX];
	struct stat st;
	int i;

	if (!dir || !*dir)
		return -EINVAL;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!realpath(dir, canon))
		return -errno;
	if (strcmp(canon, "/") == 0 || !covered(canon)) {
		fprintf(stderr, "tc_rm_rf: refusing to remove %s (%s): not a directory made by tc_tmpdir\n", dir,
			canon);
		return -EPERM;
	}
	rm_first_err = 0;
	if (nftw(canon, rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && !rm_first_err)
		rm_first_err = -errno;
	if (rm_first_err == 0 && lstat(canon, &st) == 0)
		rm_first_err = -ENOTEMPTY;   /* something nftw did not visit (another mount) */
	/* Forget it (and what lies under it) once it is gone. */
	for (i = 0; i < nmade; i++) {
		size_t n = strlen(canon);

		if (strncmp(made[i], canon, n) == 0 && (made[i][n] == '\0' || made[i][n] == '/') &&
		    lstat(made[i], &st) < 0) {
			memmove(made[i], made[nmade - 1], sizeof(made[i]));
			nmade--;
			i--;
		}
	}
	return rm_first_err;
}

/* ================================ PRNG ================================= */

static uint64_t seed;
static int have_seed;

uint64_t tc_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t tc_rand_below(uint64_t *state, uint64_t n)
{
	return n ? tc_splitmix64(state) % n : 0;
}

void tc_rand_fill(uint64_t *state, void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w = tc_splitmix64(state);

		memcpy(p + i, &w, 8);
	}
	if (i < n) {
		uint64_t w = tc_splitmix64(state);

		memcpy(p + i, &w, n - i);
	}
}

uint64_t tc_seed(void)
{
	const char *env;

	if (have_seed)
		return seed;
	env = getenv("EVFS_TEST_SEED");
	if (env && *env) {
		char *end;

		errno = 0;
		seed = strtoull(env, &end, 0);
		if (errno || *end) {
			fprintf(stderr, "tc: EVFS_TEST_SEED=%s is not a number; using 0\n", env);
			seed = 0;
		}
	} else {
		struct timespec ts;
		uint64_t s;

		clock_gettime(CLOCK_REALTIME, &ts);
		s = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40);
		seed = tc_splitmix64(&s);
	}
	have_seed = 1;
	fprintf(stderr, "tc: random seed %llu (replay with EVFS_TEST_SEED=%llu)\n", (unsigned long long)seed,
		(unsigned long long)seed);
	return seed;
}
