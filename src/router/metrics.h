/* metrics.h -- the router's counters and their Prometheus text. See metrics.c. */
#ifndef PTTH_METRICS_H
#define PTTH_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ptth_router;

/* Upper bounds (seconds) of the request duration histogram's buckets;
 * one more bucket, +Inf, follows them. */
#define METRICS_DURATION_BUCKETS 16

/* Status classes of requests_total: index 0 is "none" (no answer was
 * sent), 1 to 5 are 1xx to 5xx. */
#define METRICS_CLASSES 6

/* Statuses the router answers by itself; refusals_total has one
 * counter for each, in this order (see metrics_status_index()). */
#define METRICS_REFUSAL_STATUSES 11

/* Why a tunnel left, for tunnels_removed_total{reason}. */
enum metrics_removal {
	METRICS_REMOVED_CLOSED,        /* the backend closed it, or it finished */
	METRICS_REMOVED_GOAWAY,        /* the backend sent GOAWAY and drained */
	METRICS_REMOVED_PING_TIMEOUT,  /* a PING went unanswered */
	METRICS_REMOVED_STOPPING,      /* the router stopped */
	METRICS_REMOVED_ERROR,         /* a protocol or socket error */
	METRICS_REMOVALS
};

/* Counters kept for one service. Requests with no service (every
 * tunnel of the default pool, and requests refused before a tunnel was
 * picked) count in the router's fallback. Every counter is an atomic,
 * bumped with memory_order_relaxed: see metrics.c. */
struct metrics_service {
	const char *name;   /* "" for the default pool; set at init, read-only */
	atomic_uint_fast64_t requests[METRICS_CLASSES];
	atomic_uint_fast64_t duration[METRICS_DURATION_BUCKETS + 1]; /* per bucket,
	                       not cumulative: the sum is formed when scraped */
	atomic_uint_fast64_t duration_us;       /* sum of all durations */
	atomic_uint_fast64_t request_bytes;     /* request body bytes from users */
	atomic_uint_fast64_t response_bytes;    /* bytes written to users */
};

/* Router-wide counters. */
struct metrics {
	struct metrics_service fallback;        /* the default pool's */
	atomic_uint_fast64_t refusals[METRICS_REFUSAL_STATUSES];
	atomic_uint_fast64_t retries;           /* requests sent again after a refusal */
	atomic_uint_fast64_t tunnels_added;
	atomic_uint_fast64_t tunnels_removed[METRICS_REMOVALS];
	atomic_uint_fast64_t connections;       /* user connections accepted */
	atomic_uint_fast64_t access_log_errors; /* lines that could not be written */
};

/* What one tunnel publishes about itself for GET /tunnels. Only its
 * tunnel thread writes (metrics_tunnel_publish()); the admin thread reads. */
struct tunnel_stats {
	atomic_llong started_ms;                /* now_ms() when it joined */
	atomic_uint_fast64_t requests;          /* streams opened so far */
	atomic_uint_fast64_t bytes_in, bytes_out; /* on the tunnel socket */
	atomic_uint open_streams;
	bool counted;                           /* tunnel thread only: counted as added */
};

/* One request as the router saw it, filled in by its user thread and
 * handed to the counters and the access log when it ends. */
#define REQUEST_RECORD_TARGET 1024  /* target bytes kept for the log */
struct request_record {
	bool open;                 /* a request has begun and not ended */
	long long start_us;        /* CLOCK_MONOTONIC, for the duration */
	long long start_wall_ms;   /* CLOCK_REALTIME, for the log's time */
	char method[24];           /* "" until the head is parsed */
	char target[REQUEST_RECORD_TARGET + 4]; /* ends in "..." when cut */
	int version_minor;
	int status;                /* the status sent, 0 until one is */
	bool by_router;            /* the router made the answer itself */
	long long request_bytes;   /* body bytes read from the user */
	long long response_bytes;  /* bytes written to the user */
	int tunnel_id;             /* 0 until a tunnel took it */
	struct metrics_service *service; /* NULL: the default pool */
};

extern const double metrics_duration_bounds[METRICS_DURATION_BUCKETS];
extern const int metrics_refusal_statuses[METRICS_REFUSAL_STATUSES];

void metrics_init(struct metrics *m);
void metrics_service_init(struct metrics_service *s, const char *name);
int metrics_status_index(int status);
void metrics_count_request(struct metrics *m, const struct request_record *rec,
                           long long duration_us);
void metrics_count_retry(struct metrics *m);
void metrics_count_connection(struct metrics *m);
void metrics_tunnel_added(struct metrics *m, struct tunnel_stats *ts, long long now);
void metrics_tunnel_removed(struct metrics *m, struct tunnel_stats *ts, const char *reason,
                            bool goaway);
void metrics_tunnel_publish(struct tunnel_stats *ts, uint64_t requests,
                            uint64_t bytes_in, uint64_t bytes_out, unsigned open_streams);

void request_record_begin(struct request_record *rec);
void request_record_head(struct request_record *rec, const char *method,
                         const char *target, int version_minor);
void request_record_tunnel(struct request_record *rec, int tunnel_id,
                           struct metrics_service *service);
void request_record_answer(struct request_record *rec, int status, bool by_router);
void request_record_end(struct ptth_router *r, struct request_record *rec,
                        const char *client);

/* A growing text buffer for the exposition. */
struct metrics_text {
	char *buf;
	size_t len, cap;
	bool failed;               /* out of memory: the text is incomplete */
};

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void metrics_text_free(struct metrics_text *t);
int metrics_render(struct ptth_router *r, struct metrics_text *out);
int metrics_render_tunnels(struct ptth_router *r, struct metrics_text *out);

#endif
