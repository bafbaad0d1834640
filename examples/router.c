/*
 * router.c -- bin/router: the ReverseHTTP router, as the original's
 * examples/router.go: tunnels on :8887, HTTP on :8888.
 *
 * Owns:    one struct ptth_router.
 * Threads: main() blocks in sigwait() until SIGINT or SIGTERM; SIGHUP
 *          re-reads --tunnel-tokens, reopens the access log, and it waits
 *          again. The library's threads do the work.
 * Locks:   none.
 * Interface: bin/router [--http ADDR] [--tunnels ADDR] [--admin ADDR]
 *          [--access-log FILE] [limits...] [--tunnel-tokens FILE] [--trace]
 *          [--quiet] [--help]; --help lists every flag with its default.
 *          Prints the two "Listening" lines with the addresses bound, and
 *          a "Serving metrics" line with --admin.
 *          Exit status: 0 after SIGINT/SIGTERM and the drain; 2 for a bad
 *          command line or an address it cannot listen on; 1 otherwise.
 * Tutorial: "Running the demo".
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptth.h"

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: router [options]\n"
	        "  --http ADDR              listen for users on ADDR (default localhost:8888;\n"
	        "                           \":8888\" listens on every interface)\n"
	        "  --tunnels ADDR           listen for backend tunnels on ADDR (default localhost:8887)\n"
	        "  --max-uri BYTES          longest request target, else 414 (default 8192)\n"
	        "  --max-header-bytes BYTES largest request header block, else 431 (default 65536,\n"
	        "                           at most 81920, the HTTP/1.1 parser's own limit)\n"
	        "  --max-header-fields N    most request fields, else 431 (default 100)\n"
	        "  --max-body BYTES         largest request body, else 413 (default: no limit)\n"
	        "  --header-timeout-ms MS   time to send a request head, else 408 (default 10000)\n"
	        "  --idle-timeout-ms MS     idle keep-alive connections close after (default 60000)\n"
	        "  --body-timeout-ms MS     longest pause between request body bytes, else 408,\n"
	        "                           or the request is cut if answered already (default 30000)\n"
	        "  --send-timeout-ms MS     a user that takes no response byte for this long is\n"
	        "                           dropped and its stream reset (default 60000)\n"
	        "  --backend-timeout-ms MS  time for a response head (else 504), and between\n"
	        "                           response body bytes (else the body is cut) (default 60000)\n"
	        "  --websocket-idle-timeout-ms MS\n"
	        "                           close a WebSocket on which no byte moved either way\n"
	        "                           for this long (default 300000)\n"
	        "  --max-conns N            user connections at once, else 503 (default 1024)\n"
	        "  --queue-size N           requests waiting per tunnel, else 503 (default 256)\n"
	        "  --no-forwarded           do not add X-Forwarded-* and Forwarded fields\n"
	        "  --ping-interval-ms MS    PING a tunnel quiet for this long (default 10000)\n"
	        "  --ping-timeout-ms MS     drop a tunnel whose PING is unanswered (default 5000)\n"
	        "  --drain-timeout-ms MS    on SIGINT/SIGTERM, let requests finish this long\n"
	        "                           (default 10000)\n"
	        "  --balance STRATEGY       random (default), round-robin or least-busy\n"
	        "  --admin ADDR             serve GET /metrics, /tunnels and /healthz on ADDR\n"
	        "                           (default: off; meant for loopback or a private network)\n"
	        "  --access-log FILE        one line per request to FILE, or \"-\" for stdout\n"
	        "                           (default: off); SIGHUP reopens FILE (log rotation)\n"
	        "  --trace                  print every HTTP/2 frame of every tunnel on stderr\n"
	        "  --tunnel-tokens FILE     tunnels must show a token: \"TOKEN SERVICE[,SERVICE...]\"\n"
	        "                           per line, \"*\" for any service, # comments; re-read\n"
	        "                           on SIGHUP (default: no tokens, any tunnel is taken)\n"
	        "  --allow-raw-tunnels      with --tunnel-tokens, still take raw tunnels (which\n"
	        "                           cannot show a token) into the default pool\n"
	        "  --raw-wait-ms MS         a dialler silent this long is a raw tunnel (default 200)\n"
	        "  --quiet                  no per-request log lines\n"
	        "  --help                   this text\n");
}

/* Parses a positive number flag value or exits with status 2. */
static long long
parse_number(const char *flag, const char *value)
{
	char *end;
	long long n = strtoll(value, &end, 10);

	if (*value == '\0' || *end != '\0' || n <= 0 || n > (1LL << 40)) {
		fprintf(stderr, "router: --%s needs a positive number, not \"%s\"\n", flag, value);
		exit(2);
	}
	return n;
}

/* Like parse_number(), for flags stored in an int. */
static int
parse_int(const char *flag, const char *value)
{
	long long n = parse_number(flag, value);

	if (n > 1000000000) {
		fprintf(stderr, "router: --%s is too large: %s\n", flag, value);
		exit(2);
	}
	return (int)n;
}

/* Like parse_number(), for --max-header-bytes, which the HTTP/1.1
 * parser caps. */
static size_t
parse_header_bytes(const char *flag, const char *value)
{
	long long n = parse_number(flag, value);

	if (n > PTTH_MAX_HEADER_BYTES_CAP) {
		fprintf(stderr, "router: --%s is at most %d (the HTTP/1.1 parser's own limit), not %s\n",
		        flag, PTTH_MAX_HEADER_BYTES_CAP, value);
		exit(2);
	}
	return (size_t)n;
}

static enum ptth_balance
parse_balance(const char *value)
{
	if (strcmp(value, "random") == 0)
		return PTTH_BALANCE_RANDOM;
	if (strcmp(value, "round-robin") == 0)
		return PTTH_BALANCE_ROUND_ROBIN;
	if (strcmp(value, "least-busy") == 0)
		return PTTH_BALANCE_LEAST_BUSY;
	fprintf(stderr, "router: --balance is random, round-robin or least-busy, not \"%s\"\n",
	        value);
	exit(2);
}

static void
parse_flags(int argc, char **argv, struct ptth_router_options *opts)
{
	enum { HTTP = 1, TUNNELS, MAX_URI, MAX_HEADER_BYTES, MAX_HEADER_FIELDS, MAX_BODY,
	       HEADER_TIMEOUT, IDLE_TIMEOUT, BODY_TIMEOUT, SEND_TIMEOUT, BACKEND_TIMEOUT,
	       WEBSOCKET_IDLE_TIMEOUT,
	       MAX_CONNS, QUEUE_SIZE, NO_FORWARDED, PING_INTERVAL, PING_TIMEOUT, DRAIN_TIMEOUT,
	       BALANCE, ADMIN, ACCESS_LOG, TUNNEL_TOKENS, ALLOW_RAW, RAW_WAIT, TRACE, QUIET,
	       HELP };
	static const struct option longopts[] = {
		{ "http", required_argument, NULL, HTTP },
		{ "tunnels", required_argument, NULL, TUNNELS },
		{ "max-uri", required_argument, NULL, MAX_URI },
		{ "max-header-bytes", required_argument, NULL, MAX_HEADER_BYTES },
		{ "max-header-fields", required_argument, NULL, MAX_HEADER_FIELDS },
		{ "max-body", required_argument, NULL, MAX_BODY },
		{ "header-timeout-ms", required_argument, NULL, HEADER_TIMEOUT },
		{ "idle-timeout-ms", required_argument, NULL, IDLE_TIMEOUT },
		{ "body-timeout-ms", required_argument, NULL, BODY_TIMEOUT },
		{ "send-timeout-ms", required_argument, NULL, SEND_TIMEOUT },
		{ "backend-timeout-ms", required_argument, NULL, BACKEND_TIMEOUT },
		{ "websocket-idle-timeout-ms", required_argument, NULL, WEBSOCKET_IDLE_TIMEOUT },
		{ "max-conns", required_argument, NULL, MAX_CONNS },
		{ "queue-size", required_argument, NULL, QUEUE_SIZE },
		{ "no-forwarded", no_argument, NULL, NO_FORWARDED },
		{ "ping-interval-ms", required_argument, NULL, PING_INTERVAL },
		{ "ping-timeout-ms", required_argument, NULL, PING_TIMEOUT },
		{ "drain-timeout-ms", required_argument, NULL, DRAIN_TIMEOUT },
		{ "balance", required_argument, NULL, BALANCE },
		{ "admin", required_argument, NULL, ADMIN },
		{ "access-log", required_argument, NULL, ACCESS_LOG },
		{ "trace", no_argument, NULL, TRACE },
		{ "tunnel-tokens", required_argument, NULL, TUNNEL_TOKENS },
		{ "allow-raw-tunnels", no_argument, NULL, ALLOW_RAW },
		{ "raw-wait-ms", required_argument, NULL, RAW_WAIT },
		{ "quiet", no_argument, NULL, QUIET },
		{ "help", no_argument, NULL, HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *flag;
	int ch, idx = 0;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		flag = (ch == '?') ? argv[optind - 1] : longopts[idx].name;
		switch (ch) {
		case HTTP: opts->http_addr = optarg; break;
		case TUNNELS: opts->tunnel_addr = optarg; break;
		case MAX_URI: opts->max_uri = (size_t)parse_number(flag, optarg); break;
		case MAX_HEADER_BYTES: opts->max_header_bytes = parse_header_bytes(flag, optarg); break;
		case MAX_HEADER_FIELDS: opts->max_header_fields = parse_int(flag, optarg); break;
		case MAX_BODY: opts->max_body = parse_number(flag, optarg); break;
		case HEADER_TIMEOUT: opts->header_timeout_ms = parse_int(flag, optarg); break;
		case IDLE_TIMEOUT: opts->idle_timeout_ms = parse_int(flag, optarg); break;
		case BODY_TIMEOUT: opts->body_timeout_ms = parse_int(flag, optarg); break;
		case SEND_TIMEOUT: opts->send_timeout_ms = parse_int(flag, optarg); break;
		case BACKEND_TIMEOUT: opts->backend_timeout_ms = parse_int(flag, optarg); break;
		case WEBSOCKET_IDLE_TIMEOUT:
			opts->websocket_idle_timeout_ms = parse_int(flag, optarg);
			break;
		case MAX_CONNS: opts->max_conns = parse_int(flag, optarg); break;
		case QUEUE_SIZE: opts->queue_size = parse_int(flag, optarg); break;
		case NO_FORWARDED: opts->no_forwarded = 1; break;
		case PING_INTERVAL: opts->ping_interval_ms = parse_int(flag, optarg); break;
		case PING_TIMEOUT: opts->ping_timeout_ms = parse_int(flag, optarg); break;
		case DRAIN_TIMEOUT: opts->drain_timeout_ms = parse_int(flag, optarg); break;
		case BALANCE: opts->balance = parse_balance(optarg); break;
		case ADMIN: opts->admin_addr = optarg; break;
		case ACCESS_LOG: opts->access_log = optarg; break;
		case TRACE: opts->trace = stderr; break;
		case TUNNEL_TOKENS: opts->tunnel_tokens_file = optarg; break;
		case ALLOW_RAW: opts->allow_raw_tunnels = 1; break;
		case RAW_WAIT: opts->raw_wait_ms = parse_int(flag, optarg); break;
		case QUIET: ptth_log_set_verbose(0); break;
		case HELP: usage(stdout); exit(0);
		default:
			fprintf(stderr, "router: bad flag \"%s\" (try --help)\n", flag);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "router: unexpected argument \"%s\" (try --help)\n", argv[optind]);
		exit(2);
	}
}

/* Waits here for SIGINT or SIGTERM, blocked in every thread (the
 * library's threads inherit the mask). SIGHUP re-reads the tokens file
 * (the library logs the outcome), reopens the access log (after
 * logrotate renamed it), and waits on. */
static void
wait_for_signal(struct ptth_router *r, sigset_t *set)
{
	int sig, rc;

	for (;;) {
		while (sigwait(set, &sig) != 0)
			;
		if (sig != SIGHUP)
			break;
		bool tokens_or_log = false;
		rc = ptth_router_reload_tokens(r);
		if (rc != PTTH_ESTATE)
			tokens_or_log = true;
		rc = ptth_router_reopen_access_log(r);
		if (rc != PTTH_ESTATE)
			tokens_or_log = true;
		if (rc < 0 && rc != PTTH_ESTATE)
			fprintf(stderr, "router: SIGHUP: cannot reopen the access log: %s\n",
			        ptth_strerror(rc));
		else if (rc == 0)
			fprintf(stderr, "router: SIGHUP: access log reopened\n");
		if (!tokens_or_log)
			fprintf(stderr, "router: SIGHUP: no --tunnel-tokens file to re-read, "
			        "no access log to reopen\n");
	}
	fprintf(stderr, "router: %s, draining\n", strsignal(sig));
}

/* Formats ADDR for the "Listening" lines: its host as written, so that
 * the defaults print the original's localhost, or 0.0.0.0 when it names
 * none (":PORT" binds every IPv4 interface); then the port actually
 * bound, which differs from ADDR's for port 0. */
static void
listen_addr_format(const char *addr, int port, char *buf, size_t size)
{
	const char *colon = strrchr(addr, ':');
	int host_len = colon != NULL ? (int)(colon - addr) : 0;

	if (host_len > 0)
		snprintf(buf, size, "%.*s:%d", host_len, addr, port);
	else
		snprintf(buf, size, "0.0.0.0:%d", port);
}

int
main(int argc, char **argv)
{
	struct ptth_router_options opts;
	struct ptth_router *r;
	sigset_t set;
	char http_where[300], tunnel_where[300], admin_where[300];
	int rc, http_port, tunnel_port, admin_port;

	ptth_router_options_init(&opts);
	parse_flags(argc, argv, &opts);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	r = ptth_router_new(&opts);
	if (r == NULL) {
		fprintf(stderr, "router: %s\n", errno == EINVAL ? "an option is out of range"
		                                               : "out of memory");
		return 1;
	}
	/* The tokens file first, so that its error is not taken for a bind error. */
	if (opts.tunnel_tokens_file != NULL && (rc = ptth_router_reload_tokens(r)) < 0) {
		fprintf(stderr, "router: cannot use --tunnel-tokens %s: %s\n",
		        opts.tunnel_tokens_file, ptth_strerror(rc));
		ptth_router_free(r);
		return 2;
	}
	rc = ptth_router_start(r);
	if (rc < 0) {
		fprintf(stderr, "router: cannot listen on %s / %s%s%s%s%s: %s\n", opts.tunnel_addr,
		        opts.http_addr, opts.admin_addr ? " / " : "",
		        opts.admin_addr ? opts.admin_addr : "",
		        opts.access_log ? ", or cannot open " : "",
		        opts.access_log ? opts.access_log : "", ptth_strerror(rc));
		ptth_router_free(r);
		return 2;
	}
	ptth_router_ports(r, &http_port, &tunnel_port);
	listen_addr_format(opts.tunnel_addr, tunnel_port, tunnel_where, sizeof tunnel_where);
	listen_addr_format(opts.http_addr, http_port, http_where, sizeof http_where);
	printf("Listening for reverse tunnels on tcp://%s\n", tunnel_where);
	printf("Listening for HTTP traffic on http://%s\n", http_where);
	admin_port = ptth_router_admin_port(r);
	if (admin_port > 0) {
		listen_addr_format(opts.admin_addr, admin_port, admin_where, sizeof admin_where);
		printf("Serving metrics on http://%s/metrics\n", admin_where);
	}
	fflush(stdout);
	wait_for_signal(r, &set);
	ptth_router_shutdown(r);
	ptth_router_free(r);
	return 0;
}
