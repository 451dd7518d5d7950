// SPDX-License-Identifier: MIT
/*
 * fuzz_config.c - the store configuration parser, config_load() (inih with
 * evfs's own line reader and value rules).
 *
 * The input is the whole evfs.ini, handed over as a memfd through its
 * /proc/self/fd path (config_load opens a path; nothing touches the disk).
 * Properties checked besides "no crash, no leak, no UB":
 *   - failure is a negative errno with a one-line message naming the file;
 *   - success gives values that obey the documented rules (absolute paths,
 *     valid chunk size, both-or-neither key_source / key_path), and
 *     config_store() writes them back to a file that loads to the same
 *     values (the "a stored file always loads back" promise of config.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chunk.h"
#include "config.h"

static int memfd = -1;
static char dir[64], mpath[64], rpath[96];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/evfs-fuzz-config.XXXXXX");
	if (!mkdtemp(dir) || (memfd = memfd_create("evfs.ini", MFD_CLOEXEC)) < 0)
		abort();
	snprintf(mpath, sizeof(mpath), "/proc/self/fd/%d", memfd);
	snprintf(rpath, sizeof(rpath), "%s/roundtrip.ini", dir);
	return 0;
}

__attribute__((destructor)) static void cleanup(void)
{
	if (dir[0]) {
		unlink(rpath);
		rmdir(dir);
	}
}

static void check_ok(const struct evfs_config *c)
{
	if (!memchr(c->region, 0, sizeof(c->region)) || !memchr(c->backup_dir, 0, sizeof(c->backup_dir)) ||
	    !memchr(c->key_path, 0, sizeof(c->key_path)) || !memchr(c->log_file, 0, sizeof(c->log_file)) ||
	    !memchr(c->security_admins, 0, sizeof(c->security_admins)) ||
	    !memchr(c->default_project, 0, sizeof(c->default_project)))
		abort();
	if (c->backup_dir[0] != '/' || (c->log_file[0] && c->log_file[0] != '/') ||
	    (c->key_path[0] && c->key_path[0] != '/') || !c->key_source[0] != !c->key_path[0] ||
	    !chunk_size_valid(c->chunk_size) || !c->region[0] || !c->default_project[0] ||
	    (c->allow_other != 0 && c->allow_other != 1))
		abort();
}

static void same(const struct evfs_config *a, const struct evfs_config *b)
{
	if (strcmp(a->region, b->region) || strcmp(a->backup_dir, b->backup_dir) || a->chunk_size != b->chunk_size ||
	    strcmp(a->kms_backend, b->kms_backend) || strcmp(a->key_source, b->key_source) ||
	    strcmp(a->key_path, b->key_path) || strcmp(a->security_admins, b->security_admins) ||
	    strcmp(a->default_project, b->default_project) || a->allow_other != b->allow_other ||
	    strcmp(a->log_file, b->log_file))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evfs_config c, back;
	char err[1024];
	int rc;

	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	memset(err, 'x', sizeof(err));
	rc = config_load(&c, mpath, dir, err, sizeof(err));
	if (!memchr(err, 0, sizeof(err)))
		abort();
	if (rc) {
		if (rc > 0 || !err[0] || strncmp(err, mpath, strlen(mpath)) || strchr(err, '\n'))
			abort();
		return 0;
	}
	if (err[0])
		abort();
	check_ok(&c);
	unlink(rpath);
	if (config_store(&c, rpath) || config_load(&back, rpath, dir, err, sizeof(err)))
		abort();
	same(&c, &back);
	return 0;
}
