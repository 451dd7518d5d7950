// SPDX-License-Identifier: MIT
/*
 * config.c - load and store the store's configuration, STORE/evfs.ini.
 *
 * inih does the INI syntax; this file is the one place that turns inih's
 * results into -EINVAL plus a one-line message "<file>:<line>: [section]
 * key = value: <what is wrong>; <what to do>".  Each key is described once,
 * in keys[] (section, name, kind, field, remedy, the comment config_store
 * writes above it); config_store checks what it writes with the load rules,
 * so a file we write always loads back.
 *
 * inih runs through ini_parse_stream with our own line reader, which counts
 * lines (inih's handler gets none), strips indentation (so no multi-line
 * continuation: evfs has no multi-line values), checks each [section] header
 * (inih reports only keys, so an empty unknown section would pass), and lets
 * over-long lines (a deep key_path) past inih's fixed line buffer by handing
 * it "key =" plus a marker and keeping the value aside.  The first error
 * wins; if inih returns an earlier line than ours, that line did not parse.
 * Values are trimmed; ';' at their start or after a blank starts a comment,
 * as with inih's inline comments (stripped here too, so the result does not
 * depend on how inih was built).  Names are case-sensitive.
 *
 * Not here: secrets.  The file names the root key *file* (or, with backend
 * = pkcs11, the PKCS#11 module, token, key label and the *file* holding the
 * PIN); kms/ reads them.
 * inih's and our line buffers are never wiped, acceptable only because no
 * secret passes through them.  No global state is touched (inih's runtime
 * options are left alone), so config_load is thread-safe.  Nothing prints.
 */
#include "config.h"
#include "chunk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#define SHOW_MAX 60            /* characters of a value or line quoted in a message */
#define LONG_MARK "\x01"       /* stands in for the value of an over-long line */
#define BLANKS ", \t"          /* separate security_admins */
#define FIELD(m) offsetof(struct evfs_config, m), sizeof(((struct evfs_config *)0)->m)
#define SECTIONS_TEXT "[store], [rados], [catalog], [kms], [host], [defaults] or [mount]"
#define NSECTIONS 7

_Static_assert(CHUNK_MIN_BYTES == 4096 && CHUNK_MAX_BYTES == 65536, "update the chunk_size messages");

/* ---- the keys ----------------------------------------------------------- */

enum kind {
	NAME, USERS,    /* 1..63 of [A-Za-z0-9._-]; such names separated by commas/blanks */
	PATH, ABSPATH,  /* a relative PATH is joined to the store directory */
	WORD, CHUNK,    /* one of `words` (any case); power of two 4096..65536 */
	LABEL,          /* 1..size-1 characters, no control characters (PKCS#11 labels) */
	BOOL,           /* yes/no true/false on/off 1/0, any case */
	CONNINFO,       /* a libpq connection string without a password */
	SCHEMA,         /* 1..40 of [a-z0-9_], not starting with a digit */
	SECONDS,        /* a whole number of seconds, 3..3600 */
};
enum { K_REGION, K_BACKUP_DIR, K_CHUNK_SIZE, K_POOL_FORMAT, K_STORE_BACKEND, K_RADOS_CONF, K_RADOS_POOL, K_RADOS_ID, K_RADOS_NS,
       K_CATALOG_BACKEND, K_PG_CONNINFO, K_PG_SCHEMA, K_BACKEND, K_KEY_SOURCE, K_KEY_PATH, K_P11_MODULE, K_P11_TOKEN,
       K_P11_PIN_FILE, K_P11_KEY, K_ADMINS, K_KMS_STORE, K_HOST_NAME, K_HOST_LEASE, K_PROJECT, K_ALLOW_OTHER, K_LOG_FILE, K_METRICS_FILE, NKEYS };
#define IS_P11_KEY(k) ((k) >= K_P11_MODULE && (k) <= K_P11_KEY)
#define IS_RADOS_KEY(k) ((k) >= K_RADOS_CONF && (k) <= K_RADOS_NS)
#define IS_PG_KEY(k) ((k) == K_PG_CONNINFO || (k) == K_PG_SCHEMA)

static const struct key_def {
	const char *section, *name;
	enum kind kind;
	size_t off, size;           /* the field in struct evfs_config */
	int optional;               /* an empty value means "not set" */
	const char *words[3];
	const char *fix, *help;     /* remedy in messages; comment config_store writes */
} keys[NKEYS] = {
	[K_REGION] = { "store", "region", NAME, FIELD(region), 0, { 0 }, "use e.g. region-1 (the default)",
		"; Region (store) name: 1-63 characters from A-Z a-z 0-9 . _ -\n" },
	[K_BACKUP_DIR] = { "store", "backup_dir", PATH, FIELD(backup_dir), 0, { 0 },
		"use backups (the default, inside the store) or an absolute path on another disk",
		"; Directory for backups, relative to the store unless absolute (another disk).\n" },
	[K_CHUNK_SIZE] = { "store", "chunk_size", CHUNK, FIELD(chunk_size), 0, { 0 }, "use 4096 (the default)",
		"; Chunk size in bytes of new volumes: a power of two, 4096 to 65536.\n" },
	[K_POOL_FORMAT] = { "store", "pool_format", WORD, FIELD(pool_format), 0, { "2", "1" },
		"use 2 (the default: copy-on-write map trees) or 1 (map files, for stores shared with older evfs)",
		"; On-disk format of new pools (lineages): 2 (copy-on-write map trees:\n"
		"; O(1) snapshots, authenticated maps) or 1 (one map file per volume).\n"
		"; Existing pools keep theirs; evfsctl upgrade converts them.\n" },
	[K_STORE_BACKEND] = { "store", "backend", WORD, FIELD(store_backend), 0, { "local", "rados" },
		"use local (the default: the pools in STORE/pools) or rados (the pools in a Ceph RADOS pool)",
		"; Where the chunk pools live: local (STORE/pools) or rados (objects in\n"
		"; the Ceph RADOS pool of [rados]).\n" },
	[K_RADOS_CONF] = { "rados", "conf", ABSPATH, FIELD(rados_conf), 1, { 0 },
		"give the absolute path of the cluster's ceph.conf, e.g. /etc/ceph/ceph.conf",
		"; backend = rados: absolute path of the cluster's ceph.conf.\n" },
	[K_RADOS_POOL] = { "rados", "pool", NAME, FIELD(rados_pool), 1, { 0 },
		"give the name of an existing RADOS pool (ceph osd pool create NAME)",
		"; backend = rados: the RADOS pool that holds the chunk pools' objects.\n" },
	[K_RADOS_ID] = { "rados", "id", NAME, FIELD(rados_id), 1, { 0 },
		"give the client name without \"client.\" (empty: admin)",
		"; backend = rados: the cephx client name without \"client.\"; empty: admin.\n" },
	[K_RADOS_NS] = { "rados", "namespace", NAME, FIELD(rados_namespace), 1, { 0 },
		"give the store's namespace as evfsctl init wrote it (every host of the store the same)",
		"; backend = rados: the store's RADOS namespace (several stores may share\n"
		"; a pool); every host of the store must name the same one.\n" },
	[K_CATALOG_BACKEND] = { "catalog", "backend", WORD, FIELD(catalog_backend), 0, { "sqlite", "postgresql" },
		"use sqlite (the default: STORE/catalog.db, one host) or postgresql (shared by every host)",
		"; Where the catalog lives: sqlite (STORE/catalog.db, this host only) or\n"
		"; postgresql (schema <schema>_catalog of the database in conninfo, shared\n"
		"; by every host of the store).\n" },
	[K_PG_CONNINFO] = { "catalog", "conninfo", CONNINFO, FIELD(pg_conninfo), 1, { 0 },
		"give a libpq connection string such as host=db1 dbname=evfs user=evfs, with the password in "
		"a passfile (passfile=PATH or ~/.pgpass), never here",
		"; PostgreSQL (catalog or key store): a libpq connection string, e.g.\n"
		"; host=db1 port=5432 dbname=evfs user=evfs passfile=/etc/evfs/pgpass\n"
		"; (no password here: use a passfile or ~/.pgpass).\n" },
	[K_PG_SCHEMA] = { "catalog", "schema", SCHEMA, FIELD(pg_schema), 1, { 0 },
		"give the store's schema name as evfsctl init wrote it (every host of the store the same)",
		"; PostgreSQL: the store's name in the database; the catalog is schema\n"
		"; <schema>_catalog, the key store <schema>_kms.\n" },
	[K_BACKEND] = { "kms", "backend", WORD, FIELD(kms_backend), 0, { "local", "pkcs11" },
		"use local (root key from a key file or a passphrase) or pkcs11 (root key in a PKCS#11 token)",
		"; Key management: local (root key from a key file or a passphrase) or\n"
		"; pkcs11 (root key inside a PKCS#11 token; it never leaves the token).\n" },
	[K_KEY_SOURCE] = { "kms", "key_source", WORD, FIELD(key_source), 1, { "keyfile", "passphrase" },
		"use keyfile or passphrase, as evfsctl init writes it",
		"; Root key: keyfile (a random 256-bit key in key_path) or passphrase\n"
		"; (Argon2id over the passphrase in key_path).\n" },
	[K_KEY_PATH] = { "kms", "key_path", ABSPATH, FIELD(key_path), 1, { 0 },
		"give the absolute path of the key file or passphrase file",
		"; Absolute path of the key file or passphrase file.  Keep it outside\n"
		"; the store: whoever can read it can decrypt every volume.\n" },
	[K_P11_MODULE] = { "kms", "pkcs11_module", ABSPATH, FIELD(pkcs11_module), 1, { 0 },
		"give the absolute path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so",
		"; backend = pkcs11: absolute path of the PKCS#11 module (.so).\n" },
	[K_P11_TOKEN] = { "kms", "pkcs11_token", LABEL, FIELD(pkcs11_token), 1, { 0 },
		"give the token's label (at most 32 characters)",
		"; backend = pkcs11: label of the token holding the root key.\n" },
	[K_P11_PIN_FILE] = { "kms", "pkcs11_pin_file", ABSPATH, FIELD(pkcs11_pin_file), 1, { 0 },
		"give the absolute path of the file holding the token's user PIN (never the PIN itself)",
		"; backend = pkcs11: absolute path of the file holding the user PIN\n"
		"; (the PIN is never written here).\n" },
	[K_P11_KEY] = { "kms", "pkcs11_key", LABEL, FIELD(pkcs11_key), 1, { 0 },
		"give the label of the key object (at most 63 characters; empty: evfs-root)",
		"; backend = pkcs11: label of the AES-256 key object; empty: evfs-root.\n" },
	[K_ADMINS] = { "kms", "security_admins", USERS, FIELD(security_admins), 0, { 0 },
		"use user names separated by commas or spaces, e.g. root, alice",
		"; Users who may run evfsctl kms grant / revoke (comma or space separated).\n" },
	[K_KMS_STORE] = { "kms", "store", WORD, FIELD(kms_store), 0, { "sqlite", "postgresql" },
		"use sqlite (the default: STORE/kms.db) or postgresql (schema <schema>_kms of [catalog] conninfo)",
		"; Where the key store lives: sqlite (STORE/kms.db) or postgresql (schema\n"
		"; <schema>_kms of the database in [catalog] conninfo).\n" },
	[K_HOST_NAME] = { "host", "name", NAME, FIELD(host_name), 1, { 0 },
		"use this host's name (1 to 63 characters from A-Z a-z 0-9 . _ -), different on every host",
		"; This host's name among the hosts of the store (attachments and\n"
		"; messages name it); every host needs its own.  Empty: the hostname.\n" },
	[K_HOST_LEASE] = { "host", "lease", SECONDS, FIELD(host_lease), 0, { 0 },
		"use 15 (the default): seconds, 3 to 3600",
		"; Seconds a pool in RADOS stays this host's after its mount last renewed\n"
		"; its lock (every third of it); then another host may take its volumes\n"
		"; (evfsctl attach --steal), fencing this one off the cluster first.\n" },
	[K_PROJECT] = { "defaults", "project", NAME, FIELD(default_project), 0, { 0 },
		"use e.g. default (the default)", "; Project used when --project is not given.\n" },
	[K_ALLOW_OTHER] = { "mount", "allow_other", BOOL, FIELD(allow_other), 0, { 0 },
		"use yes or no (or true/false, on/off, 1/0)",
		"; Let other users reach the mount (yes/no); permissions are then enforced.\n"
		"; Non-root mounts need user_allow_other in /etc/fuse.conf.\n" },
	[K_LOG_FILE] = { "mount", "log_file", PATH, FIELD(log_file), 1, { 0 },
		"give a file name, or nothing to log to stderr/syslog",
		"; Log file of the mount (relative to the store unless absolute);\n"
		"; empty: syslog.  In the foreground (-f) the mount logs to stderr too.\n" },
	[K_METRICS_FILE] = { "mount", "metrics_file", PATH, FIELD(metrics_file), 1, { 0 },
		"give a file name, or nothing for no metrics file",
		"; File the mount rewrites every few seconds with its counters in the\n"
		"; Prometheus text format (node_exporter's textfile collector reads it);\n"
		"; relative to the store unless absolute; empty: none.\n" },
};
static const char *const sections[NSECTIONS] = { "store", "rados", "catalog", "kms", "host", "defaults", "mount" };

static int name_ok(const char *v, size_t len, size_t max)
{
	for (size_t i = 0; i < len; i++)
		if (!v[i] || !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", v[i]))
			return 0;
	return len > 0 && len <= max;
}

/* Store value v of key k into c; base: the absolute store directory.
 * Returns 0, or -EINVAL with "<what is wrong>; <what to do>" in why. */
static int parse_value(struct evfs_config *c, int k, const char *v, const char *base, char *why, size_t n)
{
	static const char *const bools[] = { "no", "yes", "false", "true", "off", "on", "0", "1" };
	const struct key_def *d = &keys[k];
	const char *wrong = "unknown value", *p;
	char *field = (char *)c + d->off, *end;
	size_t len = strlen(v);
	unsigned long num;
	int w;

	if (!len && d->optional)
		return field[0] = '\0', 0;
	for (p = v; *p; p++) /* a stray CR from a DOS editor, an escape sequence, ... */
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
			snprintf(why, n, "contains the control character 0x%02x; remove it (%s)", (unsigned char)*p,
				 d->fix);
			return -EINVAL;
		}
	switch (d->kind) {
	case NAME:
		if (name_ok(v, len, d->size - 1))
			goto copy;
		wrong = "must be 1 to 63 characters from A-Z a-z 0-9 . _ -";
		break;
	case USERS:
		for (w = 0, p = v + strspn(v, BLANKS); *p && name_ok(p, strcspn(p, BLANKS), d->size - 1); w++) {
			p += strcspn(p, BLANKS);
			p += strspn(p, BLANKS);
		}
		if (w && !*p)
			goto copy;
		wrong = "not a list of user names (A-Z a-z 0-9 . _ -)";
		break;
	case PATH:
		if (len && v[0] != '/') {
			w = snprintf(field, d->size, "%s%s%s", base, strcmp(base, "/") ? "/" : "", v);
			if (w < 0 || (size_t)w >= d->size)
				goto too_long;
			return 0;
		}
		/* fall through */
	case ABSPATH:
		if (v[0] == '/')
			goto copy;
		wrong = len ? "not an absolute path" : "empty";
		break;
	case WORD:
		for (w = 0; w < 3 && d->words[w]; w++)
			if (!strcasecmp(v, d->words[w])) {
				v = d->words[w];
				goto copy;
			}
		break;
	case LABEL:
		if (len < d->size)
			goto copy;
		goto too_long;
	case CHUNK:
		errno = 0;
		num = strtoul(v, &end, 10);
		if (v[0] < '0' || v[0] > '9' || *end || errno)
			wrong = "not a number (a power of two between 4096 and 65536 is needed)";
		else if (num < CHUNK_MIN_BYTES || num > CHUNK_MAX_BYTES || (num & (num - 1)))
			wrong = "not a power of two between 4096 and 65536";
		else
			return c->chunk_size = (uint32_t)num, 0;
		break;
	case SECONDS:
		errno = 0;
		num = strtoul(v, &end, 10);
		if (v[0] < '0' || v[0] > '9' || *end || errno)
			wrong = "not a number of seconds";
		else if (num < 3 || num > 3600)
			wrong = "not between 3 and 3600 seconds";
		else
			return c->host_lease = (uint32_t)num, 0;
		break;
	case CONNINFO:
		for (p = v; *p; p++)
			if (!strncasecmp(p, "password", 8) && (p == v || p[-1] == ' ' || p[-1] == '?' || p[-1] == '&'))
				break;
		if (!*p)
			goto copy;
		wrong = "holds a password (evfs.ini holds no secrets)";
		break;
	case SCHEMA:
		if (len && len <= 40 && !(v[0] >= '0' && v[0] <= '9') &&
		    strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") == len)
			goto copy;
		wrong = "must be 1 to 40 characters from a-z 0-9 _, not starting with a digit";
		break;
	case BOOL:
		for (w = 0; w < 8; w++)
			if (!strcasecmp(v, bools[w]))
				return c->allow_other = w & 1, 0;
		wrong = "not a boolean";
		break;
	}
	snprintf(why, n, "%s; %s", wrong, d->fix);
	return -EINVAL;
copy:
	if (len < d->size)
		return memcpy(field, v, len + 1), 0;
too_long:
	snprintf(why, n, "longer than %zu characters%s; use a shorter value", d->size - 1,
		 d->kind == PATH ? " once made absolute" : "");
	return -EINVAL;
}

/* Cut an inline comment (';' at the start or after a blank), trim. */
static char *clean(char *v)
{
	for (char *p = v; *p; p++)
		if (*p == ';' && (p == v || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	v += strspn(v, " \t");
	for (size_t len = strlen(v); len && strchr(" \t\r\n", v[len - 1]);)
		v[--len] = '\0';
	return v;
}

/* ---- loading ------------------------------------------------------------ */

struct load {
	struct evfs_config *c;
	const char *path;
	char base[PATH_MAX];        /* absolute directory relative paths start from */
	FILE *f;
	char *raw, *long_value;     /* getline buffer; value part of line long_line */
	size_t rawcap;
	unsigned lineno, long_line; /* lineno: the line inih is working on */
	unsigned seen[NKEYS];       /* line each key was set on, 0 if not */
	int err;                    /* negative errno of the first error, 0 if none */
	unsigned err_line;          /* its line, 0 if it has none (cannot read) */
	char *msg;
	size_t msgsz;
};

/* Record the first error: "<file>:<line>: ..." (line 0: "<file>: ...").
 * Returns 0, the handler's failure value. */
__attribute__((format(printf, 4, 5))) static int fail(struct load *l, int err, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (l->err)
		return 0;
	l->err = err;
	l->err_line = line;
	if (!l->msg || !l->msgsz)
		return 0;
	k = line ? snprintf(l->msg, l->msgsz, "%s:%u: ", l->path, line) : snprintf(l->msg, l->msgsz, "%s: ", l->path);
	if (k >= 0 && (size_t)k < l->msgsz) {
		va_start(ap, fmt);
		vsnprintf(l->msg + k, l->msgsz - (size_t)k, fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* At most max bytes of v for a one-line message on a terminal: printable
 * ASCII as it is, any other byte as \xHH, "..." when cut. */
static void shown_text(char *out, size_t outsz, const char *v, size_t vlen, size_t max)
{
	size_t o = 0, i;

	for (i = 0; i < vlen && i < max && o + 5 < outsz; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch >= 0x20 && ch < 0x7f)
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", ch);
	}
	if (i < vlen && o + 4 <= outsz)
		memcpy(out + o, "...", 3), o += 3;
	out[o] = '\0';
}

/* fgets-style reader for ini_parse_stream (see the top of the file). */
static char *read_line(char *str, int num, void *stream)
{
	struct load *l = stream;
	size_t i, room = num > 8 ? (size_t)num - 1 : 0; /* what fgets would read */

	errno = 0;
	ssize_t got = getline(&l->raw, &l->rawcap, l->f);
	if (got < 0 || !room) {
		if (got >= 0 || !feof(l->f))
			fail(l, errno ? -errno : -EIO, 0, "cannot read the file; check the disk and its permissions");
		return NULL;
	}
	if (memchr(l->raw, '\0', (size_t)got)) {   /* C strings would end the line there */
		fail(l, -EINVAL, l->lineno + 1, "contains a NUL byte (is this a text file?); remove it");
		return NULL;
	}
	char *s = l->raw + (++l->lineno == 1 && !strncmp(l->raw, "\xEF\xBB\xBF", 3) ? 3 : 0);
	s += strspn(s, " \t");
	const char *end = s[0] == '[' ? strchr(s, ']') : NULL;
	size_t len = strlen(s), sep = strcspn(s, "=:"), name = end ? (size_t)(end - s - 1) : 0;
	for (i = 0; end && i < NSECTIONS && (strlen(sections[i]) != name || memcmp(sections[i], s + 1, name)); i++)
		;
	if (end && i == NSECTIONS) {
		char shown[4 * SHOW_MAX + 8];

		shown_text(shown, sizeof shown, s + 1, name, SHOW_MAX);
		fail(l, -EINVAL, l->lineno, "[%s]: unknown section; valid sections are " SECTIONS_TEXT " (fix or remove it)",
		     shown);
	}
	if (len <= room) {
		memcpy(str, s, len + 1);
	} else if (s[sep] && sep + 3 <= room) {
		free(l->long_value);
		if (!(l->long_value = strdup(s + sep + 1)))
			return fail(l, -ENOMEM, 0, "out of memory"), NULL;
		l->long_line = l->lineno;
		memcpy(str, s, sep + 1);
		memcpy(str + sep + 1, LONG_MARK "\n", 3);
	} else { /* no key to keep: cut it; inih or the handler reports it */
		memcpy(str, s, room - 1);
		memcpy(str + room - 1, "\n", 2);
	}
	return str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	struct load *l = user;
	unsigned line = l->lineno;
	char shown[4 * SHOW_MAX + 8], why[256], list[128] = "";
	int k, ok = 0;

	if (!name)
		return 1; /* section start, if inih was built to report it */
	if (!value)
		return fail(l, -EINVAL, line, "%s: no value; write it as %s = value", name, name);
	char *dup = strdup(l->long_line == line && !strcmp(value, LONG_MARK) ? l->long_value : value);
	if (!dup)
		return fail(l, -ENOMEM, 0, "out of memory");
	const char *v = clean(dup);
	shown_text(shown, sizeof shown, v, strlen(v), SHOW_MAX);
	char nm[4 * SHOW_MAX + 8], sec[4 * SHOW_MAX + 8];
	shown_text(nm, sizeof nm, name, strlen(name), SHOW_MAX);
	shown_text(sec, sizeof sec, section, strlen(section), SHOW_MAX);
	for (k = 0; k < NKEYS && (strcmp(keys[k].section, section) || strcmp(keys[k].name, name)); k++)
		if (!strcmp(keys[k].section, section))
			snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", *list ? ", " : "", keys[k].name);
	if (!*section)
		fail(l, -EINVAL, line, "%s = %s: key outside any section; put it under " SECTIONS_TEXT, nm, shown);
	else if (k == NKEYS) /* (an unknown section was reported at its header) */
		fail(l, -EINVAL, line, "[%s] %s = %s: unknown key; valid keys in [%s] are %s (fix or remove the line)",
		     sec, nm, shown, sec, list);
	else if (l->seen[k])
		fail(l, -EINVAL, line, "[%s] %s = %s: duplicate key (first set on line %u); keep only one", section,
		     nm, shown, l->seen[k]);
	else if ((l->seen[k] = line) && parse_value(l->c, k, v, l->base, why, sizeof why) < 0)
		fail(l, -EINVAL, line, "[%s] %s = %s: %s", sec, nm, shown, why);
	else
		ok = 1;
	free(dup);
	return ok;
}

/* [catalog] conninfo and schema: needed when the catalog or the key store
 * is in PostgreSQL, refused otherwise. */
static int pg_check(const struct evfs_config *c, char *why, size_t n, int *key)
{
	int pg = !strcmp(c->catalog_backend, "postgresql") || !strcmp(c->kms_store, "postgresql");

	for (int k = K_PG_CONNINFO; k <= K_PG_SCHEMA; k++) {
		const char *v = (const char *)c + keys[k].off;

		*key = k;
		if (!pg && v[0])
			return snprintf(why, n, "[catalog] %s = %.*s: only meaningful with [catalog] backend = postgresql "
					"or [kms] store = postgresql; remove the line", keys[k].name, SHOW_MAX, v), -EINVAL;
		if (pg && !v[0]) {
			*key = !strcmp(c->catalog_backend, "postgresql") ? K_CATALOG_BACKEND : K_KMS_STORE;
			return snprintf(why, n, "PostgreSQL: [catalog] %s is missing; %s", keys[k].name, keys[k].fix),
			       -EINVAL;
		}
	}
	return 0;
}

/* The same for [store] backend and the [rados] keys. */
static int store_backend_check(const struct evfs_config *c, char *why, size_t n, int *key)
{
	static const int need[] = { K_RADOS_CONF, K_RADOS_POOL, K_RADOS_NS };
	int rados = strcmp(c->store_backend, "rados") == 0;

	for (int k = K_RADOS_CONF; k <= K_RADOS_NS; k++) {
		const char *v = (const char *)c + keys[k].off;

		*key = k;
		if (!rados && v[0])
			return snprintf(why, n, "[rados] %s = %.*s: only meaningful with [store] backend = rados; remove "
					"the line or set backend = rados", keys[k].name, SHOW_MAX, v), -EINVAL;
	}
	*key = K_STORE_BACKEND;
	for (size_t i = 0; rados && i < sizeof need / sizeof need[0]; i++)
		if (!((const char *)c + keys[need[i]].off)[0])
			return snprintf(why, n, "[store] backend = rados: [rados] %s is missing; %s, or run evfsctl "
					"init again", keys[need[i]].name, keys[need[i]].fix), -EINVAL;
	if (pg_check(c, why, n, key) < 0)
		return -EINVAL;
	if (rados && c->pool_format[0] == '1') {
		*key = K_POOL_FORMAT;
		return snprintf(why, n, "[store] pool_format = 1: format 1 pools are local files only; use 2 with "
				"backend = rados"), -EINVAL;
	}
	return 0;
}

/* The keys the backend needs and the ones it refuses: -EINVAL with the
 * message in why and the key to blame in *key. */
static int backend_check(const struct evfs_config *c, char *why, size_t n, int *key)
{
	static const int need[] = { K_P11_MODULE, K_P11_TOKEN, K_P11_PIN_FILE };
	int pkcs11 = strcmp(c->kms_backend, "pkcs11") == 0;

	for (int k = 0; k < NKEYS; k++) {
		const char *v = (const char *)c + keys[k].off;

		*key = k;
		if (pkcs11 && (k == K_KEY_SOURCE || k == K_KEY_PATH) && v[0])
			return snprintf(why, n, "[kms] %s = %.*s: only for backend = local (the root key is in the "
					"PKCS#11 token); remove the line", keys[k].name, SHOW_MAX, v), -EINVAL;
		if (!pkcs11 && IS_P11_KEY(k) && v[0])
			return snprintf(why, n, "[kms] %s = %.*s: only meaningful with backend = pkcs11; remove the "
					"line or set backend = pkcs11", keys[k].name, SHOW_MAX, v), -EINVAL;
	}
	for (size_t i = 0; pkcs11 && i < sizeof need / sizeof need[0]; i++)
		if (!((const char *)c + keys[need[i]].off)[0]) {
			*key = K_BACKEND;
			return snprintf(why, n, "[kms] backend = pkcs11: %s is missing; %s, or run evfsctl init "
					"again", keys[need[i]].name, keys[need[i]].fix), -EINVAL;
		}
	return store_backend_check(c, why, n, key);
}

/* After inih returned r: a line it could not parse, then cross-key checks. */
static void finish(struct load *l, int r)
{
	struct evfs_config *c = l->c;
	char why[512];
	int k = K_BACKEND;

	if (r < 0) {
		fail(l, r == -2 ? -ENOMEM : -EIO, 0, "cannot read the file; check the disk and its permissions");
	} else if (r > 0 && (!l->err || (l->err_line && (unsigned)r < l->err_line))) {
		l->err = 0; /* inih could not parse line r, before any error of ours */
		fail(l, -EINVAL, (unsigned)r, "not a \"key = value\" line, a [section] header or a ; comment; fix "
		     "or remove the line");
	} else if (!l->seen[K_BACKUP_DIR] && parse_value(c, K_BACKUP_DIR, "backups", l->base, why, sizeof why) < 0) {
		fail(l, -EINVAL, 0, "[store] backup_dir = backups (the default): %s", why);
	} else if (backend_check(c, why, sizeof why, &k) < 0) {
		fail(l, -EINVAL, l->seen[k] ? l->seen[k] : l->seen[K_BACKEND], "%s", why);
	} else if (!c->key_source[0] != !c->key_path[0]) {
		int src = c->key_source[0] != 0;
		fail(l, -EINVAL, l->seen[src ? K_KEY_SOURCE : K_KEY_PATH], "[kms] %s = %.*s: %s is missing; add it or "
		     "run evfsctl init again", src ? "key_source" : "key_path", SHOW_MAX, src ? c->key_source :
		     c->key_path, src ? "key_path" : "key_source");
	}
}

/* The absolute directory that relative paths in the file start from. */
static int make_base(char *base, const char *path, const char *store_dir)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int k = store_dir && *store_dir ? snprintf(dir, sizeof dir, "%s", store_dir)
		: slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path)
			: snprintf(dir, sizeof dir, ".");

	if (k < 0 || (size_t)k >= sizeof dir)
		return -ENAMETOOLONG;
	return realpath(dir, base) ? 0 : -errno;
}

/* [host] name left empty: the hostname, if it is a valid name. */
static void host_default(struct evfs_config *c)
{
	char h[256];

	if (gethostname(h, sizeof h) < 0)
		h[0] = '\0';
	h[sizeof h - 1] = '\0';
	if (!name_ok(h, strlen(h), sizeof c->host_name - 1))
		strcpy(h, "localhost");
	memcpy(c->host_name, h, strlen(h) + 1);
}

void config_defaults(struct evfs_config *c)
{
	memset(c, 0, sizeof *c);
	strcpy(c->region, "region-1");
	strcpy(c->backup_dir, "backups");
	c->chunk_size = CHUNK_PLAIN_BYTES;
	c->host_lease = 15;
	strcpy(c->pool_format, "2");
	strcpy(c->store_backend, "local");
	strcpy(c->kms_backend, "local");
	strcpy(c->catalog_backend, "sqlite");
	strcpy(c->kms_store, "sqlite");

	strcpy(c->security_admins, "root");
	strcpy(c->default_project, "default");
}

int config_load(struct evfs_config *c, const char *path, const char *store_dir, char *err, size_t errsz)
{
	struct load l = { .c = c, .path = path, .msg = err, .msgsz = errsz };
	int r;

	if (err && errsz)
		err[0] = '\0';
	config_defaults(c);
	if ((r = make_base(l.base, path, store_dir)) < 0)
		return fail(&l, r, 0, "cannot find the store directory %s; give an existing directory",
			    store_dir ? store_dir : "holding the file"), r;
	if (!(l.f = fopen(path, "re"))) {
		r = -errno;
		return fail(&l, r, 0, "%s", r == -ENOENT ? "no such file; create the store with evfsctl init, or "
			    "give the right store" : r == -EACCES || r == -EPERM ? "permission denied; run as the "
			    "store's owner" : "cannot open the file; check the path and its permissions"), r;
	}
	r = ini_parse_stream(read_line, &l, on_pair, &l);
	if (r || !l.err)
		finish(&l, r);
	if (!l.err && !c->host_name[0])
		host_default(c);
	fclose(l.f);
	free(l.raw);
	free(l.long_value);
	return l.err;
}

/* ---- storing ------------------------------------------------------------ */

/* The text config_store writes for key k; *max: the longest it may be. */
static const char *key_text(const struct evfs_config *c, int k, char num[static 16], size_t *max)
{
	*max = keys[k].kind == BOOL || keys[k].kind == CHUNK || keys[k].kind == SECONDS ? 16 : keys[k].size;
	if (keys[k].kind == BOOL)
		return c->allow_other ? "yes" : "no";
	if (keys[k].kind == CHUNK)
		return snprintf(num, 16, "%u", c->chunk_size), num;
	if (keys[k].kind == SECONDS)
		return snprintf(num, 16, "%u", c->host_lease), num;
	return (const char *)c + keys[k].off;
}

int config_check(const struct evfs_config *c, char *why, size_t n)
{
	struct evfs_config scratch;
	char num[16], w[256];
	size_t max;

	for (int k = 0; k < NKEYS; k++) {
		const char *t = key_text(c, k, num, &max);

		if (strnlen(t, max) < max && parse_value(&scratch, k, t, "/", w, sizeof w) < 0) {
			snprintf(why, n, "[%s] %s = %s: %s", keys[k].section, keys[k].name, t, w);
			return -EINVAL;
		}
	}
	return 0;
}

/* 0 if every value of c would load back unchanged, else -EINVAL. */
static int check_storable(const struct evfs_config *c)
{
	struct evfs_config scratch;
	char num[16], buf[PATH_MAX], why[512];
	size_t max;
	int k;

	for (k = 0; k < NKEYS; k++) {
		const char *t = key_text(c, k, num, &max);
		size_t len = strnlen(t, max);
		if (len == max || len >= sizeof buf || strpbrk(t, "\r\n"))
			return -EINVAL; /* not terminated, or a line break */
		memcpy(buf, t, len + 1);
		if (strcmp(clean(buf), t) || parse_value(&scratch, k, t, "/", why, sizeof why) < 0)
			return -EINVAL; /* blanks at the ends, a " ;" comment, a bad value */
	}
	if (backend_check(c, why, sizeof why, &k) < 0)
		return -EINVAL;
	return !c->key_source[0] != !c->key_path[0] ? -EINVAL : 0;
}

int config_store(const struct evfs_config *c, const char *path)
{
	char num[16];
	size_t max;
	int ret = check_storable(c);

	if (ret < 0)
		return ret;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	FILE *f = fchmod(fd, 0600) < 0 ? NULL : fdopen(fd, "w"); /* 0600 whatever the umask */
	if (!f) {
		ret = -errno;
		close(fd);
		unlink(path);
		return ret;
	}
	fputs("; evfs store configuration, written by evfsctl init.\n"
	      "; This file holds no secrets: [kms] key_path only names the key file or\n"
	      "; passphrase file (pkcs11_pin_file the file holding the token's PIN);\n"
	      "; the key itself is never written here or in the store.\n"
	      "; Syntax: key = value.  A ';' at the start of a line or after a blank\n"
	      "; starts a comment.  Unknown or duplicate keys and bad values are errors.\n", f);
	for (int k = 0; k < NKEYS; k++) {
		const char *t = key_text(c, k, num, &max);
		int p11 = strcmp(c->kms_backend, "pkcs11") == 0;

		if ((p11 && (k == K_KEY_SOURCE || k == K_KEY_PATH)) || (!p11 && IS_P11_KEY(k)) ||
		    (IS_RADOS_KEY(k) && strcmp(c->store_backend, "rados") != 0) ||
		    (IS_PG_KEY(k) && !c->pg_conninfo[0]))
			continue;      /* the other backend's keys (all empty) */
		if (!k || strcmp(keys[k].section, keys[k - 1].section))
			fprintf(f, "\n[%s]\n", keys[k].section);
		fprintf(f, "%s%s =%s%s\n", keys[k].help, keys[k].name, *t ? " " : "", t);
	}
	if (fflush(f) != 0 || ferror(f))
		ret = errno ? -errno : -EIO;
	else if (fsync(fd) < 0)
		ret = -errno;
	if (fclose(f) != 0 && ret == 0)
		ret = -errno;
	if (ret < 0)
		unlink(path);
	return ret;
}

int config_is_admin(const struct evfs_config *c, const char *user)
{
	size_t ulen = user ? strlen(user) : 0;

	for (const char *p = c->security_admins + strspn(c->security_admins, BLANKS); ulen && *p;) {
		size_t len = strcspn(p, BLANKS);
		if (len == ulen && !memcmp(p, user, len))
			return 1;
		p += len;
		p += strspn(p, BLANKS);
	}
	return 0;
}
