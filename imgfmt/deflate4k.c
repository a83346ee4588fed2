/* A raw deflate encoder (RFC 1951) whose matches never reach further back
 * than 4 KiB: what qcow2 "zlib" clusters must be, since QEMU inflates them
 * with windowBits -12.
 *
 * Why our own: zlib level 6 (what QEMU writes) is slow; ISA-L limits its
 * window but parses greedily and writes 6-8% more; libdeflate cannot limit
 * its window.  This one is zlib's lazy hash-chain parse made cheap by the
 * small window (a 4096-entry chain ring and an 8192-entry head table stay in
 * L1/L2 cache, matches compared 8 bytes at a time), with dynamic Huffman
 * blocks whose boundaries follow changes in the symbol statistics.
 *
 * Everything lives in one heap block per call: no global state. */
#include "driver.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define D4K_WINDOW 4096u             /* ring size; distances stay below it */
#define D4K_MAX_DIST (D4K_WINDOW - 1u)
#define D4K_HASH4_BITS 14            /* chains link positions with equal 4 bytes */
#define D4K_HASH3_BITS 12            /* the latest position of each 3 bytes */
#define D4K_MIN_MATCH 3u
#define D4K_MAX_MATCH 258u
#define D4K_BLOCK_SYMS 32768u        /* symbols buffered per block at most */
#define D4K_NLITLEN 286
#define D4K_NLITLEN_FIXED 288          /* the fixed code has two more */
#define D4K_NDIST 30
#define D4K_NCL 19
#define D4K_MAX_BITS 15
#define D4K_MAX_CL_BITS 7

/* zlib level 6's lazy parse with half its chain, which the 4-byte hash
 * keeps to true candidates: measured on /usr files in 64 KiB clusters,
 * smaller than zlib level 6 and twice as fast. */
#define D4K_MAX_CHAIN 64u /* chain links followed per search */
#define D4K_GOOD_LEN 8u   /* quarter the chain once a match this long is held */
#define D4K_LAZY_LEN 16u  /* do not look for a better match past this length */
#define D4K_NICE_LEN 128u /* stop searching at this length */

struct d4k_bits {
	uint8_t *p, *end;
	uint64_t acc;
	unsigned n_bits;
	bool full;
};

struct d4k_tree {
	uint16_t freq[D4K_NLITLEN_FIXED];
	uint8_t len[D4K_NLITLEN_FIXED];
	uint16_t code[D4K_NLITLEN_FIXED]; /* bit-reversed, ready to emit LSB first */
};

/* Block splitting: symbols fall into a few classes (literals by their top
 * three bits, short and long matches); every D4K_SPLIT_STEP symbols the
 * classes' share in the newest symbols is compared with the block so far,
 * and a clear change ends the block so each part gets its own code. */
#define D4K_SPLIT_CLASSES 10
#define D4K_SPLIT_STEP 512u
#define D4K_SPLIT_MIN_SYMS 2048u

struct d4k_split {
	uint32_t seen[D4K_SPLIT_CLASSES], fresh[D4K_SPLIT_CLASSES];
	uint32_t n_seen, n_fresh;
};

struct d4k {
	int32_t head[1u << D4K_HASH4_BITS];
	int32_t head3[1u << D4K_HASH3_BITS];
	int32_t prev[D4K_WINDOW];
	uint16_t sym_litlen[D4K_BLOCK_SYMS]; /* literal byte, or 256 + length */
	uint16_t sym_dist[D4K_BLOCK_SYMS];   /* 0 for a literal */
	unsigned n_syms;
	struct d4k_split split;
	struct d4k_tree lit, dist;
	struct d4k_bits out;
	const uint8_t *in;
	size_t in_bytes;
};

/* ---- bit output ---- */

static void bits_put(struct d4k_bits *b, uint32_t v, unsigned n)
{
	b->acc |= (uint64_t)v << b->n_bits;
	b->n_bits += n;
	if (b->n_bits < 32)
		return;
	if (b->end - b->p >= 4) {
		for (unsigned i = 0; i < 4; i++)
			b->p[i] = (uint8_t)(b->acc >> (8 * i));
		b->p += 4;
	} else {
		b->full = true;
	}
	b->acc >>= 32;
	b->n_bits -= 32;
}

static void bits_flush(struct d4k_bits *b)
{
	while (b->n_bits > 0 && !b->full) {
		if (b->p == b->end) {
			b->full = true;
			break;
		}
		*b->p++ = (uint8_t)b->acc;
		b->acc >>= 8;
		b->n_bits = b->n_bits > 8 ? b->n_bits - 8 : 0;
	}
}

/* ---- length and distance symbols ---- */

static unsigned log2_u32(uint32_t x)
{
	return 31u - (unsigned)__builtin_clz(x);
}

/* length 3..258 -> code 257..285, extra bit count and value */
static unsigned len_code(unsigned len, unsigned *extra_bits, unsigned *extra)
{
	unsigned x = len - 3, nb;

	if (len == 258) {
		*extra_bits = 0;
		*extra = 0;
		return 285;
	}
	if (x < 8) {
		*extra_bits = 0;
		*extra = 0;
		return 257 + x;
	}
	nb = log2_u32(x);
	*extra_bits = nb - 2;
	*extra = x & ((1u << (nb - 2)) - 1);
	return 257 + 4 * (nb - 1) + ((x >> (nb - 2)) & 3);
}

/* distance 1..32768 -> code 0..29, extra bit count and value */
static unsigned dist_code(unsigned dist, unsigned *extra_bits, unsigned *extra)
{
	unsigned x = dist - 1, nb;

	if (x < 4) {
		*extra_bits = 0;
		*extra = 0;
		return x;
	}
	nb = log2_u32(x);
	*extra_bits = nb - 1;
	*extra = x & ((1u << (nb - 1)) - 1);
	return 2 * nb + ((x >> (nb - 1)) & 1);
}

/* ---- Huffman code lengths ---- */

/* One stable counting pass of an LSD radix sort: in[0..k) to out by the
 * byte of freq[] at shift. */
static void radix_pass(const uint16_t *freq, const uint16_t *in, uint16_t *out,
		       unsigned k, unsigned shift)
{
	unsigned start[257] = {0};

	for (unsigned i = 0; i < k; i++)
		start[((freq[in[i]] >> shift) & 0xffu) + 1]++;
	for (unsigned b = 1; b <= 256; b++)
		start[b] += start[b - 1];
	for (unsigned i = 0; i < k; i++)
		out[start[(freq[in[i]] >> shift) & 0xffu]++] = in[i];
}

/* The symbols of freq[0..n) that occur, by ascending frequency, ties in
 * symbol order; returns their number. A radix sort on the 16-bit counts:
 * an insertion sort of up to 286 symbols was 15% of flush_block's time. */
static unsigned sort_by_freq(const uint16_t *freq, unsigned n, uint16_t *order)
{
	uint16_t tmp[D4K_NLITLEN];
	unsigned k = 0;

	for (unsigned s = 0; s < n; s++)
		if (freq[s])
			order[k++] = (uint16_t)s;
	radix_pass(freq, order, tmp, k, 0);
	radix_pass(freq, tmp, order, k, 8);
	return k;
}

/* Moffat and Katajainen's in-place minimum-redundancy code: a[] holds the
 * ascending weights of n >= 2 leaves and receives their code lengths. */
static void min_redundancy(uint32_t *a, unsigned n)
{
	unsigned root = 0, leaf = 2, next;
	int i;
	unsigned avail = 1, used = 0, depth = 0, out = n - 1;
	int r;

	a[0] += a[1];
	for (next = 1; next < n - 1; next++) {
		if (leaf >= n || a[root] < a[leaf]) {
			a[next] = a[root];
			a[root++] = next;
		} else {
			a[next] = a[leaf++];
		}
		if (leaf >= n || (root < next && a[root] < a[leaf])) {
			a[next] += a[root];
			a[root++] = next;
		} else {
			a[next] += a[leaf++];
		}
	}
	a[n - 2] = 0;
	for (i = (int)n - 3; i >= 0; i--)
		a[i] = a[a[i]] + 1;
	r = (int)n - 2;
	while (avail > 0) {
		while (r >= 0 && a[r] == depth) {
			used++;
			r--;
		}
		while (avail > used) {
			a[out--] = depth;
			avail--;
		}
		avail = 2 * used;
		depth++;
		used = 0;
	}
}

/* Kraft sum in units of 2^-max_bits. */
static uint32_t kraft(const uint8_t *len, const uint16_t *order, unsigned k, unsigned max_bits)
{
	uint32_t sum = 0;

	for (unsigned i = 0; i < k; i++)
		sum += 1u << (max_bits - len[order[i]]);
	return sum;
}

/* Lengths clamped to max_bits made a valid complete code again: lengthen the
 * rarest of the deepest short codes while over-subscribed, then shorten the
 * commonest of the deepest codes while incomplete. */
static void limit_lengths(uint8_t *len, const uint16_t *order, unsigned k, unsigned max_bits)
{
	uint32_t full = 1u << max_bits, sum = kraft(len, order, k, max_bits);

	while (sum > full) {
		unsigned best = k;

		for (unsigned i = 0; i < k; i++)
			if (len[order[i]] < max_bits && (best == k || len[order[i]] > len[order[best]]))
				best = i;
		if (best == k)
			return; /* cannot happen: k < 2^max_bits */
		len[order[best]]++;
		sum -= 1u << (max_bits - len[order[best]]);
	}
	while (sum < full) {
		unsigned best = k;

		for (unsigned i = k; i-- > 0;) {
			unsigned l = len[order[i]];

			if (l > 1 && (1u << (max_bits - l)) <= full - sum &&
			    (best == k || l > len[order[best]]))
				best = i;
		}
		if (best == k)
			return; /* cannot happen: the deepest code always fits */
		sum += 1u << (max_bits - len[order[best]]);
		len[order[best]]--;
	}
}

/* Code lengths for freq[0..n), a complete code of at least two symbols. */
static void build_lengths(uint16_t *freq, uint8_t *len, unsigned n, unsigned max_bits)
{
	uint16_t order[D4K_NLITLEN];
	uint32_t w[D4K_NLITLEN] = {0};
	unsigned k = 0, clamped = 0;

	for (unsigned s = 0; s < n; s++)
		k += freq[s] != 0;
	for (unsigned s = 0; s < 2 && k < 2; s++)
		if (!freq[s]) {
			freq[s] = 1;
			k++;
		}
	k = sort_by_freq(freq, n, order);
	for (unsigned i = 0; i < k; i++)
		w[i] = freq[order[i]];
	min_redundancy(w, k);
	memset(len, 0, n);
	for (unsigned i = 0; i < k; i++) {
		len[order[i]] = (uint8_t)(w[i] > max_bits ? max_bits : w[i]);
		clamped |= w[i] > max_bits;
	}
	if (clamped)
		limit_lengths(len, order, k, max_bits);
}

/* Canonical codes from lengths, bit-reversed for LSB-first output. */
static void build_codes(const uint8_t *len, uint16_t *code, unsigned n)
{
	uint16_t count[D4K_MAX_BITS + 1] = {0}, next[D4K_MAX_BITS + 2];
	unsigned c = 0;

	for (unsigned s = 0; s < n; s++)
		count[len[s]]++;
	count[0] = 0;
	for (unsigned b = 1; b <= D4K_MAX_BITS; b++) {
		c = (c + count[b - 1]) << 1;
		next[b] = (uint16_t)c;
	}
	for (unsigned s = 0; s < n; s++) {
		unsigned v, r = 0;

		if (!len[s])
			continue;
		v = next[len[s]]++;
		for (unsigned b = 0; b < len[s]; b++)
			r |= ((v >> b) & 1u) << (len[s] - 1 - b);
		code[s] = (uint16_t)r;
	}
}

/* ---- block output ---- */

struct d4k_header {
	uint8_t all_len[D4K_NLITLEN + D4K_NDIST];
	uint8_t rle_sym[D4K_NLITLEN + D4K_NDIST];
	uint8_t rle_extra[D4K_NLITLEN + D4K_NDIST];
	unsigned n_rle, n_lit, n_dist, n_cl;
	struct d4k_tree cl;
};

static const uint8_t d4k_cl_order[D4K_NCL] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
					      11, 4, 12, 3, 13, 2, 14, 1, 15};
/* extra bits after code-length symbols 16 (repeat), 17 and 18 (zeros) */
static const uint8_t d4k_cl_extra_bits[D4K_NCL] = {[16] = 2, [17] = 3, [18] = 7};

static void rle_push(struct d4k_header *h, unsigned sym, unsigned extra)
{
	h->rle_sym[h->n_rle] = (uint8_t)sym;
	h->rle_extra[h->n_rle++] = (uint8_t)extra;
	h->cl.freq[sym]++;
}

/* Run-length code the litlen and distance lengths (symbols 16, 17, 18). */
static void rle_lengths(struct d4k_header *h)
{
	unsigned n = h->n_lit + h->n_dist;

	for (unsigned i = 0; i < n;) {
		unsigned l = h->all_len[i], run = 1;

		while (i + run < n && h->all_len[i + run] == l)
			run++;
		i += run;
		if (l == 0) {
			for (; run >= 11; run -= run > 138 ? 138 : run)
				rle_push(h, 18, (run > 138 ? 138 : run) - 11);
			if (run >= 3) {
				rle_push(h, 17, run - 3);
				run = 0;
			}
		} else {
			rle_push(h, l, 0);
			for (run--; run >= 3; run -= run > 6 ? 6 : run)
				rle_push(h, 16, (run > 6 ? 6 : run) - 3);
		}
		while (run-- > 0)
			rle_push(h, l, 0);
	}
}

static void build_header(struct d4k *z, struct d4k_header *h)
{
	memset(h, 0, sizeof(*h));
	for (h->n_lit = D4K_NLITLEN; h->n_lit > 257 && !z->lit.len[h->n_lit - 1]; h->n_lit--)
		;
	for (h->n_dist = D4K_NDIST; h->n_dist > 1 && !z->dist.len[h->n_dist - 1]; h->n_dist--)
		;
	memcpy(h->all_len, z->lit.len, h->n_lit);
	memcpy(h->all_len + h->n_lit, z->dist.len, h->n_dist);
	rle_lengths(h);
	build_lengths(h->cl.freq, h->cl.len, D4K_NCL, D4K_MAX_CL_BITS);
	build_codes(h->cl.len, h->cl.code, D4K_NCL);
	for (h->n_cl = D4K_NCL; h->n_cl > 4 && !h->cl.len[d4k_cl_order[h->n_cl - 1]]; h->n_cl--)
		;
}

static void put_header(struct d4k_bits *b, const struct d4k_header *h, bool last)
{
	bits_put(b, last ? 1u : 0u, 1);
	bits_put(b, 2, 2); /* dynamic Huffman */
	bits_put(b, h->n_lit - 257, 5);
	bits_put(b, h->n_dist - 1, 5);
	bits_put(b, h->n_cl - 4, 4);
	for (unsigned i = 0; i < h->n_cl; i++)
		bits_put(b, h->cl.len[d4k_cl_order[i]], 3);
	for (unsigned i = 0; i < h->n_rle; i++) {
		unsigned s = h->rle_sym[i];

		bits_put(b, h->cl.code[s], h->cl.len[s]);
		if (d4k_cl_extra_bits[s])
			bits_put(b, h->rle_extra[i], d4k_cl_extra_bits[s]);
	}
}

static void put_symbols(struct d4k *z)
{
	struct d4k_bits *b = &z->out;

	for (unsigned i = 0; i < z->n_syms; i++) {
		unsigned ll = z->sym_litlen[i], eb, ev, c;

		if (!z->sym_dist[i]) {
			bits_put(b, z->lit.code[ll], z->lit.len[ll]);
			continue;
		}
		c = len_code(ll - 256, &eb, &ev);
		bits_put(b, z->lit.code[c], z->lit.len[c]);
		if (eb)
			bits_put(b, ev, eb);
		c = dist_code(z->sym_dist[i], &eb, &ev);
		bits_put(b, z->dist.code[c], z->dist.len[c]);
		if (eb)
			bits_put(b, ev, eb);
	}
	bits_put(b, z->lit.code[256], z->lit.len[256]);
}

/* RFC 1951's fixed code lengths. */
static unsigned fixed_lit_len(unsigned s)
{
	return s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
}

#define D4K_FIXED_DIST_LEN 5u

/* Bits the block's symbols take under its own code (fixed = false) or the
 * fixed one; extra bits, the same under both, left out. */
static uint64_t symbol_bits(const struct d4k *z, bool fixed)
{
	uint64_t bits = 0;

	for (unsigned s = 0; s < D4K_NLITLEN; s++)
		bits += (uint64_t)z->lit.freq[s] * (fixed ? fixed_lit_len(s) : z->lit.len[s]);
	for (unsigned s = 0; s < D4K_NDIST; s++)
		bits += (uint64_t)z->dist.freq[s] * (fixed ? D4K_FIXED_DIST_LEN : z->dist.len[s]);
	return bits;
}

static uint64_t header_bits(const struct d4k_header *h)
{
	uint64_t bits = 3 + 5 + 5 + 4 + 3 * h->n_cl;

	for (unsigned i = 0; i < h->n_rle; i++)
		bits += h->cl.len[h->rle_sym[i]] + d4k_cl_extra_bits[h->rle_sym[i]];
	return bits;
}

/* The fixed code, for blocks too small to carry their own. */
static void fixed_code(struct d4k *z)
{
	for (unsigned s = 0; s < D4K_NLITLEN_FIXED; s++)
		z->lit.len[s] = (uint8_t)fixed_lit_len(s);
	memset(z->dist.len, D4K_FIXED_DIST_LEN, D4K_NDIST);
}

static void flush_block(struct d4k *z, bool last)
{
	struct d4k_header h;

	z->lit.freq[256] = 1;
	z->lit.len[286] = z->lit.len[287] = 0;
	build_lengths(z->lit.freq, z->lit.len, D4K_NLITLEN, D4K_MAX_BITS);
	build_lengths(z->dist.freq, z->dist.len, D4K_NDIST, D4K_MAX_BITS);
	build_header(z, &h);
	if (3 + symbol_bits(z, true) < header_bits(&h) + symbol_bits(z, false)) {
		fixed_code(z);
		bits_put(&z->out, last ? 1u : 0u, 1);
		bits_put(&z->out, 1, 2); /* fixed Huffman */
	} else {
		put_header(&z->out, &h, last);
	}
	build_codes(z->lit.len, z->lit.code, D4K_NLITLEN_FIXED);
	build_codes(z->dist.len, z->dist.code, D4K_NDIST);
	put_symbols(z);
	z->n_syms = 0;
	memset(&z->split, 0, sizeof(z->split));
	memset(z->lit.freq, 0, sizeof(z->lit.freq));
	memset(z->dist.freq, 0, sizeof(z->dist.freq));
}

static void observe(struct d4k_split *sp, unsigned cls)
{
	sp->fresh[cls]++;
	sp->n_fresh++;
}

/* True when the newest symbols differ enough from the block so far that a
 * new block should start before them. */
static bool split_due(struct d4k_split *sp, unsigned block_syms)
{
	uint64_t delta = 0, cutoff;

	if (sp->n_fresh < D4K_SPLIT_STEP)
		return false;
	if (sp->n_seen && block_syms >= D4K_SPLIT_MIN_SYMS) {
		for (unsigned i = 0; i < D4K_SPLIT_CLASSES; i++) {
			int64_t expect = (int64_t)sp->seen[i] * sp->n_fresh;
			int64_t got = (int64_t)sp->fresh[i] * sp->n_seen;

			delta += (uint64_t)(got > expect ? got - expect : expect - got);
		}
		cutoff = (uint64_t)sp->n_fresh * 200 / 512 * sp->n_seen;
		if (delta >= cutoff)
			return true;
	}
	for (unsigned i = 0; i < D4K_SPLIT_CLASSES; i++) {
		sp->seen[i] += sp->fresh[i];
		sp->fresh[i] = 0;
	}
	sp->n_seen += sp->n_fresh;
	sp->n_fresh = 0;
	return false;
}

static void tally_literal(struct d4k *z, uint8_t c)
{
	observe(&z->split, c >> 5);
	z->sym_litlen[z->n_syms] = c;
	z->sym_dist[z->n_syms++] = 0;
	z->lit.freq[c]++;
}

static void tally_match(struct d4k *z, unsigned len, unsigned dist)
{
	unsigned eb, ev;

	observe(&z->split, len < 9 ? 8 : 9);
	z->sym_litlen[z->n_syms] = (uint16_t)(256 + len);
	z->sym_dist[z->n_syms++] = (uint16_t)dist;
	z->lit.freq[len_code(len, &eb, &ev)]++;
	z->dist.freq[dist_code(dist, &eb, &ev)]++;
}

/* ---- match finding ---- */

static uint32_t load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint32_t hash3(uint32_t v)
{
	return ((v & 0xffffffu) * 0x9E3779B1u) >> (32 - D4K_HASH3_BITS);
}

static uint32_t hash4(uint32_t v)
{
	return (v * 0x9E3779B1u) >> (32 - D4K_HASH4_BITS);
}

/* Links pos into its 4-byte chain and makes it the latest of its 3 bytes;
 * returns the position that was the latest before (or -1).  Positions
 * within 4 bytes of the end are never inserted (nor searched). */
static int32_t insert(struct d4k *z, size_t pos)
{
	uint32_t v, h;
	int32_t before3;

	if (pos + 4 > z->in_bytes)
		return -1;
	v = load32(z->in + pos);
	h = hash4(v);
	z->prev[pos & (D4K_WINDOW - 1)] = z->head[h];
	z->head[h] = (int32_t)pos;
	h = hash3(v);
	before3 = z->head3[h];
	z->head3[h] = (int32_t)pos;
	return before3;
}

static unsigned match_len(const uint8_t *a, const uint8_t *b, unsigned max)
{
	unsigned n = 0;

	while (n + 8 <= max) {
		uint64_t x, y;

		memcpy(&x, a + n, 8);
		memcpy(&y, b + n, 8);
		if (x != y)
			return n + (unsigned)__builtin_ctzll(x ^ y) / 8;
		n += 8;
	}
	while (n < max && a[n] == b[n])
		n++;
	return n;
}

/* A 3-byte match at the latest position with the same 3 bytes, if any. */
static unsigned match3(struct d4k *z, size_t pos, int32_t cand3, unsigned *dist)
{
	size_t limit = pos > D4K_MAX_DIST ? pos - D4K_MAX_DIST : 0;

	if (cand3 < 0 || (size_t)cand3 < limit || (size_t)cand3 >= pos ||
	    (load32(z->in + cand3) & 0xffffffu) != (load32(z->in + pos) & 0xffffffu))
		return 0;
	*dist = (unsigned)(pos - (size_t)cand3);
	return 3;
}

/* Longest match for pos better than have (>= 2), its distance in *dist:
 * positions sharing pos's first 4 bytes are walked along the hash chain, a
 * candidate compared in full only if its 4 bytes ending at the length to
 * beat agree; cand3 (the previous position with pos's first 3 bytes) gives
 * a 3-byte match when no longer one exists. */
static unsigned longest_match(struct d4k *z, size_t pos, unsigned have, int32_t cand3, unsigned *dist)
{
	const uint8_t *cur = z->in + pos;
	size_t limit = pos > D4K_MAX_DIST ? pos - D4K_MAX_DIST : 0;
	size_t left = z->in_bytes - pos;
	unsigned max = left < D4K_MAX_MATCH ? (unsigned)left : D4K_MAX_MATCH;
	unsigned chain = D4K_MAX_CHAIN, best = have > 3 ? have : 3;
	int32_t cand = z->prev[pos & (D4K_WINDOW - 1)];
	uint32_t first, tail;

	if (max <= have || max < 4)
		return 0;
	if (have >= D4K_GOOD_LEN)
		chain >>= 2;
	first = load32(cur);
	tail = load32(cur + best - 3);
	while (cand >= 0 && (size_t)cand >= limit && chain-- > 0) {
		const uint8_t *m = z->in + cand;
		int32_t next = z->prev[(size_t)cand & (D4K_WINDOW - 1)];

		if (load32(m + best - 3) == tail && load32(m) == first) {
			unsigned l = match_len(m, cur, max);

			if (l > best) {
				best = l;
				*dist = (unsigned)(pos - (size_t)cand);
				if (l >= D4K_NICE_LEN || l == max)
					break;
				tail = load32(cur + best - 3);
			}
		}
		if (next >= cand)
			break; /* a recycled ring slot: the chain ends here */
		cand = next;
	}
	if (best > 3 && best > have)
		return best;
	return have < 3 ? match3(z, pos, cand3, dist) : 0;
}

/* zlib's lazy evaluation: a match is taken only if the next position does
 * not start a longer one. */
static void parse(struct d4k *z)
{
	unsigned prev_len = 0, prev_dist = 0;
	bool have_prev = false;

	for (size_t pos = 0; pos < z->in_bytes;) {
		unsigned len = 0, dist = 0;
		int32_t cand3 = insert(z, pos);

		if (prev_len < D4K_LAZY_LEN)
			len = longest_match(z, pos, prev_len >= D4K_MIN_MATCH ? prev_len : D4K_MIN_MATCH - 1,
					    cand3, &dist);
		if (prev_len >= D4K_MIN_MATCH && len <= prev_len) {
			tally_match(z, prev_len, prev_dist);
			for (size_t p = pos + 1; p < pos - 1 + prev_len; p++)
				insert(z, p);
			pos = pos - 1 + prev_len;
			prev_len = 0;
			have_prev = false;
		} else {
			if (have_prev)
				tally_literal(z, z->in[pos - 1]);
			have_prev = true;
			prev_len = len;
			prev_dist = dist;
			pos++;
		}
		if (z->n_syms >= D4K_BLOCK_SYMS - 2 || split_due(&z->split, z->n_syms)) {
			flush_block(z, false);
			if (z->out.full)
				return; /* will not fit: the caller stores the data */
		}
	}
	if (have_prev)
		tally_literal(z, z->in[z->in_bytes - 1]);
}

long imgfmt_deflate_4k(const void *in, size_t in_bytes, void *out, size_t out_cap)
{
	struct d4k *z = malloc(sizeof(*z));
	long n;

	if (!z)
		return -ENOMEM;
	memset(z->head, 0xff, sizeof(z->head));
	memset(z->head3, 0xff, sizeof(z->head3));
	memset(z->prev, 0xff, sizeof(z->prev));
	memset(&z->lit, 0, sizeof(z->lit));
	memset(&z->dist, 0, sizeof(z->dist));
	z->n_syms = 0;
	memset(&z->split, 0, sizeof(z->split));
	z->in = in;
	z->in_bytes = in_bytes;
	z->out = (struct d4k_bits){.p = out, .end = (uint8_t *)out + out_cap};
	parse(z);
	flush_block(z, true);
	bits_flush(&z->out);
	n = z->out.full ? -ENOSPC : (long)(z->out.p - (uint8_t *)out);
	free(z);
	return n;
}
