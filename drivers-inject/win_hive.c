/* A minimal valid Windows registry hive ("regf"), written from scratch:
 * hivex edits hives but cannot create one.  Layout: a 4 KiB base block,
 * one 4 KiB hbin holding the root key (nk), its security cell (sk) and one
 * free cell for the rest. */
#include "inject.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum {
	HIVE_BASE_BLOCK_BYTES = 4096,
	HIVE_HBIN_BYTES = 4096,
	HIVE_HBIN_HEADER_BYTES = 0x20,
	HIVE_CHECKSUM_OFFSET = 0x1fc,
	/* Cell offsets are relative to the first hbin. */
	HIVE_ROOT_CELL = HIVE_HBIN_HEADER_BYTES,
	HIVE_ROOT_CELL_BYTES = 0x58,  /* 4 size + 0x4c nk + "ROOT", 8-aligned */
	HIVE_SK_CELL = HIVE_ROOT_CELL + HIVE_ROOT_CELL_BYTES,
	HIVE_SK_CELL_BYTES = 0x30,    /* 4 size + 0x14 sk + 20-byte descriptor */
	HIVE_FREE_CELL = HIVE_SK_CELL + HIVE_SK_CELL_BYTES,
};

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void hive_base_block(uint8_t *b)
{
	memcpy(b, "regf", 4);
	put_le32(b + 0x04, 1);                 /* primary sequence number */
	put_le32(b + 0x08, 1);                 /* secondary sequence number */
	put_le32(b + 0x14, 1);                 /* major version */
	put_le32(b + 0x18, 3);                 /* minor version */
	put_le32(b + 0x20, 1);                 /* format: direct memory load */
	put_le32(b + 0x24, HIVE_ROOT_CELL);
	put_le32(b + 0x28, HIVE_HBIN_BYTES);   /* size of all hbins */
	put_le32(b + 0x2c, 1);                 /* clustering factor */
	uint32_t sum = 0;
	for (unsigned off = 0; off < HIVE_CHECKSUM_OFFSET; off += 4)
		sum ^= get_le32(b + off);
	if (sum == 0xffffffffu)
		sum = 0xfffffffeu;
	if (sum == 0)
		sum = 1;
	put_le32(b + HIVE_CHECKSUM_OFFSET, sum);
}

static void hive_root_key(uint8_t *c)
{
	put_le32(c, (uint32_t)-HIVE_ROOT_CELL_BYTES); /* negative: allocated */
	uint8_t *nk = c + 4;
	memcpy(nk, "nk", 2);
	put_le16(nk + 0x02, 0x2c);          /* HIVE_ENTRY | NO_DELETE | COMP_NAME */
	put_le32(nk + 0x1c, 0xffffffffu);   /* no subkey list */
	put_le32(nk + 0x20, 0xffffffffu);   /* no volatile subkey list */
	put_le32(nk + 0x28, 0xffffffffu);   /* no value list */
	put_le32(nk + 0x2c, HIVE_SK_CELL);
	put_le32(nk + 0x30, 0xffffffffu);   /* no class name */
	put_le16(nk + 0x48, 4);             /* name length */
	memcpy(nk + 0x4c, "ROOT", 4);
}

static void hive_security(uint8_t *c)
{
	put_le32(c, (uint32_t)-HIVE_SK_CELL_BYTES);
	uint8_t *sk = c + 4;
	memcpy(sk, "sk", 2);
	put_le32(sk + 0x04, HIVE_SK_CELL);  /* the only sk: it links to itself */
	put_le32(sk + 0x08, HIVE_SK_CELL);
	put_le32(sk + 0x0c, 1);             /* reference count: the root key */
	put_le32(sk + 0x10, 20);            /* descriptor bytes */
	uint8_t *sd = sk + 0x14;            /* self-relative, no owner, no ACLs */
	sd[0] = 1;                          /* revision */
	put_le16(sd + 2, 0x8000);           /* SE_SELF_RELATIVE */
}

int drvinject_win_hive_create(const char *path, char *err, size_t err_bytes)
{
	uint8_t buf[HIVE_BASE_BLOCK_BYTES + HIVE_HBIN_BYTES] = { 0 };

	hive_base_block(buf);
	uint8_t *hbin = buf + HIVE_BASE_BLOCK_BYTES;
	memcpy(hbin, "hbin", 4);
	put_le32(hbin + 0x04, 0);           /* offset of this hbin */
	put_le32(hbin + 0x08, HIVE_HBIN_BYTES);
	hive_root_key(hbin + HIVE_ROOT_CELL);
	hive_security(hbin + HIVE_SK_CELL);
	put_le32(hbin + HIVE_FREE_CELL, HIVE_HBIN_BYTES - HIVE_FREE_CELL); /* positive: free */

	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_bytes, "%s: %s", path, strerror(e));
		return -e;
	}
	ssize_t n = write(fd, buf, sizeof(buf));
	int e = n < 0 ? errno : EIO;
	if (close(fd) < 0 && n == (ssize_t)sizeof(buf)) {
		n = -1;
		e = errno;
	}
	if (n != (ssize_t)sizeof(buf)) {
		snprintf(err, err_bytes, "%s: writing the hive: %s", path, strerror(e));
		return -e;
	}
	return 0;
}
