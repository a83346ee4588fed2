/* The image signatures: every one QEMU 7.2's block drivers' probe functions
 * recognise (block/bochs.c, cloop.c, crypto.c for LUKS, parallels.c,
 * qcow.c, qcow2.c, qed.c, vdi.c, vhdx.c, vmdk.c, vpc.c), and dmg's "koly"
 * trailer (QEMU probes dmg by the file's name, then looks for the trailer
 * where block/dmg.c does).  The core never opens a file as raw when one of
 * them is present (CVE-2008-2004: a guest writing a foreign header into its
 * own first sector must not change how the host opens its disk). */
#include "driver.h"

enum sig_where {
	SIG_HEAD,       /* at offset from the start of the file */
	SIG_TAIL,       /* at offset from the start of the last 512 bytes */
	SIG_TAIL_SCAN,  /* anywhere in the last KiB, as extra() finds it */
};

struct sig {
	const char *format;      /* qemu-img's name for the format */
	enum sig_where where;
	uint32_t offset;
	const char *bytes;
	size_t len;
	size_t min_file_bytes;   /* the probe's minimum buffer (header size) */
	/* A further condition on the bytes (head, or the tail window for
	 * SIG_TAIL_SCAN); NULL when the bytes are enough. */
	bool (*extra)(const uint8_t *buf, size_t len);
};

static const char bochs_magic[] = "Bochs Virtual HD Image";
static const char cloop_magic[] =
	"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";
static const char vmdk_desc_magic[] = "# Disk DescriptorFile";

/* bochs: NUL-terminated type "Redolog" at 32, subtype "Growing" at 48,
 * version 1.0 or 2.0 (LE) at 64. */
static bool bochs_extra(const uint8_t *b, size_t len)
{
	uint32_t v;

	if (len < 68 || memcmp(b + 32, "Redolog", 8) || memcmp(b + 48, "Growing", 8))
		return false;
	v = imgfmt_get_le32(b + 64);
	return v == 0x00010000 || v == 0x00020000;
}

/* The version (BE32 at 4) splits QFI\xfb: 1 is qcow, the rest qcow2 (QEMU
 * takes 2 and up; 0 is no format, but is never raw here either). */
static bool qcow1_extra(const uint8_t *b, size_t len)
{
	return len >= 8 && imgfmt_get_be32(b + 4) == 1;
}

static bool qcow2_extra(const uint8_t *b, size_t len)
{
	return len >= 8 && imgfmt_get_be32(b + 4) != 1;
}

/* LUKS: BE16 version 1 or 2 at 6 (QEMU 7.2 reads only 1; 2 is cryptsetup's
 * LUKS2, a header all the same). */
static bool luks_extra(const uint8_t *b, size_t len)
{
	uint16_t v;

	if (len < 8)
		return false;
	v = (uint16_t)(b[6] << 8 | b[7]);
	return v == 1 || v == 2;
}

/* parallels: LE32 version 2 at 16. */
static bool parallels_extra(const uint8_t *b, size_t len)
{
	return len >= 20 && imgfmt_get_le32(b + 16) == 2;
}

static bool version_line(const uint8_t *p, size_t n)
{
	static const char *const lines[] = {
		"version=1\n", "version=2\n", "version=3\n",
		"version=1\r\n", "version=2\r\n", "version=3\r\n",
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (n >= strlen(lines[i]) && !memcmp(p, lines[i], strlen(lines[i])))
			return true;
	return false;
}

/* A VMDK descriptor as block/vmdk.c's probe reads one: comment lines
 * ('#' to the end of the line) and blank lines (spaces, an optional CR),
 * then "version=1", 2 or 3 ending its line; QEMU looks at the first 2 KiB. */
static bool vmdk_text_extra(const uint8_t *b, size_t len)
{
	size_t i = 0;

	if (len > 2048)
		len = 2048;
	while (i < len) {
		if (b[i] == '#') {
			while (i < len && b[i] != '\n')
				i++;
			i++;
		} else if (b[i] == ' ') {
			while (i < len && b[i] == ' ')
				i++;
			if (i < len && b[i] == '\r')
				i++;
			if (i == len || b[i] != '\n')
				return false;
			i++;
		} else {
			return version_line(b + i, len - i);
		}
	}
	return false;
}

/* dmg: "koly" starting in the last 1023 bytes up to the start of the last
 * sector (block/dmg.c's search for the UDIF trailer in files whose size is
 * not a multiple of 512), or in the first 515 bytes of a smaller file. */
static bool dmg_extra(const uint8_t *b, size_t len)
{
	size_t start = len >= 1023 ? len - 1023 : 0;
	size_t n = len - start < 515 ? len - start : 515;

	for (size_t i = 0; i + 4 <= n; i++)
		if (!memcmp(b + start + i, "koly", 4))
			return true;
	return false;
}

static const struct sig sigs[] = {
	{ "qcow2", SIG_HEAD, 0, "QFI\xfb", 4, 8, qcow2_extra },
	{ "qcow", SIG_HEAD, 0, "QFI\xfb", 4, 8, qcow1_extra },
	{ "vhdx", SIG_HEAD, 0, "vhdxfile", 8, 8, NULL },
	{ "vpc", SIG_HEAD, 0, "conectix", 8, 8, NULL },
	{ "vpc", SIG_TAIL, 0, "conectix", 8, 512, NULL },
	{ "vmdk", SIG_HEAD, 0, "KDMV", 4, 4, NULL },
	{ "vmdk", SIG_HEAD, 0, "COWD", 4, 4, NULL },
	{ "vmdk", SIG_HEAD, 0, vmdk_desc_magic, sizeof(vmdk_desc_magic) - 1, 1, NULL },
	{ "vmdk", SIG_HEAD, 0, "", 0, 1, vmdk_text_extra },
	{ "bochs", SIG_HEAD, 0, bochs_magic, sizeof(bochs_magic), 512, bochs_extra },
	{ "cloop", SIG_HEAD, 0, cloop_magic, sizeof(cloop_magic) - 1, 1, NULL },
	{ "luks", SIG_HEAD, 0, "LUKS\xba\xbe", 6, 8, luks_extra },
	{ "parallels", SIG_HEAD, 0, "WithoutFreeSpace", 16, 64, parallels_extra },
	{ "parallels", SIG_HEAD, 0, "WithouFreSpacExt", 16, 64, parallels_extra },
	{ "qed", SIG_HEAD, 0, "QED\0", 4, 64, NULL },
	{ "vdi", SIG_HEAD, 0x40, "\x7f\x10\xda\xbe", 4, 512, NULL },
	{ "dmg", SIG_TAIL_SCAN, 0, "", 0, 512, dmg_extra },
};

static bool sig_matches(const struct sig *s, const struct imgfmt_probe_buf *pb)
{
	const uint8_t *buf = pb->head;
	size_t len = pb->head_bytes;

	if (pb->file_bytes < s->min_file_bytes)
		return false;
	if (s->where == SIG_TAIL) {
		buf = pb->tail;
		len = pb->tail_bytes;
	} else if (s->where == SIG_TAIL_SCAN) {
		buf = pb->tail_wide;
		len = pb->tail_wide_bytes;
	}
	if (len < s->offset || len - s->offset < s->len || memcmp(buf + s->offset, s->bytes, s->len))
		return false;
	return !s->extra || s->extra(buf, len);
}

const char *imgfmt_probe_signature(const struct imgfmt_probe_buf *pb)
{
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sig_matches(&sigs[i], pb))
			return sigs[i].format;
	return NULL;
}
