/* SPDX-License-Identifier: MIT */
/*
 * check_pdev_rados.c - the RADOS pool device (fs/engine/pdev_rados.c)
 * against a real throwaway Ceph (tests/cluster/ceph.sh), no mocks.
 *
 * White-box where it counts: besides the device's answers, the tests look
 * at the objects themselves (rados_stat on `<lineage>.<file>.<extent>`,
 * the header's xattrs, a listing of the pool after a remove), since the
 * layout is what another host, fsck or an operator will find in the pool.
 *
 * Each test connects in its own forked child (CK_FORK=yes: librados'
 * threads do not survive a fork) and works on a random lineage of its
 * own, so tests share the pool without meeting.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pdev.h"
#include "pdev_rados.h"

#define MiB (1024 * 1024ull)
#define EXT (4 * MiB)

static const char *ceph_conf, *ceph_pool;
static rados_t cluster;
static rados_ioctx_t io;
static char lineage[33];
static char other[33];                    /* a second lineage, for remove */

static void random_lineage(char *out)
{
	unsigned char raw[16];
	int fd = open("/dev/urandom", O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, raw, sizeof(raw)), (int)sizeof(raw));
	close(fd);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static void setup(void)
{
	int r = rados_create(&cluster, NULL);

	ck_assert_msg(r == 0, "rados_create: %s", strerror(-r));
	r = rados_conf_read_file(cluster, ceph_conf);
	ck_assert_msg(r == 0, "rados_conf_read_file(%s): %s", ceph_conf, strerror(-r));
	ck_assert_int_eq(rados_conf_set(cluster, "client_mount_timeout", "30"), 0);
	ck_assert_int_eq(rados_conf_set(cluster, "rados_osd_op_timeout", "30"), 0);
	ck_assert_int_eq(rados_conf_set(cluster, "rados_mon_op_timeout", "30"), 0);
	r = rados_connect(cluster);
	ck_assert_msg(r == 0, "rados_connect: %s", strerror(-r));
	r = rados_ioctx_create(cluster, ceph_pool, &io);
	ck_assert_msg(r == 0, "rados_ioctx_create(%s): %s", ceph_pool, strerror(-r));
	random_lineage(lineage);
	random_lineage(other);
}

static void teardown(void)
{
	pdev_rados_remove(io, lineage);
	pdev_rados_remove(io, other);
	rados_ioctx_destroy(io);
	rados_shutdown(cluster);
}

#define ALL_FILES ((1u << PDEV_NFILES) - 1)

static struct pdev *open_new(void)
{
	struct pdev *d;
	int r = pdev_rados_open(&d, io, lineage, ALL_FILES, 1);

	ck_assert_msg(r == 0, "pdev_rados_open(create): %s", strerror(-r));
	return d;
}

static struct pdev *open_old(void)
{
	struct pdev *d;
	int r = pdev_rados_open(&d, io, lineage, ALL_FILES, 0);

	ck_assert_msg(r == 0, "pdev_rados_open: %s", strerror(-r));
	return d;
}

/* The byte at file offset pos, for pattern `seed`. */
static inline unsigned char pat(uint64_t pos, unsigned seed)
{
	return (unsigned char)((pos * 131 + pos / 4093 + seed) & 0xff);
}

static void fill(unsigned char *buf, size_t len, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pat(off + i, seed);
}

static void expect_pat(const unsigned char *buf, size_t len, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != pat(off + i, seed))
			ck_abort_msg("byte at file offset %llu: %#x, want %#x", (unsigned long long)(off + i),
				     buf[i], pat(off + i, seed));
}

static void expect_zero(const unsigned char *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			ck_abort_msg("byte at file offset %llu: %#x, want 0", (unsigned long long)(off + i), buf[i]);
}

static void write_pat(struct pdev *d, enum pdev_file f, uint64_t off, size_t len, unsigned seed)
{
	unsigned char *buf = malloc(len);
	int r;

	ck_assert_ptr_nonnull(buf);
	fill(buf, len, off, seed);
	r = pdev_write(d, f, buf, len, off);
	ck_assert_msg(r == 0, "pdev_write(%zu at %llu): %s", len, (unsigned long long)off, strerror(-r));
	free(buf);
}

/* read [off, off + len): want bytes, zeros below file offset zero_end,
 * pattern seed from there */
static void read_mixed(struct pdev *d, enum pdev_file f, uint64_t off, size_t len, ssize_t want, uint64_t zero_end,
		       unsigned seed)
{
	unsigned char *buf = malloc(len + 1);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	memset(buf, 0xa5, len + 1);
	n = pdev_read(d, f, buf, len, off);
	ck_assert_msg(n == want, "pdev_read(%zu at %llu): %zd, want %zd", len, (unsigned long long)off, n, want);
	for (size_t i = 0; i < (size_t)n && off + i < zero_end; i++)
		if (buf[i])
			ck_abort_msg("byte at file offset %llu: %#x, want 0", (unsigned long long)(off + i), buf[i]);
	if (off + (size_t)n > zero_end) {
		size_t z = zero_end > off ? (size_t)(zero_end - off) : 0;

		expect_pat(buf + z, (size_t)n - z, off + z, seed);
	}
	ck_assert_msg(buf[len] == 0xa5, "pdev_read wrote past its buffer");
	free(buf);
}

/* ... all pattern seed, or all zeros with seed < 0 */
static void read_expect(struct pdev *d, enum pdev_file f, uint64_t off, size_t len, ssize_t want, int seed)
{
	read_mixed(d, f, off, len, want, seed < 0 ? UINT64_MAX : 0, seed < 0 ? 0 : (unsigned)seed);
}

static void oid_of(char *oid, size_t sz, enum pdev_file f, uint64_t k)
{
	snprintf(oid, sz, "%s.%s.%016llx", lineage, pdev_file_names[f], (unsigned long long)k);
}

/* rados_stat of extent k of f: its size, or the -errno. */
static int64_t ext_stat(enum pdev_file f, uint64_t k)
{
	char oid[96];
	uint64_t size;
	time_t mtime;
	int r;

	oid_of(oid, sizeof(oid), f, k);
	r = rados_stat(io, oid, &size, &mtime);
	return r < 0 ? r : (int64_t)size;
}

/* The persisted size.<file> xattr, or -1 when absent. */
static long long hdr_size(enum pdev_file f)
{
	char hdr[64], name[32], val[32];
	int n;

	snprintf(hdr, sizeof(hdr), "%s.hdr", lineage);
	snprintf(name, sizeof(name), "size.%s", pdev_file_names[f]);
	n = rados_getxattr(io, hdr, name, val, sizeof(val) - 1);
	if (n == -ENODATA)
		return -1;
	ck_assert_msg(n >= 0, "getxattr %s %s: %s", hdr, name, strerror(-n));
	val[n] = 0;
	return strtoll(val, NULL, 10);
}

START_TEST(test_create_publish)
{
	struct pdev *d, *e;
	char where[128];

	ck_assert_int_eq(pdev_rados_exists(io, lineage), 0);
	ck_assert_int_eq(pdev_rados_open(&e, io, lineage, ALL_FILES, 0), -ENOENT);
	ck_assert_ptr_null(e);
	d = open_new();
	snprintf(where, sizeof(where), "rados:%s/%s", ceph_pool, lineage);
	ck_assert_str_eq(d->where, where);
	ck_assert_uint_eq(d->files, ALL_FILES);
	/* unpublished: invisible to everyone else */
	ck_assert_int_eq(pdev_rados_exists(io, lineage), 0);
	ck_assert_int_eq(pdev_rados_open(&e, io, lineage, ALL_FILES, 0), -ENOENT);
	write_pat(d, PDEV_ROOTS, 0, 4096, 1);
	ck_assert_int_eq(pdev_rados_publish(d), 0);
	ck_assert_int_eq(pdev_rados_exists(io, lineage), 1);
	ck_assert_int_eq(hdr_size(PDEV_ROOTS), 4096);
	ck_assert_int_eq(hdr_size(PDEV_PAGES), 0);
	/* published: a create fails, an open sees the files */
	ck_assert_int_eq(pdev_rados_open(&e, io, lineage, ALL_FILES, 1), -EEXIST);
	e = open_old();
	read_expect(e, PDEV_ROOTS, 0, 4096, 4096, 1);
	pdev_close(e);
	pdev_close(d);

	ck_assert_int_eq(pdev_rados_remove(io, lineage), 0);
	ck_assert_int_eq(pdev_rados_exists(io, lineage), 0);
	ck_assert_int_eq(pdev_rados_open(&e, io, lineage, ALL_FILES, 0), -ENOENT);
	ck_assert_int_eq(pdev_rados_remove(io, lineage), 0);
}
END_TEST

START_TEST(test_unpublished_rebuild)
{
	struct pdev *d = open_new();

	/* a build cut short: a create starts over, its objects gone */
	write_pat(d, PDEV_DATA, EXT, 4096, 2);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 1), 4096);
	pdev_close(d);
	d = open_new();
	ck_assert_int_eq(ext_stat(PDEV_DATA, 1), -ENOENT);
	write_pat(d, PDEV_DATA, 0, 4096, 3);
	ck_assert_int_eq(pdev_rados_publish(d), 0);
	pdev_close(d);
	d = open_old();
	read_expect(d, PDEV_DATA, 0, 8192, 4096, 3);
	pdev_close(d);
}
END_TEST

START_TEST(test_bad_args)
{
	struct pdev *d;

	ck_assert_int_eq(pdev_rados_open(&d, io, "0123456789ABCDEF0123456789abcdef", ALL_FILES, 1), -EINVAL);
	ck_assert_int_eq(pdev_rados_open(&d, io, "0123456789abcdef", ALL_FILES, 1), -EINVAL);
	ck_assert_int_eq(pdev_rados_open(&d, io, "0123456789abcdef0123456789abcdef0", ALL_FILES, 1), -EINVAL);
	ck_assert_int_eq(pdev_rados_exists(io, "x"), -EINVAL);
	ck_assert_int_eq(pdev_rados_remove(io, "x"), -EINVAL);
	ck_assert_int_eq(pdev_rados_open(&d, io, lineage, PDEV_BLOCK_FILES, 1), 0);
	/* data was not opened */
	ck_assert_int_eq(pdev_write(d, PDEV_DATA, "x", 1, 0), -EBADF);
	ck_assert_int_eq(pdev_read(d, PDEV_DATA, (char[1]){ 0 }, 1, 0), -EBADF);
	errno = 0;
	ck_assert_ptr_null(pdev_map(d, PDEV_PAGES, 0, 4096));
	ck_assert_int_eq(errno, ENOTSUP);
	pdev_reserve(d, PDEV_JOURNAL, 4 * MiB);
	/* no seek: the whole file counts as data */
	write_pat(d, PDEV_PAGES, 0, 100, 4);
	ck_assert_int_eq(pdev_seek(d, PDEV_PAGES, 10, SEEK_DATA), 10);
	ck_assert_int_eq(pdev_seek(d, PDEV_PAGES, 10, SEEK_HOLE), 100);
	pdev_close(d);
}
END_TEST

/* 8 KiB across the first extent boundary from four iovec pieces: one op
 * per extent, the objects named as the layout says. */
START_TEST(test_boundary_iov)
{
	struct pdev *d = open_new();
	const uint64_t off = EXT - 4096;
	unsigned char buf[8192];
	struct iovec iov[4] = {
		{ buf, 1000 }, { buf + 1000, 0 }, { buf + 1000, 5000 }, { buf + 6000, 2192 },
	};
	uint64_t size;

	fill(buf, sizeof(buf), off, 5);
	ck_assert_int_eq(pdev_writev(d, PDEV_DATA, iov, 4, off), 0);
	ck_assert_int_eq(pdev_size(d, PDEV_DATA, &size), 0);
	ck_assert_uint_eq(size, EXT + 4096);
	read_expect(d, PDEV_DATA, off, 8192, 8192, 5);
	read_expect(d, PDEV_DATA, off + 1, 8190, 8190, 5);
	read_expect(d, PDEV_DATA, 0, 4096, 4096, -1);
	/* L.data.0000000000000000 is a full extent (zeros before), .1 holds 4 KiB */
	ck_assert_int_eq(ext_stat(PDEV_DATA, 0), (int64_t)EXT);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 1), 4096);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 2), -ENOENT);
	char oid[96];
	uint64_t osz;
	time_t mt;
	snprintf(oid, sizeof(oid), "%s.data.0000000000000001", lineage);
	ck_assert_int_eq(rados_stat(io, oid, &osz, &mt), 0);
	ck_assert_uint_eq(osz, 4096);
	/* other files are other objects */
	ck_assert_int_eq(ext_stat(PDEV_JOURNAL, 0), -ENOENT);
	pdev_close(d);
}
END_TEST

START_TEST(test_holes_and_eof)
{
	struct pdev *d = open_new();
	const uint64_t off = 2 * EXT + 5 * MiB / 2 + 5;     /* in extent 2... */

	write_pat(d, PDEV_PAGES, off, 100, 6);
	/* one read over two missing extents and a short object */
	unsigned char *buf = malloc(off + 100);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 0xa5, off + 100);
	ck_assert_int_eq(pdev_read(d, PDEV_PAGES, buf, off + 100, 0), (ssize_t)(off + 100));
	expect_zero(buf, off, 0);
	expect_pat(buf + off, 100, off, 6);
	free(buf);
	ck_assert_int_eq(ext_stat(PDEV_PAGES, 1), -ENOENT);
	/* holes inside one extent: missing object, before the data of a short one */
	read_expect(d, PDEV_PAGES, EXT + 12345, 65536, 65536, -1);
	read_expect(d, PDEV_PAGES, 2 * EXT, 4096, 4096, -1);
	/* short only at the end of the file, 0 at and past it */
	read_expect(d, PDEV_PAGES, off + 50, 4096, 50, 6);
	read_mixed(d, PDEV_PAGES, off - 10, 1 * MiB, 110, off, 6);
	read_expect(d, PDEV_PAGES, off + 100, 4096, 0, 6);
	read_expect(d, PDEV_PAGES, off + 100 + EXT, 4096, 0, 6);
	read_expect(d, PDEV_JOURNAL, 0, 4096, 0, 6);
	pdev_close(d);
}
END_TEST

START_TEST(test_size_sync)
{
	struct pdev *d = open_new(), *e;
	uint64_t size;

	write_pat(d, PDEV_JOURNAL, 0, 8192, 7);
	ck_assert_int_eq(pdev_rados_publish(d), 0);
	ck_assert_int_eq(hdr_size(PDEV_JOURNAL), 8192);
	/* extended in memory at once, persisted only by sync */
	write_pat(d, PDEV_JOURNAL, 8192, 4096, 7);
	ck_assert_int_eq(pdev_size(d, PDEV_JOURNAL, &size), 0);
	ck_assert_uint_eq(size, 12288);
	ck_assert_int_eq(hdr_size(PDEV_JOURNAL), 8192);
	e = open_old();
	ck_assert_int_eq(pdev_size(e, PDEV_JOURNAL, &size), 0);
	ck_assert_uint_eq(size, 8192);
	read_expect(e, PDEV_JOURNAL, 0, 65536, 8192, 7);
	pdev_close(e);
	/* a write inside the file leaves the size alone */
	write_pat(d, PDEV_JOURNAL, 0, 4096, 7);
	ck_assert_int_eq(pdev_sync(d, PDEV_JOURNAL), 0);
	ck_assert_int_eq(hdr_size(PDEV_JOURNAL), 12288);
	ck_assert_int_eq(hdr_size(PDEV_DATA), 0);
	e = open_old();
	ck_assert_int_eq(pdev_size(e, PDEV_JOURNAL, &size), 0);
	ck_assert_uint_eq(size, 12288);
	read_expect(e, PDEV_JOURNAL, 0, 65536, 12288, 7);
	ck_assert_int_eq(pdev_size(e, PDEV_DATA, &size), 0);
	ck_assert_uint_eq(size, 0);
	pdev_close(e);
	/* syncing another file persists only that one */
	write_pat(d, PDEV_JOURNAL, 12288, 4096, 7);
	write_pat(d, PDEV_SREFS, 0, 4096, 7);
	ck_assert_int_eq(pdev_sync(d, PDEV_SREFS), 0);
	ck_assert_int_eq(hdr_size(PDEV_SREFS), 4096);
	ck_assert_int_eq(hdr_size(PDEV_JOURNAL), 12288);
	ck_assert_int_eq(pdev_sync(d, PDEV_SREFS), 0);
	pdev_close(d);
}
END_TEST

START_TEST(test_punch)
{
	struct pdev *d = open_new();
	uint64_t size;

	write_pat(d, PDEV_DATA, 0, 3 * EXT, 8);
	/* a whole extent: its object goes */
	ck_assert_int_eq(pdev_punch(d, PDEV_DATA, EXT, EXT), 0);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 1), -ENOENT);
	read_expect(d, PDEV_DATA, EXT, EXT, (ssize_t)EXT, -1);
	read_expect(d, PDEV_DATA, EXT - 4096, 4096, 4096, 8);
	read_expect(d, PDEV_DATA, 2 * EXT, 4096, 4096, 8);
	/* again: nothing there, no error */
	ck_assert_int_eq(pdev_punch(d, PDEV_DATA, EXT, EXT), 0);
	ck_assert_int_eq(pdev_punch(d, PDEV_DATA, EXT + 4096, 8192), 0);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 1), -ENOENT);
	/* inside an extent: zeros, the rest intact, the object stays */
	ck_assert_int_eq(pdev_punch(d, PDEV_DATA, 100, 8192), 0);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 0), (int64_t)EXT);
	read_expect(d, PDEV_DATA, 0, 100, 100, 8);
	read_expect(d, PDEV_DATA, 100, 8192, 8192, -1);
	read_expect(d, PDEV_DATA, 8292, 65536, 65536, 8);
	/* the tail of an extent and past the end of the file */
	ck_assert_int_eq(pdev_punch(d, PDEV_DATA, 3 * EXT - 8192, 100 * EXT), 0);
	read_expect(d, PDEV_DATA, 3 * EXT - 16384, 8192, 8192, 8);
	read_expect(d, PDEV_DATA, 3 * EXT - 8192, 8192, 8192, -1);
	/* across extents: partial, whole, partial */
	ck_assert_int_eq(pdev_punch(d, PDEV_DATA, EXT - 4096, EXT + 8192), 0);
	read_expect(d, PDEV_DATA, EXT - 8192, 4096, 4096, 8);
	read_expect(d, PDEV_DATA, EXT - 4096, EXT + 8192, (ssize_t)EXT + 8192, -1);
	read_expect(d, PDEV_DATA, 2 * EXT + 4096, 4096, 4096, 8);
	/* the size does not move */
	ck_assert_int_eq(pdev_size(d, PDEV_DATA, &size), 0);
	ck_assert_uint_eq(size, 3 * EXT);
	pdev_close(d);
}
END_TEST

START_TEST(test_truncate)
{
	struct pdev *d = open_new(), *e;
	uint64_t size;

	write_pat(d, PDEV_DATA, 0, 9 * MiB, 9);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 2), (int64_t)MiB);
	ck_assert_int_eq(pdev_truncate(d, PDEV_DATA, 5 * MiB), 0);
	ck_assert_int_eq(pdev_size(d, PDEV_DATA, &size), 0);
	ck_assert_uint_eq(size, 5 * MiB);
	ck_assert_int_eq(hdr_size(PDEV_DATA), (long long)(5 * MiB));
	ck_assert_int_eq(ext_stat(PDEV_DATA, 2), -ENOENT);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 1), (int64_t)MiB);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 0), (int64_t)EXT);
	read_expect(d, PDEV_DATA, 5 * MiB - 100, 4096, 100, 9);
	/* grown again: zeros where the cut bytes were */
	ck_assert_int_eq(pdev_truncate(d, PDEV_DATA, 10 * MiB), 0);
	ck_assert_int_eq(hdr_size(PDEV_DATA), (long long)(10 * MiB));
	read_expect(d, PDEV_DATA, 5 * MiB - 100, 100, 100, 9);
	read_expect(d, PDEV_DATA, 5 * MiB, 5 * MiB, 5 * MiB, -1);
	/* to an extent boundary, and to nothing */
	ck_assert_int_eq(pdev_truncate(d, PDEV_DATA, EXT), 0);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 1), -ENOENT);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 0), (int64_t)EXT);
	ck_assert_int_eq(pdev_rados_publish(d), 0);
	e = open_old();
	ck_assert_int_eq(pdev_size(e, PDEV_DATA, &size), 0);
	ck_assert_uint_eq(size, EXT);
	pdev_close(e);
	ck_assert_int_eq(pdev_truncate(d, PDEV_DATA, 0), 0);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 0), -ENOENT);
	ck_assert_int_eq(hdr_size(PDEV_DATA), 0);
	read_expect(d, PDEV_DATA, 0, 4096, 0, -1);

	/* a "crash" after writes past the synced size: the next device sees
	 * the old size, and growing it over those bytes gives zeros */
	write_pat(d, PDEV_JOURNAL, 0, 8192, 16);
	ck_assert_int_eq(pdev_sync(d, PDEV_JOURNAL), 0);
	write_pat(d, PDEV_JOURNAL, 8192, EXT + 4096, 16);
	pdev_close(d);
	d = open_old();
	ck_assert_int_eq(pdev_size(d, PDEV_JOURNAL, &size), 0);
	ck_assert_uint_eq(size, 8192);
	ck_assert_int_eq(pdev_truncate(d, PDEV_JOURNAL, 2 * EXT), 0);
	read_expect(d, PDEV_JOURNAL, 0, 8192, 8192, 16);
	read_expect(d, PDEV_JOURNAL, 8192, 2 * EXT - 8192, (ssize_t)(2 * EXT - 8192), -1);
	pdev_close(d);
}
END_TEST

static int count_prefix(const char *prefix)
{
	rados_list_ctx_t ls;
	const char *oid;
	int n = 0, r;

	ck_assert_int_eq(rados_nobjects_list_open(io, &ls), 0);
	while ((r = rados_nobjects_list_next(ls, &oid, NULL, NULL)) == 0)
		if (!strncmp(oid, prefix, strlen(prefix)))
			n++;
	ck_assert_int_eq(r, -ENOENT);
	rados_nobjects_list_close(ls);
	return n;
}

START_TEST(test_remove)
{
	struct pdev *d = open_new(), *o;
	char prefix[40], oprefix[40];
	int r;

	snprintf(prefix, sizeof(prefix), "%s.", lineage);
	snprintf(oprefix, sizeof(oprefix), "%s.", other);
	for (int f = 0; f < PDEV_NFILES; f++)
		write_pat(d, (enum pdev_file)f, (uint64_t)f * EXT + EXT - 2048, 4096, 10);
	/* and past the persisted size: found by the listing all the same */
	ck_assert_int_eq(pdev_rados_publish(d), 0);
	write_pat(d, PDEV_DATA, 40 * EXT, 4096, 10);
	pdev_close(d);
	r = pdev_rados_open(&o, io, other, ALL_FILES, 1);
	ck_assert_int_eq(r, 0);
	write_pat(o, PDEV_DATA, 0, 4096, 11);
	ck_assert_int_eq(pdev_rados_publish(o), 0);
	pdev_close(o);

	ck_assert_int_eq(count_prefix(prefix), 1 + 2 * PDEV_NFILES + 1);
	ck_assert_int_eq(pdev_rados_remove(io, lineage), 0);
	ck_assert_int_eq(count_prefix(prefix), 0);
	ck_assert_int_eq(pdev_rados_exists(io, lineage), 0);
	/* the other lineage is untouched */
	ck_assert_int_eq(count_prefix(oprefix), 2);
	ck_assert_int_eq(pdev_rados_exists(io, other), 1);
}
END_TEST

struct writer {
	struct pdev *d;
	int t;
	int err;
};

#define SPAN (3 * MiB + 12345)     /* per thread; regions cross extents */
#define PIECE (64 * 1024 + 17)

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint64_t base = (uint64_t)w->t * SPAN + 777;
	unsigned char *buf = malloc(PIECE);

	for (uint64_t pos = 0; pos < SPAN && !w->err; pos += PIECE) {
		size_t n = SPAN - pos < PIECE ? SPAN - pos : PIECE;
		struct iovec iov[2] = { { buf, n / 3 }, { buf + n / 3, n - n / 3 } };

		fill(buf, n, base + pos, 12);
		w->err = pdev_writev(w->d, PDEV_DATA, iov, 2, base + pos);
		if (!w->err) {
			ssize_t r = pdev_read(w->d, PDEV_DATA, buf, n, base + pos);

			if (r != (ssize_t)n)
				w->err = r < 0 ? (int)r : -EIO;
			for (size_t i = 0; i < n && !w->err; i++)
				if (buf[i] != pat(base + pos + i, 12))
					w->err = -EILSEQ;
		}
		if (!w->err && (pos / PIECE) % 8 == 0)
			w->err = pdev_sync(w->d, PDEV_DATA);
	}
	free(buf);
	return NULL;
}

START_TEST(test_concurrent)
{
	struct pdev *d = open_new(), *e;
	struct writer w[4];
	pthread_t th[4];
	uint64_t size, end = 4 * SPAN + 777;

	for (int t = 0; t < 4; t++) {
		w[t] = (struct writer){ d, t, 0 };
		ck_assert_int_eq(pthread_create(&th[t], NULL, writer_main, &w[t]), 0);
	}
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		ck_assert_msg(w[t].err == 0, "writer %d: %s", t, strerror(-w[t].err));
	}
	ck_assert_int_eq(pdev_size(d, PDEV_DATA, &size), 0);
	ck_assert_uint_eq(size, end);
	read_expect(d, PDEV_DATA, 0, 777, 777, -1);
	read_expect(d, PDEV_DATA, 777, 4 * SPAN, (ssize_t)(4 * SPAN), 12);
	ck_assert_int_eq(pdev_sync(d, PDEV_DATA), 0);
	ck_assert_int_eq(hdr_size(PDEV_DATA), (long long)end);
	ck_assert_int_eq(pdev_rados_publish(d), 0);
	e = open_old();
	read_expect(e, PDEV_DATA, 777, 4 * SPAN, (ssize_t)(4 * SPAN), 12);
	pdev_close(e);
	pdev_close(d);
}
END_TEST

START_TEST(test_big)
{
	struct pdev *d = open_new();
	const uint64_t off = MiB;              /* 9 MiB from here: extents 0, 1 and 2 */

	write_pat(d, PDEV_DATA, off, 9 * MiB, 13);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 0), (int64_t)EXT);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 1), (int64_t)EXT);
	ck_assert_int_eq(ext_stat(PDEV_DATA, 2), (int64_t)(2 * MiB));
	read_expect(d, PDEV_DATA, off, 9 * MiB, (ssize_t)(9 * MiB), 13);
	read_mixed(d, PDEV_DATA, 0, 10 * MiB + 1, (ssize_t)(10 * MiB), off, 13);
	/* more extents than ops in flight at once (32): 34 extents, 3 pieces */
	const size_t big = 34 * EXT - 4096;
	unsigned char *buf = malloc(big);
	ck_assert_ptr_nonnull(buf);
	fill(buf, big, 4096, 14);
	struct iovec iov[3] = { { buf, 3 * MiB }, { buf + 3 * MiB, 20 * MiB }, { buf + 23 * MiB, big - 23 * MiB } };
	ck_assert_int_eq(pdev_writev(d, PDEV_JOURNAL, iov, 3, 4096), 0);
	memset(buf, 0, big);
	ck_assert_int_eq(pdev_read(d, PDEV_JOURNAL, buf, big, 4096), (ssize_t)big);
	expect_pat(buf, big, 4096, 14);
	free(buf);
	ck_assert_int_eq(ext_stat(PDEV_JOURNAL, 33), (int64_t)EXT);
	ck_assert_int_eq(ext_stat(PDEV_JOURNAL, 34), -ENOENT);
	pdev_close(d);
}
END_TEST

struct listed {
	char (*names)[33];
	int n, cap, stop_at;
};

static int list_cb(void *ctx, const char *lin)
{
	struct listed *l = ctx;

	if (l->n == l->stop_at)
		return -ECANCELED;
	ck_assert_int_lt(l->n, l->cap);
	snprintf(l->names[l->n++], 33, "%s", lin);
	return 0;
}

static int listed_has(const struct listed *l, const char *lin)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], lin))
			return 1;
	return 0;
}

/* A store's own connection: its namespace holds its lineages, listed by
 * their headers; the default namespace's are not seen, nor other objects. */
START_TEST(test_connect_list)
{
	rados_t c2;
	rados_ioctx_t io2;
	struct pdev *d;
	char ns[48], where[160], lin[3][33], name[64];
	char names[8][33];
	struct listed l = { names, 0, 8, -1 };

	snprintf(ns, sizeof(ns), "evfs-%s", other);
	ck_assert_int_eq(pdev_rados_connect(ceph_conf, "no-such-pool", ns, NULL, &c2, &io2), -ENOENT);
	ck_assert_ptr_null(c2);
	ck_assert_int_eq(pdev_rados_connect(ceph_conf, ceph_pool, ns, NULL, &c2, &io2), 0);
	ck_assert_int_eq(pdev_rados_list(io2, list_cb, &l), 0);
	for (int i = 0; i < 3; i++) {
		random_lineage(lin[i]);
		ck_assert_int_eq(pdev_rados_open(&d, io2, lin[i], ALL_FILES, 1), 0);
		if (i == 0) {
			snprintf(where, sizeof(where), "rados:%s/%s/%s", ceph_pool, ns, lin[i]);
			ck_assert_str_eq(d->where, where);
		}
		write_pat(d, PDEV_DATA, 0, 4096, 15);
		if (i < 2)
			ck_assert_int_eq(pdev_rados_publish(d), 0);
		pdev_close(d);
	}
	/* a lineage in the default namespace, and a stray object */
	d = open_new();
	ck_assert_int_eq(pdev_rados_publish(d), 0);
	pdev_close(d);
	ck_assert_int_eq(pdev_rados_exists(io2, lineage), 0);
	ck_assert_int_eq(pdev_rados_exists(io, lin[0]), 0);
	snprintf(name, sizeof(name), "%.28s.hdr", lin[0]);
	ck_assert_int_eq(rados_write_full(io2, name, "x", 1), 0);

	ck_assert_int_eq(pdev_rados_list(io2, list_cb, &l), 3);
	for (int i = 0; i < 3; i++)
		ck_assert_msg(listed_has(&l, lin[i]), "lineage %d not listed", i);
	ck_assert(!listed_has(&l, lineage));
	ck_assert_int_eq(pdev_rados_exists(io2, lin[0]), 1);
	ck_assert_int_eq(pdev_rados_exists(io2, lin[2]), 0);
	/* the callback stops it */
	l = (struct listed){ names, 0, 8, 1 };
	ck_assert_int_eq(pdev_rados_list(io2, list_cb, &l), -ECANCELED);
	ck_assert_int_eq(l.n, 1);

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(pdev_rados_remove(io2, lin[i]), 0);
	ck_assert_int_eq(rados_remove(io2, name), 0);
	l = (struct listed){ names, 0, 8, -1 };
	ck_assert_int_eq(pdev_rados_list(io2, list_cb, &l), 0);
	pdev_rados_disconnect(c2, io2);
}
END_TEST

static Suite *pdev_rados_suite(void)
{
	Suite *s = suite_create("pdev_rados");
	TCase *tc = tcase_create("rados");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_create_publish);
	tcase_add_test(tc, test_unpublished_rebuild);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_boundary_iov);
	tcase_add_test(tc, test_holes_and_eof);
	tcase_add_test(tc, test_size_sync);
	tcase_add_test(tc, test_punch);
	tcase_add_test(tc, test_truncate);
	tcase_add_test(tc, test_remove);
	tcase_add_test(tc, test_concurrent);
	tcase_add_test(tc, test_big);
	tcase_add_test(tc, test_connect_list);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	ceph_conf = getenv("EVFS_CEPH_CONF");
	ceph_pool = getenv("EVFS_CEPH_POOL");
	if (!ceph_conf || !ceph_pool) {
		fprintf(stderr, "check_pdev_rados: EVFS_CEPH_CONF and EVFS_CEPH_POOL are not set: "
				"run it as tests/cluster/ceph.sh run -- check_pdev_rados\n");
		return 2;
	}
	SRunner *sr = srunner_create(pdev_rados_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
