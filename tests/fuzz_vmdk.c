/* libFuzzer harness for the VMDK driver (embedded-descriptor sparse and
 * stream extents; text descriptors cannot name files from a memfd). */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_image(data, size, "vmdk");
}
