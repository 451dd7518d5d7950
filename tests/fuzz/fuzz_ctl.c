// SPDX-License-Identifier: MIT
/*
 * fuzz_ctl.c - the control-socket request parser, ctl_request_parse().
 *
 * Any local user can connect to the mount's socket (mode 0666), so a
 * request is hostile input to a root daemon.  Properties checked on every
 * input besides "no crash, no leak, no UB":
 *   - a refused request returns -EPROTO and leaves nothing allocated;
 *   - an accepted one obeys the limits (64 args of 4 KiB, argv NULL
 *     terminated, project shorter than 64 bytes, no NUL inside a string);
 *   - the encoding is canonical: re-encoding the parsed request the way
 *     ctl_client_run does gives back exactly the input bytes.
 * The same bytes also go to ctl_forward_reply, the parser of another
 * host's answer to a forwarded command (a host of the store may be
 * compromised): it returns -EPROTO or an exit code, and nothing else.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	struct ctl_request r;
	int rc;

	if (!sink && !(sink = fopen("/dev/null", "w")))
		abort();
	rc = ctl_forward_reply(data, size, sink, sink);
	if (rc < 0 && rc != -EPROTO)
		abort();
	rc = ctl_request_parse(data, size, &r);

	if (rc < 0) {
		if (rc != -EPROTO || r.argc != 0)
			abort();
		return 0;
	}
	if (rc != 0 || r.argc < 0 || (unsigned)r.argc > CTL_MAX_ARGS || r.argv[r.argc] != NULL ||
	    strlen(r.project) >= sizeof(r.project))
		abort();

	/* Re-encode (the client's layout, without the length prefix). */
	uint8_t *buf = malloc(size ? size : 1);
	size_t at = 0, plen = strlen(r.project);

	if (!buf)
		abort();
	if (at + 16 + plen > size)
		abort();
	memcpy(buf, data, 4); /* magic: checked by the parser */
	put32(buf + 4, r.flags);
	put32(buf + 8, (uint32_t)plen);
	memcpy(buf + 12, r.project, plen);
	at = 12 + plen;
	put32(buf + at, (uint32_t)r.argc);
	at += 4;
	for (int i = 0; i < r.argc; i++) {
		size_t l = strlen(r.argv[i]);

		if (l > CTL_MAX_ARG || at + 4 + l > size)
			abort();
		put32(buf + at, (uint32_t)l);
		memcpy(buf + at + 4, r.argv[i], l);
		at += 4 + l;
	}
	if (at != size || memcmp(buf, data, size) != 0)
		abort();
	free(buf);
	ctl_request_free(&r);
	if (r.argc != 0)
		abort();
	return 0;
}
