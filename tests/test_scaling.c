/*
 * test_scaling.c -- several routers: a backend holding tunnels to every
 * router at once (the library's router_addrs), and the whole picture of
 * docs/SCALING.md for real: HAProxy (Debian's, loopback only) in front
 * of two bin/router processes, two bin/backend processes each dialling
 * both routers, and a load generator in this process.
 *
 * What is proved here:
 *   - a backend with router_addrs holds `tunnels` tunnels to each router,
 *     redials a router that went away on its own while the others keep
 *     serving, and drains from all of them when stopped; bin/agent with
 *     two --router serves through both;
 *   - under steady load through HAProxy, stopping one router gracefully
 *     (SIGTERM) loses no request, and traffic comes back to it once it
 *     is started again;
 *   - killing one backend (SIGKILL) loses only requests in flight on it
 *     (each load thread has at most one in flight), and traffic comes
 *     back to it once it is started again;
 *   - what one tunnel costs a router and a backend (memory, threads,
 *     file descriptors), printed for docs/SCALING.md.
 *
 * Run some tests only with make test TESTS=scaling FILTER=WORD.
 *
 * Ports: the routers bind port 0 and print what they got; HAProxy needs
 * its own port in its configuration, so one is picked by binding port 0
 * and closing it (observe_free_port(): another process could take it in
 * between, a small race). Everything listens on 127.0.0.1 only.
 * Waits on other processes (a tunnel count, traffic reaching a router)
 * ask again with short pauses, bounded: nothing there can be blocked on.
 * Load threads only make requests and count answers; the test thread
 * joins them before asserting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/harness.h"
#include "support/observe.h"

#define WAIT_MS HARNESS_TIMEOUT_MS
#define HAPROXY "/usr/sbin/haproxy"
#define LOAD_THREADS 4
#define LOAD_PATH "/sleep?ms=10"      /* long enough to be in flight when killed */
#define STEADY_MS 1500                /* load before and after each event */

/* ---------------------------------------------------------------------
 * In-process: one backend, two routers.
 */

/* How many /slow handlers have started, for the drain test. */
static pthread_mutex_t inside_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inside_changed = PTHREAD_COND_INITIALIZER;
static int handlers_inside;   /* guarded by inside_mu */

static void
handle_slow(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	struct timespec ts = { 0, 300 * 1000000L };

	(void)req;
	(void)arg;
	pthread_mutex_lock(&inside_mu);
	handlers_inside++;
	pthread_cond_broadcast(&inside_changed);
	pthread_mutex_unlock(&inside_mu);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	ptth_response_send(res, 200, "text/plain", "slow", 4);
}

static void
handle_foo(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	(void)req;
	(void)arg;
	ptth_response_send(res, 200, "text/plain", "bar", 3);
}

static long
router_get(const struct harness_router *hr, const char *path)
{
	char url[128];
	long status = 0;

	harness_url(hr, path, url, sizeof url);
	return http_get(url, &status, NULL, 0, NULL) == CURLE_OK ? status : -1;
}

/* Starts a router whose tunnel port is tunnel_port (0: any). */
static int
router_start_at(struct harness_router *hr, int tunnel_port)
{
	struct ptth_router_options o;
	char taddr[32];

	memset(hr, 0, sizeof *hr);
	ptth_router_options_init(&o);
	snprintf(taddr, sizeof taddr, "127.0.0.1:%d", tunnel_port);
	o.http_addr = "127.0.0.1:0";
	o.tunnel_addr = taddr;
	hr->router = ptth_router_new(&o);
	if (hr->router == NULL || ptth_router_start(hr->router) < 0)
		return -1;
	return ptth_router_ports(hr->router, &hr->http_port, &hr->tunnel_port);
}

struct slow_get {
	const struct harness_router *hr;
	long status;
};

static void *
slow_get_thread_main(void *arg)
{
	struct slow_get *g = arg;

	g->status = router_get(g->hr, "/slow");
	return NULL;
}

/* Waits until the backend's tunnel count is n. Polled: the count has no
 * condition a test can wait on. */
static int
backend_wait_count(struct ptth_backend *b, int n)
{
	for (long long end = harness_now_ms() + WAIT_MS; harness_now_ms() < end;) {
		if (ptth_backend_tunnel_count(b) == n)
			return 0;
		usleep(10 * 1000);
	}
	return -ETIMEDOUT;
}

static void
test_scaling_backend_serves_every_router_and_redials_each(void **state)
{
	struct harness_router r1, r2;
	struct ptth_backend_options o;
	struct ptth_mux *mux = ptth_mux_new();
	struct ptth_backend *b;
	char a1[32], a2[32];
	const char *addrs[2] = { a1, a2 };
	struct slow_get g1 = { .hr = &r1 }, g2 = { .hr = &r2 };
	pthread_t t1, t2;
	int port2;

	(void)state;
	assert_non_null(mux);
	assert_int_equal(ptth_mux_handle(mux, "/foo", handle_foo, NULL), 0);
	assert_int_equal(ptth_mux_handle(mux, "/slow", handle_slow, NULL), 0);
	assert_int_equal(router_start_at(&r1, 0), 0);
	assert_int_equal(router_start_at(&r2, 0), 0);
	port2 = r2.tunnel_port;
	snprintf(a1, sizeof a1, "127.0.0.1:%d", r1.tunnel_port);
	snprintf(a2, sizeof a2, "127.0.0.1:%d", r2.tunnel_port);
	ptth_backend_options_init(&o);
	o.router_addrs = addrs;
	o.router_count = 2;
	o.tunnels = 2;
	o.reconnect = 1;
	o.backoff_max_ms = 100;
	o.handler = ptth_mux_serve;
	o.handler_arg = mux;
	b = ptth_backend_new(&o);
	assert_non_null(b);
	assert_int_equal(ptth_backend_start(b), 0);
	assert_int_equal(ptth_router_wait_tunnels(r1.router, 2, WAIT_MS), 0);
	assert_int_equal(ptth_router_wait_tunnels(r2.router, 2, WAIT_MS), 0);
	assert_int_equal(ptth_backend_tunnel_count(b), 4);
	assert_int_equal(router_get(&r1, "/foo"), 200);
	assert_int_equal(router_get(&r2, "/foo"), 200);

	/* Router 2 goes away: its tunnels end, router 1's stay and serve. */
	harness_router_free(&r2);
	assert_int_equal(backend_wait_count(b, 2), 0);
	assert_int_equal(ptth_router_tunnel_count(r1.router), 2);
	assert_int_equal(router_get(&r1, "/foo"), 200);
	/* It comes back on the same port: the backend redials it alone. */
	assert_int_equal(router_start_at(&r2, port2), 0);
	assert_int_equal(ptth_router_wait_tunnels(r2.router, 2, WAIT_MS), 0);
	assert_int_equal(router_get(&r2, "/foo"), 200);
	assert_int_equal(ptth_router_tunnel_count(r1.router), 2);

	/* Stopping drains from both: a request in flight on each finishes. */
	pthread_mutex_lock(&inside_mu);
	handlers_inside = 0;
	pthread_mutex_unlock(&inside_mu);
	assert_int_equal(pthread_create(&t1, NULL, slow_get_thread_main, &g1), 0);
	assert_int_equal(pthread_create(&t2, NULL, slow_get_thread_main, &g2), 0);
	pthread_mutex_lock(&inside_mu);
	while (handlers_inside < 2) /* both in their 300 ms */
		pthread_cond_wait(&inside_changed, &inside_mu);
	pthread_mutex_unlock(&inside_mu);
	ptth_backend_stop(b);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(g1.status, 200);
	assert_int_equal(g2.status, 200);
	assert_int_equal(ptth_router_wait_tunnels_at_most(r1.router, 0, WAIT_MS), 0);
	assert_int_equal(ptth_router_wait_tunnels_at_most(r2.router, 0, WAIT_MS), 0);
	ptth_backend_free(b);
	harness_router_free(&r1);
	harness_router_free(&r2);
	ptth_mux_free(mux);
}

/* The single router_addr still works, and an empty list means it. */
static void
test_scaling_single_router_addr_still_works(void **state)
{
	struct harness_router hr;
	struct ptth_backend_options o;
	struct ptth_mux *mux = ptth_mux_new();
	struct ptth_backend *b;
	char addr[32];

	(void)state;
	assert_int_equal(ptth_mux_handle(mux, "/foo", handle_foo, NULL), 0);
	assert_int_equal(harness_router_start(&hr), 0);
	snprintf(addr, sizeof addr, "127.0.0.1:%d", hr.tunnel_port);
	ptth_backend_options_init(&o);
	o.router_addr = addr;
	o.router_count = 0;
	o.tunnels = 3;
	o.handler = ptth_mux_serve;
	o.handler_arg = mux;
	b = ptth_backend_new(&o);
	assert_non_null(b);
	assert_int_equal(ptth_backend_start(b), 0);
	assert_int_equal(ptth_router_wait_tunnels(hr.router, 3, WAIT_MS), 0);
	assert_int_equal(router_get(&hr, "/foo"), 200);
	ptth_backend_free(b);
	harness_router_free(&hr);
	ptth_mux_free(mux);
}

/* bin/agent takes --router more than once too: one agent in front of
 * python3's http.server, dialling two routers, serves through both, and
 * drains from both on SIGTERM. */
static void
test_scaling_agent_serves_every_router(void **state)
{
	char dir[] = "/tmp/ptth-agent-XXXXXX", file[64], to[32], a1[32], a2[32], out[512];
	char url[128], body[64];
	struct harness_router r1, r2;
	pid_t python, agent;
	int py_fd, py_port, status = -1;
	long code = 0;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof file, "%s/hello.txt", dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("hello\n", f);
	fclose(f);
	const char *pargs[] = { "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
	                        "--directory", dir, NULL };
	python = observe_spawn_path("/usr/bin/python3", pargs, STDOUT_FILENO, &py_fd);
	assert_true(python > 0);
	assert_int_equal(observe_read_until(py_fd, out, sizeof out, "\n", 1, WAIT_MS), 0);
	py_port = observe_number_after(out, " port ");
	assert_true(py_port > 0);
	assert_int_equal(router_start_at(&r1, 0), 0);
	assert_int_equal(router_start_at(&r2, 0), 0);
	snprintf(to, sizeof to, "127.0.0.1:%d", py_port);
	snprintf(a1, sizeof a1, "127.0.0.1:%d", r1.tunnel_port);
	snprintf(a2, sizeof a2, "127.0.0.1:%d", r2.tunnel_port);
	const char *aargs[] = { "--to", to, "--router", a1, "--router", a2, "--quiet", NULL };
	agent = harness_spawn("agent", aargs);
	assert_true(agent > 0);
	assert_int_equal(ptth_router_wait_tunnels(r1.router, 1, WAIT_MS), 0);
	assert_int_equal(ptth_router_wait_tunnels(r2.router, 1, WAIT_MS), 0);
	harness_url(&r1, "/hello.txt", url, sizeof url);
	assert_int_equal(http_get(url, &code, body, sizeof body, NULL), CURLE_OK);
	assert_int_equal(code, 200);
	assert_string_equal(body, "hello\n");
	harness_url(&r2, "/hello.txt", url, sizeof url);
	assert_int_equal(http_get(url, &code, body, sizeof body, NULL), CURLE_OK);
	assert_int_equal(code, 200);
	kill(agent, SIGTERM);
	assert_int_equal(observe_wait_exit(agent, WAIT_MS, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(ptth_router_wait_tunnels_at_most(r1.router, 0, WAIT_MS), 0);
	assert_int_equal(ptth_router_wait_tunnels_at_most(r2.router, 0, WAIT_MS), 0);
	harness_kill(python, SIGTERM);
	close(py_fd);
	harness_router_free(&r1);
	harness_router_free(&r2);
	unlink(file);
	rmdir(dir);
}

/* ---------------------------------------------------------------------
 * Processes: bin/router, bin/backend, haproxy.
 */

struct router_proc {
	pid_t pid;
	int out_fd;
	int http, tunnel, admin;   /* ports */
};

/* Starts bin/router on the given ports (0: any) and reads the ports it
 * bound. Returns 0 or a negative code. */
static int
router_proc_start(struct router_proc *rp, int http, int tunnel, int admin)
{
	char h[32], t[32], a[32], out[2048];
	const char *args[] = { "--http", h, "--tunnels", t, "--admin", a, "--quiet", NULL };

	snprintf(h, sizeof h, "127.0.0.1:%d", http);
	snprintf(t, sizeof t, "127.0.0.1:%d", tunnel);
	snprintf(a, sizeof a, "127.0.0.1:%d", admin);
	rp->pid = observe_spawn_piped("router", args, STDOUT_FILENO, &rp->out_fd);
	if (rp->pid < 0)
		return (int)rp->pid;
	if (observe_read_until(rp->out_fd, out, sizeof out, "\n", 3, WAIT_MS) < 0)
		return -EPROTO;
	rp->tunnel = observe_number_after(out, "tcp://127.0.0.1:");
	rp->http = observe_number_after(out, "http://127.0.0.1:");
	rp->admin = observe_number_after(out, "metrics on http://127.0.0.1:");
	return rp->admin > 0 ? 0 : -EPROTO;
}

/* SIGTERM, and the exit status once it drained (or -1). */
static int
router_proc_stop(struct router_proc *rp)
{
	int status = -1;

	if (rp->pid <= 0)
		return -1;
	kill(rp->pid, SIGTERM);
	if (observe_wait_exit(rp->pid, WAIT_MS, &status) < 0)
		status = -1;
	close(rp->out_fd);
	rp->pid = -1;
	return status;
}

/* bin/backend dialling every router given, redialling within 200 ms. */
static pid_t
backend_proc_start(const struct router_proc *r1, const struct router_proc *r2,
                   const char *tunnels)
{
	char a1[32], a2[32];
	const char *two[] = { "--router", a1, "--router", a2, "--tunnels", tunnels, "--quiet",
	                      "--backoff-max-ms", "200", NULL };
	const char *one[] = { "--router", a1, "--tunnels", tunnels, "--quiet", NULL };

	snprintf(a1, sizeof a1, "127.0.0.1:%d", r1->tunnel);
	if (r2 != NULL)
		snprintf(a2, sizeof a2, "127.0.0.1:%d", r2->tunnel);
	return harness_spawn("backend", r2 != NULL ? two : one);
}

/* The tunnel count a router's /healthz reports ("ok: N tunnels"), 0
 * when it has none, or -1 when it does not answer. */
static int
router_proc_tunnels(const struct router_proc *rp)
{
	char url[64], body[64];
	long status = 0;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", rp->admin);
	if (http_get(url, &status, body, sizeof body, NULL) != CURLE_OK)
		return -1;
	return status == 200 ? observe_number_after(body, "ok: ") : 0;
}

static int
router_proc_wait_tunnels(const struct router_proc *rp, int n)
{
	for (long long end = harness_now_ms() + WAIT_MS; harness_now_ms() < end;) {
		if (router_proc_tunnels(rp) == n)
			return 0;
		usleep(20 * 1000);
	}
	return -ETIMEDOUT;
}

/* The router's 2xx answers so far (from /metrics), or -1. */
static double
router_proc_served(const struct router_proc *rp)
{
	struct scrape s;
	double v;

	if (scrape_fetch(rp->admin, "metrics", &s) < 0)
		return -1;
	v = scrape_value(&s, "ptth_requests_total{class=\"2xx\",service=\"\"}");
	scrape_free(&s);
	return v;
}

/* Waits until the router has served more than `than` requests. */
static int
router_proc_wait_served(const struct router_proc *rp, double than)
{
	for (long long end = harness_now_ms() + WAIT_MS; harness_now_ms() < end;) {
		if (router_proc_served(rp) > than)
			return 0;
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

/* Writes haproxy's configuration: one frontend on port, the two routers
 * as servers, checked on their admin ports' /healthz every 100 ms, and
 * the retries that make a router's graceful stop invisible. */
static int
haproxy_write_config(const char *path, int port, const struct router_proc *r1,
                     const struct router_proc *r2)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -errno;
	fprintf(f,
	        "global\n"
	        "    maxconn 2000\n"
	        "defaults\n"
	        "    mode http\n"
	        "    timeout connect 2s\n"
	        "    timeout client 30s\n"
	        "    timeout server 30s\n"
	        "    retries 3\n"
	        "    option redispatch 1\n"
	        "    retry-on conn-failure empty-response\n"
	        "frontend users\n"
	        "    bind 127.0.0.1:%d\n"
	        "    default_backend routers\n"
	        "backend routers\n"
	        "    balance roundrobin\n"
	        "    option httpchk GET /healthz\n"
	        "    http-check expect status 200\n"
	        "    default-server inter 100ms fall 1 rise 1\n"
	        "    server r1 127.0.0.1:%d check port %d\n"
	        "    server r2 127.0.0.1:%d check port %d\n",
	        port, r1->http, r1->admin, r2->http, r2->admin);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* ---------------------------------------------------------------------
 * The load generator: LOAD_THREADS threads, each one request at a time
 * on a keep-alive connection to haproxy, counting answers per phase.
 */

#define PHASES 4

struct load {
	int port;
	atomic_bool stop;
	atomic_int phase;
	atomic_long ok[PHASES], failed[PHASES];
	atomic_long failed_502[PHASES];
	atomic_long last_bad[PHASES];  /* status, or -CURLcode, of the last failure */
	pthread_t threads[LOAD_THREADS];
};

static void *
load_thread_main(void *arg)
{
	struct load *l = arg;
	CURL *c = http_client_new();
	char url[128];

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", l->port, LOAD_PATH);
	while (c != NULL && !atomic_load(&l->stop)) {
		struct http_reply reply = { 0 };
		CURLcode rc = http_client_get(c, url, &reply);
		/* Counted in the phase it ended in: a request in flight when an
		 * event happens belongs to the event. */
		int phase = atomic_load(&l->phase);
		if (rc == CURLE_OK && reply.status == 200) {
			atomic_fetch_add(&l->ok[phase], 1);
			continue;
		}
		atomic_fetch_add(&l->failed[phase], 1);
		if (rc == CURLE_OK && reply.status == 502)
			atomic_fetch_add(&l->failed_502[phase], 1);
		atomic_store(&l->last_bad[phase], rc == CURLE_OK ? reply.status : -(long)rc);
	}
	if (c != NULL)
		curl_easy_cleanup(c);
	return NULL;
}

static int
load_start(struct load *l, int port)
{
	memset(l, 0, sizeof *l);
	l->port = port;
	for (int i = 0; i < LOAD_THREADS; i++)
		if (pthread_create(&l->threads[i], NULL, load_thread_main, l) != 0)
			return -1;
	return 0;
}

static void
load_stop(struct load *l)
{
	atomic_store(&l->stop, true);
	for (int i = 0; i < LOAD_THREADS; i++)
		pthread_join(l->threads[i], NULL);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Waits until haproxy answers 200 through a router. */
static int
haproxy_wait_ready(int port)
{
	char url[64];
	long status = 0;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/foo", port);
	for (long long end = harness_now_ms() + WAIT_MS; harness_now_ms() < end;) {
		if (http_get(url, &status, NULL, 0, NULL) == CURLE_OK && status == 200)
			return 0;
		usleep(20 * 1000);
	}
	return -ETIMEDOUT;
}

struct picture {
	struct router_proc r1, r2;
	pid_t b1, b2, haproxy;
	int port;
	char dir[64], config[96];
};

/* Routers first, then backends dialling both, then haproxy in front. */
static int
picture_start(struct picture *p)
{
	const char *args[] = { "-db", "-q", "-f", p->config, NULL };

	snprintf(p->dir, sizeof p->dir, "/tmp/ptth-scaling-XXXXXX");
	if (mkdtemp(p->dir) == NULL)
		return -errno;
	snprintf(p->config, sizeof p->config, "%s/haproxy.cfg", p->dir);
	if (router_proc_start(&p->r1, 0, 0, 0) < 0 || router_proc_start(&p->r2, 0, 0, 0) < 0)
		return -1;
	p->b1 = backend_proc_start(&p->r1, &p->r2, "1");
	p->b2 = backend_proc_start(&p->r1, &p->r2, "1");
	if (p->b1 < 0 || p->b2 < 0 || router_proc_wait_tunnels(&p->r1, 2) < 0 ||
	    router_proc_wait_tunnels(&p->r2, 2) < 0)
		return -1;
	p->port = observe_free_port();
	if (p->port < 0 || haproxy_write_config(p->config, p->port, &p->r1, &p->r2) < 0)
		return -1;
	p->haproxy = observe_spawn_path(HAPROXY, args, -1, NULL);
	if (p->haproxy < 0)
		return -1;
	return haproxy_wait_ready(p->port);
}

static void
picture_stop(struct picture *p)
{
	if (p->haproxy > 0)
		harness_kill(p->haproxy, SIGTERM);
	if (p->b1 > 0)
		harness_kill(p->b1, SIGTERM);
	if (p->b2 > 0)
		harness_kill(p->b2, SIGTERM);
	router_proc_stop(&p->r1);
	router_proc_stop(&p->r2);
	unlink(p->config);
	rmdir(p->dir);
}

static void
load_report(const struct load *l, const char *const names[PHASES])
{
	for (int i = 0; i < PHASES; i++)
		print_message("scaling: %-28s %6ld ok %4ld failed (%ld of them 502; last: %ld)\n",
		              names[i], atomic_load(&l->ok[i]), atomic_load(&l->failed[i]),
		              atomic_load(&l->failed_502[i]), atomic_load(&l->last_bad[i]));
}

/* HAProxy, two routers, two backends each dialling both, steady load:
 * a router stopped gracefully loses nothing, a backend killed loses only
 * what was in flight on it, and traffic recovers after both. */
static void
test_scaling_haproxy_survives_a_router_stop_and_a_backend_kill(void **state)
{
	static const char *const names[PHASES] = {
		"steady", "router 1 stopped (SIGTERM)", "router 1 back", "backend 1 killed (-9)",
	};
	struct picture p = { 0 };
	struct load l;
	long long t0, stop_ms, back_ms, kill_ms = 0, recover_ms = 0;
	double served;
	int status = -1, r1_http, r1_tunnel, r1_admin;
	bool started, up = false, b1_back = false;

	(void)state;
	assert_int_equal(access(HAPROXY, X_OK), 0); /* make test installs haproxy */
	started = picture_start(&p) == 0;
	if (started)
		started = load_start(&l, p.port) == 0;
	if (!started) {
		picture_stop(&p);
		fail_msg("cannot start haproxy, routers and backends");
	}
	sleep_ms(STEADY_MS);

	/* A graceful stop of router 1 under load. */
	atomic_store(&l.phase, 1);
	r1_http = p.r1.http;
	r1_tunnel = p.r1.tunnel;
	r1_admin = p.r1.admin;
	t0 = harness_now_ms();
	status = router_proc_stop(&p.r1);
	stop_ms = harness_now_ms() - t0;
	sleep_ms(STEADY_MS);
	/* Back on the same ports: backends redial, haproxy's check sees it. */
	atomic_store(&l.phase, 2);
	t0 = harness_now_ms();
	if (router_proc_start(&p.r1, r1_http, r1_tunnel, r1_admin) == 0 &&
	    router_proc_wait_tunnels(&p.r1, 2) == 0 && router_proc_wait_served(&p.r1, 0) == 0)
		up = true;
	back_ms = harness_now_ms() - t0;
	sleep_ms(STEADY_MS);

	/* Backend 1 killed under load, then started again. */
	atomic_store(&l.phase, 3);
	harness_kill(p.b1, SIGKILL);
	t0 = harness_now_ms();
	p.b1 = -1;
	if (router_proc_wait_tunnels(&p.r1, 1) == 0 && router_proc_wait_tunnels(&p.r2, 1) == 0) {
		kill_ms = harness_now_ms() - t0;
		p.b1 = backend_proc_start(&p.r1, &p.r2, "1");
		t0 = harness_now_ms();
		served = router_proc_served(&p.r2);
		b1_back = p.b1 > 0 && router_proc_wait_tunnels(&p.r1, 2) == 0 &&
		          router_proc_wait_tunnels(&p.r2, 2) == 0 &&
		          router_proc_wait_served(&p.r2, served) == 0;
		recover_ms = harness_now_ms() - t0;
	}
	sleep_ms(STEADY_MS);
	load_stop(&l);
	picture_stop(&p);

	load_report(&l, names);
	print_message("scaling: router 1 drained and exited in %lld ms; back and serving "
	              "in %lld ms; backend 1's tunnels gone %lld ms after the kill; back "
	              "in %lld ms\n", stop_ms, back_ms, kill_ms, recover_ms);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(up);
	assert_true(b1_back);
	assert_true(atomic_load(&l.ok[0]) > 0 && atomic_load(&l.ok[1]) > 0 &&
	            atomic_load(&l.ok[2]) > 0 && atomic_load(&l.ok[3]) > 0);
	assert_int_equal(atomic_load(&l.failed[0]), 0);
	assert_int_equal(atomic_load(&l.failed[1]), 0);
	assert_int_equal(atomic_load(&l.failed[2]), 0);
	/* At most one request per load thread was in flight on backend 1,
	 * and each of those is a 502 from the router that carried it. */
	assert_true(atomic_load(&l.failed[3]) <= LOAD_THREADS);
	assert_int_equal(atomic_load(&l.failed[3]), atomic_load(&l.failed_502[3]));
}

/* ---------------------------------------------------------------------
 * What a tunnel costs, for docs/SCALING.md.
 */

/* Threads and open descriptors of a process, from /proc. */
static void
proc_counts(pid_t pid, int *threads, int *fds)
{
	char path[64], line[128];
	struct dirent *de;
	FILE *f;
	DIR *d;

	*threads = *fds = 0;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		sscanf(line, "Threads: %d", threads);
	if (f != NULL)
		fclose(f);
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	d = opendir(path);
	while (d != NULL && (de = readdir(d)) != NULL)
		*fds += de->d_name[0] != '.';
	if (d != NULL)
		closedir(d);
}

#define MEASURED_TUNNELS 64

static void
test_scaling_cost_of_a_tunnel_is_measured(void **state)
{
	struct router_proc rp;
	long r_before, r_after, b_one, b_many;
	int r_thr0, r_fd0, r_thr1, r_fd1, b_thr1, b_fd1, b_thr, b_fd;
	pid_t one, many;
	char tunnels[16];

	(void)state;
	assert_int_equal(router_proc_start(&rp, 0, 0, 0), 0);
	one = backend_proc_start(&rp, NULL, "1");
	assert_true(one > 0);
	assert_int_equal(router_proc_wait_tunnels(&rp, 1), 0);
	r_before = observe_rss_kib(rp.pid);
	proc_counts(rp.pid, &r_thr0, &r_fd0);
	b_one = observe_rss_kib(one);
	proc_counts(one, &b_thr1, &b_fd1);
	snprintf(tunnels, sizeof tunnels, "%d", MEASURED_TUNNELS);
	many = backend_proc_start(&rp, NULL, tunnels);
	assert_true(many > 0);
	assert_int_equal(router_proc_wait_tunnels(&rp, 1 + MEASURED_TUNNELS), 0);
	r_after = observe_rss_kib(rp.pid);
	proc_counts(rp.pid, &r_thr1, &r_fd1);
	b_many = observe_rss_kib(many);
	proc_counts(many, &b_thr, &b_fd);
	harness_kill(one, SIGTERM);
	harness_kill(many, SIGTERM);
	router_proc_stop(&rp);

	print_message("scaling: router, %d more tunnels: +%ld KiB RSS (%.1f KiB each), "
	              "+%d threads, +%d fds\n", MEASURED_TUNNELS, r_after - r_before,
	              (double)(r_after - r_before) / MEASURED_TUNNELS, r_thr1 - r_thr0,
	              r_fd1 - r_fd0);
	print_message("scaling: backend with 1 tunnel: %ld KiB, %d threads, %d fds; with %d: "
	              "%ld KiB (%.1f KiB per extra tunnel), %d threads, %d fds\n", b_one, b_thr1,
	              b_fd1, MEASURED_TUNNELS, b_many,
	              (double)(b_many - b_one) / (MEASURED_TUNNELS - 1), b_thr, b_fd);
	/* One thread and one socket plus one eventfd per tunnel, router side;
	 * give or take the admin port's connection of the last /healthz,
	 * which may still be open in either reading. */
	assert_int_equal(r_thr1 - r_thr0, MEASURED_TUNNELS);
	assert_in_range(r_fd1 - r_fd0, 2 * MEASURED_TUNNELS - 1, 2 * MEASURED_TUNNELS + 1);
	if (!harness_sanitized()) /* a sanitizer's shadow memory dwarfs the rest */
		assert_true(r_after - r_before < MEASURED_TUNNELS * 1024); /* under 1 MiB each */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scaling_backend_serves_every_router_and_redials_each),
		cmocka_unit_test(test_scaling_single_router_addr_still_works),
		cmocka_unit_test(test_scaling_agent_serves_every_router),
		cmocka_unit_test(test_scaling_haproxy_survives_a_router_stop_and_a_backend_kill),
		cmocka_unit_test(test_scaling_cost_of_a_tunnel_is_measured),
	};

	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
