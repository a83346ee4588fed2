/* The boot engines behind p2v boot / p2v verify, one file and one ops
 * struct each, listed in engine.c's table (the order --engine auto tries):
 *  - vmm-min (engine_vmm.c): the bundled KVM VMM, for hardware-speed KVM;
 *  - QEMU TCG (engine_qemu.c): qemu-system-x86_64 -accel tcg, the fallback
 *    for machines whose KVM is software-nested (about 1 MIPS) or missing.
 * All feed the same watcher (verdict.h) and take the same configuration. */
#ifndef P2V_ENGINE_H
#define P2V_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verdict.h"

/* The firmware the machine starts: SeaBIOS, or OVMF with a fresh variable
 * store (no boot entries: only \EFI\BOOT\BOOTX64.EFI can boot). */
enum p2v_firmware { P2V_FW_BIOS, P2V_FW_UEFI };

struct p2v_engine_config {
	const char *qemu_path;        /* NULL: $P2V_QEMU or qemu-system-x86_64 */
	const char *disk_path;        /* NULL: no disk */
	const char *disk_format;      /* imgfmt name: raw, qcow2, vpc, vhdx, vmdk */
	const char *const *allow_backing; /* --allow-backing: imgfmt_open_opts */
	unsigned n_allow_backing;
	bool allow_symlinks;          /* --allow-symlinks */
	bool writable;                /* false: -snapshot, the image is never written */
	uint64_t mem_bytes;
	const char *kernel_path, *initrd_path, *append;
	const char *firmware_log_path; /* SeaBIOS debug port output, or NULL */
	double timeout_s;             /* 0: none */
	const char *post_cache_dir;   /* vmm-min: POST snapshots here (NULL: off) */
	enum p2v_firmware firmware;
	unsigned cpus;                /* 0: the engine's default (2) */
};

struct p2v_engine_result {
	double elapsed_s;
	char detail[256];             /* engine-specific: QMP shutdown reason, VMM exit */
	bool post_restored;           /* vmm-min resumed a POST snapshot */
};

struct p2v_engine_ops {
	const char *name;             /* --engine NAME; the report's engine */
	const char *title;            /* for messages and reports */
	const char *report_name;      /* the report's "engine" value */
	/* Can it run here?  explicit: the user named it (else --engine auto
	 * asks whether it is the right choice).  1 yes, 0 no; note says why
	 * either way, in one line. */
	int (*check)(const struct p2v_engine_config *cfg, bool explicit, char *note,
		     size_t note_bytes);
	/* Whether it can boot an image of this imgfmt format. */
	bool (*boots_format)(const char *imgfmt_name);
	bool disk_counters;           /* reports each disk read and write */
	/* Boot and feed w until it decides, the guest stops, the timeout or
	 * *stop.  0 when the run happened (see w->verdict), -errno when it
	 * could not run, with a message in err. */
	int (*verify)(const struct p2v_engine_config *cfg, struct p2v_watch *w,
		      volatile sig_atomic_t *stop, struct p2v_engine_result *res,
		      char *err, size_t err_bytes);
	/* Interactive: COM1 on console_in_fd/console_out_fd until the guest
	 * stops or *stop; 0 or -errno with a message in err. */
	int (*console)(const struct p2v_engine_config *cfg, int console_in_fd, int console_out_fd,
		       volatile sig_atomic_t *stop, char *err, size_t err_bytes);
};

extern const struct p2v_engine_ops p2v_engine_vmm, p2v_engine_qemu;

/* The engine called name, or NULL. */
const struct p2v_engine_ops *p2v_engine_find(const char *name);
/* "auto, vmm, qemu" for messages. */
void p2v_engine_names(char *buf, size_t bytes);
/* --engine auto: the first engine of the table whose check says yes, with
 * why in note; NULL (note: why none) when none can run. */
const struct p2v_engine_ops *p2v_engine_auto(const struct p2v_engine_config *cfg, char *note,
					     size_t note_bytes);

/* QEMU's name for an imgfmt format, or NULL when QEMU cannot open it. */
const char *p2v_qemu_format(const char *imgfmt_name);
/* The QEMU binary (for messages and the availability check). */
const char *p2v_qemu_binary(const struct p2v_engine_config *cfg);
/* True when the QEMU binary can be executed. */
bool p2v_qemu_available(const struct p2v_engine_config *cfg);

/* Boot under QEMU TCG and feed w until it decides, the guest stops, the
 * timeout or *stop.  0 when the run happened (see w->verdict), -errno when
 * QEMU could not run, with a message in err. */
int p2v_qemu_verify(const struct p2v_engine_config *cfg, struct p2v_watch *w,
		    volatile sig_atomic_t *stop, struct p2v_engine_result *res,
		    char *err, size_t err_bytes);

/* Interactive: QEMU with its serial console on console_in_fd/console_out_fd.
 * Returns when QEMU exits or *stop; 0 or -errno with a message in err. */
int p2v_qemu_console(const struct p2v_engine_config *cfg, int console_in_fd, int console_out_fd,
		     volatile sig_atomic_t *stop, char *err, size_t err_bytes);

/* ---- vmm-min (only when the vmmmin library is linked: P2V_HAVE_VMM) ---- */

/* Whether this p2v has the vmm-min engine. */
bool p2v_vmm_built(void);
/* Guest MIPS under this machine's KVM, or -errno (-ENOSYS: not built in). */
double p2v_vmm_mips(char *err, size_t err_bytes);
/* Same contract as p2v_qemu_verify / p2v_qemu_console. */
int p2v_vmm_verify(const struct p2v_engine_config *cfg, struct p2v_watch *w,
		   volatile sig_atomic_t *stop, struct p2v_engine_result *res,
		   char *err, size_t err_bytes);
int p2v_vmm_console(const struct p2v_engine_config *cfg, int console_in_fd, int console_out_fd,
		    volatile sig_atomic_t *stop, char *err, size_t err_bytes);

#endif
