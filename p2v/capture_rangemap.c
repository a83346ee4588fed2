/* Range maps: the set of byte ranges of the disk that must be copied. */
#include "capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void p2v_rangemap_init(struct p2v_rangemap *m)
{
	memset(m, 0, sizeof(*m));
}

void p2v_rangemap_free(struct p2v_rangemap *m)
{
	free(m->v);
	memset(m, 0, sizeof(*m));
}

int p2v_rangemap_add(struct p2v_rangemap *m, uint64_t off_bytes, uint64_t len_bytes)
{
	uint64_t end;

	if (!len_bytes)
		return 0;
	if (__builtin_add_overflow(off_bytes, len_bytes, &end))
		return -ERANGE;
	/* Extend the last range when ranges arrive in order (the common case). */
	if (m->n && m->v[m->n - 1].off_bytes <= off_bytes &&
	    m->v[m->n - 1].off_bytes + m->v[m->n - 1].len_bytes >= off_bytes) {
		struct p2v_range *last = &m->v[m->n - 1];
		if (end > last->off_bytes + last->len_bytes)
			last->len_bytes = end - last->off_bytes;
		return 0;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct p2v_range *v = reallocarray(m->v, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n].off_bytes = off_bytes;
	m->v[m->n].len_bytes = len_bytes;
	m->n++;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct p2v_range *x = a, *y = b;

	if (x->off_bytes != y->off_bytes)
		return x->off_bytes < y->off_bytes ? -1 : 1;
	return 0;
}

void p2v_rangemap_normalize(struct p2v_rangemap *m)
{
	size_t w = 0;

	if (!m->n)
		return;
	qsort(m->v, m->n, sizeof(m->v[0]), range_cmp);
	for (size_t i = 1; i < m->n; i++) {
		struct p2v_range *cur = &m->v[w];
		uint64_t cur_end = cur->off_bytes + cur->len_bytes;
		uint64_t end = m->v[i].off_bytes + m->v[i].len_bytes;

		if (m->v[i].off_bytes <= cur_end) {
			if (end > cur_end)
				cur->len_bytes = end - cur->off_bytes;
		} else {
			m->v[++w] = m->v[i];
		}
	}
	m->n = w + 1;
}

uint64_t p2v_rangemap_bytes(const struct p2v_rangemap *m)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < m->n; i++)
		sum += m->v[i].len_bytes;
	return sum;
}

static int push_extent(struct imgfmt_extent **v, size_t *n, size_t *cap, uint64_t off,
		       uint64_t len, enum imgfmt_extent_type type)
{
	if (!len)
		return 0;
	if (*n && (*v)[*n - 1].type == type &&
	    (*v)[*n - 1].offset_bytes + (*v)[*n - 1].length_bytes == off) {
		(*v)[*n - 1].length_bytes += len;
		return 0;
	}
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct imgfmt_extent *nv = reallocarray(*v, c, sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[*n] = (struct imgfmt_extent){ .offset_bytes = off, .length_bytes = len, .type = type };
	(*n)++;
	return 0;
}

int p2v_rangemap_to_extents(const struct p2v_rangemap *m, uint64_t disk_bytes,
			    uint32_t align_bytes, struct imgfmt_extent **out, size_t *n_out)
{
	struct imgfmt_extent *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t pos = 0;
	int r = 0;

	if (!align_bytes || (align_bytes & (align_bytes - 1)))
		return -EINVAL;
	for (size_t i = 0; i < m->n && pos < disk_bytes && r == 0; i++) {
		uint64_t start = m->v[i].off_bytes & ~(uint64_t)(align_bytes - 1);
		uint64_t end = m->v[i].off_bytes + m->v[i].len_bytes;

		if (end < disk_bytes)
			end = (end + align_bytes - 1) & ~(uint64_t)(align_bytes - 1);
		if (end > disk_bytes)
			end = disk_bytes;
		if (start < pos)
			start = pos;
		if (end <= start)
			continue;
		r = push_extent(&v, &n, &cap, pos, start - pos, IMGFMT_EXTENT_HOLE);
		if (r == 0)
			r = push_extent(&v, &n, &cap, start, end - start, IMGFMT_EXTENT_DATA);
		pos = end;
	}
	if (r == 0)
		r = push_extent(&v, &n, &cap, pos, disk_bytes - pos, IMGFMT_EXTENT_HOLE);
	if (r < 0) {
		free(v);
		return r;
	}
	*out = v;
	*n_out = n;
	return 0;
}
