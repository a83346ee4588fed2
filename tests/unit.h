/* Tiny assertion helpers for unit tests: a failed CHECK prints where and
 * why, and the test exits 1 at the end. */
#ifndef P2V_UNIT_H
#define P2V_UNIT_H
#include <stdio.h>
#include <stdlib.h>

static int unit_failures;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", \
	__FILE__, __LINE__, #cond); unit_failures++; } } while (0)
#define CHECK_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); if (_a != _b) { \
	fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, expected %s == %lld\n", __FILE__, \
	__LINE__, #a, _a, #b, _b); unit_failures++; } } while (0)
#define UNIT_DONE() do { if (unit_failures) { fprintf(stderr, "%d check(s) failed\n", \
	unit_failures); return 1; } printf("all checks passed\n"); return 0; } while (0)
#endif
