/* Placeholder until the vmdk driver lands: probes nothing. */
#include "driver.h"

static int vmdk_probe(const struct imgfmt_probe_buf *pb)
{
	(void)pb;
	return 0;
}

const struct imgfmt_driver imgfmt_vmdk_driver = {
	.name = "vmdk",
	.description = "vmdk (not yet implemented)",
	.probe = vmdk_probe,
};
