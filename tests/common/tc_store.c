// SPDX-License-Identifier: MIT
/* tc_store.c - the store fixture (see tc_store.h). */
#include "tc_store.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms/kms.h"

#define TC_MOUNTPOINT "(check: no mount)"

/* One error object for every fixture caller: the suites are single-threaded
 * (each test runs in its own process). */
static struct evfs_err tc_err;

static void caller_set(struct store_caller *c, uint32_t uid, const char *user, const char *project)
{
	memset(c, 0, sizeof(*c));
	c->err = &tc_err;
	c->uid = uid;
	c->gid = uid;
	snprintf(c->user, sizeof(c->user), "%s", user);
	snprintf(c->project, sizeof(c->project), "%s", project);
}

static void log_cb(void *ctx, int level, const char *msg)
{
	struct tc_store *t = ctx;
	size_t n = strlen(msg);

	if (getenv("EVFS_TEST_LOG"))
		fprintf(stderr, "[store %d] %s\n", level, msg);
	pthread_mutex_lock(&t->log_lock);
	if (t->log_len + n + 2 < sizeof(t->log)) {
		memcpy(t->log + t->log_len, msg, n);
		t->log_len += n;
		t->log[t->log_len++] = '\n';
		t->log[t->log_len] = '\0';
	}
	pthread_mutex_unlock(&t->log_lock);
}

static void open_store(struct tc_store *t)
{
	char err[1024] = "";
	int rc = store_open(&t->s, t->store, t->cfg.unmounted ? NULL : TC_MOUNTPOINT, log_cb, t, err, sizeof(err));

	ck_assert_msg(rc == 0, "store_open %s: %d %s", t->store, rc, err);
}

void tc_store_init(struct tc_store *t, const struct tc_store_cfg *cfg)
{
	struct store_init_opts o = { 0 };
	char err[1024] = "";
	int rc;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->log_lock, NULL);
	if (cfg)
		t->cfg = *cfg;
	tc_tmpdir(t->dir, sizeof(t->dir), NULL, "evfs-store");
	snprintf(t->store, sizeof(t->store), "%s/store", t->dir);
	snprintf(t->keyfile, sizeof(t->keyfile), "%s/root.key", t->dir);
	o.keyfile = t->keyfile;
	o.region = t->cfg.region;
	o.security_admins = t->cfg.admins ? t->cfg.admins : "root secadm";
	o.chunk_size = t->cfg.chunk_size;
	rc = store_init(t->store, &o, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_init %s: %d %s", t->store, rc, err);
	open_store(t);
	caller_set(&t->root, 0, "root", TC_PROJECT);
	caller_set(&t->admin, 1001, "secadm", TC_PROJECT);
	caller_set(&t->user, 1000, "alice", TC_PROJECT);
	caller_set(&t->other, 1002, "bob", TC_PROJECT2);
	if (t->cfg.grant & TC_GRANT_DEFAULT)
		tc_store_grant(t, TC_PROJECT);
	if (t->cfg.grant & TC_GRANT_OTHER)
		tc_store_grant(t, TC_PROJECT2);
}

void tc_store_reopen(struct tc_store *t)
{
	store_close(t->s);
	t->s = NULL;
	open_store(t);
}

void tc_store_fini(struct tc_store *t)
{
	store_close(t->s);
	t->s = NULL;
	if (t->dir[0])
		(void)tc_rm_rf(t->dir);
	t->dir[0] = '\0';
	pthread_mutex_destroy(&t->log_lock);
}

void tc_store_grant(struct tc_store *t, const char *project)
{
	ck_assert_msg(store_kms_grant(t->s, &t->root, project, 1) == 0, "grant %s: %s", project, tc_err.msg);
}

void tc_store_init_other(struct tc_store *t, const char *name, const char *region, char *path, size_t pathsz)
{
	struct store_init_opts o = { 0 };
	char key[TC_PATH_MAX + 64], err[1024] = "";
	int rc;

	snprintf(path, pathsz, "%s/%s", t->dir, name);
	snprintf(key, sizeof(key), "%s/%s.key", t->dir, name);
	o.keyfile = key;
	o.region = region;
	o.security_admins = "root";
	rc = store_init(path, &o, err, sizeof(err));
	ck_assert_msg(rc == 0, "store_init %s: %d %s", path, rc, err);
}

void tc_store_begin(struct store *s)
{
	evfs_err_clear(&tc_err);
	store_cause_clear(s);
}

const char *tc_store_msg(struct store *s)
{
	(void)s;
	return tc_err.msg;
}

int tc_store_log_has(struct tc_store *t, const char *needle)
{
	int r;

	pthread_mutex_lock(&t->log_lock);
	r = strstr(t->log, needle) != NULL;
	pthread_mutex_unlock(&t->log_lock);
	return r;
}

void tc_store_log_clear(struct tc_store *t)
{
	pthread_mutex_lock(&t->log_lock);
	t->log[0] = '\0';
	t->log_len = 0;
	pthread_mutex_unlock(&t->log_lock);
}
