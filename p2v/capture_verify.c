/* Reading the captured image back: the SHA-256 of the whole virtual disk
 * and, for --verify, a comparison of every copied range with the source. */
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define READBACK_CHUNK_BYTES (4u << 20)

/* Compares the DATA extents inside [off, off+len) of img_buf with the source. */
static int compare_chunk(struct p2v_reader *src, const struct imgfmt_extent *ext, size_t n_ext,
			 size_t *ei, const uint8_t *img_buf, uint8_t *src_buf, uint64_t off,
			 uint64_t len, struct p2v_capture_result *res)
{
	uint64_t end = off + len;

	while (*ei < n_ext && ext[*ei].offset_bytes + ext[*ei].length_bytes <= off)
		(*ei)++;
	for (size_t i = *ei; i < n_ext && ext[i].offset_bytes < end; i++) {
		uint64_t a = ext[i].offset_bytes > off ? ext[i].offset_bytes : off;
		uint64_t b = ext[i].offset_bytes + ext[i].length_bytes;
		int r;

		if (ext[i].type != IMGFMT_EXTENT_DATA)
			continue;
		b = b < end ? b : end;
		r = p2v_reader_read(src, src_buf + (a - off), b - a, a);
		if (r < 0)
			return r;
		for (uint64_t s = a; s < b; s += 512) {
			uint64_t n = b - s < 512 ? b - s : 512;
			if (memcmp(src_buf + (s - off), img_buf + (s - off), n)) {
				if (!res->verify_mismatch_bytes)
					res->verify_first_mismatch = s;
				res->verify_mismatch_bytes += n;
			}
		}
	}
	return 0;
}

int p2v_capture_readback(struct imgfmt_image *img, struct p2v_reader *src,
			 const struct imgfmt_extent *ext, size_t n_ext,
			 struct p2v_capture_result *res, const volatile sig_atomic_t *cancel)
{
	uint64_t size = imgfmt_size_bytes(img);
	uint8_t *buf = malloc(READBACK_CHUNK_BYTES), *sbuf = malloc(READBACK_CHUNK_BYTES);
	struct p2v_sha256 sha;
	uint8_t dig[32];
	size_t ei = 0;
	int r = buf && sbuf ? 0 : -ENOMEM;

	p2v_sha256_init(&sha);
	for (uint64_t off = 0; off < size && r == 0; off += READBACK_CHUNK_BYTES) {
		uint64_t n = size - off < READBACK_CHUNK_BYTES ? size - off : READBACK_CHUNK_BYTES;
		if (cancel && *cancel) {
			r = -EINTR;
			break;
		}
		r = imgfmt_pread(img, buf, n, off);
		if (r == 0)
			p2v_sha256_update(&sha, buf, n);
		if (r == 0 && src)
			r = compare_chunk(src, ext, n_ext, &ei, buf, sbuf, off, n, res);
	}
	if (r == 0) {
		p2v_sha256_final(&sha, dig);
		p2v_sha256_hex(dig, res->sha256);
		res->have_sha = true;
		res->verified = src != NULL;
	}
	free(buf);
	free(sbuf);
	return r;
}
