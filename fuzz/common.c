/*
 * common.c -- what the fuzz targets share: a loopback router with short
 * timeouts, a tiny handler, and socket helpers that never block for
 * longer than they are told.
 *
 * Owns:    nothing beyond the call: every socket a helper opens is the
 *          caller's to close.
 * Threads: the fuzzer's thread only (libFuzzer runs one input at a time).
 * Locks:   fuzz_wait_router_threads() takes the router's mu, alone, as
 *          router.c does, to read how many threads it runs.
 * Interface:
 *   - fuzz_router_start(): a router on 127.0.0.1:0 with 2 s timeouts;
 *   - fuzz_handler(): answers "ok", or echoes the request body;
 *   - fuzz_exchange(): write an input while reading whatever comes back,
 *     optionally half-close, then read until the peer closes;
 *   - fuzz_close(): close a finished TCP connection without TIME_WAIT;
 *   - fuzz_wait_*(): bounded waits on the router's state, for a target
 *     to end each input with nothing of it left running;
 *   - fuzz_die(): a hang or a broken invariant; aborts, so libFuzzer
 *     saves the input as a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sanitizer/common_interface_defs.h>

#include "common.h"
#include "lock.h"
#include "router.h"

long long
fuzz_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prints the reason and aborts. The reason goes through the sanitizer's
 * report channel, because a fuzzer run with -close_fd_mask=2 (as make
 * fuzz-smoke runs them, to drop the library's log lines) has no stderr. */
void
fuzz_die(const char *fmt, ...)
{
	char msg[512] = "fuzz: ";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg + 6, sizeof msg - 6, fmt, ap);
	va_end(ap);
	__sanitizer_report_error_summary(msg);
	abort();
}

/* Logs off (a fuzzer prints its own stats) and SIGPIPE ignored, since
 * peers close sockets the targets still write to. */
void
fuzz_quiet(void)
{
	signal(SIGPIPE, SIG_IGN);
	ptth_log_set_verbose(0);
}

/* Connects a blocking TCP socket to 127.0.0.1:port. libFuzzer's timer
 * signal (SIGALRM, installed without SA_RESTART) may interrupt connect();
 * the connection then goes on in the background, so wait for it. A
 * failure is the harness's, not the code under test's: it dies. */
int
fuzz_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct pollfd p = { .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		fuzz_die("socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
		return fd;
	if (errno != EINTR)
		fuzz_die("connect to port %d: %s", port, strerror(errno));
	p.fd = fd;
	while (poll(&p, 1, FUZZ_WAIT_MS) < 0 && errno == EINTR)
		;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0 ||
	    !(p.revents & POLLOUT))
		fuzz_die("connect to port %d (after EINTR): %s", port, strerror(err));
	return fd;
}

/* Closes a TCP socket that has finished its exchange (both sides sent
 * FIN) without leaving it in TIME_WAIT: a zero linger time drops it at
 * once. A thousand connections a second would otherwise use up the
 * ephemeral ports within half a minute, and connect() would fail. */
void
fuzz_close(int fd)
{
	struct linger abort_close = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
	close(fd);
}

/* Writes all of buf to a blocking socket. Returns 0, or -errno when the
 * peer is gone. */
int
fuzz_send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One poll round: reads (and discards) what is there and writes what it
 * can of *data. Returns 1 at EOF or reset, 0 to go on, -ETIMEDOUT. */
static int
fuzz_step(int fd, const uint8_t **data, size_t *len, bool *wr_open, bool half_close,
          long long deadline, size_t *got)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[16384];
	long long left = deadline - fuzz_now_ms();
	ssize_t n;

	if (*wr_open && *len > 0)
		p.events |= POLLOUT;
	if (left <= 0)
		return -ETIMEDOUT;
	if (poll(&p, 1, (int)left) <= 0)
		return errno == EINTR ? 0 : -ETIMEDOUT;
	if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
		n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
		if (n > 0 && got != NULL)
			*got += (size_t)n;
	}
	if (*wr_open && *len > 0 && (p.revents & POLLOUT)) {
		n = send(fd, *data, *len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			*data += n;
			*len -= (size_t)n;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			*wr_open = false; /* the peer stopped reading; keep reading */
		}
	}
	if (*wr_open && *len == 0 && half_close) {
		shutdown(fd, SHUT_WR);
		*wr_open = false;
	}
	return 0;
}

/* Writes data[0..len) to fd while reading and discarding what the peer
 * sends (so neither side can block the other), then, with half_close,
 * shuts down the write side, and reads until the peer closes. Without
 * half_close it returns once everything is written. *got (may be NULL)
 * counts the bytes read. Returns 0, or -ETIMEDOUT when timeout_ms passed
 * first. */
int
fuzz_exchange(int fd, const uint8_t *data, size_t len, bool half_close,
              int timeout_ms, size_t *got)
{
	long long deadline = fuzz_now_ms() + timeout_ms;
	bool wr_open = true;
	int rc;

	if (len == 0 && half_close) {
		shutdown(fd, SHUT_WR);
		wr_open = false;
	}
	for (;;) {
		if (!half_close && len == 0)
			return 0;
		rc = fuzz_step(fd, &data, &len, &wr_open, half_close, deadline, got);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		if (!half_close && !wr_open)
			return 0;
	}
}

/* Waits until the router has exactly n live tunnels: at least n (one
 * came), then at most n (the others went); both block on the pool's
 * condition. Returns 0 or -ETIMEDOUT. */
int
fuzz_wait_tunnels_exactly(struct ptth_router *r, int n, int timeout_ms)
{
	int rc = ptth_router_wait_tunnels(r, n, timeout_ms);

	return rc < 0 ? rc : ptth_router_wait_tunnels_at_most(r, n, timeout_ms);
}

/* Waits until the router runs exactly n connection and tunnel threads,
 * which is how a target knows that every thread one input started has
 * ended (and freed what it held); router_thread_end() broadcasts
 * threads_done on every change. Returns 0 or -ETIMEDOUT. */
int
fuzz_wait_router_threads(struct ptth_router *r, int n, int timeout_ms)
{
	struct timespec deadline = deadline_after_ms(timeout_ms);
	int rc = 0;

	mutex_lock(&r->mu);
	while (r->threads != n && rc == 0)
		rc = cond_timedwait(&r->threads_done, &r->mu, &deadline);
	rc = r->threads == n ? 0 : -ETIMEDOUT;
	mutex_unlock(&r->mu);
	return rc;
}

/* A router on 127.0.0.1:0 whose timeouts are short enough that no input
 * can keep a connection alive for long, and that never PINGs (pings
 * would make a run depend on the clock). A silent dialler is taken for
 * raw after 20 ms, not 200, so that fuzz_tunnel's raw inputs (which wait
 * for the tunnel to be listed before they speak) stay fast. Dies when it
 * cannot start. */
struct ptth_router *
fuzz_router_start(int *http_port, int *tunnel_port)
{
	struct ptth_router_options opts;
	struct ptth_router *r;

	ptth_router_options_init(&opts);
	opts.http_addr = "127.0.0.1:0";
	opts.tunnel_addr = "127.0.0.1:0";
	opts.header_timeout_ms = 2000;
	opts.idle_timeout_ms = 2000;
	opts.body_timeout_ms = 2000;
	opts.send_timeout_ms = 2000;
	opts.backend_timeout_ms = 2000;
	opts.drain_timeout_ms = 2000;
	opts.ping_interval_ms = -1;
	opts.max_body = 1 << 20;
	opts.raw_wait_ms = 20;
	r = ptth_router_new(&opts);
	if (r == NULL || ptth_router_start(r) < 0 ||
	    ptth_router_ports(r, http_port, tunnel_port) < 0)
		fuzz_die("cannot start the router");
	return r;
}

/* The backend's only route: echoes the request body, or answers "ok"
 * when there is none. It also reads every field first, so that a field
 * the backend stored wrongly is touched under the sanitizers (volatile:
 * the sum must not be optimised away). */
void
fuzz_handler(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	volatile size_t touched = strlen(ptth_request_method(req)) +
	                          strlen(ptth_request_path(req)) +
	                          strlen(ptth_request_query(req)) +
	                          strlen(ptth_request_authority(req));
	const char *name, *value;
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	(void)arg;
	for (size_t i = 0; i < ptth_request_header_count(req); i++)
		if (ptth_request_header_at(req, i, &name, &value) == 0)
			touched += strlen(name) + strlen(value);
	if (strcmp(ptth_request_path(req), "/trailers") == 0)
		ptth_response_add_trailer(res, "x-total", "1");
	while ((n = ptth_request_read(req, buf, sizeof buf)) > 0) {
		if (ptth_response_write(res, buf, (size_t)n) < 0)
			return;
		total += (size_t)n;
	}
	if (n < 0)
		ptth_response_reset(res);
	else if (total == 0)
		ptth_response_send(res, 200, "text/plain", "ok", 2);
	(void)touched;
}
