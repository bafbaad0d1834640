/*
 * fuzz_backend.c -- libFuzzer target: the backend fed arbitrary bytes, as
 * if from a rogue router.
 *
 * Owns:    per input, one backend serving one end of a socketpair, and
 *          the other end.
 * Threads: libFuzzer's thread runs each input; the backend runs its slot
 *          thread and handler threads behind it, all joined by
 *          ptth_backend_free() before the input ends.
 * Locks:   none of its own.
 * Interface: per input, backend_start_fd() (src/backend/backend.h) on one end of
 *   a socketpair; the input is written to the other end as the router's
 *   bytes (seeds start with the client magic "PRI * HTTP/2.0...", a
 *   SETTINGS frame and a HEADERS frame), while whatever the backend
 *   answers is read; then the write side is shut down and the target
 *   reads until the backend closes. A backend that keeps the connection
 *   open for FUZZ_WAIT_MS after that is a hang: abort.
 * Seeds: fuzz/corpus/fuzz_backend/ (requests recorded by
 *   fuzz/record_seeds.c, and a few written by hand).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>

#include "backend.h"
#include "common.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ptth_backend_options opts;
	struct ptth_backend *b;
	int sv[2], rc;

	ptth_backend_options_init(&opts);
	opts.router_addr = "socketpair"; /* never dialled: backend_start_fd() */
	opts.handler = fuzz_handler;
	opts.ping_interval_ms = -1;
	opts.drain_timeout_ms = 1000;
	b = ptth_backend_new(&opts);
	if (b == NULL)
		fuzz_die("ptth_backend_new failed");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		fuzz_die("socketpair failed");
	if (backend_start_fd(b, sv[1]) < 0)
		fuzz_die("backend_start_fd failed");
	rc = fuzz_exchange(sv[0], data, size, true, FUZZ_WAIT_MS, NULL);
	close(sv[0]);
	if (rc < 0)
		fuzz_die("the backend kept a half-closed tunnel open for %d ms", FUZZ_WAIT_MS);
	ptth_backend_free(b);
	return 0;
}
