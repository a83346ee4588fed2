/* The engine table: the order --engine auto tries them in.  An engine is
 * one engine_*.c with its ops struct and one line here. */
#include "engine.h"

#include <stdio.h>
#include <string.h>

static const struct p2v_engine_ops *const engines[] = {
	&p2v_engine_vmm,
	&p2v_engine_qemu,
};
#define N_ENGINES (sizeof(engines) / sizeof(engines[0]))

const struct p2v_engine_ops *p2v_engine_find(const char *name)
{
	for (size_t i = 0; i < N_ENGINES; i++)
		if (!strcmp(engines[i]->name, name))
			return engines[i];
	return NULL;
}

void p2v_engine_names(char *buf, size_t bytes)
{
	size_t n = (size_t)snprintf(buf, bytes, "auto");

	for (size_t i = 0; i < N_ENGINES && n < bytes; i++)
		n += (size_t)snprintf(buf + n, bytes - n, ", %s", engines[i]->name);
}

const struct p2v_engine_ops *p2v_engine_auto(const struct p2v_engine_config *cfg, char *note,
					     size_t note_bytes)
{
	char why[N_ENGINES][256];
	size_t n = 0;

	/* The note: why the first engine was taken, or why those before the
	 * one taken (or all, when none is) were passed over. */
	for (size_t i = 0; i < N_ENGINES; i++) {
		why[i][0] = '\0';
		if (engines[i]->check(cfg, false, why[i], sizeof(why[i])) != 1)
			continue;
		if (i == 0)
			snprintf(note, note_bytes, "%s", why[0]);
		for (size_t j = 0; j < i && n < note_bytes; j++)
			n += (size_t)snprintf(note + n, note_bytes - n, "%s%s", j ? "; " : "", why[j]);
		return engines[i];
	}
	for (size_t i = 0; i < N_ENGINES && n < note_bytes; i++)
		n += (size_t)snprintf(note + n, note_bytes - n, "%s%s", i ? "; " : "", why[i]);
	return NULL;
}
