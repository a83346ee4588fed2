/* Fuzz the device snapshot loaders: every device of the machine's table is
 * created on a machine without KVM (guest RAM a plain buffer, interrupts
 * counted, a 64 KiB disk), then each device with state takes its next
 * state_bytes of the input through ops->load.  A state load accepts must be
 * one the device can live with: it saves back to the same bytes, loads again,
 * and the device then serves reads and writes on all of its ports without
 * touching anything it should not (ASan/UBSan watch).  A POST snapshot file
 * sits in the user's cache directory; this is what keeps a damaged or
 * hostile one from doing harm. */
#include "machine.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define RAM_BYTES (1u << 20)
#define DISK_BYTES (64u * 1024)

static void irq_count(void *opaque, unsigned irq, int level)
{
	(void)irq, (void)level;
	(*(unsigned *)opaque)++;
}

static struct vmm_disk *fuzz_disk(void)
{
	static struct vmm_disk *disk;
	char path[64], err[256];
	int fd;

	if (disk)
		return disk;
	fd = memfd_create("fuzz-disk", 0);
	if (fd < 0 || ftruncate(fd, DISK_BYTES) < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (vmm_disk_open(&disk, path, "raw", false, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	return disk;
}

/* Every port of every enabled range: read each byte and write it back. */
static void poke(struct vmm_bus *bus)
{
	for (unsigned i = 0; i < bus->n; i++) {
		const struct vmm_bus_entry *e = &bus->e[i];
		if (!e->enabled || e->space != VMM_SPACE_PIO)
			continue;
		for (uint64_t off = 0; off < e->len && off < 64; off++) {
			uint8_t b;
			if (!strcmp(e->name, "debug-exit") || !strcmp(e->name, "port92"))
				continue; /* requests power-off/reset: nothing to see */
			vmm_bus_dispatch(bus, VMM_SPACE_PIO, e->base + off, &b, 1, false);
			vmm_bus_dispatch(bus, VMM_SPACE_PIO, e->base + off, &b, 1, true);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t ram[RAM_BYTES];
	struct vmm_config cfg = { .console_in_fd = -1 };
	struct vmm_machine *m = calloc(1, sizeof(*m));
	unsigned irqs = 0;
	size_t n_ops, pos = 0;
	const struct vmm_device_ops *const *ops = vmm_machine_device_table(&n_ops);
	char err[256];

	if (!m)
		return 0;
	memset(ram, 0, sizeof(ram));
	m->cfg = &cfg;
	m->cpus = 2;
	m->below_4g = RAM_BYTES;
	m->mem = (struct vmm_mem){ .r = { { 0, RAM_BYTES, ram } }, .n = 1 };
	m->irq = (struct vmm_irq){ irq_count, &irqs };
	m->disk = fuzz_disk();
	for (size_t i = 0; i < n_ops; i++)
		if (vmm_device_add(&m->devices, m, &m->bus, ops[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			abort();
		}
	for (unsigned i = 0; i < m->devices.n; i++) {
		const struct vmm_device *d = &m->devices.d[i];
		uint8_t *again;
		if (d->ops->stateless || size - pos < d->ops->state_bytes)
			continue;
		if (d->ops->load(d->state, data + pos) == 0) {
			again = malloc(d->ops->state_bytes);
			if (!again)
				abort();
			d->ops->save(d->state, again);
			if (d->ops->load(d->state, again) != 0)
				abort(); /* what it saved, it must take back */
			free(again);
		}
		pos += d->ops->state_bytes;
	}
	if (m->boot_disk)
		vmm_vblk_process(m->boot_disk);
	poke(&m->bus);
	vmm_devices_destroy(&m->devices);
	free(m->console_tee.buf);
	free(m->screen_tee.buf);
	free(m->fwlog_tee.buf);
	free(m);
	return 0;
}
