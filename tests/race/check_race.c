// SPDX-License-Identifier: MIT
/*
 * check_race.c - the store's error reporting under concurrency (issue:
 * per-call errors).
 *
 * The store used to keep the last error message in one buffer shared by
 * every caller.  FUSE worker threads reach it when they open a snapshot
 * whose key is unusable (store_file_open -> store_lineage_unwrap ->
 * store_key_error), while evfsctl commands and other threads write it too:
 * a data race (ThreadSanitizer reports it) and messages naming the wrong
 * object.  Here several threads open snapshots whose key is Disabled, each
 * with its own error object, while another attaches and detaches a volume;
 * every refusal must carry its own snapshot's name.  CI runs this suite
 * under TSan, where any race fails it.
 *
 * The store is driven through the real command table (cli_run), as
 * evfsctl and the mount do.  No root, no FUSE.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "store.h"

#define NSNAP 4
#define NTHREADS 4
#define ROUNDS 200

static char root[64];
static struct store *S;

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(p);
}

/* Run one evfsctl command line as root; its output is discarded. */
static int cmd(const char *line)
{
	char buf[512], *argv[16], *save = NULL;
	int argc = 0, rc;
	struct store_caller c;
	FILE *out = fopen("/dev/null", "w"), *err = tmpfile();
	char msg[1024] = "";

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *w = strtok_r(buf, " ", &save); w && argc < 15; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc] = NULL;
	store_caller_init(S, &c, 0, 0, NULL);
	rc = cli_run(S, &c, 0, argc, argv, out, err);
	rewind(err);
	if (fread(msg, 1, sizeof(msg) - 1, err) == 0)
		msg[0] = '\0';
	fclose(out);
	fclose(err);
	ck_assert_msg(rc == 0, "evfsctl %s: exit %d: %s", line, rc, msg);
	return rc;
}

static void setup(void)
{
	char dir[128], key[128], err[1024] = "";
	struct store_init_opts o = { 0 };

	snprintf(root, sizeof(root), "/tmp/evfs-race.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(dir, sizeof(dir), "%s/store", root);
	snprintf(key, sizeof(key), "%s/root.key", root);
	o.keyfile = key;
	o.security_admins = "root";
	ck_assert_msg(store_init(dir, &o, err, sizeof(err)) == 0, "init: %s", err);
	/* A mount point name makes it the mount's store (attach needs one). */
	ck_assert_msg(store_open(&S, dir, root, NULL, NULL, err, sizeof(err)) == 0, "open: %s", err);
	cmd("kms grant");
	cmd("key create k1");
	cmd("volume create v1 --size 1M --encrypt --key k1");
	cmd("volume create v2 --size 1M --encrypt");
	for (int i = 0; i < NSNAP; i++) {
		char line[64];

		snprintf(line, sizeof(line), "snapshot create v1 s%d", i);
		cmd(line);
	}
	cmd("key disable k1");
}

static void teardown(void)
{
	store_close(S);
	S = NULL;
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct opener {
	int id;
	int bad;                  /* refusals whose message named another object */
	char sample[1024];
};

static void *open_loop(void *arg)
{
	struct opener *op = arg;

	for (int r = 0; r < ROUNDS; r++) {
		char name[16];
		struct evfs_err why = { "" };
		struct store_caller c;
		struct store_file *f = NULL;
		int rc;

		snprintf(name, sizeof(name), "s%d", (op->id + r) % NSNAP);
		store_caller_init(S, &c, 0, 0, NULL);
		c.err = &why;
		rc = store_file_open(S, &c, META_SNAPSHOT, name, 0, &f);
		if (rc == 0) {
			store_file_close(f);
			op->bad++;
			snprintf(op->sample, sizeof(op->sample), "%s opened with its key disabled", name);
			continue;
		}
		/* The refusal is about this snapshot's key, in this call's own
		 * object: "... key k1 (...) is Disabled ...". */
		if (!strstr(why.msg, "k1") || !strstr(why.msg, "Disabled")) {
			op->bad++;
			snprintf(op->sample, sizeof(op->sample), "%s: %s", name, why.msg);
		}
	}
	return NULL;
}

static void *attach_loop(void *arg)
{
	int *fails = arg;

	for (int r = 0; r < ROUNDS / 4; r++) {
		struct evfs_err why = { "" };
		struct store_caller c;

		store_caller_init(S, &c, 0, 0, NULL);
		c.err = &why;
		if (store_attach(S, &c, "v2") != 0 || store_detach(S, &c, "v2", 0, NULL) != 0) {
			if (!*fails)
				fprintf(stderr, "attach/detach v2: %s\n", why.msg);
			(*fails)++;
		}
		/* And a refused attach, whose message is this call's. */
		evfs_err_clear(&why);
		if (store_attach(S, &c, "v1") == 0 || !strstr(why.msg, "k1") || !strstr(why.msg, "Disabled")) {
			if (!*fails)
				fprintf(stderr, "attach v1 (key disabled): %s\n", why.msg);
			(*fails)++;
		}
	}
	return NULL;
}

START_TEST(test_open_disabled_concurrent)
{
	pthread_t th[NTHREADS], at;
	struct opener op[NTHREADS];
	int afails = 0;

	for (int i = 0; i < NTHREADS; i++) {
		op[i] = (struct opener){ .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, open_loop, &op[i]), 0);
	}
	ck_assert_int_eq(pthread_create(&at, NULL, attach_loop, &afails), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_join(at, NULL);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_msg(op[i].bad == 0, "thread %d: %d wrong refusals, e.g. %s", i, op[i].bad, op[i].sample);
	ck_assert_msg(afails == 0, "attach/detach: %d failures", afails);
}
END_TEST

static Suite *race_suite(void)
{
	Suite *s = suite_create("race");
	TCase *tc = tcase_create("errors");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_open_disabled_concurrent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(race_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
