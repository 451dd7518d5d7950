// SPDX-License-Identifier: MIT
/*
 * store_backup.c - backups, image export and replication (fsck: store_fsck.c).
 *
 * A backup is taken from a point-in-time clone of the volume's map (made
 * and dropped here), so it matches every write the mount acknowledged
 * before the command, while the volume keeps running.  The backup file
 * carries the lineage's wrapped data key (R7); the catalog row keeps the
 * lineage row (and so the wrapped key) alive after the volume and pool
 * are gone.  The latest backup of each volume is remembered in the catalog
 * setting "backup.last.<volume id>" and is the base of the next
 * incremental one.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "progress.h"

static void backup_progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)total;
	progress_update(ctx, done);
}

int store_backup_create(struct store *s, const struct store_caller *c, const char *vol, const char *name,
			int incremental, struct meta_object *out)
{
	struct meta_object v, o, tmp;
	struct meta_lineage l;
	struct backup_info bi;
	struct vol *h = NULL;
	char setting[80], last[META_ID_LEN + 1] = "";
	struct progress pr;
	int rc = store_object_find(s, c, META_VOLUME, vol, &v);

	if (!rc)
		rc = store_owner_check(s, c, &v, "backup of volume");
	if (rc)
		return rc;
	rc = store_name_check(s, c, META_BACKUP, name);
	if (rc)
		return rc;
	rc = meta_lineage_get(s->meta, v.lineage, &l);
	if (rc) {
		store_seterr(s, c, "volume %s: its lineage is missing from the catalog; run evfsctl fsck", vol);
		return rc;
	}
	{
		/* A backup holds one wrapped key: not while chunks need two. */
		struct meta_rekey r;

		rc = meta_rekey_get(s->meta, v.lineage, &r);
		if (!rc && r.old_wrapped_len) {
			store_seterr(s, c, "volume %s: a rekey of its data key is unfinished; complete it with 'evfsctl "
					   "volume rekey %s', then back up", vol, vol);
			return -EBUSY;
		}
		if (rc) {
			store_seterr(s, c, "volume %s: data-key generations unreadable in the catalog: %s; run evfsctl fsck",
				     vol, evfs_strerror(rc));
			return rc;
		}
	}
	snprintf(setting, sizeof(setting), "backup.last.%s", v.id);
	if (incremental) {
		struct meta_object prev;

		if (meta_setting_get(s->meta, setting, last, sizeof(last)) < 0 || !last[0] ||
		    meta_object_get(s->meta, last, &prev) < 0) {
			store_seterr(s, c, "backup %s: volume %s has no previous backup to be incremental to; take a full "
				     "backup first (without --incremental)", name, vol);
			return -ENOENT;
		}
	}
	memset(&o, 0, sizeof(o));
	meta_id_generate(o.id);
	o.kind = META_BACKUP;
	snprintf(o.name, sizeof(o.name), "%s", name);
	snprintf(o.project, sizeof(o.project), "%s", c->project);
	o.owner_uid = c->uid;
	o.size = v.size;
	o.encrypted = v.encrypted;         /* R7 */
	snprintf(o.key_id, sizeof(o.key_id), "%s", v.key_id);
	snprintf(o.lineage, sizeof(o.lineage), "%s", v.lineage);
	snprintf(o.source, sizeof(o.source), "volume:%s", v.name);
	snprintf(o.parent_id, sizeof(o.parent_id), "%s", v.id);
	snprintf(o.vol_type, sizeof(o.vol_type), "%s", v.vol_type);
	if (strlen(s->cfg.backup_dir) >= sizeof(o.location)) {
		store_seterr(s, c, "backup_dir %s is longer than %zu bytes; choose a shorter path in evfs.ini",
			     s->cfg.backup_dir, sizeof(o.location) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(o.location, s->cfg.backup_dir, strlen(s->cfg.backup_dir) + 1);
	o.created = (int64_t)time(NULL);
	o.incremental = incremental;

	/* Point in time: back up a clone, not the live map. */
	memset(&tmp, 0, sizeof(tmp));
	meta_id_generate(tmp.id);
	rc = engine_map_clone(s->eng, v.lineage, v.id, tmp.id, 0, 0);
	if (!rc)
		rc = engine_vol_open(&h, s->eng, v.lineage, tmp.id, 0);
	if (!rc) {
		memset(&bi, 0, sizeof(bi));
		snprintf(bi.id, sizeof(bi.id), "%s", o.id);
		if (incremental)
			snprintf(bi.parent_id, sizeof(bi.parent_id), "%s", last);
		bi.encrypted = v.encrypted;
		snprintf(bi.key_id, sizeof(bi.key_id), "%s", v.key_id);
		memcpy(bi.wrapped, l.wrapped, l.wrapped_len);
		bi.wrapped_len = (uint32_t)l.wrapped_len;
		bi.created = o.created;
		progress_begin(&pr, c->progress, name, v.size);
		rc = backup_create(h, s->cfg.backup_dir, &bi, backup_progress, &pr);
		progress_end(&pr, rc == 0);
		o.stored_bytes = bi.own_chunks * vol_chunk_size(h);
	}
	engine_vol_close(h);
	{
		int d = engine_map_delete(s->eng, v.lineage, tmp.id);

		/* -ENOENT: the clone itself failed (a full disk): nothing to remove. */
		if (d < 0 && d != -ENOENT)
			store_logf(s, LOG_WARNING, "backup %s: temporary clone %s not removed", name, tmp.id);
	}
	if (rc) {
		store_seterr(s, c, "backup %s of volume %s failed: %s%s%s%s", name, vol, evfs_strerror(rc),
			     rc == -ENOSPC ? " (free space in the backup directory " : "",
			     rc == -ENOSPC ? s->cfg.backup_dir : "",
			     rc == -ENOSPC ? " and on the filesystem holding the store, or set backup_dir to another "
					     "disk; nothing was kept)" : "");
		return rc;
	}
	/* Object and chain head together, or neither; a refused catalog
	 * update takes the written file back with it. */
	rc = meta_begin(s->meta);
	if (!rc) {
		struct backup_info now;

		rc = meta_object_insert(s->meta, &o);
		if (!rc)
			rc = meta_setting_set(s->meta, setting, o.id);
		if (!rc)
			rc = backup_info_load(o.location, o.id, &now);
		if (!rc)
			rc = meta_fresh_backup_set(s->meta, o.id, now.sum);
		if (rc)
			meta_rollback(s->meta);
		else
			rc = meta_commit(s->meta);
	}
	if (rc) {
		if (backup_delete(o.location, o.id, NULL, 0) < 0)
			store_logf(s, LOG_WARNING, "backup %s: file %s/%s.evb not removed after the failed catalog update", name,
				   o.location, o.id);
		store_seterr(s, c, "backup %s: catalog update failed: %s (nothing was kept)", name, evfs_strerror(rc));
		return rc;
	}
	if (out)
		*out = o;
	return 0;
}

struct chain_ctx {
	struct meta_object *list;
	size_t n, cap;
};

static int chain_cb(void *ctx, const struct meta_object *o)
{
	struct chain_ctx *ch = ctx;

	if (ch->n == ch->cap) {
		size_t cap = ch->cap ? ch->cap * 2 : 16;
		struct meta_object *l = realloc(ch->list, cap * sizeof(*l));

		if (!l)
			return -ENOMEM;
		ch->list = l;
		ch->cap = cap;
	}
	ch->list[ch->n++] = *o;
	return 0;
}

int store_backup_delete(struct store *s, const struct store_caller *c, const struct meta_object *o)
{
	struct chain_ctx ch = { 0 };
	struct meta_filter f = { .kind = META_BACKUP, .parent_id = o->parent_id };
	const char **kids = NULL;
	char cur[META_ID_LEN + 1], setting[80], last[META_ID_LEN + 1] = "";
	size_t nk = 0;
	int rc = meta_object_list(s->meta, &f, chain_cb, &ch);

	if (rc < 0)
		goto out;
	kids = calloc(ch.n + 1, sizeof(*kids));
	if (!kids) {
		rc = -ENOMEM;
		goto out;
	}
	/* Children oldest first: follow parent links forward from o. */
	snprintf(cur, sizeof(cur), "%s", o->id);
	for (int found = 1; found;) {
		found = 0;
		for (size_t i = 0; i < ch.n; i++) {
			struct backup_info bi;

			if (backup_info_load(ch.list[i].location, ch.list[i].id, &bi) == 0 &&
			    strcmp(bi.parent_id, cur) == 0) {
				kids[nk++] = ch.list[i].id;
				snprintf(cur, sizeof(cur), "%s", ch.list[i].id);
				found = 1;
				break;
			}
		}
	}
	/* The children's files are rewritten: their records wait. */
	rc = 0;
	for (size_t i = 0; i < nk && !rc; i++)
		rc = meta_fresh_backup_set(s->meta, kids[i], NULL);
	if (!rc)
		rc = backup_delete(o->location, o->id, kids, nk);
	for (size_t i = 0; i < nk && (!rc || rc == -ENOENT); i++)
		store_backup_fresh_record(s, kids[i], o->location);
	if (rc && rc != -ENOENT) {
		store_seterr(s, c, "backup %s: cannot delete: %s (nothing was changed)", o->name, evfs_strerror(rc));
		goto out;
	}
	rc = meta_object_delete(s->meta, o->id);
	snprintf(setting, sizeof(setting), "backup.last.%s", o->parent_id);
	if (!rc && meta_setting_get(s->meta, setting, last, sizeof(last)) == 0 && strcmp(last, o->id) == 0) {
		const struct meta_object *base = NULL;

		/* The volume's newest backup is gone: the newest remaining one
		 * (whole again after the merge) is the next incremental's base. */
		for (size_t i = 0; i < ch.n; i++)
			if (strcmp(ch.list[i].id, o->id) != 0 && (!base || ch.list[i].created > base->created ||
								 (ch.list[i].created == base->created &&
								  strcmp(ch.list[i].id, base->id) > 0)))
				base = &ch.list[i];
		rc = meta_setting_set(s->meta, setting, base ? base->id : "");
	}
	if (rc)
		store_seterr(s, c, "backup %s: catalog update failed: %s", o->name, evfs_strerror(rc));
	else
		store_lineage_gc(s, o->lineage);
out:
	free(kids);
	free(ch.list);
	return rc;
}

/* =========================== export / replicate ======================== */

/*
 * Create FILE for an export with the caller's file-system rights.  In the
 * mount the command runs as root for whichever user sent it over the
 * control socket; opening FILE as root would let any user have root create
 * a file of their choosing anywhere (/etc/cron.d, ...).  So this thread
 * takes the caller's fsuid, fsgid and groups for the open() only: the raw
 * setgroups syscall and setfsuid/setfsgid change the calling thread alone,
 * and a non-zero fsuid drops CAP_DAC_OVERRIDE.  If the switch is not
 * possible (a mount not run by root), the open is refused.
 */
static int open_as_caller(const struct store_caller *c, const char *file)
{
	uid_t ouid = geteuid();
	gid_t ogid = getegid(), groups[64], saved[64];
	int n = 64, nsaved, fd, err;

	if (c->uid == ouid)
		return open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	nsaved = getgroups(64, saved);
	if (getgrouplist(c->user, c->gid, groups, &n) < 0)
		n = 1, groups[0] = c->gid;       /* more than 64: the primary group only */
	if (nsaved < 0 || syscall(SYS_setgroups, (size_t)n, groups) != 0) {
		errno = EPERM;
		return -1;
	}
	setfsgid(c->gid);
	setfsuid(c->uid);
	if ((uid_t)setfsuid((uid_t)-1) != c->uid || (gid_t)setfsgid((gid_t)-1) != c->gid) {
		fd = -1;
		err = EPERM;
	} else {
		fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		err = errno;
	}
	setfsuid(ouid);
	setfsgid(ogid);
	if (syscall(SYS_setgroups, (size_t)nsaved, saved) != 0)
		abort();   /* never keep running with the caller's groups */
	errno = err;
	return fd;
}

static int image_open_plain(struct store *s, const struct store_caller *c, const char *img, const char *what,
			    struct meta_object *o, struct vol **v)
{
	int rc = store_object_find(s, c, META_IMAGE, img, o);

	if (!rc)
		rc = store_owner_check(s, c, o, "image");
	if (rc)
		return rc;
	if (o->encrypted) {
		store_seterr(s, c, "image %s is encrypted: encrypted images cannot be %s (R9); copy an unencrypted "
			     "image instead", img, what);
		return -EPERM;
	}
	rc = engine_vol_open(v, s->eng, o->lineage, o->id, 0);
	if (!rc && !vol_is_attached(*v) && (rc = vol_attach(*v, NULL)) != 0)
		engine_vol_close(*v);
	if (rc)
		store_seterr(s, c, "image %s: cannot open its map: %s", img, evfs_strerror(rc));
	return rc;
}

int store_image_export(struct store *s, const struct store_caller *c, const char *img, const char *file)
{
	struct meta_object o;
	struct vol *v;
	int fd, rc = image_open_plain(s, c, img, "exported", &o, &v);

	if (rc)
		return rc;
	if (file[0] != '/' && s->mounted) {
		store_seterr(s, c, "image export %s: %s is a relative path and the command runs in the mount; give an "
			     "absolute path", img, file);
		engine_vol_close(v);
		return -EINVAL;
	}
	fd = open_as_caller(c, file);
	if (fd < 0) {
		rc = -errno;
		store_seterr(s, c, "image export %s: cannot create %s: %s", img, file, evfs_strerror(rc));
	} else {
		struct progress pr;

		progress_begin(&pr, c->progress, img, vol_size(v));
		rc = store_copy_data(v, NULL, fd, &pr);
		progress_end(&pr, rc == 0);
		close(fd);
		if (rc) {
			store_seterr(s, c, "image export %s to %s failed: %s", img, file, evfs_strerror(rc));
			(void)unlink(file);
		}
	}
	engine_vol_close(v);
	return rc;
}

int store_image_replicate(struct store *s, const struct store_caller *c, const char *img, const char *to_store)
{
	struct meta_object o, n;
	struct store *d = NULL;
	struct vol *v, *dv = NULL;
	char err[1024];
	int rc = image_open_plain(s, c, img, "replicated to another region", &o, &v);

	if (rc)
		return rc;
	if (c->uid != 0 && c->uid != geteuid()) {
		struct stat st;

		/* The mount (root) opens the other store for the caller: only
		 * into a store the caller owns (R27). */
		if (to_store[0] != '/' || stat(to_store, &st) != 0 || st.st_uid != c->uid) {
			store_seterr(s, c, "image replicate %s: %s is not a store of yours (give the absolute path of a "
				     "store you created); replication goes only into your own stores (R27)", img,
				     to_store);
			engine_vol_close(v);
			return -EACCES;
		}
	}
	rc = store_open(&d, to_store, NULL, NULL, NULL, err, sizeof(err));
	if (rc) {
		store_seterr(s, c, "image replicate %s: %s", img, err);
		engine_vol_close(v);
		return rc;
	}
	n = o;
	meta_id_generate(n.id);
	snprintf(n.project, sizeof(n.project), "%s", c->project);
	snprintf(n.source, sizeof(n.source), "replica:%s/%s", s->cfg.region, o.name);
	n.parent_id[0] = 0;
	n.created = (int64_t)time(NULL);
	rc = store_lineage_new(d, c, 0, "", n.lineage, NULL);
	if (!rc)
		rc = engine_map_create(d->eng, n.lineage, n.id, n.size);
	if (!rc)
		rc = store_open_attached(d, n.lineage, n.id, 1, NULL, &dv);
	if (!rc) {
		struct progress pr;

		progress_begin(&pr, c->progress, img, vol_size(v));
		rc = store_copy_data(v, dv, -1, &pr);
		progress_end(&pr, rc == 0);
	}
	engine_vol_close(dv);
	if (!rc)
		rc = meta_object_insert(d->meta, &n);
	if (rc) {
		char why[EVFS_ERR_MAX];

		/* What the destination store said, if anything. */
		snprintf(why, sizeof(why), "%s", evfs_err_msg(c->err));
		store_seterr(s, c, "image replicate %s to %s failed: %s%s%s", img, to_store, evfs_strerror(rc),
			     why[0] ? ": " : "", why);
		if (n.lineage[0] && engine_map_delete(d->eng, n.lineage, n.id) == 0)
			store_lineage_gc(d, n.lineage);
	}
	engine_vol_close(v);
	store_close(d);
	return rc;
}

void store_backup_fresh_record(struct store *s, const char *id, const char *dir)
{
	struct backup_info bi;

	if (backup_info_load(dir, id, &bi) == 0 && meta_fresh_backup_set(s->meta, id, bi.sum) < 0)
		store_logf(s, LOG_WARNING, "backup %s: its freshness record not updated; the next open records it", id);
}

int store_backup_fresh_check(struct store *s, const struct store_caller *c, const struct meta_object *o)
{
	struct backup_info bi;
	uint8_t want[32];
	int rc = backup_info_load(o->location, o->id, &bi);

	if (rc)
		return 0;                    /* the reader reports an unreadable file */
	rc = meta_fresh_backup_get(s->meta, o->id, want);
	if (rc == -ENOENT)
		return 0;                    /* a backup from before the records */
	if (rc == -ENODATA) {                /* a rewrite was cut short: what is there now */
		store_backup_fresh_record(s, o->id, o->location);
		return 0;
	}
	if (rc) {
		store_seterr(s, c, "backup %s: its freshness record is unreadable: %s; run 'evfsctl fsck'", o->name,
			     evfs_strerror(rc));
		return rc;
	}
	if (memcmp(want, bi.sum, sizeof(want)) == 0)
		return 0;
	store_logf(s, LOG_ERR, "backup %s (project %s): rolled back: its file %s/%s.evb is not the one the catalog "
			       "recorded (an older copy, or another backup's file, put back); refused", o->name, o->project,
		   o->location, o->id);
	store_seterr(s, c, "backup %s: its file %s/%s.evb is not the one the catalog recorded (an older copy or another "
			   "backup's file was put back); put the right file back, or delete the backup", o->name,
		     o->location, o->id);
	return -EIO;
}
