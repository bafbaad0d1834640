/*
 * backend.c -- bin/backend: a backend service that dials the router, as
 * the original's examples/backend.go, plus routes for teaching.
 *
 * Owns:    one mux and one struct ptth_backend.
 * Threads: main() dials and waits for the tunnel to end; handlers run on
 *          the library's worker threads.
 * Locks:   none; the settings below are written before serving starts.
 * Interface: bin/backend [--router HOST:PORT] [--delay-ms N] [--quiet]
 *   GET  /foo        "bar" after a 1 ms sleep, logs "handling: /foo"
 *   POST /echo       streams the request body back as it arrives
 *   GET  /bytes?n=N  streams N bytes (default 1 MiB)
 * Tutorial: "Running the demo".
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ptth.h"

static long foo_delay_ms = 1;  /* set by --delay-ms before serving */
static int verbose = 1;

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
log_handling(struct ptth_request *req)
{
	if (verbose)
		fprintf(stderr, "handling: %s\n", ptth_request_path(req));
}

/* GET /foo: the original's only route. */
static void
handle_foo(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)arg;
	log_handling(req);
	if (foo_delay_ms > 0)
		sleep_ms(foo_delay_ms);
	ptth_response_send(res, 200, "text/plain; charset=utf-8", "bar", 3);
}

/* POST /echo: every byte read is written straight back, so the body
 * streams through both directions of the tunnel at once. */
static void
handle_echo(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	char buf[16384];
	ssize_t n;

	(void)arg;
	log_handling(req);
	const char *type = ptth_request_header(req, "content-type");
	ptth_response_add_header(res, "content-type", type ? type : "application/octet-stream");
	while ((n = ptth_request_read(req, buf, sizeof buf)) > 0)
		if (ptth_response_write(res, buf, (size_t)n) < 0)
			return;
	if (n < 0)
		ptth_response_reset(res);
}

/* Reads n=N from the query; returns def when absent or invalid. */
static long long
query_number(const char *query, const char *name, long long def)
{
	size_t len = strlen(name);

	for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		if (strncmp(p, name, len) == 0 && p[len] == '=') {
			char *end;
			long long v = strtoll(p + len + 1, &end, 10);
			if (end != p + len + 1 && (*end == '\0' || *end == '&') && v >= 0)
				return v;
		}
	}
	return def;
}

/* GET /bytes?n=N: N bytes of a repeating pattern, written in 16 KiB
 * pieces; each write blocks while the router's window is closed. */
static void
handle_bytes(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	static char block[16384];
	long long n = query_number(ptth_request_query(req), "n", 1 << 20);
	char length[32];

	(void)arg;
	log_handling(req);
	for (size_t i = 0; i < sizeof block; i++)
		block[i] = (char)('a' + i % 26);
	snprintf(length, sizeof length, "%lld", n);
	ptth_response_add_header(res, "content-type", "application/octet-stream");
	ptth_response_add_header(res, "content-length", length);
	while (n > 0) {
		size_t chunk = n < (long long)sizeof block ? (size_t)n : sizeof block;
		if (ptth_response_write(res, block, chunk) < 0)
			return;
		n -= (long long)chunk;
	}
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: backend [options]\n"
	        "  --router HOST:PORT  the router's tunnel address (default localhost:8887)\n"
	        "  --delay-ms N        how long GET /foo sleeps (default 1)\n"
	        "  --quiet             no per-request log lines\n"
	        "  --help              this text\n"
	        "routes: GET /foo, POST /echo, GET /bytes?n=N\n");
}

static const char *
parse_flags(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "router", required_argument, NULL, 'r' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *router = "localhost:8887";
	char *end;
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r': router = optarg; break;
		case 'd':
			foo_delay_ms = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || foo_delay_ms < 0) {
				fprintf(stderr, "backend: --delay-ms needs a number, not \"%s\"\n", optarg);
				exit(2);
			}
			break;
		case 'q': verbose = 0; ptth_log_set_verbose(0); break;
		case 'h': usage(stdout); exit(0);
		default:
			fprintf(stderr, "backend: bad flag \"%s\" (try --help)\n", argv[optind - 1]);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "backend: unexpected argument \"%s\" (try --help)\n", argv[optind]);
		exit(2);
	}
	return router;
}

int
main(int argc, char **argv)
{
	const char *router = parse_flags(argc, argv);
	struct ptth_mux *mux = ptth_mux_new();
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (mux == NULL || ptth_mux_handle(mux, "/foo", handle_foo, NULL) < 0 ||
	    ptth_mux_handle(mux, "/echo", handle_echo, NULL) < 0 ||
	    ptth_mux_handle(mux, "/bytes", handle_bytes, NULL) < 0) {
		fprintf(stderr, "backend: out of memory\n");
		return 1;
	}
	fprintf(stderr, "Dialing the router at %s\n", router);
	rc = ptth_backend_serve(router, ptth_mux_serve, mux);
	ptth_mux_free(mux);
	if (rc < 0) {
		fprintf(stderr, "backend: tunnel to %s: %s\n", router, ptth_strerror(rc));
		return 1;
	}
	fprintf(stderr, "backend: the router closed the tunnel\n");
	return 0;
}
