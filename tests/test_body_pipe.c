/*
 * test_body_pipe.c -- unit tests for src/common/body_pipe.c: the cap, byte order
 * across wrap-around and growth, the unreported count, the end mark and
 * zero-length calls.
 *
 * Bytes written are taken from a reference sequence (ref_byte), so any
 * read can be checked against the positions it should have come from.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "body_pipe.h"

/* A ring size that the first allocation (BODY_PIPE_MIN_SIZE in
 * body_pipe.c) reaches by doubling. */
#define FIRST_SIZE 4096
/* Most a few bytes of body may cost (BODY_PIPE_MIN_SIZE). */
#define SMALL_BODY_RING 256

/* The byte at position pos of the reference stream: not periodic with
 * any small ring size, so a misplaced chunk is caught. */
static unsigned char
ref_byte(size_t pos)
{
	return (unsigned char)(((pos * 2654435761u) >> 13) ^ (pos / 251));
}

static void
ref_fill(unsigned char *dst, size_t pos, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = ref_byte(pos + i);
}

/* Writes len reference bytes starting at *pos; advances *pos by what
 * the pipe took, which is returned. */
static ssize_t
write_ref(struct body_pipe *p, size_t *pos, size_t len)
{
	unsigned char buf[8192];
	ssize_t n;

	assert_true(len <= sizeof buf);
	ref_fill(buf, *pos, len);
	n = body_pipe_write(p, buf, len);
	if (n > 0)
		*pos += (size_t)n;
	return n;
}

/* Reads up to len bytes, checks them against the reference stream at
 * *pos, advances *pos and returns how many were read. */
static size_t
read_ref(struct body_pipe *p, size_t *pos, size_t len)
{
	unsigned char got[8192], want[8192];
	size_t n;

	assert_true(len <= sizeof got);
	n = body_pipe_read(p, got, len);
	ref_fill(want, *pos, n);
	assert_memory_equal(got, want, n);
	*pos += n;
	return n;
}

static void
test_body_pipe_starts_empty_with_all_space_free(void **state)
{
	struct body_pipe p;
	char buf[16];

	(void)state;
	body_pipe_init(&p, 100);
	assert_int_equal(body_pipe_space(&p), 100);
	assert_int_equal(body_pipe_read(&p, buf, sizeof buf), 0);
	assert_false(body_pipe_at_end(&p));
	assert_int_equal(body_pipe_take_unreported(&p), 0);
	body_pipe_destroy(&p);
}

static void
test_body_pipe_write_beyond_cap_is_partial(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, 10);
	assert_int_equal(write_ref(&p, &wpos, 6), 6);
	assert_int_equal(body_pipe_space(&p), 4);
	assert_int_equal(write_ref(&p, &wpos, 6), 4);
	assert_int_equal(body_pipe_space(&p), 0);
	assert_int_equal(write_ref(&p, &wpos, 1), 0);
	assert_int_equal(read_ref(&p, &rpos, 100), 10);
	assert_int_equal(body_pipe_space(&p), 10);
	body_pipe_destroy(&p);
}

static void
test_body_pipe_single_write_larger_than_cap_takes_cap_bytes(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, 5000);
	assert_int_equal(write_ref(&p, &wpos, 6000), 5000);
	assert_int_equal(body_pipe_space(&p), 0);
	assert_int_equal(p.size, 5000);         /* the ring never outgrows cap */
	assert_int_equal(read_ref(&p, &rpos, 8000), 5000);
	assert_int_equal(rpos, wpos);
	body_pipe_destroy(&p);
}

/* With cap equal to FIRST_SIZE the ring soon stops growing, so this
 * exercises wrap-around: writes and reads of unrelated odd sizes leave
 * head and tail at every offset. */
static void
test_body_pipe_wraparound_keeps_byte_order(void **state)
{
	static const size_t wsizes[] = { 1, 7, 333, 1021, 4095, 17, 2049, 3 };
	static const size_t rsizes[] = { 5, 977, 2, 1499, 31, 4096, 263 };
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, FIRST_SIZE);
	for (size_t i = 0; rpos < 500000; i++) {
		write_ref(&p, &wpos, wsizes[i % 8]);
		read_ref(&p, &rpos, rsizes[i % 7]);
		assert_int_equal(wpos - rpos, FIRST_SIZE - body_pipe_space(&p));
	}
	while (read_ref(&p, &rpos, 1000) > 0)
		;
	assert_int_equal(rpos, wpos);
	assert_int_equal(p.size, FIRST_SIZE);
	body_pipe_destroy(&p);
}

/* A body of a few bytes costs a small ring, not a page: a router holds
 * one per request in flight. */
static void
test_body_pipe_small_body_takes_a_small_ring(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, 256 * 1024);
	assert_int_equal(write_ref(&p, &wpos, 3), 3);
	assert_true(p.size <= SMALL_BODY_RING);
	assert_int_equal(read_ref(&p, &rpos, 10), 3);
	assert_int_equal(write_ref(&p, &wpos, 8192), 8192);
	assert_int_equal(p.size, 8192);         /* straight to the write's size */
	assert_int_equal(read_ref(&p, &rpos, 8192), 8192);
	body_pipe_destroy(&p);
}

/* Emptied for another stream, a pipe keeps a small ring and lets a
 * large one go, so one large body does not pin memory for good. */
static void
test_body_pipe_empty_keeps_a_small_ring_and_frees_a_large_one(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;
	char *ring;

	(void)state;
	body_pipe_init(&p, 256 * 1024);
	write_ref(&p, &wpos, 100);
	read_ref(&p, &rpos, 50);
	body_pipe_finish(&p);
	ring = p.buf;
	body_pipe_empty(&p, 4096);
	assert_ptr_equal(p.buf, ring);
	assert_int_equal(p.len, 0);
	assert_int_equal(p.unreported, 0);
	assert_false(p.finished);
	assert_int_equal(p.cap, 256 * 1024);
	wpos = rpos = 0;
	assert_int_equal(write_ref(&p, &wpos, 8192), 8192);
	body_pipe_empty(&p, 4096);
	assert_null(p.buf);
	assert_int_equal(p.size, 0);
	wpos = rpos = 0;
	assert_int_equal(write_ref(&p, &wpos, 10), 10);
	assert_int_equal(read_ref(&p, &rpos, 10), 10);
	body_pipe_destroy(&p);
}

/* Leaves unread data wrapped around the end of the first ring, then
 * writes more than that ring holds, forcing a grow that must copy the
 * two parts in order. */
static void
test_body_pipe_growth_preserves_order_when_data_wraps(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, 65536);
	assert_int_equal(write_ref(&p, &wpos, 4000), 4000);
	assert_int_equal(read_ref(&p, &rpos, 3000), 3000);
	assert_int_equal(write_ref(&p, &wpos, 3000), 3000);
	assert_int_equal(p.size, FIRST_SIZE);
	assert_true(p.head + p.len > p.size);    /* the unread bytes wrap */

	assert_int_equal(write_ref(&p, &wpos, 2000), 2000);
	assert_int_equal(p.size, 2 * FIRST_SIZE);
	assert_int_equal(read_ref(&p, &rpos, 8192), 6000);
	assert_int_equal(rpos, wpos);
	body_pipe_destroy(&p);
}

/* Interleaved traffic on a pipe that grows several times on the way. */
static void
test_body_pipe_growth_during_interleaved_traffic_keeps_order(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, 40000);
	for (size_t i = 0; i < 200; i++) {
		write_ref(&p, &wpos, 1000 + (i * 37) % 1500);
		read_ref(&p, &rpos, 401 + (i * 53) % 900);
	}
	assert_true(p.size > FIRST_SIZE);
	assert_true(p.size <= p.cap);
	while (read_ref(&p, &rpos, 8000) > 0)
		;
	assert_int_equal(rpos, wpos);
	body_pipe_destroy(&p);
}

static void
test_body_pipe_counts_read_bytes_as_unreported(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, 1000);
	write_ref(&p, &wpos, 100);
	assert_int_equal(body_pipe_take_unreported(&p), 0);  /* writes do not count */
	read_ref(&p, &rpos, 30);
	read_ref(&p, &rpos, 20);
	assert_int_equal(body_pipe_take_unreported(&p), 50);
	assert_int_equal(body_pipe_take_unreported(&p), 0);
	read_ref(&p, &rpos, 1000);
	assert_int_equal(body_pipe_take_unreported(&p), 50);
	body_pipe_destroy(&p);
}

static void
test_body_pipe_discard_drops_unread_bytes_but_counts_them(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, 1000);
	write_ref(&p, &wpos, 300);
	read_ref(&p, &rpos, 100);
	body_pipe_discard(&p);
	assert_int_equal(body_pipe_space(&p), 1000);
	assert_int_equal(body_pipe_take_unreported(&p), 300);
	/* Bytes written afterwards come out next. */
	rpos = wpos;
	write_ref(&p, &wpos, 10);
	assert_int_equal(read_ref(&p, &rpos, 100), 10);
	body_pipe_destroy(&p);
}

static void
test_body_pipe_at_end_only_after_finish_and_last_read(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;

	(void)state;
	body_pipe_init(&p, 100);
	write_ref(&p, &wpos, 10);
	assert_false(body_pipe_at_end(&p));
	body_pipe_finish(&p);
	assert_false(body_pipe_at_end(&p));    /* ten bytes still unread */
	read_ref(&p, &rpos, 4);
	assert_false(body_pipe_at_end(&p));
	read_ref(&p, &rpos, 6);
	assert_true(body_pipe_at_end(&p));
	body_pipe_destroy(&p);
}

static void
test_body_pipe_empty_pipe_is_at_end_once_finished(void **state)
{
	struct body_pipe p;
	char buf[4];

	(void)state;
	body_pipe_init(&p, 100);
	assert_false(body_pipe_at_end(&p));
	body_pipe_finish(&p);
	assert_true(body_pipe_at_end(&p));
	assert_int_equal(body_pipe_read(&p, buf, sizeof buf), 0);
	body_pipe_destroy(&p);
}

static void
test_body_pipe_zero_length_operations_change_nothing(void **state)
{
	struct body_pipe p;
	size_t wpos = 0, rpos = 0;
	char buf[4];

	(void)state;
	body_pipe_init(&p, 100);
	assert_int_equal(body_pipe_write(&p, NULL, 0), 0);
	assert_null(p.buf);                     /* nothing allocated yet */
	assert_int_equal(body_pipe_read(&p, NULL, 0), 0);
	assert_int_equal(body_pipe_space(&p), 100);

	write_ref(&p, &wpos, 5);
	assert_int_equal(body_pipe_write(&p, "x", 0), 0);
	assert_int_equal(body_pipe_read(&p, buf, 0), 0);
	assert_int_equal(body_pipe_space(&p), 95);
	assert_int_equal(body_pipe_take_unreported(&p), 0);
	assert_int_equal(read_ref(&p, &rpos, 100), 5);
	body_pipe_destroy(&p);
}

static void
test_body_pipe_with_zero_cap_takes_nothing(void **state)
{
	struct body_pipe p;

	(void)state;
	body_pipe_init(&p, 0);
	assert_int_equal(body_pipe_write(&p, "abc", 3), 0);
	assert_int_equal(body_pipe_space(&p), 0);
	assert_null(p.buf);
	body_pipe_destroy(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_pipe_starts_empty_with_all_space_free),
		cmocka_unit_test(test_body_pipe_write_beyond_cap_is_partial),
		cmocka_unit_test(test_body_pipe_single_write_larger_than_cap_takes_cap_bytes),
		cmocka_unit_test(test_body_pipe_wraparound_keeps_byte_order),
		cmocka_unit_test(test_body_pipe_small_body_takes_a_small_ring),
		cmocka_unit_test(test_body_pipe_empty_keeps_a_small_ring_and_frees_a_large_one),
		cmocka_unit_test(test_body_pipe_growth_preserves_order_when_data_wraps),
		cmocka_unit_test(test_body_pipe_growth_during_interleaved_traffic_keeps_order),
		cmocka_unit_test(test_body_pipe_counts_read_bytes_as_unreported),
		cmocka_unit_test(test_body_pipe_discard_drops_unread_bytes_but_counts_them),
		cmocka_unit_test(test_body_pipe_at_end_only_after_finish_and_last_read),
		cmocka_unit_test(test_body_pipe_empty_pipe_is_at_end_once_finished),
		cmocka_unit_test(test_body_pipe_zero_length_operations_change_nothing),
		cmocka_unit_test(test_body_pipe_with_zero_cap_takes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
