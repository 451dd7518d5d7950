/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - the mount's control socket.
 *
 * While a store is mounted, evfsctl sends its command line here and the
 * mount runs it (store_command_fn) with the caller's credentials, taken
 * from SO_PEERCRED, never from the request.  The socket lives at
 * /run/evfs/<16 hex of BLAKE2b(realpath(store))>.sock, mode 0666 (the
 * credentials, not the file mode, decide what a caller may do).
 *
 * Wire format (all integers u32 little-endian):
 *   request:  "EVC1" | flags (bit 0: --json, bit 1: progress bars wanted) |
 *             project length | project | argc | argc x (length | bytes)
 *   response: zero or more progress frames (CTL_FRAME_PROGRESS | length |
 *             text for the caller's terminal), then
 *             exit code | stdout length | stdout | stderr length | stderr
 * A request is limited to 64 args of 4 KiB; replies to 16 MiB.
 */
#ifndef EVFS_CTL_H
#define EVFS_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

#define CTL_WUR __attribute__((warn_unused_result))
#define CTL_MAX_ARGS 64u
#define CTL_MAX_ARG 4096u
#define CTL_MAX_REPLY (16u << 20)
#define CTL_JSON 1u                       /* request flags */
#define CTL_PROGRESS 2u
#define CTL_FRAME_PROGRESS 0xffffffffu    /* never an exit code */

struct ctl_server;

/* Socket path for a store directory (realpath'd). */
int ctl_socket_path(const char *store_dir, char *out, size_t outsz) CTL_WUR;

/* Start serving (one thread per connection; commands run one at a time). */
int ctl_server_start(struct ctl_server **out, struct store *s, store_command_fn fn) CTL_WUR;
void ctl_server_stop(struct ctl_server *srv);

/* Client: run a command on the mount serving store_dir (flags: CTL_JSON,
 * CTL_PROGRESS).  Returns the exit code (>= 0) with stdout/stderr text
 * copied to out/err (progress text to err as it arrives), or -ENOENT /
 * -ECONNREFUSED when no mount serves the store. */
int ctl_client_run(const char *store_dir, const char *project, unsigned flags, int argc, char **argv, FILE *out,
		   FILE *err) CTL_WUR;

/* Requests between the hosts of a shared store (store_volume_forward):
 * "EVF1" | uid | gid | a request as above from "EVC1" on; the answer is
 * exit code | stdout length | stdout | stderr length | stderr.  Only
 * snapshot / image / backup create are forwarded.  ctl_forward_build: the
 * request (malloc'd) for caller c; -EINVAL for a command that is not
 * forwarded.  ctl_forward_serve (a store_forward_fn, ctx = the server):
 * runs it as the control socket runs a command, with c's uid and gid as
 * the requesting mount had them from SO_PEERCRED.  ctl_forward_reply:
 * copies the answer's text to out/err, returns its exit code or -EPROTO. */
int ctl_forward_build(const struct store_caller *c, unsigned flags, int argc, char **argv, void **req,
		      size_t *len) CTL_WUR;
void ctl_forward_serve(void *srv, const void *req, size_t len, void **reply, size_t *rlen);
int ctl_forward_reply(const void *reply, size_t rlen, FILE *out, FILE *err) CTL_WUR;

/* Parse / build messages (exposed for the fuzz harness and tests). */
struct ctl_request {
	uint32_t flags;
	char project[64];
	int argc;
	char *argv[CTL_MAX_ARGS + 1];
};
/* Parse buf[len] into r (argv strings allocated; ctl_request_free). */
int ctl_request_parse(const uint8_t *buf, size_t len, struct ctl_request *r) CTL_WUR;
void ctl_request_free(struct ctl_request *r);

#endif
