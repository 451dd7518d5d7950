// SPDX-License-Identifier: MIT
/*
 * store_status.c - what a running mount is doing, for evfsctl status and
 * the mount's metrics file: the attached volumes with their key state,
 * open handles and I/O counters, and the last errors the mount logged.
 *
 * The counters live where the I/O happens (the engine's volume handles,
 * lock-free); this file only collects them.  The attachments are listed
 * under the store lock, each handle held by a reference while it is read,
 * so a detach meanwhile is harmless.  The ring of recent errors is fed by
 * the mount's log function (store_error_note): in-process evfsctl runs keep
 * it empty.  Presentation (text, JSON, the Prometheus format) is the
 * caller's.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void store_error_note(struct store *s, const char *msg)
{
	pthread_mutex_lock(&s->cause_lock);
	s->recent[s->nrecent % STORE_RECENT].time = (int64_t)time(NULL);
	snprintf(s->recent[s->nrecent % STORE_RECENT].msg, sizeof(s->recent[0].msg), "%s", msg);
	s->nrecent++;
	pthread_mutex_unlock(&s->cause_lock);
}

int store_status(struct store *s, struct store_mount_status *m, store_volume_status_cb cb, void *ctx)
{
	char (*ids)[META_ID_LEN + 1] = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	m->mounted = s->mounted;
	m->pid = (long)getpid();
	m->started = s->opened;
	snprintf(m->mountpoint, sizeof(m->mountpoint), "%s", s->mountpoint ? s->mountpoint : "");
	snprintf(m->store, sizeof(m->store), "%s", s->dir);
	pthread_mutex_lock(&s->cause_lock);
	m->errors_total = s->nrecent;
	for (unsigned i = 0; i < STORE_RECENT && i < s->nrecent; i++)   /* newest first */
		m->recent[m->nrecent++] = s->recent[(s->nrecent - 1 - i) % STORE_RECENT];
	pthread_mutex_unlock(&s->cause_lock);

	pthread_mutex_lock(&s->lock);
	for (struct attachment *a = s->attached; a && !rc; a = a->next) {
		if (n == cap) {
			void *nv = realloc(ids, (cap = cap ? 2 * cap : 16) * sizeof(*ids));

			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			ids = nv;
		}
		memcpy(ids[n++], a->id, sizeof(ids[0]));
	}
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; !rc && i < n; i++) {
		struct store_volume_status vs;
		struct meta_object o;
		struct vol_stats st;
		struct vol *v;

		if (meta_object_get(s->meta, ids[i], &o) < 0 || engine_vol_lookup(&v, s->eng, ids[i]) < 0)
			continue;                    /* deleted or detached meanwhile */
		vol_stats(v, &st);
		engine_vol_close(v);
		memset(&vs, 0, sizeof(vs));
		snprintf(vs.name, sizeof(vs.name), "%s", o.name);
		snprintf(vs.project, sizeof(vs.project), "%s", o.project);
		snprintf(vs.id, sizeof(vs.id), "%s", o.id);
		snprintf(vs.key_id, sizeof(vs.key_id), "%s", o.key_id);
		vs.encrypted = o.encrypted;
		vs.size = o.size;
		vs.key_state = o.encrypted ? store_key_state_of(s, o.project, o.key_id) : "-";
		vs.open_handles = (unsigned)store_file_holders(s, &o, vs.holders, sizeof(vs.holders));
		vs.bytes_read = st.bytes_read;
		vs.bytes_written = st.bytes_written;
		vs.chunk_errors = st.chunk_errors;
		rc = cb(ctx, &vs);
	}
	free(ids);
	return rc;
}
