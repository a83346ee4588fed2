/* Direct Linux boot: the x86 boot protocol for bzImage kernels (version
 * 2.02 and later).  The setup header is copied into a fresh zero page, the
 * protected-mode kernel is loaded at 1 MiB, the initrd as high as the kernel
 * allows, and the e820 map and command line are filled in.  The run loop
 * enters the 32-bit entry point with ESI = zero page and flat segments. */
#include "vmm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	BP_E820_ENTRIES = 0x1e8, BP_HDR = 0x1f1, BP_SETUP_SECTS = 0x1f1, BP_JUMP = 0x200,
	BP_MAGIC = 0x202, BP_VERSION = 0x206, BP_TYPE_OF_LOADER = 0x210, BP_LOADFLAGS = 0x211,
	BP_CODE32_START = 0x214, BP_RAMDISK_IMAGE = 0x218, BP_RAMDISK_SIZE = 0x21c,
	BP_HEAP_END = 0x224, BP_CMD_LINE_PTR = 0x228, BP_INITRD_ADDR_MAX = 0x22c,
	BP_CMDLINE_SIZE = 0x238, BP_INIT_SIZE = 0x260, BP_E820_TABLE = 0x2d0,
	BP_E820_MAX = 128, BP_HDR_MAX_END = 0x290,
};
#define LOADED_HIGH 0x01
#define CAN_USE_HEAP 0x80

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

/* Read the whole of [off, off+len) of fd into guest memory at gpa. */
static int load_into(const struct vmm_mem *mem, int fd, uint64_t off, uint64_t len, uint64_t gpa,
		     const char *what, char *err, size_t err_bytes)
{
	uint8_t *dst = vmm_mem_ptr(mem, gpa, len);

	if (len == 0)
		return 0;
	if (!dst) {
		snprintf(err, err_bytes, "%s of %llu bytes does not fit in guest RAM at 0x%llx",
			 what, (unsigned long long)len, (unsigned long long)gpa);
		return -E2BIG;
	}
	for (uint64_t done = 0; done < len;) {
		ssize_t n = pread(fd, dst + done, len - done, (off_t)(off + done));
		if (n <= 0) {
			snprintf(err, err_bytes, "%s: short read at %llu", what,
				 (unsigned long long)(off + done));
			return n < 0 ? -errno : -EIO;
		}
		done += (uint64_t)n;
	}
	return 0;
}

static int open_sized(const char *path, uint64_t *bytes, char *err, size_t err_bytes)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		snprintf(err, err_bytes, "%s: %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	*bytes = (uint64_t)st.st_size;
	return fd;
}

/* Validate the setup header; fill the zero page's header copy. */
static int linux_header(int fd, uint64_t file_bytes, uint8_t *bp, uint64_t *setup_bytes,
			char *err, size_t err_bytes)
{
	uint8_t sect[1024];
	unsigned setup_sects, hdr_end;

	if (file_bytes < sizeof(sect) || pread(fd, sect, sizeof(sect), 0) != (ssize_t)sizeof(sect)) {
		snprintf(err, err_bytes, "kernel of %llu bytes is too small for a setup header",
			 (unsigned long long)file_bytes);
		return -EINVAL;
	}
	if (memcmp(sect + BP_MAGIC, "HdrS", 4) != 0 || le16(sect + BP_VERSION) < 0x0202 ||
	    !(sect[BP_LOADFLAGS] & LOADED_HIGH)) {
		snprintf(err, err_bytes, "kernel is not a bzImage (magic %.4s, protocol 0x%04x, loadflags 0x%02x)",
			 (const char *)sect + BP_MAGIC, le16(sect + BP_VERSION), sect[BP_LOADFLAGS]);
		return -EINVAL;
	}
	setup_sects = sect[BP_SETUP_SECTS] ? sect[BP_SETUP_SECTS] : 4;
	*setup_bytes = (uint64_t)(setup_sects + 1) * 512;
	if (*setup_bytes >= file_bytes) {
		snprintf(err, err_bytes, "kernel setup_sects %u leaves no protected-mode code in %llu bytes",
			 setup_sects, (unsigned long long)file_bytes);
		return -EINVAL;
	}
	hdr_end = 0x202 + sect[BP_JUMP + 1];
	if (hdr_end > BP_HDR_MAX_END)
		hdr_end = BP_HDR_MAX_END;
	memcpy(bp + BP_HDR, sect + BP_HDR, hdr_end - BP_HDR);
	return 0;
}

static int linux_initrd(const struct vmm_mem *mem, uint64_t below_4g_bytes, uint8_t *bp,
			uint64_t kernel_end, const char *path, char *err, size_t err_bytes)
{
	uint64_t bytes = 0, max = le16(bp + BP_VERSION) >= 0x0203 ? le32(bp + BP_INITRD_ADDR_MAX)
								 : 0x37ffffff;
	uint64_t top = below_4g_bytes < max + 1 ? below_4g_bytes : max + 1, gpa;
	int fd = open_sized(path, &bytes, err, err_bytes), ret;

	if (fd < 0)
		return fd;
	gpa = bytes <= top ? ((top - bytes) & ~0xfffull) : 0;
	if (bytes > UINT32_MAX || gpa < kernel_end) {
		close(fd);
		snprintf(err, err_bytes, "initrd of %llu bytes does not fit between 0x%llx and 0x%llx",
			 (unsigned long long)bytes, (unsigned long long)kernel_end,
			 (unsigned long long)top);
		return -E2BIG;
	}
	ret = load_into(mem, fd, 0, bytes, gpa, "initrd", err, err_bytes);
	close(fd);
	put32(bp + BP_RAMDISK_IMAGE, (uint32_t)gpa);
	put32(bp + BP_RAMDISK_SIZE, (uint32_t)bytes);
	return ret;
}

static int linux_cmdline(const struct vmm_mem *mem, uint8_t *bp, const char *append,
			 char *err, size_t err_bytes)
{
	uint32_t max = le16(bp + BP_VERSION) >= 0x0206 ? le32(bp + BP_CMDLINE_SIZE) : 255;
	size_t len = append ? strlen(append) : 0;
	char *dst = vmm_mem_ptr(mem, VMM_LINUX_CMDLINE_GPA, len + 1);

	if (len > max || !dst) {
		snprintf(err, err_bytes, "kernel command line of %zu bytes exceeds cmdline_size %u",
			 len, max);
		return -E2BIG;
	}
	memcpy(dst, append ? append : "", len + 1);
	put32(bp + BP_CMD_LINE_PTR, VMM_LINUX_CMDLINE_GPA);
	return 0;
}

int vmm_linux_load(const struct vmm_mem *mem, uint64_t below_4g_bytes,
		   const struct vmm_e820 *e820, unsigned n_e820, const char *kernel_path,
		   const char *initrd_path, const char *append, struct vmm_linux_entry *out,
		   char *err, size_t err_bytes)
{
	uint8_t *bp = vmm_mem_ptr(mem, VMM_LINUX_BOOT_PARAMS_GPA, 4096);
	uint64_t file_bytes = 0, setup_bytes = 0, prot_bytes = 0, kernel_end = 0;
	int fd = open_sized(kernel_path, &file_bytes, err, err_bytes), ret;

	if (fd < 0)
		return fd;
	if (!bp || n_e820 > BP_E820_MAX) {
		close(fd);
		snprintf(err, err_bytes, "guest RAM too small for the zero page");
		return -E2BIG;
	}
	memset(bp, 0, 4096);
	ret = linux_header(fd, file_bytes, bp, &setup_bytes, err, err_bytes);
	if (ret < 0)
		goto out_close;
	prot_bytes = file_bytes - setup_bytes;
	ret = load_into(mem, fd, setup_bytes, prot_bytes, VMM_LINUX_KERNEL_GPA, "kernel", err,
			err_bytes);
	if (ret < 0)
		goto out_close;
	kernel_end = VMM_LINUX_KERNEL_GPA +
		     (le32(bp + BP_INIT_SIZE) > prot_bytes ? le32(bp + BP_INIT_SIZE) : prot_bytes);
	bp[BP_TYPE_OF_LOADER] = 0xff;
	bp[BP_LOADFLAGS] |= CAN_USE_HEAP;
	bp[BP_HEAP_END] = 0x00;
	bp[BP_HEAP_END + 1] = 0xfe;
	put32(bp + BP_CODE32_START, VMM_LINUX_KERNEL_GPA);
	bp[BP_E820_ENTRIES] = (uint8_t)n_e820;
	memcpy(bp + BP_E820_TABLE, e820, n_e820 * sizeof(*e820));
	ret = linux_cmdline(mem, bp, append, err, err_bytes);
	if (ret == 0 && initrd_path)
		ret = linux_initrd(mem, below_4g_bytes, bp, kernel_end, initrd_path, err, err_bytes);
	out->entry_gpa = VMM_LINUX_KERNEL_GPA;
	out->boot_params_gpa = VMM_LINUX_BOOT_PARAMS_GPA;
out_close:
	close(fd);
	return ret;
}
