// SPDX-License-Identifier: MIT
/*
 * volume_par.c - fs/par.c, the fork-join pool that splits the chunk crypto
 * of large writes: every index runs exactly once, whatever the number of
 * concurrent callers, helpers and part sizes (the queue filling up and
 * parts taken back by their caller included).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "par.h"
#include "volume_fx.h"

struct cover {
	atomic_uint hits[512];
	atomic_uint calls;
};

static void cover_part(void *arg, size_t from, size_t to)
{
	struct cover *c = arg;

	atomic_fetch_add(&c->calls, 1);
	for (size_t i = from; i < to; i++)
		atomic_fetch_add(&c->hits[i], 1);
}

static void cover_check(struct par *p, size_t n, size_t min_part)
{
	struct cover c;

	memset(&c, 0, sizeof(c));
	par_for(p, n, min_part, cover_part, &c);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(atomic_load(&c.hits[i]) == 1, "index %zu of %zu (min_part %zu) ran %u times", i, n,
			      min_part, atomic_load(&c.hits[i]));
	for (size_t i = n; i < 512; i++)
		ck_assert_uint_eq(atomic_load(&c.hits[i]), 0);
}

struct caller_arg {
	struct par *p;
	unsigned seed;
};

static void *caller_main(void *arg)
{
	struct caller_arg *a = arg;

	for (int r = 0; r < 300; r++)
		cover_check(a->p, (size_t)(rand_r(&a->seed) % 512), 1 + (size_t)(rand_r(&a->seed) % 48));
	return NULL;
}

START_TEST(test_par_inline)
{
	struct par *p;

	cover_check(NULL, 300, 1);
	ck_assert_int_eq(par_create(&p, 0), 0);
	cover_check(p, 300, 1);
	cover_check(p, 0, 1);
	par_destroy(p);
	par_destroy(NULL);
}
END_TEST

/* 16 callers at once on 3 helpers: up to 16 x 3 queued parts, more than the
 * queue holds, so some calls run their overflow inline and most take parts
 * back from the queue while the helpers are busy. */
START_TEST(test_par_concurrent_callers)
{
	struct caller_arg a[16];
	pthread_t th[16];
	struct par *p;

	ck_assert_int_eq(par_create(&p, 3), 0);
	for (unsigned i = 0; i < 16; i++) {
		a[i] = (struct caller_arg){ p, 1234u + i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, caller_main, &a[i]), 0);
	}
	for (unsigned i = 0; i < 16; i++)
		pthread_join(th[i], NULL);
	cover_check(p, 512, 1);
	par_destroy(p);
}
END_TEST

void volume_add_par(TCase *tc)
{
	tcase_add_test(tc, test_par_inline);
	tcase_add_test(tc, test_par_concurrent_callers);
}
