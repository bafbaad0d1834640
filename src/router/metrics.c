/*
 * metrics.c -- what the router counts, and the two texts the admin port
 * serves from it: the Prometheus text exposition (format 0.0.4) for
 * GET /metrics and a JSON list of tunnels for GET /tunnels.
 *
 * Owns:    nothing allocated but the text buffers it hands back; the
 *          counters live in struct ptth_router (r->metrics) and in each
 *          struct tunnel (t->stats).
 * Threads: user threads count each request once it ends
 *          (request_record_end()); tunnel threads publish their own
 *          figures once per pass of their loop and count their arrival
 *          and departure; the admin thread reads everything and renders.
 * Locks:   none on the request path. Every counter is an atomic bumped
 *          with memory_order_relaxed: a counter only has to be exact in
 *          itself, it orders nothing else, so the cheapest atomic add is
 *          enough and no thread ever waits for another to count. Per-
 *          thread counters would avoid even the shared cache line, but a
 *          user thread lives only as long as its connection, so their
 *          sums would have to be carried over at every thread exit; at
 *          one add per counter per request that is not worth it. The
 *          renderer takes the locks the figures already live under (the
 *          pool's, r->mu, each queue's) on the admin thread, one at a
 *          time, never nested.
 * Interface:
 *   - request_record_begin/head/tunnel/answer() fill a request's record
 *     as it goes; request_record_end() counts it and writes its access
 *     log line;
 *   - metrics_tunnel_added/removed/publish() from the tunnel thread;
 *   - metrics_render() and metrics_render_tunnels() build the texts.
 * Tutorial: "Watching the router".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access_log.h"
#include "lock.h"
#include "metrics.h"
#include "pool.h"
#include "router.h"
#include "services.h"
#include "tunnel.h"

#define RELAXED memory_order_relaxed

const double metrics_duration_bounds[METRICS_DURATION_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

const int metrics_refusal_statuses[METRICS_REFUSAL_STATUSES] = {
	400, 408, 413, 414, 417, 431, 500, 502, 503, 504, 505,
};

static const char *const metrics_class_names[METRICS_CLASSES] = {
	"other", "1xx", "2xx", "3xx", "4xx", "5xx",
};

static const char *const metrics_removal_names[METRICS_REMOVALS] = {
	"closed", "goaway", "ping_timeout", "router_stopping", "error",
};

void
metrics_service_init(struct metrics_service *s, const char *name)
{
	memset(s, 0, sizeof *s); /* all-zero atomics are valid zeros */
	s->name = name;
}

void
metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof *m);
	metrics_service_init(&m->fallback, "");
}

/* The index of status in metrics_refusal_statuses, or -1. */
int
metrics_status_index(int status)
{
	for (int i = 0; i < METRICS_REFUSAL_STATUSES; i++)
		if (metrics_refusal_statuses[i] == status)
			return i;
	return -1;
}

/* The histogram bucket for a duration: the first whose bound it does
 * not exceed, or the +Inf one. */
static int
metrics_bucket(long long duration_us)
{
	for (int i = 0; i < METRICS_DURATION_BUCKETS; i++)
		if ((double)duration_us <= metrics_duration_bounds[i] * 1e6)
			return i;
	return METRICS_DURATION_BUCKETS;
}

/* Counts one finished request. Any user thread; no lock. */
void
metrics_count_request(struct metrics *m, const struct request_record *rec,
                      long long duration_us)
{
	struct metrics_service *s = rec->service ? rec->service : &m->fallback;
	int cls = rec->status >= 100 && rec->status <= 599 ? rec->status / 100 : 0;

	atomic_fetch_add_explicit(&s->requests[cls], 1, RELAXED);
	atomic_fetch_add_explicit(&s->duration[metrics_bucket(duration_us)], 1, RELAXED);
	atomic_fetch_add_explicit(&s->duration_us, (uint64_t)duration_us, RELAXED);
	atomic_fetch_add_explicit(&s->request_bytes, (uint64_t)rec->request_bytes, RELAXED);
	atomic_fetch_add_explicit(&s->response_bytes, (uint64_t)rec->response_bytes, RELAXED);
	if (rec->by_router) {
		int i = metrics_status_index(rec->status);
		if (i >= 0)
			atomic_fetch_add_explicit(&m->refusals[i], 1, RELAXED);
	}
}

void
metrics_count_retry(struct metrics *m)
{
	atomic_fetch_add_explicit(&m->retries, 1, RELAXED);
}

void
metrics_count_connection(struct metrics *m)
{
	atomic_fetch_add_explicit(&m->connections, 1, RELAXED);
}

/* Tunnel thread: its tunnel joined its pool (the backend's SETTINGS came). */
void
metrics_tunnel_added(struct metrics *m, struct tunnel_stats *ts, long long now)
{
	ts->counted = true;
	atomic_store_explicit(&ts->started_ms, now, RELAXED);
	atomic_fetch_add_explicit(&m->tunnels_added, 1, RELAXED);
}

/* Tunnel thread: its tunnel ended, for the reason tunnel_run() gave;
 * goaway says the backend had sent GOAWAY (it then usually ends as
 * "session finished", once its streams are done). A tunnel that never
 * joined its pool (no SETTINGS came) was not counted as added, and is
 * not counted as removed either. */
void
metrics_tunnel_removed(struct metrics *m, struct tunnel_stats *ts, const char *reason,
                       bool goaway)
{
	enum metrics_removal why = METRICS_REMOVED_ERROR;

	if (!ts->counted)
		return;

	if (strcmp(reason, "router stopping") == 0)
		why = METRICS_REMOVED_STOPPING;
	else if (goaway || strcmp(reason, "GOAWAY") == 0)
		why = METRICS_REMOVED_GOAWAY;
	else if (strcmp(reason, "EOF") == 0 || strcmp(reason, "session finished") == 0)
		why = METRICS_REMOVED_CLOSED;
	else if (strcmp(reason, "PING timeout") == 0)
		why = METRICS_REMOVED_PING_TIMEOUT;
	atomic_fetch_add_explicit(&m->tunnels_removed[why], 1, RELAXED);
}

/* Tunnel thread, once per pass of its loop: its figures so far. */
void
metrics_tunnel_publish(struct tunnel_stats *ts, uint64_t requests, uint64_t bytes_in,
                       uint64_t bytes_out, unsigned open_streams)
{
	atomic_store_explicit(&ts->requests, requests, RELAXED);
	atomic_store_explicit(&ts->bytes_in, bytes_in, RELAXED);
	atomic_store_explicit(&ts->bytes_out, bytes_out, RELAXED);
	atomic_store_explicit(&ts->open_streams, open_streams, RELAXED);
}

/* ---------------------------------------------------------------------
 * One request's record: user thread only.
 */

static long long
metrics_now_us(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The first bytes of a request arrived: start its clock. */
void
request_record_begin(struct request_record *rec)
{
	rec->open = true;
	rec->start_us = metrics_now_us(CLOCK_MONOTONIC);
	rec->start_wall_ms = metrics_now_us(CLOCK_REALTIME) / 1000;
	rec->method[0] = '\0';
	rec->target[0] = '\0';
	rec->version_minor = 1;
	rec->request_bytes = rec->response_bytes = 0;
	rec->status = 0;
	rec->by_router = false;
	rec->tunnel_id = 0;
	rec->service = NULL;
}

/* The head was parsed: keep what the log shows of it. A target longer
 * than REQUEST_RECORD_TARGET is cut and ends in "...". */
void
request_record_head(struct request_record *rec, const char *method, const char *target,
                    int version_minor)
{
	size_t len = strlen(target);

	snprintf(rec->method, sizeof rec->method, "%s", method);
	if (len > REQUEST_RECORD_TARGET) {
		memcpy(rec->target, target, REQUEST_RECORD_TARGET);
		memcpy(rec->target + REQUEST_RECORD_TARGET, "...", 4);
	} else {
		memcpy(rec->target, target, len + 1);
	}
	rec->version_minor = version_minor;
}

/* A tunnel took the request (again, after a retry). */
void
request_record_tunnel(struct request_record *rec, int tunnel_id,
                      struct metrics_service *service)
{
	rec->tunnel_id = tunnel_id;
	rec->service = service;
}

/* A status line went out; by_router when the router made the answer.
 * An answer to bytes the parser refused before a request began (no
 * method at all) opens the record here. */
void
request_record_answer(struct request_record *rec, int status, bool by_router)
{
	if (!rec->open)
		request_record_begin(rec);
	rec->status = status;
	rec->by_router = by_router;
}

/* The request is over (answered, cut, or its user gone): count it and
 * write its access log line. A record with neither a parsed head nor an
 * answer (stray bytes, or a user that left in mid-head) is no request
 * and leaves no trace. Does nothing when no request is open. */
void
request_record_end(struct ptth_router *r, struct request_record *rec, const char *client)
{
	long long duration_us;

	if (!rec->open)
		return;
	rec->open = false;
	if (rec->method[0] == '\0' && rec->status == 0)
		return;
	duration_us = metrics_now_us(CLOCK_MONOTONIC) - rec->start_us;
	if (duration_us < 0)
		duration_us = 0;
	metrics_count_request(&r->metrics, rec, duration_us);
	if (access_log_write(&r->access_log, rec, client, duration_us) < 0)
		atomic_fetch_add_explicit(&r->metrics.access_log_errors, 1, RELAXED);
}

/* ---------------------------------------------------------------------
 * Text buffers.
 */

void
metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0,
		              fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if (t->buf != NULL && (size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 4096;
		while (cap < t->len + (size_t)n + 1)
			cap *= 2;
		char *buf = realloc(t->buf, cap);
		if (buf == NULL) {
			t->failed = true;
			return;
		}
		t->buf = buf;
		t->cap = cap;
	}
}

void
metrics_text_free(struct metrics_text *t)
{
	free(t->buf);
	memset(t, 0, sizeof *t);
}

/* Appends s as the inside of a quoted string: a Prometheus label value
 * (json false) or a JSON string (json true). Both escape \ and ";
 * Prometheus also \n, JSON every control character. */
static void
metrics_text_quoted(struct metrics_text *t, const char *s, bool json)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '\\' || ch == '"')
			metrics_text_printf(t, "\\%c", ch);
		else if (ch == '\n')
			metrics_text_printf(t, "\\n");
		else if (json && ch < 0x20)
			metrics_text_printf(t, "\\u%04x", ch);
		else
			metrics_text_printf(t, "%c", ch);
	}
}

static uint64_t
load(atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, RELAXED);
}

/* ---------------------------------------------------------------------
 * GET /metrics.
 */

static void
metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
	metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{service="S"<extra>} value */
static void
metrics_service_sample(struct metrics_text *t, const char *name, const char *service,
                       const char *extra, uint64_t value)
{
	metrics_text_printf(t, "%s{service=\"", name);
	metrics_text_quoted(t, service, false);
	metrics_text_printf(t, "\"%s} %llu\n", extra ? extra : "", (unsigned long long)value);
}

/* One service as the renderer sees it: its name, counters and pool. */
struct metrics_entry {
	const char *name;
	struct metrics_service *m;
	struct pool *pool;
};

/* Lists the default pool and every named service into a new array
 * (services are never freed while the router lives, so the pointers stay
 * valid). Takes the services' lock alone, to copy them. Returns the
 * count, or 0 when out of memory (*out is then NULL). */
static size_t
metrics_entries(struct ptth_router *r, struct metrics_entry **out)
{
	struct services *s = &r->services;
	size_t n = 0;

	mutex_lock(&s->mu);
	*out = malloc((s->count + 1) * sizeof **out);
	if (*out != NULL) {
		(*out)[n++] = (struct metrics_entry){ "", &r->metrics.fallback, &r->pool };
		for (size_t i = 0; i < s->count; i++) {
			struct service *svc = s->items[i];
			(*out)[n++] = (struct metrics_entry){ svc->name, &svc->metrics, &svc->pool };
		}
	}
	mutex_unlock(&s->mu);
	return n;
}

/* What the admin thread gathers from one pool: tunnels, queued and
 * in-flight requests. Takes the pool's lock (pool_snapshot) and each
 * queue's, one at a time. */
struct pool_figures {
	size_t tunnels;
	size_t queued;
	long long in_flight;
};

static struct pool_figures
metrics_pool_figures(struct pool *p)
{
	struct pool_figures f = { 0, 0, 0 };
	struct tunnel **ts;
	size_t n = pool_snapshot(p, &ts);

	f.tunnels = n;
	for (size_t i = 0; i < n; i++) {
		f.queued += queue_len(&ts[i]->inbox.fresh);
		f.in_flight += atomic_load(&ts[i]->in_flight);
		tunnel_unref(ts[i]);
	}
	free(ts);
	return f;
}

/* The gauges of every service: one pool each. */
static void
metrics_render_pools(struct metrics_text *t, const struct metrics_entry *e, size_t n)
{
	struct pool_figures *f = calloc(n, sizeof *f);

	if (f == NULL) {
		t->failed = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		f[i] = metrics_pool_figures(e[i].pool);
	metrics_family(t, "ptth_tunnels", "gauge",
	               "Tunnels able to take requests, by service (\"\" is the default pool).");
	for (size_t i = 0; i < n; i++)
		metrics_service_sample(t, "ptth_tunnels", e[i].name, NULL, f[i].tunnels);
	metrics_family(t, "ptth_queue_depth", "gauge",
	               "Requests waiting in tunnel queues for a stream, by service.");
	for (size_t i = 0; i < n; i++)
		metrics_service_sample(t, "ptth_queue_depth", e[i].name, NULL, f[i].queued);
	metrics_family(t, "ptth_requests_in_flight", "gauge",
	               "Requests handed to a tunnel and not yet finished, by service.");
	for (size_t i = 0; i < n; i++)
		metrics_service_sample(t, "ptth_requests_in_flight", e[i].name, NULL,
		                       f[i].in_flight > 0 ? (uint64_t)f[i].in_flight : 0);
	free(f);
}

/* One service's duration histogram: cumulative buckets, sum, count. */
static void
metrics_render_histogram(struct metrics_text *t, struct metrics_service *s)
{
	char extra[64];
	uint64_t cumulative = 0;

	for (int i = 0; i <= METRICS_DURATION_BUCKETS; i++) {
		cumulative += load(&s->duration[i]);
		if (i < METRICS_DURATION_BUCKETS)
			snprintf(extra, sizeof extra, ",le=\"%g\"", metrics_duration_bounds[i]);
		else
			snprintf(extra, sizeof extra, ",le=\"+Inf\"");
		metrics_service_sample(t, "ptth_request_duration_seconds_bucket", s->name, extra,
		                       cumulative);
	}
	metrics_text_printf(t, "ptth_request_duration_seconds_sum{service=\"");
	metrics_text_quoted(t, s->name, false);
	metrics_text_printf(t, "\"} %.6f\n", (double)load(&s->duration_us) / 1e6);
	metrics_service_sample(t, "ptth_request_duration_seconds_count", s->name, NULL,
	                       cumulative);
}

/* requests_total, the duration histogram and bytes, of every service. */
static void
metrics_render_requests(struct metrics_text *t, const struct metrics_entry *e, size_t n)
{
	char extra[64];

	metrics_family(t, "ptth_requests_total", "counter",
	               "Requests answered (or ended unanswered: class \"other\"), by service "
	               "and status class.");
	for (size_t k = 0; k < n; k++) {
		for (int i = 0; i < METRICS_CLASSES; i++) {
			snprintf(extra, sizeof extra, ",class=\"%s\"", metrics_class_names[i]);
			metrics_service_sample(t, "ptth_requests_total", e[k].name, extra,
			                       load(&e[k].m->requests[i]));
		}
	}
	metrics_family(t, "ptth_request_duration_seconds", "histogram",
	               "From a request's first byte to the end of its response.");
	for (size_t k = 0; k < n; k++)
		metrics_render_histogram(t, e[k].m);
	metrics_family(t, "ptth_request_body_bytes_total", "counter",
	               "Request body bytes received from users, by service.");
	for (size_t k = 0; k < n; k++)
		metrics_service_sample(t, "ptth_request_body_bytes_total", e[k].name, NULL,
		                       load(&e[k].m->request_bytes));
	metrics_family(t, "ptth_response_bytes_total", "counter",
	               "Bytes written to users (status line, fields and body), by service.");
	for (size_t k = 0; k < n; k++)
		metrics_service_sample(t, "ptth_response_bytes_total", e[k].name, NULL,
		                       load(&e[k].m->response_bytes));
}

/* A gauge or counter without labels. */
static void
metrics_plain(struct metrics_text *t, const char *name, const char *type, const char *help,
              uint64_t value)
{
	metrics_family(t, name, type, help);
	metrics_text_printf(t, "%s %llu\n", name, (unsigned long long)value);
}

/* The threads now running: from the router's own counts (users and
 * tunnels) and, for the whole process, from /proc/self/status. */
static void
metrics_render_threads(struct ptth_router *r, struct metrics_text *t)
{
	int threads, conns, process = 0;
	char line[128];
	FILE *f;

	mutex_lock(&r->mu);
	threads = r->threads;
	conns = r->conn_count;
	mutex_unlock(&r->mu);
	metrics_plain(t, "ptth_user_connections", "gauge", "User connections open now.",
	              (uint64_t)conns);
	metrics_plain(t, "ptth_user_connections_accepted_total", "counter",
	              "User connections accepted.", load(&r->metrics.connections));
	metrics_family(t, "ptth_threads", "gauge",
	               "Router threads by kind: user (one per connection), tunnel (one per "
	               "tunnel, starting and ending ones included), accept, admin.");
	metrics_text_printf(t, "ptth_threads{kind=\"user\"} %d\n", conns);
	metrics_text_printf(t, "ptth_threads{kind=\"tunnel\"} %d\n",
	                    threads > conns ? threads - conns : 0);
	metrics_text_printf(t, "ptth_threads{kind=\"accept\"} 2\n");
	metrics_text_printf(t, "ptth_threads{kind=\"admin\"} 1\n");
	f = fopen("/proc/self/status", "r");
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "Threads: %d", &process) == 1)
			break;
	if (f != NULL)
		fclose(f);
	metrics_plain(t, "ptth_process_threads", "gauge",
	              "Threads of the whole process (/proc/self/status).", (uint64_t)process);
}

/* Router-wide counters: refusals, retries, tunnel events. */
static void
metrics_render_events(struct ptth_router *r, struct metrics_text *t)
{
	struct metrics *m = &r->metrics;

	metrics_family(t, "ptth_refusals_total", "counter",
	               "Answers the router made itself instead of a backend's, by status.");
	for (int i = 0; i < METRICS_REFUSAL_STATUSES; i++)
		metrics_text_printf(t, "ptth_refusals_total{status=\"%d\"} %llu\n",
		                    metrics_refusal_statuses[i],
		                    (unsigned long long)load(&m->refusals[i]));
	metrics_plain(t, "ptth_retries_total", "counter",
	              "Requests sent again on another tunnel after a refusal.", load(&m->retries));
	metrics_plain(t, "ptth_tunnels_added_total", "counter", "Tunnels that joined.",
	              load(&m->tunnels_added));
	metrics_family(t, "ptth_tunnels_removed_total", "counter",
	               "Tunnels that left, by reason.");
	for (int i = 0; i < METRICS_REMOVALS; i++)
		metrics_text_printf(t, "ptth_tunnels_removed_total{reason=\"%s\"} %llu\n",
		                    metrics_removal_names[i],
		                    (unsigned long long)load(&m->tunnels_removed[i]));
	metrics_plain(t, "ptth_access_log_errors_total", "counter",
	              "Access log lines that could not be written.", load(&m->access_log_errors));
}

/* Builds the whole exposition into out (which the caller frees with
 * metrics_text_free()). Admin thread. Returns 0 or -ENOMEM. */
int
metrics_render(struct ptth_router *r, struct metrics_text *out)
{
	struct metrics_entry *e;
	size_t n = metrics_entries(r, &e);

	if (n == 0)
		return -ENOMEM;
	metrics_render_pools(out, e, n);
	metrics_render_requests(out, e, n);
	metrics_render_events(r, out);
	metrics_render_threads(r, out);
	free(e);
	return out->failed ? -ENOMEM : 0;
}

/* ---------------------------------------------------------------------
 * GET /tunnels.
 */

/* One tunnel as a JSON object. */
static void
metrics_render_tunnel(struct metrics_text *t, struct tunnel *tun, const char *service,
                      long long now, bool first)
{
	struct tunnel_stats *ts = &tun->stats;
	long long age = now - atomic_load_explicit(&ts->started_ms, RELAXED);

	metrics_text_printf(t, "%s\n  {\"id\": %d, \"remote\": \"", first ? "" : ",", tun->id);
	metrics_text_quoted(t, tun->name, true);
	metrics_text_printf(t, "\", \"service\": \"");
	metrics_text_quoted(t, service, true);
	metrics_text_printf(t, "\", \"age_seconds\": %.3f, \"open_streams\": %u, "
	                    "\"in_flight\": %d, \"queued\": %zu, \"requests\": %llu, "
	                    "\"bytes_in\": %llu, \"bytes_out\": %llu}",
	                    (double)(age > 0 ? age : 0) / 1000.0,
	                    atomic_load_explicit(&ts->open_streams, RELAXED),
	                    atomic_load(&tun->in_flight), queue_len(&tun->inbox.fresh),
	                    (unsigned long long)load(&ts->requests),
	                    (unsigned long long)load(&ts->bytes_in),
	                    (unsigned long long)load(&ts->bytes_out));
}

/* Builds the JSON list of live tunnels into out. Admin thread; walks a
 * snapshot of every pool (services_snapshot(), each pool's lock in
 * turn). Returns 0 or -ENOMEM. */
int
metrics_render_tunnels(struct ptth_router *r, struct metrics_text *out)
{
	struct tunnel **ts;
	size_t n = services_snapshot(&r->services, &ts);
	long long now = now_ms();

	metrics_text_printf(out, "[");
	for (size_t i = 0; i < n; i++) {
		metrics_render_tunnel(out, ts[i], ts[i]->service_name, now, i == 0);
		tunnel_unref(ts[i]);
	}
	free(ts);
	metrics_text_printf(out, "%s]\n", n > 0 ? "\n" : "");
	return out->failed ? -ENOMEM : 0;
}
