// SPDX-License-Identifier: MIT
/*
 * store_files.c - the files a mount presents: volumes/, snapshots/,
 * backups/, images/, their attributes and extended attributes.
 *
 * Names: objects of the store's default project appear by name; objects of
 * other projects as "name@project", so names never collide.  Volumes are
 * read-write (0600, owned by their creator) and do I/O only while attached;
 * snapshots, backups and unencrypted images are read-only (0400) and unwrap
 * their data key for the caller when opened; encrypted images show mode 0
 * and refuse to open (R9).  The catalog is read on lookups, never on the
 * read/write path: an open file holds an engine handle (or backup reader).
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "backup.h"

struct store_file {
	struct store *s;
	enum meta_kind kind;
	struct vol *v;
	struct backup_reader *br;
	char id[META_ID_LEN + 1];        /* the object's: who holds what open (R35) */
	struct store_file *next;         /* protected by s->files_lock */
};

static void entry_fill(const struct store *s, const struct meta_object *o, struct store_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->kind = o->kind;
	if (strcmp(o->project, s->cfg.default_project) == 0)
		snprintf(e->name, sizeof(e->name), "%s", o->name);
	else
		snprintf(e->name, sizeof(e->name), "%s@%s", o->name, o->project);
	snprintf(e->id, sizeof(e->id), "%s", o->id);
	e->size = o->size;
	e->uid = o->owner_uid;
	e->created = o->created;
	e->mode = o->kind == META_VOLUME ? 0600 : (o->kind == META_IMAGE && o->encrypted) ? 0 : 0400;
}

struct list_ctx {
	const struct store *s;
	store_entry_cb cb;
	void *ctx;
};

static int list_cb(void *ctx, const struct meta_object *o)
{
	struct list_ctx *l = ctx;
	struct store_entry e;

	entry_fill(l->s, o, &e);
	return l->cb(l->ctx, &e);
}

int store_dir_list(struct store *s, enum meta_kind kind, store_entry_cb cb, void *ctx)
{
	struct list_ctx l = { s, cb, ctx };
	struct meta_filter f = { .kind = kind };
	int rc = meta_object_list(s->meta, &f, list_cb, &l);

	return rc < 0 ? rc : 0;
}

static int lookup_object(struct store *s, enum meta_kind kind, const char *name, struct meta_object *o)
{
	char n[META_NAME_MAX];
	const char *at = strchr(name, '@');
	size_t len = at ? (size_t)(at - name) : strlen(name);

	if (len >= sizeof(n))
		return -ENOENT;
	memcpy(n, name, len);
	n[len] = 0;
	return meta_object_lookup(s->meta, kind, at ? at + 1 : s->cfg.default_project, n, o);
}

int store_entry_lookup(struct store *s, enum meta_kind kind, const char *name, struct store_entry *out)
{
	struct meta_object o;
	int rc = lookup_object(s, kind, name, &o);

	if (!rc)
		entry_fill(s, &o, out);
	return rc;
}

int store_file_open(struct store *s, const struct store_caller *c, enum meta_kind kind, const char *name,
		    int writable, struct store_file **out)
{
	struct store_file *f;
	struct meta_object o;
	struct kms_dk *dk = NULL;
	int rc = lookup_object(s, kind, name, &o);

	if (rc)
		return rc;
	if (writable && kind != META_VOLUME)
		return -EROFS;
	if (kind == META_IMAGE && o.encrypted) {
		store_logf(s, LOG_WARNING, "images/%s: encrypted images cannot be read or exported (R9)", name);
		return -EACCES;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->s = s;
	f->kind = kind;
	snprintf(f->id, sizeof(f->id), "%s", o.id);
	if (kind == META_VOLUME) {
		/* Shares the attached handle; I/O fails with ENOKEY while detached. */
		rc = engine_vol_open(&f->v, s->eng, o.lineage, o.id, 1);
	} else {
		/* FUSE worker threads get here: the reason is this call's own. */
		struct evfs_err why = { "" };
		struct store_caller wc = *c;

		wc.err = &why;
		rc = kind == META_BACKUP ? store_backup_fresh_check(s, &wc, &o) : 0;
		if (!rc)
			rc = store_object_unwrap(s, &wc, &o, &dk);
		if (rc) {
			store_logf(s, LOG_WARNING, "%ss/%s: cannot open: %s", meta_kind_name(kind), name, why.msg);
			evfs_err_set(c->err, "%s", why.msg);
		} else if (kind == META_BACKUP) {
			rc = backup_reader_open(&f->br, o.location, o.id, dk);
			kms_dk_destroy(dk);
		} else {
			rc = engine_vol_open(&f->v, s->eng, o.lineage, o.id, 0);
			if (!rc && vol_is_attached(f->v))
				kms_dk_destroy(dk);     /* another open holds the key */
			else if (!rc && vol_attach(f->v, dk) < 0)
				kms_dk_destroy(dk);
		}
	}
	if (rc) {
		free(f);
		return rc;
	}
	pthread_mutex_lock(&s->files_lock);
	f->next = s->files;
	s->files = f;
	pthread_mutex_unlock(&s->files_lock);
	*out = f;
	return 0;
}

/* Loop devices whose backing file is path, appended to who as ", /dev/loopN". */
static void loop_devices(const char *path, char *who, size_t n)
{
	char bf[PATH_MAX + 32], back[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir("/sys/block");

	if (!d)
		return;
	while ((de = readdir(d))) {
		FILE *fp;

		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(bf, sizeof(bf), "/sys/block/%s/loop/backing_file", de->d_name);
		fp = fopen(bf, "re");
		if (!fp)
			continue;
		if (fgets(back, sizeof(back), fp)) {
			back[strcspn(back, "\n")] = '\0';
			if (strcmp(back, path) == 0) {
				size_t l = strlen(who);

				snprintf(who + l, n - l, ", loop device /dev/%s", de->d_name);
			}
		}
		fclose(fp);
	}
	closedir(d);
}

int store_file_holders(struct store *s, const struct meta_object *o, char *who, size_t n)
{
	struct store_entry e;
	char path[PATH_MAX];
	int count = 0;

	pthread_mutex_lock(&s->files_lock);
	for (struct store_file *f = s->files; f; f = f->next)
		count += strcmp(f->id, o->id) == 0;
	pthread_mutex_unlock(&s->files_lock);
	who[0] = '\0';
	if (!count)
		return 0;
	snprintf(who, n, "%d open file handle%s in the mount at %s", count, count == 1 ? "" : "s",
		 s->mountpoint ? s->mountpoint : "?");
	if (s->mountpoint) {
		entry_fill(s, o, &e);
		snprintf(path, sizeof(path), "%s/%ss/%s", s->mountpoint, meta_kind_name(o->kind), e.name);
		loop_devices(path, who, n);
	}
	return count;
}

void store_file_close(struct store_file *f)
{
	struct store *s;

	if (!f)
		return;
	s = f->s;
	pthread_mutex_lock(&s->files_lock);
	for (struct store_file **pp = &s->files; *pp; pp = &(*pp)->next) {
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	}
	pthread_mutex_unlock(&s->files_lock);
	engine_vol_close(f->v);
	backup_reader_close(f->br);
	free(f);
}

ssize_t store_file_read(struct store_file *f, void *buf, size_t len, uint64_t off)
{
	return f->br ? backup_reader_read(f->br, buf, len, off) : vol_read(f->v, buf, len, off);
}

ssize_t store_file_write(struct store_file *f, const void *buf, size_t len, uint64_t off)
{
	return f->v ? vol_write(f->v, buf, len, off) : -EROFS;
}

int store_file_discard(struct store_file *f, uint64_t off, uint64_t len)
{
	return f->v ? vol_discard(f->v, off, len) : -EROFS;
}

int store_file_sync(struct store_file *f)
{
	return f->v ? vol_sync(f->v) : 0;
}

int64_t store_file_seek(struct store_file *f, uint64_t off, int whence)
{
	if (f->v)
		return vol_seek(f->v, off, whence);
	/* Backups: report everything as data. */
	if (off >= backup_reader_size(f->br))
		return -ENXIO;
	return whence == SEEK_DATA ? (int64_t)off : (int64_t)backup_reader_size(f->br);
}

uint64_t store_file_size(struct store_file *f)
{
	return f->v ? vol_size(f->v) : backup_reader_size(f->br);
}

int store_volume_resize(struct store *s, const struct store_caller *c, const struct meta_object *o, uint64_t size)
{
	struct vol *v;
	int rc;

	if ((rc = store_size_check(s, c, o->name, size)) != 0)
		return rc;
	if (size < o->size) {
		store_seterr(s, c, "volume %s: %llu bytes is smaller than its size %llu; volumes can be extended, "
			     "never shrunk (R23)", o->name, (unsigned long long)size, (unsigned long long)o->size);
		return -EINVAL;
	}
	rc = engine_vol_open(&v, s->eng, o->lineage, o->id, 1);
	if (rc) {
		store_seterr(s, c, "volume %s: cannot open its map: %s", o->name, evfs_strerror(rc));
		return rc;
	}
	rc = vol_extend(v, size);
	engine_vol_close(v);
	if (!rc)
		rc = meta_object_set_size(s->meta, o->id, size);
	if (rc)
		store_seterr(s, c, "volume %s: extend failed: %s", o->name, evfs_strerror(rc));
	return rc;
}

int store_file_truncate(struct store *s, const struct store_caller *c, const char *name, uint64_t size)
{
	struct meta_object o;
	int rc = lookup_object(s, META_VOLUME, name, &o);

	if (rc)
		return rc;
	if (c->uid != 0 && c->uid != o.owner_uid)
		return -EACCES;
	if (size == o.size)
		return 0;
	{
		struct evfs_err why = { "" };
		struct store_caller wc = *c;

		wc.err = &why;
		rc = store_volume_resize(s, &wc, &o, size);
		if (rc) {
			store_logf(s, LOG_WARNING, "volumes/%s: %s", name, why.msg);
			evfs_err_set(c->err, "%s", why.msg);
		}
	}
	return rc;
}

/* =============================== xattrs ================================ */

static const char *const xattr_names[] = {
	"user.evfs.encrypted", "user.evfs.key", "user.evfs.key_state", "user.evfs.source", "user.evfs.attached",
};

int store_xattr_list(char *out, size_t outsz)
{
	size_t total = 0;

	for (size_t i = 0; i < sizeof(xattr_names) / sizeof(xattr_names[0]); i++)
		total += strlen(xattr_names[i]) + 1;
	if (outsz == 0)
		return (int)total;
	if (outsz < total)
		return -ERANGE;
	for (size_t i = 0, at = 0; i < sizeof(xattr_names) / sizeof(xattr_names[0]); i++) {
		memcpy(out + at, xattr_names[i], strlen(xattr_names[i]) + 1);
		at += strlen(xattr_names[i]) + 1;
	}
	return (int)total;
}

const char *store_key_state_of(struct store *s, const char *project, const char *key_id)
{
	struct kms_key_info ki;
	struct kms_caller kc = { .uid = 0, .user = "root", .project = project };

	if (!key_id[0])
		return "";
	if (kms_key_lookup(s->kms, &kc, key_id, &ki) < 0)
		return "Unknown";
	return kms_state_name(ki.state);
}

int store_xattr_get(struct store *s, enum meta_kind kind, const char *name, const char *attr, char *out,
		    size_t outsz)
{
	struct meta_object o;
	char val[256];
	size_t len;
	int rc = lookup_object(s, kind, name, &o);

	if (rc)
		return rc;
	if (strcmp(attr, "user.evfs.encrypted") == 0)
		snprintf(val, sizeof(val), "%d", o.encrypted);
	else if (strcmp(attr, "user.evfs.key") == 0)
		snprintf(val, sizeof(val), "%s", o.key_id);
	else if (strcmp(attr, "user.evfs.key_state") == 0)
		snprintf(val, sizeof(val), "%s", store_key_state_of(s, o.project, o.key_id));
	else if (strcmp(attr, "user.evfs.source") == 0)
		snprintf(val, sizeof(val), "%s", o.source);
	else if (strcmp(attr, "user.evfs.attached") == 0)
		snprintf(val, sizeof(val), "%d", kind == META_VOLUME && store_is_attached(s, o.id));
	else
		return -ENODATA;
	len = strlen(val);
	if (outsz == 0)
		return (int)len;
	if (outsz < len)
		return -ERANGE;
	memcpy(out, val, len);
	return (int)len;
}
