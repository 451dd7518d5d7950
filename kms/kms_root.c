/* SPDX-License-Identifier: MIT */
/*
 * kms_root.c - the root key: where it comes from and what is derived from it.
 *
 * The root key is the one secret the key store cannot hold: everything in
 * the store (kms.db or its PostgreSQL schema) that matters is sealed or
 * MACed under keys derived from it, and it is never written to the store.
 * It comes from one of two places:
 *
 *   KEYFILE     a file of exactly 32 raw bytes.  kms_create() makes it with
 *               O_CREAT|O_EXCL, mode 0400, from randombytes when it does not
 *               exist yet; any other size is -EINVAL (a truncated or
 *               hex-encoded file must not be silently accepted).
 *   PASSPHRASE  the first line of a file (trailing "\n" or "\r\n" stripped,
 *               1..4095 bytes; a new store needs KMS_PASSPHRASE_MIN or more) run through Argon2id (crypto_pwhash, ALG
 *               ARGON2ID13) with a random 16-byte salt and the cost limits
 *               stored in the settings table at create (INTERACTIVE today;
 *               stored so a later change of default keeps old stores
 *               opening).
 *
 * From the root key, crypto_kdf_derive_from_key with context "evfsroot"
 * derives independent subkeys, so no key is used for two purposes:
 *   id 1  verifier: BLAKE2b-256 keyed MAC of the fixed string below.  The MAC
 *         (not the key, not a hash of it) is stored; a wrong key file or
 *         passphrase fails sodium_memcmp against it -> -EKEYREJECTED.
 *   id 2  wrap:  XChaCha20-Poly1305 key sealing CMK material (kms_cmk.c)
 *   id 3  audit: BLAKE2b key of the audit MAC chain (kms_audit.c)
 *
 * Buffers: the root key is read directly into the caller's sodium_malloc'd
 * struct kms_secrets; the passphrase is read into a sodium_malloc buffer and
 * freed (wiped) on every path; stack temporaries are sodium_memzero'd.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "kms_internal.h"

#define PASSPHRASE_BUF 4096u
static const char verifier_msg[] = "evfs kms root key verifier v1";

static int read_full(int fd, uint8_t *buf, size_t n, size_t *got)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = read(fd, buf + off, n - off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		off += (size_t)r;
	}
	*got = off;
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = write(fd, buf + off, n - off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)r;
	}
	return 0;
}

static int keyfile_create(const char *path, uint8_t root[static KMS_KEY_BYTES])
{
	int fd, rc;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	randombytes_buf(root, KMS_KEY_BYTES);
	rc = fchmod(fd, 0400) < 0 ? -errno : 0;
	if (rc == 0)
		rc = write_full(fd, root, KMS_KEY_BYTES);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		sodium_memzero(root, KMS_KEY_BYTES);
		(void)unlink(path);
	}
	return rc;
}

/* Load the 32-byte key file at path into root.  create: make the file if
 * it does not exist (*created set to 1 then).  -ENOENT missing, -EINVAL not
 * a regular file of exactly 32 bytes, other -errno from the syscalls. */
int kms_keyfile_load(const char *path, int create, uint8_t root[static KMS_KEY_BYTES], int *created)
{
	struct stat st;
	size_t got = 0;
	uint8_t extra;
	int fd, rc;

	if (created)
		*created = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT || !create)
			return rc;
		rc = keyfile_create(path, root);
		if (rc == -EEXIST)      /* lost a race: read the winner's key */
			return kms_keyfile_load(path, 0, root, NULL);
		if (rc == 0 && created)
			*created = 1;
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size != (off_t)KMS_KEY_BYTES) {
		rc = -EINVAL;
		goto out;
	}
	rc = read_full(fd, root, KMS_KEY_BYTES, &got);
	if (rc == 0 && got != KMS_KEY_BYTES)
		rc = -EINVAL;
	if (rc == 0 && (rc = read_full(fd, &extra, 1, &got)) == 0 && got != 0)
		rc = -EINVAL;      /* grew while we read it */
out:
	if (rc < 0)
		sodium_memzero(root, KMS_KEY_BYTES);
	close(fd);
	return rc;
}

/* Derive the root key from the first line of the passphrase file.
 * -ENOENT missing file, -EINVAL empty, shorter than min_len (KMS_PASSPHRASE_MIN
 * for a new store; 1 to open one) or over-long first line, -ENOMEM if
 * Argon2id cannot get its memory. */
int kms_passphrase_derive(const char *path, const uint8_t *salt, unsigned long long opslimit, size_t memlimit,
			  size_t min_len, uint8_t root[static KMS_KEY_BYTES])
{
	uint8_t *buf;
	size_t got = 0, len;
	uint8_t *nl;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = sodium_malloc(PASSPHRASE_BUF);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	rc = read_full(fd, buf, PASSPHRASE_BUF, &got);
	close(fd);
	if (rc < 0)
		goto out;
	nl = memchr(buf, '\n', got);
	if (!nl && got == PASSPHRASE_BUF) {
		rc = -EINVAL;              /* first line too long */
		goto out;
	}
	len = nl ? (size_t)(nl - buf) : got;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0 || len < min_len) {
		rc = -EINVAL;
		goto out;
	}
	if (crypto_pwhash(root, KMS_KEY_BYTES, (const char *)buf, len, salt, opslimit, memlimit,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		rc = -ENOMEM;
out:
	if (rc < 0)
		sodium_memzero(root, KMS_KEY_BYTES);
	sodium_free(buf);                  /* wipes the passphrase */
	return rc;
}

int kms_subkeys_derive(struct kms_secrets *sec)
{
	if (crypto_kdf_derive_from_key(sec->wrap, KMS_KEY_BYTES, KMS_SUBKEY_WRAP, KMS_KDF_CONTEXT, sec->root) != 0 ||
	    crypto_kdf_derive_from_key(sec->audit, KMS_KEY_BYTES, KMS_SUBKEY_AUDIT, KMS_KDF_CONTEXT, sec->root) != 0)
		return -EINVAL;
	return 0;
}

int kms_verifier_compute(const uint8_t root[static KMS_KEY_BYTES], uint8_t out[static KMS_MAC_BYTES])
{
	uint8_t sub[KMS_KEY_BYTES];
	int rc = 0;

	if (crypto_kdf_derive_from_key(sub, sizeof(sub), KMS_SUBKEY_VERIFY, KMS_KDF_CONTEXT, root) != 0 ||
	    crypto_generichash(out, KMS_MAC_BYTES, (const unsigned char *)verifier_msg, sizeof(verifier_msg) - 1,
			       sub, sizeof(sub)) != 0)
		rc = -EINVAL;
	sodium_memzero(sub, sizeof(sub));
	return rc;
}
