/* nbd: an NBD export named by a URI (nbd://, nbds://, nbd+unix://, as
 * libnbd's nbd_connect_uri parses them), read and written through libnbd:
 * raw content, size from the server, allocation from base:allocation block
 * status, several requests in flight per call.  No protocol code of ours.
 *
 * Names: img->path is the URI without its query (where tls-psk-file and
 * other keys live), so every message names the export without secrets; the
 * whole URI is kept in the driver state only.
 *
 * Faults: a read that fails because the connection dropped is retried on a
 * new connection, with backoff, for up to retry_seconds (60, or
 * IMGFMT_NBD_RETRY_SECONDS from the environment at open). */
#include "driver.h"

#include <errno.h>
#include <libnbd.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NBD_CLUSTER_BYTES 4096u
#define NBD_REQUEST_BYTES (256u << 10)    /* one request of a split read/write */
#define NBD_MAX_IN_FLIGHT 16u            /* requests issued together */
#define NBD_ZERO_REQUEST_BYTES (1u << 30)
#define NBD_STATUS_REQUEST_BYTES (1u << 30)
#define NBD_CACHED_EXTENTS 1024u
#define NBD_DEFAULT_RETRY_SECONDS 60u

struct nbd_cached_extent {
	uint64_t off, len;
	enum imgfmt_extent_type type;
};

struct nbd_state {
	struct nbd_handle *h;
	char *uri;                    /* the whole URI, secrets included */
	bool can_zero, can_fast_zero, can_flush, have_alloc;
	unsigned retry_seconds;
	uint64_t reconnects;
	/* The extents of the last block status reply. */
	struct nbd_cached_extent ext[NBD_CACHED_EXTENTS];
	unsigned n_ext;
};

bool imgfmt_is_nbd_uri(const char *name)
{
	static const char *const schemes[] = { "nbd://", "nbds://", "nbd+unix://", "nbds+unix://",
					       "nbd+vsock://", "nbds+vsock://" };

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(name, schemes[i], strlen(schemes[i])))
			return true;
	return false;
}

char *imgfmt_display_name(const char *name)
{
	return strndup(name, imgfmt_is_nbd_uri(name) ? strcspn(name, "?#") : strlen(name));
}

/* nbd:// and nbd+vsock:// are plain text; loopback hosts are let through. */
static bool insecure_remote(const char *uri)
{
	const char *host, *end;
	size_t n;

	if (!strncmp(uri, "nbd+vsock://", 12))
		return true;
	if (strncmp(uri, "nbd://", 6))
		return false;
	host = uri + 6;
	if (*host == '[') {
		end = strchr(host, ']');
		if (!end)
			return true;
		host++;
	} else {
		end = host + strcspn(host, ":/?#");
	}
	n = (size_t)(end - host);
	if ((n == 9 && !strncmp(host, "localhost", 9)) || (n == 3 && !strncmp(host, "::1", 3)))
		return false;
	return !(n >= 4 && !strncmp(host, "127.", 4) && strspn(host, "0123456789.") >= n);
}

/* libnbd's last error, with anything of the URI's query cut out. */
static const char *nbd_errmsg(const struct nbd_state *s, char *buf, size_t buf_bytes)
{
	const char *e = nbd_get_error();
	const char *q = strchr(s->uri, '?');

	if (!e)
		e = "unknown error";
	snprintf(buf, buf_bytes, "%s", e);
	if (q && q[1] && strstr(buf, q + 1))
		snprintf(buf, buf_bytes, "%s", "error (message withheld: it names the URI's keys)");
	return buf;
}

static int nbd_errno_or(int def)
{
	int e = nbd_get_errno();

	return e > 0 ? -e : def;
}

/* The TLS user name when the URI names none (nbds://USER@host/): the
 * effective user's, as libnbd's own default (getlogin_r) fails without a
 * terminal. */
static int set_tls_username(struct nbd_handle *h)
{
	char buf[1024];
	struct passwd pw, *res = NULL;

	getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res);
	return nbd_set_tls_username(h, res ? res->pw_name : "p2v");
}

static int nbd_connect(struct imgfmt_image *img, struct nbd_state *s)
{
	char msg[IMGFMT_ERRMSG_BYTES - 64];
	int r;

	s->h = nbd_create();
	if (!s->h)
		return imgfmt_err(img, -ENOMEM, "%s: %s", img->path, nbd_errmsg(s, msg, sizeof(msg)));
	if (set_tls_username(s->h) < 0 || nbd_set_uri_allow_local_file(s->h, true) < 0 ||
	    nbd_add_meta_context(s->h, LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
	    nbd_connect_uri(s->h, s->uri) < 0) {
		r = nbd_errno_or(-ECONNREFUSED);
		imgfmt_err(img, r, "%s: cannot connect: %s", img->path, nbd_errmsg(s, msg, sizeof(msg)));
		nbd_close(s->h);
		s->h = NULL;
		return r;
	}
	s->can_zero = nbd_can_zero(s->h) == 1;
	s->can_fast_zero = nbd_can_fast_zero(s->h) == 1;
	s->can_flush = nbd_can_flush(s->h) == 1;
	s->have_alloc = nbd_can_meta_context(s->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
	s->n_ext = 0;
	return 0;
}

/* After a failure r: the connection is gone (or the server is shutting
 * down and fails requests with ESHUTDOWN before it closes). */
static bool connection_lost(const struct nbd_state *s, int r)
{
	return !s->h || nbd_aio_is_dead(s->h) == 1 || nbd_aio_is_closed(s->h) == 1 ||
	       r == -ESHUTDOWN || r == -ENOTCONN || r == -ECONNRESET || r == -EPIPE;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* After a dropped connection: connect again with backoff (0.25 s doubling
 * up to 5 s) until retry_seconds have passed since start_s. */
static int reconnect(struct imgfmt_image *img, struct nbd_state *s, double start_s)
{
	char why[IMGFMT_ERRMSG_BYTES / 2] = "";
	unsigned delay_ms = 250;
	int r = -ENOTCONN;

	imgfmt_warn(img, "%s: connection lost; connecting again for up to %u s", img->path,
		    s->retry_seconds);
	if (s->h) {
		nbd_close(s->h);
		s->h = NULL;
	}
	while (now_s() - start_s < s->retry_seconds) {
		r = nbd_connect(img, s);
		if (r == 0) {
			if ((uint64_t)nbd_get_size(s->h) != img->size_bytes) {
				nbd_close(s->h);
				s->h = NULL;
				return imgfmt_err(img, -EIO, "%s: the export changed size on reconnecting",
						  img->path);
			}
			s->reconnects++;
			return 0;
		}
		memcpy(why, img->err, sizeof(why) - 1);
		usleep(delay_ms * 1000u);
		delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
	}
	return imgfmt_err(img, r, "%s: connection lost and not back within %u s (%s)", img->path,
			  s->retry_seconds, why);
}

/* The reads (or writes) of reqs, split into requests of at most
 * NBD_REQUEST_BYTES, NBD_MAX_IN_FLIGHT of them in flight together; waits
 * for them all. */
static int transfer_list(struct imgfmt_image *img, struct nbd_state *s,
			 const struct imgfmt_read_req *reqs, size_t n_reqs, bool write)
{
	char msg[IMGFMT_ERRMSG_BYTES - 128];
	int64_t cookies[NBD_MAX_IN_FLIGHT];
	size_t ri = 0;        /* request being split */
	uint64_t done = 0;    /* bytes of reqs[ri] issued */

	while (ri < n_reqs) {
		unsigned n = 0, i;
		int r = 0;
		size_t fail_req = ri;
		for (; n < NBD_MAX_IN_FLIGHT && ri < n_reqs; n++) {
			const struct imgfmt_read_req *q;
			uint64_t c;
			while (ri < n_reqs && reqs[ri].len == 0)
				ri++;
			if (ri == n_reqs)
				break;
			q = &reqs[ri];
			c = q->len - done < NBD_REQUEST_BYTES ? q->len - done : NBD_REQUEST_BYTES;
			cookies[n] = write ? nbd_aio_pwrite(s->h, (const uint8_t *)q->buf + done, c,
							    q->off + done, NBD_NULL_COMPLETION, 0)
					   : nbd_aio_pread(s->h, (uint8_t *)q->buf + done, c,
							   q->off + done, NBD_NULL_COMPLETION, 0);
			if (cookies[n] < 0) {
				r = nbd_errno_or(-EIO);
				break;
			}
			done += c;
			if (done == q->len) {
				ri++;
				done = 0;
			}
		}
		while (nbd_aio_in_flight(s->h) > 0)
			if (nbd_poll(s->h, -1) < 0) {
				if (!r)
					r = nbd_errno_or(-EIO);
				break;
			}
		for (i = 0; i < n && r == 0; i++)
			if (nbd_aio_command_completed(s->h, (uint64_t)cookies[i]) != 1)
				r = nbd_errno_or(-EIO);
		if (r < 0)
			return imgfmt_err(img, r, "%s: %s of %llu bytes at %llu: %s", img->path,
					  write ? "write" : "read",
					  (unsigned long long)reqs[fail_req].len,
					  (unsigned long long)reqs[fail_req].off,
					  nbd_errmsg(s, msg, sizeof(msg)));
	}
	return 0;
}

static int transfer(struct imgfmt_image *img, struct nbd_state *s, void *rbuf, const void *wbuf,
		    uint64_t len, uint64_t off)
{
	struct imgfmt_read_req q = { .buf = rbuf ? rbuf : (void *)(uintptr_t)wbuf, .len = len,
				     .off = off };

	return transfer_list(img, s, &q, 1, !rbuf);
}

static int nbd_open_uri(struct imgfmt_image *img, struct nbd_state **out)
{
	struct nbd_state *s;
	const char *env = getenv("IMGFMT_NBD_RETRY_SECONDS");
	int64_t size;
	int r;

	if (!img->uri)
		return imgfmt_err(img, -EINVAL, "%s: format nbd is for nbd:// URIs only", img->path);
	if (insecure_remote(img->uri) && !(img->flags & IMGFMT_OPEN_INSECURE_NBD))
		return imgfmt_err(img, -EPERM,
				  "%s: plain NBD to a host other than loopback sends the disk unencrypted: "
				  "use nbds:// (TLS) or --insecure-nbd",
				  img->path);
	s = calloc(1, sizeof(*s));
	if (!s || !(s->uri = strdup(img->uri))) {
		free(s);
		return imgfmt_err(img, -ENOMEM, "out of memory");
	}
	s->retry_seconds = NBD_DEFAULT_RETRY_SECONDS;
	if (env && *env)
		s->retry_seconds = (unsigned)strtoul(env, NULL, 10);
	r = nbd_connect(img, s);
	if (r < 0)
		goto fail;
	size = nbd_get_size(s->h);
	if (size < 0) {
		r = imgfmt_err(img, -EIO, "%s: the server gave no size", img->path);
		goto fail;
	}
	img->size_bytes = (uint64_t)size;
	img->cluster_bytes = NBD_CLUSTER_BYTES;
	*out = s;
	return 0;

fail:
	if (s->h)
		nbd_close(s->h);
	free(s->uri);
	free(s);
	return r;
}

static int nbd_drv_open(struct imgfmt_image *img)
{
	struct nbd_state *s = NULL;
	int r = nbd_open_uri(img, &s);

	if (r < 0)
		return r;
	if (img->writable && nbd_is_read_only(s->h) == 1) {
		img->priv = s;
		return imgfmt_err(img, -EROFS, "%s: the export is read-only", img->path);
	}
	img->priv = s;
	return 0;
}

/* A target: the export exists; it must hold size_bytes. */
static int nbd_drv_create(struct imgfmt_image *img, uint64_t size_bytes,
			  const struct imgfmt_optval *ov)
{
	int r;

	(void)ov;
	r = nbd_drv_open(img);
	if (r < 0)
		return r;
	if (img->size_bytes < size_bytes)
		return imgfmt_err(img, -ENOSPC, "%s: export of %llu bytes is smaller than %llu",
				  img->path, (unsigned long long)img->size_bytes,
				  (unsigned long long)size_bytes);
	return 0;
}

/* Reads, retried on a new connection while the connection is lost. */
static int nbd_drv_pread_batch(struct imgfmt_image *img, const struct imgfmt_read_req *reqs,
			       size_t n)
{
	struct nbd_state *s = img->priv;
	double start_s = 0;
	int r;

	for (;;) {
		r = s->h ? transfer_list(img, s, reqs, n, false) : -ENOTCONN;
		if (r == 0 || !connection_lost(s, r))
			return r;
		if (start_s == 0)
			start_s = now_s();
		r = reconnect(img, s, start_s);
		if (r < 0)
			return r;
	}
}

static int nbd_drv_pread(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	struct imgfmt_read_req q = { .buf = buf, .len = len, .off = off };

	return nbd_drv_pread_batch(img, &q, 1);
}

static int nbd_drv_pwrite(struct imgfmt_image *img, const void *buf, uint64_t len, uint64_t off)
{
	struct nbd_state *s = img->priv;

	if (!s->h)
		return imgfmt_err(img, -ENOTCONN, "%s: not connected", img->path);
	return transfer(img, s, NULL, buf, len, off);
}

static int nbd_drv_write_zeroes(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	static const uint8_t zeroes[NBD_REQUEST_BYTES];
	struct nbd_state *s = img->priv;
	char msg[IMGFMT_ERRMSG_BYTES - 128];

	if (!s->h)
		return imgfmt_err(img, -ENOTCONN, "%s: not connected", img->path);
	while (len > 0) {
		uint64_t n = len < NBD_ZERO_REQUEST_BYTES ? len : NBD_ZERO_REQUEST_BYTES;
		int r = -ENOTSUP;
		if (s->can_zero && s->can_fast_zero) {
			r = nbd_zero(s->h, n, off, LIBNBD_CMD_FLAG_FAST_ZERO);
			if (r < 0 && nbd_get_errno() == ENOTSUP)
				s->can_fast_zero = false; /* zeroing would be slow here */
		}
		if (r < 0 && s->can_zero)
			r = nbd_zero(s->h, n, off, 0);
		if (r < 0 && !s->can_zero) {
			for (uint64_t d = 0; d < n; d += sizeof(zeroes)) {
				uint64_t c = n - d < sizeof(zeroes) ? n - d : sizeof(zeroes);
				r = transfer(img, s, NULL, zeroes, c, off + d);
				if (r < 0)
					return r;
			}
		} else if (r < 0) {
			return imgfmt_err(img, nbd_errno_or(-EIO), "%s: zeroing %llu bytes at %llu: %s",
					  img->path, (unsigned long long)n, (unsigned long long)off,
					  nbd_errmsg(s, msg, sizeof(msg)));
		}
		len -= n;
		off += n;
	}
	return 0;
}

struct status_ctx {
	struct nbd_state *s;
	uint64_t off;
};

static int on_extents(void *opaque, const char *context, uint64_t offset, uint32_t *entries,
		      size_t nr_entries, int *error)
{
	struct status_ctx *c = opaque;
	struct nbd_state *s = c->s;

	(void)error;
	if (strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION))
		return 0;
	s->n_ext = 0;
	for (size_t i = 0; i + 1 < nr_entries && s->n_ext < NBD_CACHED_EXTENTS; i += 2) {
		uint32_t flags = entries[i + 1];
		struct nbd_cached_extent *e = &s->ext[s->n_ext++];
		e->off = offset;
		e->len = entries[i];
		e->type = (flags & LIBNBD_STATE_HOLE) && (flags & LIBNBD_STATE_ZERO) ? IMGFMT_EXTENT_HOLE
			  : (flags & LIBNBD_STATE_ZERO) ? IMGFMT_EXTENT_ZERO
							 : IMGFMT_EXTENT_DATA;
		offset += entries[i];
	}
	return 0;
}

static bool from_cache(const struct nbd_state *s, uint64_t off, struct imgfmt_extent *ext)
{
	for (unsigned i = 0; i < s->n_ext; i++)
		if (off >= s->ext[i].off && off - s->ext[i].off < s->ext[i].len) {
			ext->length_bytes = s->ext[i].len - (off - s->ext[i].off);
			ext->type = s->ext[i].type;
			return true;
		}
	return false;
}

static int nbd_drv_block_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
				struct imgfmt_extent *ext)
{
	struct nbd_state *s = img->priv;
	struct status_ctx c = { .s = s, .off = off };
	char msg[IMGFMT_ERRMSG_BYTES - 128];
	double start_s = 0;
	uint64_t n = len < NBD_STATUS_REQUEST_BYTES ? len : NBD_STATUS_REQUEST_BYTES;

	if (!s->have_alloc)
		return 0; /* all data */
	if (from_cache(s, off, ext))
		return 0;
	for (;;) {
		int r = s->h ? nbd_block_status(s->h, n, off,
						(nbd_extent_callback){ .callback = on_extents,
								       .user_data = &c }, 0)
			     : -1;
		if (r == 0)
			break;
		r = s->h ? nbd_errno_or(-EIO) : -ENOTCONN;
		if (!connection_lost(s, r))
			return imgfmt_err(img, nbd_errno_or(-EIO), "%s: block status at %llu: %s",
					  img->path, (unsigned long long)off,
					  nbd_errmsg(s, msg, sizeof(msg)));
		if (start_s == 0)
			start_s = now_s();
		if ((r = reconnect(img, s, start_s)) < 0)
			return r;
	}
	if (!from_cache(s, off, ext))
		return imgfmt_err(img, -EIO, "%s: block status at %llu: the server described nothing there",
				  img->path, (unsigned long long)off);
	return 0;
}

static int nbd_drv_flush(struct imgfmt_image *img)
{
	struct nbd_state *s = img->priv;
	char msg[IMGFMT_ERRMSG_BYTES - 64];

	if (!s->h)
		return imgfmt_err(img, -ENOTCONN, "%s: not connected", img->path);
	if (s->can_flush && nbd_flush(s->h, 0) < 0)
		return imgfmt_err(img, nbd_errno_or(-EIO), "%s: flush: %s", img->path,
				  nbd_errmsg(s, msg, sizeof(msg)));
	return 0;
}

static int nbd_drv_info(struct imgfmt_image *img, struct imgfmt_info *info)
{
	struct nbd_state *s = img->priv;

	snprintf(info->subformat, sizeof(info->subformat), "NBD export");
	info->file_size_bytes = 0;
	if (s->h) {
		imgfmt_info_add(info, "tls", true, "%s", nbd_get_tls_negotiated(s->h) == 1 ? "true" : "false");
		imgfmt_info_add(info, "block-status", true, "%s", s->have_alloc ? "true" : "false");
	}
	return 0;
}

static void nbd_drv_close(struct imgfmt_image *img)
{
	struct nbd_state *s = img->priv;

	if (s->h) {
		nbd_shutdown(s->h, 0);
		nbd_close(s->h);
	}
	free(s->uri);
	free(s);
	img->priv = NULL;
}

const struct imgfmt_driver imgfmt_nbd_driver = {
	.name = "nbd",
	.description = "NBD export (nbd://, nbds://, nbd+unix:// URIs) through libnbd",
	.open = nbd_drv_open,
	.create = nbd_drv_create,
	.pread = nbd_drv_pread,
	.pread_batch = nbd_drv_pread_batch,
	.pwrite = nbd_drv_pwrite,
	.write_zeroes = nbd_drv_write_zeroes,
	.block_status = nbd_drv_block_status,
	.flush = nbd_drv_flush,
	.close = nbd_drv_close,
	.info = nbd_drv_info,
};
