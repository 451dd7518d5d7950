/* SPDX-License-Identifier: MIT */
/*
 * chunk.h - the chunk cipher (pure: no I/O, no locks, no allocation).
 *
 * A chunk is CHUNK_PLAIN_BYTES (4 KiB by default; the pool's chunk size may
 * be any power of two from 4 KiB to 64 KiB) of volume data.  Its ciphertext
 * has the same length and is stored page-aligned in the pool's data file;
 * its 24-byte nonce and 16-byte Poly1305 tag live apart, in a 64-byte entry
 * of the pool's tag table (struct chunk_tag).  The associated data binds the
 * chunk's identity:  "evfs" | format version (u32 BE) | lineage (16 bytes)
 * | chunk index (u64 BE).  Unencrypted lineages use the same layout with a
 * zero nonce and a BLAKE2b-128 checksum over AD|data in place of the tag,
 * so corruption is detected (not forgery: there is no key).
 */
#ifndef EVFS_CHUNK_H
#define EVFS_CHUNK_H

#include <stddef.h>
#include <stdint.h>

struct kms_dk;

#define CHUNK_FORMAT_VERSION 1u
#define CHUNK_PLAIN_BYTES 4096u       /* default chunk size */
#define CHUNK_MIN_BYTES 4096u
#define CHUNK_MAX_BYTES 65536u
#define CHUNK_NONCE_BYTES 24u
#define CHUNK_TAG_BYTES 16u
#define CHUNK_LINEAGE_BYTES 16u
#define CHUNK_KEY_BYTES 32u
#define CHUNK_AD_BYTES 32u            /* 4 + 4 + 16 + 8 */

#define CHUNK_WUR __attribute__((warn_unused_result))

/* One tag-table entry: exactly 64 bytes on disk, little-endian index. */
struct chunk_tag {
	uint8_t nonce[CHUNK_NONCE_BYTES];
	uint8_t mac[CHUNK_TAG_BYTES];
	uint64_t index_le;     /* logical chunk index written here (for fsck) */
	uint64_t seq_le;       /* reserved: write sequence (0 in format 1) */
	uint32_t dkgen_le;     /* data-key generation that sealed it (0 in format 1) */
	uint8_t reserved[4];
};
_Static_assert(sizeof(struct chunk_tag) == 64, "tag entry is 64 bytes");

/* Bytes stored per chunk besides its ciphertext (the tag entry). */
size_t chunk_overhead(void);

/* Seal len bytes (len <= CHUNK_MAX_BYTES) of chunk `index` of `lineage`
 * under the data key `dk` (a handle: the cipher is the only code above
 * kms/ that reads its bytes).  plain and cipher may be the same buffer.
 * Fresh random nonce.  Returns 0, or -EINVAL (len too large, dk NULL). */
int chunk_encrypt(const struct kms_dk *dk, const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint64_t index,
		  const uint8_t *plain, uint8_t *cipher, size_t len, struct chunk_tag *tag) CHUNK_WUR;
/* Same with a caller-chosen nonce (one getrandom per pass, KATs). */
int chunk_encrypt_nonce(const struct kms_dk *dk, const uint8_t lineage[static CHUNK_LINEAGE_BYTES],
			uint64_t index, const uint8_t nonce[static CHUNK_NONCE_BYTES], const uint8_t *plain,
			uint8_t *cipher, size_t len, struct chunk_tag *tag) CHUNK_WUR;
/* Verify and open.  -EBADMSG on any mismatch (tampered bytes, wrong index,
 * lineage or key) with plain zeroed; never partial plaintext.  In place OK.
 * -EINVAL for len too large or dk NULL. */
int chunk_decrypt(const struct kms_dk *dk, const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint64_t index,
		  const uint8_t *cipher, uint8_t *plain, size_t len, const struct chunk_tag *tag) CHUNK_WUR;

/* Unencrypted lineages: the data is stored as it is and the tag holds a
 * BLAKE2b-128 checksum over the associated data and the data, with an
 * all-zero nonce field, so damaged or misplaced chunks still read as
 * -EBADMSG, never as other data.  Same buffer rules as above. */
int chunk_plain_seal(const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint64_t index, const uint8_t *plain,
		     uint8_t *out, size_t len, struct chunk_tag *tag) CHUNK_WUR;
int chunk_plain_open(const uint8_t lineage[static CHUNK_LINEAGE_BYTES], uint64_t index, const uint8_t *in,
		     uint8_t *plain, size_t len, const struct chunk_tag *tag) CHUNK_WUR;

/* --- chunk_math.c: pure offset arithmetic ------------------------------ */
/* Chunks touched by [off, off+len): first index and count (0 if len==0). */
void chunk_range(uint64_t off, uint64_t len, uint32_t chunk_size, uint64_t *first, uint64_t *count);
/* For chunk `index` within [off, off+len): offset inside the chunk where
 * the range starts, bytes of the chunk covered, and offset into the
 * caller's buffer.  The chunk must intersect the range. */
void chunk_piece(uint64_t off, uint64_t len, uint32_t chunk_size, uint64_t index, uint32_t *in_chunk,
		 uint32_t *n, uint64_t *in_buf);
/* Number of chunks of a volume of `size` bytes. */
uint64_t chunk_count(uint64_t size, uint32_t chunk_size);
/* 1 if chunk_size is a supported power of two. */
int chunk_size_valid(uint64_t chunk_size);
/* 1 if all len bytes are zero (word-at-a-time). */
int chunk_is_zero(const uint8_t *p, size_t len);

#endif
