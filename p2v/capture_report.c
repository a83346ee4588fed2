/* The capture plan and report: human text and JSON. */
#include "bootdisk.h"
#include "capture.h"
#include "p2v.h"

static void plan_part_human(FILE *f, const struct p2v_part *p)
{
	char a[32], b[32], c[32];

	fprintf(f, "  %-3d %-12s %10s at %-10s %-8s %-11s copy %10s", p->number,
		p->part_type[0] == '0' ? p->part_type : (p->is_extended ? "extended" : p->part_type),
		p2v_human_bytes(p->size_bytes, a, sizeof(a)),
		p2v_human_bytes(p->start_bytes, b, sizeof(b)),
		p->is_extended ? "-" : (p->fs_type[0] ? p->fs_type : "unknown"),
		p2v_method_name(p->method), p2v_human_bytes(p->copy_bytes, c, sizeof(c)));
	if (p->fs_used_bytes)
		fprintf(f, " (fs uses %s)", p2v_human_bytes(p->fs_used_bytes, a, sizeof(a)));
	fprintf(f, "\n      %s%s", p->warn ? "WARNING: " : "", p->why);
	if (p->label[0] || p->uuid[0])
		fprintf(f, "\n      label '%s' uuid %s", p->label, p->uuid[0] ? p->uuid : "-");
	fputc('\n', f);
}

void p2v_report_plan_human(FILE *f, const struct p2v_disk *d, uint64_t copy_bytes)
{
	char a[32], b[32];
	uint64_t parts_bytes = 0;

	fprintf(f, "source: %s, %s (%llu bytes), sectors %u/%u bytes", d->path,
		p2v_human_bytes(d->size_bytes, a, sizeof(a)), (unsigned long long)d->size_bytes,
		d->logical_sector_bytes, d->physical_sector_bytes);
	if (d->model[0] || d->serial[0])
		fprintf(f, ", model '%s' serial '%s'", d->model, d->serial);
	fprintf(f, "\npartition table: %s%s%s\n", d->table_type[0] ? d->table_type : "none",
		d->table_id[0] ? " id " : "", d->table_id);
	for (unsigned i = 0; i < d->n_parts; i++) {
		plan_part_human(f, &d->parts[i]);
		parts_bytes += d->parts[i].copy_bytes;
	}
	if (d->boot) {
		char boot[2048];
		p2v_bootdisk_summary(d->boot, boot, sizeof(boot));
		fprintf(f, "boot: %s\n", boot);
	}
	fprintf(f, "always copied: partition tables, boot code, gaps between and after partitions: %s\n",
		p2v_human_bytes(copy_bytes > parts_bytes ? copy_bytes - parts_bytes : 0, a, sizeof(a)));
	fprintf(f, "to copy: %s of %s (%.1f%%); expected output size at most %s (all-zero blocks become holes)\n",
		p2v_human_bytes(copy_bytes, a, sizeof(a)), p2v_human_bytes(d->size_bytes, b, sizeof(b)),
		d->size_bytes ? 100.0 * (double)copy_bytes / (double)d->size_bytes : 0.0, a);
}

static void json_source(struct p2v_json *j, const struct p2v_disk *d)
{
	p2v_json_obj_begin(j, "source");
	p2v_json_str(j, "path", d->path);
	p2v_json_bool(j, "block_device", d->is_block_device);
	p2v_json_u64(j, "size_bytes", d->size_bytes);
	p2v_json_u64(j, "logical_sector_bytes", d->logical_sector_bytes);
	p2v_json_u64(j, "physical_sector_bytes", d->physical_sector_bytes);
	p2v_json_str(j, "model", d->model);
	p2v_json_str(j, "serial", d->serial);
	p2v_json_obj_end(j);
	p2v_json_obj_begin(j, "partition_table");
	p2v_json_str(j, "type", d->table_type);
	p2v_json_str(j, "id", d->table_id);
	p2v_json_obj_end(j);
}

static void json_boot(struct p2v_json *j, const struct p2v_bootdisk *b)
{
	p2v_json_obj_begin(j, "boot");
	p2v_json_str(j, "firmware", p2v_boot_kind_name(p2v_bootdisk_kind(b)));
	p2v_json_bool(j, "bios_code", b->bios_code);
	p2v_json_bool(j, "bios_boot_partition", b->bios_boot_partition);
	p2v_json_str(j, "table_problem", b->table_problem);
	if (b->esp_number) {
		p2v_json_obj_begin(j, "esp");
		p2v_json_i64(j, "partition", b->esp_number);
		p2v_json_u64(j, "start_bytes", b->esp_start_bytes);
		p2v_json_u64(j, "size_bytes", b->esp_bytes);
		p2v_json_arr_begin(j, "efi_files");
		for (unsigned i = 0; i < b->n_efi_files; i++)
			p2v_json_str(j, NULL, b->efi_files[i]);
		p2v_json_arr_end(j);
		p2v_json_bool(j, "fallback", b->fallback);
		p2v_json_str(j, "problem", b->esp_why);
		p2v_json_obj_end(j);
	}
	p2v_json_obj_end(j);
}

static void json_parts(struct p2v_json *j, const struct p2v_disk *d)
{
	p2v_json_arr_begin(j, "partitions");
	for (unsigned i = 0; i < d->n_parts; i++) {
		const struct p2v_part *p = &d->parts[i];
		p2v_json_obj_begin(j, NULL);
		p2v_json_i64(j, "number", p->number);
		p2v_json_u64(j, "start_bytes", p->start_bytes);
		p2v_json_u64(j, "size_bytes", p->size_bytes);
		p2v_json_str(j, "type", p->part_type);
		p2v_json_bool(j, "extended", p->is_extended);
		p2v_json_str(j, "filesystem", p->fs_type);
		p2v_json_str(j, "uuid", p->uuid);
		p2v_json_str(j, "label", p->label);
		p2v_json_str(j, "method", p2v_method_name(p->method));
		p2v_json_u64(j, "copy_bytes", p->copy_bytes);
		p2v_json_u64(j, "fs_used_bytes", p->fs_used_bytes);
		p2v_json_str(j, "why", p->why);
		p2v_json_bool(j, "warning", p->warn);
		p2v_json_obj_end(j);
	}
	p2v_json_arr_end(j);
}

static void json_result(struct p2v_json *j, const struct p2v_capture_result *res)
{
	p2v_json_obj_begin(j, "output");
	p2v_json_str(j, "path", res->out_path);
	p2v_json_str(j, "format", res->out_format);
	p2v_json_u64(j, "allocated_bytes", res->allocated_bytes);
	p2v_json_obj_end(j);
	p2v_json_u64(j, "bytes_read", res->stats.data_bytes_read);
	p2v_json_u64(j, "bytes_written", res->stats.bytes_written);
	p2v_json_u64(j, "zero_bytes_skipped", res->stats.zero_bytes_skipped);
	p2v_json_u64(j, "hole_bytes_skipped", res->stats.hole_bytes_skipped);
	p2v_json_double(j, "wall_seconds", res->wall_s);
	p2v_json_double(j, "copy_seconds", res->copy_s);
	p2v_json_double(j, "throughput_bytes_per_second",
			res->copy_s > 0 ? (double)res->stats.data_bytes_read / res->copy_s : 0);
	p2v_json_arr_begin(j, "lost_ranges");
	for (size_t i = 0; res->lost && i < res->lost->n; i++) {
		p2v_json_obj_begin(j, NULL);
		p2v_json_u64(j, "offset_bytes", res->lost->v[i].off_bytes);
		p2v_json_u64(j, "length_bytes", res->lost->v[i].len_bytes);
		p2v_json_obj_end(j);
	}
	p2v_json_arr_end(j);
	p2v_json_str(j, "sha256", res->have_sha ? res->sha256 : "");
	p2v_json_bool(j, "verified", res->verified);
	p2v_json_u64(j, "verify_mismatch_bytes", res->verify_mismatch_bytes);
}

void p2v_report_json(FILE *f, const struct p2v_disk *d, uint64_t copy_bytes,
		     const struct p2v_capture_result *res)
{
	struct p2v_json j;

	p2v_json_init(&j, f);
	p2v_json_obj_begin(&j, NULL);
	json_source(&j, d);
	json_parts(&j, d);
	if (d->boot)
		json_boot(&j, d->boot);
	p2v_json_u64(&j, "total_copy_bytes", copy_bytes);
	if (res)
		json_result(&j, res);
	p2v_json_obj_end(&j);
	p2v_json_finish(&j);
}

void p2v_report_result_human(FILE *f, const struct p2v_capture_result *res, bool quiet)
{
	char a[32], b[32], c[32], d[32];

	if (quiet) { /* lost data is said even so */
		for (size_t i = 0; res->lost && i < res->lost->n; i++)
			p2v_warn("LOST (unreadable, filled with zeroes): bytes %llu..%llu (%llu bytes)",
				 (unsigned long long)res->lost->v[i].off_bytes,
				 (unsigned long long)(res->lost->v[i].off_bytes + res->lost->v[i].len_bytes - 1),
				 (unsigned long long)res->lost->v[i].len_bytes);
		return;
	}
	fprintf(f, "captured to %s (%s): read %s, wrote %s, output occupies %s; copy %.2f s (%s/s), total %.2f s\n",
		res->out_path, res->out_format,
		p2v_human_bytes(res->stats.data_bytes_read, a, sizeof(a)),
		p2v_human_bytes(res->stats.bytes_written, b, sizeof(b)),
		p2v_human_bytes(res->allocated_bytes, c, sizeof(c)), res->copy_s,
		p2v_human_bytes(res->copy_s > 0 ? (uint64_t)((double)res->stats.data_bytes_read / res->copy_s) : 0,
				d, sizeof(d)), res->wall_s);
	for (size_t i = 0; res->lost && i < res->lost->n; i++)
		fprintf(f, "LOST (unreadable, filled with zeroes): bytes %llu..%llu (%llu bytes)\n",
			(unsigned long long)res->lost->v[i].off_bytes,
			(unsigned long long)(res->lost->v[i].off_bytes + res->lost->v[i].len_bytes - 1),
			(unsigned long long)res->lost->v[i].len_bytes);
	if (res->have_sha)
		fprintf(f, "sha256 of the disk content (read back from the image): %s\n", res->sha256);
	if (res->verified)
		fprintf(f, "verify: %s\n", res->verify_mismatch_bytes ? "MISMATCH" : "image matches the source");
}
