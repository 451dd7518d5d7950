// SPDX-License-Identifier: MIT
/*
 * chunk_math.c - offset and size arithmetic of the chunk layer.
 *
 * Pure functions, exhaustively tested in tests/chunk: a byte range
 * [off, off+len) of a volume maps to the chunks [first, first+count), each
 * covered from `in_chunk` for `n` bytes, taken from the caller's buffer at
 * `in_buf`.  Chunk sizes are powers of two so division is a shift.
 */
#include "chunk.h"

#include <string.h>

static unsigned log2u(uint32_t v)
{
	return (unsigned)__builtin_ctz(v);
}

void chunk_range(uint64_t off, uint64_t len, uint32_t chunk_size, uint64_t *first, uint64_t *count)
{
	unsigned s = log2u(chunk_size);

	*first = off >> s;
	*count = len ? ((off + len - 1) >> s) - *first + 1 : 0;
}

void chunk_piece(uint64_t off, uint64_t len, uint32_t chunk_size, uint64_t index, uint32_t *in_chunk,
		 uint32_t *n, uint64_t *in_buf)
{
	uint64_t cstart = index * chunk_size;
	uint64_t start = off > cstart ? off : cstart;
	uint64_t cend = cstart + chunk_size;
	uint64_t end = off + len < cend ? off + len : cend;

	*in_chunk = (uint32_t)(start - cstart);
	*n = (uint32_t)(end - start);
	*in_buf = start - off;
}

uint64_t chunk_count(uint64_t size, uint32_t chunk_size)
{
	return (size >> log2u(chunk_size)) + ((size & (chunk_size - 1)) != 0);
}

int chunk_size_valid(uint64_t chunk_size)
{
	return chunk_size >= CHUNK_MIN_BYTES && chunk_size <= CHUNK_MAX_BYTES &&
	       (chunk_size & (chunk_size - 1)) == 0;
}

int chunk_is_zero(const uint8_t *p, size_t len)
{
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		acc |= w;
		if ((i & 511) == 504 && acc)
			return 0;
	}
	for (; i < len; i++)
		acc |= p[i];
	return acc == 0;
}
