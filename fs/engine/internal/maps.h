/* SPDX-License-Identifier: MIT */
/* maps.h - the chunk map file format (private to fs/engine/; see maps.c).
 * Above pool.h in the engine's file chain. */
#ifndef EVFS_MAPS_H
#define EVFS_MAPS_H

#include "pool.h"

#define MAP_MAGIC "EVFSMAP1"
#define MAP_HDR_BYTES 4096u

struct map_header {
	char magic[8];
	uint32_t version;            /* little-endian, CHUNK_FORMAT_VERSION */
	uint32_t chunk_size;
	uint8_t lineage[CHUNK_LINEAGE_BYTES];
	char id[ENGINE_ID_MAX];
	uint64_t size;               /* nominal volume size in bytes */
	uint8_t pad[16];
	uint8_t sum[16];             /* BLAKE2b-128 of the bytes before it */
};

typedef int (*map_entry_cb)(void *ctx, uint64_t index, uint64_t slot);

/* Byte offset of entry `index` in a map file. */
static inline uint64_t map_entry_off(uint64_t index)
{
	return MAP_HDR_BYTES + index * sizeof(uint64_t);
}
/* Read and check the header of an open map file. */
int map_header_load(struct pool *p, int fd, const char *id, struct map_header *h);
/* Write a header for id/size (fd positioned anywhere). */
int map_header_store(struct pool *p, int fd, const char *id, uint64_t size);
/* Call cb for every mapped entry of maps/<name> (holes skipped). */
int map_file_foreach(struct pool *p, int maps_dirfd, const char *name, map_entry_cb cb, void *ctx);
int map_fd_foreach(struct pool *p, int fd, map_entry_cb cb, void *ctx);
/* Pool open: count every map's references into p (pool_ref_load) and
 * remove leftovers of interrupted clones (.tmp-*.map).  -EUCLEAN (logged)
 * for a damaged map or one pointing beyond the tag table. */
int map_dir_load_refs(struct pool *p);

#endif
