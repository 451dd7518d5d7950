/* SPDX-License-Identifier: MIT */
/*
 * tc.h - fixtures shared by the unit suites (library evfs_testcommon).
 *
 *   temp dirs  tc_tmpdir_new() makes "<parent>/<prefix>.XXXXXX" and records
 *              it; tc_rm_rf() removes a directory tree only if it is one of
 *              those directories or lies under one (never across a mount
 *              point, never through a symlink), so a bad path in a test can
 *              never remove anything else.
 *   PRNG       splitmix64 on a caller-held uint64_t state.  tc_seed() is the
 *              run's seed: EVFS_TEST_SEED if set (decimal or 0x hex), else
 *              taken from the clock; it is printed once so that a failing
 *              run can be replayed with EVFS_TEST_SEED=<seed>.
 *
 * The KMS and store fixtures are in tc_kms.h and tc_store.h.  Helpers whose
 * name has no "_new" run inside a Check test and abort it on failure.
 */
#ifndef EVFS_TESTS_TC_H
#define EVFS_TESTS_TC_H

#include <stddef.h>
#include <stdint.h>

#define TC_PATH_MAX 1024

/* Where temp dirs go by default: the dir given to tc_tmp_root_set(), else
 * $EVFS_TEST_TMPDIR if set and not empty, else "/tmp". */
const char *tc_tmp_root(void);
/* Make dir (e.g. a run's base dir made by main(), removed after the run, so
 * that a test that fails in fork mode leaves nothing behind) the default
 * parent of temp dirs; NULL goes back to the environment.  Forked tests
 * inherit it. */
void tc_tmp_root_set(const char *dir);
/* Make a fresh directory <parent>/<prefix>.XXXXXX (parent NULL:
 * tc_tmp_root()) into out.  Returns 0 or a negative errno (out then "").
 * Usable outside a test (e.g. in main()). */
int tc_tmpdir_new(char *out, size_t outsz, const char *parent, const char *prefix);
/* The same inside a test: aborts the test on failure. */
void tc_tmpdir(char *out, size_t outsz, const char *parent, const char *prefix);
/* Remove dir and everything under it.  Only a directory made by
 * tc_tmpdir_new()/tc_tmpdir() in this process (or its parent before a
 * fork) or a directory under one: otherwise -EPERM and nothing is touched.
 * Does not follow symlinks, does not cross mount points.  Returns 0, or the
 * negative errno of the first entry that could not be removed (the rest is
 * still removed).  A missing dir is -ENOENT. */
int tc_rm_rf(const char *dir);

/* The run's seed (see above); the first call prints it on stderr.  Call it
 * in main() so that every forked test sees the same seed. */
uint64_t tc_seed(void);
/* splitmix64: advance *state, return the next value. */
uint64_t tc_splitmix64(uint64_t *state);
/* Uniform-ish in [0, n) (0 when n is 0). */
uint64_t tc_rand_below(uint64_t *state, uint64_t n);
/* n bytes of the stream (8 per step, the last step's low bytes first). */
void tc_rand_fill(uint64_t *state, void *buf, size_t n);

#endif
