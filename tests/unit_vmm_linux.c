/* The Linux boot protocol loader without KVM: a synthetic bzImage is loaded
 * into a RAM buffer; the zero page must carry the header copy, loader type,
 * e820 map, command line and initrd; hostile headers are refused with a
 * message naming the field. */
#include "unit.h"
#include "vmm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAM_BYTES (16u * 1024 * 1024)
#define PROT_BYTES 8192u

static uint8_t *ram;
static struct vmm_mem mem;
static const struct vmm_e820 e820[2] = { { 0, 0x9fc00, VMM_E820_RAM },
					 { 0x100000, RAM_BYTES - 0x100000, VMM_E820_RAM } };

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* setup_sects 1, protocol version, loadflags; PROT_BYTES of code after. */
static void write_kernel(const char *path, uint8_t setup_sects, uint16_t version,
			 uint8_t loadflags, uint32_t init_size, size_t total)
{
	uint8_t *k = calloc(1, total < 1024 ? 1024 : total); /* header area, then truncated */
	FILE *f = fopen(path, "wb");

	k[0x1f1] = setup_sects;
	put16(k + 0x1fe, 0xaa55);
	k[0x200] = 0xeb;
	k[0x201] = 0x66;
	memcpy(k + 0x202, "HdrS", 4);
	put16(k + 0x206, version);
	k[0x211] = loadflags;
	put32(k + 0x22c, 0x37ffffff);
	put32(k + 0x238, 64);     /* cmdline_size */
	put32(k + 0x260, init_size);
	if (total > 1024)
		memset(k + 1024, 0xc3, total - 1024);
	CHECK(f && fwrite(k, 1, total, f) == total);
	fclose(f);
	free(k);
}

static int load(const char *kernel, const char *initrd, const char *append, char *err)
{
	struct vmm_linux_entry e = { 0, 0 };
	int ret;

	memset(ram, 0, RAM_BYTES);
	err[0] = 0;
	ret = vmm_linux_load(&mem, RAM_BYTES, e820, 2, kernel, initrd, append, &e, err, 256);
	if (ret == 0) {
		CHECK_EQ(e.entry_gpa, VMM_LINUX_KERNEL_GPA);
		CHECK_EQ(e.boot_params_gpa, VMM_LINUX_BOOT_PARAMS_GPA);
	}
	return ret;
}

static void test_good(const char *kernel, const char *initrd)
{
	uint8_t *bp = ram + VMM_LINUX_BOOT_PARAMS_GPA;
	char err[256];
	uint32_t rd;

	CHECK_EQ(load(kernel, initrd, "console=ttyS0 root=/dev/vda1", err), 0);
	CHECK(memcmp(bp + 0x202, "HdrS", 4) == 0);
	CHECK_EQ(bp[0x210], 0xff);                          /* type_of_loader */
	CHECK_EQ(bp[0x211] & 0x81, 0x81);                   /* LOADED_HIGH | CAN_USE_HEAP */
	CHECK_EQ(bp[0x1e8], 2);                             /* e820 entries */
	CHECK(memcmp(bp + 0x2d0, e820, sizeof(e820)) == 0);
	CHECK_EQ(get32(bp + 0x228), VMM_LINUX_CMDLINE_GPA);
	CHECK(strcmp((char *)ram + VMM_LINUX_CMDLINE_GPA, "console=ttyS0 root=/dev/vda1") == 0);
	CHECK_EQ(ram[VMM_LINUX_KERNEL_GPA], 0xc3);          /* protected-mode code at 1 MiB */
	CHECK_EQ(ram[VMM_LINUX_KERNEL_GPA + PROT_BYTES - 1], 0xc3);
	rd = get32(bp + 0x218);
	CHECK_EQ(get32(bp + 0x21c), 5000);
	CHECK(rd % 4096 == 0 && rd >= 0x200000 && rd + 5000 <= RAM_BYTES);
	CHECK(memcmp(ram + rd, "INITRD", 6) == 0);
}

int main(void)
{
	char dir[] = "/tmp/unit_vmm_linux.XXXXXX", k[128], rd[128], big[128], err[256];
	char longline[100];
	FILE *f;

	ram = malloc(RAM_BYTES);
	mem = (struct vmm_mem){ .r = { { 0, RAM_BYTES, ram } }, .n = 1 };
	CHECK(ram && mkdtemp(dir));
	snprintf(k, sizeof(k), "%s/k", dir);
	snprintf(rd, sizeof(rd), "%s/rd", dir);
	snprintf(big, sizeof(big), "%s/big", dir);
	f = fopen(rd, "wb");
	fputs("INITRD", f);
	for (int i = 6; i < 5000; i++)
		fputc(i, f);
	fclose(f);

	write_kernel(k, 1, 0x020f, 0x01, 0x100000, 1024 + PROT_BYTES);
	test_good(k, rd);

	/* no initrd: ramdisk fields stay zero */
	CHECK_EQ(load(k, NULL, NULL, err), 0);
	CHECK_EQ(get32(ram + VMM_LINUX_BOOT_PARAMS_GPA + 0x218), 0);
	/* command line longer than cmdline_size (64) */
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	CHECK(load(k, NULL, longline, err) < 0);
	CHECK(strstr(err, "cmdline_size") != NULL);
	/* initrd that cannot fit above the kernel's init_size */
	write_kernel(k, 1, 0x020f, 0x01, RAM_BYTES, 1024 + PROT_BYTES);
	CHECK(load(k, rd, NULL, err) < 0);
	CHECK(strstr(err, "initrd") != NULL);
	/* not a bzImage: old protocol, not loaded high, no magic, too short */
	write_kernel(k, 1, 0x0201, 0x01, 0, 1024 + PROT_BYTES);
	CHECK(load(k, NULL, NULL, err) < 0);
	CHECK(strstr(err, "protocol") != NULL);
	write_kernel(k, 1, 0x020f, 0x00, 0, 1024 + PROT_BYTES);
	CHECK(load(k, NULL, NULL, err) < 0);
	CHECK(strstr(err, "loadflags") != NULL);
	write_kernel(k, 1, 0x020f, 0x01, 0, 600);
	CHECK(load(k, NULL, NULL, err) < 0);
	CHECK(strstr(err, "too small") != NULL);
	/* setup_sects pointing past the end of the file */
	write_kernel(k, 200, 0x020f, 0x01, 0, 1024 + PROT_BYTES);
	CHECK(load(k, NULL, NULL, err) < 0);
	CHECK(strstr(err, "setup_sects") != NULL);
	/* a kernel bigger than guest RAM */
	write_kernel(big, 1, 0x020f, 0x01, 0, 1024 + RAM_BYTES);
	CHECK(load(big, NULL, NULL, err) < 0);
	CHECK(strstr(err, "does not fit") != NULL);
	CHECK(load("/nonexistent/vmlinuz", NULL, NULL, err) < 0);
	unlink(k);
	unlink(rd);
	unlink(big);
	rmdir(dir);
	free(ram);
	UNIT_DONE();
}
