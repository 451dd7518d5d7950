// SPDX-License-Identifier: MIT
/*
 * pdev.c - calls into a pool's storage device.
 *
 * The engine reaches a pool's files only through these, so where the files
 * live (a directory on a local file system, objects in a RADOS pool) is one
 * decision taken when the pool is opened, not a branch on every path.  The
 * table is a struct of function pointers the way libfuse's operations are;
 * each backend (pdev_local.c, pdev_rados.c) fills one.
 */
#include "pdev.h"

#include <errno.h>
#include <unistd.h>

const char *const pdev_file_names[PDEV_NFILES] = { "pages", "srefs", "prefs", "roots", "journal", "data" };

ssize_t pdev_read(struct pdev *d, enum pdev_file f, void *buf, size_t len, uint64_t off)
{
	return d->ops->read(d, f, buf, len, off);
}

int pdev_writev(struct pdev *d, enum pdev_file f, const struct iovec *iov, int iovcnt, uint64_t off)
{
	return d->ops->writev(d, f, iov, iovcnt, off);
}

int pdev_write(struct pdev *d, enum pdev_file f, const void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { (void *)buf, len };

	return d->ops->writev(d, f, &iov, 1, off);
}

int pdev_punch(struct pdev *d, enum pdev_file f, uint64_t off, uint64_t len)
{
	return d->ops->punch(d, f, off, len);
}

int pdev_sync(struct pdev *d, enum pdev_file f)
{
	return d->ops->sync(d, f);
}

int pdev_size(struct pdev *d, enum pdev_file f, uint64_t *size)
{
	return d->ops->size(d, f, size);
}

int pdev_truncate(struct pdev *d, enum pdev_file f, uint64_t size)
{
	return d->ops->truncate(d, f, size);
}

void pdev_reserve(struct pdev *d, enum pdev_file f, uint64_t len)
{
	d->ops->reserve(d, f, len);
}

const uint8_t *pdev_map(struct pdev *d, enum pdev_file f, uint64_t off, size_t len)
{
	if (!d->ops->map) {
		errno = ENOTSUP;
		return NULL;
	}
	return d->ops->map(d, f, off, len);
}

void pdev_unmap(struct pdev *d, const uint8_t *m, size_t len)
{
	if (d->ops->unmap)
		d->ops->unmap(d, m, len);
}

int64_t pdev_seek(struct pdev *d, enum pdev_file f, uint64_t off, int whence)
{
	uint64_t size;
	int err;

	if (d->ops->seek)
		return d->ops->seek(d, f, off, whence);
	err = pdev_size(d, f, &size);
	if (err)
		return err;
	if (off >= size)
		return whence == SEEK_DATA ? -ENXIO : (int64_t)off;
	return whence == SEEK_DATA ? (int64_t)off : (int64_t)size;
}

int pdev_holes(const struct pdev *d)
{
	return d->ops->seek != NULL;
}

void pdev_close(struct pdev *d)
{
	if (d)
		d->ops->close(d);
}
