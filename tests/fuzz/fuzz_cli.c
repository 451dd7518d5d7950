// SPDX-License-Identifier: MIT
/*
 * fuzz_cli.c - evfsctl's command line: cli_run() (argument parsing and
 * every command's checks, against a real store) and cli_parse_size().
 *
 * The mount runs command lines that any local user sends over the control
 * socket, so a command line is hostile input to a root daemon.  Input
 * layout: byte 0 bit 0 selects --json; the rest is up to MAX_CMDS command
 * lines separated by 0x1e, each split on NUL bytes into argv (at most 16
 * arguments), run in order (so an input can create a volume, then
 * snapshot, back up or delete it).  The commands run as root against a real
 * temporary store (keyfile root key, project "default" granted), made in
 * LLVMFuzzerInitialize and remade every RESET_EVERY inputs so it does not
 * grow without bound.  Commands that write files (image export, replicate)
 * would write wherever argv says: '/' is replaced by '_' and ".." by "__",
 * and the working directory is a scratch directory, so nothing outside the
 * temporary tree is touched.
 *
 * Properties: no crash, leak or UB; exit code 0, 1 or 2; cli_parse_size
 * accepts a value only if its plain decimal form parses back to itself.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "cli.h"
#include "store.h"

#define MAX_ARGS 16
#define MAX_CMDS 6
#define RESET_EVERY 500
#define RS '\x1e'

static char root[256], store_path[300], keyfile[300], scratch[300];
static struct store *s;
static struct store_caller caller;
static FILE *devnull;
static unsigned runs;

/* tmpfs when there is one: the commands fsync a lot. */
static const char *fuzz_tmp(void)
{
	const char *t = getenv("EVFS_FUZZ_TMP");

	return t && *t ? t : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

static void must(int ok, const char *what, const char *err)
{
	if (!ok) {
		fprintf(stderr, "fuzz_cli setup: %s failed: %s\n", what, err && *err ? err : strerror(errno));
		abort();
	}
}

static void rm_rf(const char *path)
{
	char cmd[400];

	if (strstr(path, "/evfs-fuzz-cli.")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", path);
	}
}

static void store_make(void)
{
	struct store_init_opts o = { .keyfile = keyfile, .security_admins = "root" };
	char err[1024] = "", *grant[] = { "kms", "grant", NULL };

	must(store_init(store_path, &o, err, sizeof(err)) == 0, "store_init", err);
	must(store_open(&s, store_path, NULL, NULL, NULL, err, sizeof(err)) == 0, "store_open", err);
	store_caller_init(s, &caller, 0, 0, NULL);
	must(cli_run(s, &caller, 0, 2, grant, devnull, devnull) == 0, "kms grant", NULL);
}

static void store_reset(void)
{
	store_close(s);
	must(chdir(root) == 0, "chdir", NULL);
	rm_rf(store_path);
	rm_rf(scratch);
	must(mkdir(scratch, 0700) == 0 && chdir(scratch) == 0, "scratch dir", NULL);
	store_make();
}

__attribute__((destructor)) static void cleanup(void)
{
	if (s)
		store_close(s);
	s = NULL;
	if (root[0])
		rm_rf(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	must(sodium_init() >= 0, "sodium_init", NULL);
	snprintf(root, sizeof(root), "%s/evfs-fuzz-cli.XXXXXX", fuzz_tmp());
	must(mkdtemp(root) != NULL, "mkdtemp", NULL);
	snprintf(store_path, sizeof(store_path), "%s/store", root);
	snprintf(keyfile, sizeof(keyfile), "%s/root.key", root);
	snprintf(scratch, sizeof(scratch), "%s/cwd", root);
	must(mkdir(scratch, 0700) == 0 && chdir(scratch) == 0, "scratch dir", NULL);
	must((devnull = fopen("/dev/null", "w")) != NULL, "/dev/null", NULL);
	store_make();
	return 0;
}

static void check_size(const char *arg)
{
	unsigned long long v, back;
	char text[32];
	int rc = cli_parse_size(arg, &v);

	if (rc != 0 && rc != -EINVAL)
		abort();
	if (rc == 0) {
		snprintf(text, sizeof(text), "%llu", v);
		if (cli_parse_size(text, &back) != 0 || back != v)
			abort();
	}
}

/* Run one command: args NUL-separated in p[0..n). */
static void run_command(int json, char *p, size_t n)
{
	char *argv[MAX_ARGS + 1] = { 0 };
	int argc = 0, rc;

	for (char *end = p + n; p < end && argc < MAX_ARGS; p += strlen(p) + 1) {
		for (char *q = p; *q; q++)
			if (*q == '/')
				*q = '_';
		if (!strcmp(p, ".."))
			p[1] = p[0] = '_';
		argv[argc++] = p;
		check_size(p);
	}
	rc = cli_run(s, &caller, json, argc, argv, devnull, devnull);
	if (rc < 0 || rc > 2) {
		fprintf(stderr, "cli_run returned %d (exit codes are 0, 1, 2)\n", rc);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *cmd, *rs;
	int json, ncmd = 0;

	if (size < 1 || size > 4096)
		return 0;
	json = data[0] & 1;
	buf = malloc(size);
	if (!buf)
		abort();
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	if (++runs % RESET_EVERY == 0)
		store_reset();
	/* Commands are separated by 0x1e (record separator), at most MAX_CMDS. */
	for (cmd = buf; ncmd < MAX_CMDS; cmd = rs + 1, ncmd++) {
		rs = memchr(cmd, RS, (size_t)(buf + size - 1 - cmd));
		if (!rs) {
			run_command(json, cmd, (size_t)(buf + size - 1 - cmd));
			break;
		}
		*rs = '\0';
		run_command(json, cmd, (size_t)(rs - cmd));
	}
	free(buf);
	return 0;
}
