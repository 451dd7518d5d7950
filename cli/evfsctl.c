// SPDX-License-Identifier: MIT
/*
 * evfsctl.c - the management program.
 *
 * Global options, then either `init` (creates a store) or a command.  If a
 * mount serves the store, the command line is sent to it over the control
 * socket and runs there with our credentials; otherwise evfsctl opens the
 * store itself (taking the store lock) and runs the same command code.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <sodium.h>

#include "cli.h"
#include "config.h"
#include "ctl.h"

static void log_stderr(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= 4 || getenv("EVFS_DEBUG"))
		fprintf(stderr, "evfsctl: %s\n", msg);
}

static int cmd_init(const char *dir, int argc, char **argv)
{
	struct store_init_opts o = { .warn = stderr };
	char err[1024] = "";
	int rc;

	for (int i = 0; i < argc; i++) {
		const char **dst = NULL;
		const char *chunk = NULL;

		if (strcmp(argv[i], "--region") == 0)
			dst = &o.region;
		else if (strcmp(argv[i], "--keyfile") == 0)
			dst = &o.keyfile;
		else if (strcmp(argv[i], "--passphrase-file") == 0)
			dst = &o.passphrase_file;
		else if (strcmp(argv[i], "--pkcs11-module") == 0)
			dst = &o.pkcs11_module;
		else if (strcmp(argv[i], "--token") == 0)
			dst = &o.pkcs11_token;
		else if (strcmp(argv[i], "--pin-file") == 0)
			dst = &o.pkcs11_pin_file;
		else if (strcmp(argv[i], "--key-label") == 0)
			dst = &o.pkcs11_key;
		else if (strcmp(argv[i], "--security-admins") == 0)
			dst = &o.security_admins;
		else if (strcmp(argv[i], "--chunk-size") == 0)
			dst = &chunk;
		else if (strcmp(argv[i], "--rados-conf") == 0)
			dst = &o.rados_conf;
		else if (strcmp(argv[i], "--rados-pool") == 0)
			dst = &o.rados_pool;
		else if (strcmp(argv[i], "--rados-id") == 0)
			dst = &o.rados_id;
		else if (strcmp(argv[i], "--postgresql") == 0)
			dst = &o.pg_conninfo;
		else if (strcmp(argv[i], "--schema") == 0)
			dst = &o.pg_schema;
		else if (strcmp(argv[i], "--host") == 0)
			dst = &o.host_name;
		else if (strcmp(argv[i], "--join") == 0) {
			o.join = 1;
			continue;
		} else {
			fprintf(stderr, "evfsctl: init: unknown argument %s\n", argv[i]);
			return 2;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "evfsctl: init: %s needs a value\n", argv[i]);
			return 2;
		}
		*dst = argv[++i];
		if (chunk) {
			unsigned long long v;

			if (cli_parse_size(chunk, &v) < 0 || v > UINT32_MAX) {
				fprintf(stderr, "evfsctl: init: --chunk-size %s is not a size\n", chunk);
				return 2;
			}
			o.chunk_size = (uint32_t)v;
		}
	}
	if (!!o.keyfile + !!o.passphrase_file + !!o.pkcs11_module != 1) {
		fprintf(stderr, "evfsctl: init: give exactly one of --keyfile FILE, --passphrase-file FILE or "
			"--pkcs11-module MODULE --token LABEL --pin-file FILE\n");
		return 2;
	}
	if (!o.pkcs11_module && (o.pkcs11_token || o.pkcs11_pin_file || o.pkcs11_key)) {
		fprintf(stderr, "evfsctl: init: --token, --pin-file and --key-label go with --pkcs11-module\n");
		return 2;
	}
	if (o.pkcs11_module && (!o.pkcs11_token || !o.pkcs11_pin_file)) {
		fprintf(stderr, "evfsctl: init: --pkcs11-module needs --token LABEL and --pin-file FILE (the file "
			"holding the token's user PIN; never the PIN on the command line)\n");
		return 2;
	}
	if ((o.rados_conf || o.rados_id) && !o.rados_pool && !o.join) {
		fprintf(stderr, "evfsctl: init: --rados-conf and --rados-id go with --rados-pool POOL\n");
		return 2;
	}
	if ((o.pg_schema || o.join) && !o.pg_conninfo) {
		fprintf(stderr, "evfsctl: init: --schema and --join go with --postgresql CONNINFO\n");
		return 2;
	}
	if (o.rados_pool && !o.rados_conf) {
		fprintf(stderr, "evfsctl: init: --rados-pool needs --rados-conf FILE (the cluster's ceph.conf)\n");
		return 2;
	}
	rc = store_init(dir, &o, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "evfsctl: %s\n", err[0] ? err : evfs_strerror(rc));
		return 1;
	}
	if (o.join) {
		printf("host joined store %s of the PostgreSQL database: its evfs.ini is in %s\n", o.pg_schema, dir);
		return 0;
	}
	if (o.pkcs11_module)
		printf("created store %s (root key \"%s\" in PKCS#11 token \"%s\", module %s)\n", dir,
		       o.pkcs11_key ? o.pkcs11_key : "evfs-root", o.pkcs11_token, o.pkcs11_module);
	else
		printf("created store %s (root key from %s %s)\n", dir, o.keyfile ? "key file" : "passphrase file",
		       o.keyfile ? o.keyfile : o.passphrase_file);
	if (o.rados_pool)
		printf("chunk pools in RADOS pool %s (cluster %s)\n", o.rados_pool, o.rados_conf);
	if (o.pg_conninfo) {
		struct evfs_config cfg;
		char path[4096];

		snprintf(path, sizeof(path), "%s/" CONFIG_FILE_NAME, dir);
		if (config_load(&cfg, path, dir, err, sizeof(err)) == 0)
			printf("catalog and key store in PostgreSQL, store name %s: other hosts join with\n"
			       "  evfsctl --store DIR init --join --postgresql CONNINFO --schema %s --rados-conf FILE "
			       "KEY OPTIONS\n", cfg.pg_schema, cfg.pg_schema);
	}
	return 0;
}

/*
 * A command forwarded to a mount runs there, in the working directory "/":
 * turn the paths of `image export IMG FILE` and `--to-store DIR` into
 * absolute ones first.  The new strings live until exit, like argv.
 */
static void absolute_paths(int argc, char **argv)
{
	char cwd[PATH_MAX], *abs;

	if (!getcwd(cwd, sizeof(cwd)))
		return;
	for (int j = 1; j < argc; j++) {
		int path = (j == 3 && strcmp(argv[0], "image") == 0 && strcmp(argv[1], "export") == 0) ||
			   strcmp(argv[j - 1], "--to-store") == 0;

		if (path && argv[j][0] && argv[j][0] != '/' && asprintf(&abs, "%s/%s", cwd, argv[j]) > 0)
			argv[j] = abs;
	}
}

/* 1 if the kernel lists a FUSE mount of the store dir (fsname evfs:DIR,
 * as the mount sets it; /proc/self/mounts escapes blanks as \040). */
static int store_listed_mounted(const char *dir)
{
	char real[PATH_MAX], want[PATH_MAX + 8], line[2 * PATH_MAX], src[PATH_MAX + 8];
	FILE *f;
	int found = 0;

	if (!realpath(dir, real))
		return 0;
	snprintf(want, sizeof(want), "evfs:%s", real);
	f = fopen("/proc/self/mounts", "re");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		size_t o = 0;

		for (const char *p = line; *p && *p != ' ' && o + 1 < sizeof(src); p++) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] && p[3]) {
				src[o++] = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
				p += 3;
			} else {
				src[o++] = *p;
			}
		}
		src[o] = '\0';
		found = strcmp(src, want) == 0 && strstr(line, " fuse.evfs ") != NULL;
	}
	fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	const char *dir = getenv("EVFS_STORE"), *project = NULL;
	int json = 0, bar, i, rc;
	struct store *s;
	struct store_caller c;
	char err[1024] = "";
	struct rlimit no_core = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0);
	if (sodium_init() < 0) {
		fprintf(stderr, "evfsctl: libsodium failed to initialise\n");
		return 1;
	}
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			cli_usage(stdout);
			return 0;
		} else if ((strcmp(argv[i], "--store") == 0 || strcmp(argv[i], "--project") == 0) && i + 1 < argc) {
			if (argv[i][2] == 's')
				dir = argv[++i];
			else
				project = argv[++i];
		} else {
			fprintf(stderr, "evfsctl: unknown or incomplete option %s\n", argv[i]);
			cli_usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		cli_usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "help") == 0)    /* needs no store */
		return cli_help(argc - i - 1, argv + i + 1, stdout, stderr);
	if (!dir || !*dir) {
		fprintf(stderr, "evfsctl: no store: give --store DIR or set EVFS_STORE\n");
		return 2;
	}
	if (strcmp(argv[i], "init") == 0)
		return cmd_init(dir, argc - i - 1, argv + i + 1);
	/* Too long for the control socket is too long for any command: a
	 * usage error, whether a mount runs or not. */
	if (argc - i > (int)CTL_MAX_ARGS) {
		fprintf(stderr, "evfsctl: %d arguments: at most %u are accepted\n", argc - i, CTL_MAX_ARGS);
		return 2;
	}
	for (int k = i; k < argc; k++) {
		if (strlen(argv[k]) >= CTL_MAX_ARG) {
			fprintf(stderr, "evfsctl: argument '%.40s...' is %zu bytes long: at most %u are accepted "
				"(names: 63 characters)\n", argv[k], strlen(argv[k]), CTL_MAX_ARG - 1);
			return 2;
		}
	}
	absolute_paths(argc - i, argv + i);
	/* Forward the "kms grant --project P" project too: it is an argument. */
	/* Progress bars only on a terminal, never with --json (the mount
	 * streams them back when the command is forwarded). */
	bar = !json && isatty(STDERR_FILENO);
	rc = ctl_client_run(dir, project, json | (bar ? CTL_PROGRESS : 0), argc - i, argv + i, stdout, stderr);
	if (rc >= 0)
		return rc;
	if (rc != -ENOENT) {
		fprintf(stderr, "evfsctl: cannot talk to the mount of %s: %s\n", dir, evfs_strerror(rc));
		return 1;
	}
	/* A mount that has not served its first request yet: the kernel lists
	 * it, but its store and control socket open when FUSE_INIT arrives.
	 * Wait for the socket rather than run the command here, where
	 * attach would find the store "not mounted". */
	for (int tries = 0; rc == -ENOENT && tries < 100 && store_listed_mounted(dir); tries++) {
		usleep(100000);
		rc = ctl_client_run(dir, project, json | (bar ? CTL_PROGRESS : 0), argc - i, argv + i, stdout,
				    stderr);
		if (rc >= 0)
			return rc;
	}
	rc = store_open(&s, dir, NULL, log_stderr, NULL, err, sizeof(err));
	for (int tries = 0; rc == -EBUSY && strstr(err, "the mount at") && tries < 100; tries++) {
		/* A mount that is still starting: its control socket comes up
		 * right after it daemonizes. */
		usleep(100000);
		rc = ctl_client_run(dir, project, json | (bar ? CTL_PROGRESS : 0), argc - i, argv + i, stdout,
				    stderr);
		if (rc >= 0)
			return rc;
		rc = -EBUSY;
	}
	if (rc) {
		fprintf(stderr, "evfsctl: %s\n", err[0] ? err : evfs_strerror(rc));
		return 1;
	}
	store_caller_init(s, &c, getuid(), getgid(), project);
	c.progress = bar ? stderr : NULL;
	rc = cli_run(s, &c, json, argc - i, argv + i, stdout, stderr);
	store_close(s);
	return rc;
}
