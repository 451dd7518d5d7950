// SPDX-License-Identifier: MIT
/*
 * vol_handle.c - the lifecycle of a volume handle: create, destroy, freeze,
 * attach, detach, extend, and the accessors.
 *
 * A struct vol is an open map plus, while attached, the lineage's data key.
 * vol_create() maps the chunk map read-only (after checking that the file
 * is as long as its header says: a short map would SIGBUS through the
 * mapping).  Sharing handles between openers (one per map id, refcounted)
 * is the engine table's business (engine.c), which calls vol_create and
 * vol_destroy.
 *
 * Locks (order and rules: volume.c): vol->lock and the chunk stripes are
 * taken only by this file and volume.c.  Attach, detach and extend take
 * vol->lock exclusive, so no I/O runs while the key or the mapping changes;
 * other files that need the volume still (a snapshot, fsck) call
 * vol_freeze()/vol_thaw().
 * The data key is owned by the handle once attached and wiped on detach or
 * on the last close.  The I/O path itself is in volume.c.
 */
#include "vol.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kms/kms.h"

/* ============================ handles ================================== */

static int vol_map_mmap(struct vol *v)
{
	size_t len = (size_t)map_entry_off(v->nchunks);
	void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, v->map_fd, 0);

	if (m == MAP_FAILED)
		return -errno;
	v->map = (const uint64_t *)((const uint8_t *)m + MAP_HDR_BYTES);
	v->map_len = len;
	return 0;
}

static void vol_map_unmap(struct vol *v)
{
	if (v->map)
		munmap((uint8_t *)v->map - MAP_HDR_BYTES, v->map_len);
	v->map = NULL;
}

void vol_destroy(struct vol *v)
{
	vol_map_unmap(v);
	if (v->map_fd >= 0)
		close(v->map_fd);
	kms_dk_destroy(v->dk);
	for (unsigned i = 0; i < VOL_STRIPES; i++)
		pthread_rwlock_destroy(&v->stripe[i]);
	pthread_rwlock_destroy(&v->lock);
	pthread_mutex_destroy(&v->pending_lock);
	free(v->pending);
	free(v);
}

int vol_create(struct vol **out, struct pool *p, const char *id, int writable, struct elog *log, struct par *par)
{
	struct map_header h;
	struct vol *v;
	char name[128];
	int dfd, err;

	if (strlen(id) >= ENGINE_ID_MAX || strchr(id, '/'))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->pool = p;
	v->log = log;
	v->par = par;
	v->map_fd = -1;
	v->writable = writable;
	snprintf(v->id, sizeof(v->id), "%s", id);
	{
		/* Writer preference: detach and extend must not starve behind a
		 * stream of I/O. */
		pthread_rwlockattr_t ra;

		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&v->lock, &ra);
		pthread_rwlockattr_destroy(&ra);
	}
	pthread_mutex_init(&v->pending_lock, NULL);
	for (unsigned i = 0; i < VOL_STRIPES; i++)
		pthread_rwlock_init(&v->stripe[i], NULL);
	if (p->version == 2) {
		/* Format 2: a root record of the pool's tree (tree.c). */
		err = tree_root_find(p, id, &v->root);
		if (err)
			goto fail;
		v->size = tree_root_size(p, v->root);
		v->nchunks = chunk_count(v->size, p->chunk_size);
		*out = v;
		return 0;
	}
	dfd = openat(p->dir_fd, "maps", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		err = -errno;
		goto fail;
	}
	snprintf(name, sizeof(name), "%s.map", id);
	v->map_fd = openat(dfd, name, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	err = v->map_fd < 0 ? -errno : 0;
	close(dfd);
	if (err)
		goto fail;
	err = map_header_load(p, v->map_fd, id, &h);
	if (err) {
		elog_printf(log, LOG_ERR, "volume %s: chunk map %s/%s/maps/%s is damaged (bad header or checksum); restore "
			    "the file from a copy", id, p->pools_dir, p->lineage_hex, name);
		goto fail;
	}
	v->size = h.size;
	v->nchunks = chunk_count(h.size, p->chunk_size);
	{
		struct stat st;

		/* A map shorter than its header says would SIGBUS through the
		 * mapping: refuse it as damaged. */
		if (fstat(v->map_fd, &st) < 0 || (uint64_t)st.st_size < map_entry_off(v->nchunks) ||
		    v->nchunks > (SIZE_MAX - MAP_HDR_BYTES) / 8) {
			elog_printf(log, LOG_ERR, "volume %s: chunk map %s/%s/maps/%s is truncated; restore the file from a "
				    "copy", id, p->pools_dir, p->lineage_hex, name);
			err = -EUCLEAN;
			goto fail;
		}
	}
	err = vol_map_mmap(v);
	if (err)
		goto fail;
	*out = v;
	return 0;
fail:
	vol_destroy(v);
	return err;
}

void vol_freeze(struct vol *v)
{
	pthread_rwlock_wrlock(&v->lock);
}

void vol_thaw(struct vol *v)
{
	pthread_rwlock_unlock(&v->lock);
}

int vol_map_dup(const struct vol *v)
{
	int fd;

	if (!v->writable || v->map_fd < 0)
		return -EROFS;
	fd = dup(v->map_fd);
	return fd < 0 ? -errno : fd;
}

int vol_is_writable(const struct vol *v)
{
	return v->writable;          /* immutable after vol_create */
}

int vol_attach(struct vol *v, struct kms_dk *dk)
{
	int err = 0;

	pthread_rwlock_wrlock(&v->lock);
	if (v->attached)
		err = -EALREADY;
	else if (v->pool->encrypted != (dk != NULL))
		err = -EINVAL;
	if (!err) {
		v->dk = dk;
		v->attached = 1;
	}
	pthread_rwlock_unlock(&v->lock);
	return err;
}

void vol_key_swap_frozen(struct vol *v, const struct kms_dk *dk)
{
	if (v->attached && v->dk) {
		kms_dk_destroy(v->dk);          /* the last reference wipes it */
		v->dk = kms_dk_ref(dk);
	}
}

int vol_detach(struct vol *v)
{
	int err = 0;

	pthread_rwlock_wrlock(&v->lock);
	if (!v->attached) {
		err = -ENOKEY;
	} else {
		kms_dk_destroy(v->dk);          /* wipes the data key */
		v->dk = NULL;
		v->attached = 0;
	}
	pthread_rwlock_unlock(&v->lock);
	return err;
}

int vol_is_attached(struct vol *v)
{
	int a;

	pthread_rwlock_rdlock(&v->lock);
	a = v->attached;
	pthread_rwlock_unlock(&v->lock);
	return a;
}

uint64_t vol_size(struct vol *v)
{
	uint64_t s;

	pthread_rwlock_rdlock(&v->lock);
	s = v->size;
	pthread_rwlock_unlock(&v->lock);
	return s;
}

const char *vol_id(const struct vol *v)
{
	return v->id;
}

uint32_t vol_chunk_size(const struct vol *v)
{
	return v->pool->chunk_size;
}

const uint8_t *vol_lineage(const struct vol *v)
{
	return v->pool->lineage;
}

int vol_has_key(struct vol *v)
{
	int has;

	pthread_rwlock_rdlock(&v->lock);
	has = v->dk != NULL;
	pthread_rwlock_unlock(&v->lock);
	return has;
}
/* ============================== extend ================================= */

int vol_extend(struct vol *v, uint64_t new_size)
{
	uint64_t nchunks = chunk_count(new_size, v->pool->chunk_size), old_size;
	size_t len;
	void *m;
	int err = 0;

	pthread_rwlock_wrlock(&v->lock);
	old_size = v->size;
	if (!v->writable) {
		err = -EROFS;
	} else if (v->pool->version == 2) {
		/* The tree grows levels on top; durable at once, like format 1. */
		err = new_size < v->size ? -EINVAL : tree_extend(v->pool, v->root, new_size);
		if (!err)
			err = tree_commit(v->pool);
		if (!err) {
			v->size = new_size;
			v->nchunks = nchunks;
		}
	} else if (new_size < v->size || nchunks > (SIZE_MAX - MAP_HDR_BYTES) / 8) {
		err = -EINVAL;
	} else if (ftruncate(v->map_fd, (off_t)map_entry_off(nchunks)) < 0) {
		err = -errno;
	} else {
		len = (size_t)map_entry_off(nchunks);
		m = mmap(NULL, len, PROT_READ, MAP_SHARED, v->map_fd, 0);
		if (m == MAP_FAILED)
			err = -errno;
		if (!err)
			err = map_header_store(v->pool, v->map_fd, v->id, new_size);
		if (!err && fdatasync(v->map_fd) < 0)
			err = -errno;
		if (err) {
			if (m != MAP_FAILED)
				munmap(m, len);
			/* Put the file back as it was; the old mapping stays. */
			if (ftruncate(v->map_fd, (off_t)map_entry_off(v->nchunks)) < 0 ||
			    map_header_store(v->pool, v->map_fd, v->id, old_size) < 0)
				elog_printf(v->log, LOG_ERR, "volume %s: could not undo a failed extend", v->id);
		} else {
			vol_map_unmap(v);
			v->map = (const uint64_t *)((const uint8_t *)m + MAP_HDR_BYTES);
			v->map_len = len;
			v->size = new_size;
			v->nchunks = nchunks;
		}
	}
	pthread_rwlock_unlock(&v->lock);
	return err;
}
