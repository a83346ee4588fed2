/* Command-line options from one typed table per command: the parser
 * (getopt_long underneath), strict values (counts are decimal digits in a
 * range, sizes take K/M/G suffixes, choices are one of a list), and the
 * --help text, generated from the same table so every option is
 * described.  A usage error prints one message and the usage line once. */
#include "p2v.h"

#include "imgfmt.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HELP_COLUMN 28
#define HELP_WIDTH 79

static size_t n_opts(const struct p2v_cmd *cmd)
{
	size_t n = 0;

	while (cmd->opts && cmd->opts[n].key)
		n++;
	return n;
}

/* ---- help ---- */

static void usage_line(const struct p2v_cmd *cmd, FILE *f)
{
	fprintf(f, "usage: p2v %s%s%s%s\n", cmd->name, n_opts(cmd) ? " [OPTIONS]" : "",
		cmd->operands ? " " : "", cmd->operands ? cmd->operands : "");
}

/* "-f, --format FMT", "    --json", "-p, --progress[=bar|json]" */
static void opt_left(const struct p2v_opt *o, char *buf, size_t buf_bytes)
{
	const char *arg = o->type == P2V_ARG_NONE ? NULL : o->metavar ? o->metavar : "ARG";
	size_t n;

	if (o->key < 256 && o->name)
		n = (size_t)snprintf(buf, buf_bytes, "-%c, --%s", o->key, o->name);
	else if (o->key < 256)
		n = (size_t)snprintf(buf, buf_bytes, "-%c", o->key);
	else
		n = (size_t)snprintf(buf, buf_bytes, "    --%s", o->name);
	if (arg && n < buf_bytes)
		snprintf(buf + n, buf_bytes - n, o->optional_arg ? "[=%s]" : " %s", arg);
}

/* Print text wrapped at HELP_WIDTH, continuation lines at column indent. */
static void wrap(FILE *f, const char *text, int col, int indent)
{
	const char *p = text;

	while (*p) {
		int room = HELP_WIDTH - col, len = (int)strlen(p);
		int cut = len;
		if (len > room) {
			cut = room;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = room > 0 ? room : len;
		}
		fprintf(f, "%.*s\n", cut, p);
		p += cut;
		while (*p == ' ')
			p++;
		if (*p)
			fprintf(f, "%*s", indent, "");
		col = indent;
	}
}

void p2v_usage(const struct p2v_cmd *cmd, FILE *f)
{
	char left[64];

	usage_line(cmd, f);
	if (cmd->about) {
		fputc('\n', f);
		wrap(f, cmd->about, 0, 0);
	}
	fprintf(f, "\nOptions:\n");
	for (size_t i = 0; i < n_opts(cmd); i++) {
		const struct p2v_opt *o = &cmd->opts[i];
		opt_left(o, left, sizeof(left));
		if ((int)strlen(left) + 2 >= HELP_COLUMN)
			fprintf(f, "  %s\n%*s", left, HELP_COLUMN, "");
		else
			fprintf(f, "  %-*s", HELP_COLUMN - 2, left);
		wrap(f, o->help, HELP_COLUMN, HELP_COLUMN);
	}
	fprintf(f, "  %-*s", HELP_COLUMN - 2, "-h, --help");
	wrap(f, "describe the command and its options", HELP_COLUMN, HELP_COLUMN);
}

/* ---- parsing ---- */

static int usage_error(const struct p2v_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const struct p2v_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "p2v %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage_line(cmd, stderr);
	return -1;
}

static int parse_count(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static const char *opt_name(const struct p2v_opt *o, char *buf, size_t buf_bytes)
{
	if (o->name)
		snprintf(buf, buf_bytes, "--%s", o->name);
	else
		snprintf(buf, buf_bytes, "-%c", o->key);
	return buf;
}

/* Check and convert one option's argument. */
static int take_value(const struct p2v_cmd *cmd, const struct p2v_opt *o, const char *arg,
		      struct p2v_val *v)
{
	char name[48];

	v->set = true;
	v->s = arg;
	if (!arg || o->type == P2V_ARG_NONE || o->type == P2V_ARG_STR)
		return 0;
	opt_name(o, name, sizeof(name));
	switch (o->type) {
	case P2V_ARG_COUNT:
		if (parse_count(arg, &v->u) == 0 && v->u >= o->min && (!o->max || v->u <= o->max))
			return 0;
		if (o->max)
			return usage_error(cmd, "%s: '%s' is not a whole number from %llu to %llu", name,
					   arg, (unsigned long long)o->min, (unsigned long long)o->max);
		return usage_error(cmd, "%s: '%s' is not a whole number of at least %llu", name, arg,
				   (unsigned long long)o->min);
	case P2V_ARG_SIZE:
		if (imgfmt_parse_size(arg, &v->u) == 0 && v->u >= o->min && (!o->max || v->u <= o->max))
			return 0;
		return usage_error(cmd, "%s: '%s' is not a size%s (e.g. 512, 4K, 10G)", name, arg,
				   o->min || o->max ? " in range" : "");
	case P2V_ARG_CHOICE:
		for (size_t i = 0; o->choices && o->choices[i]; i++)
			if (!strcmp(arg, o->choices[i])) {
				v->u = i;
				return 0;
			}
		return usage_error(cmd, "%s: '%s' is not one of %s", name, arg, o->metavar);
	default:
		return 0;
	}
}

/* The optstring and long options for getopt_long, from the table. */
static int build_getopt(const struct p2v_cmd *cmd, char *shorts, size_t shorts_bytes,
			struct option *longs, size_t n_longs)
{
	size_t ns = 0, nl = 0;

	shorts[ns++] = ':'; /* a missing argument is ':' */
	for (size_t i = 0; i < n_opts(cmd); i++) {
		const struct p2v_opt *o = &cmd->opts[i];
		bool arg = o->type != P2V_ARG_NONE;
		if (o->key < 256 && ns + 3 < shorts_bytes) {
			shorts[ns++] = (char)o->key;
			if (arg && !o->optional_arg)
				shorts[ns++] = ':';
		}
		if (o->name && nl + 2 < n_longs)
			longs[nl++] = (struct option){ o->name,
						       !arg ? no_argument : o->optional_arg ? optional_argument
											    : required_argument,
						       NULL, o->key };
	}
	if (ns + 2 >= shorts_bytes || nl + 2 >= n_longs)
		return -1;
	shorts[ns++] = 'h';
	shorts[ns] = 0;
	longs[nl++] = (struct option){ "help", no_argument, NULL, 'h' };
	longs[nl] = (struct option){ 0 };
	return 0;
}

static const struct p2v_opt *find_opt(const struct p2v_cmd *cmd, int key, size_t *index)
{
	for (size_t i = 0; i < n_opts(cmd); i++)
		if (cmd->opts[i].key == key) {
			*index = i;
			return &cmd->opts[i];
		}
	return NULL;
}

/* The option getopt stopped at, as the user wrote it. */
static const char *bad_word(char **argv, int optopt_, char *buf, size_t buf_bytes)
{
	if (optopt_ && optopt_ < 256)
		snprintf(buf, buf_bytes, "-%c", optopt_);
	else
		snprintf(buf, buf_bytes, "%s", argv[optind - 1]);
	return buf;
}

int p2v_args_parse(const struct p2v_cmd *cmd, int argc, char **argv, struct p2v_args *a)
{
	char shorts[2 * P2V_MAX_OPTS + 4];
	struct option longs[P2V_MAX_OPTS + 2];
	char word[64];
	size_t idx;
	int c;

	memset(a, 0, sizeof(*a));
	a->cmd = cmd;
	if (n_opts(cmd) > P2V_MAX_OPTS || build_getopt(cmd, shorts, sizeof(shorts), longs, P2V_MAX_OPTS + 2) < 0)
		return usage_error(cmd, "too many options in the table");
	optind = 0; /* full reinitialisation of GNU getopt */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
		const struct p2v_opt *o;
		if (c == 'h' && !find_opt(cmd, 'h', &idx)) {
			p2v_usage(cmd, stdout);
			return 1;
		}
		if (c == '?')
			return usage_error(cmd, "unknown option '%s'", bad_word(argv, optopt, word, sizeof(word)));
		if (c == ':')
			return usage_error(cmd, "option '%s' needs a value", bad_word(argv, optopt, word, sizeof(word)));
		o = find_opt(cmd, c, &idx);
		if (!o)
			return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		if (take_value(cmd, o, optarg, &a->v[idx]) < 0)
			return -1;
		if (o->repeat) {
			if (a->n_rep >= P2V_MAX_REPEATS)
				return usage_error(cmd, "option '%s' given more than %d times",
						   argv[optind - 1], P2V_MAX_REPEATS);
			a->rep[a->n_rep] = optarg;
			a->rep_key[a->n_rep++] = c;
		}
	}
	a->operands = argv + optind;
	a->n_operands = argc - optind;
	return p2v_check_operands(a, cmd->min_operands, cmd->max_operands);
}

int p2v_check_operands(const struct p2v_args *a, int min, int max)
{
	char want[64];

	if (a->n_operands >= min && (max < 0 || a->n_operands <= max))
		return 0;
	if (min == max)
		snprintf(want, sizeof(want), "%d operand%s", min, min == 1 ? "" : "s");
	else if (max < 0)
		snprintf(want, sizeof(want), "at least %d operand%s", min, min == 1 ? "" : "s");
	else
		snprintf(want, sizeof(want), "%d to %d operands", min, max);
	return usage_error(a->cmd, "expected %s", want);
}

static const struct p2v_val *val(const struct p2v_args *a, int key)
{
	size_t i;

	return find_opt(a->cmd, key, &i) && a->v[i].set ? &a->v[i] : NULL;
}

bool p2v_has(const struct p2v_args *a, int key)
{
	return val(a, key) != NULL;
}

const char *p2v_str(const struct p2v_args *a, int key)
{
	const struct p2v_val *v = val(a, key);

	return v ? v->s : NULL;
}

uint64_t p2v_u64(const struct p2v_args *a, int key, uint64_t def)
{
	const struct p2v_val *v = val(a, key);

	return v && v->s ? v->u : def;
}

unsigned p2v_strs(const struct p2v_args *a, int key, const char **out, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < a->n_rep; i++)
		if (a->rep_key[i] == key && a->rep[i]) {
			if (n < max)
				out[n] = a->rep[i];
			n++;
		}
	return n;
}

bool p2v_json_wanted(const struct p2v_args *a)
{
	const char *out = p2v_str(a, P2V_O_OUTPUT);

	return p2v_has(a, P2V_O_JSON) || (out && !strcmp(out, "json"));
}

enum p2v_progress_mode p2v_progress_mode(const struct p2v_args *a)
{
	const struct p2v_val *v = val(a, 'p');

	if (p2v_has(a, 'q'))
		return P2V_PROGRESS_QUIET;
	if (!v)
		return P2V_PROGRESS_AUTO;
	return v->s && !strcmp(v->s, "json") ? P2V_PROGRESS_JSON : P2V_PROGRESS_BAR;
}
