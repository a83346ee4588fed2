/* Placeholder until the vhdx driver lands: probes nothing. */
#include "driver.h"

static int vhdx_probe(const struct imgfmt_probe_buf *pb)
{
	(void)pb;
	return 0;
}

const struct imgfmt_driver imgfmt_vhdx_driver = {
	.name = "vhdx",
	.description = "vhdx (not yet implemented)",
	.probe = vhdx_probe,
};
