/* Placeholder until the vpc driver lands: probes nothing. */
#include "driver.h"

static int vpc_probe(const struct imgfmt_probe_buf *pb)
{
	(void)pb;
	return 0;
}

const struct imgfmt_driver imgfmt_vpc_driver = {
	.name = "vpc",
	.description = "vpc (not yet implemented)",
	.probe = vpc_probe,
};
