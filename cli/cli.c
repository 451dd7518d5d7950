// SPDX-License-Identifier: MIT
/*
 * cli.c - evfsctl's command table: argument parsing and output (text or
 * --json).  The work itself is done by the store service (fs/store*.c) and
 * the KMS; this file only turns command lines into calls and results into
 * words, so the same code serves evfsctl and the mount's control socket.
 *
 * Exit codes: 0 success, 1 refused or failed (a message on stderr naming
 * the object, the rule and the remedy), 2 usage error.
 */
#include "cli.h"
#include "ctl.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include "cli_int.h"

/* ============================== helpers ================================ */

/* The usage, one entry per line: the command group(s) a line belongs to
 * (`evfsctl help GROUP` prints those lines) and the text. */
static const struct {
	const char *groups, *text;
} usage_lines[] = {
	{ "init", "  init [--region R] [--chunk-size N] [--security-admins USERS] (--keyfile F | --passphrase-file F)\n" },
	{ "init", "  init [...] --pkcs11-module M --token T --pin-file F [--key-label L]   (root key in a token)\n" },
	{ "init", "  init [...] --rados-conf CEPH_CONF --rados-pool POOL [--rados-id NAME]   (pools in Ceph RADOS)\n" },
	{ "init", "  init [...] --rados-conf C --rados-pool P --postgresql CONNINFO [--schema S] [--host H]   (shared)\n" },
	{ "init", "  init --join --postgresql CONNINFO --schema S --rados-conf C [--host H] KEY   (one more host)\n" },
	{ "kms", "  kms grant|revoke [--project P]      kms audit [--key K] [--verify]\n" },
	{ "key", "  key create NAME [--description D] | list | show KEY | disable KEY | enable KEY\n" },
	{ "key", "  key schedule-deletion KEY --days N | cancel-deletion KEY | rotate KEY | rewrap KEY\n" },
	{ "key", "  key share KEY --with PROJECT | unshare KEY --with PROJECT\n" },
	{ "volume", "  volume create NAME --size SIZE [--encrypt [--key KEY]]\n" },
	{ "volume", "  volume create NAME --from-snapshot SNAP | --from-backup BK [--encrypt [--key K] | --no-encrypt]\n" },
	{ "volume", "  volume create NAME --from-image IMG [--type system|data] [--encrypt [--key KEY]]\n" },
	{ "volume", "  volume list | show VOL | delete VOL [--force] | extend VOL --size SIZE | rollback VOL --snapshot SNAP\n" },
	{ "volume", "  volume rekey VOL\n" },
	{ "snapshot", "  snapshot create VOL NAME | list | show NAME | delete NAME\n" },
	{ "backup", "  backup create VOL NAME [--incremental] | list | show NAME | delete NAME | verify NAME\n" },
	{ "image", "  image create VOL NAME | copy IMG NAME [--encrypt [--key KEY]] | list | show NAME | delete NAME\n" },
	{ "image", "  image export IMG FILE | replicate IMG --to-store DIR\n" },
	{ "attach detach", "  attach VOL [--steal] | detach VOL [--force]\n" },
	{ "fsck", "  fsck [NAME | --all] [--repair [--quarantine]]   (no NAME: the whole store)\n" },
	{ "status", "  status                              (the mount: attached volumes, counters, errors)\n" },
	{ "upgrade", "  upgrade                             (format 1 pools to format 2; the store unmounted)\n" },
	{ "help", "  help [COMMAND]                      (one command's lines, with what they do)\n" },
};

/* What `evfsctl help TOPIC` says after TOPIC's usage lines. */
static const struct {
	const char *topic, *text;
} help_texts[] = {
	{ "init",
	  "Create a new store in the directory given by --store or $EVFS_STORE (a new or\n"
	  "empty directory; made mode 0700): evfs.ini, the catalog and the KMS database.\n"
	  "--keyfile F uses the 256-bit root key in F and creates F (mode 0400) with a\n"
	  "random key if it does not exist; --passphrase-file F derives the root key from\n"
	  "the passphrase in F with Argon2id (at least 8 characters); --pkcs11-module M\n"
	  "--token T --pin-file F keeps the root key inside a PKCS#11 token (created there,\n"
	  "non-extractable, as --key-label L, default evfs-root, if missing; R34).\n"
	  "Give exactly one.\n"
	  "Only the path of F is recorded in evfs.ini; the key never enters the store.\n"
	  "--region R names the store's region (default region-1); --chunk-size N sets\n"
	  "the chunk size of new volumes (a power of two, 4096 to 65536); --security-admins\n"
	  "USERS lists who may run kms grant/revoke (default: the calling user).\n"
	  "--rados-conf CEPH_CONF --rados-pool POOL [--rados-id NAME] keeps the chunk\n"
	  "pools as objects in an existing RADOS pool of that Ceph cluster instead of\n"
	  "STORE/pools (as client NAME, default admin); the cluster must answer first.\n"
	  "--postgresql CONNINFO keeps the catalog and the key store in that PostgreSQL\n"
	  "database (schemas S_catalog and S_kms; --schema S, made up if not given and\n"
	  "printed) so that several hosts share the store; never put a password in\n"
	  "CONNINFO (use ~/.pgpass or passfile=).  --host H names this host among them\n"
	  "(default: its hostname).  --join adds a host to such a store: the region,\n"
	  "chunk size, administrators and RADOS pool come from the store's catalog, the\n"
	  "root key must be the one the store was made with; only evfs.ini is written.\n" },
	{ "kms",
	  "grant lets a project (--project P, else the caller's) use encryption and\n"
	  "creates its default key evs/default; revoke withdraws that.  Only a security\n"
	  "administrator ([kms] security_admins in evfs.ini) may grant or revoke (R10,\n"
	  "R11).  audit lists the KMS audit log (who did what to which key, and the\n"
	  "result), only for KEY with --key; --verify checks that the log was not\n"
	  "altered (exit 1 if it was).  The log is readable by root and the security\n"
	  "administrators only.\n" },
	{ "key",
	  "Customer master keys (CMKs) of the project; KEY is a key's name (alias, e.g.\n"
	  "evs/default) or its id.  States: Enabled, Disabled, PendingDeletion, Deleted\n"
	  "(R12).  disable / enable switch Enabled and Disabled; schedule-deletion --days\n"
	  "N (7 to 1096) makes a key PendingDeletion, and at that date its material is\n"
	  "destroyed for ever (Deleted: its data can never be read again, R19);\n"
	  "cancel-deletion brings it back to Disabled.  evs/default can be neither\n"
	  "disabled nor scheduled for deletion (R11).  share / unshare let another\n"
	  "project encrypt with the key, or stop it (R13).  disable, schedule-deletion\n"
	  "and unshare list the volumes, snapshots, backups and images that depend on\n"
	  "the key (R20); attached volumes keep working (R16).  rotate adds a new key\n"
	  "version for new data keys; rewrap re-wraps every data key under the newest\n"
	  "version and destroys the older versions.\n" },
	{ "volume",
	  "Volumes are the virtual disks, files under volumes/ in the mount.  An empty\n"
	  "volume is encrypted only with --encrypt, under --key or evs/default (R2).\n"
	  "From a snapshot it keeps the snapshot's encryption and key (R5); from a backup\n"
	  "it keeps the backup's unless --encrypt [--key] or --no-encrypt is given (R4);\n"
	  "a data volume from an image keeps the image's (R6); a system volume is made\n"
	  "only from an image, encrypted with --key if asked, else as the image (R3).\n"
	  "SIZE: whole 512-byte sectors, K/M/G/T suffixes, at most 1 PiB.  extend only\n"
	  "grows (R23).  rollback needs the volume detached and a snapshot of it (R24).\n"
	  "delete is refused while the volume is attached (detach it first) and, with\n"
	  "--force only, goes ahead while it is open in the mount (R35).  rekey gives the\n"
	  "volume's lineage (the volume, its snapshots and images, volumes made from\n"
	  "them) a new data key and re-encrypts every stored chunk under it while the\n"
	  "volume stays attached and in use, then destroys the old key (R33); an\n"
	  "interrupted rekey resumes when run again.  Backups keep the data key they\n"
	  "were taken with and restore as before; backups wait until a rekey is done.\n"
	  "Needs pool format 2 (evfsctl upgrade).\n" },
	{ "snapshot",
	  "A snapshot is a read-only, copy-on-write point-in-time copy of a volume,\n"
	  "instant whatever the size (R24), with the volume's encryption and key (R8);\n"
	  "its file is snapshots/NAME in the mount.  While the store is mounted it holds\n"
	  "every write the mount acknowledged.  Deleting it never changes volumes made\n"
	  "from it.\n" },
	{ "backup",
	  "A backup is an independent copy of a volume in [store] backup_dir (may be\n"
	  "another disk), with the volume's encryption and key (R7).  --incremental\n"
	  "stores only the chunks changed since the previous backup of the same volume\n"
	  "(R25).  Deleting a backup that later incrementals use keeps them restorable.\n"
	  "verify reads and checks every chunk of the backup (exit 1 if any is bad).\n"
	  "Restore with: volume create NAME --from-backup BK.\n" },
	{ "image",
	  "An image is a read-only copy of a volume to make volumes from.  An image of an\n"
	  "encrypted volume is encrypted (R9), and an encrypted image cannot be exported,\n"
	  "read in the mount, replicated to another region or copied into an\n"
	  "unencrypted image.  copy --encrypt --key KEY turns an unencrypted image into\n"
	  "an encrypted one.  export writes an unencrypted image as a raw disk file;\n"
	  "replicate copies it into another store (region) that you own.\n" },
	{ "attach",
	  "attach unwraps a volume's data key in the running mount (R15) so its file can\n"
	  "be read and written; it needs the store mounted and the key Enabled (R17).\n"
	  "The mount re-attaches it after a remount (R21).  detach wipes the data key;\n"
	  "it is refused while the key is not Enabled (R18) or the volume is open (a\n"
	  "file handle, a loop device: R35) unless --force.  In a store shared by hosts\n"
	  "a volume is attached on one host at a time; detach --force of one attached\n"
	  "on another host is for a host gone for good: it fences that host off the\n"
	  "volume's pool (Ceph blocklist) and frees the volume.  attach --steal takes a\n"
	  "volume attached on another host whose lease on its pool ran out ([host]\n"
	  "lease): that host is fenced first; refused while the lease is alive.\n" },
	{ "fsck",
	  "Check the store (no NAME, or --all: every pool, map, reference count, backup\n"
	  "chain and chunk tag) or one volume, snapshot, backup or image.  Exit 0 clean,\n"
	  "1 problems left.  fsck never writes unless --repair (removes orphans, punches\n"
	  "leaked slots, accepts a pool put back from an older copy, which the catalog\n"
	  "otherwise refuses as rolled back); --quarantine (with --repair and a NAME)\n"
	  "turns unreadable chunks into zeros and lists each range it zeroed.\n" },
	{ "upgrade",
	  "Convert every format 1 pool of the store (one map file per volume) to format 2\n"
	  "(copy-on-write map trees: O(1) snapshots, maps authenticated up to each pool's\n"
	  "header).  Chunks do not move; only the maps are rewritten.  Root or the store's\n"
	  "owner, on an unmounted store; a pool cut short stays format 1 and the next run\n"
	  "finishes the job.  New pools are format 2 unless evfs.ini says pool_format = 1.\n" },
	{ "status",
	  "What the store's mount is doing: its pid, mount point and uptime, every\n"
	  "attached volume with its key state, open file handles, bytes read and\n"
	  "written and chunks that failed (EIO) since attach, and the last errors it\n"
	  "logged.  On an unmounted store: that it is not mounted.  [mount] metrics_file\n"
	  "gives the same numbers to Prometheus.\n" },
	{ "help",
	  "Without COMMAND: the whole usage (as evfsctl --help).  With a command group\n"
	  "(init, kms, key, volume, snapshot, backup, image, attach, detach, fsck, status,\n"
	  "upgrade, help): its lines of the usage and what they do.  man evfsctl has the details.\n" },
};

static const char usage_head[] = "usage: evfsctl [--store DIR] [--project P] [--json] COMMAND ...\n";
static const char usage_tail[] = "The store is --store DIR or $EVFS_STORE. SIZE takes K, M, G, T, P suffixes.\n";

void cli_usage(FILE *f)
{
	fputs(usage_head, f);
	for (size_t i = 0; i < sizeof(usage_lines) / sizeof(usage_lines[0]); i++)
		fputs(usage_lines[i].text, f);
	fputs(usage_tail, f);
}

/* 1 if word is one of the blank-separated words of list. */
static int word_in(const char *word, const char *list)
{
	size_t n = strlen(word);

	for (const char *p = list; *p; p += strcspn(p, " "), p += strspn(p, " "))
		if (n && strncmp(p, word, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return 1;
	return 0;
}

int cli_help(int argc, char **argv, FILE *out, FILE *err)
{
	const char *topic = argc > 0 ? argv[0] : NULL;
	const char *text = NULL;

	if (argc > 1) {
		fprintf(err, "evfsctl: expected: help [COMMAND]\n(run 'evfsctl --help' for the command list)\n");
		return EXIT_USAGE;
	}
	if (!topic) {
		cli_usage(out);
		return 0;
	}
	for (size_t i = 0; i < sizeof(help_texts) / sizeof(help_texts[0]); i++)
		if (strcmp(topic, help_texts[i].topic) == 0 || (!strcmp(topic, "detach") &&
							       !strcmp(help_texts[i].topic, "attach")))
			text = help_texts[i].text;
	if (!text) {
		fprintf(err, "evfsctl: help: unknown command '%s'; commands are init, kms, key, volume, snapshot, "
			"backup, image, attach, detach, fsck, status, upgrade, help\n", topic);
		return EXIT_USAGE;
	}
	fprintf(out, "usage: evfsctl [--store DIR] [--project P] [--json] %s ...\n", topic);
	for (size_t i = 0; i < sizeof(usage_lines) / sizeof(usage_lines[0]); i++)
		if (word_in(topic, usage_lines[i].groups))
			fputs(usage_lines[i].text, out);
	fprintf(out, "\n%s", text);
	return 0;
}

int cli_parse_size(const char *s, unsigned long long *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	case 'P': shift = 50; break;
	default: return -EINVAL;
	}
	if (*end && end[1] && !(toupper((unsigned char)end[1]) == 'B' && !end[2]) &&
	    !(toupper((unsigned char)end[1]) == 'I' && toupper((unsigned char)end[2]) == 'B' && !end[3]))
		return -EINVAL;
	if (shift && v > (~0ull >> shift))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

static int parse_args(struct cmdctx *x, int argc, char **argv, struct args *a)
{
	static const struct {
		const char *name;
		size_t off;
	} vals[] = {
		{ "--key", offsetof(struct args, key) },
		{ "--description", offsetof(struct args, desc) },
		{ "--with", offsetof(struct args, with) },
		{ "--project", offsetof(struct args, project) },
		{ "--days", offsetof(struct args, days) },
		{ "--size", offsetof(struct args, size) },
		{ "--from-snapshot", offsetof(struct args, from_snapshot) },
		{ "--from-backup", offsetof(struct args, from_backup) },
		{ "--from-image", offsetof(struct args, from_image) },
		{ "--type", offsetof(struct args, type) },
		{ "--snapshot", offsetof(struct args, snapshot) },
		{ "--to-store", offsetof(struct args, to_store) },
	};
	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		int done = 0;

		for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
			if (strcmp(argv[i], vals[k].name) == 0) {
				if (i + 1 >= argc)
					return usage(x, "option %s needs a value", argv[i]);
				*(const char **)((char *)a + vals[k].off) = argv[++i];
				done = 1;
			}
		}
		if (done)
			continue;
		if (strcmp(argv[i], "--encrypt") == 0)
			a->encrypt = 1;
		else if (strcmp(argv[i], "--no-encrypt") == 0)
			a->no_encrypt = 1;
		else if (strcmp(argv[i], "--incremental") == 0)
			a->incremental = 1;
		else if (strcmp(argv[i], "--force") == 0)
			a->force = 1;
		else if (strcmp(argv[i], "--steal") == 0)
			a->steal = 1;
		else if (strcmp(argv[i], "--verify") == 0)
			a->verify = 1;
		else if (strcmp(argv[i], "--repair") == 0)
			a->repair = 1;
		else if (strcmp(argv[i], "--quarantine") == 0)
			a->quarantine = 1;
		else if (strcmp(argv[i], "--all") == 0)
			a->all = 1;
		else if (argv[i][0] == '-' && argv[i][1])
			return usage(x, "unknown option %s", argv[i]);
		else if (a->n < 8)
			a->pos[a->n++] = argv[i];
		else
			return usage(x, "too many arguments at %s", argv[i]);
	}
	return 0;
}

/* ============================ object output ============================ */

void object_print(struct cmdctx *x, const struct meta_object *o, int detail)
{
	const char *state = store_key_state_of(x->s, o->project, o->key_id);
	const char *att = o->kind != META_VOLUME ? "" :
			  store_is_attached(x->s, o->id) ? "attached" :
			  !o->attached ? "detached" :
			  o->attached_host[0] && strcmp(o->attached_host, store_config(x->s)->host_name) ? "elsewhere" :
			  "attach-pending";
	char ct[32];

	fmt_time(o->created, ct, sizeof(ct));
	if (x->json) {
		fprintf(x->out, "{\"kind\":\"%s\",\"name\":", meta_kind_name(o->kind));
		json_str(x->out, o->name);
		fprintf(x->out, ",\"id\":\"%s\",\"project\":", o->id);
		json_str(x->out, o->project);
		fprintf(x->out, ",\"size\":%llu,\"encrypted\":%s,\"key\":\"%s\",\"key_state\":\"%s\","
			"\"lineage\":\"%s\",\"source\":",
			(unsigned long long)o->size, o->encrypted ? "true" : "false", o->key_id, state, o->lineage);
		json_str(x->out, o->source);
		fprintf(x->out, ",\"type\":\"%s\",\"owner_uid\":%u,\"created\":\"%s\"", o->vol_type,
			(unsigned)o->owner_uid, ct);
		if (o->kind == META_VOLUME)
			fprintf(x->out, ",\"attached\":\"%s\",\"host\":\"%s\"", att, o->attached_host);
		if (o->kind == META_BACKUP)
			fprintf(x->out, ",\"incremental\":%s,\"stored_bytes\":%llu",
				o->incremental ? "true" : "false", (unsigned long long)o->stored_bytes);
		fputc('}', x->out);
		return;
	}
	if (!detail) {
		fprintf(x->out, "%-20s %14llu  %-9s %-36s %-16s %s\n", o->name, (unsigned long long)o->size,
			o->encrypted ? "encrypted" : "plain", o->encrypted ? o->key_id : "-",
			o->kind == META_VOLUME ? att : (o->kind == META_BACKUP && o->incremental ? "incremental" : "-"),
			o->source[0] ? o->source : "-");
		return;
	}
	fprintf(x->out, "%s %s\n  id:         %s\n  project:    %s\n  size:       %llu\n  encrypted:  %s\n",
		meta_kind_name(o->kind), o->name, o->id, o->project, (unsigned long long)o->size,
		o->encrypted ? "yes" : "no");
	if (o->encrypted)
		fprintf(x->out, "  key:        %s (%s)\n", o->key_id, state);
	fprintf(x->out, "  lineage:    %s\n  source:     %s\n  type:       %s\n  owner uid:  %u\n  created:    %s\n",
		o->lineage, o->source[0] ? o->source : "-", o->vol_type, (unsigned)o->owner_uid, ct);
	if (o->kind == META_VOLUME)
		fprintf(x->out, "  attached:   %s%s%s\n", att, o->attached && o->attached_host[0] ? " on host " : "",
			o->attached && o->attached_host[0] ? o->attached_host : "");
	if (o->kind == META_BACKUP)
		fprintf(x->out, "  incremental: %s\n  stored:     %llu bytes\n  location:   %s\n",
			o->incremental ? "yes" : "no", (unsigned long long)o->stored_bytes, o->location);
}

struct list_ctx {
	struct cmdctx *x;
	int n;
};

static int list_cb(void *ctx, const struct meta_object *o)
{
	struct list_ctx *l = ctx;

	if (l->x->json && l->n)
		fputc(',', l->x->out);
	object_print(l->x, o, 0);
	l->n++;
	return 0;
}

static int objects_list(struct cmdctx *x, struct meta_filter *f)
{
	struct list_ctx l = { x, 0 };
	int rc;

	if (x->json)
		fputc('[', x->out);
	else
		fprintf(x->out, "%-20s %14s  %-9s %-36s %-16s %s\n", "NAME", "SIZE", "ENCRYPT", "KEY", "STATE",
			"SOURCE");
	rc = store_object_list(x->s, f, list_cb, &l);
	if (x->json)
		fputs("]\n", x->out);
	if (rc < 0) {
		fprintf(x->err, "evfsctl: catalog: %s\n", evfs_strerror(rc));
		return 1;
	}
	return 0;
}

static int object_show(struct cmdctx *x, enum meta_kind kind, const char *name)
{
	struct meta_object o;

	if (store_object_lookup(x->s, x->c, kind, name, &o) < 0)
		return fail(x);
	object_print(x, &o, 1);
	if (x->json)
		fputc('\n', x->out);
	return 0;
}

int done(struct cmdctx *x, int rc, const struct meta_object *o, const char *verb)
{
	if (rc)
		return fail(x);
	if (o && x->json) {
		object_print(x, o, 0);
		fputc('\n', x->out);
	} else if (o) {
		fprintf(x->out, "%s %s %s (%s%s%s)\n", verb, meta_kind_name(o->kind), o->name,
			o->encrypted ? "encrypted with key " : "not encrypted", o->encrypted ? o->key_id : "",
			"");
	}
	return 0;
}


/* ============================ object commands ========================== */

static int cmd_volume(struct cmdctx *x, const char *sub, struct args *a)
{
	struct meta_filter f = { .kind = META_VOLUME, .project = x->c->project };
	struct meta_object o;
	unsigned long long size = 0;
	int rc;

	if (strcmp(sub, "list") == 0)
		return want_pos(x, a, 0, "volume list") ?: objects_list(x, &f);
	if (strcmp(sub, "show") == 0)
		return want_pos(x, a, 1, "volume show VOL") ?: object_show(x, META_VOLUME, a->pos[0]);
	if (strcmp(sub, "delete") == 0) {
		if ((rc = want_pos(x, a, 1, "volume delete VOL")))
			return rc;
		rc = store_object_delete(x->s, x->c, META_VOLUME, a->pos[0], a->force, x->err);
		if (!rc && !x->json)
			fprintf(x->out, "deleted volume %s\n", a->pos[0]);
		return rc ? fail(x) : 0;
	}
	if (a->size && cli_parse_size(a->size, &size) < 0)
		return usage(x, "--size %s: not a size (use e.g. 512M, 10G)", a->size);
	if (strcmp(sub, "extend") == 0) {
		if ((rc = want_pos(x, a, 1, "volume extend VOL --size SIZE")) || !a->size)
			return rc ? rc : usage(x, "%s", "volume extend VOL --size SIZE");
		rc = store_volume_extend(x->s, x->c, a->pos[0], size);
		if (!rc && !x->json)
			fprintf(x->out, "extended volume %s to %llu bytes\n", a->pos[0], size);
		return rc ? fail(x) : 0;
	}
	if (strcmp(sub, "rekey") == 0) {
		struct store_rekey_result res;

		if ((rc = want_pos(x, a, 1, "volume rekey VOL")))
			return rc;
		rc = store_volume_rekey(x->s, x->c, a->pos[0], &res);
		if (rc)
			return fail(x);
		if (x->json)
			fprintf(x->out, "{\"volume\": \"%s\", \"key_generation\": %u, \"chunks_reencrypted\": %llu, "
					"\"map_entries\": %llu, \"resumed\": %s}\n", a->pos[0], res.gen,
				(unsigned long long)res.chunks, (unsigned long long)res.entries,
				res.resumed ? "true" : "false");
		else
			fprintf(x->out, "rekeyed volume %s: data key generation %u, %llu chunks re-encrypted (%llu map "
					"entries)%s; old key destroyed\n", a->pos[0], res.gen,
				(unsigned long long)res.chunks, (unsigned long long)res.entries,
				res.resumed ? " (resumed)" : "");
		return 0;
	}
	if (strcmp(sub, "rollback") == 0) {
		if ((rc = want_pos(x, a, 1, "volume rollback VOL --snapshot SNAP")) || !a->snapshot)
			return rc ? rc : usage(x, "%s", "volume rollback VOL --snapshot SNAP");
		rc = store_volume_rollback(x->s, x->c, a->pos[0], a->snapshot);
		if (!rc && !x->json)
			fprintf(x->out, "rolled back volume %s to snapshot %s\n", a->pos[0], a->snapshot);
		return rc ? fail(x) : 0;
	}
	if (strcmp(sub, "create") == 0) {
		struct store_volume_spec sp = { .name = a->pos[0], .size = size, .encrypt = -1, .key = a->key,
						.type = a->type };
		int nfrom = !!a->from_snapshot + !!a->from_backup + !!a->from_image;

		if ((rc = want_pos(x, a, 1, "volume create NAME (--size SIZE | --from-...)")))
			return rc;
		if (nfrom > 1)
			return usage(x, "%s", "give at most one of --from-snapshot, --from-backup, --from-image");
		if (a->encrypt && a->no_encrypt)
			return usage(x, "%s", "--encrypt and --no-encrypt exclude each other");
		if (a->type && strcmp(a->type, "system") && strcmp(a->type, "data"))
			return usage(x, "--type %s: use system or data", a->type);
		if (a->type && !a->from_image)
			return usage(x, "%s", "--type applies to --from-image (a system volume is made only from an "
					      "image, R3)");
		if (a->key && !a->encrypt)
			return usage(x, "%s", "--key needs --encrypt");
		if (a->no_encrypt && !a->from_backup)
			return usage(x, "%s", "--no-encrypt applies to --from-backup only (R4)");
		sp.encrypt = a->encrypt ? 1 : a->no_encrypt ? 0 : (nfrom ? -1 : 0);
		sp.from_kind = a->from_snapshot ? META_SNAPSHOT : a->from_backup ? META_BACKUP :
			       a->from_image ? META_IMAGE : META_ANY;
		sp.from = a->from_snapshot ? a->from_snapshot : a->from_backup ? a->from_backup : a->from_image;
		if (!nfrom && !a->size)
			return usage(x, "%s", "volume create NAME --size SIZE (or --from-snapshot/--from-backup/--from-image)");
		rc = store_volume_create(x->s, x->c, &sp, &o);
		return done(x, rc, &o, "created");
	}
	return usage(x, "unknown volume command '%s'", sub);
}

static int cmd_snapshot_image(struct cmdctx *x, enum meta_kind kind, const char *sub, struct args *a)
{
	struct meta_filter f = { .kind = kind, .project = x->c->project };
	struct meta_object o;
	const char *kn = meta_kind_name(kind);
	int rc;

	if (strcmp(sub, "list") == 0)
		return objects_list(x, &f);
	if (strcmp(sub, "show") == 0)
		return want_pos(x, a, 1, "show NAME") ?: object_show(x, kind, a->pos[0]);
	if (strcmp(sub, "delete") == 0) {
		if ((rc = want_pos(x, a, 1, "delete NAME")))
			return rc;
		rc = store_object_delete(x->s, x->c, kind, a->pos[0], 0, NULL);
		if (!rc && !x->json)
			fprintf(x->out, "deleted %s %s\n", kn, a->pos[0]);
		return rc ? fail(x) : 0;
	}
	if (strcmp(sub, "create") == 0) {
		if ((rc = want_pos(x, a, 2, "create VOL NAME")))
			return rc;
		if (kind == META_BACKUP)
			rc = store_backup_create(x->s, x->c, a->pos[0], a->pos[1], a->incremental, &o);
		else
			rc = store_snapshot_create(x->s, x->c, kind, a->pos[0], a->pos[1], &o);
		return done(x, rc, &o, "created");
	}
	if (kind == META_BACKUP && strcmp(sub, "verify") == 0) {
		if ((rc = want_pos(x, a, 1, "backup verify NAME")))
			return rc;
		rc = store_fsck(x->s, x->c, a->pos[0], x->out);
		if (rc < 0)
			return fail(x);
		fprintf(x->out, "backup %s: %d bad chunk(s)\n", a->pos[0], rc);
		return rc ? 1 : 0;
	}
	if (kind == META_IMAGE && strcmp(sub, "copy") == 0) {
		if ((rc = want_pos(x, a, 2, "image copy IMG NAME [--encrypt --key KEY]")))
			return rc;
		rc = store_image_copy(x->s, x->c, a->pos[0], a->pos[1], a->encrypt ? 1 : a->no_encrypt ? 0 : -1,
				      a->key, &o);
		return done(x, rc, &o, "created");
	}
	if (kind == META_IMAGE && strcmp(sub, "export") == 0) {
		if ((rc = want_pos(x, a, 2, "image export IMG FILE")))
			return rc;
		rc = store_image_export(x->s, x->c, a->pos[0], a->pos[1]);
		if (!rc && !x->json)
			fprintf(x->out, "exported image %s to %s\n", a->pos[0], a->pos[1]);
		return rc ? fail(x) : 0;
	}
	if (kind == META_IMAGE && strcmp(sub, "replicate") == 0) {
		if ((rc = want_pos(x, a, 1, "image replicate IMG --to-store DIR")) || !a->to_store)
			return rc ? rc : usage(x, "%s", "image replicate IMG --to-store DIR");
		rc = store_image_replicate(x->s, x->c, a->pos[0], a->to_store);
		if (!rc && !x->json)
			fprintf(x->out, "replicated image %s to %s\n", a->pos[0], a->to_store);
		return rc ? fail(x) : 0;
	}
	return usage(x, "unknown command '%s'", sub);
}

/* A snapshot, image or backup of a volume attached on another host of a
 * shared store is taken there, with that host's acknowledged writes: the
 * command line goes to that host's mount (store_volume_forward) and its
 * answer is printed here.  1: not attached elsewhere, run it here. */
static int forward(struct cmdctx *x, int argc, char **argv, const char *vol)
{
	void *req = NULL, *reply = NULL;
	size_t len = 0, rlen = 0;
	int rc;

	if (ctl_forward_build(x->c, x->json ? CTL_JSON : 0, argc, argv, &req, &len) < 0)
		return 1;
	rc = store_volume_forward(x->s, x->c, vol, req, len, &reply, &rlen);
	free(req);
	if (rc == 1 || rc == -ENOENT)
		return 1;                /* here (a missing volume: the command says so) */
	if (rc < 0)
		return fail(x);
	rc = ctl_forward_reply(reply, rlen, x->out, x->err);
	free(reply);
	if (rc < 0) {
		fprintf(x->err, "evfsctl: the host that has volume %s attached sent a malformed answer\n", vol);
		return 1;
	}
	return rc;
}

int cli_run(struct store *s, const struct store_caller *c, int json, int argc, char **argv, FILE *out, FILE *err)
{
	struct evfs_err why = { "" };            /* this command's own message */
	struct store_caller cc = *c;
	struct cmdctx x = { s, &cc, json, out, err };
	struct args a;
	const char *grp = argc > 0 ? argv[0] : "";
	const char *sub = argc > 1 ? argv[1] : "";
	int rc, skip = 2;

	if (strcmp(grp, "help") == 0)
		return cli_help(argc - 1, argv + 1, out, err);
	if (strcmp(grp, "attach") == 0 || strcmp(grp, "detach") == 0 || strcmp(grp, "fsck") == 0 ||
	    strcmp(grp, "status") == 0 || strcmp(grp, "upgrade") == 0)
		skip = 1;
	rc = parse_args(&x, argc > skip ? argc - skip : 0, argv + (argc > skip ? skip : argc), &a);
	if (rc)
		return rc;
	cc.err = &why;
	if (a.project)                   /* after COMMAND, as before it: every command's project */
		snprintf(cc.project, sizeof(cc.project), "%s", a.project);
	c = &cc;
	store_cause_clear(s);
	if ((!strcmp(grp, "snapshot") || !strcmp(grp, "image") || !strcmp(grp, "backup")) && !strcmp(sub, "create") &&
	    a.n >= 1 && (rc = forward(&x, argc, argv, a.pos[0])) != 1)
		return rc;
	if (strcmp(grp, "kms") == 0)
		return cmd_kms(&x, sub, &a);
	if (strcmp(grp, "key") == 0)
		return cmd_key(&x, sub, &a);
	if (strcmp(grp, "volume") == 0)
		return cmd_volume(&x, sub, &a);
	if (strcmp(grp, "snapshot") == 0)
		return cmd_snapshot_image(&x, META_SNAPSHOT, sub, &a);
	if (strcmp(grp, "image") == 0)
		return cmd_snapshot_image(&x, META_IMAGE, sub, &a);
	if (strcmp(grp, "backup") == 0)
		return cmd_snapshot_image(&x, META_BACKUP, sub, &a);
	if (strcmp(grp, "attach") == 0 || strcmp(grp, "detach") == 0) {
		if ((rc = want_pos(&x, &a, 1, "attach VOL [--steal] | detach VOL [--force]")))
			return rc;
		if (a.steal && grp[0] != 'a')
			return usage(&x, "--steal goes with attach");
		if (a.force && grp[0] == 'a')
			return usage(&x, "--force goes with detach (attach takes --steal)");
		rc = grp[0] == 'd' ? store_detach(s, c, a.pos[0], a.force, err)
		     : a.steal ? store_attach_steal(s, c, a.pos[0], err) : store_attach(s, c, a.pos[0]);
		if (!rc && !json)
			fprintf(out, "%sed volume %s\n", grp, a.pos[0]);
		return rc ? fail(&x) : 0;
	}
	if (strcmp(grp, "status") == 0)
		return cmd_status(&x, &a);
	if (strcmp(grp, "upgrade") == 0) {
		if (a.n)
			return usage(&x, "%s", "upgrade (no arguments)");
		return store_upgrade(s, c, out) ? fail(&x) : 0;
	}
	if (strcmp(grp, "fsck") == 0) {
		struct store_fsck_opts fo = { a.n ? a.pos[0] : NULL, a.repair, a.quarantine, json };

		if (a.n > 1 || (a.n == 1 && a.all))
			return usage(&x, "%s", "fsck [NAME | --all] [--repair [--quarantine]]");
		if (a.quarantine && (!a.repair || !a.n))
			return usage(&x, "%s", "fsck NAME --repair --quarantine: --quarantine needs --repair and the "
				     "name of the volume, snapshot or image whose unreadable chunks become zeros");
		rc = store_fsck_run(s, c, &fo, out);
		if (rc < 0)
			return fail(&x);
		return rc ? 1 : 0;
	}
	return usage(&x, "unknown command '%s'", grp[0] ? grp : "(none)");
}
