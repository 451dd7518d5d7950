/* SPDX-License-Identifier: MIT */
/*
 * check_cluster.c - smoke test of the throwaway services of tests/cluster/
 * against the real client libraries (no mocks): the guarantees a Ceph or
 * PostgreSQL backend of evfs would stand on, checked on live servers.
 *
 * Run under tests/cluster/both.sh (ctest cluster_smoke), which provides
 * EVFS_CEPH_CONF, EVFS_CEPH_POOL and EVFS_PG_CONNINFO.
 *
 * TCases: rados (a compound write op guarded by cmpxattr applies as a
 * whole, and a stale guard fails with -ECANCELED and changes nothing;
 * watch/notify delivers a payload and brings back the watcher's ack),
 * pg (SELECT ... FOR UPDATE NOWAIT on a row another transaction has locked
 * fails with SQLSTATE 55P03, lock_not_available, and succeeds once the
 * lock is gone).  Each test connects in its own forked child: librados'
 * threads do not survive a fork.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *ceph_conf, *ceph_pool, *pg_conninfo;

/* ---- rados ------------------------------------------------------------ */

static rados_t cluster;
static rados_ioctx_t io;
static char oid[96];

static void rados_setup(void)
{
	int r = rados_create(&cluster, NULL);
	ck_assert_msg(r == 0, "rados_create: %s", strerror(-r));
	r = rados_conf_read_file(cluster, ceph_conf);
	ck_assert_msg(r == 0, "rados_conf_read_file(%s): %s", ceph_conf, strerror(-r));
	/* bounded: a dead cluster fails the test instead of hanging it */
	ck_assert_int_eq(rados_conf_set(cluster, "client_mount_timeout", "30"), 0);
	ck_assert_int_eq(rados_conf_set(cluster, "rados_osd_op_timeout", "30"), 0);
	ck_assert_int_eq(rados_conf_set(cluster, "rados_mon_op_timeout", "30"), 0);
	r = rados_connect(cluster);
	ck_assert_msg(r == 0, "rados_connect: %s", strerror(-r));
	r = rados_ioctx_create(cluster, ceph_pool, &io);
	ck_assert_msg(r == 0, "rados_ioctx_create(%s): %s", ceph_pool, strerror(-r));
	snprintf(oid, sizeof oid, "check_cluster.%ld.%ld", (long)getpid(), (long)time(NULL));
}

static void rados_teardown(void)
{
	rados_remove(io, oid);
	rados_ioctx_destroy(io);
	rados_shutdown(cluster);
}

/* xattr "ver" must equal EXPECT; then ver := NEWVER and the data := DATA,
 * all in one op (applied whole or not at all). */
static int guarded_update(const char *expect, const char *newver, const char *data)
{
	rados_write_op_t op = rados_create_write_op();
	rados_write_op_cmpxattr(op, "ver", LIBRADOS_CMPXATTR_OP_EQ, expect, strlen(expect));
	rados_write_op_setxattr(op, "ver", newver, strlen(newver));
	rados_write_op_write_full(op, data, strlen(data));
	int r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	return r;
}

static void expect_object(const char *ver, const char *data)
{
	char buf[64];
	int n = rados_getxattr(io, oid, "ver", buf, sizeof buf - 1);
	ck_assert_msg(n >= 0, "rados_getxattr: %s", strerror(-n));
	buf[n] = 0;
	ck_assert_str_eq(buf, ver);
	n = rados_read(io, oid, buf, sizeof buf - 1, 0);
	ck_assert_msg(n >= 0, "rados_read: %s", strerror(-n));
	buf[n] = 0;
	ck_assert_str_eq(buf, data);
}

START_TEST(test_cmpxattr_guard)
{
	/* create exclusively: version 1 */
	rados_write_op_t op = rados_create_write_op();
	rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	rados_write_op_setxattr(op, "ver", "1", 1);
	rados_write_op_write_full(op, "data-1", 6);
	int r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	ck_assert_msg(r == 0, "create: %s", strerror(-r));
	expect_object("1", "data-1");

	/* the current version: applied */
	r = guarded_update("1", "2", "data-2");
	ck_assert_msg(r == 0, "guarded update 1 -> 2: %s", strerror(-r));
	expect_object("2", "data-2");

	/* a stale version: -ECANCELED, neither the xattr nor the data moved */
	r = guarded_update("1", "3", "data-3, longer than before");
	ck_assert_msg(r == -ECANCELED, "stale guard: want -ECANCELED, got %d (%s)", r, strerror(-r));
	expect_object("2", "data-2");

	/* an exclusive create of an existing object fails too */
	op = rados_create_write_op();
	rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
	r = rados_write_op_operate(op, io, oid, NULL, 0);
	rados_release_write_op(op);
	ck_assert_int_eq(r, -EEXIST);
}
END_TEST

struct watch_seen {
	pthread_mutex_t mu;
	int calls;
	char payload[64];
	uint64_t handle;
};
static struct watch_seen seen = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void watch_cb(void *arg, uint64_t notify_id, uint64_t handle, uint64_t notifier_id,
	void *data, size_t len)
{
	struct watch_seen *w = arg;
	(void)notifier_id;
	pthread_mutex_lock(&w->mu);
	w->calls++;
	w->handle = handle;
	if (len >= sizeof w->payload)
		len = sizeof w->payload - 1;
	memcpy(w->payload, data, len);
	w->payload[len] = 0;
	pthread_mutex_unlock(&w->mu);
	rados_notify_ack(io, oid, notify_id, handle, "ack-from-watcher", 16);
}

static void watch_err(void *arg, uint64_t handle, int err)
{
	(void)arg;
	fprintf(stderr, "watch %llu error: %s\n", (unsigned long long)handle, strerror(-err));
}

START_TEST(test_watch_notify)
{
	int r = rados_write_full(io, oid, "w", 1);
	ck_assert_msg(r == 0, "rados_write_full: %s", strerror(-r));
	uint64_t handle = 0;
	r = rados_watch2(io, oid, &handle, watch_cb, watch_err, &seen);
	ck_assert_msg(r == 0, "rados_watch2: %s", strerror(-r));

	static const char msg[] = "evfs: volume 7 changed";
	char *reply = NULL;
	size_t reply_len = 0;
	r = rados_notify2(io, oid, msg, sizeof msg - 1, 10000, &reply, &reply_len);
	ck_assert_msg(r == 0, "rados_notify2: %s", strerror(-r));
	/* notify2 returns once every watcher acked: the callback has run */
	pthread_mutex_lock(&seen.mu);
	ck_assert_int_eq(seen.calls, 1);
	ck_assert_str_eq(seen.payload, msg);
	ck_assert(seen.handle == handle);
	pthread_mutex_unlock(&seen.mu);
	/* the reply carries the watcher's ack payload (encoded acks + timeouts) */
	ck_assert_ptr_nonnull(reply);
	ck_assert_msg(memmem(reply, reply_len, "ack-from-watcher", 16) != NULL,
		"the watcher's ack is not in the %zu-byte notify reply", reply_len);
	rados_buffer_free(reply);

	ck_assert_int_eq(rados_unwatch2(io, handle), 0);
	ck_assert_int_eq(rados_watch_flush(cluster), 0);
	/* no watcher left: a notify now reaches nobody */
	r = rados_notify2(io, oid, "x", 1, 5000, &reply, &reply_len);
	ck_assert_msg(r == 0, "rados_notify2 without watchers: %s", strerror(-r));
	rados_buffer_free(reply);
	pthread_mutex_lock(&seen.mu);
	ck_assert_int_eq(seen.calls, 1);
	pthread_mutex_unlock(&seen.mu);
}
END_TEST

/* ---- PostgreSQL ------------------------------------------------------- */

static PGconn *pg_open(void)
{
	PGconn *c = PQconnectdb(pg_conninfo);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "PQconnectdb: %s", PQerrorMessage(c));
	return c;
}

/* exec SQL, which must end with status WANT */
static void pg_ok(PGconn *c, const char *sql, ExecStatusType want)
{
	PGresult *res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == want, "%s: %s", sql, PQerrorMessage(c));
	PQclear(res);
}

START_TEST(test_pg_nowait)
{
	char table[64], sql[256];
	snprintf(table, sizeof table, "evfs_lock_%ld", (long)getpid());
	PGconn *a = pg_open(), *b = pg_open();

	snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY, v text)", table);
	pg_ok(a, sql, PGRES_COMMAND_OK);
	snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1, 'one')", table);
	pg_ok(a, sql, PGRES_COMMAND_OK);

	/* a holds the row lock */
	pg_ok(a, "BEGIN", PGRES_COMMAND_OK);
	snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 1 FOR UPDATE", table);
	pg_ok(a, sql, PGRES_TUPLES_OK);

	/* b asks without waiting: lock_not_available */
	pg_ok(b, "BEGIN", PGRES_COMMAND_OK);
	snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 1 FOR UPDATE NOWAIT", table);
	PGresult *res = PQexec(b, sql);
	ck_assert_int_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	ck_assert_ptr_nonnull(state);
	ck_assert_str_eq(state, "55P03");
	PQclear(res);
	pg_ok(b, "ROLLBACK", PGRES_COMMAND_OK);

	/* a's update commits; then b gets the lock at once and sees it */
	snprintf(sql, sizeof sql, "UPDATE %s SET v = 'two' WHERE id = 1", table);
	pg_ok(a, sql, PGRES_COMMAND_OK);
	pg_ok(a, "COMMIT", PGRES_COMMAND_OK);
	pg_ok(b, "BEGIN", PGRES_COMMAND_OK);
	snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 1 FOR UPDATE NOWAIT", table);
	res = PQexec(b, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(b));
	ck_assert_int_eq(PQntuples(res), 1);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "two");
	PQclear(res);
	pg_ok(b, "COMMIT", PGRES_COMMAND_OK);

	snprintf(sql, sizeof sql, "DROP TABLE %s", table);
	pg_ok(a, sql, PGRES_COMMAND_OK);
	PQfinish(b);
	PQfinish(a);
}
END_TEST

static Suite *cluster_suite(void)
{
	Suite *s = suite_create("cluster");
	TCase *tc = tcase_create("rados");
	tcase_add_checked_fixture(tc, rados_setup, rados_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_cmpxattr_guard);
	tcase_add_test(tc, test_watch_notify);
	suite_add_tcase(s, tc);

	tc = tcase_create("pg");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pg_nowait);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ceph_conf = getenv("EVFS_CEPH_CONF");
	ceph_pool = getenv("EVFS_CEPH_POOL");
	pg_conninfo = getenv("EVFS_PG_CONNINFO");
	if (!ceph_conf || !ceph_pool || !pg_conninfo) {
		fprintf(stderr, "check_cluster: EVFS_CEPH_CONF, EVFS_CEPH_POOL and EVFS_PG_CONNINFO are not set: "
				"run it as tests/cluster/both.sh run -- check_cluster\n");
		return 2;
	}
	SRunner *sr = srunner_create(cluster_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
