// SPDX-License-Identifier: MIT
/*
 * check_volume.c - the Check suite "volume": unit tests of the volume engine
 * (fs/pool.c, fs/maps.c, fs/volume.c) on real pool directories.
 *
 * Every test makes its own directory under one base temp dir (/dev/shm when
 * present: the engine needs SEEK_DATA/SEEK_HOLE and punch-hole, which tmpfs
 * and ext4 both have; EVFS_TEST_TMPDIR overrides).  A test removes its
 * directory when it passes; main() removes the base dir after the run, so a
 * failed or crashed test (Check fork mode) leaves nothing behind either.
 *
 * Encrypted pools get real data keys from a temporary key store (see
 * volume_fx.c).  Loop tests take _i = 0 for an unencrypted pool and 1 for an
 * encrypted one unless said otherwise.  All randomness is a seeded PRNG.
 *
 * TCases, one file per concern:
 *   core         volume_io.c, volume_layout.c
 *   cow          volume_cow.c
 *   tamper       volume_tamper.c
 *   concurrency  volume_concurrency.c, volume_par.c (the crypto helpers' pool)
 *   persistence  volume_persistence.c
 *   fsck         volume_fsck.c
 * Run one with CK_RUN_CASE=<name>; CK_VERBOSITY=verbose lists every test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "volume_fx.h"

static Suite *volume_suite(void)
{
	Suite *s = suite_create("volume");
	TCase *tc;

	tc = tcase_create("core");
	volume_add_io(tc);
	volume_add_layout(tc);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("cow");
	volume_add_cow(tc);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("tamper");
	volume_add_tamper(tc);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	volume_add_concurrency(tc);
	volume_add_par(tc);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("persistence");
	volume_add_persistence(tc);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("fsck");
	volume_add_fsck(tc);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("crash");
	volume_add_crash(tc);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	if (fx_format() == 2) {             /* ctest volume_v2 */
		tc = tcase_create("format2");
		volume_add_v2(tc);
		tcase_set_timeout(tc, 120);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	const char *tmp = getenv("EVFS_TEST_TMPDIR");
	struct stat st;
	SRunner *sr;
	int failed, rc;

	if (sodium_init() < 0) {
		fprintf(stderr, "sodium_init failed\n");
		return EXIT_FAILURE;
	}
	if (!tmp || !*tmp)
		tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
													: "/tmp";
	rc = tc_tmpdir_new(g_base, sizeof(g_base), tmp, "evfs-check-volume");
	if (rc < 0) {
		fprintf(stderr, "mkdtemp under %s: %s\n", tmp, strerror(-rc));
		return EXIT_FAILURE;
	}
	sr = srunner_create(volume_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	rm_rf(g_base);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
