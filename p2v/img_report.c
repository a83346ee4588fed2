/* What info, map and check print, shaped as qemu-img 7.2 prints it, so that
 * scripts written for qemu-img read p2v's output unchanged: the same JSON
 * keys with the same meanings (facts only p2v has are extra keys), the same
 * human lines, check's exit codes. */
#include "img_report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- info ---- */

/* "1.5 MiB" as qemu-img prints sizes (three significant digits). */
static void size_text(uint64_t v, char *buf, size_t bytes)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1024 - 0.5 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		d /= 1024;
		u++;
	}
	snprintf(buf, bytes, "%0.3g %s", d, unit[u]);
}

void p2v_snapshots_human(const struct imgfmt_snapshot *v, unsigned n)
{
	char size[32], date[32], clock[32], icount[32];

	if (!n)
		return;
	printf("Snapshot list:\n%-9s %-16s %8s %19s %12s %10s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
	for (unsigned i = 0; i < n; i++) {
		time_t t = v[i].date_sec;
		struct tm tm;
		uint64_t ms = v[i].vm_clock_nsec / 1000000;
		size_text(v[i].vm_state_bytes, size, sizeof(size));
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		snprintf(clock, sizeof(clock), "%02llu:%02llu:%02llu.%03llu", (unsigned long long)(ms / 3600000),
			 (unsigned long long)(ms / 60000 % 60), (unsigned long long)(ms / 1000 % 60),
			 (unsigned long long)(ms % 1000));
		if (v[i].icount == UINT64_MAX)
			icount[0] = 0;
		else
			snprintf(icount, sizeof(icount), "%llu", (unsigned long long)v[i].icount);
		printf("%-9s %-16s %8s %19s %12s %10s\n", v[i].id, v[i].name, size, date, clock, icount);
	}
}

void p2v_snapshots_json(struct p2v_json *j, const char *key, const struct imgfmt_snapshot *v, unsigned n)
{
	p2v_json_arr_begin(j, key);
	for (unsigned i = 0; i < n; i++) {
		p2v_json_obj_begin(j, NULL);
		if (v[i].icount != UINT64_MAX)
			p2v_json_u64(j, "icount", v[i].icount);
		p2v_json_u64(j, "vm-clock-nsec", v[i].vm_clock_nsec % 1000000000);
		p2v_json_str(j, "name", v[i].name);
		p2v_json_u64(j, "date-sec", v[i].date_sec);
		p2v_json_u64(j, "date-nsec", v[i].date_nsec);
		p2v_json_u64(j, "vm-clock-sec", v[i].vm_clock_nsec / 1000000000);
		p2v_json_str(j, "id", v[i].id);
		p2v_json_u64(j, "vm-state-size", v[i].vm_state_bytes);
		p2v_json_obj_end(j);
	}
	p2v_json_arr_end(j);
}

/* QEMU's path_combine(): a relative backing name is relative to the
 * directory of the image that names it. */
static void full_backing(const char *image, const char *backing, char *buf, size_t buf_bytes)
{
	const char *slash = strrchr(image, '/');

	if (backing[0] == '/' || !slash)
		snprintf(buf, buf_bytes, "%s", backing);
	else
		snprintf(buf, buf_bytes, "%.*s%s", (int)(slash - image + 1), image, backing);
}

/* "refcount-bits" -> "refcount bits", as QEMU's human output names keys. */
static void human_key(const char *key, char *buf, size_t buf_bytes)
{
	size_t i;

	for (i = 0; key[i] && i + 1 < buf_bytes; i++)
		buf[i] = key[i] == '-' ? ' ' : key[i];
	buf[i] = '\0';
}

void p2v_info_human(struct imgfmt_image *img, const struct imgfmt_info *in)
{
	char a[32], b[32], k[48], full[4096 + 256];
	struct imgfmt_snapshot *snaps;
	unsigned n_snaps;

	printf("image: %s\n", imgfmt_path(img));
	printf("file format: %s\n", in->format);
	if (in->subformat[0])
		printf("subformat: %s\n", in->subformat);
	size_text(in->virtual_size_bytes, a, sizeof(a));
	size_text(in->file_size_bytes, b, sizeof(b));
	printf("virtual size: %s (%llu bytes)\n", a, (unsigned long long)in->virtual_size_bytes);
	printf("disk size: %s\n", b);
	if (in->cluster_bytes)
		printf("cluster_size: %u\n", in->cluster_bytes);
	if (in->backing_file[0]) {
		full_backing(imgfmt_path(img), in->backing_file, full, sizeof(full));
		if (strcmp(full, in->backing_file))
			printf("backing file: %s (actual path: %s)\n", in->backing_file, full);
		else
			printf("backing file: %s\n", in->backing_file);
		if (in->backing_format[0])
			printf("backing file format: %s\n", in->backing_format);
	}
	if (in->dirty)
		printf("cleanly shut down: no\n");
	if (imgfmt_snapshot_list(img, &snaps, &n_snaps) == 0) {
		p2v_snapshots_human(snaps, n_snaps);
		free(snaps);
	}
	if (in->n_extra || in->n_files)
		printf("Format specific information:\n");
	for (unsigned i = 0; i < in->n_extra; i++) {
		human_key(in->extra[i].key, k, sizeof(k));
		printf("    %s: %s\n", k, in->extra[i].val);
	}
	if (in->n_files)
		printf("    extents:\n");
	for (unsigned i = 0; i < in->n_files; i++) {
		const struct imgfmt_info_file *f = &in->files[i];
		printf("        [%u]:\n", i);
		if (f->compressed)
			printf("            compressed: true\n");
		printf("            virtual size: %llu\n", (unsigned long long)f->virtual_size_bytes);
		printf("            filename: %s\n", f->path);
		if (f->cluster_bytes)
			printf("            cluster size: %u\n", f->cluster_bytes);
		printf("            format: %s\n", f->type);
	}
}

/* QEMU's keys: virtual-size, filename, cluster-size, format, actual-size,
 * format-specific {type, data}, (full-)backing-filename(-format),
 * dirty-flag; p2v adds subformat. */
void p2v_info_json(struct p2v_json *j, struct imgfmt_image *img, const struct imgfmt_info *in)
{
	char full[4096 + 256];
	struct imgfmt_snapshot *snaps;
	unsigned n_snaps;

	p2v_json_obj_begin(j, NULL);
	p2v_json_u64(j, "virtual-size", in->virtual_size_bytes);
	p2v_json_str(j, "filename", imgfmt_path(img));
	if (in->cluster_bytes)
		p2v_json_u64(j, "cluster-size", in->cluster_bytes);
	p2v_json_str(j, "format", in->format);
	if (in->subformat[0])
		p2v_json_str(j, "subformat", in->subformat);
	p2v_json_u64(j, "actual-size", in->file_size_bytes);
	if (in->n_extra || in->n_files) {
		p2v_json_obj_begin(j, "format-specific");
		p2v_json_str(j, "type", in->format);
		p2v_json_obj_begin(j, "data");
		for (unsigned i = 0; i < in->n_extra; i++) {
			if (in->extra[i].is_number)
				p2v_json_raw(j, in->extra[i].key, in->extra[i].val);
			else
				p2v_json_str(j, in->extra[i].key, in->extra[i].val);
		}
		if (in->n_files)
			p2v_json_arr_begin(j, "extents");
		for (unsigned i = 0; i < in->n_files; i++) {
			const struct imgfmt_info_file *f = &in->files[i];
			p2v_json_obj_begin(j, NULL);
			if (f->compressed)
				p2v_json_bool(j, "compressed", true);
			p2v_json_u64(j, "virtual-size", f->virtual_size_bytes);
			p2v_json_str(j, "filename", f->path);
			if (f->cluster_bytes)
				p2v_json_u64(j, "cluster-size", f->cluster_bytes);
			p2v_json_str(j, "format", f->type);
			p2v_json_obj_end(j);
		}
		if (in->n_files)
			p2v_json_arr_end(j);
		p2v_json_obj_end(j);
		p2v_json_obj_end(j);
	}
	if (in->backing_file[0]) {
		full_backing(imgfmt_path(img), in->backing_file, full, sizeof(full));
		p2v_json_str(j, "full-backing-filename", full);
		p2v_json_str(j, "backing-filename", in->backing_file);
		if (in->backing_format[0])
			p2v_json_str(j, "backing-filename-format", in->backing_format);
	}
	if (imgfmt_snapshot_list(img, &snaps, &n_snaps) == 0) {
		if (n_snaps)
			p2v_snapshots_json(j, "snapshots", snaps, n_snaps);
		free(snaps);
	}
	p2v_json_bool(j, "dirty-flag", in->dirty);
	p2v_json_obj_end(j);
}

/* ---- map ---- */

/* One qemu-img map entry: QEMU's flags from an extent and the image of the
 * chain that decided it. */
struct map_entry {
	uint64_t start, length, offset; /* offset: IMGFMT_NO_HOST_OFFSET for none */
	unsigned depth;
	bool present, zero, data;
	const char *file;
};

static struct imgfmt_image *layer_of(struct imgfmt_image *top, const struct imgfmt_extent *e)
{
	struct imgfmt_image *layer = top;

	for (unsigned d = 0; d < e->depth && imgfmt_backing(layer); d++)
		layer = imgfmt_backing(layer);
	return layer;
}

void p2v_map_flags(struct imgfmt_image *top, const struct imgfmt_extent *e, struct p2v_map_flags *f)
{
	memset(f, 0, sizeof(*f));
	f->data = e->type == IMGFMT_EXTENT_DATA;
	f->zero = !f->data;
	/* a hole is "not present" only where a backing file could fill it */
	f->present = e->type != IMGFMT_EXTENT_HOLE || !imgfmt_can_have_backing(layer_of(top, e));
}

static void entry_of(struct imgfmt_image *top, const struct imgfmt_extent *e, struct map_entry *m)
{
	struct p2v_map_flags f;

	p2v_map_flags(top, e, &f);
	m->start = e->offset_bytes;
	m->length = e->length_bytes;
	m->offset = e->host_offset_bytes;
	m->depth = e->depth;
	m->data = f.data;
	m->zero = f.zero;
	m->present = f.present;
	m->file = imgfmt_path(layer_of(top, e));
}

/* As qemu-img map merges: same flags and depth, offsets continuing. */
static bool merges(const struct map_entry *a, const struct map_entry *b)
{
	if (a->present != b->present || a->zero != b->zero || a->data != b->data ||
	    a->depth != b->depth || a->file != b->file)
		return false;
	if (a->offset == IMGFMT_NO_HOST_OFFSET || b->offset == IMGFMT_NO_HOST_OFFSET)
		return a->offset == b->offset;
	return b->offset == a->offset + a->length;
}

static void print_entry(bool json, struct p2v_json *j, const struct map_entry *m)
{
	if (json) {
		p2v_json_obj_begin(j, NULL);
		p2v_json_u64(j, "start", m->start);
		p2v_json_u64(j, "length", m->length);
		p2v_json_u64(j, "depth", m->depth);
		p2v_json_bool(j, "present", m->present);
		p2v_json_bool(j, "zero", m->zero);
		p2v_json_bool(j, "data", m->data);
		if (m->offset != IMGFMT_NO_HOST_OFFSET)
			p2v_json_u64(j, "offset", m->offset);
		p2v_json_obj_end(j);
		return;
	}
	/* QEMU lists data only; it gives up on compressed clusters, p2v
	 * shows them without a place ("-") */
	if (!m->data)
		return;
	if (m->offset == IMGFMT_NO_HOST_OFFSET)
		printf("%#-16llx%#-16llx%-16s%s\n", (unsigned long long)m->start,
		       (unsigned long long)m->length, "-", m->file);
	else
		printf("%#-16llx%#-16llx%#-16llx%s\n", (unsigned long long)m->start,
		       (unsigned long long)m->length, (unsigned long long)m->offset, m->file);
}

int p2v_map_print(struct imgfmt_image *img, bool json)
{
	uint64_t off = 0, size = imgfmt_size_bytes(img);
	struct map_entry cur = { 0 }, m;
	struct imgfmt_extent e;
	struct p2v_json j;
	int r = 0;

	p2v_json_init(&j, stdout);
	if (json)
		p2v_json_arr_begin(&j, NULL);
	else
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	while (off < size && (r = imgfmt_block_status(img, off, size - off, &e)) == 0) {
		entry_of(img, &e, &m);
		if (cur.length && merges(&cur, &m)) {
			cur.length += m.length;
		} else {
			if (cur.length)
				print_entry(json, &j, &cur);
			cur = m;
		}
		off += e.length_bytes;
	}
	if (r == 0 && cur.length)
		print_entry(json, &j, &cur);
	if (json) {
		p2v_json_arr_end(&j);
		p2v_json_finish(&j);
	}
	if (r < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	return r;
}

/* ---- check ---- */

void p2v_check_problem(void *opaque, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "%s\n", msg); /* as qemu-img: on stderr, also with JSON */
}

static void check_json(const char *filename, struct imgfmt_image *img, const struct imgfmt_check *c)
{
	struct p2v_json j;

	/* QEMU leaves out the counters that are zero */
	p2v_json_init(&j, stdout);
	p2v_json_obj_begin(&j, NULL);
	if (c->image_end_offset_bytes)
		p2v_json_u64(&j, "image-end-offset", c->image_end_offset_bytes);
	if (c->total_clusters)
		p2v_json_u64(&j, "total-clusters", c->total_clusters);
	p2v_json_u64(&j, "check-errors", 0);
	if (c->leaks)
		p2v_json_u64(&j, "leaks", c->leaks);
	if (c->errors)
		p2v_json_u64(&j, "corruptions", c->errors);
	if (c->leaks_fixed)
		p2v_json_u64(&j, "leaks-fixed", c->leaks_fixed);
	if (c->errors_fixed)
		p2v_json_u64(&j, "corruptions-fixed", c->errors_fixed);
	if (c->allocated_clusters)
		p2v_json_u64(&j, "allocated-clusters", c->allocated_clusters);
	if (c->fragmented_clusters)
		p2v_json_u64(&j, "fragmented-clusters", c->fragmented_clusters);
	if (c->compressed_clusters)
		p2v_json_u64(&j, "compressed-clusters", c->compressed_clusters);
	p2v_json_str(&j, "filename", filename);
	p2v_json_str(&j, "format", imgfmt_format(img));
	p2v_json_obj_end(&j);
	p2v_json_finish(&j);
}

static void check_human(const struct imgfmt_check *c)
{
	if (c->errors == 0 && c->leaks == 0)
		printf("No errors were found on the image.\n");
	if (c->errors)
		printf("\n%llu errors were found on the image.\n"
		       "Data may be corrupted, or further writes to the image may corrupt it.\n",
		       (unsigned long long)c->errors);
	if (c->leaks)
		printf("\n%llu leaked clusters were found on the image.\n"
		       "This means waste of disk space, but no harm to data.\n",
		       (unsigned long long)c->leaks);
	if (c->total_clusters && c->allocated_clusters)
		printf("%llu/%llu = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
		       (unsigned long long)c->allocated_clusters, (unsigned long long)c->total_clusters,
		       c->allocated_clusters * 100.0 / c->total_clusters,
		       c->fragmented_clusters * 100.0 / c->allocated_clusters,
		       c->compressed_clusters * 100.0 / c->allocated_clusters);
	if (c->image_end_offset_bytes)
		printf("Image end offset: %llu\n", (unsigned long long)c->image_end_offset_bytes);
}

int p2v_check_run(struct imgfmt_image *img, const char *filename, unsigned repair, bool json)
{
	struct imgfmt_check c = { .repair = repair, .report = p2v_check_problem };
	uint64_t errors_fixed, leaks_fixed;
	int r = imgfmt_check(img, &c);

	if (r == -ENOTSUP) {
		p2v_err("%s", imgfmt_errmsg(img));
		return P2V_CHECK_EXIT_UNSUPPORTED;
	}
	if (r == 0 && repair && (c.errors_fixed || c.leaks_fixed)) {
		errors_fixed = c.errors_fixed;
		leaks_fixed = c.leaks_fixed;
		if (!json)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %llu leaked clusters\n    %llu corruptions\n\n"
			       "Double checking the fixed image now...\n",
			       (unsigned long long)leaks_fixed, (unsigned long long)errors_fixed);
		c = (struct imgfmt_check){ .report = p2v_check_problem };
		r = imgfmt_check(img, &c);
		c.errors_fixed = errors_fixed;
		c.leaks_fixed = leaks_fixed;
	}
	if (r < 0) {
		p2v_err("%s", imgfmt_errmsg(img));
		return P2V_CHECK_EXIT_ERROR;
	}
	if (json)
		check_json(filename, img, &c);
	else
		check_human(&c);
	return c.errors ? P2V_CHECK_EXIT_CORRUPT : c.leaks ? P2V_CHECK_EXIT_LEAKS : P2V_CHECK_EXIT_CLEAN;
}
