/* Loads the inject plug-in (drivers-inject/plugin.c) on first use: p2v is
 * not linked with libguestfs, so capture, convert, info and verify run on a
 * machine (a rescue system) that does not have it. */
#include "p2v.h"

#include "inject_plugin.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define PLUGIN_FILE "inject.so"

/* dir(/proc/self/exe)/P2V_PLUGIN_RELDIR/inject.so: the same relation holds
 * in the build tree and under any install prefix. */
static int plugin_path(char *buf, size_t buf_bytes)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -errno;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	if ((size_t)snprintf(buf, buf_bytes, "%s/%s/%s", exe, P2V_PLUGIN_RELDIR, PLUGIN_FILE) >= buf_bytes)
		return -ENAMETOOLONG;
	return 0;
}

const struct drvinject_plugin *p2v_inject_plugin(void)
{
	const struct drvinject_plugin *p;
	char path[PATH_MAX + 64];
	void *h;

	if (plugin_path(path, sizeof(path)) < 0) {
		p2v_err("inject: cannot find the p2v executable's directory");
		return NULL;
	}
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		p2v_err("inject needs its plug-in and libguestfs: %s "
			"(Debian: install the p2v-inject package)", dlerror());
		return NULL;
	}
	p = dlsym(h, DRVINJECT_PLUGIN_SYMBOL);
	if (!p || p->abi != DRVINJECT_PLUGIN_ABI || p->opts_bytes != sizeof(struct drvinject_opts) ||
	    p->result_bytes != sizeof(struct drvinject_result)) {
		p2v_err("inject: %s is not a plug-in of this p2v (ABI %u expected)", path,
			DRVINJECT_PLUGIN_ABI);
		dlclose(h);
		return NULL;
	}
	return p; /* the plug-in stays loaded until exit */
}
