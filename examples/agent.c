/*
 * agent.c -- bin/agent: puts an HTTP/1.1 server that already exists
 * behind the router, with no change to it. The agent dials the router
 * like bin/backend and forwards every request that arrives on the tunnel
 * to the server at --to (examples/agent/forward.c).
 *
 * Owns:    one struct ptth_backend and one struct forward.
 * Threads: main() waits for SIGINT/SIGTERM (or SIGUSR1 from the waiter
 *          thread when the backend ended by itself); tunnels run on the
 *          library's threads and each request on a "ptth-handler" thread,
 *          which runs the whole HTTP/1.1 exchange with the local server;
 *          each WebSocket adds a "ptth-ws-relay" thread (agent/upgrade.c).
 *          --router may be given several times: the agent then holds
 *          --tunnels tunnels to each router, redials each on its own, and
 *          drains from all of them on SIGTERM.
 * Locks:   none here; the forwarder's pool has its own.
 * Interface: bin/agent --to HOST:PORT [--router HOST:PORT]... [--service NAME
 *          --token-file FILE] [--tunnels N] [--timeout-ms MS] [--max-idle N]
 *          [--backoff-max-ms MS] [--trace] [--quiet]
 * Tutorial: "Putting an existing app behind the router".
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>

#include "ptth.h"
#include "agent/forward.h"

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: agent --to HOST:PORT [options]\n"
	        "Serves every request that reaches the router through its tunnels by\n"
	        "forwarding it over HTTP/1.1 to the server at --to, and its answer back.\n"
	        "  --to HOST:PORT       the HTTP/1.1 server to expose (required)\n"
	        "  --router HOST:PORT   a router's tunnel address (default localhost:8887);\n"
	        "                       repeat it to serve several routers at once\n"
	        "  --service NAME       introduce each tunnel with the PTTH handshake, serving\n"
	        "                       the service NAME (a DNS-style name; default: raw tunnels)\n"
	        "  --token-file FILE    send the bearer token on FILE's first line in the\n"
	        "                       handshake (never on the command line, where ps shows it)\n"
	        "  --tunnels N          tunnel connections held to each router (default 1)\n"
	        "  --timeout-ms MS      time to connect to --to (else 502), and its longest\n"
	        "                       silence (else 504, or a cut body) (default 30000)\n"
	        "  --max-idle N         idle keep-alive connections kept to --to (default 16)\n"
	        "  --backoff-max-ms MS  redial waits double from 100 ms up to this (default 10000)\n"
	        "  --trace              print every HTTP/2 frame of every tunnel on stderr\n"
	        "  --quiet              no per-request log lines\n"
	        "  --help               this text\n"
	        "SIGINT or SIGTERM: GOAWAY, let requests in flight finish, exit 0.\n");
}

/* Parses a positive number or exits with status 2. */
static int
parse_number(const char *flag, const char *value)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (*value == '\0' || *end != '\0' || n <= 0 || n > 1000000000) {
		fprintf(stderr, "agent: --%s needs a positive number, not \"%s\"\n", flag, value);
		exit(2);
	}
	return (int)n;
}

/* Reads the token from the first line of path (blanks around it
 * dropped), or exits with status 2. The result lives as long as the
 * program. */
static const char *
read_token_file(const char *path)
{
	static char token[1024];
	FILE *f = fopen(path, "re");
	char *start = token, *end;

	if (f == NULL || fgets(token, sizeof token, f) == NULL) {
		fprintf(stderr, "agent: --token-file %s: %s\n", path,
		        f == NULL ? strerror(errno) : "empty");
		exit(2);
	}
	fclose(f);
	start += strspn(start, " \t");
	end = start + strlen(start);
	while (end > start && strchr(" \t\r\n", end[-1]) != NULL)
		*--end = '\0';
	if (*start == '\0') {
		fprintf(stderr, "agent: --token-file %s: no token on its first line\n", path);
		exit(2);
	}
	return start;
}

#define MAX_ROUTERS 1024

static const char *routers[MAX_ROUTERS]; /* every --router, in order */

static void
parse_flags(int argc, char **argv, struct ptth_backend_options *opts,
            struct forward_options *fopts)
{
	enum { TO = 1, ROUTER, SERVICE, TOKEN_FILE, TUNNELS, TIMEOUT, MAX_IDLE, BACKOFF_MAX,
	       TRACE, QUIET, HELP };
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, TO },
		{ "router", required_argument, NULL, ROUTER },
		{ "service", required_argument, NULL, SERVICE },
		{ "token-file", required_argument, NULL, TOKEN_FILE },
		{ "tunnels", required_argument, NULL, TUNNELS },
		{ "timeout-ms", required_argument, NULL, TIMEOUT },
		{ "max-idle", required_argument, NULL, MAX_IDLE },
		{ "backoff-max-ms", required_argument, NULL, BACKOFF_MAX },
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
		case TO: fopts->to = optarg; break;
		case ROUTER:
			if (opts->router_count == MAX_ROUTERS) {
				fprintf(stderr, "agent: at most %d --router flags\n", MAX_ROUTERS);
				exit(2);
			}
			routers[opts->router_count++] = optarg;
			opts->router_addrs = routers;
			opts->router_addr = routers[0];
			break;
		case SERVICE: opts->service = optarg; break;
		case TOKEN_FILE: opts->token = read_token_file(optarg); break;
		case TUNNELS: opts->tunnels = parse_number(flag, optarg); break;
		case TIMEOUT: fopts->timeout_ms = parse_number(flag, optarg); break;
		case MAX_IDLE: fopts->max_idle = parse_number(flag, optarg); break;
		case BACKOFF_MAX: opts->backoff_max_ms = parse_number(flag, optarg); break;
		case TRACE: opts->trace = stderr; break;
		case QUIET: fopts->verbose = 0; ptth_log_set_verbose(0); break;
		case HELP: usage(stdout); exit(0);
		default:
			fprintf(stderr, "agent: bad flag \"%s\" (try --help)\n", argv[optind - 1]);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "agent: unexpected argument \"%s\" (try --help)\n", argv[optind]);
		exit(2);
	}
	if (fopts->to == NULL) {
		fprintf(stderr, "agent: --to HOST:PORT is required (try --help)\n");
		exit(2);
	}
}

/* Waits for the backend to end on its own, then wakes main() with
 * SIGUSR1. */
static void *
waiter_thread_main(void *arg)
{
	struct ptth_backend *b = arg;

	ptth_backend_wait(b);
	kill(getpid(), SIGUSR1);
	return NULL;
}

/* Blocks the stop signals in every thread to come; main() takes them
 * with sigwait(). */
static void
signals_block(sigset_t *set)
{
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Serves until a signal or the backend's end; returns the exit status. */
static int
agent_serve(struct ptth_backend *b, const char *router_addr, sigset_t *set)
{
	pthread_t waiter;
	int rc, sig;

	if (pthread_create(&waiter, NULL, waiter_thread_main, b) != 0) {
		fprintf(stderr, "agent: cannot start a thread\n");
		ptth_backend_stop(b);
		return 1;
	}
	while (sigwait(set, &sig) != 0)
		;
	if (sig != SIGUSR1)
		fprintf(stderr, "agent: %s, draining\n", strsignal(sig));
	ptth_backend_stop(b);
	pthread_join(waiter, NULL);
	rc = ptth_backend_wait(b);
	if (sig == SIGUSR1 && rc < 0) {
		fprintf(stderr, "agent: tunnel to %s: %s\n", router_addr, ptth_strerror(rc));
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct ptth_backend_options opts;
	struct forward_options fopts = { .verbose = 1 };
	struct ptth_backend *b = NULL;
	struct forward *fwd;
	sigset_t set;
	int rc, status = 1;

	ptth_backend_options_init(&opts);
	opts.reconnect = 1; /* an agent redials for as long as it runs */
	parse_flags(argc, argv, &opts, &fopts);
	signals_block(&set);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "agent: cannot initialise libcurl\n");
		return 1;
	}
	fwd = forward_new(&fopts);
	if (fwd == NULL) {
		fprintf(stderr, "agent: --to %s: %s\n", fopts.to,
		        errno == EINVAL ? "not HOST:PORT" : strerror(errno));
		status = errno == EINVAL ? 2 : 1;
		goto out_curl;
	}
	opts.handler = forward_serve;
	opts.handler_arg = fwd;
	b = ptth_backend_new(&opts);
	if (b == NULL && (opts.service != NULL || opts.token != NULL)) {
		fprintf(stderr, "agent: --service must be a DNS-style name (a-z, 0-9, '-', '.')"
		        " and the token a bearer token (letters, digits, -._~+/ then =)\n");
		status = 2;
		goto out_backend;
	}
	for (int i = 0; i < (opts.router_count > 0 ? opts.router_count : 1); i++)
		fprintf(stderr, "Dialing the router at %s for http://%s\n",
		        opts.router_count > 0 ? routers[i] : opts.router_addr, fopts.to);
	rc = b ? ptth_backend_start(b) : -ENOMEM;
	if (rc < 0) {
		fprintf(stderr, "agent: cannot reach the router at %s: %s\n", opts.router_addr,
		        ptth_strerror(rc));
		goto out_backend;
	}
	status = agent_serve(b, opts.router_addr, &set);
out_backend:
	ptth_backend_free(b); /* every handler has returned: the pool is idle */
	forward_free(fwd);
out_curl:
	curl_global_cleanup();
	return status;
}
