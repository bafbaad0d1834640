/*
 * fuzz_user.c -- libFuzzer target: the router's user side fed arbitrary
 * bytes as one HTTP/1.1 connection.
 *
 * Owns:    one router and one backend, started once in
 *          LLVMFuzzerInitialize() and stopped at exit; per input, one
 *          user socket.
 * Threads: libFuzzer's thread runs each input; the router and backend
 *          run their own threads behind it.
 * Locks:   none of its own.
 * Interface: per input, connect to the HTTP port, write the bytes (while
 *   reading the answers), shut down the write side and read until the
 *   router closes. A router that keeps the connection open, or a user
 *   thread that does not end, within FUZZ_WAIT_MS is a hang: abort. So
 *   that leak checks see a quiet process, each input ends only once
 *   every user connection thread it started has ended.
 * Seeds: fuzz/corpus/fuzz_user/ (hand-written requests and the ones
 *   fuzz/record_seeds.c records); dictionary fuzz/http1.dict.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

static struct ptth_router *router;
static struct ptth_backend *backend;
static int http_port;
static int idle_threads;   /* router threads with no input running */

static void
fuzz_user_stop(void)
{
	ptth_backend_free(backend);
	ptth_router_free(router);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct ptth_backend_options bo;
	char addr[64];
	int tunnel_port;

	(void)argc;
	(void)argv;
	fuzz_quiet();
	router = fuzz_router_start(&http_port, &tunnel_port);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tunnel_port);
	ptth_backend_options_init(&bo);
	bo.router_addr = addr;
	bo.handler = fuzz_handler;
	bo.ping_interval_ms = -1;
	bo.drain_timeout_ms = 1000;
	backend = ptth_backend_new(&bo);
	if (backend == NULL || ptth_backend_start(backend) < 0 ||
	    ptth_router_wait_tunnels(router, 1, FUZZ_WAIT_MS) < 0)
		fuzz_die("cannot start the backend");
	idle_threads = 1; /* the tunnel thread */
	if (fuzz_wait_router_threads(router, idle_threads, FUZZ_WAIT_MS) < 0)
		fuzz_die("the router runs more threads than its one tunnel");
	atexit(fuzz_user_stop);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = fuzz_connect(http_port);
	int rc = fuzz_exchange(fd, data, size, true, FUZZ_WAIT_MS, NULL);

	fuzz_close(fd);
	if (rc < 0)
		fuzz_die("the router kept a half-closed user connection open for %d ms",
		         FUZZ_WAIT_MS);
	if (fuzz_wait_router_threads(router, idle_threads, FUZZ_WAIT_MS) < 0)
		fuzz_die("a user connection thread outlived its connection by %d ms",
		         FUZZ_WAIT_MS);
	if (ptth_router_tunnel_count(router) != 1)
		fuzz_die("the backend's tunnel went away");
	return 0;
}
