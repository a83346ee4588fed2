/* Probing plus the raw driver: any bytes, format chosen by probing. */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_image(data, size, NULL);
}
