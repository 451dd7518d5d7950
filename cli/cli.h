/* SPDX-License-Identifier: MIT */
/* cli.h - evfsctl's commands, run by evfsctl itself or, while the store is
 * mounted, by the mount for a control-socket request. */
#ifndef EVFS_CLI_H
#define EVFS_CLI_H

#include <stdio.h>

#include "store.h"

/* Run one command (argv[0] is the command group, e.g. "volume").  Returns
 * the exit code: 0 ok, 1 refused/failed (message on err), 2 usage. */
int cli_run(struct store *s, const struct store_caller *c, int json, int argc, char **argv, FILE *out, FILE *err);
/* Parse "10G", "512M", "4096" into bytes; -EINVAL if malformed. */
int cli_parse_size(const char *s, unsigned long long *out);
void cli_usage(FILE *f);
/* `evfsctl help [COMMAND]` (argv: what follows "help"): the usage, or one
 * command group's lines of it and what they do.  Returns 0, or 2 for an
 * unknown command or extra arguments (message on err). */
int cli_help(int argc, char **argv, FILE *out, FILE *err);

#endif
