/* Test driver for vmm-min: boot a disk through SeaBIOS, a kernel directly,
 * or a flat real-mode binary, with COM1 on stdout and a summary line on
 * stderr ("vmm: exit=halted elapsed=1.23 reads=4 writes=1 exits=999").
 *   vmm_runner [-t SECONDS] [-m MIB] [-c CPUS] [-w] [-l FWLOG] [-k KERNEL [-i INITRD] [-a APPEND]]
 *              [-f FLAT.bin] [-F DISKFORMAT] [-b FIRMWARE] [-I] [-C] [DISK]
 * -I feeds stdin to COM1.  -S FILE writes the BIOS screen (COM2) to FILE
 * instead of stdout.
 * -C prints the calibrated MIPS.  Exit status 0 when the run happened. */
#include "vmm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *exit_name(enum vmm_exit e)
{
	static const char *const names[] = { "shutdown", "reset", "stopped", "timeout",
					     "triple-fault", "halted", "internal-error" };
	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "?";
}

static void console(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	fwrite(buf, 1, len, stdout);
	fflush(stdout);
}

static void screen(void *opaque, const uint8_t *buf, size_t len)
{
	FILE *f = opaque;

	fwrite(buf, 1, len, f);
	fflush(f);
}

static void event(void *opaque, const struct vmm_event *ev)
{
	(void)opaque;
	if (ev->type == VMM_EV_DEVICE_BROKEN)
		fprintf(stderr, "vmm: device broken: %s\n", ev->detail ? ev->detail : "");
}

static int load_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	*buf = malloc(n > 0 ? (size_t)n : 1);
	*len = (size_t)n;
	if (!*buf || fread(*buf, 1, *len, f) != *len) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	struct vmm_config cfg = { .console_out = console, .console_in_fd = -1, .event = event,
				  .timeout_s = 30 };
	struct vmm_flat_guest flat = { .load_gpa = 0x7c00 };
	struct vmm_result res;
	const char *flat_path = NULL;
	char err[256] = "";
	uint8_t *code = NULL;
	FILE *screen_file = NULL;
	int c, ret;

	while ((c = getopt(argc, argv, "t:m:c:wl:k:i:a:f:F:b:ICP:S:")) != -1) {
		switch (c) {
		case 't': cfg.timeout_s = atof(optarg); break;
		case 'm': cfg.mem_bytes = strtoull(optarg, NULL, 0) << 20; break;
		case 'c': cfg.cpus = (unsigned)atoi(optarg); break;
		case 'w': cfg.writable = true; break;
		case 'l': cfg.firmware_log_path = optarg; break;
		case 'k': cfg.kernel_path = optarg; break;
		case 'i': cfg.initrd_path = optarg; break;
		case 'a': cfg.append = optarg; break;
		case 'f': flat_path = optarg; break;
		case 'F': cfg.disk_format = optarg; break;
		case 'b': cfg.firmware_path = optarg; break;
		case 'I': cfg.console_in_fd = 0; break;
		case 'P': cfg.post_cache_dir = optarg; break;
		case 'S':
			if (screen_file)
				fclose(screen_file);
			if (!(screen_file = fopen(optarg, "wb")))
				return perror(optarg), 1;
			cfg.screen_out = screen;
			cfg.console_opaque = screen_file;
			break;
		case 'C': {
			double mips = vmm_calibrate_mips(err, sizeof(err));
			if (mips < 0)
				return fprintf(stderr, "vmm: calibrate: %s\n", err), 1;
			printf("%.2f\n", mips);
			return 0;
		}
		default: return 2;
		}
	}
	if (optind < argc)
		cfg.disk_path = argv[optind];
	if (flat_path) {
		if (load_file(flat_path, &code, &flat.code_bytes) < 0)
			return perror(flat_path), 1;
		flat.code = code;
		ret = vmm_run_flat(&cfg, &flat, &res, err, sizeof(err));
	} else {
		ret = vmm_run(&cfg, &res, err, sizeof(err));
	}
	free(code);
	if (screen_file)
		fclose(screen_file);
	if (ret < 0)
		return fprintf(stderr, "vmm: %s\n", err), 1;
	fprintf(stderr, "vmm: exit=%s elapsed=%.3f reads=%llu writes=%llu exits=%llu post=%s detail=%s\n",
		exit_name(res.exit), res.elapsed_s, (unsigned long long)res.disk_reads,
		(unsigned long long)res.disk_writes, (unsigned long long)res.guest_exits,
		res.post_restored ? "restored" : res.post_saved ? "saved" : "none", res.detail);
	return 0;
}
