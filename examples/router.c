/*
 * router.c -- bin/router: the ReverseHTTP router, as the original's
 * examples/router.go: tunnels on :8887, HTTP on :8888.
 *
 * Owns:    one struct ptth_router.
 * Threads: main() blocks in sigwait() until SIGINT or SIGTERM; the
 *          library's threads do the work.
 * Locks:   none.
 * Interface: bin/router [--http ADDR] [--tunnels ADDR] [--max-conns N]
 *          [--queue-size N] [--quiet] [--help]
 * Tutorial: "Running the demo".
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptth.h"

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: router [options]\n"
	        "  --http ADDR        listen for users on ADDR (default localhost:8888;\n"
	        "                     \":8888\" listens on every interface)\n"
	        "  --tunnels ADDR     listen for backend tunnels on ADDR (default localhost:8887)\n"
	        "  --max-conns N      user connections at once (default 1024)\n"
	        "  --queue-size N     requests waiting per tunnel (default 256)\n"
	        "  --quiet            no per-request log lines\n"
	        "  --help             this text\n");
}

/* Parses a positive int flag value or exits with status 2. */
static int
parse_count(const char *flag, const char *value)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (*value == '\0' || *end != '\0' || n <= 0 || n > 1000000) {
		fprintf(stderr, "router: %s needs a positive number, not \"%s\"\n", flag, value);
		exit(2);
	}
	return (int)n;
}

static void
parse_flags(int argc, char **argv, struct ptth_router_options *opts)
{
	static const struct option longopts[] = {
		{ "http", required_argument, NULL, 'h' },
		{ "tunnels", required_argument, NULL, 't' },
		{ "max-conns", required_argument, NULL, 'c' },
		{ "queue-size", required_argument, NULL, 'q' },
		{ "quiet", no_argument, NULL, 'Q' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h': opts->http_addr = optarg; break;
		case 't': opts->tunnel_addr = optarg; break;
		case 'c': opts->max_conns = parse_count("--max-conns", optarg); break;
		case 'q': opts->queue_size = parse_count("--queue-size", optarg); break;
		case 'Q': ptth_log_set_verbose(0); break;
		case 'H': usage(stdout); exit(0);
		default:
			fprintf(stderr, "router: bad flag \"%s\" (try --help)\n", argv[optind - 1]);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "router: unexpected argument \"%s\" (try --help)\n", argv[optind]);
		exit(2);
	}
}

/* Blocks SIGINT and SIGTERM in every thread (the library's threads
 * inherit the mask) and waits for one of them here. */
static void
wait_for_signal(sigset_t *set)
{
	int sig;

	while (sigwait(set, &sig) != 0)
		;
	fprintf(stderr, "router: %s, stopping\n", strsignal(sig));
}

int
main(int argc, char **argv)
{
	struct ptth_router_options opts;
	struct ptth_router *r;
	sigset_t set;
	int rc, http_port, tunnel_port;

	ptth_router_options_init(&opts);
	parse_flags(argc, argv, &opts);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	r = ptth_router_new(&opts);
	if (r == NULL) {
		fprintf(stderr, "router: out of memory\n");
		return 1;
	}
	rc = ptth_router_start(r);
	if (rc < 0) {
		fprintf(stderr, "router: cannot listen on %s / %s: %s\n", opts.tunnel_addr,
		        opts.http_addr, ptth_strerror(rc));
		ptth_router_free(r);
		return 2;
	}
	ptth_router_ports(r, &http_port, &tunnel_port);
	printf("Listening for reverse tunnels on tcp://localhost:%d\n", tunnel_port);
	printf("Listening for HTTP traffic on http://localhost:%d\n", http_port);
	fflush(stdout);
	wait_for_signal(&set);
	ptth_router_free(r);
	return 0;
}
