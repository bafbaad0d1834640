/*
 * test_user_conn.c -- what the router does with a user connection it
 * cannot give a thread: a 503, written without letting the user hold up
 * the accept thread, instead of a bare close; and what a connection that
 * gets one costs: a small stack, and no fd beyond its socket while idle.
 *
 * Running out of threads or address space cannot be arranged on demand,
 * so these tests replace pthread_create() with a mock, in the pattern of
 * cmocka's own examples:
 *   - the line "wrap: pthread_create" below makes the Makefile link this
 *     suite with -Wl,--wrap=pthread_create. Every call in this program and
 *     in libptth.a then reaches __wrap_pthread_create(), and the name
 *     __real_pthread_create() reaches the real function;
 *   - a test says what it expects before it acts: expect_function_call()
 *     that one call will come, will_return() what that call returns (an
 *     error number, or 0 to go on to the real function). The wrapper takes
 *     both back with function_called() and mock_type();
 *   - cmocka fails the test when a call it was told to expect never came,
 *     or when a call came that nothing was queued for.
 * cmocka's queues belong to the thread running the test: the wrapper
 * reads them only there, and every other thread's call goes straight to
 * the real function. So the test thread plays the accept thread: it hands
 * one end of a socketpair to user_conn_start(), exactly as
 * router_accept_loop() hands it an accepted socket, and reads the answer
 * on the other end. The router is created but not started: no other
 * thread of the router exists to call pthread_create().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ptth.h"
#include "user_conn.h"

#define READ_TIMEOUT_MS 30000   /* the answer must arrive well within this */
#define RESCUE_AFTER_MS 10000   /* a write the router is stuck in gets unstuck then */

/* wrap: pthread_create */
int __real_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start)(void *), void *arg);
int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*start)(void *), void *arg);

static pthread_t test_thread;   /* cmocka runs every test on it; set in main() */
static size_t last_stack_size;  /* asked for by the last scripted call; 0: the default */

/* The mock: on the test's thread, one scripted call (function_called())
 * that fails with the queued error number or, given 0, goes on to the
 * real pthread_create(). Anywhere else, the real one at once. */
int
__wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                      void *(*start)(void *), void *arg)
{
	int rc;

	if (!pthread_equal(pthread_self(), test_thread))
		return __real_pthread_create(thread, attr, start, arg);
	last_stack_size = 0;
	if (attr != NULL)
		pthread_attr_getstacksize(attr, &last_stack_size);
	function_called();
	rc = mock_type(int);
	if (rc != 0)
		return rc;
	return __real_pthread_create(thread, attr, start, arg);
}

/* A router with the default options, created but never started. */
static struct ptth_router *
router_new(void)
{
	struct ptth_router_options opts;

	ptth_router_options_init(&opts);
	opts.header_timeout_ms = READ_TIMEOUT_MS;
	return ptth_router_new(&opts);
}

/* Reads fd until the other end closes, keeping at most cap - 1 bytes
 * and a NUL. Returns the length, or -1 on an error or after
 * READ_TIMEOUT_MS without a byte. */
static ssize_t
read_until_close(int fd, char *buf, size_t cap)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t len = 0;

	for (;;) {
		if (poll(&pfd, 1, READ_TIMEOUT_MS) != 1)
			return -1;
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (n == 0 || len + 1 == cap)
			return (ssize_t)len;
	}
}

/* Reads from fd until what has arrived contains end. Returns the
 * length, or -1 on an error, an EOF or READ_TIMEOUT_MS without a byte. */
static ssize_t
read_until(int fd, char *buf, size_t cap, const char *end)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t len = 0;

	buf[0] = '\0';
	while (strstr(buf, end) == NULL) {
		if (len + 1 == cap || poll(&pfd, 1, READ_TIMEOUT_MS) != 1)
			return -1;
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
	}
	return (ssize_t)len;
}

/* How many eventfds this process holds. */
static int
count_eventfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char target[64];
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		ssize_t len = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strcmp(target, "anon_inode:[eventfd]") == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void
test_user_conn_start_answers_503_when_no_thread_can_start(void **state)
{
	struct ptth_router *r = router_new();
	char answer[1024] = "";
	int fds[2];

	(void)state;
	assert_non_null(r);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	/* The one thread the connection asks for cannot be had. */
	expect_function_call(__wrap_pthread_create);
	will_return(__wrap_pthread_create, EAGAIN);
	int rc = user_conn_start(r, fds[1]); /* takes fds[1] and closes it */
	ssize_t len = read_until_close(fds[0], answer, sizeof answer);
	close(fds[0]);
	ptth_router_free(r); /* would wait forever for a connection still counted */

	print_message("%s", answer);
	assert_true(len > 0); /* not a bare close */
	assert_int_equal(strncmp(answer, "HTTP/1.1 503 Service Unavailable\r\n", 34), 0);
	assert_non_null(strstr(answer, "\r\nRetry-After: 1\r\n"));
	assert_non_null(strstr(answer, "\r\nConnection: close\r\n"));
	assert_non_null(strstr(answer, "\r\n\r\n503 Service Unavailable: no thread for the "
	                               "connection\n"));
	assert_int_equal(rc, -ECONNREFUSED); /* answered: the accept loop logs nothing more */
}

static void
test_user_conn_start_serves_when_the_thread_starts(void **state)
{
	static const char bad[] = "NOT HTTP AT ALL\r\n\r\n";
	struct ptth_router *r = router_new();
	char answer[1024] = "";
	int fds[2];

	(void)state;
	assert_non_null(r);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	/* 0: the wrapper goes on to the real pthread_create(). */
	expect_function_call(__wrap_pthread_create);
	will_return(__wrap_pthread_create, 0);
	int rc = user_conn_start(r, fds[1]);
	ssize_t sent = send(fds[0], bad, sizeof bad - 1, MSG_NOSIGNAL);
	ssize_t len = read_until_close(fds[0], answer, sizeof answer);
	close(fds[0]);
	ptth_router_free(r); /* waits for the connection's thread to end */

	print_message("%s", answer);
	assert_int_equal(rc, 0);
	assert_int_equal(sent, (ssize_t)sizeof bad - 1);
	assert_true(len > 0);
	/* The connection's own thread parsed the request and refused it. */
	assert_int_equal(strncmp(answer, "HTTP/1.1 400 ", 13), 0);
}

/* A user thread does not get the default stack (ulimit -s, 8 MiB on
 * Debian) but one sized to what it uses: 10 000 users would otherwise
 * reserve 80 GB of address space. */
static void
test_user_conn_thread_gets_a_small_stack(void **state)
{
	static const char bad[] = "NOT HTTP AT ALL\r\n\r\n";
	struct ptth_router *r = router_new();
	char answer[1024] = "";
	int fds[2];

	(void)state;
	assert_non_null(r);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	expect_function_call(__wrap_pthread_create);
	will_return(__wrap_pthread_create, 0);
	int rc = user_conn_start(r, fds[1]);
	send(fds[0], bad, sizeof bad - 1, MSG_NOSIGNAL);
	ssize_t len = read_until_close(fds[0], answer, sizeof answer);
	close(fds[0]);
	ptth_router_free(r);

	assert_int_equal(rc, 0);
	assert_true(len > 0); /* the thread ran, parsed and answered */
	assert_true(last_stack_size >= 64 * 1024);
	assert_true(last_stack_size <= 1024 * 1024);
}

/* A keep-alive connection between requests holds its socket and nothing
 * else: the eventfd a user thread watches while a response moves during
 * an upload is opened only when that happens. With 10 000 users, a
 * second fd each would not fit an open-file limit of 20 000. */
static void
test_user_conn_idle_connection_opens_no_eventfd(void **state)
{
	static const char get[] = "GET /foo HTTP/1.1\r\nHost: example\r\n\r\n";
	struct ptth_router *r = router_new();
	char answer[1024];
	int fds[2], before, idle;

	(void)state;
	assert_non_null(r);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	before = count_eventfds();
	expect_function_call(__wrap_pthread_create);
	will_return(__wrap_pthread_create, 0);
	int rc = user_conn_start(r, fds[1]);
	ssize_t sent = send(fds[0], get, sizeof get - 1, MSG_NOSIGNAL);
	/* No tunnel: a 503, and the connection stays open for the next. */
	ssize_t len = read_until(fds[0], answer, sizeof answer, "capacity\n");
	idle = count_eventfds();
	close(fds[0]);
	ptth_router_free(r);

	assert_int_equal(rc, 0);
	assert_int_equal(sent, (ssize_t)sizeof get - 1);
	assert_true(len > 0);
	assert_int_equal(strncmp(answer, "HTTP/1.1 503 ", 13), 0);
	assert_null(strstr(answer, "Connection: close"));
	assert_true(before >= 0);
	assert_int_equal(idle, before);
}

/* A helper thread of the test (started with __real_pthread_create, so
 * outside the script): unless told within RESCUE_AFTER_MS that the
 * router let go, it reads what the router is stuck writing. */
struct rescue {
	int fd;                       /* the user's end */
	pthread_mutex_t mu;
	pthread_cond_t changed;
	/* guarded by mu: */
	bool router_returned;
	bool rescued;                 /* it had to read to unblock the router */
};

static void *
rescue_thread_main(void *arg)
{
	struct rescue *rs = arg;
	struct timespec deadline;
	char sink[65536];

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += RESCUE_AFTER_MS / 1000;
	pthread_mutex_lock(&rs->mu);
	while (!rs->router_returned &&
	       pthread_cond_timedwait(&rs->changed, &rs->mu, &deadline) == 0)
		;
	rs->rescued = !rs->router_returned;
	pthread_mutex_unlock(&rs->mu);
	if (rs->rescued)
		while (recv(rs->fd, sink, sizeof sink, 0) > 0)
			;
	return NULL;
}

/* Fills the socket's buffers from fd until a write would block, as a
 * user who never reads does to everything the router sends. */
static void
fill_until_full(int fd)
{
	static const char junk[4096];

	while (send(fd, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
		;
}

static void
test_user_conn_start_refusal_does_not_wait_for_a_user_who_never_reads(void **state)
{
	struct rescue rs = { .mu = PTHREAD_MUTEX_INITIALIZER,
	                     .changed = PTHREAD_COND_INITIALIZER };
	struct ptth_router *r = router_new();
	pthread_t rescuer;
	int fds[2];

	(void)state;
	assert_non_null(r);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	fill_until_full(fds[1]);
	rs.fd = fds[0];
	assert_int_equal(__real_pthread_create(&rescuer, NULL, rescue_thread_main, &rs), 0);
	expect_function_call(__wrap_pthread_create);
	will_return(__wrap_pthread_create, EAGAIN);
	int rc = user_conn_start(r, fds[1]); /* the 503 finds no room */
	pthread_mutex_lock(&rs.mu);
	rs.router_returned = true;
	pthread_cond_signal(&rs.changed);
	pthread_mutex_unlock(&rs.mu);
	pthread_join(rescuer, NULL);
	close(fds[0]);
	ptth_router_free(r);

	assert_false(rs.rescued); /* the send timeout, not the user, let it go */
	assert_int_equal(rc, -ECONNREFUSED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_conn_start_answers_503_when_no_thread_can_start),
		cmocka_unit_test(test_user_conn_start_serves_when_the_thread_starts),
		cmocka_unit_test(test_user_conn_idle_connection_opens_no_eventfd),
		cmocka_unit_test(test_user_conn_thread_gets_a_small_stack),
		cmocka_unit_test(test_user_conn_start_refusal_does_not_wait_for_a_user_who_never_reads),
	};

	test_thread = pthread_self();
	ptth_log_set_verbose(getenv("PTTH_TEST_VERBOSE") != NULL &&
	                     strcmp(getenv("PTTH_TEST_VERBOSE"), "1") == 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
