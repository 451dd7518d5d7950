// SPDX-License-Identifier: MIT
/*
 * store_ops.c - the volume operations of a cloud block store, with the
 * encryption rules of SPEC section 3 in one place.
 *
 *   empty volume           encrypted as chosen; --encrypt alone: evs/default (R2)
 *   from snapshot          the snapshot's lineage and key, CoW clone (R5)
 *   from image, data       the image's lineage and key, CoW clone (R6)
 *   from image, system     R3's table: a chosen key A that differs from the
 *                          image's gives a new lineage under A (re-encrypt)
 *   from backup            the backup's encryption unless chosen (R4): a
 *                          restore always writes a new lineage, decrypting
 *                          the backup and encrypting under the choice
 *   snapshot, image        same lineage as the volume, CoW clone (R8, R9)
 *   backup                 ciphertext copied with the lineage's wrapped key (R7)
 *   image copy --encrypt   new lineage under the key (R9); an encrypted image
 *                          never becomes unencrypted
 *
 * A "lineage" is the owner of one data key; objects in a lineage share
 * chunks.  Space goes back when the last map referring to a chunk goes;
 * the pool and the catalog row of a lineage go with its last object.
 *
 * Every failure leaves a message naming the object, the rule and the remedy
 * in the caller's error object (c->err).  Operations that write the catalog and the pool do the pool
 * part first and the catalog last, undoing the pool part if the catalog
 * refuses: an interrupted command leaves at most an orphan map that fsck
 * reports, never a catalog entry without data.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "backup.h"
#include "progress.h"

static void object_base(const struct store_caller *c, struct meta_object *o, enum meta_kind kind,
			const char *name)
{
	memset(o, 0, sizeof(*o));
	meta_id_generate(o->id);
	o->kind = kind;
	snprintf(o->name, sizeof(o->name), "%s", name);
	snprintf(o->project, sizeof(o->project), "%s", c->project);
	o->owner_uid = c->uid;
	o->created = (int64_t)time(NULL);
	snprintf(o->vol_type, sizeof(o->vol_type), "data");
}

/* Insert o into the catalog; on failure drop its map (pool side first). */
static int commit_object(struct store *s, const struct store_caller *c, struct meta_object *o)
{
	int rc = meta_object_insert(s->meta, o);

	if (rc) {
		store_seterr(s, c, "%s %s: catalog insert failed: %s", meta_kind_name(o->kind), o->name, evfs_strerror(rc));
		if (o->kind != META_BACKUP && engine_map_delete(s->eng, o->lineage, o->id) < 0)
			store_logf(s, LOG_ERR, "%s %s: orphan map left in pool %s", meta_kind_name(o->kind), o->name, o->lineage);
		store_lineage_gc(s, o->lineage);
	}
	return rc;
}

/* New volume o in a fresh lineage, filled from a source (map or backup). */
static int create_reencrypted(struct store *s, const struct store_caller *c, struct meta_object *o,
			      const struct meta_object *src)
{
	struct kms_dk *sdk = NULL, *ddk = NULL;
	struct vol *sv = NULL, *dv = NULL;
	struct progress pr;
	int rc;

	rc = src->kind == META_BACKUP ? store_backup_fresh_check(s, c, src) : 0;
	if (!rc)
		rc = store_object_unwrap(s, c, src, &sdk);
	if (rc)
		return rc;
	rc = store_lineage_new(s, c, o->encrypted, o->key_id, o->lineage, &ddk);
	if (rc) {
		kms_dk_destroy(sdk);
		return rc;
	}
	rc = engine_map_create(s->eng, o->lineage, o->id, o->size);
	if (!rc)
		rc = store_open_attached(s, o->lineage, o->id, 1, ddk, &dv);
	else
		kms_dk_destroy(ddk);
	if (rc) {
		kms_dk_destroy(sdk);
		goto out;
	}
	progress_begin(&pr, c->progress, o->name, o->size);
	if (src->kind == META_BACKUP) {
		rc = store_copy_backup(src, sdk, dv, &pr);
		kms_dk_destroy(sdk);
	} else {
		rc = store_open_attached(s, src->lineage, src->id, 0, sdk, &sv);
		if (!rc)
			rc = store_copy_data(sv, dv, -1, &pr);
		engine_vol_close(sv);
	}
	progress_end(&pr, rc == 0);
	if (rc && !evfs_err_msg(c->err)[0] && src->kind == META_BACKUP && (rc == -EUCLEAN || rc == -EBADMSG))
		store_seterr(s, c, "volume %s: copying from backup %s failed: %s (the backup file %s/%s.evb is damaged; "
			     "restore it from a copy, or use another backup)", o->name, src->name, evfs_strerror(rc),
			     src->location, src->id);
	else if (rc && !evfs_err_msg(c->err)[0])
		store_seterr(s, c, "volume %s: copying from %s %s failed: %s%s", o->name, meta_kind_name(src->kind),
			     src->name, evfs_strerror(rc), rc == -EBADMSG ? " (source data damaged: run evfsctl fsck)" : "");
out:
	engine_vol_close(dv);
	if (rc) {
		if (engine_map_delete(s->eng, o->lineage, o->id) < 0)
			store_logf(s, LOG_WARNING, "volume %s: partial map not removed", o->name);
		store_lineage_gc(s, o->lineage);
	}
	return rc;
}

/* ============================== volumes ================================ */

int store_volume_create(struct store *s, const struct store_caller *c, const struct store_volume_spec *sp,
			struct meta_object *out)
{
	struct meta_object o, src;
	struct kms_key_info ki;
	int rc = store_name_check(s, c, META_VOLUME, sp->name), clone = 0;

	if (rc)
		return rc;
	if (sp->type && strcmp(sp->type, "system") != 0 && strcmp(sp->type, "data") != 0) {
		store_seterr(s, c, "volume %s: type '%s' is not known: use system or data", sp->name, sp->type);
		return -EINVAL;
	}
	if (sp->type && strcmp(sp->type, "system") == 0 && sp->from_kind != META_IMAGE) {
		store_seterr(s, c, "volume %s: a system volume is made only from an image (R3); give --from-image IMG "
			     "or make a data volume", sp->name);
		return -EINVAL;
	}
	if ((rc = store_size_check(s, c, sp->name, sp->size)) != 0)
		return rc;
	object_base(c, &o, META_VOLUME, sp->name);
	if (sp->type)
		snprintf(o.vol_type, sizeof(o.vol_type), "%s", sp->type);
	if (sp->from_kind == META_ANY) {
		if (sp->size == 0) {
			store_seterr(s, c, "volume %s: a volume needs a size of at least %u bytes; give --size SIZE "
				     "(e.g. 10G)", sp->name, STORE_SECTOR);
			return -EINVAL;
		}
		o.size = sp->size;
		o.encrypted = sp->encrypt == 1;
	} else {
		char op[META_NAME_MAX + 32];

		snprintf(op, sizeof(op), "volume %s from %s", sp->name, meta_kind_name(sp->from_kind));
		rc = store_object_find(s, c, sp->from_kind, sp->from, &src);
		if (!rc)
			rc = store_owner_check(s, c, &src, op);
		if (rc)
			return rc;
		snprintf(o.source, sizeof(o.source), "%s:%s", meta_kind_name(sp->from_kind), src.name);
		snprintf(o.parent_id, sizeof(o.parent_id), "%s", src.id);
		o.size = sp->size > src.size ? sp->size : src.size;
		if (sp->from_kind == META_SNAPSHOT || (sp->from_kind == META_IMAGE && strcmp(o.vol_type, "data") == 0)) {
			/* R5, R6: the source's encryption and key, sharing its chunks. */
			if (sp->encrypt >= 0 && (sp->encrypt != src.encrypted ||
						 (sp->key && src.encrypted))) {
				store_seterr(s, c, "volume %s: a volume made from %s %s keeps its encryption (%s) (%s); "
					     "drop --encrypt/--no-encrypt/--key", sp->name, meta_kind_name(sp->from_kind),
					     src.name, src.encrypted ? "encrypted" : "not encrypted",
					     sp->from_kind == META_SNAPSHOT ? "R5" : "R6");
				return -EINVAL;
			}
			o.encrypted = src.encrypted;
			clone = 1;
		} else if (sp->from_kind == META_IMAGE) {
			/* R3: system volume. */
			o.encrypted = sp->encrypt == 1 || src.encrypted;
			clone = !(sp->encrypt == 1);
		} else {
			/* R4: from a backup, the user's choice or the backup's. */
			o.encrypted = sp->encrypt >= 0 ? sp->encrypt : src.encrypted;
		}
	}
	if (sp->encrypt != 1 && sp->key) {
		store_seterr(s, c, "volume %s: --key needs --encrypt", sp->name);
		return -EINVAL;
	}
	if (o.encrypted && !clone) {
		const char *key = sp->key;

		if (!key && sp->from_kind == META_BACKUP && src.encrypted && sp->encrypt < 0)
			key = src.key_id;           /* R4: keep the backup's key */
		rc = store_key_choose(s, c, key, &ki);
		if (rc)
			return rc;
		snprintf(o.key_id, sizeof(o.key_id), "%s", ki.id);
		if (sp->from_kind == META_IMAGE && src.encrypted && strcmp(ki.id, src.key_id) == 0)
			clone = 1;                  /* key A == key B: share */
	}
	if (clone) {
		if (o.encrypted) {
			snprintf(o.key_id, sizeof(o.key_id), "%s", src.key_id);
			rc = store_key_choose(s, c, src.key_id, &ki);   /* R14: key must be usable */
			if (rc)
				return rc;
		}
		snprintf(o.lineage, sizeof(o.lineage), "%s", src.lineage);
		rc = engine_map_clone(s->eng, src.lineage, src.id, o.id, o.size, 0);
		if (rc) {
			store_seterr(s, c, "volume %s: cloning %s %s failed: %s", sp->name, meta_kind_name(sp->from_kind),
				     src.name, evfs_strerror(rc));
			return rc;
		}
	} else if (sp->from_kind == META_ANY) {
		rc = store_lineage_new(s, c, o.encrypted, o.key_id, o.lineage, NULL);
		if (!rc && (rc = engine_map_create(s->eng, o.lineage, o.id, o.size)) != 0) {
			store_seterr(s, c, "volume %s: cannot create its map: %s", sp->name, evfs_strerror(rc));
			store_lineage_gc(s, o.lineage);
		}
		if (rc)
			return rc;
	} else {
		rc = create_reencrypted(s, c, &o, &src);
		if (rc)
			return rc;
	}
	rc = commit_object(s, c, &o);
	if (!rc && out)
		*out = o;
	return rc;
}

int store_volume_extend(struct store *s, const struct store_caller *c, const char *name, uint64_t size)
{
	struct meta_object o;
	int rc = store_object_find(s, c, META_VOLUME, name, &o);

	if (!rc)
		rc = store_owner_check(s, c, &o, "extend volume");
	return rc ? rc : store_volume_resize(s, c, &o, size);
}

int store_volume_rollback(struct store *s, const struct store_caller *c, const char *name, const char *snap)
{
	struct meta_object o, sn;
	int rc = store_object_find(s, c, META_VOLUME, name, &o);

	if (!rc)
		rc = store_owner_check(s, c, &o, "roll back volume");
	if (!rc)
		rc = store_object_find(s, c, META_SNAPSHOT, snap, &sn);
	if (rc)
		return rc;
	if (strcmp(sn.parent_id, o.id) != 0) {
		store_seterr(s, c, "volume %s: snapshot %s was not taken of it; roll back only to its own snapshots",
			     name, snap);
		return -EINVAL;
	}
	if (store_is_attached(s, o.id)) {
		store_seterr(s, c, "volume %s is attached; detach it first ('evfsctl detach %s'), then roll back", name,
			     name);
		return -EBUSY;
	}
	rc = engine_map_clone(s->eng, o.lineage, sn.id, o.id, o.size, 1);
	if (rc == -EBUSY)
		store_seterr(s, c, "volume %s is open (a file handle in the mount); close it and detach, then retry", name);
	else if (rc)
		store_seterr(s, c, "volume %s: rollback to %s failed: %s", name, snap, evfs_strerror(rc));
	return rc;
}

/* ==================== snapshots, images, deletion ====================== */

int store_snapshot_create(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *vol,
			  const char *name, struct meta_object *out)
{
	struct meta_object v, o;
	int rc = store_object_find(s, c, META_VOLUME, vol, &v);

	if (!rc)
		rc = store_owner_check(s, c, &v, kind == META_SNAPSHOT ? "snapshot of volume" : "image of volume");
	if (!rc)
		rc = store_name_check(s, c, kind, name);
	if (rc)
		return rc;
	object_base(c, &o, kind, name);
	/* R8 / R9: same encryption, key and lineage as the volume. */
	o.size = v.size;
	o.encrypted = v.encrypted;
	snprintf(o.key_id, sizeof(o.key_id), "%s", v.key_id);
	snprintf(o.lineage, sizeof(o.lineage), "%s", v.lineage);
	snprintf(o.source, sizeof(o.source), "volume:%s", v.name);
	snprintf(o.parent_id, sizeof(o.parent_id), "%s", v.id);
	snprintf(o.vol_type, sizeof(o.vol_type), "%s", v.vol_type);
	rc = engine_map_clone(s->eng, v.lineage, v.id, o.id, 0, 0);
	if (rc) {
		store_seterr(s, c, "%s %s of volume %s failed: %s", meta_kind_name(kind), name, vol, evfs_strerror(rc));
		return rc;
	}
	rc = commit_object(s, c, &o);
	if (!rc && out)
		*out = o;
	return rc;
}

int store_image_copy(struct store *s, const struct store_caller *c, const char *img, const char *name, int encrypt,
		     const char *key, struct meta_object *out)
{
	struct meta_object src, o;
	struct kms_key_info ki;
	int rc = store_object_find(s, c, META_IMAGE, img, &src);

	if (!rc)
		rc = store_owner_check(s, c, &src, "image copy of");
	if (!rc)
		rc = store_name_check(s, c, META_IMAGE, name);
	if (rc)
		return rc;
	if (key && encrypt != 1) {
		store_seterr(s, c, "image %s: --key needs --encrypt (a copy keeps the source image's encryption "
			     "unless --encrypt --key KEY is given, R9)", name);
		return -EINVAL;
	}
	if (encrypt == 0 && src.encrypted) {
		store_seterr(s, c, "image %s is encrypted; encrypted images cannot be turned into unencrypted ones (R9)",
			     img);
		return -EPERM;
	}
	object_base(c, &o, META_IMAGE, name);
	o.size = src.size;
	snprintf(o.source, sizeof(o.source), "image:%s", src.name);
	snprintf(o.parent_id, sizeof(o.parent_id), "%s", src.parent_id);
	o.encrypted = src.encrypted || encrypt == 1;
	if (encrypt == 1) {
		rc = store_key_choose(s, c, key, &ki);
		if (rc)
			return rc;
		snprintf(o.key_id, sizeof(o.key_id), "%s", ki.id);
	}
	if (encrypt == 1 && !(src.encrypted && strcmp(ki.id, src.key_id) == 0)) {
		rc = create_reencrypted(s, c, &o, &src);
	} else {
		snprintf(o.key_id, sizeof(o.key_id), "%s", src.key_id);
		snprintf(o.lineage, sizeof(o.lineage), "%s", src.lineage);
		rc = engine_map_clone(s->eng, src.lineage, src.id, o.id, 0, 0);
		if (rc)
			store_seterr(s, c, "image copy %s -> %s failed: %s", img, name, evfs_strerror(rc));
	}
	if (!rc)
		rc = commit_object(s, c, &o);
	if (!rc && out)
		*out = o;
	return rc;
}

/* R35: a volume open in the mount (file handles, a loop device over it)
 * is not detached or deleted unless force, which warns what is lost. */
static int in_use_check(struct store *s, const struct store_caller *c, const struct meta_object *o, const char *op,
			int force, FILE *warn)
{
	char who[1024];

	if (store_file_holders(s, o, who, sizeof(who)) == 0)
		return 0;
	if (!force) {
		store_seterr(s, c, "%s %s refused: the volume is in use: %s; stop using it first (unmount the "
			     "filesystem on it, 'losetup -d' the loop device, end the programs that have it open) or "
			     "use --force: they then get I/O errors and whatever they have not fsynced is lost (R35)",
			     op, o->name, who);
		return -EBUSY;
	}
	if (warn)
		fprintf(warn, "warning: volume %s: %s while in use (%s): its users now get I/O errors and whatever "
			"they had not fsynced is lost (R35)\n", o->name, strcmp(op, "delete") ? "detached" : "deleted",
			who);
	return 0;
}

int store_object_delete(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name,
			int force, FILE *warn)
{
	struct meta_object o;
	int rc = store_object_find(s, c, kind, name, &o);

	if (!rc)
		rc = store_owner_check(s, c, &o, "delete");
	if (rc)
		return rc;
	if (kind == META_VOLUME && store_is_attached(s, o.id)) {
		store_seterr(s, c, "volume %s is attached; detach it first ('evfsctl detach %s')", name, name);
		return -EBUSY;
	}
	if (kind == META_VOLUME && (rc = in_use_check(s, c, &o, "delete", force, warn)) != 0)
		return rc;
	if (kind == META_BACKUP)
		return store_backup_delete(s, c, &o);
	rc = meta_object_delete(s->meta, o.id);
	if (rc) {
		store_seterr(s, c, "%s %s: catalog delete failed: %s", meta_kind_name(kind), name, evfs_strerror(rc));
		return rc;
	}
	rc = engine_map_delete(s->eng, o.lineage, o.id);
	if (rc == -EBUSY) {
		store_logf(s, LOG_WARNING, "%s %s: map still open; its space is freed when the pool is next opened",
			   meta_kind_name(kind), name);
		rc = 0;
	} else if (rc && rc != -ENOENT) {
		store_logf(s, LOG_WARNING, "%s %s: map not removed (%s); 'evfsctl fsck' will report it", meta_kind_name(kind),
			   name, evfs_strerror(rc));
	}
	store_lineage_gc(s, o.lineage);
	return 0;
}

/* ============================ attach / detach ========================== */

/* Volumes are attached by the mount: without one there is nothing to do. */
static int mounted_check(struct store *s, const struct store_caller *c, const char *name)
{
	if (s->mounted)
		return 0;
	store_seterr(s, c, "attach %s: the store is not mounted; mount it first (evfs %s MOUNTPOINT), then attach", name,
		     s->dir);
	return -ENOTCONN;
}

int store_attach(struct store *s, const struct store_caller *c, const char *name)
{
	struct meta_object o;
	int rc = store_object_find(s, c, META_VOLUME, name, &o);

	if (!rc)
		rc = store_owner_check(s, c, &o, "attach volume");
	if (rc)
		return rc;
	if ((rc = mounted_check(s, c, name)) != 0)
		return rc;
	if (store_is_attached(s, o.id))
		return 0;
	/* Claimed for this host in the catalog first: of two hosts attaching
	 * at once, one wins there before either opens the volume. */
	rc = meta_object_set_attached(s->meta, o.id, 1, s->cfg.host_name);
	if (rc == -EBUSY) {
		struct meta_object now;

		store_seterr(s, c, "attach %s refused: the volume was just attached on host %s; a volume is attached "
			     "on one host at a time", name,
			     meta_object_get(s->meta, o.id, &now) == 0 ? now.attached_host : "(another host)");
		return rc;
	}
	if (rc) {
		store_seterr(s, c, "attach %s: the catalog could not record it (%s); the volume stays detached", name,
			     evfs_strerror(rc));
		return rc;
	}
	rc = store_attach_object(s, c, &o);
	if (rc == -EALREADY)
		return 0;
	/* All or nothing: a claim this attach made goes if the attach fails
	 * (R21); a desired state recorded before stays. */
	if (rc && !o.attached && meta_object_set_attached(s->meta, o.id, 0, s->cfg.host_name) < 0)
		store_logf(s, LOG_WARNING, "volume %s: the catalog still records it attached on %s after the attach "
			   "failed; 'evfsctl detach %s' clears it", name, s->cfg.host_name, name);
	if (rc && !evfs_err_msg(c->err)[0])
		store_seterr(s, c, "attach %s: %s", name, evfs_strerror(rc));
	return rc;
}

int store_attach_steal(struct store *s, const struct store_caller *c, const char *name, FILE *warn)
{
	struct meta_object o;
	int rc = store_object_find(s, c, META_VOLUME, name, &o);

	if (rc || store_host_check(s, NULL, &o, "attach") == 0)
		return rc ? rc : store_attach(s, c, name);
	if (c->uid != 0 && c->uid != o.owner_uid)
		return store_owner_check(s, c, &o, "attach volume");
	if ((rc = mounted_check(s, c, name)) != 0)
		return rc;
	rc = engine_pool_fence(s->eng, o.lineage, o.attached_host, 1);
	if (rc == -EBUSY) {
		store_seterr(s, c, "attach %s --steal refused: host %s still renews its lease on the volume's pool (within "
			     "the last %u s): it is alive; detach the volume there, or wait until it stops", name,
			     o.attached_host, s->cfg.host_lease);
		return rc;
	}
	if (rc < 0) {
		store_seterr(s, c, "attach %s --steal: host %s cannot be fenced off the volume's pool: %s; nothing changed",
			     name, o.attached_host, evfs_strerror(rc));
		return rc;
	}
	rc = meta_object_set_attached(s->meta, o.id, 0, NULL);
	if (rc) {
		store_seterr(s, c, "attach %s --steal: the catalog could not clear host %s's attachment: %s", name,
			     o.attached_host, evfs_strerror(rc));
		return rc;
	}
	if (warn)
		fprintf(warn, "warning: volume %s was attached on host %s, whose lease ran out: that host is fenced off "
			"the cluster's pool and the volume is taken here; writes it had not fsynced are lost\n", name,
			o.attached_host);
	return store_attach(s, c, name);
}

int store_detach(struct store *s, const struct store_caller *c, const char *name, int force, FILE *warn)
{
	struct meta_object o;
	struct kms_key_info ki;
	struct kms_caller kc;
	int rc = store_object_find(s, c, META_VOLUME, name, &o), sync_rc, krc, elsewhere;

	elsewhere = !rc && store_host_check(s, NULL, &o, "detach") < 0;
	if (!rc && elsewhere && force) {
		/* The host that attached it is gone: it is fenced off the pool
		 * (if it still held it) and the record changes. */
		rc = engine_pool_fence(s->eng, o.lineage, o.attached_host, 0);
		if (rc < 0) {
			store_seterr(s, c, "detach %s: host %s cannot be fenced off the volume's pool: %s; nothing changed",
				     name, o.attached_host, evfs_strerror(rc));
			return rc;
		}
		if (warn)
			fprintf(warn, "warning: volume %s was attached on host %s: its attachment is cleared here%s; "
				"that host must not be running a mount of this store any more\n", name, o.attached_host,
				rc == 1 ? " and its client fenced off the pool" : "");
		o.attached = 0;
		rc = 0;
	}
	if (!rc)
		rc = store_owner_check(s, c, &o, "detach volume");
	if (rc)
		return rc;
	if ((rc = in_use_check(s, c, &o, "detach", force, warn)) != 0)
		return rc;
	/* Could the volume's project attach it again (R18)?  Asked as that
	 * project, not with a security administrator's view of every key. */
	store_kcaller(c, &kc, o.project);
	if (o.encrypted && (krc = kms_key_usable(s->kms, &kc, o.key_id, &ki)) < 0) {
		const char *state = krc == -ENOKEY && ki.id[0] ? kms_state_name(ki.state)
				    : krc == -EACCES ? "not usable by its project (no grant, or not shared with it)"
						     : "unavailable";
		if (!force) {
			store_seterr(s, c, "detach %s refused: its key %s is %s; once detached the volume cannot be "
				     "re-attached until the key is Enabled again (R18). Restore the key first, or "
				     "use --force to detach anyway", name, o.key_id, state);
			return -EPERM;
		}
		if (warn)
			fprintf(warn, "warning: volume %s detached while its key %s is %s: it cannot be re-attached "
				"until the key is Enabled again (R18)\n", name, o.key_id, state);
	}
	/* The data key is wiped whatever fails after this point: say so. */
	sync_rc = store_detach_object(s, o.id);
	if (sync_rc == -ENOENT)
		sync_rc = 0;  /* not attached in this process: just record it */
	rc = meta_object_set_attached(s->meta, o.id, 0, elsewhere ? NULL : s->cfg.host_name);
	if (rc)
		store_seterr(s, c, "volume %s is detached (its data key is wiped) but the catalog could not record it: %s; "
			     "the next mount re-attaches it unless 'evfsctl detach %s' is run again", name, evfs_strerror(rc),
			     name);
	else if (sync_rc)
		store_seterr(s, c, "volume %s is detached (its data key is wiped) but syncing its last writes failed: %s; "
			     "writes since its last fsync may be lost", name, evfs_strerror(rc = sync_rc));
	return rc;
}
