/* SPDX-License-Identifier: MIT */
/* cli_int.h - shared by the CLI's command files (private to cli/). */
#ifndef EVFS_CLI_INT_H
#define EVFS_CLI_INT_H

#include <stdio.h>

#include "cli.h"
#include "json.h"

#define EXIT_USAGE 2

struct args {
	int n;
	char *pos[8];
	const char *key, *desc, *with, *project, *days, *size, *from_snapshot, *from_backup, *from_image,
		*type, *snapshot, *to_store;
	int encrypt, no_encrypt, incremental, force, steal, verify, repair, quarantine, all;
};

struct cmdctx {
	struct store *s;
	const struct store_caller *c;
	int json;
	FILE *out, *err;
};

int usage(struct cmdctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fail(struct cmdctx *x);
int want_pos(struct cmdctx *x, const struct args *a, int n, const char *what);
void fmt_time(int64_t t, char *buf, size_t n);
void object_print(struct cmdctx *x, const struct meta_object *o, int detail);
int done(struct cmdctx *x, int rc, const struct meta_object *o, const char *verb);
int cmd_kms(struct cmdctx *x, const char *sub, struct args *a);
int cmd_key(struct cmdctx *x, const char *sub, struct args *a);
int cmd_status(struct cmdctx *x, struct args *a);

#endif
