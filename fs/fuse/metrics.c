// SPDX-License-Identifier: MIT
/*
 * metrics.c - the mount's counters as a Prometheus text file.
 *
 * When [mount] metrics_file is set, a thread of the mount rewrites that
 * file every METRICS_PERIOD seconds (and once at start) with what
 * evfsctl status shows: the mount's uptime and logged errors, and per
 * attached volume its bytes read and written, chunk errors (EIO), open
 * handles and whether its key is Enabled.  node_exporter's textfile
 * collector, or anything that reads the exposition format, scrapes it.
 * The file is written to a temporary name and renamed, so a reader never
 * sees half of it.  The data come from store_status(); this file only
 * formats them.
 */
#include "fs_ops.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define METRICS_PERIOD 5           /* seconds between rewrites */

struct fs_metrics {
	struct fs_ctx *ctx;
	char path[PATH_MAX];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int stop;                  /* protected by lock */
};

/* A label value: backslash, double quote and newline escaped. */
static void label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

struct emit {
	FILE *f;
	const char *store;
	int pass;                  /* which metric this walk writes */
};

static const struct {
	const char *name, *type, *help;
} vol_metrics[] = {
	{ "evfs_volume_read_bytes_total", "counter", "Bytes read from the volume since it was attached." },
	{ "evfs_volume_written_bytes_total", "counter", "Bytes written to the volume since it was attached." },
	{ "evfs_volume_chunk_errors_total", "counter",
	  "Chunks that failed authentication or could not be read (EIO) since attach." },
	{ "evfs_volume_open_handles", "gauge", "Files of the mount holding the volume open." },
	{ "evfs_volume_key_enabled", "gauge", "1 if the volume's key is Enabled (or it is not encrypted)." },
};

static int vol_cb(void *ctx, const struct store_volume_status *v)
{
	struct emit *e = ctx;
	uint64_t val[] = { v->bytes_read, v->bytes_written, v->chunk_errors, v->open_handles,
			   !v->encrypted || strcmp(v->key_state, "Enabled") == 0 };

	fprintf(e->f, "%s{store=\"", vol_metrics[e->pass].name);
	label(e->f, e->store);
	fputs("\",project=\"", e->f);
	label(e->f, v->project);
	fputs("\",volume=\"", e->f);
	label(e->f, v->name);
	fprintf(e->f, "\"} %" PRIu64 "\n", val[e->pass]);
	return 0;
}

static int metrics_write(struct fs_metrics *m)
{
	struct store *s = m->ctx->s;
	struct store_mount_status ms;
	char tmp[PATH_MAX + 8];
	struct emit e;
	FILE *f;
	int rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", m->path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	e.f = f;
	e.store = m->ctx->store_dir;
	for (e.pass = 0; !rc && e.pass < (int)(sizeof(vol_metrics) / sizeof(vol_metrics[0])); e.pass++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", vol_metrics[e.pass].name, vol_metrics[e.pass].help,
			vol_metrics[e.pass].name, vol_metrics[e.pass].type);
		rc = store_status(s, &ms, vol_cb, &e);
	}
	if (!rc) {
		fputs("# HELP evfs_up 1 while the mount serves the store.\n# TYPE evfs_up gauge\nevfs_up{store=\"", f);
		label(f, e.store);
		fputs("\"} 1\n# HELP evfs_uptime_seconds Seconds since the mount opened the store.\n"
		      "# TYPE evfs_uptime_seconds gauge\nevfs_uptime_seconds{store=\"", f);
		label(f, e.store);
		fprintf(f, "\"} %" PRId64 "\n", (int64_t)time(NULL) - ms.started);
		fputs("# HELP evfs_errors_logged_total Errors and warnings the mount logged.\n"
		      "# TYPE evfs_errors_logged_total counter\nevfs_errors_logged_total{store=\"", f);
		label(f, e.store);
		fprintf(f, "\"} %" PRIu64 "\n", ms.errors_total);
	}
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, m->path) < 0)
		rc = -errno;
	if (rc)
		(void)unlink(tmp);
	return rc;
}

static void *metrics_main(void *arg)
{
	struct fs_metrics *m = arg;
	int warned = 0;

	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		struct timespec until;
		int rc;

		pthread_mutex_unlock(&m->lock);
		rc = metrics_write(m);
		if (rc && !warned++)
			fs_log(m->ctx, LOG_WARNING, "metrics_file %s cannot be written (%s); retrying every %d s",
			       m->path, evfs_strerror(rc), METRICS_PERIOD);
		else if (!rc)
			warned = 0;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += METRICS_PERIOD;
		pthread_mutex_lock(&m->lock);
		if (!m->stop)
			pthread_cond_timedwait(&m->wake, &m->lock, &until);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int fs_metrics_start(struct fs_ctx *ctx)
{
	const struct evfs_config *cfg = store_config(ctx->s);
	struct fs_metrics *m;

	if (!cfg || !cfg->metrics_file[0])
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->ctx = ctx;
	snprintf(m->path, sizeof(m->path), "%s", cfg->metrics_file);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->wake, NULL);
	if (pthread_create(&m->thread, NULL, metrics_main, m) != 0) {
		pthread_cond_destroy(&m->wake);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return -EAGAIN;
	}
	ctx->metrics = m;
	return 0;
}

void fs_metrics_stop(struct fs_ctx *ctx)
{
	struct fs_metrics *m = ctx->metrics;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = 1;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	(void)unlink(m->path);          /* no mount, no numbers: stale ones would mislead */
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	free(m);
	ctx->metrics = NULL;
}
