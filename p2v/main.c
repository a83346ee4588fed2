/* p2v: physical-to-virtual converter and disk image toolkit.  The command
 * table; each subcommand is in its own cmd_*.c. */
#include "p2v.h"

#include <string.h>

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "capture", p2v_cmd_capture, "capture a physical disk into an image" },
	{ "inspect", p2v_cmd_inspect, "show a disk's partitions and the capture plan" },
	{ "convert", p2v_cmd_convert, "convert an image to another format" },
	{ "info", p2v_cmd_info, "describe an image" },
	{ "check", p2v_cmd_check, "check an image's metadata for errors and leaks" },
	{ "compare", p2v_cmd_compare, "compare the content of two images" },
	{ "map", p2v_cmd_map, "list the data, zero and hole extents of an image" },
	{ "create", p2v_cmd_create, "create an empty image" },
	{ "inject", p2v_cmd_inject, "make a captured OS boot on virtio" },
	{ "boot", p2v_cmd_boot, "boot an image in the bundled VMM" },
	{ "verify", p2v_cmd_verify, "boot an image and give a verdict" },
	{ "migrate", p2v_cmd_migrate, "capture, inject and verify in one step" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: p2v COMMAND [OPTIONS] ...\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'p2v COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return P2V_EXIT_ERROR;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return P2V_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("p2v 0.1\n");
		return P2V_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	p2v_err("unknown command '%s' (try 'p2v --help')", argv[1]);
	return P2V_EXIT_ERROR;
}
