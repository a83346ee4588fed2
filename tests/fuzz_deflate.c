/* p2v's 4 KiB-window deflate encoder on any bytes: the output must fit the
 * bound it is given or say -ENOSPC, and inflate back to the input. */
#include "driver.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap = size + size / 8 + 1024;
	uint8_t *out = malloc(cap), *back = malloc(size + 1);
	long n;

	if (!out || !back)
		abort();
	n = imgfmt_deflate_4k(data, size, out, cap);
	if (n < 0 || (size_t)n > cap)
		abort(); /* the bound above always suffices */
	if (imgfmt_inflate_raw(out, (size_t)n, back, size) || memcmp(back, data, size))
		abort();
	if (size > 0 && imgfmt_deflate_4k(data, size, out, (size_t)n - 1) != -ENOSPC)
		abort(); /* one byte less must not fit */
	free(out);
	free(back);
	return 0;
}
