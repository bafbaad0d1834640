/*
 * ptth.h -- the public interface of ptth, a ReverseHTTP router and the
 * backends that dial it.
 *
 * A router listens on two ports: user HTTP/1.1 traffic on one, reverse
 * tunnels on the other. A backend never listens: it dials the router's
 * tunnel port and then serves HTTP/2 on that connection, with the router
 * as the HTTP/2 client, either at once (raw, as the original) or after
 * the PTTH handshake, which names a service and carries a token
 * (docs/PROTOCOL.md). Every name here starts with ptth_ or PTTH_.
 *
 * Errors: functions that can fail return 0 or a negative code, either
 * -errno or one of the PTTH_E* codes below; ptth_strerror() turns any of
 * them into text. Constructors return NULL on failure.
 */
#ifndef PTTH_H
#define PTTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol-level error codes; all are below -1000 so they never collide
 * with -errno values. */
enum {
	PTTH_EPROTO = -1001,    /* the peer broke HTTP/1.1 or HTTP/2 */
	PTTH_ERESET = -1002,    /* the stream was reset by the peer */
	PTTH_ECLOSED = -1003,   /* the tunnel or connection went away */
	PTTH_ETOOBIG = -1004,   /* a limit was exceeded */
	PTTH_ESTATE = -1005,    /* call not allowed in this state */
	PTTH_EADDR = -1006,     /* an address could not be parsed */
	PTTH_EREFUSED = -1007,  /* the backend never processed the request; safe to retry */
	PTTH_EAUTH = -1008,     /* the router wants a (known) token: 401 to the handshake */
	PTTH_EFORBIDDEN = -1009, /* the token may not serve that service: 403 */
};

/* How the router picks a tunnel for each request. */
enum ptth_balance {
	PTTH_BALANCE_RANDOM = 0,      /* the original's choice */
	PTTH_BALANCE_ROUND_ROBIN = 1,
	PTTH_BALANCE_LEAST_BUSY = 2,  /* fewest requests in flight */
};

/* Returns a static, human-readable text for any error code this library
 * returns (negative errno values included). */
const char *ptth_strerror(int code);

/* Turns the log lines that ptth writes to stderr on (1, the default) or
 * off (0). Start-up messages and errors are always written. */
void ptth_log_set_verbose(int verbose);

/* ---------------------------------------------------------------------
 * Router: the Go original's Router.ListenAndAcceptTunnels + ServeHTTP.
 */
struct ptth_router;

struct ptth_router_options {
	const char *http_addr;   /* user side, "HOST:PORT" or ":PORT"; port 0 picks one */
	const char *tunnel_addr; /* tunnel side, same forms */
	int max_conns;           /* user connections at once (1024) */
	int queue_size;          /* requests waiting per tunnel (256) */
	size_t max_uri;          /* request target bytes, 414 beyond (8 KiB) */
	size_t max_header_bytes; /* request header block, 431 beyond (64 KiB; at most
	                            PTTH_MAX_HEADER_BYTES_CAP) */
	int max_header_fields;   /* request fields, 431 beyond (100) */
	long long max_body;      /* request body bytes, 413 beyond (0: no limit) */
	int header_timeout_ms;   /* a request head must arrive within (10 s), else 408 */
	int idle_timeout_ms;     /* an idle keep-alive connection is closed after (60 s) */
	int body_timeout_ms;     /* longest pause between request body bytes (30 s),
	                            else 408, or the request is cut once answered */
	int send_timeout_ms;     /* a user taking no response byte for this long is
	                            dropped and its stream reset (60 s) */
	int backend_timeout_ms;  /* response head must arrive within (60 s) of the
	                            hand-over or of the last request body bytes passed
	                            on, else 504; so must each piece of its body (or
	                            room for the request body), else the body is cut */
	int websocket_idle_timeout_ms; /* an upgraded (WebSocket) connection on which
	                            no byte moved either way for this long is
	                            closed and its stream reset (300 s) */
	int no_forwarded;        /* 1: do not add X-Forwarded-* and Forwarded fields */
	int ping_interval_ms;    /* PING a tunnel quiet for this long (10 s; -1: never) */
	int ping_timeout_ms;     /* drop a tunnel whose PING is unanswered (5 s) */
	int drain_timeout_ms;    /* ptth_router_shutdown() waits this long (10 s) */
	enum ptth_balance balance;
	FILE *trace;             /* one line per HTTP/2 frame of every tunnel, written
	                            by its tunnel thread (NULL: none; --trace: stderr) */
	/* Tunnels: raw (HTTP/2 at once, the original's) or the PTTH handshake
	 * (draft-kazuho-ptth-ptth-01), told apart by the dialler's first byte. */
	const char *tunnel_tokens_file; /* "TOKEN SERVICE[,SERVICE...]" lines; NULL: no tokens,
	                                   every handshake and raw tunnel is taken */
	int allow_raw_tunnels;   /* 1: take raw tunnels even with tunnel_tokens_file */
	int raw_wait_ms;         /* a dialler silent this long is raw (200 ms) */
	const char *admin_addr;  /* admin port: GET /metrics, /tunnels, /healthz, "HOST:PORT"
	                            (NULL: none); meant for loopback or a private network */
	const char *access_log;  /* one line per request to this file, or "-" for
	                            stdout (NULL: none); see ptth_router_reopen_access_log() */
};

/* The largest max_header_bytes a router takes: its HTTP/1.1 parser
 * (http-parser's HTTP_MAX_HEADER_SIZE) refuses, with a 431, any head
 * longer than this, request line and line ends included, so a larger
 * limit could never take effect. */
#define PTTH_MAX_HEADER_BYTES_CAP (80 * 1024)

/* Fills *opts with the defaults: "localhost:8888", "localhost:8887" and
 * the limits shown above. A zero left in a field also means its default. */
void ptth_router_options_init(struct ptth_router_options *opts);

/* Creates a router; nothing is bound yet. The strings in opts are copied.
 * Returns NULL when out of memory, or with errno EINVAL when an option is
 * out of range (max_header_bytes above PTTH_MAX_HEADER_BYTES_CAP). */
struct ptth_router *ptth_router_new(const struct ptth_router_options *opts);

/* Binds both ports and starts the two accept threads.
 * Returns 0, or a negative code when an address cannot be bound. */
int ptth_router_start(struct ptth_router *r);

/* The ports bound by ptth_router_start(), useful when port 0 was asked
 * for. Either pointer may be NULL. Returns 0, or PTTH_ESTATE before start. */
int ptth_router_ports(const struct ptth_router *r, int *http_port, int *tunnel_port);

/* The admin port bound by ptth_router_start(), or PTTH_ESTATE when there
 * is none (admin_addr unset, or the router not started or stopped). */
int ptth_router_admin_port(const struct ptth_router *r);

/* Opens the access log file again under the same name, for log rotation
 * (after the old file was renamed; bin/router calls it on SIGHUP). Lines
 * being written meanwhile land whole in the old file or in the new one.
 * Any thread, after ptth_router_start(). Returns 0 (also for "-"),
 * PTTH_ESTATE when there is no access log, or a negative code when the
 * file cannot be opened (the old one stays in use). */
int ptth_router_reopen_access_log(struct ptth_router *r);

/* The number of tunnels in every pool: connected, their backend's
 * SETTINGS received (only then does a tunnel join its pool), and not
 * draining after a GOAWAY. */
int ptth_router_tunnel_count(struct ptth_router *r);

/* Waits until at least n tunnels are live (as ptth_router_tunnel_count()
 * counts them) or timeout_ms passes.
 * Returns 0, or -ETIMEDOUT. Meant for tests and scripts. */
int ptth_router_wait_tunnels(struct ptth_router *r, int n, int timeout_ms);

/* Waits until at most n tunnels are live (tunnels went away) or
 * timeout_ms passes. Returns 0, or -ETIMEDOUT. Meant for tests. */
int ptth_router_wait_tunnels_at_most(struct ptth_router *r, int n, int timeout_ms);

/* The tunnels serving one service ("" for the default pool). */
int ptth_router_service_tunnel_count(struct ptth_router *r, const char *service);

/* Waits until at least n tunnels serve service ("" for the default pool)
 * or timeout_ms passes. Returns 0, or -ETIMEDOUT. */
int ptth_router_wait_service_tunnels(struct ptth_router *r, const char *service, int n,
                                     int timeout_ms);

/* Reads tunnel_tokens_file (again: ptth_router_start() reads it the
 * first time, unless this was called before; bin/router calls it on
 * SIGHUP). Tunnels already up stay up; new handshakes are checked against the new file.
 * On error the old tokens stay in force. Returns 0, PTTH_ESTATE when the
 * router has no tokens file, or a negative code (logged with the line). */
int ptth_router_reload_tokens(struct ptth_router *r);

/* Stops accepting, closes every tunnel and user connection and waits for
 * every thread the router started. Safe to call twice. */
void ptth_router_stop(struct ptth_router *r);

/* Graceful stop: stops accepting, lets requests in flight finish (up to
 * drain_timeout_ms), closes idle connections, sends GOAWAY on every
 * tunnel, then stops as ptth_router_stop() does. */
void ptth_router_shutdown(struct ptth_router *r);

/* Stops the router if needed, then frees it. NULL is allowed. */
void ptth_router_free(struct ptth_router *r);

/* ---------------------------------------------------------------------
 * Backend side: requests and responses seen by a handler.
 *
 * A handler runs on a thread of its own; it may block (sleep, read the
 * request body, write a long response) without holding up other requests.
 * The request and response objects are valid until the handler returns.
 *
 * HEAD: the response to a HEAD request is its head alone (RFC 9110
 * section 9.3.2), so one handler can serve GET and HEAD alike. The head
 * goes out at the first write (or at the end), in one HEADERS frame that
 * ends the stream; the bytes written are discarded and every write
 * succeeds unless the stream failed (reset, tunnel closed); trailers are
 * discarded too. Set the Content-Length GET would have: it is kept. A
 * handler that streams without end should check ptth_request_method(),
 * since for HEAD its writes no longer tell it when the user has gone.
 */
struct ptth_request;
struct ptth_response;

typedef void (*ptth_handler_fn)(struct ptth_request *req,
                                struct ptth_response *res, void *arg);

const char *ptth_request_method(const struct ptth_request *req);
/* The :protocol of an extended CONNECT (RFC 8441), "websocket" for a
 * WebSocket; NULL for any other request. See "WebSockets" below. */
const char *ptth_request_protocol(const struct ptth_request *req);
/* The path without the query, e.g. "/foo". */
const char *ptth_request_path(const struct ptth_request *req);
/* The query without '?', or "" when there is none. */
const char *ptth_request_query(const struct ptth_request *req);
/* The :authority of the request ("" when absent). */
const char *ptth_request_authority(const struct ptth_request *req);
/* The value of the first field called name (case-insensitive), or NULL. */
const char *ptth_request_header(const struct ptth_request *req, const char *name);
/* The number of regular (non-pseudo) fields, and the i-th one. */
size_t ptth_request_header_count(const struct ptth_request *req);
int ptth_request_header_at(const struct ptth_request *req, size_t i,
                           const char **name, const char **value);

/* Reads up to len bytes of the request body, blocking until some arrive.
 * Returns the number of bytes read, 0 at the end of the body, or a
 * negative code when the stream was reset or the tunnel closed. */
ssize_t ptth_request_read(struct ptth_request *req, void *buf, size_t len);

/* Sets the status (default 200). Only before the first write. */
int ptth_response_set_status(struct ptth_response *res, int status);
/* Adds a response field. Only before the first write. Names are sent in
 * lower case, as HTTP/2 requires. */
int ptth_response_add_header(struct ptth_response *res, const char *name,
                             const char *value);
/* Adds a trailer field, sent after the body when the response ends.
 * Any time before ptth_response_end(). Discarded for HEAD. */
int ptth_response_add_trailer(struct ptth_response *res, const char *name,
                              const char *value);
/* Sends the status and fields (if not sent yet) and len bytes of body.
 * Blocks while the router is not reading (HTTP/2 flow control).
 * Returns 0 or a negative code when the stream is gone. For HEAD the
 * bytes are discarded (see above). */
int ptth_response_write(struct ptth_response *res, const void *data, size_t len);
/* Ends the response. Called automatically when the handler returns. */
int ptth_response_end(struct ptth_response *res);
/* Resets the stream instead of answering (RST_STREAM INTERNAL_ERROR); the router
 * answers 502, or cuts the body short if the head was sent. */
void ptth_response_reset(struct ptth_response *res);

/* Convenience: status, one Content-Type field and a whole body, then end. */
int ptth_response_send(struct ptth_response *res, int status,
                       const char *content_type, const void *body, size_t len);

/* WebSockets (RFC 8441). A backend announces SETTINGS_ENABLE_CONNECT_PROTOCOL
 * = 1, so the router may send it a user's WebSocket as an extended
 * CONNECT: ptth_request_method() is "CONNECT", ptth_request_protocol() is
 * "websocket", the path, authority and fields (Sec-WebSocket-Version,
 * -Protocol, -Extensions, Origin, Cookie...) are the user's, and there is
 * no Sec-WebSocket-Key: the router answers the user's key itself.
 *
 * To accept, answer 2xx (normally 200), with Sec-WebSocket-Protocol or
 * -Extensions if chosen and never Content-Length, and send the head with
 * an empty write, ptth_response_write(res, NULL, 0), before reading: the
 * user sends nothing before it has the router's 101. Any other status
 * refuses, and goes to the user as an ordinary response.
 *
 * After that the stream is a two-way byte pipe carrying WebSocket frames
 * (the handler, or a library such as wslay, does the framing; client
 * frames arrive masked): ptth_request_read() returns what the user sent,
 * 0 once the user closed its side, or a negative code when the stream was
 * reset (the user vanished, or the router gave up); ptth_response_write()
 * sends, and ptth_response_end() closes the backend's side.
 *
 * Threads: the pipe may be used from the handler's thread alone, or from
 * two threads at once: exactly one thread reading (ptth_request_read())
 * while exactly one other writes (ptth_response_write(), ptth_response_end(),
 * ptth_response_reset()). Everything else (status, fields) comes before
 * the second thread starts, and the handler returns only after that
 * thread is done with req and res, which are freed on return. */

/* ---------------------------------------------------------------------
 * A path mux like Go's http.ServeMux, reduced to exact paths: a request
 * whose path was registered goes to its handler, anything else is 404.
 */
struct ptth_mux;

struct ptth_mux *ptth_mux_new(void);
/* Registers fn for exactly this path. Returns 0, -ENOMEM or -EEXIST. */
int ptth_mux_handle(struct ptth_mux *mux, const char *path, ptth_handler_fn fn,
                    void *arg);
void ptth_mux_free(struct ptth_mux *mux);
/* A ptth_handler_fn that dispatches through the mux passed as arg. */
void ptth_mux_serve(struct ptth_request *req, struct ptth_response *res, void *mux);

/* ---------------------------------------------------------------------
 * Backend: the Go original's CreateTunnelAndServe(addr, handler).
 */
struct ptth_backend;

struct ptth_backend_options {
	const char *router_addr; /* "HOST:PORT" of the router's tunnel port */
	const char *const *router_addrs; /* several routers (router_count of them): when
	                            set, router_addr is ignored and each router gets
	                            its own `tunnels` tunnels, each redialled on its own */
	int router_count;
	ptth_handler_fn handler; /* called once per request */
	void *handler_arg;
	int tunnels;             /* tunnel connections held at once, to each router (1) */
	int reconnect;           /* 1: redial whenever a tunnel ends (0) */
	int backoff_min_ms;      /* first wait before a redial (100) */
	int backoff_max_ms;      /* the wait doubles up to this (10 s) */
	int ping_interval_ms;    /* PING a router quiet for this long (10 s; -1: never) */
	int ping_timeout_ms;     /* drop a tunnel whose PING is unanswered (5 s) */
	int drain_timeout_ms;    /* ptth_backend_stop() lets streams finish this long (10 s) */
	FILE *trace;             /* one line per HTTP/2 frame of every tunnel, written
	                            by its tunnel thread (NULL: none; --trace: stderr) */
	/* The PTTH handshake: when either is set, each tunnel starts with
	 * "GET /ptth/SERVICE" (draft-kazuho-ptth-ptth-01) before HTTP/2;
	 * when both are NULL or "", the tunnel is raw, as the original's. */
	const char *service;     /* the service to serve, a DNS-style name (NULL: the default pool) */
	const char *token;       /* bearer token for the router's --tunnel-tokens (NULL: none) */
};

/* Fills *opts with the defaults above (router "localhost:8887", no
 * handler). A zero left in a field also means its default. */
void ptth_backend_options_init(struct ptth_backend_options *opts);

/* Creates a backend; nothing is dialled yet. NULL when out of memory,
 * without a handler, or when service or token is malformed. */
struct ptth_backend *ptth_backend_new(const struct ptth_backend_options *opts);

/* Starts one thread per tunnel (tunnels per router); each dials its
 * router and serves HTTP/2 on the connection. Without reconnect the
 * first dial (to the first router) happens here and its failure is
 * returned; with reconnect, dials are retried with backoff (a backend
 * started before its router simply waits for it), each tunnel on its own.
 * Returns 0 or a negative code. */
int ptth_backend_start(struct ptth_backend *b);

/* The number of tunnels up right now, to every router together. */
int ptth_backend_tunnel_count(struct ptth_backend *b);

/* Blocks until every tunnel has ended for good (without reconnect: the
 * router closed it, or it broke; or after ptth_backend_stop()). Returns 0
 * for a clean end, or the first negative code that ended one (PTTH_EAUTH
 * or PTTH_EFORBIDDEN when the router refused the handshake's token); also
 * once stopped. PTTH_ESTATE only when the backend was never started. */
int ptth_backend_wait(struct ptth_backend *b);

/* Graceful stop: each tunnel, to every router, sends GOAWAY and lets the streams it took
 * finish (up to drain_timeout_ms); then waits for running handlers and
 * every thread. Safe to call twice. */
void ptth_backend_stop(struct ptth_backend *b);

/* Stops the backend if needed, then frees it. NULL is allowed. */
void ptth_backend_free(struct ptth_backend *b);

/* Dials addr and serves handler on the tunnel until it ends, like Go's
 * CreateTunnelAndServe. Returns like ptth_backend_wait(). */
int ptth_backend_serve(const char *router_addr, ptth_handler_fn handler, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* PTTH_H */
