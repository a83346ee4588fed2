/* The copy engine: extent-driven, parallel, ordered writes, bounded memory.
 *
 * A planner walks the source's extents (its block status, or the caller's
 * map) and cuts the data into jobs of at most one chunk, aligned to the
 * target's allocation unit; holes and zero extents become no job at all on a
 * fresh target (or a write-zeroes job otherwise).  Workers take jobs in
 * order, read them (source access serialized), detect all-zero units and
 * compress, then write strictly in job order, so the target sees one
 * sequential writer and its metadata stays consistent.  Memory: two chunk
 * buffers per worker, whatever the disk size. */
#include "driver.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define COPY_DEFAULT_CHUNK_BYTES (4u << 20)
#define COPY_MAX_ZERO_UNIT_BYTES (64u * 1024u)
#define COPY_MAX_THREADS 8u
#define COPY_BUF_ALIGN_BYTES 4096u
#define COPY_ZERO_JOB_MAX_BYTES (1ull << 30)

struct copy_range {
	uint64_t off, len;
};

struct copy_job {
	uint64_t seq;
	uint64_t off, len;
	bool zero_only;              /* write zeroes, nothing to read */
	size_t n_reads;
	struct copy_range *reads;    /* DATA parts; the rest of the job is zero */
};

/* Forward-only view of the source's extents. */
struct copy_cursor {
	struct imgfmt_image *src;
	const struct imgfmt_extent *list;
	size_t n, i;
	struct imgfmt_extent cur;
	bool have_cur;
};

struct copy {
	struct imgfmt_image *src, *dst;
	const struct imgfmt_copy_opts *o;
	uint64_t size;
	uint32_t unit;               /* zero-detection and alignment unit */
	uint32_t chunk;
	size_t max_reads;
	bool compress;
	uint32_t min_zero_run;       /* -S: shorter zero runs are written as data */
	bool dst_zero;               /* unwritten target ranges read as zeroes */
	bool all_data;               /* plan every range as data (-S 0, base) */

	pthread_mutex_t lock;        /* planner, stats, error, turn */
	pthread_cond_t turn_cv;
	pthread_mutex_t src_lock;    /* source reads */
	struct copy_cursor cursor;
	uint64_t pos, next_seq, write_seq;
	int error;
	char errmsg[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_copy_stats stats;
};

static uint64_t align_down(uint64_t v, uint64_t a) { return v - v % a; }
static uint64_t align_up(uint64_t v, uint64_t a) { return align_down(v + a - 1, a); }
static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static bool is_data(const struct imgfmt_extent *e) { return e->type == IMGFMT_EXTENT_DATA; }

/* Record the first error (caller holds c->lock or is single-threaded). */
static int set_error(struct copy *c, int code, const char *msg)
{
	if (!c->error) {
		c->error = code;
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", msg && *msg ? msg : strerror(-code));
	}
	return code;
}

/* The extent containing p, trimmed to start at p. */
static int cursor_at(struct copy *c, uint64_t p, struct imgfmt_extent *out)
{
	struct copy_cursor *cu = &c->cursor;

	if (cu->list) {
		while (cu->i < cu->n && cu->list[cu->i].offset_bytes + cu->list[cu->i].length_bytes <= p)
			cu->i++;
		if (cu->i == cu->n || cu->list[cu->i].offset_bytes > p) {
			/* not covered by the map: zero up to the next listed extent */
			out->type = IMGFMT_EXTENT_HOLE;
			out->length_bytes = (cu->i < cu->n ? cu->list[cu->i].offset_bytes : c->size) - p;
		} else {
			out->type = cu->list[cu->i].type;
			out->length_bytes = cu->list[cu->i].offset_bytes + cu->list[cu->i].length_bytes - p;
		}
		out->offset_bytes = p;
		out->length_bytes = min_u64(out->length_bytes, c->size - p);
		return 0;
	}
	if (!cu->have_cur || p < cu->cur.offset_bytes ||
	    p >= cu->cur.offset_bytes + cu->cur.length_bytes) {
		int r;
		pthread_mutex_lock(&c->src_lock);
		r = imgfmt_block_status(cu->src, p, c->size - p, &cu->cur);
		pthread_mutex_unlock(&c->src_lock);
		if (r < 0)
			return set_error(c, r, imgfmt_errmsg(cu->src));
		cu->have_cur = true;
	}
	*out = cu->cur;
	out->length_bytes -= p - cu->cur.offset_bytes;
	out->offset_bytes = p;
	return 0;
}

static void job_add_read(struct copy_job *j, uint64_t off, uint64_t len)
{
	if (j->n_reads && j->reads[j->n_reads - 1].off + j->reads[j->n_reads - 1].len == off) {
		j->reads[j->n_reads - 1].len += len;
		return;
	}
	j->reads[j->n_reads].off = off;
	j->reads[j->n_reads].len = len;
	j->n_reads++;
}

/* Fill j with the data job starting at c->pos: up to one chunk, ending early
 * at a unit boundary when a hole of at least a whole unit follows. */
static int plan_data_job(struct copy *c, struct copy_job *j)
{
	uint64_t p = c->pos, end = min_u64(c->pos + c->chunk, c->size);
	struct imgfmt_extent e;

	j->off = c->pos;
	j->zero_only = false;
	j->n_reads = 0;
	while (p < end) {
		int r = cursor_at(c, p, &e);
		uint64_t e_end;
		if (r < 0)
			return r;
		e_end = min_u64(p + e.length_bytes, end);
		if (is_data(&e))
			job_add_read(j, p, e_end - p);
		else if (!c->all_data && align_down(e_end, c->unit) > align_up(p, c->unit) && align_up(p, c->unit) > c->pos)
			end = align_up(p, c->unit);
		p = e_end;
	}
	j->len = end - c->pos;
	c->pos = end;
	return 1;
}

/* Next job in order: 1 = job, 0 = done, <0 = error.  Caller holds c->lock. */
static int plan_next(struct copy *c, struct copy_job *j)
{
	struct imgfmt_extent e;

	while (c->pos < c->size) {
		uint64_t zend;
		int r;
		if (c->o->cancel && *c->o->cancel)
			return set_error(c, -EINTR, "interrupted");
		r = cursor_at(c, c->pos, &e);
		if (r < 0)
			return r;
		if (is_data(&e) || c->all_data)
			break;
		zend = c->pos + e.length_bytes;
		if (zend < c->size)
			zend = align_down(zend, c->unit);
		if (zend <= c->pos)
			break; /* data starts inside this unit */
		if (!c->dst_zero && !(c->o->keep_holes && e.type == IMGFMT_EXTENT_HOLE)) {
			j->off = c->pos;
			j->len = min_u64(zend - c->pos, COPY_ZERO_JOB_MAX_BYTES);
			j->zero_only = true;
			j->n_reads = 0;
			c->pos += j->len;
			j->seq = c->next_seq++;
			return 1;
		}
		c->stats.hole_bytes_skipped += zend - c->pos;
		c->pos = zend;
	}
	if (c->pos >= c->size)
		return 0;
	j->seq = c->next_seq++;
	return plan_data_job(c, j);
}

/* ---- workers ---- */

enum unit_kind { U_DATA, U_ZERO, U_SKIP };

struct copy_worker {
	struct copy *c;
	pthread_t thread;
	struct copy_job job;
	uint8_t *buf;                /* chunk of source data */
	uint8_t *bbuf;               /* the same range of opts.base */
	uint8_t *cbuf;               /* compressed clusters, one slot per unit */
	size_t *clen;                /* compressed length per unit, 0 = not compressed */
	uint8_t *kind;               /* per unit: enum unit_kind */
};

/* Zero what the job's reads will not fill, up to fill_len bytes. */
static void zero_gaps(uint8_t *buf, const struct copy_job *j, uint64_t fill_len)
{
	uint64_t at = 0;

	for (size_t i = 0; i < j->n_reads; i++) {
		uint64_t start = j->reads[i].off - j->off;
		memset(buf + at, 0, start - at);
		at = start + j->reads[i].len;
	}
	memset(buf + at, 0, fill_len - at);
}

/* [off, off+len) of the base, zeroes past its end; 1 on a base error. */
static int read_base(struct copy *c, uint8_t *buf, uint64_t off, uint64_t len)
{
	uint64_t bsize = imgfmt_size_bytes(c->o->base);
	uint64_t n = off >= bsize ? 0 : min_u64(len, bsize - off);

	memset(buf + n, 0, len - n);
	return n && imgfmt_pread(c->o->base, buf, n, off) < 0 ? 1 : 0;
}

#define COPY_BATCH_READS 64

static int read_job(struct copy_worker *w)
{
	struct copy *c = w->c;
	struct copy_job *j = &w->job;
	uint64_t done = 0;
	int r = 0;

	zero_gaps(w->buf, j, align_up(j->len, c->unit));
	pthread_mutex_lock(&c->src_lock);
	if (!c->o->read && c->src->drv->pread_batch) {
		/* The job's data runs issued together (NBD: one round trip). */
		struct imgfmt_read_req reqs[COPY_BATCH_READS];
		for (size_t i = 0; i < j->n_reads && r == 0;) {
			size_t n = 0;
			for (; n < COPY_BATCH_READS && i < j->n_reads; n++, i++) {
				reqs[n].buf = w->buf + (j->reads[i].off - j->off);
				reqs[n].len = j->reads[i].len;
				reqs[n].off = j->reads[i].off;
				done += j->reads[i].len;
			}
			r = imgfmt_pread_batch(c->src, reqs, n);
		}
	}
	for (size_t i = 0; i < j->n_reads && r == 0 && !(!c->o->read && c->src->drv->pread_batch); i++) {
		uint8_t *dst = w->buf + (j->reads[i].off - j->off);
		if (c->o->read)
			r = c->o->read(c->o->read_opaque, dst, j->reads[i].len, j->reads[i].off);
		else
			r = imgfmt_pread(c->src, dst, j->reads[i].len, j->reads[i].off);
		done += j->reads[i].len;
	}
	if (r == 0 && c->o->base)
		r = read_base(c, w->bbuf, j->off, align_up(j->len, c->unit));
	if (r < 0) {
		char msg[IMGFMT_ERRMSG_BYTES];
		snprintf(msg, sizeof(msg), "%s", r == 1 ? imgfmt_errmsg(c->o->base) :
			 c->o->read ? strerror(-r) : imgfmt_errmsg(c->src));
		r = r == 1 ? -EIO : r;
		pthread_mutex_unlock(&c->src_lock);
		pthread_mutex_lock(&c->lock);
		set_error(c, r, msg);
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	pthread_mutex_unlock(&c->src_lock);
	pthread_mutex_lock(&c->lock);
	c->stats.data_bytes_read += done;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* -S: zero runs shorter than min_zero_run bytes are data, as in qemu-img
 * (a run is judged within its job). */
static void keep_short_zero_runs(struct copy_worker *w, size_t n_units)
{
	struct copy *c = w->c;

	for (size_t u = 0, v; u < n_units; u = v) {
		for (v = u + 1; v < n_units && w->kind[v] == w->kind[u]; v++)
			;
		if (w->kind[u] == U_ZERO && (uint64_t)(v - u) * c->unit < c->min_zero_run)
			memset(w->kind + u, U_DATA, v - u);
	}
}

/* Zero detection and compression: no shared state touched. */
static void process_job(struct copy_worker *w)
{
	struct copy *c = w->c;
	size_t n_units = (size_t)imgfmt_div_round_up(w->job.len, c->unit);

	for (size_t u = 0; u < n_units; u++) {
		uint8_t *p = w->buf + u * c->unit;
		uint64_t len = min_u64(c->unit, w->job.len - u * c->unit);
		w->kind[u] = !c->o->no_sparse && imgfmt_is_zero(p, len) ? U_ZERO : U_DATA;
		w->clen[u] = 0;
		if (c->o->base && !memcmp(p, w->bbuf + u * c->unit, len))
			w->kind[u] = U_SKIP;
	}
	if (c->min_zero_run)
		keep_short_zero_runs(w, n_units);
	for (size_t u = 0; c->compress && u < n_units; u++) {
		size_t out = 0;
		/* the buffer is zero-padded to whole clusters */
		if (w->kind[u] == U_DATA &&
		    imgfmt_compress(c->dst, w->buf + u * c->unit, c->unit, w->cbuf + u * c->unit, c->unit, &out) == 0)
			w->clen[u] = out;
	}
}

static int write_run(struct copy *c, const uint8_t *buf, uint64_t len, uint64_t off,
		     enum unit_kind kind)
{
	if (kind == U_SKIP) {
		c->stats.base_bytes_skipped += len;
		return 0;
	}
	if (kind == U_ZERO)
		c->stats.zero_bytes_skipped += len;
	if (kind == U_ZERO && c->dst_zero)
		return 0;
	if (kind == U_ZERO)
		return imgfmt_write_zeroes(c->dst, len, off);
	c->stats.bytes_written += len;
	return imgfmt_pwrite(c->dst, buf, len, off);
}

/* Write the job's units: runs of plain data or zeroes as one request each,
 * compressed clusters one by one.  Called in turn, so dst is ours. */
static int write_job(struct copy_worker *w)
{
	struct copy *c = w->c;
	const struct copy_job *j = &w->job;
	size_t n_units = (size_t)imgfmt_div_round_up(j->len, c->unit);
	size_t u = 0;
	int r = 0;

	if (j->zero_only)
		return c->dst_zero ? 0 : imgfmt_write_zeroes(c->dst, j->len, j->off);
	while (u < n_units && r == 0) {
		uint64_t off = j->off + u * c->unit;
		if (w->clen[u]) {
			r = imgfmt_pwrite_compressed(c->dst, w->cbuf + u * c->unit, w->clen[u], off);
			c->stats.bytes_written += w->clen[u];
			c->stats.compressed_clusters++;
			u++;
			continue;
		}
		size_t v = u + 1;
		while (v < n_units && !w->clen[v] && w->kind[v] == w->kind[u])
			v++;
		uint64_t len = min_u64((uint64_t)(v - u) * c->unit, j->off + j->len - off);
		r = write_run(c, w->buf + u * c->unit, len, off, w->kind[u]);
		u = v;
	}
	return r < 0 ? r : 0;
}

static void wait_turn(struct copy *c, uint64_t seq)
{
	while (c->write_seq != seq && !c->error)
		pthread_cond_wait(&c->turn_cv, &c->lock);
}

static void *worker_main(void *arg)
{
	struct copy_worker *w = arg;
	struct copy *c = w->c;

	for (;;) {
		int r;
		pthread_mutex_lock(&c->lock);
		r = c->error ? 0 : plan_next(c, &w->job);
		pthread_mutex_unlock(&c->lock);
		if (r <= 0)
			break;
		if (!w->job.zero_only) {
			if (read_job(w) < 0)
				break;
			process_job(w);
		}
		pthread_mutex_lock(&c->lock);
		wait_turn(c, w->job.seq);
		if (c->error) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		pthread_mutex_unlock(&c->lock);
		r = write_job(w); /* our turn: nobody else touches dst */
		pthread_mutex_lock(&c->lock);
		if (r < 0)
			set_error(c, r, imgfmt_errmsg(c->dst));
		c->write_seq++;
		if (!c->error && c->o->progress)
			c->o->progress(c->o->progress_opaque, w->job.off + w->job.len, c->size);
		pthread_cond_broadcast(&c->turn_cv);
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_lock(&c->lock);
	if (!c->error && c->o->cancel && *c->o->cancel)
		set_error(c, -EINTR, "interrupted");
	pthread_cond_broadcast(&c->turn_cv); /* wake waiters on error */
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Page-aligned: whole pages to copy into the target's page cache. */
static void *page_alloc(size_t bytes)
{
	void *p;

	return posix_memalign(&p, COPY_BUF_ALIGN_BYTES, bytes) == 0 ? p : NULL;
}

static int worker_alloc(struct copy_worker *w, struct copy *c)
{
	size_t n_units = c->chunk / c->unit + 1;

	w->c = c;
	w->buf = page_alloc(c->chunk);
	w->bbuf = c->o->base ? page_alloc(c->chunk) : NULL;
	w->cbuf = c->compress ? page_alloc(c->chunk) : NULL;
	w->clen = calloc(n_units, sizeof(*w->clen));
	w->kind = calloc(n_units, sizeof(*w->kind));
	w->job.reads = calloc(c->max_reads, sizeof(*w->job.reads));
	if (!w->buf || (c->o->base && !w->bbuf) || (c->compress && !w->cbuf) || !w->clen ||
	    !w->kind || !w->job.reads)
		return -ENOMEM;
	return 0;
}

static void worker_free(struct copy_worker *w)
{
	free(w->buf);
	free(w->bbuf);
	free(w->cbuf);
	free(w->clen);
	free(w->kind);
	free(w->job.reads);
}

static unsigned thread_count(const struct imgfmt_copy_opts *o)
{
	long n = o->threads ? (long)o->threads : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 2)
		n = 2; /* one reading while another writes, even on one CPU */
	return n > (long)COPY_MAX_THREADS ? COPY_MAX_THREADS : (unsigned)n;
}

static int copy_setup(struct copy *c, struct imgfmt_image *src, struct imgfmt_image *dst,
		      const struct imgfmt_copy_opts *o, char *err, size_t err_bytes)
{
	uint32_t cluster = dst->cluster_bytes ? dst->cluster_bytes : IMGFMT_SECTOR_BYTES;

	memset(c, 0, sizeof(*c));
	c->src = src;
	c->dst = dst;
	c->o = o;
	c->size = src->size_bytes;
	c->compress = o->compress;
	if (c->size > dst->size_bytes) {
		snprintf(err, err_bytes, "source of %llu bytes does not fit in target of %llu bytes",
			 (unsigned long long)c->size, (unsigned long long)dst->size_bytes);
		return -ENOSPC;
	}
	if (c->compress && !imgfmt_can_compress(dst)) {
		snprintf(err, err_bytes, "format %s does not support compression", dst->drv->name);
		return -ENOTSUP;
	}
	c->unit = c->compress ? cluster : (cluster < COPY_MAX_ZERO_UNIT_BYTES ? cluster : COPY_MAX_ZERO_UNIT_BYTES);
	if (o->sparse_bytes && !c->compress) {
		if (o->sparse_bytes % IMGFMT_SECTOR_BYTES || o->sparse_bytes > COPY_DEFAULT_CHUNK_BYTES) {
			snprintf(err, err_bytes, "sparse size %u is not a multiple of 512 up to %u",
				 o->sparse_bytes, COPY_DEFAULT_CHUNK_BYTES);
			return -EINVAL;
		}
		c->unit = IMGFMT_SECTOR_BYTES;
		c->min_zero_run = o->sparse_bytes;
	}
	c->dst_zero = dst->fresh || o->target_is_zero;
	c->all_data = o->no_sparse || o->base;
	c->chunk = o->chunk_bytes ? o->chunk_bytes : COPY_DEFAULT_CHUNK_BYTES;
	c->chunk = (uint32_t)align_up(c->chunk < c->unit ? c->unit : c->chunk, c->unit);
	c->max_reads = c->chunk / IMGFMT_SECTOR_BYTES + 2;
	c->cursor.src = src;
	c->cursor.list = o->extents;
	c->cursor.n = o->n_extents;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->src_lock, NULL);
	pthread_cond_init(&c->turn_cv, NULL);
	return 0;
}

int imgfmt_copy(struct imgfmt_image *src, struct imgfmt_image *dst,
		const struct imgfmt_copy_opts *opts, struct imgfmt_copy_stats *stats,
		char *err, size_t err_bytes)
{
	static const struct imgfmt_copy_opts defaults;
	struct copy_worker workers[COPY_MAX_THREADS];
	char dummy[8];
	unsigned n, started = 0;
	struct copy c;
	int r;

	if (!err) {
		err = dummy;
		err_bytes = sizeof(dummy);
	}
	r = copy_setup(&c, src, dst, opts ? opts : &defaults, err, err_bytes);
	if (r < 0)
		return r;
	n = thread_count(c.o);
	memset(workers, 0, sizeof(workers));
	for (unsigned i = 0; i < n; i++) {
		r = worker_alloc(&workers[i], &c);
		if (r < 0) {
			set_error(&c, r, "out of memory for copy buffers");
			goto free_workers;
		}
	}
	for (; started < n; started++)
		if (pthread_create(&workers[started].thread, NULL, worker_main, &workers[started])) {
			pthread_mutex_lock(&c.lock);
			set_error(&c, -EAGAIN, "cannot start copy threads");
			pthread_cond_broadcast(&c.turn_cv);
			pthread_mutex_unlock(&c.lock);
			break;
		}
	for (unsigned i = 0; i < started; i++)
		pthread_join(workers[i].thread, NULL);
free_workers:
	for (unsigned i = 0; i < n; i++)
		worker_free(&workers[i]);
	pthread_mutex_destroy(&c.lock);
	pthread_mutex_destroy(&c.src_lock);
	pthread_cond_destroy(&c.turn_cv);
	if (stats)
		*stats = c.stats;
	if (c.error)
		snprintf(err, err_bytes, "%s", c.errmsg);
	return c.error;
}
