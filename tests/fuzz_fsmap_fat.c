/* Fuzz harness for the FAT used-cluster reader: the input is the partition.
 * Every range the reader emits must lie inside it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "fuzz_bytes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_disk d = { data, size };
	struct p2v_rangemap m;
	struct p2v_fsmap_ctx ctx = {
		.read = fuzz_read, .read_opaque = &d, .part_off_bytes = 0, .part_bytes = size, .map = &m,
	};

	p2v_rangemap_init(&m);
	if (p2v_fsmap_fat(&ctx) == 0) {
		p2v_rangemap_normalize(&m);
		for (size_t i = 0; i < m.n; i++)
			if (m.v[i].off_bytes + m.v[i].len_bytes > size)
				abort();
	}
	p2v_rangemap_free(&m);
	return 0;
}
