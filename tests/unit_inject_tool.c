/* Fixtures for tests/inject_windows.sh, which builds a fake Windows disk:
 *   unit_inject_tool hive PATH   an empty registry hive (then hivexregedit --merge)
 *   unit_inject_tool pe PATH     a minimal PE32+ x86-64 console executable header,
 *                                enough for file(1) (libguestfs reads the
 *                                architecture of System32/cmd.exe with it) */
#include "inject.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static int write_pe(const char *path)
{
	uint8_t b[512] = { 'M', 'Z' };
	b[0x3c] = 0x40;                       /* e_lfanew */
	memcpy(b + 0x40, "PE\0\0", 4);
	put16(b + 0x44, 0x8664);              /* Machine: x86-64 */
	put16(b + 0x54, 0xf0);                /* SizeOfOptionalHeader */
	put16(b + 0x56, 0x22);                /* executable, large address aware */
	put16(b + 0x58, 0x20b);               /* PE32+ */
	put16(b + 0x58 + 68, 3);              /* Subsystem: console */
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(b, sizeof(b), 1, f) != 1 || fclose(f) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char err[256];
	if (argc == 3 && !strcmp(argv[1], "hive")) {
		if (drvinject_win_hive_create(argv[2], err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "pe"))
		return write_pe(argv[2]);
	fprintf(stderr, "usage: unit_inject_tool hive|pe PATH\n");
	return 2;
}
