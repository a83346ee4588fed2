/* p2v serve DEV: what runs on the physical machine.  A thin wrapper that
 * execs nbdkit read-only on DEV with TLS-PSK required (a key generated
 * unless --tls-psk names one), after refusing a disk mounted read-write
 * (capture's mount check) and printing the line to run on the conversion
 * host.  No server of ours: nbdkit speaks NBD. */
#include "p2v.h"

#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define SERVE_DEFAULT_PORT 10809u
#define SERVE_KEY_BYTES 32u
#define SERVE_PSK_USER "p2v"

enum { O_BIND = P2V_O_CMD, O_PORT, O_PSK, O_ALLOW, O_EXPORT, O_DRY };

static const struct p2v_opt serve_opts[] = {
	P2V_ARG(O_BIND, "bind", P2V_ARG_STR, "ADDR",
		"listen on this address only (by default on every address)"),
	P2V_ARG(O_PORT, "port", P2V_ARG_COUNT, "N", "TCP port (default 10809)", .min = 1,
		.max = 65535),
	P2V_ARG(O_PSK, "tls-psk", P2V_ARG_STR, "FILE",
		"the TLS-PSK key file (lines username:hexkey; user p2v); by default a new key "
		"from /dev/urandom is written to a new file (mode 0600) in $TMPDIR or /tmp"),
	P2V_ARG(O_EXPORT, "export", P2V_ARG_STR, "NAME", "the export name (default: none)"),
	P2V_FLAG(O_ALLOW, "allow-mounted",
		 "serve a disk with filesystems mounted read-write as they are (the copy may be "
		 "inconsistent)"),
	P2V_FLAG(O_DRY, "dry-run", "print the nbdkit command and the conversion line, start nothing"),
	P2V_OPT_END,
};

static const struct p2v_cmd serve_cmd = {
	"serve", "DEV",
	"Serve DEV (a disk or a disk image) read-only over NBD for a conversion host: execs "
	"nbdkit's file plugin with TLS-PSK required, and prints the p2v line to run on the "
	"conversion host, whose key file must be copied there.  A disk with filesystems "
	"mounted read-write is refused unless --allow-mounted.  Stops with Ctrl-C.",
	serve_opts, 1, 1,
};

/* Refuses DEV when it (or a partition of it) is mounted read-write. */
static int check_mounts(const char *dev, bool allow)
{
	struct p2v_mounts m = { 0 };
	char list[2048] = "";
	size_t len = 0;
	struct stat st;
	bool any_rw = false;
	int r;

	if (stat(dev, &st) < 0) {
		p2v_err("%s: %s", dev, strerror(errno));
		return -errno;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
		p2v_err("%s: not a block device or a regular file", dev);
		return -EINVAL;
	}
	if (!S_ISBLK(st.st_mode))
		return 0;
	r = p2v_mounts_of_disk(major(st.st_rdev), minor(st.st_rdev), &m);
	if (r < 0) {
		p2v_err("cannot read /proc/self/mountinfo: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < m.n; i++) {
		if (!m.v[i].read_write)
			continue;
		any_rw = true;
		if (len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s on %s",
						len ? ", " : "", m.v[i].source, m.v[i].mountpoint);
	}
	p2v_mounts_free(&m);
	if (!any_rw)
		return 0;
	if (allow) {
		p2v_warn("serving filesystems mounted read-write (%s): the copy may be inconsistent", list);
		return 0;
	}
	p2v_err("%s has filesystems mounted read-write: %s; unmount them, or use --allow-mounted",
		dev, list);
	return -EBUSY;
}

/* A new key file "p2v:<64 hex digits>" (0600) in $TMPDIR or /tmp. */
static int make_psk(char **path)
{
	const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	uint8_t key[SERVE_KEY_BYTES];
	char line[sizeof(SERVE_PSK_USER) + 2 * SERVE_KEY_BYTES + 2];
	size_t o;
	int fd, rnd, r = 0;

	if (asprintf(path, "%s/p2v-serve-XXXXXX.psk", dir) < 0) {
		*path = NULL;
		p2v_err("out of memory");
		return -ENOMEM;
	}
	rnd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (rnd < 0 || imgfmt_fd_pread(rnd, key, sizeof(key), 0) < 0) {
		r = -errno;
		p2v_err("/dev/urandom: %s", strerror(errno));
		if (rnd >= 0)
			close(rnd);
		return r ? r : -EIO;
	}
	close(rnd);
	o = (size_t)snprintf(line, sizeof(line), "%s:", SERVE_PSK_USER);
	for (size_t i = 0; i < sizeof(key); i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, "%02x", key[i]);
	line[o++] = '\n';
	fd = mkstemps(*path, 4); /* mode 0600 */
	if (fd < 0) {
		r = -errno;
		p2v_err("%s: cannot create the key file: %s", *path, strerror(errno));
		return r;
	}
	if (write(fd, line, o) != (ssize_t)o || fsync(fd) < 0) {
		r = -errno;
		p2v_err("%s: writing the key: %s", *path, strerror(errno));
		unlink(*path);
	}
	close(fd);
	memset(key, 0, sizeof(key));
	memset(line, 0, sizeof(line));
	return r;
}

/* The host the conversion host should name: the bound address, else this
 * machine's name. */
static void host_for_uri(const char *bind, char *out, size_t out_bytes)
{
	if (bind && strcmp(bind, "0.0.0.0") && strcmp(bind, "::")) {
		snprintf(out, out_bytes, strchr(bind, ':') ? "[%s]" : "%s", bind);
		return;
	}
	if (gethostname(out, out_bytes) < 0 || !*out)
		snprintf(out, out_bytes, "HOST");
	out[out_bytes - 1] = 0;
}

int p2v_cmd_serve(int argc, char **argv)
{
	struct p2v_args a;
	const char *dev, *bind, *export;
	char *psk = NULL, *abs_psk = NULL, host[256];
	char port[16], psk_opt[4200], export_opt[1100];
	const char *nargv[16];
	unsigned n = 0;
	int r = p2v_args_parse(&serve_cmd, argc, argv, &a);

	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	dev = a.operands[0];
	bind = p2v_str(&a, O_BIND);
	export = p2v_str(&a, O_EXPORT) ? p2v_str(&a, O_EXPORT) : "";
	if (check_mounts(dev, p2v_has(&a, O_ALLOW)) < 0)
		return P2V_EXIT_ERROR;
	if (p2v_str(&a, O_PSK)) {
		if (access(p2v_str(&a, O_PSK), R_OK) < 0) {
			p2v_err("%s: %s", p2v_str(&a, O_PSK), strerror(errno));
			return P2V_EXIT_ERROR;
		}
		psk = strdup(p2v_str(&a, O_PSK));
	} else if (!p2v_has(&a, O_DRY) && make_psk(&psk) < 0) {
		free(psk);
		return P2V_EXIT_ERROR;
	}
	if (!psk && !p2v_has(&a, O_DRY)) {
		p2v_err("out of memory");
		return P2V_EXIT_ERROR;
	}
	abs_psk = psk ? realpath(psk, NULL) : NULL;
	snprintf(port, sizeof(port), "%llu", (unsigned long long)p2v_u64(&a, O_PORT, SERVE_DEFAULT_PORT));
	snprintf(psk_opt, sizeof(psk_opt), "--tls-psk=%s", abs_psk ? abs_psk : (psk ? psk : "FILE"));
	snprintf(export_opt, sizeof(export_opt), "--exportname=%s", export);
	host_for_uri(bind, host, sizeof(host));
	nargv[n++] = "nbdkit";
	nargv[n++] = "-f";           /* in the foreground: Ctrl-C stops it */
	nargv[n++] = "-r";
	nargv[n++] = "--tls=require";
	nargv[n++] = psk_opt;
	nargv[n++] = "-p";
	nargv[n++] = port;
	if (bind) {
		nargv[n++] = "-i";
		nargv[n++] = bind;
	}
	if (*export)
		nargv[n++] = export_opt;
	nargv[n++] = "file";
	nargv[n++] = dev;
	nargv[n] = NULL;

	printf("p2v: serving %s read-only over NBD (TLS-PSK required) on %s port %s\n", dev,
	       bind ? bind : "every address", port);
	printf("p2v: copy the key file %s to the conversion host (keep it mode 0600) and run there:\n",
	       abs_psk ? abs_psk : (psk ? psk : "FILE"));
	printf("  p2v migrate 'nbds://%s@%s:%s/%s?tls-psk-file=%s' OUTPUT.qcow2\n", SERVE_PSK_USER,
	       host, port, export, abs_psk ? abs_psk : (psk ? psk : "FILE"));
	if (p2v_has(&a, O_DRY)) {
		printf("p2v: would run:");
		for (unsigned i = 0; i < n; i++)
			printf(" %s", nargv[i]);
		printf("\n");
		free(psk);
		free(abs_psk);
		return P2V_EXIT_OK;
	}
	fflush(stdout);
	execvp("nbdkit", (char *const *)nargv);
	p2v_err("cannot run nbdkit: %s (Debian package nbdkit)", strerror(errno));
	free(psk);
	free(abs_psk);
	return P2V_EXIT_ERROR;
}
