/* Fuzz harness of the vpc (VHD) driver: the shared image exercise. */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_image(data, size, "vpc");
}
