/* SPDX-License-Identifier: MIT */
/*
 * kms_util.c - small pure helpers of the KMS: argument validation, UUIDs,
 * big-endian encoding, state names.
 *
 * Everything here is free of I/O, locks and secrets, so it is safe to call
 * from any thread without the handle's lock.  Validation is where caller
 * strings (borrowed, NUL-terminated, possibly hostile) are bounded before
 * anything else reads them: strnlen with a limit, never strlen.
 *
 *   project   1..63 printable ASCII characters, no blanks
 *   user      0..63 bytes (NULL is invalid)
 *   alias     1..63 chars of [A-Za-z0-9/_.-], not starting with "evs/"
 *             (reserved for keys the KMS makes itself, e.g. evs/default)
 *   KEY name  1..63 bytes: an id or an alias, resolved in kms_keys.c
 *   key id    a random (version 4) UUID in lower-case text, 36 chars
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "kms_internal.h"


int64_t kms_now(void)
{
	return (int64_t)time(NULL);
}

void kms_be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t kms_be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void kms_be64_put(uint8_t *p, uint64_t v)
{
	kms_be32_put(p, (uint32_t)(v >> 32));
	kms_be32_put(p + 4, (uint32_t)v);
}

static int strlen_ok(const char *s, size_t min, size_t max)
{
	size_t n;

	if (!s)
		return 0;
	n = strnlen(s, max + 1);
	return n >= min && n <= max;
}

/* Project names: 1..63 printable ASCII characters, no blanks. */
int kms_check_project(const char *p)
{
	if (!strlen_ok(p, 1, KMS_PROJECT_MAX - 1))
		return -EINVAL;
	for (; *p; p++)
		if (*p <= ' ' || *p > '~')
			return -EINVAL;
	return 0;
}

int kms_check_caller(const struct kms_caller *c)
{
	if (!c || !strlen_ok(c->user, 0, KMS_USER_MAX - 1))
		return -EINVAL;
	return kms_check_project(c->project);
}

/* 1..63 chars of [A-Za-z0-9/_.-], not starting with the reserved "evs/". */
int kms_check_alias(const char *alias)
{
	const char *p;

	if (!strlen_ok(alias, 1, KMS_ALIAS_MAX - 1) || strncmp(alias, "evs/", 4) == 0)
		return -EINVAL;
	for (p = alias; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '/' || *p == '_' || *p == '.' || *p == '-'))
			return -EINVAL;
	return 0;
}

/* A KEY argument: an id or an alias (including evs/...). */
int kms_check_name(const char *name)
{
	return strlen_ok(name, 1, KMS_ALIAS_MAX - 1) ? 0 : -EINVAL;
}

int kms_is_uuid(const char *s)
{
	size_t i;

	if (!s || strnlen(s, KMS_ID_LEN + 1) != KMS_ID_LEN)
		return 0;
	for (i = 0; i < KMS_ID_LEN; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

/* Random (version 4) UUID, lower-case text. Cannot fail. */
void kms_uuid_new(char out[static KMS_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	size_t i, o = 0;

	randombytes_buf(b, sizeof(b));
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	for (i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
}

const char *kms_state_name(enum kms_key_state s)
{
	switch (s) {
	case KMS_KEY_ENABLED:
		return "Enabled";
	case KMS_KEY_DISABLED:
		return "Disabled";
	case KMS_KEY_PENDING_DELETION:
		return "PendingDeletion";
	case KMS_KEY_DELETED:
		return "Deleted";
	}
	return "Unknown";
}
