/* forward.h -- bin/agent's HTTP/1.1 side: each request from the tunnel is
 * sent to the local server with libcurl and its answer streamed back.
 * See forward.c. */
#ifndef PTTH_AGENT_FORWARD_H
#define PTTH_AGENT_FORWARD_H

#include <stdbool.h>

#include "ptth.h"

struct forward_options {
	const char *to;      /* the local server, "HOST:PORT" or "[V6]:PORT" */
	int timeout_ms;      /* to connect, and the longest silence (30000) */
	int max_idle;        /* idle keep-alive connections kept (16) */
	int verbose;         /* 1: one log line per request */
};

struct forward;

/* Checks opts->to and creates the forwarder with an empty connection
 * pool. curl_global_init() must have run. Returns NULL when opts->to is
 * not HOST:PORT (errno EINVAL) or memory ran out (ENOMEM). */
struct forward *forward_new(const struct forward_options *opts);

/* A ptth_handler_fn, with the struct forward as its argument: forwards
 * one request and streams the local server's answer back. */
void forward_serve(struct ptth_request *req, struct ptth_response *res, void *fwd);

/* Closes every pooled connection and frees the forwarder. Only once no
 * handler runs any more (after ptth_backend_stop()). NULL is allowed. */
void forward_free(struct forward *fwd);

/* The field checks forward.c applies, for upgrade.c: a token for a name
 * and no control character in the value; the hop-by-hop set. */
bool forward_field_ok(const char *name, const char *value);
bool forward_is_hop_by_hop(const char *name, const char *connection);

/* Serves a WebSocket (an extended CONNECT): an HTTP/1.1 Upgrade to the
 * local server at to, then bytes both ways until both sides end. On the
 * handler's thread; starts one relay thread. See upgrade.c. */
void upgrade_serve(struct ptth_request *req, struct ptth_response *res, const char *to,
                   int timeout_ms);

/* Writes one log line to stderr with a time stamp, as the library does. */
void forward_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
