/*
 * test_compat.c -- wire compatibility with the Go original: our router in
 * front of its backend, and our backend behind its router.
 *
 * The Go peers are tests/compat (a re-creation of the original proof of
 * concept), built by tests/compat/build.sh into the directory named by
 * PTTH_GO_BIN_DIR; this suite builds nothing itself and fails, naming
 * the build command, when that directory or a program in it is missing.
 *
 * Every test gets a fresh fixture (setup/teardown):
 *   - "our router": ptth_router on 127.0.0.1:0 and a gobackend child
 *     dialling its tunnel port;
 *   - "Go router": a gorouter child on 127.0.0.1:0 (it prints the ports
 *     it bound, one "Tunnel added:" line per tunnel and its log on
 *     stdout, read here through a pipe) and a ptth_backend serving
 *     bin/backend's routes (GET and HEAD /foo, POST /echo, GET /reset...)
 *     dialled to its tunnel port;
 *   - "bin/backend behind the Go router": the same gorouter, and our
 *     example program from PTTH_BIN_DIR as a second child.
 * The teardown, which cmocka runs even after a failed assertion, stops
 * the backend or router in this process (joining their threads) and
 * kills and reaps the child. Every wait is bounded; children also get
 * SIGKILL if this process dies first (PR_SET_PDEATHSIG).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <curl/curl.h>

#include "ptth.h"
#include "backend/routes.h"

#define ECHO_SIZE (1024 * 1024)   /* the /echo upload, 1 MiB */
#define CONCURRENT 10
#define START_TIMEOUT_MS 15000    /* a child printing its ports, a tunnel */
#define EXIT_TIMEOUT_MS 15000     /* bin/backend draining after SIGTERM */
#define REQUEST_TIMEOUT_S 60L     /* one libcurl transfer (TSan is slow) */
#define BUILD_HINT "build them with: tests/compat/build.sh build/go && " \
	"export PTTH_GO_BIN_DIR=$PWD/build/go"

/* A child process whose stdout may be read line by line. */
struct child {
	pid_t pid;                /* 0 when none, or once reaped */
	int out;                  /* read end of its stdout, or -1 */
	char buf[4096];           /* bytes read from out, not yet returned */
	size_t len;
	char skipped[4096];       /* lines child_wait_line() passed over, the
	                           * first 4 KiB of them, NUL-terminated */
	size_t skipped_len;
};

/* Everything one test starts; the teardown undoes whatever is set. */
struct fixture {
	struct child child;            /* gobackend, or gorouter */
	struct child bin_backend;      /* bin/backend behind gorouter, if any */
	struct ptth_router *router;    /* "our router" only */
	struct ptth_backend *backend;  /* "Go router" only */
	struct ptth_mux *mux;
	int http_port;                 /* where users send requests */
	int tunnel_port;               /* where backends dial */
};

/* ---------------------------------------------------------------------
 * Child processes.
 */

/* The path of Go program name in PTTH_GO_BIN_DIR, written into path.
 * Returns false, with a message on stderr, when it cannot be run. */
static bool
go_program(const char *name, char *path, size_t size)
{
	const char *dir = getenv("PTTH_GO_BIN_DIR");

	if (dir == NULL || dir[0] == '\0') {
		fprintf(stderr, "test_compat: PTTH_GO_BIN_DIR is not set; the Go "
		        "peers are not built; " BUILD_HINT "\n");
		return false;
	}
	snprintf(path, size, "%s/%s", dir, name);
	if (access(path, X_OK) < 0) {
		fprintf(stderr, "test_compat: %s: %s; " BUILD_HINT "\n", path,
		        strerror(errno));
		return false;
	}
	return true;
}

/* The path of our example program name in PTTH_BIN_DIR (default "bin"),
 * written into path. Returns false, with a message, when it cannot be run. */
static bool
bin_program(const char *name, char *path, size_t size)
{
	const char *dir = getenv("PTTH_BIN_DIR");

	snprintf(path, size, "%s/%s", dir != NULL && dir[0] != '\0' ? dir : "bin", name);
	if (access(path, X_OK) < 0) {
		fprintf(stderr, "test_compat: %s: %s; run make first\n", path, strerror(errno));
		return false;
	}
	return true;
}

/* Starts argv[0] with stdout on a pipe kept in c->out (stdin from
 * /dev/null, stderr inherited). Returns 0 or a negative code. */
static int
child_start(struct child *c, char *const argv[])
{
	int fds[2];

	c->pid = 0;
	c->out = -1;
	c->len = 0;
	c->skipped_len = 0;
	c->skipped[0] = '\0';
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	/* Everything is prepared before fork: the child of a threaded
	 * process may only make async-signal-safe calls before exec. */
	c->pid = fork();
	if (c->pid < 0) {
		int err = -errno;

		c->pid = 0;
		close(fds[0]);
		close(fds[1]);
		return err;
	}
	if (c->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(fds[1], STDOUT_FILENO) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	c->out = fds[0];
	return 0;
}

/* Kills the child if it runs and reaps it; closes its pipe. Returns its
 * wait status, or -1 when there was no child. */
static int
child_stop(struct child *c)
{
	int status = -1;

	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
	if (c->out >= 0) {
		close(c->out);
		c->out = -1;
	}
	return status;
}

/* Waits until the child exits by itself, then reaps it into *status.
 * Returns 0, -ETIMEDOUT (it still runs) or another negative code. */
static int
child_wait_exit(struct child *c, int timeout_ms, int *status)
{
	struct pollfd p = { .events = POLLIN };
	int rc;

	p.fd = pidfd_open(c->pid, 0);
	if (p.fd < 0)
		return -errno;
	while ((rc = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	close(p.fd);
	if (rc == 0)
		return -ETIMEDOUT;
	if (rc < 0)
		return -errno;
	while (waitpid(c->pid, status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	c->pid = 0;
	return 0;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Keeps a line child_wait_line() passed over in c->skipped, as far as
 * there is room. */
static void
child_keep_skipped(struct child *c, const char *line)
{
	size_t room = sizeof c->skipped - c->skipped_len;
	int n = snprintf(c->skipped + c->skipped_len, room, "%s\n", line);

	c->skipped_len += n < 0 ? 0 : (size_t)n < room ? (size_t)n : room - 1;
}

/* Reads the child's stdout until a line starting with prefix arrives and
 * copies the rest of that line into rest. Lines before it are skipped,
 * and kept in c->skipped for tests that look at what the child logged.
 * Returns 0, -ETIMEDOUT, -EPIPE (stdout closed) or another negative code. */
static int
child_wait_line(struct child *c, const char *prefix, char *rest, size_t size,
                int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);

		if (nl != NULL) {
			size_t line = (size_t)(nl - c->buf);
			bool match = strncmp(c->buf, prefix, strlen(prefix)) == 0 &&
			             strlen(prefix) <= line;

			*nl = '\0';
			if (match)
				snprintf(rest, size, "%s", c->buf + strlen(prefix));
			else
				child_keep_skipped(c, c->buf);
			c->len -= line + 1;
			memmove(c->buf, nl + 1, c->len);
			if (match)
				return 0;
			continue;
		}
		if (c->len == sizeof c->buf)
			c->len = 0;  /* an absurdly long line: forget it */

		struct pollfd p = { .fd = c->out, .events = POLLIN };
		long long left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p.revents == 0)
			continue;
		n = read(c->out, c->buf + c->len, sizeof c->buf - c->len);
		if (n == 0)
			return -EPIPE;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			c->len += (size_t)n;
	}
}

/* The port at the end of "HOST:PORT", or -1. */
static int
port_of(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	long port = colon != NULL ? strtol(colon + 1, NULL, 10) : -1;

	return port > 0 && port < 65536 ? (int)port : -1;
}

/* ---------------------------------------------------------------------
 * HTTP through libcurl, with a body kept in a growing buffer.
 */

struct reply {
	long status;             /* 0 when no response arrived */
	char *body;              /* malloc'd, NUL-terminated; free() it */
	size_t len;
	curl_off_t content_length; /* the Content-Length field, or -1 */
	CURLcode rc;
};

/* Implements CURLOPT_WRITEFUNCTION: appends to the reply's body. */
static size_t
reply_write_callback(char *data, size_t size, size_t nmemb, void *arg)
{
	struct reply *r = arg;
	size_t n = size * nmemb;
	char *body = realloc(r->body, r->len + n + 1);

	if (body == NULL)
		return 0;
	memcpy(body + r->len, data, n);
	r->body = body;
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* GET (data NULL), HEAD (data NULL and head set) or POST of len bytes to
 * 127.0.0.1:port path. The reply is filled in even on failure; free
 * r->body afterwards. */
static void
http_request_method(int port, const char *path, bool head, const void *data, size_t len,
                    struct reply *r)
{
	struct curl_slist *fields = curl_slist_append(NULL, "Expect:");
	CURL *c = curl_easy_init();
	char url[256];

	memset(r, 0, sizeof *r);
	r->content_length = -1;
	r->rc = CURLE_FAILED_INIT;
	if (c == NULL || fields == NULL)
		goto out;
	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, reply_write_callback);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (data != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, fields);
	}
	if (head)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r->content_length);
out:
	curl_slist_free_all(fields);
	curl_easy_cleanup(c);
}

/* GET (data NULL) or POST of len bytes; see http_request_method(). */
static void
http_request(int port, const char *path, const void *data, size_t len,
             struct reply *r)
{
	http_request_method(port, path, false, data, len, r);
}

/* 1 MiB of pseudo-random bytes (xorshift), so that lost, repeated or
 * reordered chunks cannot go unnoticed. The caller frees it. */
static unsigned char *
echo_payload(void)
{
	unsigned char *p = malloc(ECHO_SIZE);
	uint32_t x = 2463534242u;

	for (size_t i = 0; p != NULL && i < ECHO_SIZE; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
	return p;
}

/* ---------------------------------------------------------------------
 * Fixtures.
 */

static int
group_setup(void **state)
{
	char path[PATH_MAX];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	ptth_log_set_verbose(0);
	if (!go_program("gorouter", path, sizeof path) ||
	    !go_program("gobackend", path, sizeof path))
		return -1;
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	curl_global_cleanup();
	return 0;
}

static int
fixture_teardown(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)
		return 0;
	child_stop(&f->bin_backend);
	ptth_backend_free(f->backend);
	ptth_mux_free(f->mux);
	child_stop(&f->child);
	ptth_router_free(f->router);
	free(f);
	*state = NULL;
	return 0;
}

/* A zeroed fixture with no child, stored in *state; NULL when out of
 * memory. */
static struct fixture *
fixture_new(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	*state = f;
	if (f != NULL) {
		f->child.out = -1;
		f->bin_backend.out = -1;
	}
	return f;
}

/* Our router on 127.0.0.1:0, and gobackend dialled to its tunnel port
 * and listed as a tunnel. cmocka runs no teardown after a failed setup,
 * so a failure here undoes what was done. */
static int
our_router_setup(void **state)
{
	struct ptth_router_options opts;
	struct fixture *f = fixture_new(state);
	char prog[PATH_MAX], addr[64];
	char *argv[] = { prog, "-router", addr, NULL };

	if (f == NULL)
		return -1;
	ptth_router_options_init(&opts);
	opts.http_addr = "127.0.0.1:0";
	opts.tunnel_addr = "127.0.0.1:0";
	f->router = ptth_router_new(&opts);
	if (f->router == NULL || ptth_router_start(f->router) < 0 ||
	    ptth_router_ports(f->router, &f->http_port, &f->tunnel_port) < 0 ||
	    !go_program("gobackend", prog, sizeof prog))
		goto fail;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", f->tunnel_port);
	if (child_start(&f->child, argv) < 0)
		goto fail;
	if (ptth_router_wait_tunnels(f->router, 1, START_TIMEOUT_MS) < 0) {
		fprintf(stderr, "gobackend did not become a tunnel of our router\n");
		goto fail;
	}
	return 0;
fail:
	fixture_teardown(state);
	return -1;
}

/* Starts gorouter on 127.0.0.1:0 and reads the ports it bound.
 * Returns 0 or -1. */
static int
go_router_start(struct fixture *f)
{
	char prog[PATH_MAX], tunnels[64], http[64];
	char *argv[] = { prog, "-http", "127.0.0.1:0", "-tunnels", "127.0.0.1:0", NULL };

	if (!go_program("gorouter", prog, sizeof prog) || child_start(&f->child, argv) < 0)
		return -1;
	if (child_wait_line(&f->child, "tunnels ", tunnels, sizeof tunnels,
	                    START_TIMEOUT_MS) < 0 ||
	    child_wait_line(&f->child, "http ", http, sizeof http, START_TIMEOUT_MS) < 0) {
		fprintf(stderr, "gorouter did not print its ports\n");
		return -1;
	}
	f->http_port = port_of(http);
	f->tunnel_port = port_of(tunnels);
	return f->http_port < 0 || f->tunnel_port < 0 ? -1 : 0;
}

/* Waits for gorouter's "Tunnel added:" line, which it prints once the
 * new tunnel is in its pool. Returns 0 or -1. */
static int
go_router_wait_tunnel(struct fixture *f)
{
	char added[64];

	if (child_wait_line(&f->child, "Tunnel added: ", added, sizeof added,
	                    START_TIMEOUT_MS) < 0) {
		fprintf(stderr, "no backend became a tunnel of gorouter\n");
		return -1;
	}
	return 0;
}

/* gorouter on 127.0.0.1:0, and our backend (bin/backend's routes,
 * examples/backend/routes.c: GET and HEAD /foo, POST /echo, GET /reset...)
 * dialled to its tunnel port and listed as a tunnel. A failure undoes
 * what was done. */
static int
go_router_setup(void **state)
{
	struct fixture *f = fixture_new(state);
	struct ptth_backend_options opts = { 0 };
	char addr[64];

	if (f == NULL)
		return -1;
	if (go_router_start(f) < 0)
		goto fail;
	f->mux = ptth_mux_new();
	if (f->mux == NULL || routes_register(f->mux, NULL) < 0)
		goto fail;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", f->tunnel_port);
	opts.router_addr = addr;
	opts.handler = ptth_mux_serve;
	opts.handler_arg = f->mux;
	f->backend = ptth_backend_new(&opts);
	if (f->backend == NULL || ptth_backend_start(f->backend) < 0 ||
	    go_router_wait_tunnel(f) < 0)
		goto fail;
	return 0;
fail:
	fixture_teardown(state);
	return -1;
}

/* gorouter on 127.0.0.1:0, and our example program bin/backend (no
 * redial) dialled to it and listed as a tunnel. */
static int
go_router_bin_backend_setup(void **state)
{
	struct fixture *f = fixture_new(state);
	char prog[PATH_MAX], addr[64];
	char *argv[] = { prog, "--router", addr, "--no-reconnect", "--quiet", NULL };

	if (f == NULL)
		return -1;
	if (go_router_start(f) < 0 || !bin_program("backend", prog, sizeof prog))
		goto fail;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", f->tunnel_port);
	if (child_start(&f->bin_backend, argv) < 0 || go_router_wait_tunnel(f) < 0)
		goto fail;
	return 0;
fail:
	fixture_teardown(state);
	return -1;
}

/* ---------------------------------------------------------------------
 * The checks, shared by both directions.
 */

static void
expect_foo(int port)
{
	struct reply r;

	http_request(port, "/foo", NULL, 0, &r);
	if (r.rc != CURLE_OK)
		print_error("GET /foo: %s\n", curl_easy_strerror(r.rc));
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_non_null(r.body);
	assert_string_equal(r.body, "bar");
	free(r.body);
}

static void
expect_echo_1mib(int port)
{
	unsigned char *payload = echo_payload();
	struct reply r;

	assert_non_null(payload);
	http_request(port, "/echo", payload, ECHO_SIZE, &r);
	if (r.rc != CURLE_OK)
		print_error("POST /echo: %s\n", curl_easy_strerror(r.rc));
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, ECHO_SIZE);
	assert_memory_equal(r.body, payload, ECHO_SIZE);
	free(r.body);
	free(payload);
}

struct getter {
	pthread_t thread;
	int port;
	struct reply reply;       /* written by the thread, read after join */
};

static void *
getter_thread_main(void *arg)
{
	struct getter *g = arg;

	http_request(g->port, "/foo", NULL, 0, &g->reply);
	return NULL;
}

/* CONCURRENT GET /foo at once; every one must be 200 "bar". */
static void
expect_concurrent_foo(int port)
{
	struct getter g[CONCURRENT];
	int started = 0, ok = 0;

	memset(g, 0, sizeof g);
	for (int i = 0; i < CONCURRENT; i++) {
		g[i].port = port;
		if (pthread_create(&g[i].thread, NULL, getter_thread_main, &g[i]) != 0)
			break;
		started++;
	}
	for (int i = 0; i < started; i++) {
		pthread_join(g[i].thread, NULL);
		if (g[i].reply.rc == CURLE_OK && g[i].reply.status == 200 &&
		    g[i].reply.body != NULL && strcmp(g[i].reply.body, "bar") == 0)
			ok++;
		else
			print_error("request %d: %s, status %ld\n", i,
			            curl_easy_strerror(g[i].reply.rc), g[i].reply.status);
		free(g[i].reply.body);
	}
	assert_int_equal(started, CONCURRENT);
	assert_int_equal(ok, CONCURRENT);
}

/* ---------------------------------------------------------------------
 * Our router in front of the Go backend.
 */

static void
test_compat_our_router_gets_foo_from_go_backend(void **state)
{
	struct fixture *f = *state;

	expect_foo(f->http_port);
}

static void
test_compat_our_router_serves_10_concurrent_requests_from_go_backend(void **state)
{
	struct fixture *f = *state;

	expect_concurrent_foo(f->http_port);
}

static void
test_compat_our_router_echoes_1mib_through_go_backend(void **state)
{
	struct fixture *f = *state;

	expect_echo_1mib(f->http_port);
}

/* The Go backend (x/net's server) answers HEAD with a head and no body;
 * our router passes the head on, Content-Length included. */
static void
test_compat_our_router_heads_foo_from_go_backend(void **state)
{
	struct fixture *f = *state;
	struct reply r;

	http_request_method(f->http_port, "/foo", true, NULL, 0, &r);
	free(r.body);
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	assert_int_equal(r.content_length, 3);
	expect_foo(f->http_port); /* the connection's tunnel still serves */
}

/* ---------------------------------------------------------------------
 * Our backend behind the Go router.
 */

static void
test_compat_go_router_gets_foo_from_our_backend(void **state)
{
	struct fixture *f = *state;

	expect_foo(f->http_port);
}

static void
test_compat_go_router_echoes_1mib_through_our_backend(void **state)
{
	struct fixture *f = *state;

	expect_echo_1mib(f->http_port);
}

static void
test_compat_go_router_serves_10_concurrent_requests_from_our_backend(void **state)
{
	struct fixture *f = *state;

	expect_concurrent_foo(f->http_port);
}

/* ptth.h documents ptth_response_reset() as RST_STREAM INTERNAL_ERROR.
 * gorouter drops a tunnel whose round trip fails and logs the error,
 * which names the code the peer sent. */
static void
test_compat_go_router_sees_internal_error_when_our_backend_resets(void **state)
{
	struct fixture *f = *state;
	char dropped[256];
	struct reply r;

	http_request(f->http_port, "/reset", NULL, 0, &r);
	free(r.body);
	assert_int_equal(r.rc, CURLE_OK);
	/* Its only tunnel dropped, gorouter is left with none. */
	assert_int_equal(r.status, 503);
	assert_int_equal(child_wait_line(&f->child, "Tunnel dropped: ", dropped,
	                                 sizeof dropped, START_TIMEOUT_MS), 0);
	if (strstr(dropped, "INTERNAL_ERROR") == NULL)
		fail_msg("gorouter saw \"%s\", not INTERNAL_ERROR", dropped);
}

/* RFC 9110 section 9.3.2 and RFC 9113 section 8.1.1: a response to HEAD
 * carries no DATA. Go's x/net client resets a stream that does, and logs
 * "protocol error: received DATA on a HEAD request". Through gorouter,
 * HEAD /foo gets 200 with our handler's Content-Length and no body, and
 * gorouter logs no protocol error. GET /reset then makes gorouter log
 * "Tunnel dropped:", and everything it logged before that line (the HEAD
 * included: one tunnel, one read loop) is checked. */
static void
test_compat_go_router_sees_no_data_on_head_from_our_backend(void **state)
{
	struct fixture *f = *state;
	char dropped[256];
	struct reply r;

	http_request_method(f->http_port, "/foo", true, NULL, 0, &r);
	free(r.body);
	if (r.rc != CURLE_OK)
		print_error("HEAD /foo: %s\n", curl_easy_strerror(r.rc));
	assert_int_equal(r.rc, CURLE_OK);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 0);
	assert_int_equal(r.content_length, 3);
	http_request(f->http_port, "/reset", NULL, 0, &r);
	free(r.body);
	assert_int_equal(child_wait_line(&f->child, "Tunnel dropped: ", dropped,
	                                 sizeof dropped, START_TIMEOUT_MS), 0);
	if (strstr(f->child.skipped, "protocol error") != NULL)
		fail_msg("gorouter logged a protocol error:\n%s", f->child.skipped);
}

/* bin/backend behind the Go router answers, and on SIGTERM drains and
 * exits 0 by itself. */
static void
test_compat_bin_backend_behind_go_router_exits_on_sigterm(void **state)
{
	struct fixture *f = *state;
	int status = 0, rc;

	expect_foo(f->http_port);
	assert_int_equal(kill(f->bin_backend.pid, SIGTERM), 0);
	rc = child_wait_exit(&f->bin_backend, EXIT_TIMEOUT_MS, &status);
	if (rc == -ETIMEDOUT)
		fail_msg("bin/backend still runs %d ms after SIGTERM", EXIT_TIMEOUT_MS);
	assert_int_equal(rc, 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

#define OUR_ROUTER_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, our_router_setup, fixture_teardown)
#define GO_ROUTER_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, go_router_setup, fixture_teardown)
#define GO_ROUTER_BIN_BACKEND_TEST(fn) \
	cmocka_unit_test_setup_teardown(fn, go_router_bin_backend_setup, fixture_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		OUR_ROUTER_TEST(test_compat_our_router_gets_foo_from_go_backend),
		OUR_ROUTER_TEST(test_compat_our_router_serves_10_concurrent_requests_from_go_backend),
		OUR_ROUTER_TEST(test_compat_our_router_echoes_1mib_through_go_backend),
		OUR_ROUTER_TEST(test_compat_our_router_heads_foo_from_go_backend),
		GO_ROUTER_TEST(test_compat_go_router_gets_foo_from_our_backend),
		GO_ROUTER_TEST(test_compat_go_router_echoes_1mib_through_our_backend),
		GO_ROUTER_TEST(test_compat_go_router_serves_10_concurrent_requests_from_our_backend),
		GO_ROUTER_TEST(test_compat_go_router_sees_internal_error_when_our_backend_resets),
		GO_ROUTER_TEST(test_compat_go_router_sees_no_data_on_head_from_our_backend),
		GO_ROUTER_BIN_BACKEND_TEST(test_compat_bin_backend_behind_go_router_exits_on_sigterm),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
