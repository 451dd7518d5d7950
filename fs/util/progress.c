/* SPDX-License-Identifier: MIT */
/* progress.c - see progress.h. */
#include "progress.h"

#include <string.h>

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void draw(struct progress *p, uint64_t done, const struct timespec *now)
{
	static const char bar[] = "########################################";
	double el = since(&p->start, now), rate = el > 0 ? (double)done / el : 0;
	int pct = p->total ? (int)(done * 100 / p->total) : 100;
	char line[256], eta[32];
	int n;

	if (pct > 100)
		pct = 100;
	if (rate > 0 && done < p->total)
		snprintf(eta, sizeof(eta), "ETA %.0fs", (double)(p->total - done) / rate);
	else
		snprintf(eta, sizeof(eta), "%.1fs", el);
	n = snprintf(line, sizeof(line), "\r%s [%-40.*s] %3d%% %8.1f MiB/s %-10s", p->what, pct * 40 / 100, bar, pct,
		     rate / 1048576.0, eta);
	if (n > 0)
		fwrite(line, 1, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, p->f);
	fflush(p->f);
}

void progress_begin(struct progress *p, FILE *f, const char *what, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->f = f;
	p->what = what;
	p->total = total;
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	p->last = p->start;
	if (f)
		draw(p, 0, &p->start);
}

void progress_update(struct progress *p, uint64_t done)
{
	struct timespec now;

	if (!p->f)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (since(&p->last, &now) < 0.1)
		return;
	p->last = now;
	draw(p, done, &now);
}

void progress_end(struct progress *p, int ok)
{
	struct timespec now;

	if (!p->f)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (ok)
		draw(p, p->total, &now);
	fwrite("\n", 1, 1, p->f);
	fflush(p->f);
	p->f = NULL;
}
