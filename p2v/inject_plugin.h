/* The inject plug-in (drivers-inject/plugin.c), loaded on first use. */
#ifndef P2V_INJECT_PLUGIN_H
#define P2V_INJECT_PLUGIN_H

#include "inject.h"

/* The plug-in's entry points, or NULL after printing why it cannot be
 * loaded (not installed, libguestfs missing, built from other sources). */
const struct drvinject_plugin *p2v_inject_plugin(void);

#endif
