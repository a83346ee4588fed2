/* The inject plug-in's one entry point (see drvinject_plugin in inject.h). */
#include "inject.h"

const struct drvinject_plugin drvinject_plugin = {
	.abi = DRVINJECT_PLUGIN_ABI,
	.opts_bytes = sizeof(struct drvinject_opts),
	.result_bytes = sizeof(struct drvinject_result),
	.run = drvinject_run,
	.kvm_is_software = drvinject_kvm_is_software,
};
