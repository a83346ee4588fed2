/* Shared pieces of the p2v command: errors, progress bar, JSON output,
 * signal handling.  Each subcommand lives in its own cmd_*.c file and is
 * listed in the table in main.c. */
#ifndef P2V_H
#define P2V_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes: 0 success, 1 a negative answer (compare differs, verify fails,
 * check finds errors), 2 could not do the job (bad usage, bad input). */
enum { P2V_EXIT_OK = 0, P2V_EXIT_NO = 1, P2V_EXIT_ERROR = 2 };

/* Subcommands: argv[0] is the subcommand name. */
int p2v_cmd_info(int argc, char **argv);
int p2v_cmd_convert(int argc, char **argv);
int p2v_cmd_create(int argc, char **argv);
int p2v_cmd_compare(int argc, char **argv);
int p2v_cmd_check(int argc, char **argv);
int p2v_cmd_map(int argc, char **argv);
int p2v_cmd_capture(int argc, char **argv);
int p2v_cmd_inspect(int argc, char **argv);
int p2v_cmd_boot(int argc, char **argv);
int p2v_cmd_verify(int argc, char **argv);
int p2v_cmd_inject(int argc, char **argv);
int p2v_cmd_migrate(int argc, char **argv);
int p2v_cmd_serve(int argc, char **argv);

int p2v_cmd_measure(int argc, char **argv);
int p2v_cmd_resize(int argc, char **argv);
int p2v_cmd_rebase(int argc, char **argv);
int p2v_cmd_commit(int argc, char **argv);
int p2v_cmd_snapshot(int argc, char **argv);
int p2v_cmd_amend(int argc, char **argv);
int p2v_cmd_dd(int argc, char **argv);
/* convert_stdout.c: convert's OUTPUT "-": src streamed to stdout as fmt
 * (raw, vpc subformat=fixed); others refused naming the format. */
struct imgfmt_image;
struct p2v_args;
int p2v_convert_to_stdout(struct imgfmt_image *src, const char *fmt, const char *options,
			  const struct p2v_args *a);

/* ---- options (opts.c) ----
 * Each command declares its options in a static table; p2v_args_parse()
 * parses them strictly and --help is generated from the table. */
enum p2v_arg_type {
	P2V_ARG_NONE,     /* a flag */
	P2V_ARG_STR,      /* any text */
	P2V_ARG_COUNT,    /* decimal digits only, in [min, max] (max 0: no limit) */
	P2V_ARG_SIZE,     /* bytes with an optional K/M/G/T suffix, in [min, max] */
	P2V_ARG_CHOICE,   /* one of choices[]; metavar lists them ("bar|json") */
};

/* Keys of long-only options (short ones use their letter). */
enum {
	P2V_O_JSON = 256, P2V_O_OUTPUT, P2V_O_FORCE, P2V_O_BACKING_CHAIN, P2V_O_THREADS,
	P2V_O_SHRINK, P2V_O_TARGET_IS_ZERO, P2V_O_OBJECT, P2V_O_IMAGE_OPTS,
	P2V_O_ALLOW_BACKING, P2V_O_ALLOW_SYMLINKS, P2V_O_INSECURE_NBD,
	P2V_O_CMD = 300, /* first key free for one command's own options */
};

struct p2v_opt {
	int key;                     /* short option letter, or a P2V_O_* key */
	const char *name;            /* long name, or NULL */
	enum p2v_arg_type type;
	const char *metavar;         /* "FMT", "N", "bar|json" */
	const char *help;
	const char *const *choices;  /* P2V_ARG_CHOICE */
	uint64_t min, max;           /* P2V_ARG_COUNT, P2V_ARG_SIZE */
	bool optional_arg;           /* --progress[=json]; the short form takes none */
	bool repeat;                 /* may be given several times (p2v_strs) */
};

struct p2v_cmd {
	const char *name;            /* "convert" */
	const char *operands;        /* "INPUT OUTPUT" */
	const char *about;           /* what it does, wrapped under the usage line */
	const struct p2v_opt *opts;  /* terminated by key 0 */
	int min_operands, max_operands; /* max -1: no limit */
};

#define P2V_MAX_OPTS 40
#define P2V_MAX_REPEATS 32
struct p2v_val {
	bool set;
	const char *s;               /* the argument as given (NULL for flags) */
	uint64_t u;                  /* COUNT, SIZE: the value; CHOICE: its index */
};
struct p2v_args {
	const struct p2v_cmd *cmd;
	struct p2v_val v[P2V_MAX_OPTS];
	char **operands;
	int n_operands;
	/* Every value of repeatable options, in order, with its option's key. */
	const char *rep[P2V_MAX_REPEATS];
	int rep_key[P2V_MAX_REPEATS];
	unsigned n_rep;
};

/* 0: parsed; 1: --help was printed (exit 0); -1: a usage error was printed
 * (one line naming the problem, then the usage line; exit 2). */
int p2v_args_parse(const struct p2v_cmd *cmd, int argc, char **argv, struct p2v_args *a);
void p2v_usage(const struct p2v_cmd *cmd, FILE *f);
/* For commands whose operand count depends on their options: 0, or -1
 * after a usage error naming the count expected. */
int p2v_check_operands(const struct p2v_args *a, int min, int max);
bool p2v_has(const struct p2v_args *a, int key);
const char *p2v_str(const struct p2v_args *a, int key);   /* NULL unless given */
uint64_t p2v_u64(const struct p2v_args *a, int key, uint64_t def);
/* The values of a repeatable option: up to max into out; their count. */
unsigned p2v_strs(const struct p2v_args *a, int key, const char **out, unsigned max);
/* --json or --output=json */
bool p2v_json_wanted(const struct p2v_args *a);

/* Table entries: a flag, and an option with an argument (more fields after
 * the help: .choices, .min, .max, .optional_arg). */
#define P2V_FLAG(k, n, h) { .key = (k), .name = (n), .type = P2V_ARG_NONE, .help = (h) }
#define P2V_ARG(k, n, t, m, h, ...) \
	{ .key = (k), .name = (n), .type = (t), .metavar = (m), .help = (h), __VA_ARGS__ }
#define P2V_OPT_END { .key = 0 }

/* Options several commands share. */
#define P2V_OPT_FORMAT(h) P2V_ARG('f', "format", P2V_ARG_STR, "FMT", h)
#define P2V_OPT_SHARE P2V_FLAG('U', "force-share", \
	"open images even when another process (a running VM) holds a lock on them")
#define P2V_OPT_JSON P2V_FLAG(P2V_O_JSON, "json", "the result as JSON on stdout")
extern const char *const p2v_output_choices[];
#define P2V_OPT_OUTPUT P2V_ARG(P2V_O_OUTPUT, "output", P2V_ARG_CHOICE, "human|json", \
	"--output=json is --json, as in qemu-img", .choices = p2v_output_choices)
#define P2V_OPT_QUIET P2V_FLAG('q', "quiet", "no progress and no summary (wins over -p)")
extern const char *const p2v_progress_choices[];
#define P2V_OPT_PROGRESS P2V_ARG('p', "progress", P2V_ARG_CHOICE, "bar|json", \
	"a progress bar even when stderr is not a terminal (by default: on terminals only); " \
	"json: one JSON object per line on stderr, {\"progress\": 42.5, \"bytes\": ..., \"total\": ...}. " \
	"SIGUSR1 prints a progress line at any time", \
	.choices = p2v_progress_choices, .optional_arg = true)
#define P2V_OPT_FORCE(h) P2V_FLAG(P2V_O_FORCE, "force", h)
/* Confinement of the files images name (backing files, VMDK extents): for
 * every command that opens images with their backing files. */
#define P2V_OPTS_CONFINE \
	P2V_ARG(P2V_O_ALLOW_BACKING, "allow-backing", P2V_ARG_STR, "DIR", \
		"let images name backing files and extents beneath DIR by absolute or ../ " \
		"paths (by default only beneath the image's own directory); DIR may be a " \
		"block device an image may name exactly; repeatable", .repeat = true), \
	P2V_FLAG(P2V_O_ALLOW_SYMLINKS, "allow-symlinks", \
		 "follow symbolic links in the names of backing files and extents (they must " \
		 "still stay beneath the allowed directories)")
/* For commands that take NBD URIs (imgfmt.h): let plain nbd:// out. */
#define P2V_OPT_INSECURE_NBD \
	P2V_FLAG(P2V_O_INSECURE_NBD, "insecure-nbd", \
		 "let a plain nbd:// URI name a host other than loopback: the disk crosses the " \
		 "network unencrypted (by default only nbds:// with TLS is let out of the machine)")

/* Open an image for a command; the error is reported.  a: the command's
 * options, for --allow-backing and --allow-symlinks (NULL: confined). */
struct imgfmt_image;
struct imgfmt_open_opts;
int p2v_open_image(struct imgfmt_image **img, const char *path, const char *fmt, unsigned flags,
		   const struct p2v_args *a);
/* Fill the confinement fields of o from a's options (a may be NULL);
 * allow[] (P2V_MAX_REPEATS entries) holds the directories. */
void p2v_confine_opts(const struct p2v_args *a, struct imgfmt_open_opts *o, const char **allow);

/* "p2v: <message>" on stderr. */
void p2v_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void p2v_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* imgfmt_log_fn that prints "p2v: warning: msg". */
void p2v_log_warning(void *opaque, const char *msg);
/* "1.5 GiB" into buf (at least 32 bytes). */
const char *p2v_human_bytes(uint64_t bytes, char *buf, size_t buf_bytes);

/* Ctrl-C / SIGTERM: handlers set p2v_interrupted; long work polls it
 * (imgfmt_copy_opts.cancel). */
extern volatile sig_atomic_t p2v_interrupted;
void p2v_install_signal_handlers(void);
/* SIGUSR1 sets p2v_progress_requested instead of killing p2v: main()
 * installs it first, so a program may signal p2v at any time. */
void p2v_catch_progress_signal(void);

/* Progress on stderr: a bar on terminals (or always with -p), JSON lines
 * with --progress=json, nothing with -q; and with any of them but -q, a
 * line whenever SIGUSR1 arrives (like dd). */
enum p2v_progress_mode {
	P2V_PROGRESS_AUTO,   /* a bar when stderr is a terminal */
	P2V_PROGRESS_BAR,    /* -p: a bar in any case */
	P2V_PROGRESS_JSON,   /* --progress=json */
	P2V_PROGRESS_QUIET,  /* -q */
};
enum p2v_progress_mode p2v_progress_mode(const struct p2v_args *a);
extern volatile sig_atomic_t p2v_progress_requested; /* SIGUSR1 */

struct p2v_progress {
	const char *label;
	enum p2v_progress_mode mode;
	bool enabled;                /* drawing a bar */
	double start_s;
	double last_draw_s;
	double last_json_pct;
	bool json_started;
	uint64_t done_bytes;
	uint64_t total_bytes;
};
void p2v_progress_init(struct p2v_progress *p, const char *label, enum p2v_progress_mode mode);
void p2v_progress_update(void *p, uint64_t done_bytes, uint64_t total_bytes); /* imgfmt_progress_fn */
void p2v_progress_finish(struct p2v_progress *p);
/* After a failed run: end the bar's line. */
void p2v_progress_abort(struct p2v_progress *p);
double p2v_now_s(void);

/* Minimal streaming JSON writer (pretty-printed, keys NULL inside arrays). */
struct p2v_json {
	FILE *f;
	int depth;
	bool need_comma[32];
};
void p2v_json_init(struct p2v_json *j, FILE *f);
void p2v_json_obj_begin(struct p2v_json *j, const char *key);
void p2v_json_obj_end(struct p2v_json *j);
void p2v_json_arr_begin(struct p2v_json *j, const char *key);
void p2v_json_arr_end(struct p2v_json *j);
void p2v_json_str(struct p2v_json *j, const char *key, const char *val);
void p2v_json_u64(struct p2v_json *j, const char *key, uint64_t val);
void p2v_json_i64(struct p2v_json *j, const char *key, int64_t val);
void p2v_json_double(struct p2v_json *j, const char *key, double val);
void p2v_json_bool(struct p2v_json *j, const char *key, bool val);
/* A value already formatted as JSON (a number as text). */
void p2v_json_raw(struct p2v_json *j, const char *key, const char *json);
void p2v_json_finish(struct p2v_json *j);

#endif
