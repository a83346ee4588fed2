/* The explicit driver table: probe order is table order, raw last. */
#include "driver.h"

const struct imgfmt_driver *const imgfmt_drivers[] = {
	&imgfmt_qcow2_driver,
	&imgfmt_vhdx_driver,
	&imgfmt_vmdk_driver,
	&imgfmt_vpc_driver,
	&imgfmt_nbd_driver, /* URIs only: no probe */
	&imgfmt_raw_driver,
};
const unsigned imgfmt_n_drivers = sizeof(imgfmt_drivers) / sizeof(imgfmt_drivers[0]);
