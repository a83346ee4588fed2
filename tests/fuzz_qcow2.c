/* qcow2 header, tables and clusters from hostile bytes. */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_image(data, size, "qcow2");
}
