/*
 * harness.c -- shared helpers for end-to-end tests: routers and backends
 * in this process on ephemeral ports, serving bin/backend's routes
 * (examples/backend/routes.c) and two of their own, libcurl requests with
 * timeouts, raw sockets, child processes and memory readings.
 *
 * Owns:    each struct harness_backend (its ptth_backend, mux, name and
 *          barrier state); the caller owns routers, curl handles, sockets
 *          and child processes and frees them with the helpers here.
 * Threads: any test thread may call any helper. Route handlers run on the
 *          backend's worker threads and only touch their harness_backend
 *          under hb->mu.
 * Locks:   hb->mu guards the handler counters and the barrier; it is taken
 *          alone, never while calling into ptth, and the handlers never
 *          block on anything else while holding it (condition waits release it).
 * Interface:
 *   - harness_router_start() / harness_backend_start(): a router on
 *     127.0.0.1:0 and backends already listed as tunnels when they return;
 *     harness_backend_cut() ends a tunnel the hard way;
 *   - http_get() / http_post() and the http_client_* forms for keep-alive:
 *     libcurl with CURLOPT_TIMEOUT, bodies kept in a buffer or discarded;
 *   - harness_dial() and friends for raw HTTP/1.x bytes;
 *   - harness_spawn() / harness_spawn_piped() / harness_kill() /
 *     harness_wait_exit() for bin/ programs, harness_read_until() and
 *     harness_read_listening() for what they print;
 *   - harness_memory() for RSS bounds.
 * Tutorial: none; this is test support code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"          /* backend_start_fd(), for cuttable backends */
#include "backend/routes.h"           /* examples/backend/routes.c */
#include "support/harness.h"

#define HARNESS_BARRIER_DEFAULT_MS 20000

struct harness_backend {
	/* Set at start, read-only while serving: */
	struct ptth_backend *backend;
	struct ptth_mux *mux;
	char name[64];
	int cut_fd;                  /* a dup of the tunnel socket, or -1 */
	struct routes_conf routes;   /* examples/backend/routes.c's settings */

	pthread_mutex_t mu;          /* taken alone, never nested */
	pthread_cond_t changed;      /* any field below changed */
	/* guarded by mu: */
	int active;                  /* handlers running now */
	long started;                /* handlers started so far */
	int barrier_waiting;         /* handlers waiting inside /barrier */
	unsigned long barrier_round; /* bumped each time a barrier opens */
	bool closing;                /* harness_backend_free() has begun */
};

long long
harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec
harness_deadline(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

void
harness_cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

int
harness_setup(void **state)
{
	const char *verbose = getenv("PTTH_TEST_VERBOSE");

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	ptth_log_set_verbose(verbose != NULL && strcmp(verbose, "1") == 0);
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

int
harness_teardown(void **state)
{
	(void)state;
	curl_global_cleanup();
	return 0;
}

bool
harness_sanitized(void)
{
	const char *san = getenv("PTTH_SAN");

	return (san != NULL && san[0] != '\0') || getenv("ASAN_OPTIONS") != NULL ||
	       getenv("TSAN_OPTIONS") != NULL;
}

/* ---------------------------------------------------------------------
 * Router.
 */

int
harness_router_start(struct harness_router *hr)
{
	return harness_router_start_opts(hr, NULL);
}

int
harness_router_start_opts(struct harness_router *hr, const struct ptth_router_options *with)
{
	struct ptth_router_options opts;
	int rc;

	memset(hr, 0, sizeof *hr);
	if (with != NULL)
		opts = *with;
	else
		ptth_router_options_init(&opts);
	opts.http_addr = "127.0.0.1:0";
	opts.tunnel_addr = "127.0.0.1:0";
	hr->router = ptth_router_new(&opts);
	if (hr->router == NULL)
		return -ENOMEM;
	rc = ptth_router_start(hr->router);
	if (rc == 0)
		rc = ptth_router_ports(hr->router, &hr->http_port, &hr->tunnel_port);
	if (rc < 0) {
		ptth_router_free(hr->router);
		hr->router = NULL;
	}
	return rc;
}

void
harness_router_free(struct harness_router *hr)
{
	ptth_router_free(hr->router);
	hr->router = NULL;
}

void
harness_url(const struct harness_router *hr, const char *path, char *buf, size_t size)
{
	snprintf(buf, size, "http://127.0.0.1:%d%s", hr->http_port, path);
}

/* ---------------------------------------------------------------------
 * The test routes: the teaching routes of examples/backend/routes.c, plus
 * /barrier and /who.
 */

static void
send_text(struct ptth_response *res, int status, const char *text)
{
	ptth_response_send(res, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Implements the routes' sleep hook (GET /sleep): waits ms, or less
 * once harness_backend_free() has begun, so teardown never waits for a
 * sleeping handler. */
static void
harness_routes_sleep(long ms, void *arg)
{
	struct harness_backend *hb = arg;
	struct timespec deadline = harness_deadline(ms);
	int rc = 0;

	pthread_mutex_lock(&hb->mu);
	while (!hb->closing && rc == 0)
		rc = pthread_cond_timedwait(&hb->changed, &hb->mu, &deadline);
	pthread_mutex_unlock(&hb->mu);
}

/* Waits for the barrier of n handlers to open. Returns 0 when it opened,
 * ETIMEDOUT, or ECANCELED when the backend is being freed.
 * Caller must hold hb->mu. */
static int
barrier_wait_locked(struct harness_backend *hb, int n, long ms)
{
	struct timespec deadline = harness_deadline(ms);
	unsigned long round = hb->barrier_round;
	int rc = 0;

	if (++hb->barrier_waiting >= n) {
		hb->barrier_waiting = 0;
		hb->barrier_round++;
		pthread_cond_broadcast(&hb->changed);
		return 0;
	}
	pthread_cond_broadcast(&hb->changed); /* for harness_backend_wait_barrier */
	/* Invariant: we are counted in barrier_waiting until our round ends. */
	while (hb->barrier_round == round && !hb->closing && rc == 0)
		rc = pthread_cond_timedwait(&hb->changed, &hb->mu, &deadline);
	if (hb->barrier_round != round)
		return 0;
	hb->barrier_waiting--;
	return hb->closing ? ECANCELED : ETIMEDOUT;
}

static void
handle_barrier(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct harness_backend *hb = arg;
	const char *query = ptth_request_query(req);
	int n = (int)routes_query_number(query, "n", 2);
	long ms = (long)routes_query_number(query, "ms", HARNESS_BARRIER_DEFAULT_MS);
	int rc;

	pthread_mutex_lock(&hb->mu);
	rc = barrier_wait_locked(hb, n, ms);
	pthread_mutex_unlock(&hb->mu);
	if (rc == 0)
		send_text(res, 200, "ok");
	else if (rc == ETIMEDOUT)
		send_text(res, 504, "barrier timed out\n");
	else
		send_text(res, 503, "backend closing\n");
}

static void
handle_who(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct harness_backend *hb = arg;

	(void)req;
	ptth_response_add_header(res, "content-type", "text/plain; charset=utf-8");
	ptth_response_write(res, hb->name, strlen(hb->name));
}

/* The backend's handler: counts running handlers around the mux. */
static void
harness_serve(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct harness_backend *hb = arg;

	pthread_mutex_lock(&hb->mu);
	hb->active++;
	hb->started++;
	pthread_mutex_unlock(&hb->mu);
	ptth_mux_serve(req, res, hb->mux);
	/* End the response before counting ourselves out, so "idle" means
	 * every answer has been handed to the tunnel. */
	ptth_response_end(res);
	pthread_mutex_lock(&hb->mu);
	hb->active--;
	pthread_cond_broadcast(&hb->changed);
	pthread_mutex_unlock(&hb->mu);
}

/* ---------------------------------------------------------------------
 * Backend life cycle.
 */

static int
harness_mux_build(struct harness_backend *hb)
{
	hb->routes.sleep = harness_routes_sleep;
	hb->routes.sleep_arg = hb;
	hb->mux = ptth_mux_new();
	if (hb->mux == NULL)
		return -ENOMEM;
	if (routes_register(hb->mux, &hb->routes) < 0 ||
	    ptth_mux_handle(hb->mux, "/barrier", handle_barrier, hb) < 0 ||
	    ptth_mux_handle(hb->mux, "/who", handle_who, hb) < 0)
		return -ENOMEM;
	return 0;
}

static void
harness_backend_destroy(struct harness_backend *hb)
{
	ptth_backend_free(hb->backend);
	if (hb->cut_fd >= 0)
		close(hb->cut_fd);
	ptth_mux_free(hb->mux);
	pthread_cond_destroy(&hb->changed);
	pthread_mutex_destroy(&hb->mu);
	free(hb);
}

static int harness_connect(int port);

/* Starts a backend with the options in with (NULL: the defaults, one
 * tunnel, no reconnect; its router_addr is replaced by hr's tunnel port,
 * and a NULL handler means the harness's routes); with cuttable, on a
 * socket dialled here of which a dup is kept for harness_backend_cut().
 * *rc_out (may be NULL) gets the start's result. */
static struct harness_backend *
harness_backend_launch(struct harness_router *hr, const char *name, bool cuttable,
                       const struct ptth_backend_options *with, int *rc_out)
{
	struct harness_backend *hb = calloc(1, sizeof *hb);
	struct ptth_backend_options opts = { 0 };
	pthread_condattr_t attr;
	char addr[64];
	int before, fd, rc = -ENOMEM;

	if (hb == NULL)
		return NULL;
	hb->cut_fd = -1;
	snprintf(hb->name, sizeof hb->name, "%s", name);
	pthread_mutex_init(&hb->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&hb->changed, &attr);
	pthread_condattr_destroy(&attr);
	if (harness_mux_build(hb) < 0)
		goto out_destroy;
	if (with != NULL)
		opts = *with;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", hr->tunnel_port);
	opts.router_addr = addr;
	if (opts.handler == NULL) {
		opts.handler = harness_serve;
		opts.handler_arg = hb;
	}
	hb->backend = ptth_backend_new(&opts);
	rc = -EINVAL;
	if (hb->backend == NULL)
		goto out_destroy;
	before = ptth_router_tunnel_count(hr->router);
	if (!cuttable) {
		rc = ptth_backend_start(hb->backend);
	} else {
		fd = harness_connect(hr->tunnel_port);
		hb->cut_fd = fd < 0 ? -1 : dup(fd);
		rc = fd < 0 ? fd : hb->cut_fd < 0 ? -errno : backend_start_fd(hb->backend, fd);
		if (fd >= 0 && hb->cut_fd < 0)
			close(fd);
	}
	if (rc == 0)
		rc = ptth_router_wait_tunnels(hr->router, before + 1, HARNESS_TIMEOUT_MS);
	if (rc < 0)
		goto out_destroy;
	if (rc_out != NULL)
		*rc_out = 0;
	return hb;
out_destroy:
	if (rc_out != NULL)
		*rc_out = rc;
	harness_backend_destroy(hb);
	return NULL;
}

struct harness_backend *
harness_backend_start(struct harness_router *hr, const char *name)
{
	return harness_backend_launch(hr, name, false, NULL, NULL);
}

struct harness_backend *
harness_backend_start_opts(struct harness_router *hr, const char *name,
                           const struct ptth_backend_options *opts)
{
	return harness_backend_launch(hr, name, false, opts, NULL);
}

struct harness_backend *
harness_backend_start_cuttable(struct harness_router *hr, const char *name)
{
	return harness_backend_launch(hr, name, true, NULL, NULL);
}

struct harness_backend *
harness_backend_start_greeting(struct harness_router *hr, const char *name,
                               const char *service, const char *token, int *rc)
{
	struct ptth_backend_options opts = { .service = service, .token = token };

	return harness_backend_launch(hr, name, false, &opts, rc);
}

int
harness_backend_cut(struct harness_backend *hb)
{
	if (hb->cut_fd < 0)
		return -EBADF;
	return shutdown(hb->cut_fd, SHUT_RDWR) < 0 ? -errno : 0;
}

void
harness_backend_free(struct harness_backend *hb)
{
	if (hb == NULL)
		return;
	pthread_mutex_lock(&hb->mu);
	hb->closing = true;
	pthread_cond_broadcast(&hb->changed);
	pthread_mutex_unlock(&hb->mu);
	harness_backend_destroy(hb);
}

/* Waits until the predicate holds for hb. Returns 0 or -ETIMEDOUT. */
static int
harness_backend_wait(struct harness_backend *hb, bool (*pred)(struct harness_backend *, int),
                     int n, int timeout_ms)
{
	struct timespec deadline = harness_deadline(timeout_ms);
	int rc = 0;
	bool ok;

	pthread_mutex_lock(&hb->mu);
	while (!pred(hb, n) && rc == 0)
		rc = pthread_cond_timedwait(&hb->changed, &hb->mu, &deadline);
	ok = pred(hb, n);
	pthread_mutex_unlock(&hb->mu);
	return ok ? 0 : -ETIMEDOUT;
}

static bool
barrier_has(struct harness_backend *hb, int n)
{
	return hb->barrier_waiting >= n;
}

static bool
is_idle(struct harness_backend *hb, int n)
{
	(void)n;
	return hb->active == 0;
}

int
harness_backend_wait_barrier(struct harness_backend *hb, int n, int timeout_ms)
{
	return harness_backend_wait(hb, barrier_has, n, timeout_ms);
}

int
harness_backend_wait_idle(struct harness_backend *hb, int timeout_ms)
{
	return harness_backend_wait(hb, is_idle, 0, timeout_ms);
}

long
harness_backend_requests(struct harness_backend *hb)
{
	long n;

	pthread_mutex_lock(&hb->mu);
	n = hb->started;
	pthread_mutex_unlock(&hb->mu);
	return n;
}

/* ---------------------------------------------------------------------
 * libcurl.
 */

/* Implements curl's CURLOPT_WRITEFUNCTION. We use it to keep what fits in
 * the reply's buffer and count everything. */
static size_t
http_write_callback(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_reply *reply = arg;
	size_t n = size * nmemb;

	if (reply->body != NULL && reply->len + 1 < reply->cap) {
		size_t room = reply->cap - 1 - reply->len;
		size_t take = n < room ? n : room;
		memcpy(reply->body + reply->len, data, take);
		reply->len += take;
		reply->body[reply->len] = '\0';
	}
	reply->total += n;
	return n;
}

CURL *
http_client_new(void)
{
	CURL *c = curl_easy_init();
	long timeout_s = HARNESS_TIMEOUT_MS / 1000;

	if (c == NULL)
		return NULL;
	if (harness_sanitized())
		timeout_s *= 4;
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_callback);
	return c;
}

/* Runs the transfer set up on c and fills in reply. */
static CURLcode
http_client_perform(CURL *c, struct http_reply *reply)
{
	CURLcode rc;

	reply->status = 0;
	reply->len = 0;
	reply->total = 0;
	reply->connects = 0;
	if (reply->body != NULL && reply->cap > 0)
		reply->body[0] = '\0';
	curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply->status);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &reply->connects);
	return rc;
}

CURLcode
http_client_get(CURL *c, const char *url, struct http_reply *reply)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	return http_client_perform(c, reply);
}

CURLcode
http_client_post(CURL *c, const char *url, const void *data, size_t len,
                 struct http_reply *reply)
{
	struct curl_slist *fields = curl_slist_append(NULL, "Expect:");
	CURLcode rc;

	if (fields == NULL)
		return CURLE_OUT_OF_MEMORY;
	fields = curl_slist_append(fields, "Content-Type: application/octet-stream");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, fields);
	rc = http_client_perform(c, reply);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(fields);
	return rc;
}

CURLcode
http_get(const char *url, long *status, char *body, size_t cap, size_t *len)
{
	struct http_reply reply = { .body = body, .cap = cap };
	CURL *c = http_client_new();
	CURLcode rc;

	if (c == NULL)
		return CURLE_FAILED_INIT;
	rc = http_client_get(c, url, &reply);
	curl_easy_cleanup(c);
	*status = reply.status;
	if (len != NULL)
		*len = reply.len;
	return rc;
}

CURLcode
http_post(const char *url, const void *data, size_t data_len, long *status, char *body,
          size_t cap, size_t *len)
{
	struct http_reply reply = { .body = body, .cap = cap };
	CURL *c = http_client_new();
	CURLcode rc;

	if (c == NULL)
		return CURLE_FAILED_INIT;
	rc = http_client_post(c, url, data, data_len, &reply);
	curl_easy_cleanup(c);
	*status = reply.status;
	if (len != NULL)
		*len = reply.len;
	return rc;
}

/* ---------------------------------------------------------------------
 * Raw sockets.
 */

/* Connects to 127.0.0.1:port. Returns the socket or a negative code. */
static int
harness_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int
harness_dial(int port)
{
	struct timeval tv = { HARNESS_TIMEOUT_MS / 1000, 0 };
	int fd = harness_connect(port);

	if (fd < 0)
		return fd;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int
harness_send_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
harness_recv_until_close(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	if (cap == 0)
		return -ENOBUFS;
	for (;;) {
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf[len] = '\0';
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == cap - 1) {
			buf[len] = '\0';
			char extra;
			n = recv(fd, &extra, 1, 0);
			return n == 0 ? (ssize_t)len : -ENOBUFS;
		}
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

int
harness_tcp_count(int remote_port)
{
	char line[512];
	unsigned raddr, rport, state;
	int count = 0;
	FILE *f = fopen("/proc/net/tcp", "r");

	if (f == NULL)
		return -errno;
	if (fgets(line, sizeof line, f) == NULL) { /* the column titles */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		/* "sl: LOCALADDR:PORT REMADDR:PORT ST ...", all hex; an
		 * address is its s_addr read as a host integer, so 127.0.0.1
		 * shows as 0100007F on a little-endian machine. */
		if (sscanf(line, " %*d: %*x:%*x %x:%x %x", &raddr, &rport, &state) == 3 &&
		    raddr == htonl(INADDR_LOOPBACK) && (int)rport == remote_port &&
		    state == 0x01)
			count++;
	}
	fclose(f);
	return count;
}

/* ---------------------------------------------------------------------
 * Processes and memory.
 */

/* Closes both ends of each pipe in fds[n][2] that is open. */
static void
pipes_close(int fds[][2], int n)
{
	for (int i = 0; i < n; i++) {
		if (fds[i][0] >= 0)
			close(fds[i][0]);
		if (fds[i][1] >= 0)
			close(fds[i][1]);
	}
}

pid_t
harness_spawn_piped(const char *prog, const char *const args[], int *out_fd, int *err_fd)
{
	const char *dir = getenv("PTTH_BIN_DIR");
	char path[4096];
	const char *argv[32];
	size_t argc = 0;
	int fds[2][2] = { { -1, -1 }, { -1, -1 } }; /* stdout, stderr */
	pid_t pid, parent;

	snprintf(path, sizeof path, "%s/%s", dir != NULL && dir[0] != '\0' ? dir : "bin", prog);
	argv[argc++] = path;
	for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
		if (argc + 1 >= sizeof argv / sizeof argv[0])
			return -E2BIG;
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;
	if (access(path, X_OK) < 0 || (out_fd != NULL && pipe2(fds[0], O_CLOEXEC) < 0) ||
	    (err_fd != NULL && pipe2(fds[1], O_CLOEXEC) < 0)) {
		int rc = -errno;
		pipes_close(fds, 2);
		return rc;
	}
	/* Everything is prepared before fork: the child of a threaded process
	 * may only call async-signal-safe functions before exec. */
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		int rc = -errno;
		pipes_close(fds, 2);
		return rc;
	}
	if (pid == 0) {
		/* Die with the test: bin/backend redials forever otherwise.
		 * dup2() clears close-on-exec on the copies it makes. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent ||
		    (fds[0][1] >= 0 && dup2(fds[0][1], STDOUT_FILENO) < 0) ||
		    (fds[1][1] >= 0 && dup2(fds[1][1], STDERR_FILENO) < 0))
			_exit(127);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	if (out_fd != NULL) {
		*out_fd = fds[0][0];
		close(fds[0][1]);
	}
	if (err_fd != NULL) {
		*err_fd = fds[1][0];
		close(fds[1][1]);
	}
	return pid;
}

pid_t
harness_spawn(const char *prog, const char *const args[])
{
	return harness_spawn_piped(prog, args, NULL, NULL);
}

int
harness_kill(pid_t pid, int sig)
{
	int status;

	if (kill(pid, sig) < 0 && errno != ESRCH)
		return -errno;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return status;
}

/* A thread that reaps one child, so that harness_wait_exit() can wait
 * for the exit with a timeout on a condition variable. (pidfd_open()
 * would do without a thread, but valgrind 3.19 does not know it.) */
struct reaper {
	pid_t pid;
	pthread_mutex_t mu;
	pthread_cond_t done;
	/* guarded by mu: */
	bool exited;
	int status;
};

static void *
reaper_thread_main(void *arg)
{
	struct reaper *rp = arg;
	int status = 0;

	while (waitpid(rp->pid, &status, 0) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&rp->mu);
	rp->exited = true;
	rp->status = status;
	pthread_cond_broadcast(&rp->done);
	pthread_mutex_unlock(&rp->mu);
	return NULL;
}

int
harness_wait_exit(pid_t pid, int timeout_ms, int *status)
{
	struct reaper rp = { .pid = pid };
	struct timespec deadline = harness_deadline(timeout_ms);
	pthread_condattr_t attr;
	pthread_t thread;
	bool exited;
	int rc;

	pthread_mutex_init(&rp.mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&rp.done, &attr);
	pthread_condattr_destroy(&attr);
	rc = pthread_create(&thread, NULL, reaper_thread_main, &rp);
	if (rc != 0) {
		harness_kill(pid, SIGKILL);
		rc = -rc;
		goto out_destroy;
	}
	pthread_mutex_lock(&rp.mu);
	while (!rp.exited && pthread_cond_timedwait(&rp.done, &rp.mu, &deadline) == 0)
		;
	exited = rp.exited;
	pthread_mutex_unlock(&rp.mu);
	if (!exited)
		kill(pid, SIGKILL); /* the reaper then returns */
	pthread_join(thread, NULL);
	*status = rp.status;
	rc = exited ? 0 : -ETIMEDOUT;
out_destroy:
	pthread_cond_destroy(&rp.done);
	pthread_mutex_destroy(&rp.mu);
	return rc;
}

void
harness_describe_exit(int rc, int status, char *buf, size_t size)
{
	if (rc == -ETIMEDOUT)
		snprintf(buf, size, "no exit in time");
	else if (rc < 0)
		snprintf(buf, size, "wait failed: %s", strerror(-rc));
	else if (WIFEXITED(status))
		snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, size, "wait status %#x", status);
}

int
harness_read_until(int fd, char *buf, size_t cap, const char *needle, int count,
                   int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	size_t len = 0;

	buf[0] = '\0';
	for (;;) {
		int seen = 0;
		for (const char *p = needle ? strstr(buf, needle) : NULL; p != NULL;
		     p = strstr(p + 1, needle))
			seen++;
		if (needle != NULL && seen >= count)
			return 0;
		if (len + 1 >= cap)
			return -ENOBUFS;
		long long left = deadline - harness_now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n == 0 && needle == NULL)
			return 0;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		len += (size_t)n;
		buf[len] = '\0';
	}
}

/* Parses "...SCHEME://HOST:PORT\n" where prefix ends in "://": copies
 * HOST:PORT into addr (without the line end) and returns PORT, or -1. */
static int
listening_addr_parse(const char *text, const char *prefix, char *addr, size_t size)
{
	const char *p = strstr(text, prefix), *end, *colon;

	if (p == NULL)
		return -1;
	p += strlen(prefix);
	end = strchr(p, '\n');
	if (end == NULL || (size_t)(end - p) >= size)
		return -1;
	memcpy(addr, p, (size_t)(end - p));
	addr[end - p] = '\0';
	colon = strrchr(addr, ':');
	return colon != NULL ? atoi(colon + 1) : -1;
}

int
harness_read_listening(int fd, struct harness_listening *out, int timeout_ms)
{
	char buf[1024];
	int rc = harness_read_until(fd, buf, sizeof buf, "\n", 2, timeout_ms);

	if (rc < 0)
		return rc;
	out->tunnel_port = listening_addr_parse(buf, "reverse tunnels on tcp://",
	                                        out->tunnel_addr, sizeof out->tunnel_addr);
	out->http_port = listening_addr_parse(buf, "HTTP traffic on http://", out->http_addr,
	                                      sizeof out->http_addr);
	if (out->tunnel_port <= 0 || out->http_port <= 0)
		return -EPROTO;
	return 0;
}

int
harness_port_reserve(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

int
harness_memory(long *rss_kib, long *hwm_kib)
{
	char line[256];
	int found = 0;
	long v;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "VmRSS: %ld kB", &v) == 1) {
			if (rss_kib != NULL)
				*rss_kib = v;
			found++;
		} else if (sscanf(line, "VmHWM: %ld kB", &v) == 1) {
			if (hwm_kib != NULL)
				*hwm_kib = v;
			found++;
		}
	}
	fclose(f);
	return found == 2 ? 0 : -ENOENT;
}

int
harness_memory_reset_peak(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, "5", 1) != 1)
		rc = -errno;
	close(fd);
	return rc;
}
