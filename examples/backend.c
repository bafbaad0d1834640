/*
 * backend.c -- bin/backend: a backend service that dials the router, as
 * the original's examples/backend.go, plus routes for teaching.
 *
 * Owns:    one mux and one struct ptth_backend.
 * Threads: main() waits for SIGINT/SIGTERM (or SIGUSR1 from the waiter
 *          thread when the backend ended by itself); tunnels and handlers
 *          run on the library's threads. --router may be given several
 *          times: the backend then holds --tunnels tunnels to each router,
 *          redials each on its own, and drains from all of them on SIGTERM.
 * Locks:   none; the settings below are written before serving starts.
 * Interface: bin/backend [--router HOST:PORT]... [--tunnels N] [--no-reconnect]
 *          [--backoff-max-ms MS] [--service NAME] [--token-file FILE]
 *          [--delay-ms N] [--trace] [--quiet]
 *   GET  /foo        "bar" after a 1 ms sleep, logs "handling: /foo"
 *   POST /echo       streams the request body back as it arrives
 *   GET  /bytes?n=N  streams N bytes (default 1 MiB)
 *   GET  /headers    lists the request fields it received
 *   GET  /sleep?ms=N answers after N ms
 *   GET  /status?code=N answers with that status
 *   GET  /reset      resets its stream instead of answering
 *   GET  /trailers   sends a body, then a trailer field
 *   GET  /service    the service this backend serves (--service), or "default"
 *   WebSocket /ws    echoes every message (wslay speaks WebSocket)
 *   WebSocket /ws/clock?n=N  a text message a second, from a second
 *                    thread; after N of them the server closes
 *   Exit status: 0 after SIGINT/SIGTERM, or when (--no-reconnect) the
 *   tunnel ended cleanly; 1 when the router cannot be reached or the
 *   tunnel failed; 2 for a bad command line.
 * Tutorial: "Running the demo".
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <unistd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wslay/wslay.h>

#include "ptth.h"

/* The largest WebSocket message /ws takes (wslay keeps a whole message). */
#define WS_MAX_MESSAGE (64 * 1024 * 1024)

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
/* tutorial: handle-foo */
static void
handle_foo(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)arg;
	log_handling(req);
	if (foo_delay_ms > 0)
		sleep_ms(foo_delay_ms);
	ptth_response_send(res, 200, "text/plain; charset=utf-8", "bar", 3);
}
/* tutorial: end */

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

static const char *served_service = "default"; /* set by --service before serving */

/* GET /service: which service's backend answered, for Host routing. */
static void
handle_service(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	char body[300];
	int len;

	(void)arg;
	log_handling(req);
	len = snprintf(body, sizeof body, "%s\n", served_service);
	ptth_response_send(res, 200, "text/plain; charset=utf-8", body, (size_t)len);
}

/* ---------------------------------------------------------------------
 * WebSockets. The library carries the stream's bytes both ways; wslay
 * (libwslay-dev) speaks WebSocket on top of them: frames, masking, ping
 * and pong, the close handshake. wslay's event API wants non-blocking
 * callbacks, so the bytes are read here first (ptth_request_read blocks)
 * and fed to wslay from a buffer that says "would block" once empty;
 * sending blocks in ptth_response_write, which is what flow control asks.
 */

/* One WebSocket served by wslay. */
struct ws_session {
	struct ptth_request *req;
	struct ptth_response *res;
	const char *name;            /* the route, for the log */
	bool echo;                   /* /ws: send every message back */
	long long ticks;             /* /ws/clock: messages to send (-1: no end) */
	pthread_mutex_t mu;          /* guards everything below; the reader and
	                                the clock thread both use wslay */
	pthread_cond_t wake;         /* the clock sleeps here between ticks */
	wslay_event_context_ptr ctx;
	bool ended;                  /* the reader is done: the clock stops */
	const uint8_t *in;           /* bytes read, not yet given to wslay */
	size_t in_len;
};

/* Implements wslay_event_recv_callback: the bytes the reader took from
 * the stream, then "would block" so wslay_event_recv() returns. */
static ssize_t
ws_recv_callback(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                 void *user_data)
{
	struct ws_session *ws = user_data;

	(void)flags;
	if (ws->in_len == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > ws->in_len)
		len = ws->in_len;
	memcpy(buf, ws->in, len);
	ws->in += len;
	ws->in_len -= len;
	return (ssize_t)len;
}

/* Implements wslay_event_send_callback: writes to the stream, blocking
 * while the router's window is closed. */
static ssize_t
ws_send_callback(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                 void *user_data)
{
	struct ws_session *ws = user_data;

	(void)flags;
	if (ptth_response_write(ws->res, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

/* Implements wslay_event_on_msg_recv_callback: /ws echoes every text or
 * binary message; wslay answers pings and the close handshake itself. */
static void
ws_on_msg_recv_callback(wslay_event_context_ptr ctx,
                        const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
	struct ws_session *ws = user_data;
	struct wslay_event_msg msg = { arg->opcode, arg->msg, arg->msg_length };

	if (ws->echo && !wslay_is_ctrl_frame(arg->opcode))
		wslay_event_queue_msg(ctx, &msg);
}

/* The clock thread of /ws/clock: one text message a second, pushed by
 * the server while the handler's thread reads; after ticks messages it
 * starts the close handshake itself. */
static void *
ws_clock_thread_main(void *arg)
{
	struct ws_session *ws = arg;
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&ws->mu);
	for (long long n = 1; !ws->ended; n++) {
		char text[96];
		time_t now = time(NULL);
		struct tm tm;
		next.tv_sec += 1;
		while (!ws->ended && pthread_cond_timedwait(&ws->wake, &ws->mu, &next) != ETIMEDOUT)
			;
		if (ws->ended)
			break;
		gmtime_r(&now, &tm);
		int len = snprintf(text, sizeof text, "tick %lld ", n);
		len += (int)strftime(text + len, sizeof text - (size_t)len, "%Y-%m-%dT%H:%M:%SZ", &tm);
		struct wslay_event_msg msg = { WSLAY_TEXT_FRAME, (const uint8_t *)text, (size_t)len };
		wslay_event_queue_msg(ws->ctx, &msg);
		wslay_event_send(ws->ctx);
		/* wslay sends control frames first: queue the close only now. */
		if (ws->ticks >= 0 && n >= ws->ticks) {
			wslay_event_queue_close(ws->ctx, WSLAY_CODE_NORMAL_CLOSURE,
			                        (const uint8_t *)"enough", 6);
			wslay_event_send(ws->ctx);
		}
	}
	pthread_mutex_unlock(&ws->mu);
	return NULL;
}

/* The reader, on the handler's thread: takes bytes from the stream and
 * lets wslay act on them, until the close handshake is over or the
 * stream ends. Returns what ended it, for the log. */
static const char *
ws_read_loop(struct ws_session *ws)
{
	uint8_t buf[16384];
	ssize_t n;

	for (;;) {
		pthread_mutex_lock(&ws->mu);
		bool more = wslay_event_want_read(ws->ctx) || wslay_event_want_write(ws->ctx);
		pthread_mutex_unlock(&ws->mu);
		if (!more)
			return "close handshake done";
		n = ptth_request_read(ws->req, buf, sizeof buf); /* outside the lock */
		if (n <= 0)
			return n == 0 ? "the user closed its side" : "the stream was reset";
		pthread_mutex_lock(&ws->mu);
		ws->in = buf;
		ws->in_len = (size_t)n;
		int rc = wslay_event_recv(ws->ctx);
		if (rc == 0)
			rc = wslay_event_send(ws->ctx);
		pthread_mutex_unlock(&ws->mu);
		if (rc != 0)
			return "a WebSocket protocol error";
	}
}

/* Accepts an extended CONNECT for "websocket" (200, head sent at once),
 * then serves it with wslay; with ticks, a clock thread pushes messages
 * meanwhile. Anything but a WebSocket gets 400. */
static void
ws_serve(struct ptth_request *req, struct ptth_response *res, bool echo, long long ticks)
{
	static const struct wslay_event_callbacks callbacks = {
		.recv_callback = ws_recv_callback,
		.send_callback = ws_send_callback,
		.on_msg_recv_callback = ws_on_msg_recv_callback,
	};
	struct ws_session ws = { .req = req, .res = res, .echo = echo, .ticks = ticks,
	                         .name = ptth_request_path(req) };
	pthread_condattr_t attr;
	pthread_t clock_thread;
	const char *why;

	log_handling(req);
	const char *protocol = ptth_request_protocol(req);
	if (protocol == NULL || strcmp(protocol, "websocket") != 0) {
		static const char text[] = "a WebSocket endpoint: connect with a WebSocket client\n";
		ptth_response_send(res, 400, "text/plain; charset=utf-8", text, sizeof text - 1);
		return;
	}
	if (wslay_event_context_server_init(&ws.ctx, &callbacks, &ws) != 0) {
		ptth_response_send(res, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
		return;
	}
	wslay_event_config_set_max_recv_msg_length(ws.ctx, WS_MAX_MESSAGE);
	pthread_mutex_init(&ws.mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ws.wake, &attr);
	pthread_condattr_destroy(&attr);
	ptth_response_set_status(res, 200);
	ptth_response_write(res, NULL, 0); /* accepted: the router sends its 101 */
	bool clock = !echo && pthread_create(&clock_thread, NULL, ws_clock_thread_main, &ws) == 0;
	why = ws_read_loop(&ws);
	pthread_mutex_lock(&ws.mu);
	ws.ended = true;
	pthread_cond_signal(&ws.wake);
	pthread_mutex_unlock(&ws.mu);
	if (clock)
		pthread_join(clock_thread, NULL); /* before req and res go away */
	if (verbose)
		fprintf(stderr, "ws: %s ended: %s\n", ws.name, why);
	wslay_event_context_free(ws.ctx);
	pthread_cond_destroy(&ws.wake);
	pthread_mutex_destroy(&ws.mu);
}

/* /ws: a WebSocket echo, text and binary, on the handler's thread alone. */
static void
handle_ws(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)arg;
	ws_serve(req, res, true, -1);
}

/* /ws/clock?n=N: one message a second, pushed by the server from a
 * thread of its own while the handler's thread reads; after N messages
 * (if given) the server closes. */
static void
handle_ws_clock(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)arg;
	ws_serve(req, res, false, query_number(ptth_request_query(req), "n", -1));
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: backend [options]\n"
	        "  --router HOST:PORT   a router's tunnel address (default localhost:8887);\n"
	        "                       repeat it to serve several routers at once\n"
	        "  --tunnels N          tunnel connections held to each router (default 1)\n"
	        "  --no-reconnect       exit when the tunnel ends instead of redialling\n"
	        "  --backoff-max-ms MS  redial waits double from 100 ms up to this (default 10000)\n"
	        "  --service NAME       introduce each tunnel with the PTTH handshake, serving\n"
	        "                       the service NAME (a DNS-style name; default: raw tunnels)\n"
	        "  --token-file FILE    send the bearer token on FILE's first line in the\n"
	        "                       handshake (never on the command line, where ps shows it)\n"
	        "  --delay-ms N         how long GET /foo sleeps (default 1)\n"
	        "  --trace              print every HTTP/2 frame of every tunnel on stderr\n"
	        "  --quiet              no per-request log lines\n"
	        "  --help               this text\n"
	        "routes: GET /foo, POST /echo, GET /bytes?n=N, GET /headers,\n"
	        "        GET /sleep?ms=N, GET /status?code=N, GET /reset, GET /trailers,\n"
	        "        GET /service,\n"
	        "        WebSocket /ws (echo), WebSocket /ws/clock?n=N (a message a second)\n"
	        "SIGINT or SIGTERM: GOAWAY, let requests in flight finish, exit 0.\n");
}

/* Parses a non-negative number or exits with status 2. */
static long
parse_number(const char *flag, const char *value)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (*value == '\0' || *end != '\0' || n < 0 || n > 1000000000) {
		fprintf(stderr, "backend: --%s needs a number, not \"%s\"\n", flag, value);
		exit(2);
	}
	return n;
}

/* Reads the token from the first line of path (blanks around it
 * dropped), or exits with status 2. The result is never freed: it lives
 * as long as the program. */
static const char *
read_token_file(const char *path)
{
	static char token[1024];
	FILE *f = fopen(path, "re");
	char *start = token, *end;

	if (f == NULL || fgets(token, sizeof token, f) == NULL) {
		fprintf(stderr, "backend: --token-file %s: %s\n", path,
		        f == NULL ? strerror(errno) : "empty");
		exit(2);
	}
	fclose(f);
	while (*start == ' ' || *start == '\t')
		start++;
	end = start + strlen(start);
	while (end > start && strchr(" \t\r\n", end[-1]) != NULL)
		*--end = '\0';
	if (*start == '\0') {
		fprintf(stderr, "backend: --token-file %s: no token on its first line\n", path);
		exit(2);
	}
	return start;
}

#define MAX_ROUTERS 1024

static const char *routers[MAX_ROUTERS]; /* every --router, in order */

static void
parse_flags(int argc, char **argv, struct ptth_backend_options *opts)
{
	enum { ROUTER = 1, TUNNELS, NO_RECONNECT, BACKOFF_MAX, SERVICE, TOKEN_FILE, DELAY, TRACE,
	       QUIET, HELP };
	static const struct option longopts[] = {
		{ "router", required_argument, NULL, ROUTER },
		{ "tunnels", required_argument, NULL, TUNNELS },
		{ "no-reconnect", no_argument, NULL, NO_RECONNECT },
		{ "backoff-max-ms", required_argument, NULL, BACKOFF_MAX },
		{ "service", required_argument, NULL, SERVICE },
		{ "token-file", required_argument, NULL, TOKEN_FILE },
		{ "delay-ms", required_argument, NULL, DELAY },
		{ "trace", no_argument, NULL, TRACE },
		{ "quiet", no_argument, NULL, QUIET },
		{ "help", no_argument, NULL, HELP },
		{ NULL, 0, NULL, 0 },
	};
	int ch, idx = 0;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		const char *flag = longopts[idx].name;
		switch (ch) {
		case ROUTER:
			if (opts->router_count == MAX_ROUTERS) {
				fprintf(stderr, "backend: at most %d --router flags\n", MAX_ROUTERS);
				exit(2);
			}
			routers[opts->router_count++] = optarg;
			opts->router_addrs = routers;
			opts->router_addr = routers[0];
			break;
		case TUNNELS: opts->tunnels = (int)parse_number(flag, optarg); break;
		case NO_RECONNECT: opts->reconnect = 0; break;
		case BACKOFF_MAX: opts->backoff_max_ms = (int)parse_number(flag, optarg); break;
		case SERVICE: opts->service = served_service = optarg; break;
		case TOKEN_FILE: opts->token = read_token_file(optarg); break;
		case DELAY: foo_delay_ms = parse_number(flag, optarg); break;
		case TRACE: opts->trace = stderr; break;
		case QUIET: verbose = 0; ptth_log_set_verbose(0); break;
		case HELP: usage(stdout); exit(0);
		default:
			fprintf(stderr, "backend: bad flag \"%s\" (try --help)\n", argv[optind - 1]);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "backend: unexpected argument \"%s\" (try --help)\n", argv[optind]);
		exit(2);
	}
}

/* Registers the routes. Returns 0 or a negative code. */
static int
mux_setup(struct ptth_mux *mux)
{
	int rc = 0;

	rc = rc ? rc : ptth_mux_handle(mux, "/foo", handle_foo, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/echo", handle_echo, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/bytes", handle_bytes, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/headers", handle_headers, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/sleep", handle_sleep, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/status", handle_status, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/reset", handle_reset, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/trailers", handle_trailers, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/service", handle_service, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/ws", handle_ws, NULL);
	rc = rc ? rc : ptth_mux_handle(mux, "/ws/clock", handle_ws_clock, NULL);
	return rc;
}

/* What the waiter thread hands back to main(). */
struct waiter {
	struct ptth_backend *b;
	int result;             /* ptth_backend_wait()'s; read after the join */
};

/* Waits for every tunnel to end for good (with --no-reconnect: the
 * router closed it, or it failed), keeps the result, then wakes main()
 * with SIGUSR1. After a SIGINT/SIGTERM, main()'s ptth_backend_stop()
 * ends the tunnels and this returns too. */
static void *
waiter_thread_main(void *arg)
{
	struct waiter *w = arg;

	w->result = ptth_backend_wait(w->b);
	kill(getpid(), SIGUSR1);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct ptth_backend_options opts;
	struct ptth_mux *mux = ptth_mux_new();
	struct ptth_backend *b;
	struct waiter w = { 0 };
	pthread_t waiter;
	sigset_t set;
	int rc, sig;

	ptth_backend_options_init(&opts);
	opts.reconnect = 1; /* bin/backend redials by default */
	parse_flags(argc, argv, &opts);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits this */
	if (mux == NULL || mux_setup(mux) < 0) {
		fprintf(stderr, "backend: out of memory\n");
		return 1;
	}
	opts.handler = ptth_mux_serve;
	opts.handler_arg = mux;
	b = ptth_backend_new(&opts);
	if (b == NULL && (opts.service != NULL || opts.token != NULL)) {
		fprintf(stderr, "backend: --service must be a DNS-style name (a-z, 0-9, '-', '.')"
		        " and the token a bearer token (letters, digits, -._~+/ then =)\n");
		return 2;
	}
	for (int i = 0; i < (opts.router_count > 0 ? opts.router_count : 1); i++)
		fprintf(stderr, "Dialing the router at %s\n",
		        opts.router_count > 0 ? routers[i] : opts.router_addr);
	rc = b ? ptth_backend_start(b) : -ENOMEM;
	if (rc == PTTH_EAUTH || rc == PTTH_EFORBIDDEN) {
		fprintf(stderr, "backend: the router at %s refused the tunnel: %s\n",
		        opts.router_addr, ptth_strerror(rc));
		ptth_backend_free(b);
		ptth_mux_free(mux);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "backend: cannot reach the router at %s: %s\n", opts.router_addr,
		        ptth_strerror(rc));
		ptth_backend_free(b);
		ptth_mux_free(mux);
		return 1;
	}
	w.b = b;
	if (pthread_create(&waiter, NULL, waiter_thread_main, &w) != 0) {
		fprintf(stderr, "backend: cannot start a thread\n");
		return 1;
	}
	while (sigwait(&set, &sig) != 0)
		;
	if (sig != SIGUSR1)
		fprintf(stderr, "backend: %s, draining\n", strsignal(sig));
	ptth_backend_stop(b);
	pthread_join(waiter, NULL);
	/* After SIGINT/SIGTERM the drain is the end, and a clean one. */
	rc = w.result;
	ptth_backend_free(b);
	ptth_mux_free(mux);
	if (sig == SIGUSR1 && rc < 0) {
		fprintf(stderr, "backend: tunnel to %s: %s\n", opts.router_addr, ptth_strerror(rc));
		return 1;
	}
	return 0;
}
