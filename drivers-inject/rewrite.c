/* Rewriting kernel device names to UUID= in configuration text, and adding
 * a serial console to kernel command lines.  Pure functions on strings. */
#include "inject.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A growable output string. */
struct sbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_add(b, s, strlen(s));
}

static int sbuf_finish(struct sbuf *b, char **out)
{
	sbuf_add(b, "", 0);
	if (b->err) {
		free(b->p);
		return b->err;
	}
	*out = b->p;
	return 0;
}

/* Decimal number of at most 4 digits at *s; advances *s. */
static int parse_small_number(const char **s, unsigned *out)
{
	unsigned v = 0, digits = 0;
	while (isdigit((unsigned char)**s) && digits < 5) {
		v = v * 10 + (unsigned)(**s - '0');
		(*s)++;
		digits++;
	}
	if (digits == 0 || digits > 4)
		return -EINVAL;
	*out = v;
	return 0;
}

/* sda, hdb, vdaa: letters after the prefix in bijective base 26
 * ("a" = 0, "z" = 25, "aa" = 26). */
static int parse_disk_letters(const char **s, unsigned *index)
{
	unsigned v = 0, n = 0;
	while (**s >= 'a' && **s <= 'z') {
		if (++n > 3)
			return -EINVAL;
		v = v * 26 + (unsigned)(**s - 'a') + 1;
		(*s)++;
	}
	if (n == 0)
		return -EINVAL;
	*index = v - 1;
	return 0;
}

static int parse_optional_partition(const char *s, const char *sep, unsigned *partition)
{
	*partition = 0;
	if (*s == '\0')
		return 0;
	if (sep) {
		if (*s != *sep)
			return -EINVAL;
		s++;
	}
	if (parse_small_number(&s, partition) < 0 || *s != '\0' || *partition == 0)
		return -EINVAL;
	return 0;
}

int drvinject_parse_device(const char *dev, unsigned *disk_index, unsigned *partition)
{
	static const char *const letter_prefixes[] = { "sd", "hd", "vd", "xvd" };
	unsigned ctrl, ns;

	if (strncmp(dev, "/dev/", 5) != 0)
		return -EINVAL;
	const char *s = dev + 5;
	for (size_t i = 0; i < sizeof(letter_prefixes) / sizeof(letter_prefixes[0]); i++) {
		size_t n = strlen(letter_prefixes[i]);
		if (strncmp(s, letter_prefixes[i], n) != 0)
			continue;
		s += n;
		if (parse_disk_letters(&s, disk_index) < 0)
			return -EINVAL;
		return parse_optional_partition(s, NULL, partition);
	}
	if (!strncmp(s, "cciss/c", 7)) {
		s += 7;
		if (parse_small_number(&s, &ctrl) < 0 || *s++ != 'd' ||
		    parse_small_number(&s, disk_index) < 0)
			return -EINVAL;
		return parse_optional_partition(s, "p", partition);
	}
	if (!strncmp(s, "nvme", 4)) {
		s += 4;
		if (parse_small_number(&s, disk_index) < 0 || *s++ != 'n' ||
		    parse_small_number(&s, &ns) < 0 || ns == 0)
			return -EINVAL;
		return parse_optional_partition(s, "p", partition);
	}
	return -EINVAL;
}

/* The UUID for a device name of length n at dev, or NULL. */
static const char *lookup_uuid(const char *dev, size_t n,
			       const struct drvinject_devmap *map, size_t map_len)
{
	char name[64];
	unsigned disk, part, mdisk, mpart;

	if (n >= sizeof(name))
		return NULL;
	memcpy(name, dev, n);
	name[n] = '\0';
	if (drvinject_parse_device(name, &disk, &part) < 0)
		return NULL;
	for (size_t i = 0; i < map_len; i++) {
		if (drvinject_parse_device(map[i].device, &mdisk, &mpart) < 0)
			continue;
		if (mdisk == disk && mpart == part && map[i].uuid && map[i].uuid[0])
			return map[i].uuid;
	}
	return NULL;
}

static size_t span_blank(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

static size_t span_word(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '"' && s[i] != '\'' &&
	       s[i] != '\n')
		i++;
	return i;
}

/* A table line (fstab, crypttab): replaces field number `field` (0-based). */
static void rewrite_table_line(struct sbuf *b, const char *line, size_t n, unsigned field,
			       const struct drvinject_devmap *map, size_t map_len, unsigned *nr)
{
	size_t pos = span_blank(line, n);
	if (pos == n || line[pos] == '#') {
		sbuf_add(b, line, n);
		return;
	}
	for (unsigned f = 0; f < field && pos < n; f++) {
		pos += span_word(line + pos, n - pos);
		pos += span_blank(line + pos, n - pos);
	}
	size_t w = span_word(line + pos, n - pos);
	const char *uuid = w ? lookup_uuid(line + pos, w, map, map_len) : NULL;
	if (!uuid) {
		sbuf_add(b, line, n);
		return;
	}
	sbuf_add(b, line, pos);
	sbuf_str(b, "UUID=");
	sbuf_str(b, uuid);
	sbuf_add(b, line + pos + w, n - pos - w);
	(*nr)++;
}

/* root=/dev/X and resume=/dev/X anywhere in a line, as whole words. */
static void rewrite_cmdline_line(struct sbuf *b, const char *line, size_t n,
				 const struct drvinject_devmap *map, size_t map_len, unsigned *nr)
{
	static const char *const keys[] = { "root=", "resume=" };
	size_t pos = 0, copied = 0;

	while (pos < n) {
		bool word_start = pos == 0 || strchr(" \t\"'", line[pos - 1]);
		size_t klen = 0;
		for (size_t k = 0; word_start && k < 2 && !klen; k++)
			if (n - pos > strlen(keys[k]) && !strncmp(line + pos, keys[k], strlen(keys[k])))
				klen = strlen(keys[k]);
		if (!klen) {
			pos++;
			continue;
		}
		size_t d = pos + klen, w = span_word(line + d, n - d);
		const char *uuid = lookup_uuid(line + d, w, map, map_len);
		if (uuid) {
			sbuf_add(b, line + copied, d - copied);
			sbuf_str(b, "UUID=");
			sbuf_str(b, uuid);
			copied = d + w;
			(*nr)++;
		}
		pos = d + w;
	}
	sbuf_add(b, line + copied, n - copied);
}

int drvinject_rewrite_devices(const char *text, enum drvinject_text_kind kind,
			      const struct drvinject_devmap *map, size_t map_len,
			      char **out, unsigned *nr_changed)
{
	struct sbuf b = { 0 };
	*nr_changed = 0;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
		if (kind == DRVINJECT_KERNEL_CMDLINE)
			rewrite_cmdline_line(&b, line, n, map, map_len, nr_changed);
		else
			rewrite_table_line(&b, line, n, kind == DRVINJECT_CRYPTTAB ? 1 : 0,
					   map, map_len, nr_changed);
		line += n;
	}
	return sbuf_finish(&b, out);
}

/* Is this line a kernel command line, and where does it end (before the
 * closing quote of GRUB_CMDLINE_LINUX="..." or the newline)? */
static bool cmdline_end(const char *line, size_t n, size_t *end)
{
	size_t pos = span_blank(line, n);
	const char *s = line + pos;
	size_t len = n;
	while (len > pos && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (!strncmp(s, "GRUB_CMDLINE_LINUX=\"", 20)) {
		const char *q = memchr(s + 20, '"', len - pos - 20);
		if (!q)
			return false;
		*end = (size_t)(q - line);
		return true;
	}
	static const char *const words[] = { "linux", "linux16", "linuxefi", "append", "APPEND" };
	size_t w = span_word(s, len - pos);
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (w == strlen(words[i]) && !strncmp(s, words[i], w)) {
			*end = len;
			return true;
		}
	}
	return false;
}

int drvinject_add_serial_console(const char *text, char **out, unsigned *nr_changed)
{
	struct sbuf b = { 0 };
	*nr_changed = 0;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line), end;
		bool has = false;
		for (size_t i = 0; i + 13 <= n && !has; i++)
			has = !strncmp(line + i, "console=ttyS0", 13);
		if (has || !cmdline_end(line, n, &end)) {
			sbuf_add(&b, line, n);
		} else {
			sbuf_add(&b, line, end);
			bool need_space = end > 0 && line[end - 1] != '"' && line[end - 1] != ' ';
			sbuf_str(&b, need_space ? " console=tty0 console=ttyS0,115200"
						: "console=tty0 console=ttyS0,115200");
			sbuf_add(&b, line + end, n - end);
			(*nr_changed)++;
		}
		line += n;
	}
	return sbuf_finish(&b, out);
}
