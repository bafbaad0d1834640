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
 *   GET  /headers    lists the request fields it received
 *   GET  /sleep?ms=N answers after N ms
 *   GET  /status?code=N answers with that status
 *   GET  /reset      resets its stream instead of answering
 *   GET  /trailers   sends a body, then a trailer field
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

/* GET /headers: what arrived, one "name: value" line each, so a class
 * can see what the router added (X-Forwarded-For...) and removed. */
static void
handle_headers(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	char line[1024];
	const char *name, *value;

	(void)arg;
	log_handling(req);
	ptth_response_add_header(res, "content-type", "text/plain; charset=utf-8");
	snprintf(line, sizeof line, ":method: %s\n:path: %s%s%s\n:authority: %s\n",
	         ptth_request_method(req), ptth_request_path(req),
	         ptth_request_query(req)[0] ? "?" : "", ptth_request_query(req),
	         ptth_request_authority(req));
	ptth_response_write(res, line, strlen(line));
	for (size_t i = 0; ptth_request_header_at(req, i, &name, &value) == 0; i++) {
		snprintf(line, sizeof line, "%s: %s\n", name, value);
		ptth_response_write(res, line, strlen(line));
	}
}

/* GET /sleep?ms=N: a slow backend, for timeouts and concurrency. */
static void
handle_sleep(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	long long ms = query_number(ptth_request_query(req), "ms", 1000);

	(void)arg;
	log_handling(req);
	sleep_ms((long)ms);
	ptth_response_send(res, 200, "text/plain; charset=utf-8", "slept\n", 6);
}

/* GET /status?code=N: any status the class wants to see. */
static void
handle_status(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	long long code = query_number(ptth_request_query(req), "code", 200);
	char body[64];
	int len;

	(void)arg;
	log_handling(req);
	if (code < 200 || code > 999)
		code = 400;
	len = snprintf(body, sizeof body, "status %lld\n", code);
	if (code == 204 || code == 304)
		len = 0;
	ptth_response_send(res, (int)code, "text/plain; charset=utf-8", body, (size_t)len);
}

/* GET /reset: the backend gives up on the stream (RST_STREAM). */
static void
handle_reset(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)arg;
	log_handling(req);
	ptth_response_reset(res);
}

/* GET /trailers: a streamed body followed by a trailer field. */
static void
handle_trailers(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)arg;
	log_handling(req);
	ptth_response_add_header(res, "content-type", "text/plain; charset=utf-8");
	ptth_response_add_header(res, "trailer", "x-checksum");
	ptth_response_write(res, "body\n", 5);
	ptth_response_add_trailer(res, "x-checksum", "12345");
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
	        "routes: GET /foo, POST /echo, GET /bytes?n=N, GET /headers,\n"
	        "        GET /sleep?ms=N, GET /status?code=N, GET /reset, GET /trailers\n");
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
	    ptth_mux_handle(mux, "/bytes", handle_bytes, NULL) < 0 ||
	    ptth_mux_handle(mux, "/headers", handle_headers, NULL) < 0 ||
	    ptth_mux_handle(mux, "/sleep", handle_sleep, NULL) < 0 ||
	    ptth_mux_handle(mux, "/status", handle_status, NULL) < 0 ||
	    ptth_mux_handle(mux, "/reset", handle_reset, NULL) < 0 ||
	    ptth_mux_handle(mux, "/trailers", handle_trailers, NULL) < 0) {
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
