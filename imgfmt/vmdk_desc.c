/* VMDK text descriptors: parsing (hostile input) and writing.
 *
 * A descriptor is a list of lines: comments (#), key=value pairs (values may
 * be quoted) and extent lines "ACCESS SECTORS TYPE ["file" [OFFSET]]". */
#include "vmdk.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LINE_MAX_BYTES 4096u

struct parse {
	struct vmdk_desc *d;
	unsigned line_no;
	char *err;
	size_t err_bytes;
};

static int perr(struct parse *p, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr(struct parse *p, int code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->err_bytes, "descriptor line %u: %s", p->line_no, msg);
	return code;
}

void vmdk_desc_free(struct vmdk_desc *d)
{
	for (unsigned i = 0; i < d->n_ext; i++)
		free(d->ext[i].file);
	free(d->ext);
	free(d->parent_hint);
	memset(d, 0, sizeof(*d));
}

static char *skip_space(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static void trim_end(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
}

/* A decimal number of sectors, digits only, overflow-checked. */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++)
		if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return -ERANGE;
	*out = v;
	return *s ? -EINVAL : 0;
}

/* Next whitespace-separated token of an extent line; NULL at the end. */
static char *next_token(char **cur)
{
	char *s = skip_space(*cur), *t = s;

	if (!*s)
		return NULL;
	while (*t && *t != ' ' && *t != '\t')
		t++;
	if (*t)
		*t++ = 0;
	*cur = t;
	return s;
}

/* A quoted file name; NULL when the quotes are missing or unbalanced. */
static char *next_quoted(char **cur)
{
	char *s = skip_space(*cur), *end;

	if (*s != '"')
		return NULL;
	end = strchr(s + 1, '"');
	if (!end)
		return NULL;
	*end = 0;
	*cur = end + 1;
	return s + 1;
}

int vmdk_desc_check_name(const char *name, char *err, size_t err_bytes)
{
	int depth = 0;
	const char *s = name;

	if (!*name || name[0] == '/') {
		snprintf(err, err_bytes, "extent file name '%s' is %s", name,
			 *name ? "an absolute path (only names relative to the descriptor are allowed)"
			       : "empty");
		return -EPERM;
	}
	while (*s) {
		size_t n = strcspn(s, "/");
		if (n == 2 && s[0] == '.' && s[1] == '.')
			depth--;
		else if (n > 0 && !(n == 1 && s[0] == '.'))
			depth++;
		if (depth < 0) {
			snprintf(err, err_bytes,
				 "extent file name '%s' leaves the descriptor's directory (..)", name);
			return -EPERM;
		}
		s += n;
		s += (*s == '/');
	}
	return 0;
}

static int parse_kind(struct parse *p, const char *t, enum vmdk_extent_kind *kind)
{
	if (!strcmp(t, "SPARSE"))
		*kind = VMDK_EXTENT_SPARSE;
	else if (!strcmp(t, "FLAT") || !strcmp(t, "VMFS"))
		*kind = VMDK_EXTENT_FLAT;
	else if (!strcmp(t, "ZERO"))
		*kind = VMDK_EXTENT_ZERO;
	else
		return perr(p, -ENOTSUP, "extent type '%.40s' is not supported (SPARSE, FLAT, VMFS, ZERO)", t);
	return 0;
}

static int add_extent(struct parse *p, const struct vmdk_desc_extent *e)
{
	struct vmdk_desc *d = p->d;
	struct vmdk_desc_extent *nv;

	if (d->n_ext >= VMDK_MAX_EXTENTS)
		return perr(p, -EINVAL, "more than %u extents", VMDK_MAX_EXTENTS);
	if (__builtin_add_overflow(d->total_sectors, e->sectors, &d->total_sectors) ||
	    d->total_sectors > VMDK_MAX_SECTORS)
		return perr(p, -EINVAL, "extent sectors: the extents add up to more than %llu sectors",
			    (unsigned long long)VMDK_MAX_SECTORS);
	nv = realloc(d->ext, (d->n_ext + 1) * sizeof(*nv));
	if (!nv)
		return perr(p, -ENOMEM, "out of memory");
	d->ext = nv;
	d->ext[d->n_ext] = *e;
	d->ext[d->n_ext].file = NULL;
	if (e->file) {
		d->ext[d->n_ext].file = strdup(e->file);
		if (!d->ext[d->n_ext].file)
			return perr(p, -ENOMEM, "out of memory");
	}
	d->n_ext++;
	return 0;
}

static int parse_extent_tail(struct parse *p, char *cur, struct vmdk_desc_extent *e)
{
	char *t, msg[200];

	if (e->kind == VMDK_EXTENT_ZERO)
		return 0;
	e->file = next_quoted(&cur);
	if (!e->file)
		return perr(p, -EINVAL, "extent file name is missing or not quoted");
	if (vmdk_desc_check_name(e->file, msg, sizeof(msg)) < 0)
		return perr(p, -EPERM, "%s", msg);
	t = next_token(&cur);
	if (t && e->kind == VMDK_EXTENT_FLAT && parse_u64(t, &e->offset_sectors) < 0)
		return perr(p, -EINVAL, "extent offset '%.40s' is not a sector count", t);
	if (e->offset_sectors > VMDK_MAX_SECTORS)
		return perr(p, -EINVAL, "extent offset %llu sectors is absurd",
			    (unsigned long long)e->offset_sectors);
	return 0;
}

static int parse_extent(struct parse *p, char *line)
{
	struct vmdk_desc_extent e = { 0 };
	char *cur = line, *acc = next_token(&cur), *num = next_token(&cur), *kind = next_token(&cur);
	int r;

	if (!strcmp(acc, "RW"))
		e.access = VMDK_ACCESS_RW;
	else if (!strcmp(acc, "RDONLY"))
		e.access = VMDK_ACCESS_RDONLY;
	else
		e.access = VMDK_ACCESS_NOACCESS;
	if (!num || !kind)
		return perr(p, -EINVAL, "extent line is incomplete (ACCESS SECTORS TYPE \"file\")");
	r = parse_u64(num, &e.sectors);
	if (r < 0)
		return perr(p, -EINVAL, "extent sectors '%.40s' %s", num,
			    r == -ERANGE ? "overflows" : "is not a number");
	if (e.sectors == 0 || e.sectors > VMDK_MAX_SECTORS)
		return perr(p, -EINVAL, "extent sectors %llu out of range (1..%llu)",
			    (unsigned long long)e.sectors, (unsigned long long)VMDK_MAX_SECTORS);
	r = parse_kind(p, kind, &e.kind);
	if (r == 0)
		r = parse_extent_tail(p, cur, &e);
	return r < 0 ? r : add_extent(p, &e);
}

static void copy_value(char *dst, size_t cap, const char *v)
{
	snprintf(dst, cap, "%s", v);
}

static int parse_hex32(struct parse *p, const char *key, const char *v, uint32_t *out)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v, &end, 16);
	if (errno || end == v || *end || x > UINT32_MAX)
		return perr(p, -EINVAL, "%s '%.40s' is not a 32-bit hex number", key, v);
	*out = (uint32_t)x;
	return 0;
}

static int parse_pair(struct parse *p, char *key, char *val)
{
	struct vmdk_desc *d = p->d;
	size_t n;

	trim_end(key);
	val = skip_space(val);
	n = strlen(val);
	if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
		val[n - 1] = 0;
		val++;
	}
	if (!strcmp(key, "version")) {
		uint64_t v;
		if (parse_u64(val, &v) < 0 || v < 1 || v > 3)
			return perr(p, -EINVAL, "version '%.40s' is not 1, 2 or 3", val);
		d->version = (unsigned)v;
	} else if (!strcmp(key, "CID")) {
		return parse_hex32(p, key, val, &d->cid);
	} else if (!strcmp(key, "parentCID")) {
		return parse_hex32(p, key, val, &d->parent_cid);
	} else if (!strcmp(key, "createType")) {
		copy_value(d->create_type, sizeof(d->create_type), val);
	} else if (!strcmp(key, "ddb.adapterType")) {
		copy_value(d->adapter_type, sizeof(d->adapter_type), val);
	} else if (!strcmp(key, "ddb.virtualHWVersion")) {
		copy_value(d->hw_version, sizeof(d->hw_version), val);
	} else if (!strcmp(key, "parentFileNameHint") && *val) {
		free(d->parent_hint);
		d->parent_hint = strdup(val);
		if (!d->parent_hint)
			return perr(p, -ENOMEM, "out of memory");
	}
	return 0;
}

static bool is_extent_line(const char *s)
{
	static const char *const acc[] = { "RW ", "RDONLY ", "NOACCESS ", "RW\t", "RDONLY\t",
					   "NOACCESS\t" };

	for (size_t i = 0; i < sizeof(acc) / sizeof(acc[0]); i++)
		if (!strncmp(s, acc[i], strlen(acc[i])))
			return true;
	return false;
}

static int parse_line(struct parse *p, char *line)
{
	char *s = skip_space(line), *eq;

	trim_end(s);
	if (!*s || *s == '#')
		return 0;
	if (is_extent_line(s))
		return parse_extent(p, s);
	eq = strchr(s, '=');
	if (!eq)
		return perr(p, -EINVAL, "'%.60s' is neither key=value nor an extent", s);
	*eq = 0;
	return parse_pair(p, s, eq + 1);
}

int vmdk_desc_parse(const char *text, size_t len, struct vmdk_desc *d, char *err,
		    size_t err_bytes)
{
	struct parse p = { .d = d, .err = err, .err_bytes = err_bytes };
	char line[LINE_MAX_BYTES];
	const char *end;
	int r = 0;

	memset(d, 0, sizeof(*d));
	d->version = 1;
	d->parent_cid = UINT32_MAX;
	end = memchr(text, 0, len);
	if (end)
		len = (size_t)(end - text);
	while (len > 0 && r == 0) {
		const char *nl = memchr(text, '\n', len);
		size_t n = nl ? (size_t)(nl - text) : len;
		p.line_no++;
		if (n >= sizeof(line)) {
			r = perr(&p, -EINVAL, "line longer than %u bytes", LINE_MAX_BYTES - 1);
			break;
		}
		memcpy(line, text, n);
		line[n] = 0;
		r = parse_line(&p, line);
		n += nl != NULL;
		text += n;
		len -= n;
	}
	if (r == 0 && d->n_ext == 0)
		r = perr(&p, -EINVAL, "no extent lines (RW <sectors> SPARSE \"file\")");
	if (r < 0)
		vmdk_desc_free(d);
	return r;
}

/* ---- writing ---- */

long vmdk_desc_format(const struct vmdk_desc_params *p, char *buf, size_t cap)
{
	unsigned heads = strcmp(p->adapter_type, "ide") ? 255 : 16;
	uint64_t cyl = p->sectors / (heads * 63u);
	int n;

	if (cyl > 16383)
		cyl = 16383;
	n = snprintf(buf, cap,
		     "# Disk DescriptorFile\n"
		     "version=1\n"
		     "CID=ffffffff\n"
		     "parentCID=ffffffff\n"
		     "createType=\"%s\"\n"
		     "\n"
		     "# Extent description\n"
		     "RW %llu SPARSE \"%s\"\n"
		     "\n"
		     "# The Disk Data Base\n"
		     "#DDB\n"
		     "\n"
		     "ddb.virtualHWVersion = \"%u\"\n"
		     "ddb.geometry.cylinders = \"%llu\"\n"
		     "ddb.geometry.heads = \"%u\"\n"
		     "ddb.geometry.sectors = \"63\"\n"
		     "ddb.adapterType = \"%s\"\n"
		     "ddb.toolsVersion = \"2147483647\"\n",
		     p->create_type, (unsigned long long)p->sectors, p->file_name, p->hw_version,
		     (unsigned long long)cyl, heads, p->adapter_type);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}
