// SPDX-License-Identifier: MIT
/*
 * pdev_local.c - a pool's storage device as files in its directory,
 * STORE/pools/<lineage>/ (the embedded default).
 *
 * Each call is the system call it names: pread, pwritev, fallocate
 * (punch, reserve), fdatasync, fstat, ftruncate, mmap.  The only policy
 * here is how a pool under construction becomes one: its files are made
 * under a suffix (".new") and renamed into place by pdev_local_publish,
 * the journal first and `roots` last, because a directory holding `roots`
 * is a format 2 pool (tree_pool_is_v2).  A build cut short leaves only
 * suffixed files, which pdev_local_unpublished removes.
 *
 * One exception to "the system call it names": chunk ciphertext is written
 * with O_DIRECT (a second descriptor of `data`) when the buffer, length
 * and offset are page aligned, as sealed chunks are, and the write is
 * large (DIO_MIN): a small one would wait for the disk.  Through the page
 * cache, the first write of a fresh volume spent most of its CPU copying
 * ciphertext into cache pages and on the file's lock while the sealing
 * threads took turns; and the data was cached twice (the ciphertext here,
 * the plaintext in the volume file's FUSE cache).  Reads stay buffered
 * (the kernel keeps the two coherent), and fdatasync makes either kind
 * durable.  A file system without O_DIRECT (tmpfs) or one that refuses an
 * alignment gets buffered writes, for good.
 */
#include "pdev.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIO_ALIGN 4096u
#define DIO_MIN (64u << 10)   /* smaller writes: the page cache (a 4 KiB O_DIRECT write waits ~70 us) */

struct pdev_local {
	struct pdev d;
	int dir_fd;
	int fd[PDEV_NFILES];
	int dio_fd;                          /* `data` with O_DIRECT, or -1 */
	_Atomic int dio_off;                 /* refused once (EINVAL): buffered from then on */
};

static inline struct pdev_local *L(struct pdev *d)
{
	return (struct pdev_local *)d;
}

static ssize_t local_read(struct pdev *d, enum pdev_file f, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(L(d)->fd[f], (uint8_t *)buf + done, len - done, (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* The descriptor a write of iov at off goes through: O_DIRECT for large,
 * page aligned chunk writes, when the file system takes them. */
static int write_fd(struct pdev_local *l, enum pdev_file f, const struct iovec *iov, int n, uint64_t off)
{
	size_t len = 0;

	if (f != PDEV_DATA || l->dio_fd < 0 || atomic_load(&l->dio_off) || off % DIO_ALIGN)
		return l->fd[f];
	for (int i = 0; i < n; i++) {
		if ((uintptr_t)iov[i].iov_base % DIO_ALIGN || iov[i].iov_len % DIO_ALIGN)
			return l->fd[f];
		len += iov[i].iov_len;
	}
	return len >= DIO_MIN ? l->dio_fd : l->fd[f];
}

static int local_writev(struct pdev *d, enum pdev_file f, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct iovec small[16], *v = small;
	int n = iovcnt, err = 0, fd;

	if (n < 0)
		return -EINVAL;
	/* a copy: a short write moves the start of the pieces */
	if (n > 16 && !(v = malloc((size_t)n * sizeof(*v))))
		return -ENOMEM;
	memcpy(v, iov, (size_t)n * sizeof(*v));
	fd = write_fd(L(d), f, v, n, off);
	for (int i = 0; i < n;) {
		ssize_t w = pwritev(fd, v + i, n - i < IOV_MAX ? n - i : IOV_MAX, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EINVAL && fd == L(d)->dio_fd) {
			atomic_store(&L(d)->dio_off, 1);       /* alignment refused: buffered */
			fd = L(d)->fd[f];
			continue;
		}
		if (w <= 0) {
			err = w < 0 ? -errno : -ENOSPC;
			break;
		}
		off += (uint64_t)w;
		while (i < n && (size_t)w >= v[i].iov_len)
			w -= (ssize_t)v[i++].iov_len;
		if (i < n) {
			v[i].iov_base = (uint8_t *)v[i].iov_base + w;
			v[i].iov_len -= (size_t)w;
		}
	}
	if (v != small)
		free(v);
	return err;
}

static int local_punch(struct pdev *d, enum pdev_file f, uint64_t off, uint64_t len)
{
	if (fallocate(L(d)->fd[f], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

static int local_sync(struct pdev *d, enum pdev_file f)
{
	return fdatasync(L(d)->fd[f]) < 0 ? -errno : 0;
}

static int local_size(struct pdev *d, enum pdev_file f, uint64_t *size)
{
	struct stat st;

	if (fstat(L(d)->fd[f], &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int local_truncate(struct pdev *d, enum pdev_file f, uint64_t size)
{
	return ftruncate(L(d)->fd[f], (off_t)size) < 0 ? -errno : 0;
}

static void local_reserve(struct pdev *d, enum pdev_file f, uint64_t len)
{
	(void)fallocate(L(d)->fd[f], 0, 0, (off_t)len);
}

static const uint8_t *local_map(struct pdev *d, enum pdev_file f, uint64_t off, size_t len)
{
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, L(d)->fd[f], (off_t)off);

	return m == MAP_FAILED ? NULL : m;
}

static void local_unmap(struct pdev *d, const uint8_t *m, size_t len)
{
	(void)d;
	munmap((void *)m, len);
}

static int64_t local_seek(struct pdev *d, enum pdev_file f, uint64_t off, int whence)
{
	off_t r = lseek(L(d)->fd[f], (off_t)off, whence);

	return r < 0 ? -errno : (int64_t)r;
}

static void local_close(struct pdev *d)
{
	for (int f = 0; f < PDEV_NFILES; f++)
		if (L(d)->fd[f] >= 0)
			close(L(d)->fd[f]);
	if (L(d)->dio_fd >= 0)
		close(L(d)->dio_fd);
	if (L(d)->dir_fd >= 0)
		close(L(d)->dir_fd);
	free(d);
}

static const struct pdev_ops local_ops = {
	.read = local_read,
	.writev = local_writev,
	.punch = local_punch,
	.sync = local_sync,
	.size = local_size,
	.truncate = local_truncate,
	.reserve = local_reserve,
	.map = local_map,
	.unmap = local_unmap,
	.seek = local_seek,
	.close = local_close,
};

int pdev_local_open(struct pdev **out, int dir_fd, const char *where, unsigned files, int create, const char *sfx)
{
	struct pdev_local *l = calloc(1, sizeof(*l));
	char name[64];
	int err = 0;

	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->d.ops = &local_ops;
	l->d.files = files;
	snprintf(l->d.where, sizeof(l->d.where), "%s", where);
	for (int f = 0; f < PDEV_NFILES; f++)
		l->fd[f] = -1;
	l->dio_fd = -1;
	l->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
	if (l->dir_fd < 0)
		err = -errno;
	for (int f = 0; f < PDEV_NFILES && !err; f++) {
		int flags = O_RDWR | O_CLOEXEC;

		if (!(files & PDEV_BIT(f)))
			continue;
		if (f == PDEV_DATA) {
			snprintf(name, sizeof(name), "%s", pdev_file_names[f]);
		} else {
			snprintf(name, sizeof(name), "%s%s", pdev_file_names[f], sfx ? sfx : "");
			if (create)
				flags |= O_CREAT | O_EXCL;
		}
		l->fd[f] = openat(l->dir_fd, name, flags, 0600);
		if (l->fd[f] < 0)
			err = -errno;
		else if (f == PDEV_DATA && (l->dio_fd = openat(l->dir_fd, name, O_RDWR | O_CLOEXEC | O_DIRECT)) >= 0)
			l->d.large_writes = 1;          /* (else -1: buffered only) */
	}
	if (err) {
		local_close(&l->d);
		return err;
	}
	*out = &l->d;
	return 0;
}

int pdev_local_dir_fd(const struct pdev *d)
{
	return ((const struct pdev_local *)d)->dir_fd;
}

int pdev_local_publish(int dir_fd, const char *sfx)
{
	/* The journal, then the block files, `roots` last (PDEV_ROOTS is the
	 * last block file). */
	static const enum pdev_file order[] = { PDEV_JOURNAL, PDEV_PAGES, PDEV_SREFS, PDEV_PREFS, PDEV_ROOTS };
	char from[64];

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		snprintf(from, sizeof(from), "%s%s", pdev_file_names[order[i]], sfx);
		if (renameat(dir_fd, from, dir_fd, pdev_file_names[order[i]]) < 0)
			return -errno;
	}
	return fsync(dir_fd) < 0 ? -errno : 0;
}

void pdev_local_unpublished(int dir_fd, const char *sfx)
{
	char name[64];

	for (int f = 0; f < PDEV_NFILES; f++) {
		if (f == PDEV_DATA)
			continue;
		snprintf(name, sizeof(name), "%s%s", pdev_file_names[f], sfx);
		(void)unlinkat(dir_fd, name, 0);
	}
}
