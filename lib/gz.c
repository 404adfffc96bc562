/*
 * gz: bounded gzip deflate/inflate over zlib (windowBits 15 + 16 selects
 * the gzip wrapper).  See gz.h.
 */
#include "switchboard/gz.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int gz_is_gzip(const void *p, size_t len)
{
	const unsigned char *b = p;

	return len >= 2 && b[0] == 0x1f && b[1] == 0x8b;
}

int gz_deflate(const void *p, size_t len, char **out, size_t *outlen)
{
	z_stream z;
	uLong bound;
	char *dst = NULL;
	int rc = 0;

	*out = NULL;
	*outlen = 0;
	memset(&z, 0, sizeof(z));
	if (len > UINT32_MAX)
		return -E2BIG;
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&z, (uLong)len);
	dst = malloc(bound);
	if (!dst) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(&z.next_in, &p, sizeof(p)); /* zlib's input pointer is not const */
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)dst;
	z.avail_out = (uInt)bound;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		rc = -EIO;
		goto out;
	}
	*outlen = z.total_out;
	*out = dst;
	dst = NULL;
out:
	deflateEnd(&z);
	free(dst);
	return rc;
}

int gz_inflate(const void *p, size_t len, size_t limit, char **out, size_t *outlen)
{
	z_stream z;
	size_t cap = len * 4 + 4096, used = 0;
	char *dst = NULL;
	int rc = 0, zr = Z_OK;

	*out = NULL;
	*outlen = 0;
	memset(&z, 0, sizeof(z));
	if (len > UINT32_MAX)
		return -E2BIG;
	if (inflateInit2(&z, 15 + 16) != Z_OK)
		return -ENOMEM;
	if (cap > limit + 1)
		cap = limit + 1;
	dst = malloc(cap + 1);
	if (!dst) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(&z.next_in, &p, sizeof(p)); /* zlib's input pointer is not const */
	z.avail_in = (uInt)len;
	while (zr != Z_STREAM_END) {
		if (used == cap) {
			char *n;

			if (cap > limit) {
				rc = -E2BIG;
				goto out;
			}
			cap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
			n = realloc(dst, cap + 1);
			if (!n) {
				rc = -ENOMEM;
				goto out;
			}
			dst = n;
		}
		z.next_out = (Bytef *)dst + used;
		z.avail_out = (uInt)(cap - used);
		zr = inflate(&z, Z_NO_FLUSH);
		used = cap - z.avail_out;
		if (zr == Z_BUF_ERROR && z.avail_in == 0) {
			rc = -EBADMSG; /* truncated */
			goto out;
		}
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			rc = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
			goto out;
		}
	}
	if (z.avail_in != 0) {
		rc = -EBADMSG; /* trailing bytes after the stream */
		goto out;
	}
	if (used > limit) {
		rc = -E2BIG;
		goto out;
	}
	dst[used] = '\0';
	*out = dst;
	*outlen = used;
	dst = NULL;
out:
	inflateEnd(&z);
	free(dst);
	return rc;
}
