/* forward.h -- bin/agent's HTTP/1.1 side: each request from the tunnel is
 * sent to the local server with libcurl and its answer streamed back.
 * See forward.c. */
#ifndef PTTH_AGENT_FORWARD_H
#define PTTH_AGENT_FORWARD_H

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

/* Writes one log line to stderr with a time stamp, as the library does. */
void forward_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
