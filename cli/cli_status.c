// SPDX-License-Identifier: MIT
/*
 * cli_status.c - evfsctl status [--json]: what the store's mount is doing.
 *
 * While the store is mounted the command runs inside the mount (forwarded
 * over the control socket like every other), so the numbers are the live
 * ones: the attached volumes with their key state, open handles and I/O
 * counters since attach, and the last errors the mount logged.  On an
 * unmounted store it says so: nothing is attached then.
 */
#include "cli_int.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

struct status_ctx {
	struct cmdctx *x;
	int n;
};

static int vol_cb(void *ctx, const struct store_volume_status *v)
{
	struct status_ctx *st = ctx;
	FILE *out = st->x->out;

	if (st->x->json) {
		fprintf(out, "%s{\"name\":", st->n ? "," : "");
		json_str(out, v->name);
		fputs(",\"project\":", out);
		json_str(out, v->project);
		fprintf(out, ",\"id\":\"%s\",\"size\":%" PRIu64 ",\"encrypted\":%s,\"key\":\"%s\",\"key_state\":\"%s\","
			"\"open_handles\":%u,\"holders\":", v->id, v->size, v->encrypted ? "true" : "false",
			v->key_id, v->key_state, v->open_handles);
		json_str(out, v->holders);
		fprintf(out, ",\"bytes_read\":%" PRIu64 ",\"bytes_written\":%" PRIu64 ",\"chunk_errors\":%" PRIu64
			"}", v->bytes_read, v->bytes_written, v->chunk_errors);
	} else {
		if (!st->n)
			fprintf(out, "%-20s %-12s %-16s %5s %14s %14s %8s\n", "VOLUME", "PROJECT", "KEY STATE", "OPEN",
				"READ", "WRITTEN", "EIO");
		fprintf(out, "%-20s %-12s %-16s %5u %14" PRIu64 " %14" PRIu64 " %8" PRIu64 "\n", v->name, v->project,
			v->encrypted ? v->key_state : "(unencrypted)", v->open_handles, v->bytes_read, v->bytes_written,
			v->chunk_errors);
	}
	st->n++;
	return 0;
}

static void uptime_text(int64_t started, char *buf, size_t n)
{
	int64_t s = (int64_t)time(NULL) - started;

	if (s < 0)
		s = 0;
	snprintf(buf, n, "%" PRId64 "h%02" PRId64 "m%02" PRId64 "s", s / 3600, s / 60 % 60, s % 60);
}

int cmd_status(struct cmdctx *x, struct args *a)
{
	struct store_mount_status m;
	struct status_ctx st = { x, 0 };
	char up[32], t[32];
	int rc;

	if ((rc = want_pos(x, a, 0, "status")))
		return rc;
	if (x->json)
		fputs("{\"volumes\":[", x->out);
	rc = store_status(x->s, &m, vol_cb, &st);
	if (rc < 0) {
		if (x->json)
			fputs("]}\n", x->out);
		evfs_err_set(x->c->err, "status: %s", evfs_strerror(rc));
		return fail(x);
	}
	uptime_text(m.started, up, sizeof(up));
	if (x->json) {
		fprintf(x->out, "],\"store\":");
		json_str(x->out, m.store);
		fprintf(x->out, ",\"mounted\":%s", m.mounted ? "true" : "false");
		if (m.mounted) {
			fprintf(x->out, ",\"pid\":%ld,\"mountpoint\":", m.pid);
			json_str(x->out, m.mountpoint);
			fprintf(x->out, ",\"uptime_seconds\":%" PRId64, (int64_t)time(NULL) - m.started);
		}
		fprintf(x->out, ",\"errors_total\":%" PRIu64 ",\"recent_errors\":[", m.errors_total);
		for (unsigned i = 0; i < m.nrecent; i++) {
			fmt_time(m.recent[i].time, t, sizeof(t));
			fprintf(x->out, "%s{\"time\":\"%s\",\"message\":", i ? "," : "", t);
			json_str(x->out, m.recent[i].msg);
			fputc('}', x->out);
		}
		fputs("]}\n", x->out);
		return 0;
	}
	if (!m.mounted) {
		fprintf(x->out, "store %s: not mounted; no volume is attached (mount it: evfs %s MOUNTPOINT)\n", m.store,
			m.store);
		return 0;
	}
	if (!st.n)
		fprintf(x->out, "(no volume attached)\n");
	fprintf(x->out, "store %s mounted at %s (pid %ld, up %s); %" PRIu64 " error%s logged\n", m.store,
		m.mountpoint, m.pid, up, m.errors_total, m.errors_total == 1 ? "" : "s");
	for (unsigned i = 0; i < m.nrecent; i++) {
		fmt_time(m.recent[i].time, t, sizeof(t));
		fprintf(x->out, "  %s  %s\n", t, m.recent[i].msg);
	}
	return 0;
}
