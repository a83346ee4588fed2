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

/* Progress bar on stderr, drawn only when stderr is a terminal. */
struct p2v_progress {
	const char *label;
	bool enabled;
	double start_s;
	double last_draw_s;
	uint64_t total_bytes;
};
void p2v_progress_init(struct p2v_progress *p, const char *label, bool quiet);
void p2v_progress_update(void *p, uint64_t done_bytes, uint64_t total_bytes); /* imgfmt_progress_fn */
void p2v_progress_finish(struct p2v_progress *p);
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
