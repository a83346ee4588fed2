/* Create options: each driver declares its options in a static table
 * (struct imgfmt_opt_desc); this file parses "key=val,key=val" against it
 * once, so the drivers get typed, range-checked values and never see text
 * they would have to validate.  As in QEMU, ",," stands for a comma inside
 * a value, and a bare "key" means key=on for an on/off option. */
#include "driver.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static size_t n_opts(const struct imgfmt_opt_desc *d)
{
	size_t n = 0;

	while (d && d[n].name)
		n++;
	return n;
}

const struct imgfmt_opt_desc *imgfmt_create_options(const char *format)
{
	static const struct imgfmt_opt_desc none[] = { { 0 } };
	const struct imgfmt_driver *drv = imgfmt_find_driver(format ? format : "");

	if (!drv)
		return NULL;
	return drv->create_opts ? drv->create_opts : none;
}

const struct imgfmt_opt_desc *imgfmt_amend_options(const char *format)
{
	static const struct imgfmt_opt_desc none[] = { { 0 } };
	const struct imgfmt_driver *drv = imgfmt_find_driver(format ? format : "");

	if (!drv)
		return NULL;
	return drv->amend_opts ? drv->amend_opts : none;
}

/* "64K" for 65536, "512" for 512: the shortest exact binary-suffix form. */
static void size_text(uint64_t v, char *buf, size_t buf_bytes)
{
	static const char suffix[] = "KMGTPE";
	unsigned u = 0;

	while (v && v % 1024 == 0 && u < sizeof(suffix) - 1) {
		v /= 1024;
		u++;
	}
	if (u)
		snprintf(buf, buf_bytes, "%llu%c", (unsigned long long)v, suffix[u - 1]);
	else
		snprintf(buf, buf_bytes, "%llu", (unsigned long long)v);
}

static void number_text(const struct imgfmt_opt_desc *d, uint64_t v, char *buf, size_t buf_bytes)
{
	if (d->type == IMGFMT_OPT_SIZE)
		size_text(v, buf, buf_bytes);
	else
		snprintf(buf, buf_bytes, "%llu", (unsigned long long)v);
}

/* "a power of two from 512 to 2M, a multiple of 1M" */
static void range_text(const struct imgfmt_opt_desc *d, char *buf, size_t buf_bytes)
{
	char lo[32], hi[32], mul[32];
	size_t n = 0;

	buf[0] = 0;
	number_text(d, d->min, lo, sizeof(lo));
	number_text(d, d->max, hi, sizeof(hi));
	number_text(d, d->multiple, mul, sizeof(mul));
	if (d->pow2)
		n += (size_t)snprintf(buf + n, buf_bytes - n, "a power of two");
	if (d->max)
		n += (size_t)snprintf(buf + n, n < buf_bytes ? buf_bytes - n : 0, "%sfrom %s to %s",
				      n ? " " : "", lo, hi);
	else if (d->min)
		n += (size_t)snprintf(buf + n, n < buf_bytes ? buf_bytes - n : 0, "%sat least %s",
				      n ? " " : "", lo);
	if (d->multiple && n < buf_bytes)
		snprintf(buf + n, buf_bytes - n, "%sa multiple of %s", n ? ", " : "", mul);
}

static void choices_text(const struct imgfmt_opt_desc *d, const char *sep, char *buf, size_t buf_bytes)
{
	size_t n = 0;

	buf[0] = 0;
	for (size_t i = 0; d->choices && d->choices[i] && n < buf_bytes; i++)
		n += (size_t)snprintf(buf + n, buf_bytes - n, "%s%s", i ? sep : "", d->choices[i]);
}

void imgfmt_opt_describe(const struct imgfmt_opt_desc *d, char *buf, size_t buf_bytes)
{
	char tag[200], range[120] = "", def[64] = "", lhs[240];

	switch (d->type) {
	case IMGFMT_OPT_BOOL: snprintf(tag, sizeof(tag), "on|off"); break;
	case IMGFMT_OPT_NUMBER: snprintf(tag, sizeof(tag), "num"); break;
	case IMGFMT_OPT_SIZE: snprintf(tag, sizeof(tag), "size"); break;
	case IMGFMT_OPT_ENUM: choices_text(d, "|", tag, sizeof(tag)); break;
	case IMGFMT_OPT_STRING: snprintf(tag, sizeof(tag), "str"); break;
	}
	if (d->type == IMGFMT_OPT_NUMBER || d->type == IMGFMT_OPT_SIZE)
		range_text(d, range, sizeof(range));
	if (d->def)
		snprintf(def, sizeof(def), "default %s", d->def);
	snprintf(lhs, sizeof(lhs), "%s=<%s>", d->name, tag);
	snprintf(buf, buf_bytes, "%-26s - %s%s%s%s%s%s", lhs, d->help,
		 range[0] || def[0] ? " (" : "", range, range[0] && def[0] ? "; " : "", def,
		 range[0] || def[0] ? ")" : "");
}

/* ---- parsing ---- */

static int bad(char *err, size_t err_bytes, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t err_bytes, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_bytes, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Decimal digits only: no sign, no spaces, no base prefix, no overflow. */
static int parse_number(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int parse_bool(const char *s, uint64_t *out)
{
	static const char *const yes[] = { "on", "true", "yes", "1" }, *const no[] = { "off", "false", "no", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcmp(s, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcmp(s, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_enum(const struct imgfmt_opt_desc *d, const char *s, uint64_t *out)
{
	for (size_t i = 0; d->choices && d->choices[i]; i++)
		if (!strcmp(s, d->choices[i])) {
			*out = i;
			return 0;
		}
	return -EINVAL;
}

static int check_range(const struct imgfmt_opt_desc *d, uint64_t v, char *err, size_t err_bytes)
{
	char range[120], vs[32];

	if ((!d->pow2 || imgfmt_is_pow2(v)) && v >= d->min && (!d->max || v <= d->max) &&
	    (!d->multiple || v % d->multiple == 0))
		return 0;
	range_text(d, range, sizeof(range));
	number_text(d, v, vs, sizeof(vs));
	return bad(err, err_bytes, "option %s: %s is not %s", d->name, vs, range);
}

/* Parse text into a value of d's type. */
static int parse_value(const struct imgfmt_opt_desc *d, const char *s, struct imgfmt_optval *v,
		       char *err, size_t err_bytes)
{
	char choices[200];
	int r = 0;

	switch (d->type) {
	case IMGFMT_OPT_BOOL:
		if (parse_bool(s, &v->u) < 0)
			return bad(err, err_bytes, "option %s: '%s' is not on or off", d->name, s);
		return 0;
	case IMGFMT_OPT_NUMBER:
		r = parse_number(s, &v->u);
		if (r < 0)
			return bad(err, err_bytes, "option %s: '%s' is not a %snumber", d->name, s,
				   r == -ERANGE ? "representable " : "");
		return check_range(d, v->u, err, err_bytes);
	case IMGFMT_OPT_SIZE:
		if (imgfmt_parse_size(s, &v->u) < 0)
			return bad(err, err_bytes, "option %s: '%s' is not a size (e.g. 512, 64K, 2M)",
				   d->name, s);
		return check_range(d, v->u, err, err_bytes);
	case IMGFMT_OPT_ENUM:
		if (parse_enum(d, s, &v->u) < 0) {
			choices_text(d, ", ", choices, sizeof(choices));
			return bad(err, err_bytes, "option %s: '%s' is not one of %s", d->name, s, choices);
		}
		return 0;
	case IMGFMT_OPT_STRING:
		return 0;
	}
	return bad(err, err_bytes, "option %s: unknown type", d->name);
}

static int fill_defaults(const struct imgfmt_opt_desc *d, struct imgfmt_optval *ov, size_t n,
			 char *err, size_t err_bytes)
{
	for (size_t i = 0; i < n; i++) {
		ov[i] = (struct imgfmt_optval){ .s = d[i].def };
		/* a table whose default does not parse is a bug: say so */
		if (d[i].def && parse_value(&d[i], d[i].def, &ov[i], err, err_bytes) < 0)
			return -EINVAL;
	}
	return 0;
}

/* The next item of s (",," unescaped) into a new string; *s moves past it. */
static char *next_item(const char **s)
{
	const char *p = *s;
	size_t n = 0, len = 0;
	char *out;

	while (p[n] && !(p[n] == ',' && p[n + 1] != ','))
		n += p[n] == ',' ? 2 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[len++] = p[i];
		if (p[i] == ',')
			i++;
	}
	out[len] = 0;
	*s = p[n] ? p + n + 1 : p + n;
	return out;
}

static int unknown(const struct imgfmt_driver *drv, const struct imgfmt_opt_desc *d, const char *key,
		   char *err, size_t err_bytes)
{
	char names[400] = "";
	size_t n = 0;

	if (d != drv->create_opts) { /* amend: qemu-img's words */
		for (size_t i = 0; drv->create_opts && drv->create_opts[i].name; i++)
			if (!strcmp(drv->create_opts[i].name, key))
				return bad(err, err_bytes, "Invalid parameter '%s'\n"
					   "This option is only supported for image creation", key);
		return bad(err, err_bytes, "Invalid parameter '%s'", key);
	}

	for (size_t i = 0; drv->create_opts && drv->create_opts[i].name && n < sizeof(names); i++)
		n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i ? ", " : "",
				      drv->create_opts[i].name);
	if (!n)
		return bad(err, err_bytes, "format %s has no create options ('%s' given)", drv->name, key);
	return bad(err, err_bytes, "format %s has no option '%s' (it has %s; -o help describes them)",
		   drv->name, key, names);
}

/* One "key=val" item into ov. */
static int take_item(const struct imgfmt_driver *drv, const struct imgfmt_opt_desc *d, char *item,
		     struct imgfmt_optval *ov, char *err, size_t err_bytes)
{
	char *eq = strchr(item, '=');
	const char *val = eq ? eq + 1 : NULL;
	size_t i;

	if (eq)
		*eq = 0;
	if (!*item)
		return bad(err, err_bytes, "option '=%s' has no name", val ? val : "");
	for (i = 0; d && d[i].name && strcmp(d[i].name, item); i++)
		;
	if (!d || !d[i].name)
		return unknown(drv, d, item, err, err_bytes);
	if (!val && d[i].type != IMGFMT_OPT_BOOL)
		return bad(err, err_bytes, "option %s needs a value (%s=...)", item, item);
	if (ov[i].set)
		free((char *)ov[i].s);
	ov[i] = (struct imgfmt_optval){ .set = true, .s = strdup(val ? val : "on") };
	if (!ov[i].s)
		return bad(err, err_bytes, "out of memory");
	return parse_value(&d[i], ov[i].s, &ov[i], err, err_bytes);
}

int imgfmt_optvals_parse(const struct imgfmt_driver *drv, const char *s,
			 struct imgfmt_optval **out, char *err, size_t err_bytes)
{
	return imgfmt_optvals_parse_table(drv, drv->create_opts, s, out, err, err_bytes);
}

int imgfmt_optvals_parse_table(const struct imgfmt_driver *drv, const struct imgfmt_opt_desc *d,
			       const char *s, struct imgfmt_optval **out, char *err, size_t err_bytes)
{
	size_t n = n_opts(d);
	struct imgfmt_optval *ov = calloc(n + 1, sizeof(*ov));
	int r;

	*out = NULL;
	if (!ov)
		return bad(err, err_bytes, "out of memory");
	r = fill_defaults(d, ov, n, err, err_bytes);
	while (r == 0 && s && *s) {
		char *item = next_item(&s);
		if (!item)
			r = bad(err, err_bytes, "out of memory");
		else if (*item)
			r = take_item(drv, d, item, ov, err, err_bytes);
		free(item);
	}
	if (r < 0) {
		imgfmt_optvals_free_table(d, ov);
		return r;
	}
	*out = ov;
	return 0;
}

void imgfmt_optvals_free(const struct imgfmt_driver *drv, struct imgfmt_optval *ov)
{
	imgfmt_optvals_free_table(drv->create_opts, ov);
}

void imgfmt_optvals_free_table(const struct imgfmt_opt_desc *d, struct imgfmt_optval *ov)
{
	size_t n = n_opts(d);

	for (size_t i = 0; ov && i < n; i++)
		if (ov[i].set)
			free((char *)ov[i].s);
	free(ov);
}

int imgfmt_options_check(const char *format, const char *options, char *err, size_t err_bytes)
{
	const struct imgfmt_driver *drv = imgfmt_find_driver(format ? format : "");
	struct imgfmt_optval *ov;
	int r;

	if (!drv)
		return bad(err, err_bytes, "unknown format '%s'", format ? format : "(none)");
	r = imgfmt_optvals_parse(drv, options, &ov, err, err_bytes);
	imgfmt_optvals_free(drv, ov);
	return r;
}
