/* SPDX-License-Identifier: MIT */
/*
 * tc_store.h - a store fixture: store_init (key file in the fixture's temp
 * dir) and store_open, with ready-made callers.
 *
 *   struct tc_store ts;
 *   tc_store_init(&ts, &(struct tc_store_cfg){ .grant = TC_GRANT_DEFAULT });
 *   store_volume_create(ts.s, &ts.user, ...);
 *   ... tc_store_msg(ts.s) ...
 *   tc_store_fini(&ts);
 *
 * Callers (no passwd lookup; the KMS knows admins by user name):
 *   root   uid 0     "root"    project "default"   a security administrator
 *   admin  uid 1001  "secadm"  project "default"   a security administrator
 *   user   uid 1000  "alice"   project "default"   not an administrator
 *   other  uid 1002  "bob"     project "beta"      not an administrator
 *
 * By default the store is opened as the mount opens it (a mountpoint is
 * named), so store_attach/store_detach work without FUSE; nothing is
 * mounted.  Messages of failed store calls are read ONLY through
 * tc_store_msg() (and cleared by tc_store_begin()), so a change of how the
 * store reports errors is an edit of tc_store.c alone.
 */
#ifndef EVFS_TESTS_TC_STORE_H
#define EVFS_TESTS_TC_STORE_H

#include <pthread.h>

#include "store.h"
#include "tc.h"

#define TC_PROJECT "default"     /* the store's default project */
#define TC_PROJECT2 "beta"       /* the second project (caller `other`) */

enum {
	TC_GRANT_NONE = 0,
	TC_GRANT_DEFAULT = 1,    /* kms grant for TC_PROJECT */
	TC_GRANT_OTHER = 2,      /* kms grant for TC_PROJECT2 */
	TC_GRANT_BOTH = 3,
};

struct tc_store_cfg {
	int grant;                 /* TC_GRANT_* */
	const char *admins;        /* security_admins; NULL: "root secadm" */
	const char *region;        /* NULL: the store's default */
	uint32_t chunk_size;       /* 0: the store's default */
	int unmounted;             /* open as evfsctl does (attach is then refused) */
};

struct tc_store {
	char dir[TC_PATH_MAX];             /* the fixture's temp dir */
	char store[TC_PATH_MAX + 16];      /* dir/store: the store directory */
	char keyfile[TC_PATH_MAX + 16];    /* dir/root.key */
	struct tc_store_cfg cfg;
	struct store *s;
	struct store_caller root, admin, user, other;
	pthread_mutex_t log_lock;
	char log[16384];                   /* the store's log lines, '\n'-separated (truncated) */
	size_t log_len;
};

/* Make the temp dir, store_init + store_open, grant as cfg says (cfg may be
 * NULL: no grant).  Aborts the test on failure. */
void tc_store_init(struct tc_store *t, const struct tc_store_cfg *cfg);
/* Close and open the store again (as at init: mounted or not). */
void tc_store_reopen(struct tc_store *t);
/* Close the store and remove the temp dir. */
void tc_store_fini(struct tc_store *t);
/* root runs `kms grant` for project. */
void tc_store_grant(struct tc_store *t, const char *project);
/* Another store (e.g. another region for replication) at dir/<name>, with
 * its own key file; not opened.  path receives its directory. */
void tc_store_init_other(struct tc_store *t, const char *name, const char *region, char *path, size_t pathsz);

/* Forget the previous message: call before a store call whose message the
 * test reads (as evfsctl does before each command). */
void tc_store_begin(struct store *s);
/* The message of the last failed store call ("" if none). */
const char *tc_store_msg(struct store *s);

/* 1 if a store log line so far contains needle; clear the log. */
int tc_store_log_has(struct tc_store *t, const char *needle);
void tc_store_log_clear(struct tc_store *t);

#endif
