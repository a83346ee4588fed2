/* Linux swap: only the header page (signature, UUID, label, bad-page list)
 * is kept; the rest holds nothing a captured system needs.  The page size
 * the swap was made with is found from where its signature lies.  A swap
 * holding a hibernation image is detected by blkid as "swsuspend" and
 * never reaches this reader. */
#include "capture.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int p2v_fsmap_swap(struct p2v_fsmap_ctx *ctx)
{
	static const uint32_t page_sizes[] = { 4096, 8192, 16384, 65536 };
	char sig[10];

	for (size_t i = 0; i < sizeof(page_sizes) / sizeof(page_sizes[0]); i++) {
		uint32_t page = page_sizes[i];
		int r;

		if (page > ctx->part_bytes)
			break;
		r = ctx->read(ctx->read_opaque, sig, sizeof(sig), ctx->part_off_bytes + page - sizeof(sig));
		if (r < 0) {
			snprintf(ctx->why, sizeof(ctx->why), "swap: cannot read the header");
			return r;
		}
		if (!memcmp(sig, "SWAPSPACE2", 10) || !memcmp(sig, "SWAP-SPACE", 10)) {
			ctx->used_bytes = page;
			return p2v_rangemap_add(ctx->map, ctx->part_off_bytes, page);
		}
	}
	snprintf(ctx->why, sizeof(ctx->why), "swap: no SWAPSPACE2 signature at the end of a 4-64 KiB page");
	return -EINVAL;
}
