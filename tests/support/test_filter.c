/*
 * test_filter.c -- run one test, or a few, out of any suite.
 *
 * Owns:    nothing; it hands a pattern to cmocka before main() runs.
 * Threads: runs once, on the main thread, before main().
 * Locks:   none.
 * Interface:
 *   - linked into every suite, like the rest of tests/support/;
 *   - PTTH_TEST_FILTER=WORD runs only the tests whose names contain WORD
 *     (`make test TESTS=queue FILTER=pop` sets it);
 *   - a value with `*` or `?` is taken as cmocka's own glob pattern.
 * Tutorial: "Running the demo".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* The pattern must outlive main(): cmocka keeps the pointer. */
static char test_filter_pattern[256];

/* Runs before main() in every suite (a GCC constructor), so no suite's
 * main() has to remember the filter. */
__attribute__((constructor)) static void
test_filter_apply(void)
{
	const char *word = getenv("PTTH_TEST_FILTER");

	if (word == NULL || word[0] == '\0')
		return;
	if (strpbrk(word, "*?") != NULL)
		snprintf(test_filter_pattern, sizeof(test_filter_pattern), "%s", word);
	else
		snprintf(test_filter_pattern, sizeof(test_filter_pattern), "*%s*", word);
	cmocka_set_test_filter(test_filter_pattern);
}
