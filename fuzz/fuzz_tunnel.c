/*
 * fuzz_tunnel.c -- libFuzzer target: the router's tunnel side fed
 * arbitrary bytes, as if from a rogue backend.
 *
 * Owns:    one router, started once in LLVMFuzzerInitialize() and
 *          stopped at exit; per input, a tunnel socket and a user socket.
 * Threads: libFuzzer's thread runs each input; the router runs its own
 *          threads behind it.
 * Locks:   none of its own.
 * Interface: an input whose first byte is 'G' is a PTTH handshake, the
 *   way the router tells them apart (src/router/tunnel_handshake.c): it is
 *   written whole right after connecting, the write side is shut, and
 *   the router's answer (a refusal, or 101 then HTTP/2 spoken against
 *   the rest of the input) is read until it closes; then steps 4 below.
 *   Any other input is a raw tunnel; per input,
 *   1. dial the tunnel port, send an empty SETTINGS frame (the router
 *      lists a tunnel only once its backend's SETTINGS arrived) and wait
 *      until the router lists the tunnel;
 *   2. send one user request (a small POST) on the HTTP port, and read
 *      the tunnel until the router's HEADERS frame for it arrives, so
 *      that stream 1 exists when the input is read;
 *   3. write the input as the backend's bytes (seeds start with a
 *      SETTINGS frame, as a server preface would; others with garbage),
 *      shut down
 *      the write side and read until the router closes the tunnel;
 *   4. wait until the tunnel count is 0, then let the user connection
 *      end (half-close, read until the router closes it) and wait until
 *      every router thread the input started has ended.
 *   Each bounded wait that runs out is a hang: abort.
 * Seeds: fuzz/corpus/fuzz_tunnel/ (responses recorded by
 *   fuzz/record_seeds.c, a few frame sequences written by hand, and
 *   handshakes, hs-*, good and bad).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "common.h"

#define H2_MAGIC_LEN 24
#define H2_FRAME_HEADERS 0x1

static struct ptth_router *router;
static int http_port, tunnel_port;

/* A SETTINGS frame with no entries: the shortest server preface. */
static const uint8_t empty_settings[9] = { 0, 0, 0, 0x4, 0, 0, 0, 0, 0 };

static const char user_request[] =
	"POST /echo HTTP/1.1\r\n"
	"Host: fuzz\r\n"
	"Content-Type: text/plain\r\n"
	"Content-Length: 5\r\n"
	"\r\n"
	"hello";

static void
fuzz_tunnel_stop(void)
{
	ptth_router_free(router);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	router = fuzz_router_start(&http_port, &tunnel_port);
	atexit(fuzz_tunnel_stop);
	return 0;
}

/* Reads what the router sends on a fresh tunnel (the client magic, then
 * frames) until a HEADERS frame has arrived. Returns 0, or -1 when it
 * did not arrive within FUZZ_WAIT_MS or the router closed first. */
static int
wait_for_headers(int fd)
{
	static uint8_t buf[1 << 16];
	long long deadline = fuzz_now_ms() + FUZZ_WAIT_MS;
	size_t len = 0, pos = H2_MAGIC_LEN;

	for (;;) {
		while (pos + 9 <= len) {
			size_t frame_len = (size_t)buf[pos] << 16 | (size_t)buf[pos + 1] << 8 |
			                   buf[pos + 2];

			if (buf[pos + 3] == H2_FRAME_HEADERS)
				return 0;
			pos += 9 + frame_len;
		}
		if (pos > len) {          /* skip a frame body not read yet */
			pos -= len;
			len = 0;
		} else {                  /* keep a partial frame header */
			memmove(buf, buf + pos, len - pos);
			len -= pos;
			pos = 0;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - fuzz_now_ms();
		int ready;

		if (left <= 0)
			return -1;
		ready = poll(&p, 1, (int)left);
		if (ready < 0 && errno == EINTR)
			continue;        /* libFuzzer's timer signal */
		if (ready <= 0)
			return -1;
		ssize_t n = recv(fd, buf + len, sizeof buf - len, MSG_DONTWAIT);

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
}

/* A handshake input: written at once, answered, closed; nothing may be
 * left behind. */
static void
fuzz_tunnel_handshake(const uint8_t *data, size_t size)
{
	int tfd = fuzz_connect(tunnel_port);
	int rc = fuzz_exchange(tfd, data, size, true, FUZZ_WAIT_MS, NULL);

	fuzz_close(tfd);
	if (rc < 0)
		fuzz_die("the router kept a half-closed handshake open for %d ms", FUZZ_WAIT_MS);
	if (fuzz_wait_tunnels_exactly(router, 0, FUZZ_WAIT_MS) < 0)
		fuzz_die("a closed handshake tunnel stayed in a pool for %d ms", FUZZ_WAIT_MS);
	if (fuzz_wait_router_threads(router, 0, FUZZ_WAIT_MS) < 0)
		fuzz_die("a tunnel thread outlived its handshake by %d ms", FUZZ_WAIT_MS);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int tfd, ufd, rc;

	if (size > 0 && data[0] == 'G') {
		fuzz_tunnel_handshake(data, size);
		return 0;
	}
	tfd = fuzz_connect(tunnel_port);

	if (fuzz_send_all(tfd, empty_settings, sizeof empty_settings) < 0)
		fuzz_die("the router closed a new tunnel before its SETTINGS");
	if (fuzz_wait_tunnels_exactly(router, 1, FUZZ_WAIT_MS) < 0)
		fuzz_die("the router did not list a new tunnel");
	ufd = fuzz_connect(http_port);
	if (fuzz_send_all(ufd, user_request, sizeof user_request - 1) < 0)
		fuzz_die("the router closed a user connection before its request");
	if (wait_for_headers(tfd) < 0)
		fuzz_die("the router sent no HEADERS frame down its only tunnel");
	rc = fuzz_exchange(tfd, data, size, true, FUZZ_WAIT_MS, NULL);
	fuzz_close(tfd);
	if (rc < 0)
		fuzz_die("the router kept a half-closed tunnel open for %d ms", FUZZ_WAIT_MS);
	if (fuzz_wait_tunnels_exactly(router, 0, FUZZ_WAIT_MS) < 0)
		fuzz_die("a closed tunnel stayed in the pool for %d ms", FUZZ_WAIT_MS);
	rc = fuzz_exchange(ufd, NULL, 0, true, FUZZ_WAIT_MS, NULL);
	fuzz_close(ufd);
	if (rc < 0)
		fuzz_die("the router kept a half-closed user connection open for %d ms",
		         FUZZ_WAIT_MS);
	if (fuzz_wait_router_threads(router, 0, FUZZ_WAIT_MS) < 0)
		fuzz_die("a router thread outlived its connection by %d ms", FUZZ_WAIT_MS);
	return 0;
}
