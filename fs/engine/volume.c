// SPDX-License-Identifier: MIT
/*
 * volume.c - the I/O path of open volumes.
 *
 * Handles (open, close, attach, detach, extend) are in vol_handle.c; this
 * file is what runs on them: read, write, discard, sync, seek.
 *
 * Locks, always taken in this order:
 *   1. engine->lock   the table of open handles (engine.c); never held
 *                     across I/O.
 *   2. vol->lock      rwlock; I/O takes it shared; attach, detach, extend
 *                     and a snapshot of this volume take it exclusive.
 *   3. vol->stripe[i] rwlocks over chunk index % 64, taken in ascending
 *                     stripe order; readers shared, writers exclusive, so
 *                     writes to different chunks run in parallel and a
 *                     read-modify-write of a partial chunk is atomic.
 *   4. pool->lock     allocator bookkeeping only (pool.c).
 * Each lock is taken only by the file named with it (2 and 3: this file and
 * vol_handle.c); others ask vol_freeze()/vol_thaw() or the engine table.
 * No global lock is held on the data path; crypto runs under 2 and 3 only.
 *
 * Write: new slots are allocated for the request's non-zero chunks
 * (consecutive when possible); the chunks are sealed into a per-thread
 * buffer and written out, ciphertext in one pwrite per run of consecutive
 * slots, then their tag entries.  Large requests are split over the crypto
 * helpers (par.c) in 128 KiB pieces, so one thread's writes overlap
 * another's encryption (seal_part).  Then the map entries go out in one
 * pwrite, and only then are the old slots released: a crash at any point
 * leaves each chunk old or new.  All-zero chunks become
 * holes.  Read: the map and tag table are read through mappings, runs of
 * consecutive slots are read with one pread straight into the caller's
 * buffer and opened in place.
 *
 * Plaintext only ever sits in the caller's buffer or the per-thread bounce
 * chunk, which is wiped after each use and when the thread ends.
 */
#include "vol.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include <sodium.h>

#include "par.h"

#define SEG_MAX (1024u * 1024u)                               /* bytes per pass */
#define SEG_CHUNKS (SEG_MAX / CHUNK_MIN_BYTES + 2u)
#define PAR_MIN_CHUNKS 32u                                    /* split passes of >= 2 x 128 KiB */
#define SEAL_PIECE 32u                                        /* encrypt-then-write unit of a part */

static const uint8_t zeros[CHUNK_MAX_BYTES];

/* ========================= per-thread scratch ========================== */

struct scratch {
	uint8_t *cipher;                     /* SEG_MAX + 2 chunks */
	uint8_t *bounce;                     /* one plaintext chunk (guarded) */
	struct chunk_tag tags[SEG_CHUNKS];
	struct chunk_tag otags[SEG_CHUNKS];  /* format 2: tags of the current entries */
	struct tree_ent tents[SEG_CHUNKS];   /* format 2: leaf entries in transit */
	uint64_t slots[SEG_CHUNKS];
	uint64_t old[SEG_CHUNKS];
	uint64_t ent[SEG_CHUNKS];
	uint64_t le[SEG_CHUNKS];             /* map entries as stored */
	uint32_t which[SEG_CHUNKS];
	uint8_t nonces[SEG_CHUNKS][CHUNK_NONCE_BYTES];   /* one getrandom a pass, not one a chunk */
	const uint8_t *src[SEG_CHUNKS];      /* whole chunks still to encrypt (NULL: done) */
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *arg)
{
	struct scratch *s = arg;

	if (!s)
		return;
	sodium_free(s->bounce);             /* wipes */
	free(s->cipher);
	free(s);
}

static void scratch_key_init(void)
{
	(void)pthread_key_create(&scratch_key, scratch_free);
}

static struct scratch *scratch_get(void)
{
	struct scratch *s;

	pthread_once(&scratch_once, scratch_key_init);
	s = pthread_getspecific(scratch_key);
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cipher = aligned_alloc(4096, SEG_MAX + 2 * CHUNK_MAX_BYTES);
	s->bounce = sodium_malloc(CHUNK_MAX_BYTES);
	if (!s->cipher || !s->bounce || pthread_setspecific(scratch_key, s) != 0) {
		scratch_free(s);
		return NULL;
	}
	return s;
}

/* =========================== chunk locks =============================== */

static void stripes_lock(struct vol *v, uint64_t first, uint64_t count, int excl)
{
	uint64_t base = first % VOL_STRIPES;

	for (unsigned s = 0; s < VOL_STRIPES; s++) {
		if ((s + VOL_STRIPES - base) % VOL_STRIPES < count) {
			if (excl)
				pthread_rwlock_wrlock(&v->stripe[s]);
			else
				pthread_rwlock_rdlock(&v->stripe[s]);
		}
	}
}

static void stripes_unlock(struct vol *v, uint64_t first, uint64_t count)
{
	uint64_t base = first % VOL_STRIPES;

	for (unsigned s = VOL_STRIPES; s-- > 0;)
		if ((s + VOL_STRIPES - base) % VOL_STRIPES < count)
			pthread_rwlock_unlock(&v->stripe[s]);
}

static inline uint64_t map_get(const struct vol *v, uint64_t index)
{
	return le64toh(__atomic_load_n(&v->map[index], __ATOMIC_ACQUIRE));
}

/* 1 if the map page holding entry `index` is a hole of the map file: its
 * entries are all zero, and reading them through the mapping would make
 * tmpfs allocate the page (a thin volume's map would fill up on reads). */
static int map_page_is_hole(const struct vol *v, uint64_t index)
{
	off_t pos = (off_t)(map_entry_off(index) & ~(uint64_t)4095);
	off_t d = lseek(v->map_fd, pos, SEEK_DATA);

	return d < 0 ? errno == ENXIO : d > pos;
}

/* A chunk that failed authentication or could not be read: counted for
 * status, logged (rate limited). */
static void chunk_failed(struct vol *v, uint64_t index, int err)
{
	atomic_fetch_add_explicit(&v->stat_chunk_errors, 1, memory_order_relaxed);
	elog_chunk_error(v->log, v->id, index, err);
}

/* Format 2: the entries of chunks [first, first+count) into sc->old
 * (slot + 1, 0 for a hole) and their tags into sc->otags. */
static int ents_load(struct vol *v, struct scratch *sc, uint64_t first, uint64_t count)
{
	for (uint64_t k = 0; k < count;) {
		uint64_t idx = first + k, run = TREE_FANOUT - (idx & (TREE_FANOUT - 1));
		int err;

		if (run > count - k)
			run = count - k;
		err = tree_get(v->pool, v->root, idx, run, sc->tents + k);
		if (err) {
			/* A map page failed its check: every chunk it covers
			 * is refused, none reads as a hole. */
			chunk_failed(v, idx, err);
			return err;
		}
		for (uint64_t j = k; j < k + run; j++) {
			sc->old[j] = le64toh(sc->tents[j].slot1);
			if (sc->old[j])
				tree_ent_tag(&sc->tents[j], first + j, &sc->otags[j]);
		}
		k += run;
	}
	return 0;
}

/* The tag of the chunk in `slot`, entry k of the pass. */
static const struct chunk_tag *tag_of(struct vol *v, struct scratch *sc, uint64_t k, uint64_t slot)
{
	return v->pool->version == 2 ? &sc->otags[k] : pool_tag(v->pool, slot);
}

/* Read and open one chunk held in `slot` into out (chunk_size bytes). */
static int chunk_load(struct vol *v, uint64_t index, uint64_t slot, const struct chunk_tag *t, uint8_t *out)
{
	struct pool *p = v->pool;
	int err = t ? pool_chunk_load(p, slot, out) : -EUCLEAN;

	if (!err)
		err = pool_chunk_open(p, v->dk, index, out, out, t);
	if (err)
		chunk_failed(v, index, err);
	return err;
}

/* =============================== read ================================== */

static ssize_t read_locked(struct vol *v, struct scratch *sc, uint8_t *buf, size_t len, uint64_t off)
{
	struct pool *p = v->pool;
	uint32_t cs = p->chunk_size;
	uint64_t first, count;
	int err = 0;

	int hole_page = 0;

	chunk_range(off, len, cs, &first, &count);
	stripes_lock(v, first, count, 0);
	if (p->version == 2)
		err = ents_load(v, sc, first, count);
	for (uint64_t k = 0; k < count && !err;) {
		uint64_t idx = first + k, in_buf, e, run = 1;
		uint32_t in_chunk, n;

		if (p->version == 2) {
			e = sc->old[k];
		} else {
			if (k == 0 || (idx & 511) == 0)
				hole_page = map_page_is_hole(v, idx);
			e = hole_page ? 0 : map_get(v, idx);
		}
		chunk_piece(off, len, cs, idx, &in_chunk, &n, &in_buf);
		if (!e) {
			memset(buf + in_buf, 0, n);
			k++;
			continue;
		}
		if (n < cs) {
			err = chunk_load(v, idx, e - 1, tag_of(v, sc, k, e - 1), sc->bounce);
			if (!err)
				memcpy(buf + in_buf, sc->bounce + in_chunk, n);
			sodium_memzero(sc->bounce, cs);
			k++;
			continue;
		}
		/* A run of whole chunks in consecutive slots: one pread. */
		while (k + run < count && ((idx + run) & 511) != 0 &&
		       (p->version == 2 ? sc->old[k + run] : map_get(v, idx + run)) == e + run &&
		       (off + len) >= ((idx + run + 1) << p->chunk_shift))
			run++;
		{
			ssize_t r = pdev_read(p->dev, PDEV_DATA, buf + in_buf, run * cs, (e - 1) << p->chunk_shift);

			if (r != (ssize_t)(run * cs)) {
				err = r < 0 ? (int)r : -EUCLEAN;
				chunk_failed(v, idx, err);
			}
		}
		for (uint64_t j = 0; j < run && !err; j++) {
			const struct chunk_tag *t = tag_of(v, sc, k + j, e - 1 + j);

			err = t ? pool_chunk_open(p, v->dk, idx + j, buf + in_buf + j * cs, buf + in_buf + j * cs, t)
				: -EUCLEAN;
			if (err)
				chunk_failed(v, idx + j, err);
		}
		k += run;
	}
	stripes_unlock(v, first, count);
	if (err)
		sodium_memzero(buf, len);      /* never partial plaintext */
	return err ? err : (ssize_t)len;
}

ssize_t vol_read(struct vol *v, void *buf, size_t len, uint64_t off)
{
	struct scratch *sc = scratch_get();
	size_t done = 0;
	ssize_t r = 0;

	if (!sc)
		return -ENOMEM;
	pthread_rwlock_rdlock(&v->lock);
	if (!v->attached) {
		pthread_rwlock_unlock(&v->lock);
		return -ENOKEY;
	}
	if (off >= v->size)
		len = 0;
	else if (len > v->size - off)
		len = (size_t)(v->size - off);
	while (done < len) {
		size_t n = len - done < SEG_MAX ? len - done : SEG_MAX;

		r = read_locked(v, sc, (uint8_t *)buf + done, n, off + done);
		if (r < 0) {
			sodium_memzero(buf, len);   /* never partial plaintext */
			break;
		}
		done += n;
	}
	pthread_rwlock_unlock(&v->lock);
	if (r >= 0)
		atomic_fetch_add_explicit(&v->stat_read, done, memory_order_relaxed);
	return r < 0 ? r : (ssize_t)done;
}

/* =============================== write ================================= */

static void pending_add(struct vol *v, uint64_t slot)
{
	pthread_mutex_lock(&v->pending_lock);
	if (v->npending == v->pending_cap) {
		size_t cap = v->pending_cap ? v->pending_cap * 2 : 1024;
		uint64_t *n = realloc(v->pending, cap * sizeof(*n));

		if (!n) {
			/* Cannot remember it: leave it PENDING (leaked until
			 * the pool is reopened) rather than risk reuse. */
			pthread_mutex_unlock(&v->pending_lock);
			return;
		}
		v->pending = n;
		v->pending_cap = cap;
	}
	v->pending[v->npending++] = slot;
	pthread_mutex_unlock(&v->pending_lock);
}

/*
 * Store new map entries for [first, first+count) and release old slots.
 * Nothing is written when no entry changes (a discard of a thin range must
 * not allocate map blocks, nor fail on a full disk).  If the file system
 * stops the pwrite part-way (ENOSPC), the entries it wrote are in effect:
 * their old slots are released as on success and *stored (if not NULL)
 * tells the caller how many entries keep their new slot.
 */
static int map_store(struct vol *v, struct scratch *sc, uint64_t first, uint64_t count, int punch,
		     uint64_t *stored)
{
	size_t len = count * sizeof(uint64_t), w = 0;
	int err = 0, changed = 0;

	for (uint64_t k = 0; k < count; k++) {
		sc->le[k] = htole64(sc->ent[k]);
		changed |= sc->ent[k] != sc->old[k];
	}
	while (changed && w < len) {
		ssize_t n = pwrite(v->map_fd, (const uint8_t *)sc->le + w, len - w, (off_t)(map_entry_off(first) + w));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -ENOSPC;
			break;
		}
		w += (size_t)n;
	}
	count = err ? w / sizeof(uint64_t) : count;
	if (stored)
		*stored = count;
	if (w % sizeof(uint64_t)) {
		/* A torn entry: put its old value back (its page is allocated);
		 * failing that keep both its slots (leaked, never reused). */
		uint64_t le = htole64(sc->old[count]);

		if (pwrite(v->map_fd, &le, sizeof(le), (off_t)map_entry_off(first + count)) != (ssize_t)sizeof(le)) {
			elog_printf(v->log, LOG_ERR, "volume %s: map entry of chunk %llu torn by a failed write; run fsck",
				    v->id, (unsigned long long)(first + count));
			if (stored)
				*stored = count + 1;
		}
	}
	for (uint64_t k = 0; k < count; k++) {
		/* Discarded slots are punched by vol_sync once this map is
		 * durable, not now: after a power cut the durable map could
		 * still point at them (a failed chunk, not the old content). */
		if (sc->old[k] && sc->old[k] != sc->ent[k] && pool_unref(v->pool, sc->old[k] - 1))
			pending_add(v, (sc->old[k] - 1) | (punch ? VOL_PENDING_PUNCH : 0));
	}
	return err;
}

/* Sealing one write pass: the whole chunks are encrypted and every chunk's
 * ciphertext and tag written to its fresh slot, by par_for() parts.  Each
 * part goes in pieces (encrypt a piece, write it), so one thread's writes
 * into the page cache (which serialise on the file) overlap the other's
 * encryption.  A device that wants large writes gets the pass after the
 * parts, one write per run of slots: on RADOS (where a write only queues
 * an op) one op of 1 MiB costs its OSD far less than eight of 128 KiB; with
 * O_DIRECT there is no copy into the page cache for the pieces to overlap,
 * and one large direct write is what the disk takes best.  The map is not
 * touched here: a failed part leaves only unreferenced fresh slots, which
 * the caller gives back. */
struct seal_job {
	struct scratch *sc;
	struct pool *p;
	const struct kms_dk *dk;             /* the volume's (NULL: unencrypted) */
	uint64_t first;
	atomic_int err;                      /* first error of any part */
};

/* Write sealed chunks [lo, hi) of the pass to their slots: one write per
 * run of consecutive slots. */
static int seal_write(struct seal_job *sj, size_t lo, size_t hi)
{
	struct scratch *sc = sj->sc;
	struct pool *p = sj->p;
	uint32_t cs = p->chunk_size;
	int err = 0;

	for (size_t j = lo; j < hi && !err;) {
		size_t run = 1;

		while (j + run < hi && sc->slots[j + run] == sc->slots[j] + run)
			run++;
		err = pdev_write(p->dev, PDEV_DATA, sc->cipher + j * cs, run * cs, sc->slots[j] << p->chunk_shift);
		if (!err && p->version == 1)      /* format 2: the tags go to the leaf */
			err = pool_tags_store(p, sc->slots[j], &sc->tags[j], run);
		j += run;
	}
	return err;
}

static void seal_part(void *arg, size_t from, size_t to)
{
	struct seal_job *sj = arg;
	struct scratch *sc = sj->sc;
	struct pool *p = sj->p;
	uint32_t cs = p->chunk_size;

	for (size_t lo = from; lo < to && !atomic_load(&sj->err); lo += SEAL_PIECE) {
		size_t hi = to - lo < SEAL_PIECE ? to : lo + SEAL_PIECE;
		int err = 0;

		for (size_t j = lo; j < hi; j++) {
			uint32_t k = sc->which[j];

			if (sc->src[j]) {   /* cannot fail: cs <= CHUNK_MAX_BYTES */
				int rc = pool_chunk_seal(p, sj->dk, sj->first + k, sc->nonces[k], sc->src[j],
							 sc->cipher + j * cs, &sc->tags[j]);
				(void)rc;
			}
		}
		if (!p->dev->large_writes)
			err = seal_write(sj, lo, hi);
		if (err) {
			int none = 0;

			atomic_compare_exchange_strong(&sj->err, &none, err);
		}
	}
}

/* Format 2: the pass's new entries (holes for all-zero chunks) into the
 * tree; the old slots lose their reference there. */
static int tree_store(struct vol *v, struct scratch *sc, uint64_t first, uint64_t count, uint64_t nz)
{
	memset(sc->tents, 0, count * sizeof(*sc->tents));
	for (uint64_t j = 0; j < nz; j++) {
		struct tree_ent *e = &sc->tents[sc->which[j]];

		e->slot1 = htole64(sc->slots[j] + 1);
		memcpy(e->nonce, sc->tags[j].nonce, sizeof(e->nonce));
		memcpy(e->mac, sc->tags[j].mac, sizeof(e->mac));
		e->dkgen = sc->tags[j].dkgen_le;
	}
	return tree_set(v->pool, v->root, first, count, sc->tents);
}

static int write_locked(struct vol *v, struct scratch *sc, const uint8_t *buf, size_t len, uint64_t off)
{
	struct pool *p = v->pool;
	uint32_t cs = p->chunk_size;
	uint64_t first, count, nz = 0, stored = 0;
	int err = 0;

	chunk_range(off, len, cs, &first, &count);
	if (p->encrypted)
		randombytes_buf(sc->nonces, count * CHUNK_NONCE_BYTES);
	else
		memset(sc->nonces, 0, count * CHUNK_NONCE_BYTES);
	stripes_lock(v, first, count, 1);
	if (p->version == 2)
		err = ents_load(v, sc, first, count);
	for (uint64_t k = 0; k < count && !err; k++) {
		uint64_t idx = first + k, in_buf;
		uint32_t in_chunk, n;
		const uint8_t *plain = NULL;

		chunk_piece(off, len, cs, idx, &in_chunk, &n, &in_buf);
		if (p->version == 1)
			sc->old[k] = map_get(v, idx);
		sc->ent[k] = 0;
		if (n == cs) {
			plain = buf + in_buf;
		} else {
			if (sc->old[k])
				err = chunk_load(v, idx, sc->old[k] - 1, tag_of(v, sc, k, sc->old[k] - 1), sc->bounce);
			else
				memset(sc->bounce, 0, cs);
			memcpy(sc->bounce + in_chunk, buf + in_buf, n);
			plain = sc->bounce;
		}
		if (!err && !chunk_is_zero(plain, cs)) {
			/* Edge chunks (in the bounce buffer) now; whole ones
			 * in seal_part(), split over the crypto helpers. */
			sc->src[nz] = plain == sc->bounce ? NULL : plain;
			if (!sc->src[nz])
				err = pool_chunk_seal(p, v->dk, idx, sc->nonces[k], plain, sc->cipher + nz * cs,
						      &sc->tags[nz]);
			sc->which[nz++] = (uint32_t)k;
		}
		if (plain == sc->bounce)
			sodium_memzero(sc->bounce, cs);
	}
	if (!err && nz)
		err = p->version == 2 ? tree_slots_alloc(p, nz, sc->slots) : pool_alloc(p, nz, sc->slots);
	if (err) {
		stripes_unlock(v, first, count);
		return err;
	}
	if (nz) {
		struct seal_job sj = { .sc = sc, .p = p, .dk = v->dk, .first = first };

		par_for(v->par, nz, PAR_MIN_CHUNKS, seal_part, &sj);
		err = atomic_load(&sj.err);
		if (!err && p->dev->large_writes)
			err = seal_write(&sj, 0, nz);
	}
	for (uint64_t j = 0; j < nz; j++)
		sc->ent[sc->which[j]] = sc->slots[j] + 1;
	if (!err && p->version == 2) {
		err = tree_store(v, sc, first, count, nz);
		if (err) {
			tree_slots_release_new(p, sc->slots, nz);
			nz = 0;
		}
	} else if (!err) {
		err = map_store(v, sc, first, count, 0, &stored);
	}
	if (err) {
		/* Entries from `stored` on are unchanged (old data intact):
		 * give their new slots back; the stored ones keep theirs. */
		uint64_t nrel = 0;

		for (uint64_t j = 0; j < nz; j++)
			if (sc->which[j] >= stored)
				sc->slots[nrel++] = sc->slots[j];
		if (p->version == 2)
			tree_slots_release_new(p, sc->slots, nrel);
		else
			pool_release_new(p, sc->slots, nrel);
	}
	stripes_unlock(v, first, count);
	return err;
}

static int vol_sync_pending_if_needed(struct vol *v)
{
	size_t n;

	if (v->pool->version == 2)   /* metadata and freed space waiting for a commit */
		return tree_dirty_bytes(v->pool) >= VOL_PENDING_BYTES ? vol_sync(v) : 0;

	pthread_mutex_lock(&v->pending_lock);
	n = v->npending;
	pthread_mutex_unlock(&v->pending_lock);
	/* Bounded in bytes: with 64 KiB chunks a slot count let a 48 MiB
	 * volume's pool grow past 1 GiB of slots waiting for reuse. */
	return n * v->pool->chunk_size >= VOL_PENDING_BYTES ? vol_sync(v) : 0;
}

ssize_t vol_write(struct vol *v, const void *buf, size_t len, uint64_t off)
{
	struct scratch *sc = scratch_get();
	size_t done = 0;
	int err = 0;

	if (!sc)
		return -ENOMEM;
	pthread_rwlock_rdlock(&v->lock);
	if (!v->writable)
		err = -EROFS;
	else if (!v->attached)
		err = -ENOKEY;
	else if (len && off >= v->size)
		err = -EFBIG;
	else if (len > v->size - off)
		len = (size_t)(v->size - off);
	while (!err && done < len) {
		size_t n = len - done < SEG_MAX ? len - done : SEG_MAX;

		err = write_locked(v, sc, (const uint8_t *)buf + done, n, off + done);
		if (!err)
			done += n;
	}
	pthread_rwlock_unlock(&v->lock);
	if (done)
		atomic_fetch_add_explicit(&v->stat_written, done, memory_order_relaxed);
	if (done && !err)
		err = vol_sync_pending_if_needed(v);
	if (done)
		return (ssize_t)done;
	return err;
}

int vol_discard(struct vol *v, uint64_t off, uint64_t len)
{
	struct scratch *sc = scratch_get();
	int err = 0;

	if (!sc)
		return -ENOMEM;
	pthread_rwlock_rdlock(&v->lock);
	if (!v->writable)
		err = -EROFS;
	else if (!v->attached)
		err = -ENOKEY;
	if (err || off >= v->size) {
		pthread_rwlock_unlock(&v->lock);
		return err;
	}
	if (len > v->size - off)
		len = v->size - off;
	while (!err && len) {
		uint32_t cs = v->pool->chunk_size;
		uint64_t seg = len < SEG_MAX ? len : SEG_MAX, first, count;
		uint64_t head = off & (cs - 1);
		int hole = 0;

		if (head || seg < cs) {
			/* Partial chunk: write zeros through the normal path. */
			uint64_t n = cs - head < seg ? cs - head : seg;

			err = write_locked(v, sc, zeros, (size_t)n, off);
			seg = n;
		} else {
			seg &= ~(uint64_t)(cs - 1);
			chunk_range(off, seg, cs, &first, &count);
			stripes_lock(v, first, count, 1);
			if (v->pool->version == 2) {
				/* Holes everywhere; unchanged leaves stay as they are. */
				memset(sc->tents, 0, count * sizeof(*sc->tents));
				err = tree_set(v->pool, v->root, first, count, sc->tents);
				stripes_unlock(v, first, count);
				off += seg;
				len -= seg;
				continue;
			}
			for (uint64_t k = 0; k < count; k++) {
				/* Holes of the map file stay holes (not faulted in). */
				if (k == 0 || ((first + k) & 511) == 0)
					hole = map_page_is_hole(v, first + k);
				sc->old[k] = hole ? 0 : map_get(v, first + k);
				sc->ent[k] = 0;
			}
			err = map_store(v, sc, first, count, 1, NULL);
			stripes_unlock(v, first, count);
		}
		off += seg;
		len -= seg;
	}
	pthread_rwlock_unlock(&v->lock);
	return err ? err : vol_sync_pending_if_needed(v);
}

int vol_sync(struct vol *v)
{
	uint64_t *list;
	size_t n;
	int err;

	if (v->pool->version == 2)
		return tree_commit(v->pool);    /* data, tree, counts: one journal commit */

	pthread_mutex_lock(&v->pending_lock);
	list = v->pending;
	n = v->npending;
	v->pending = NULL;
	v->npending = v->pending_cap = 0;
	pthread_mutex_unlock(&v->pending_lock);
	err = pool_sync(v->pool);
	if (!err && v->writable && fdatasync(v->map_fd) < 0)
		err = -errno;
	/* A slot this map freed may still be in the durable state of another
	 * open map of the pool that dropped it earlier (a clone that shared
	 * it): those must be durable too before the slot is reused. */
	if (!err && n)
		err = pool_maps_sync(v->pool, v);
	if (!err) {
		/* No durable map refers to them any more. */
		for (size_t i = 0; i < n; i++) {
			if (list[i] & VOL_PENDING_PUNCH) {
				list[i] &= ~VOL_PENDING_PUNCH;
				pool_punch(v->pool, list[i]);
			}
		}
		pool_free_pending(v->pool, list, n);
	}
	free(list);                               /* on error they stay PENDING: never reused */
	return err;
}

int64_t vol_seek(struct vol *v, uint64_t off, int whence)
{
	int64_t res = -ENXIO;
	uint32_t cs = v->pool->chunk_size;
	uint64_t i, first;

	pthread_rwlock_rdlock(&v->lock);
	if (off >= v->size) {
		pthread_rwlock_unlock(&v->lock);
		return -ENXIO;
	}
	first = off / cs;
	if (v->pool->version == 2) {
		i = tree_seek(v->pool, v->root, first, v->nchunks, whence == SEEK_DATA);
		if (i < v->nchunks)
			res = (int64_t)(i * cs > off ? i * cs : off);
		i = v->nchunks;                   /* skip the format 1 scan */
	}
	for (i = v->pool->version == 2 ? v->nchunks : first; i < v->nchunks;) {
		if (i == first || (i & 511) == 0) {
			/* Skip holes of the map file without touching them
			 * (reading them through the mapping would allocate). */
			off_t pos = (off_t)map_entry_off(i), d = lseek(v->map_fd, pos, SEEK_DATA);

			if (d < 0 || d > pos) {
				if (whence == SEEK_HOLE) {
					res = (int64_t)(i * cs > off ? i * cs : off);
					break;
				}
				if (d < 0) {
					if (errno != ENXIO)
						res = -errno;    /* an I/O error is not "no more data" */
					break;
				}
				i = ((uint64_t)d - MAP_HDR_BYTES) / 8;
				continue;
			}
		}
		if ((whence == SEEK_DATA) == (map_get(v, i) != 0)) {
			uint64_t at = i * cs;

			res = (int64_t)(at > off ? at : off);
			break;
		}
		i++;
	}
	if (whence == SEEK_HOLE && res < 0)
		res = (int64_t)v->size;
	if (res > (int64_t)v->size)
		res = whence == SEEK_HOLE ? (int64_t)v->size : -ENXIO;
	pthread_rwlock_unlock(&v->lock);
	return res;
}

/* Raw access, a window at a time (backups, fsck): the chunks' entries
 * taken under their stripes, their ciphertext read by pool_chunks_load
 * (one device read per run of slots). */
int vol_chunks_load(struct vol *v, uint64_t first, uint64_t n, uint8_t *cipher, struct chunk_tag *tags,
		    uint8_t *present)
{
	struct pool *p = v->pool;
	uint64_t slot[VOL_LOAD_MAX];
	int err = 0, count = 0;

	if (n == 0 || n > VOL_LOAD_MAX)
		return -EINVAL;
	pthread_rwlock_rdlock(&v->lock);
	if (first >= v->nchunks || n > v->nchunks - first) {
		pthread_rwlock_unlock(&v->lock);
		return -EINVAL;
	}
	stripes_lock(v, first, n, 0);
	for (uint64_t k = 0; k < n && !err;) {
		if (p->version == 2) {
			struct tree_ent te[TREE_FANOUT];
			uint64_t idx = first + k, run = TREE_FANOUT - (idx & (TREE_FANOUT - 1));

			if (run > n - k)
				run = n - k;
			err = tree_get(p, v->root, idx, run, te);
			for (uint64_t j = 0; j < run && !err; j++) {
				slot[k + j] = le64toh(te[j].slot1);
				if (slot[k + j])
					tree_ent_tag(&te[j], idx + j, &tags[k + j]);
			}
			k += run;
		} else {
			const struct chunk_tag *t;

			slot[k] = map_get(v, first + k);
			t = slot[k] ? pool_tag(p, slot[k] - 1) : NULL;
			if (slot[k] && !t)
				err = -EUCLEAN;
			else if (t)
				memcpy(&tags[k], t, sizeof(*t));
			k++;
		}
	}
	if (!err) {
		err = pool_chunks_load(p, slot, (size_t)n, cipher, present);
		for (uint64_t k = 0; k < n; k++) {
			present[k] = slot[k] != 0;
			count += present[k];
		}
	}
	stripes_unlock(v, first, n);
	pthread_rwlock_unlock(&v->lock);
	return err ? err : count;
}

int vol_chunk_load(struct vol *v, uint64_t index, uint8_t *cipher, struct chunk_tag *tag)
{
	uint8_t present;
	int r = vol_chunks_load(v, index, 1, cipher, tag, &present);

	return r < 0 ? r : present;
}

/* Format 2: leaf by leaf, each chunk under its stripe. */
static int chunks_foreach_v2(struct vol *v, int (*cb)(void *ctx, uint64_t index, uint64_t slot), void *ctx)
{
	uint64_t idx = 0;
	int err = 0;

	for (;;) {
		pthread_rwlock_rdlock(&v->lock);
		idx = idx < v->nchunks ? tree_seek(v->pool, v->root, idx, v->nchunks, 1) : v->nchunks;
		if (idx >= v->nchunks) {
			pthread_rwlock_unlock(&v->lock);
			break;
		}
		for (uint64_t end = (idx | (TREE_FANOUT - 1)) + 1; !err && idx < end && idx < v->nchunks; idx++) {
			struct tree_ent te;

			stripes_lock(v, idx, 1, 0);
			err = tree_get(v->pool, v->root, idx, 1, &te);
			if (!err && te.slot1)
				err = cb(ctx, idx, le64toh(te.slot1) - 1);
			stripes_unlock(v, idx, 1);
		}
		pthread_rwlock_unlock(&v->lock);
		if (err)
			break;
	}
	return err;
}

int vol_chunks_foreach(struct vol *v, int (*cb)(void *ctx, uint64_t index, uint64_t slot), void *ctx)
{
	uint64_t idx = 0;
	int err = 0;

	if (v->pool->version == 2)
		return chunks_foreach_v2(v, cb, ctx);

	for (;;) {
		uint64_t end;
		off_t pos, d;

		pthread_rwlock_rdlock(&v->lock);
		if (idx >= v->nchunks) {
			pthread_rwlock_unlock(&v->lock);
			break;
		}
		pos = (off_t)map_entry_off(idx);
		d = lseek(v->map_fd, pos, SEEK_DATA);
		if (d < 0) {
			err = errno == ENXIO ? 0 : -errno;
			pthread_rwlock_unlock(&v->lock);
			break;
		}
		if (d > pos) {
			idx = ((uint64_t)d - MAP_HDR_BYTES) / 8;
			pthread_rwlock_unlock(&v->lock);
			continue;
		}
		end = (idx | 511) + 1 < v->nchunks ? (idx | 511) + 1 : v->nchunks;
		for (; !err && idx < end; idx++) {
			uint64_t e;

			stripes_lock(v, idx, 1, 0);
			e = map_get(v, idx);
			if (e)
				err = cb(ctx, idx, e - 1);
			stripes_unlock(v, idx, 1);
		}
		pthread_rwlock_unlock(&v->lock);
		if (err)
			break;
	}
	return err;
}

void vol_stats(struct vol *v, struct vol_stats *st)
{
	st->bytes_read = atomic_load_explicit(&v->stat_read, memory_order_relaxed);
	st->bytes_written = atomic_load_explicit(&v->stat_written, memory_order_relaxed);
	st->chunk_errors = atomic_load_explicit(&v->stat_chunk_errors, memory_order_relaxed);
}
