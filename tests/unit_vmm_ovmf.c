/* vmm-min's machine for OVMF, built (not run) on /dev/kvm, checked against
 * references that are not vmm-min's: Debian's combined OVMF.fd (the ROM
 * built from OVMF_VARS.fd + OVMF_CODE.fd must be it, byte for byte), the
 * PI specification's firmware volume header ("_FVH" at offset 40 of the
 * variable store and of the code), and the SeaBIOS layout as before.
 * Skipped (77) without /dev/kvm or without Debian's ovmf package. */
#include "machine.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OVMF_CODE "/usr/share/OVMF/OVMF_CODE.fd"
#define OVMF_VARS "/usr/share/OVMF/OVMF_VARS.fd"
#define OVMF_COMBINED "/usr/share/ovmf/OVMF.fd"
#define FOUR_GIB 0x100000000ull
#define FV_SIGNATURE_OFFSET 40 /* EFI_FIRMWARE_VOLUME_HEADER.Signature */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* Does the fw_cfg directory list a file of that name? */
static bool fwcfg_has(const struct vmm_fwcfg *f, const char *name)
{
	for (unsigned i = 0; i < f->n; i++)
		if (!strcmp(f->item[i].name, name))
			return true;
	return false;
}

/* The e820 map the firmware reads: the reserved range (KVM's TSS) lies
 * outside RAM and outside the ROM at the top of 4 GiB. */
static void check_e820(const struct vmm_machine *m)
{
	struct vmm_e820 e[8];
	unsigned n = vmm_machine_e820(m, false, e), reserved = 0;
	uint64_t rom_base = FOUR_GIB - m->rom_bytes;

	for (unsigned i = 0; i < n; i++) {
		if (e[i].type != VMM_E820_RESERVED)
			continue;
		reserved++;
		CHECK(e[i].addr + e[i].bytes <= rom_base);
		CHECK(e[i].addr >= m->below_4g);
	}
	CHECK_EQ(reserved, 1);
}

static void test_ovmf_pair(void)
{
	struct vmm_config cfg = { .firmware_path = OVMF_CODE, .firmware_vars_path = OVMF_VARS,
				  .mem_bytes = 256 << 20, .cpus = 1, .console_in_fd = -1 };
	struct vmm_machine m;
	char err[256] = "";
	size_t combined_bytes = 0;
	uint8_t *combined = slurp(OVMF_COMBINED, &combined_bytes);
	int ret = vmm_machine_init(&m, &cfg, true, err, sizeof(err));

	if (ret < 0)
		fprintf(stderr, "vmm_machine_init: %s\n", err);
	CHECK_EQ(ret, 0);
	CHECK(vmm_machine_uefi(&m));
	CHECK(memcmp(m.rom + FV_SIGNATURE_OFFSET, "_FVH", 4) == 0); /* the variable store */
	if (combined) {
		CHECK_EQ(m.rom_bytes, combined_bytes);
		CHECK(combined_bytes == m.rom_bytes && memcmp(m.rom, combined, combined_bytes) == 0);
	} else {
		printf("note: %s absent, not compared\n", OVMF_COMBINED);
	}
	check_e820(&m);
	CHECK(!fwcfg_has(m.fwcfg, "bootorder")); /* OVMF keeps its own boot order */
	CHECK(fwcfg_has(m.fwcfg, "etc/e820"));
	vmm_machine_close(&m);
	free(combined);
}

static void test_seabios_unchanged(void)
{
	struct vmm_config cfg = { .mem_bytes = 256 << 20, .cpus = 1, .console_in_fd = -1 };
	struct vmm_machine m;
	struct vmm_e820 e[8];
	char err[256] = "";
	unsigned n;

	if (access("/usr/share/seabios/bios.bin", R_OK) < 0) {
		printf("note: SeaBIOS absent, its layout not checked\n");
		return;
	}
	CHECK_EQ(vmm_machine_init(&m, &cfg, true, err, sizeof(err)), 0);
	CHECK(!vmm_machine_uefi(&m));
	n = vmm_machine_e820(&m, false, e);
	CHECK_EQ(n, 2);
	CHECK_EQ(e[1].addr, 0xfffbc000);
	CHECK_EQ(e[1].bytes, 0x4000);
	CHECK(fwcfg_has(m.fwcfg, "bootorder"));
	vmm_machine_close(&m);
}

/* A firmware image over 4 MiB is refused, the message naming it. */
static void test_too_big(void)
{
	char path[] = "/tmp/vmm-ovmf-big-XXXXXX", err[256] = "";
	int fd = mkstemp(path);
	struct vmm_config cfg = { .firmware_path = path, .mem_bytes = 64 << 20, .cpus = 1,
				  .console_in_fd = -1 };
	struct vmm_machine m;

	CHECK(fd >= 0 && ftruncate(fd, 8 << 20) == 0);
	CHECK_EQ(vmm_machine_init(&m, &cfg, true, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, path) != NULL);
	vmm_machine_close(&m);
	close(fd);
	unlink(path);
}

int main(void)
{
	if (access("/dev/kvm", R_OK | W_OK) < 0 || access(OVMF_CODE, R_OK) < 0 ||
	    access(OVMF_VARS, R_OK) < 0) {
		printf("skipped: needs /dev/kvm and Debian's ovmf package\n");
		return 77;
	}
	test_ovmf_pair();
	test_seabios_unchanged();
	test_too_big();
	UNIT_DONE();
}
