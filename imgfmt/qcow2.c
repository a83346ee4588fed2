/* Placeholder until the qcow2 driver lands: probes nothing. */
#include "driver.h"

static int qcow2_probe(const struct imgfmt_probe_buf *pb)
{
	(void)pb;
	return 0;
}

const struct imgfmt_driver imgfmt_qcow2_driver = {
	.name = "qcow2",
	.description = "qcow2 (not yet implemented)",
	.probe = qcow2_probe,
};
