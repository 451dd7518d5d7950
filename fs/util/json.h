/* SPDX-License-Identifier: MIT */
/* json.h - the one JSON string writer of evfsctl's --json output and fsck. */
#ifndef EVFS_JSON_H
#define EVFS_JSON_H

#include <stdio.h>

/* Write s as a quoted JSON string (", \ and control characters escaped). */
void json_str(FILE *f, const char *s);

#endif
