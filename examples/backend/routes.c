/*
 * routes.c -- the backend's teaching routes, each showing one thing the
 * router does. They exist once: bin/backend (examples/backend.c) serves
 * them, and the test suites serve the same ones (tests/support/harness.c,
 * tests/test_contract.c), so what a class tries by hand is what the
 * tests prove.
 *
 * Owns:    nothing; the caller owns the mux and the struct routes_conf.
 * Threads: routes_register() runs before serving; each handler runs on a
 *          backend worker thread, many at once, and only reads the conf.
 * Locks:   none: the conf is read-only once serving starts.
 * Interface:
 *   - routes_register(mux, conf) adds every route below to a mux;
 *   GET  /foo          "bar" after conf->foo_delay_ms: the original's route
 *   POST /echo         the request body, streamed back as it arrives
 *   GET  /bytes?n=N    N bytes (default 1 MiB), byte i is 'a' + i % 26
 *   GET  /headers      the request's pseudo-fields and fields, one a line
 *   GET  /sleep?ms=N   "slept" after N ms (default 1000)
 *   GET  /status?code=N  that status (200 to 999), no body for 204 and 304
 *   GET  /reset        RST_STREAM instead of an answer
 *   GET  /trailers     a body, then the trailer field x-checksum
 *   GET  /service      conf->service, or "default"
 *   - a new route is a handler here and one line in the routes[] table
 *     (docs/EXERCISES.md starts with one).
 * Tutorial: "The backend answers".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routes.h"

/* A whole number of 'a'..'z' runs, so that the pattern of GET /bytes
 * goes on unbroken from one write to the next. */
#define ROUTES_BYTES_BLOCK (26 * 630)

static const struct routes_conf routes_default = { 0 };

static void
routes_sleep(const struct routes_conf *conf, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	if (conf->sleep != NULL) {
		conf->sleep(ms, conf->sleep_arg);
		return;
	}
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
routes_log(const struct routes_conf *conf, struct ptth_request *req)
{
	if (conf->log)
		fprintf(stderr, "handling: %s\n", ptth_request_path(req));
}

long long
routes_query_number(const char *query, const char *name, long long def)
{
	size_t len = strlen(name);

	for (const char *p = query; p != NULL && *p != '\0';) {
		if (strncmp(p, name, len) == 0 && p[len] == '=') {
			char *end;
			long long v = strtoll(p + len + 1, &end, 10);
			if (end != p + len + 1 && (*end == '\0' || *end == '&') && v >= 0)
				return v;
		}
		p = strchr(p, '&');
		if (p != NULL)
			p++;
	}
	return def;
}

static void
send_text(struct ptth_response *res, int status, const char *text)
{
	ptth_response_send(res, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* GET /foo: the original's only route. */
/* tutorial: handle-foo */
static void
handle_foo(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	const struct routes_conf *conf = arg;

	routes_log(conf, req);
	if (conf->foo_delay_ms > 0)
		routes_sleep(conf, conf->foo_delay_ms);
	send_text(res, 200, "bar");
}
/* tutorial: end */

/* POST /echo: every byte read is written straight back, so the body
 * streams through both directions of the tunnel at once; a failed read
 * (the stream was reset) resets the answer too. */
static void
handle_echo(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	const char *type = ptth_request_header(req, "content-type");
	char buf[16384];
	ssize_t n;

	routes_log(arg, req);
	ptth_response_add_header(res, "content-type", type ? type : "application/octet-stream");
	while ((n = ptth_request_read(req, buf, sizeof buf)) > 0)
		if (ptth_response_write(res, buf, (size_t)n) < 0)
			return;
	if (n < 0)
		ptth_response_reset(res);
}

/* GET /bytes?n=N: N bytes with a Content-Length, written a block at a
 * time; each write blocks while the router's window is closed. */
static void
handle_bytes(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	char block[ROUTES_BYTES_BLOCK];
	long long n = routes_query_number(ptth_request_query(req), "n", 1 << 20);
	char length[32];

	routes_log(arg, req);
	for (size_t i = 0; i < sizeof block; i++)
		block[i] = (char)('a' + i % 26);
	snprintf(length, sizeof length, "%lld", n);
	ptth_response_add_header(res, "content-type", "application/octet-stream");
	ptth_response_add_header(res, "content-length", length);
	while (n > 0) {
		size_t chunk = n < (long long)sizeof block ? (size_t)n : sizeof block;
		if (ptth_response_write(res, block, chunk) < 0)
			return; /* the stream is gone: the user left */
		n -= (long long)chunk;
	}
}

/* GET /headers: what arrived, one "name: value" line each, pseudo-fields
 * first, so a class can see what the router added (X-Forwarded-For...)
 * and removed. No Content-Length: HTTP/1.1 users get it chunked. */
static void
handle_headers(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	char line[1024];
	const char *name, *value;

	routes_log(arg, req);
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
	long long ms = routes_query_number(ptth_request_query(req), "ms", 1000);

	routes_log(arg, req);
	routes_sleep(arg, (long)ms);
	send_text(res, 200, "slept\n");
}

/* GET /status?code=N: any status the class wants to see. */
static void
handle_status(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	long long code = routes_query_number(ptth_request_query(req), "code", 200);
	char body[64];
	int len;

	routes_log(arg, req);
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
	routes_log(arg, req);
	ptth_response_reset(res);
}

/* GET /trailers: a streamed body followed by a trailer field. */
static void
handle_trailers(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	routes_log(arg, req);
	ptth_response_add_header(res, "content-type", "text/plain; charset=utf-8");
	ptth_response_add_header(res, "trailer", "x-checksum");
	ptth_response_write(res, "body\n", 5);
	ptth_response_add_trailer(res, "x-checksum", "12345");
}

/* GET /service: which service's backend answered, for Host routing. */
static void
handle_service(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	const struct routes_conf *conf = arg;
	char body[300];

	routes_log(conf, req);
	snprintf(body, sizeof body, "%s\n", conf->service ? conf->service : "default");
	send_text(res, 200, body);
}

int
routes_register(struct ptth_mux *mux, const struct routes_conf *conf)
{
	static const struct {
		const char *path;
		ptth_handler_fn fn;
	} routes[] = {
		{ "/foo", handle_foo },
		{ "/echo", handle_echo },
		{ "/bytes", handle_bytes },
		{ "/headers", handle_headers },
		{ "/sleep", handle_sleep },
		{ "/status", handle_status },
		{ "/reset", handle_reset },
		{ "/trailers", handle_trailers },
		{ "/service", handle_service },
	};
	int rc;

	if (conf == NULL)
		conf = &routes_default;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		/* The handlers only read conf. */
		rc = ptth_mux_handle(mux, routes[i].path, routes[i].fn, (void *)conf);
		if (rc < 0)
			return rc;
	}
	return 0;
}
