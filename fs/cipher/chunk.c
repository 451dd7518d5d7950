// SPDX-License-Identifier: MIT
/*
 * chunk.c - seal and open one chunk.
 *
 * This file turns (data-key handle, lineage, chunk index, plaintext) into
 * (ciphertext, tag entry) and back, and does nothing else: no I/O, no locking, no
 * allocation, so it can be called from any number of FUSE worker threads.
 *
 * Cipher: XChaCha20-Poly1305 (IETF), detached tag, so the ciphertext keeps
 * the plaintext's length and can sit page-aligned in the pool's data file
 * while its nonce and tag sit in the tag table.  Each write gets a fresh
 * 192-bit random nonce; with random nonces of that size there is no
 * practical collision bound to track.
 *
 * Associated data (32 bytes): "evfs" | format version u32 BE | lineage id
 * (16 bytes) | chunk index u64 BE.  The lineage is the owner of the data key
 * (a volume and all snapshots / clones sharing its chunks), so a chunk moved
 * to another index or another lineage fails to authenticate.
 *
 * Unencrypted lineages (chunk_plain_seal/open) store the plaintext and, in
 * the tag slot, a BLAKE2b-128 checksum over AD | data, with an all-zero nonce field
 * (checked on read): corruption and misplaced chunks are still detected and
 * read as EIO, never as other data.
 *
 * Not protected: a chunk can be replaced by an older version of the same
 * chunk (same lineage, same index).  See docs/format.md.
 */
#include "chunk.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <sodium.h>

#include "kms/kms.h"

_Static_assert(CHUNK_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(CHUNK_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(CHUNK_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

size_t chunk_overhead(void)
{
	return sizeof(struct chunk_tag);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void chunk_ad(uint8_t ad[static CHUNK_AD_BYTES], const uint8_t lineage[static CHUNK_LINEAGE_BYTES],
		     uint64_t index)
{
	memcpy(ad, "evfs", 4);
	put_be32(ad + 4, CHUNK_FORMAT_VERSION);
	memcpy(ad + 8, lineage, CHUNK_LINEAGE_BYTES);
	put_be64(ad + 24, index);
}

static void checksum(uint8_t out[static CHUNK_TAG_BYTES], const uint8_t ad[static CHUNK_AD_BYTES],
		     const uint8_t *data, size_t len)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, CHUNK_TAG_BYTES);
	crypto_generichash_update(&st, ad, CHUNK_AD_BYTES);
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, out, CHUNK_TAG_BYTES);
}

int chunk_plain_seal(const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint64_t index, const uint8_t *plain,
		     uint8_t *out, size_t len, struct chunk_tag *tag)
{
	uint8_t ad[CHUNK_AD_BYTES];

	if (len > CHUNK_MAX_BYTES)
		return -EINVAL;
	chunk_ad(ad, lineage, index);
	memset(tag, 0, sizeof(*tag));
	tag->index_le = htole64(index);
	if (out != plain)
		memcpy(out, plain, len);
	checksum(tag->mac, ad, out, len);
	return 0;
}

int chunk_plain_open(const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint64_t index, const uint8_t *in,
		     uint8_t *plain, size_t len, const struct chunk_tag *tag)
{
	uint8_t ad[CHUNK_AD_BYTES], sum[CHUNK_TAG_BYTES];

	if (len > CHUNK_MAX_BYTES)
		return -EINVAL;
	chunk_ad(ad, lineage, index);
	/* The nonce field is unused here and must be zero: a damaged tag
	 * entry is caught whichever of its 40 bytes changed. */
	checksum(sum, ad, in, len);
	if (sodium_memcmp(sum, tag->mac, sizeof(sum)) != 0 || !sodium_is_zero(tag->nonce, CHUNK_NONCE_BYTES)) {
		memset(plain, 0, len);
		return -EBADMSG;
	}
	if (plain != in)
		memcpy(plain, in, len);
	return 0;
}

int chunk_encrypt_nonce(const struct kms_dk *dk, const uint8_t lineage[static CHUNK_LINEAGE_BYTES],
			uint64_t index, const uint8_t nonce[static CHUNK_NONCE_BYTES], const uint8_t *plain,
			uint8_t *cipher, size_t len, struct chunk_tag *tag)
{
	uint8_t ad[CHUNK_AD_BYTES];

	if (len > CHUNK_MAX_BYTES || !dk)
		return -EINVAL;
	chunk_ad(ad, lineage, index);
	memset(tag, 0, sizeof(*tag));
	tag->index_le = htole64(index);
	memcpy(tag->nonce, nonce, CHUNK_NONCE_BYTES);
	/* Cannot fail for len <= CHUNK_MAX_BYTES. */
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(cipher, tag->mac, NULL, plain, len, ad,
							    sizeof(ad), NULL, tag->nonce, kms_dk_bytes(dk));
	return 0;
}

int chunk_encrypt(const struct kms_dk *dk, const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint64_t index,
		  const uint8_t *plain, uint8_t *cipher, size_t len, struct chunk_tag *tag)
{
	uint8_t nonce[CHUNK_NONCE_BYTES];

	randombytes_buf(nonce, sizeof(nonce));
	return chunk_encrypt_nonce(dk, lineage, index, nonce, plain, cipher, len, tag);
}

int chunk_decrypt(const struct kms_dk *dk, const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint64_t index,
		  const uint8_t *cipher, uint8_t *plain, size_t len, const struct chunk_tag *tag)
{
	uint8_t ad[CHUNK_AD_BYTES];

	if (len > CHUNK_MAX_BYTES || !dk)
		return -EINVAL;
	chunk_ad(ad, lineage, index);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(plain, NULL, cipher, len, tag->mac, ad,
								sizeof(ad), tag->nonce, kms_dk_bytes(dk)) != 0) {
		memset(plain, 0, len);
		return -EBADMSG;
	}
	return 0;
}
