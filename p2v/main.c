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
	{ "measure", p2v_cmd_measure, "how large an image of a format would be" },
	{ "resize", p2v_cmd_resize, "change an image's virtual size in place" },
	{ "rebase", p2v_cmd_rebase, "change the backing file a qcow2 image names" },
	{ "commit", p2v_cmd_commit, "write a qcow2 image's data into its backing file" },
	{ "snapshot", p2v_cmd_snapshot, "list, create, apply, delete qcow2 internal snapshots" },
	{ "dd", p2v_cmd_dd, "copy part of an image into a new one, as qemu-img dd" },
	{ "amend", p2v_cmd_amend, "change an image's format options in place (qcow2)" },
	{ "inject", p2v_cmd_inject, "make a captured OS boot on virtio" },
	{ "boot", p2v_cmd_boot, "boot an image in the bundled VMM" },
	{ "verify", p2v_cmd_verify, "boot an image and give a verdict" },
	{ "migrate", p2v_cmd_migrate, "capture, inject and verify in one step" },
	{ "serve", p2v_cmd_serve, "serve a disk read-only over NBD (nbdkit, TLS-PSK)" },
};

#ifndef P2V_VERSION
#error "P2V_VERSION comes from CMake's project(VERSION)"
#endif

static void usage(FILE *f)
{
	fprintf(f, "usage: p2v COMMAND [OPTIONS] ...\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'p2v help COMMAND' or 'p2v COMMAND --help' describes a command;\n"
		   "'p2v --version' prints the version.\n");
}

static int run(const char *name, int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].run(argc, argv);
	p2v_err("unknown command '%s' (try 'p2v --help')", name);
	return P2V_EXIT_ERROR;
}

int main(int argc, char **argv)
{
	p2v_catch_progress_signal();
	if (argc < 2) {
		usage(stderr);
		return P2V_EXIT_ERROR;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    (!strcmp(argv[1], "help") && argc == 2)) {
		usage(stdout);
		return P2V_EXIT_OK;
	}
	if (!strcmp(argv[1], "help")) {
		char *help_argv[] = { argv[2], "--help", NULL };
		if (argc > 3) {
			p2v_err("help takes one COMMAND");
			return P2V_EXIT_ERROR;
		}
		return run(argv[2], 2, help_argv);
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("p2v %s\n", P2V_VERSION);
		return P2V_EXIT_OK;
	}
	return run(argv[1], argc - 1, argv + 1);
}
