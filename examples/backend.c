/*
 * backend.c -- bin/backend: a backend service that dials the router, as
 * the original's examples/backend.go, plus routes for teaching.
 *
 * Owns:    one mux and one struct ptth_backend; the teaching routes are
 *          in examples/backend/routes.c, shared with the test suites.
 * Threads: main() waits for SIGINT/SIGTERM (or SIGUSR1 from the waiter
 *          thread when the backend ended by itself); tunnels and handlers
 *          run on the library's threads. --router may be given several
 *          times: the backend then holds --tunnels tunnels to each router,
 *          redials each on its own, and drains from all of them on SIGTERM.
 * Locks:   none; the routes' settings are written before serving starts.
 * Interface: bin/backend [--router HOST:PORT]... [--tunnels N] [--no-reconnect]
 *          [--backoff-max-ms MS] [--service NAME] [--token-file FILE]
 *          [--delay-ms N] [--trace] [--quiet]
 *   the routes of examples/backend/routes.c: GET /foo, POST /echo,
 *   GET /bytes, /headers, /sleep, /status, /reset, /trailers, /service;
 *   and its own:
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
#include "backend/routes.h"

/* The largest WebSocket message /ws takes (wslay keeps a whole message). */
#define WS_MAX_MESSAGE (64 * 1024 * 1024)

/* The routes' settings: --delay-ms, --quiet and --service write them
 * before serving starts; the handlers only read them. */
static struct routes_conf routes = { .foo_delay_ms = 1, .log = true };

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

	if (routes.log)
		fprintf(stderr, "handling: %s\n", ptth_request_path(req));
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
	if (routes.log)
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
	ws_serve(req, res, false, routes_query_number(ptth_request_query(req), "n", -1));
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
		case SERVICE: opts->service = routes.service = optarg; break;
		case TOKEN_FILE: opts->token = read_token_file(optarg); break;
		case DELAY: routes.foo_delay_ms = parse_number(flag, optarg); break;
		case TRACE: opts->trace = stderr; break;
		case QUIET: routes.log = false; ptth_log_set_verbose(0); break;
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

/* Registers the teaching routes (examples/backend/routes.c), then the WebSocket
 * ones, which need wslay and so live here alone. Returns 0 or a
 * negative code. */
static int
mux_setup(struct ptth_mux *mux)
{
	int rc = routes_register(mux, &routes);

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
