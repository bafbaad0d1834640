/*
 * test_tokens.c -- unit tests for src/router/tokens.c: the tunnel tokens file
 * (tokens, services, "*", comments), the line its errors name, loading
 * from a path, and the verdicts tokens_check() gives.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokens.h"

static struct tokens *
parse_tokens(const char *text)
{
	struct tokens *t;
	char err[256];

	if (tokens_parse(text, strlen(text), &t, err, sizeof err) < 0)
		fail_msg("tokens_parse: %s", err);
	return t;
}

static void
test_tokens_file_lists_tokens_and_services(void **state)
{
	struct tokens *t = parse_tokens("# services\n\nabc api,web   # two\n"
	                                "  def *\nghi= web\n");

	(void)state;
	assert_int_equal(tokens_count(t), 3);
	assert_int_equal(tokens_service_count(t), 2);
	assert_string_equal(tokens_service_at(t, 0), "api");
	assert_string_equal(tokens_service_at(t, 1), "web");
	assert_int_equal(tokens_check(t, "abc", "api"), TOKENS_ALLOWED);
	assert_int_equal(tokens_check(t, "abc", "web"), TOKENS_ALLOWED);
	assert_int_equal(tokens_check(t, "abc", "other"), TOKENS_FORBIDDEN);
	assert_int_equal(tokens_check(t, "abc", ""), TOKENS_FORBIDDEN);
	assert_int_equal(tokens_check(t, "def", "anything"), TOKENS_ALLOWED);
	assert_int_equal(tokens_check(t, "def", ""), TOKENS_ALLOWED);
	assert_int_equal(tokens_check(t, "ab", "api"), TOKENS_UNKNOWN);
	assert_int_equal(tokens_check(t, "abcd", "api"), TOKENS_UNKNOWN);
	assert_int_equal(tokens_check(t, "", "api"), TOKENS_UNKNOWN);
	tokens_unref(t);
}

static void
test_tokens_file_errors_name_the_line(void **state)
{
	static const char *const bad[][2] = {
		{ "abc\n", "line 1" },
		{ "ok api\nabc api extra\n", "line 2" },
		{ "a\"b api\n", "bearer" },
		{ "abc API\n", "DNS-style" },
		{ "abc api,\n", "DNS-style" },
		{ "abc api\nabc web\n", "twice" },
	};
	struct tokens *t;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(tokens_parse(bad[i][0], strlen(bad[i][0]), &t, err, sizeof err),
		                 -EINVAL);
		assert_null(t);
		if (strstr(err, bad[i][1]) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i][1]);
	}
}

static void
test_tokens_load_reads_a_file_and_reports_a_missing_one(void **state)
{
	char path[] = "/tmp/ptth-tokens-XXXXXX";
	int fd = mkstemp(path);
	struct tokens *t;
	char err[256];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "tok svc\n", 8), 8);
	close(fd);
	assert_int_equal(tokens_load(path, &t, err, sizeof err), 0);
	assert_int_equal(tokens_check(t, "tok", "svc"), TOKENS_ALLOWED);
	tokens_unref(t);
	unlink(path);
	assert_int_equal(tokens_load(path, &t, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, path));
}

static void
test_tokens_star_token_may_serve_the_default_pool_and_any_service(void **state)
{
	struct tokens *t = parse_tokens("s api\nstar *\n");

	(void)state;
	assert_int_equal(tokens_check(t, "star", ""), TOKENS_ALLOWED);
	assert_int_equal(tokens_check(t, "star", "zzz"), TOKENS_ALLOWED);
	assert_int_equal(tokens_check(t, "s", ""), TOKENS_FORBIDDEN);
	assert_int_equal(tokens_service_count(t), 1);
	tokens_unref(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokens_file_lists_tokens_and_services),
		cmocka_unit_test(test_tokens_file_errors_name_the_line),
		cmocka_unit_test(test_tokens_load_reads_a_file_and_reports_a_missing_one),
		cmocka_unit_test(test_tokens_star_token_may_serve_the_default_pool_and_any_service),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
