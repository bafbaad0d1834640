/*
 * harness.h -- shared helpers for tests that run the router and backends
 * for real: in-process routers and backends on ephemeral ports serving
 * bin/backend's own routes (examples/backend/routes.c), libcurl requests that
 * cannot hang, raw sockets, child processes from PTTH_BIN_DIR, and this
 * process's memory use.
 *
 * Every helper reports failure to its caller (NULL, a negative code or a
 * CURLcode); none calls a cmocka assertion, so any thread may use them.
 * See harness.c for the module card.
 */
#ifndef PTTH_TEST_HARNESS_H
#define PTTH_TEST_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <curl/curl.h>

#include "ptth.h"

/* The longest any single helper waits (a tunnel to appear, a reply, a
 * socket read) before it gives up and reports the failure. */
#define HARNESS_TIMEOUT_MS 30000

/* cmocka group setup/teardown: libcurl's global state, SIGPIPE ignored,
 * library logs only when PTTH_TEST_VERBOSE=1. Pass them to
 * cmocka_run_group_tests(). */
int harness_setup(void **state);
int harness_teardown(void **state);

/* True under a sanitizer (PTTH_SAN, ASAN_OPTIONS or TSAN_OPTIONS set, as
 * scripts/run-tests.sh does): tests should move fewer bytes then. */
bool harness_sanitized(void);

/* Milliseconds on the monotonic clock. */
long long harness_now_ms(void);

/* The absolute CLOCK_MONOTONIC time ms from now, for timed waits on a
 * condition made by harness_cond_init_monotonic(). */
struct timespec harness_deadline(long ms);

/* Initialises cond to time its waits on CLOCK_MONOTONIC. */
void harness_cond_init_monotonic(pthread_cond_t *cond);

/* ---------------------------------------------------------------------
 * An in-process router bound to 127.0.0.1:0 on both ports.
 */
struct harness_router {
	struct ptth_router *router;
	int http_port;            /* the user side */
	int tunnel_port;          /* where backends dial */
};

/* Creates and starts a router. Returns 0 or a negative code; on failure
 * hr->router is NULL. */
int harness_router_start(struct harness_router *hr);
/* The same with the given options (NULL: the defaults); both addresses
 * are replaced by 127.0.0.1:0 whatever opts says. */
int harness_router_start_opts(struct harness_router *hr,
                              const struct ptth_router_options *opts);
/* ptth_router_free() and forget it. Safe on a router already freed. */
void harness_router_free(struct harness_router *hr);
/* Writes "http://127.0.0.1:PORT<path>" for the user port into buf. */
void harness_url(const struct harness_router *hr, const char *path, char *buf,
                 size_t size);

/* ---------------------------------------------------------------------
 * An in-process backend serving, as name, the teaching routes of
 * bin/backend (examples/backend/routes.c: /foo, /echo, /bytes, /headers, /sleep,
 * /status, /reset, /trailers, /service; GET /sleep ends early when the
 * backend is freed) and two test routes:
 *   GET  /barrier?n=N  waits until N /barrier handlers of this backend are
 *                      inside at once, then 200 "ok"; 504 after ms=M
 *                      milliseconds (default 20000), 503 when the backend
 *                      is being freed. All concurrent callers must use the
 *                      same N.
 *   GET  /who          200 and the backend's name, without Content-Length
 *                      (so HTTP/1.1 users get it chunked, HTTP/1.0 users
 *                      close-delimited)
 *   anything else      404 (from the mux)
 */
struct harness_backend;

/* Starts a backend (ptth_backend_new + ptth_backend_start, default
 * options: one tunnel, no reconnect) dialled to hr's tunnel port and
 * waits until the router lists one more tunnel than before.
 * Returns NULL on failure. */
struct harness_backend *harness_backend_start(struct harness_router *hr,
                                              const char *name);
/* The same with options (NULL: the defaults): any field but router_addr
 * is taken as given, for instance a ptth_backend_options_init() result
 * with one field changed; a NULL handler means the harness's routes,
 * another handler replaces them (the barrier, /who and the counts of
 * harness_backend_requests() then do not apply). */
struct harness_backend *harness_backend_start_opts(struct harness_router *hr,
                                                   const char *name,
                                                   const struct ptth_backend_options *opts);
/* The same, but the harness dials and hands the socket over with
 * backend_start_fd() (src/backend/backend.h), keeping a dup so that the tunnel
 * can be cut later. */
struct harness_backend *harness_backend_start_cuttable(struct harness_router *hr,
                                                       const char *name);
/* The same through the PTTH handshake, naming service and showing token
 * (either may be NULL). *rc (may be NULL) gets 0, or why it failed, for
 * instance PTTH_EAUTH or PTTH_EFORBIDDEN from a router with tokens. */
struct harness_backend *harness_backend_start_greeting(struct harness_router *hr,
                                                       const char *name, const char *service,
                                                       const char *token, int *rc);
/* Shuts the tunnel socket down both ways (shutdown(2)), as a crash or a
 * network cut would: no GOAWAY, no goodbye. Only for backends started
 * with harness_backend_start_cuttable(). Returns 0 or a negative code. */
int harness_backend_cut(struct harness_backend *hb);
/* Releases /barrier waiters, stops the backend, joins its threads and
 * frees it. NULL is allowed. */
void harness_backend_free(struct harness_backend *hb);
/* Waits until at least n handlers are waiting inside /barrier.
 * Returns 0 or -ETIMEDOUT. */
int harness_backend_wait_barrier(struct harness_backend *hb, int n, int timeout_ms);
/* Waits until no handler of this backend is running.
 * Returns 0 or -ETIMEDOUT. */
int harness_backend_wait_idle(struct harness_backend *hb, int timeout_ms);
/* How many handlers of this backend have started so far. */
long harness_backend_requests(struct harness_backend *hb);

/* ---------------------------------------------------------------------
 * HTTP through libcurl. Every transfer has CURLOPT_TIMEOUT and ignores
 * proxy settings from the environment.
 */
struct http_reply {
	long status;        /* out: the status, 0 when none arrived */
	char *body;         /* in: where to keep the body, or NULL to discard it */
	size_t cap;         /* in: size of body; at most cap - 1 bytes are kept,
	                     *     always followed by a NUL */
	size_t len;         /* out: bytes kept in body */
	uint64_t total;     /* out: body bytes received, kept or not */
	long connects;      /* out: new connections this transfer opened */
};

/* An easy handle with the harness's options; reuse it for keep-alive.
 * Free it with curl_easy_cleanup(). NULL on failure. */
CURL *http_client_new(void);
/* GET or POST (data, len; no "Expect: 100-continue") on an existing handle.
 * reply->body and reply->cap are inputs; the rest is filled in.
 * Returns CURLE_OK or the libcurl error. */
CURLcode http_client_get(CURL *c, const char *url, struct http_reply *reply);
CURLcode http_client_post(CURL *c, const char *url, const void *data, size_t len,
                          struct http_reply *reply);
/* One-shot versions on a fresh handle. body may be NULL (discarded) and
 * len may be NULL. */
CURLcode http_get(const char *url, long *status, char *body, size_t cap, size_t *len);
CURLcode http_post(const char *url, const void *data, size_t data_len, long *status,
                   char *body, size_t cap, size_t *len);

/* ---------------------------------------------------------------------
 * Raw sockets, for what libcurl will not send (pipelining, HTTP/1.0).
 */

/* Connects to 127.0.0.1:port with HARNESS_TIMEOUT_MS send and receive
 * timeouts. Returns the socket or a negative code. */
int harness_dial(int port);
/* Sends all of data. Returns 0 or a negative code. */
int harness_send_all(int fd, const void *data, size_t len);
/* Reads until the peer closes, keeping at most cap - 1 bytes followed by
 * a NUL. Returns the length, or -ETIMEDOUT (peer never closed), -ENOBUFS
 * (more than cap - 1 bytes) or another negative code. */
ssize_t harness_recv_until_close(int fd, char *buf, size_t cap);
/* The number of ESTABLISHED IPv4 TCP connections on this host to
 * 127.0.0.1:remote_port (for example, backends connected to a tunnel
 * port), from /proc/net/tcp. Returns the count or a negative code. */
int harness_tcp_count(int remote_port);

/* ---------------------------------------------------------------------
 * Child processes and memory.
 */

/* Starts PTTH_BIN_DIR/prog (default "bin/prog") with the NULL-terminated
 * args (not counting argv[0]). The child is killed (PR_SET_PDEATHSIG)
 * if this process dies first. Returns the pid or a negative code. */
pid_t harness_spawn(const char *prog, const char *const args[]);
/* The same, with the child's stdout on a pipe whose read end is stored in
 * *out_fd, and its stderr in *err_fd; a NULL pointer leaves that stream
 * as the suite's. The caller closes the fds. */
pid_t harness_spawn_piped(const char *prog, const char *const args[], int *out_fd,
                          int *err_fd);
/* Sends sig (one that ends the process) and reaps the child. Returns
 * its wait status or a negative code. */
int harness_kill(pid_t pid, int sig);
/* Waits up to timeout_ms for pid to exit and reaps it; one still running
 * then is killed (SIGKILL) and reaped. Returns 0 with the wait status in
 * *status, -ETIMEDOUT, or another negative code. */
int harness_wait_exit(pid_t pid, int timeout_ms, int *status);
/* Describes what harness_wait_exit() returned ("exit status 0", "killed
 * by signal 9", "no exit in time") in buf. */
void harness_describe_exit(int rc, int status, char *buf, size_t size);
/* Reads from fd into buf (cap bytes, kept NUL-terminated) until it holds
 * count copies of needle, or with needle NULL until end of file. Returns 0
 * or a negative code (-ETIMEDOUT, -ENOBUFS when buf is full first, -EPIPE
 * when the writer is gone before the needles came). */
int harness_read_until(int fd, char *buf, size_t cap, const char *needle, int count,
                       int timeout_ms);

/* What bin/router's two "Listening ..." lines say. */
struct harness_listening {
	char tunnel_addr[128];    /* "HOST:PORT" from tcp://HOST:PORT */
	char http_addr[128];      /* "HOST:PORT" from http://HOST:PORT */
	int tunnel_port;
	int http_port;
};
/* Reads the two lines from fd (bin/router's stdout). Returns 0 or a
 * negative code (-EPROTO when they do not say what is expected). */
int harness_read_listening(int fd, struct harness_listening *out, int timeout_ms);
/* Binds a socket to 127.0.0.1:0 without listening: the port stays ours
 * and every dial to it is refused until the socket is closed. Returns
 * the socket (and *port) or a negative code. */
int harness_port_reserve(int *port);

/* Reads VmRSS and VmHWM (KiB) from /proc/self/status; either pointer
 * may be NULL. Returns 0 or a negative code. */
int harness_memory(long *rss_kib, long *hwm_kib);
/* Resets VmHWM to the current RSS (/proc/self/clear_refs, "5").
 * Returns 0 or a negative code when the kernel does not allow it. */
int harness_memory_reset_peak(void);

#endif
