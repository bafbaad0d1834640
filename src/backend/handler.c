/*
 * handler.c -- what a backend handler sees: one request and its
 * response (ptth_request_* and ptth_response_*), carried by an exchange.
 *
 * Owns:    each struct handler_call, from the request head's arrival to
 *          the handler's return, with one reference on its exchange and
 *          one on the tunnel connection whose inbox the exchange kicks.
 * Threads: handler_call_start() runs on the backend's tunnel thread; the
 *          handler and every ptth_request_ and ptth_response_ call run on
 *          one "ptth-handler" worker thread, which may block freely.
 * Locks:   none of its own. The request head (ex->in_head) is complete
 *          before the worker starts and never changes again, so it is read
 *          without a lock; the response head (ex->out_head, out_status) is
 *          written by the worker only, until exchange_commit_head()
 *          publishes it under the exchange's mutex.
 * Interface:
 *   - handlers read the body with ptth_request_read() (blocks until bytes
 *     arrive) and answer with ptth_response_write() (blocks while the
 *     router's flow-control window is closed);
 *   - the first write sends the head; ptth_response_end() (also run for
 *     the handler when it returns) ends the stream, after any trailers;
 *   - a HEAD request is answered by the head alone, ending the stream
 *     (RFC 9110 section 9.3.2): the handler writes as for GET, and its
 *     body bytes and trailers are dropped (out_no_body, exchange.c);
 *   - an extended CONNECT (a WebSocket, ptth_request_protocol()) is
 *     accepted by a 2xx head sent with an empty write; then the request
 *     body and the response body are the two directions of a byte pipe.
 *     One thread may read (ptth_request_read touches only the exchange,
 *     under its mutex) while another writes (ptth_response_write and
 *     _end, the only users of head_sent, ended and reset).
 * Tutorial: "The backend answers".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptth.h"
#include "backend.h"
#include "exchange.h"
#include <nghttp2/nghttp2.h>
#include "workers.h"

/* What a handler sees: one request and its response, over one exchange. */
struct handler_call {
	struct ptth_request { struct handler_call *call; } req;
	struct ptth_response { struct handler_call *call; } res;
	struct exchange *ex;
	struct ptth_backend *b;
	struct backend_conn *conn;
	char *path;                   /* :path up to '?' */
	const char *query;            /* inside path's allocation, after '?' */
	size_t first_field;           /* index of the first regular field */
	bool head_sent, ended, reset; /* worker thread only */
};

static const char *
call_pseudo(const struct handler_call *call, const char *name)
{
	const char *v = header_list_get(&call->ex->in_head, name);

	return v ? v : "";
}

const char *
ptth_request_method(const struct ptth_request *req)
{
	return call_pseudo(req->call, ":method");
}

/* The :protocol of an extended CONNECT (RFC 8441), e.g. "websocket",
 * or NULL for any other request. */
const char *
ptth_request_protocol(const struct ptth_request *req)
{
	return header_list_get(&req->call->ex->in_head, ":protocol");
}

const char *
ptth_request_path(const struct ptth_request *req)
{
	return req->call->path;
}

const char *
ptth_request_query(const struct ptth_request *req)
{
	return req->call->query;
}

const char *
ptth_request_authority(const struct ptth_request *req)
{
	return call_pseudo(req->call, ":authority");
}

const char *
ptth_request_header(const struct ptth_request *req, const char *name)
{
	if (name[0] == ':')
		return NULL;
	return header_list_get(&req->call->ex->in_head, name);
}

size_t
ptth_request_header_count(const struct ptth_request *req)
{
	return req->call->ex->in_head.count - req->call->first_field;
}

int
ptth_request_header_at(const struct ptth_request *req, size_t i, const char **name,
                       const char **value)
{
	const struct header_list *l = &req->call->ex->in_head;

	i += req->call->first_field;
	if (i >= l->count)
		return -EINVAL;
	*name = l->items[i].name;
	*value = l->items[i].value;
	return 0;
}

ssize_t
ptth_request_read(struct ptth_request *req, void *buf, size_t len)
{
	return exchange_read_in(req->call->ex, buf, len, true);
}

int
ptth_response_set_status(struct ptth_response *res, int status)
{
	if (res->call->head_sent || status < 100 || status > 999)
		return PTTH_ESTATE;
	res->call->ex->out_status = status;
	return 0;
}

/* Adds a field with its name in lower case, as HTTP/2 requires.
 * Returns 0, -EINVAL for an empty or oversized name, or -ENOMEM. */
static int
call_add_field(struct header_list *l, const char *name, const char *value)
{
	char lower[256];
	size_t len = strlen(name);

	if (len == 0 || len >= sizeof lower)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		lower[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
	return header_list_add(l, lower, len, value, strlen(value));
}

int
ptth_response_add_header(struct ptth_response *res, const char *name, const char *value)
{
	if (res->call->head_sent)
		return PTTH_ESTATE;
	return call_add_field(&res->call->ex->out_head, name, value);
}

int
ptth_response_add_trailer(struct ptth_response *res, const char *name, const char *value)
{
	if (res->call->ended)
		return PTTH_ESTATE;
	/* Trailers follow a body; a HEAD response has none to follow, and
	 * its HEADERS frame may already have ended the stream. */
	if (res->call->ex->out_no_body)
		return 0;
	return call_add_field(&res->call->ex->out_trailers, name, value);
}

/* Publishes the response head (once). */
static void
call_send_head(struct handler_call *call)
{
	if (call->head_sent)
		return;
	call->head_sent = true;
	exchange_commit_head(call->ex);
}

int
ptth_response_write(struct ptth_response *res, const void *data, size_t len)
{
	struct handler_call *call = res->call;
	const char *p = data;

	if (call->ended || call->reset)
		return PTTH_ESTATE;
	if (!call->head_sent) {
		/* Body bytes first, then the head: the tunnel thread then sends
		 * HEADERS and the first DATA in one write, so a backend that dies
		 * in between cannot leave the router with a head and no body. */
		ssize_t n = exchange_write_out(call->ex, p, len);
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
		call_send_head(call);
	}
	return exchange_write_out_all(call->ex, p, len);
}

int
ptth_response_end(struct ptth_response *res)
{
	struct handler_call *call = res->call;

	if (call->ended || call->reset)
		return 0;
	call->ended = true;
	/* Finish first: a head committed with an empty, finished body goes
	 * out as one HEADERS frame with END_STREAM. */
	exchange_finish_out(call->ex);
	call_send_head(call);
	return 0;
}

void
ptth_response_reset(struct ptth_response *res)
{
	res->call->reset = true;
	exchange_reset(res->call->ex, NGHTTP2_INTERNAL_ERROR);
}

int
ptth_response_send(struct ptth_response *res, int status, const char *content_type,
                   const void *body, size_t len)
{
	char length[32];
	int rc;

	snprintf(length, sizeof length, "%zu", len);
	rc = ptth_response_set_status(res, status);
	if (rc == 0 && content_type != NULL)
		rc = ptth_response_add_header(res, "content-type", content_type);
	if (rc == 0)
		rc = ptth_response_add_header(res, "content-length", length);
	/* A body that fits the pipe goes out with its head and its end in one
	 * write: ptth_response_end() finishes the body before the head. */
	if (rc == 0 && len > 0 && !res->call->head_sent) {
		ssize_t n = exchange_write_out(res->call->ex, body, len);
		rc = n < 0 ? (int)n : 0;
		body = (const char *)body + (n > 0 ? n : 0);
		len -= n > 0 ? (size_t)n : 0;
	}
	if (rc == 0 && len > 0)
		rc = ptth_response_write(res, body, len);
	if (rc == 0)
		rc = ptth_response_end(res);
	return rc;
}

/* Runs on a worker thread: the handler, then whatever it left undone. */
/* tutorial: handler-run */
void
handler_call_run(void *job)
{
	struct handler_call *call = job;
	struct ptth_backend *b = call->b;

	b->opts.handler(&call->req, &call->res, b->opts.handler_arg);
	if (!call->reset)
		ptth_response_end(&call->res);
	exchange_release(call->ex, true);
	backend_conn_unref(call->conn);
	free(call->path);
	free(call);
}
/* tutorial: end */

/* Tunnel thread: builds the handler's view of a complete request head
 * and hands it to a worker. The call holds references on ex and on conn
 * (whose inbox ex kicks) until the handler is done.
 * Returns 0 or a negative code (the caller resets the stream). */
int
handler_call_start(struct backend_conn *conn, struct exchange *ex)
{
	struct ptth_backend *b = conn->b;
	struct handler_call *call = calloc(1, sizeof *call);
	const struct header_list *l = &ex->in_head;
	char *q;
	int rc;

	if (call == NULL)
		return -ENOMEM;
	call->req.call = call->res.call = call;
	call->ex = ex;
	call->b = b;
	call->conn = conn;
	call->path = strdup(header_list_get(l, ":path") ? header_list_get(l, ":path") : "/");
	if (call->path == NULL) {
		free(call);
		return -ENOMEM;
	}
	q = strchr(call->path, '?');
	call->query = q ? q + 1 : "";
	if (q != NULL)
		*q = '\0';
	while (call->first_field < l->count && l->items[call->first_field].name[0] == ':')
		call->first_field++;
	/* Set before the handler starts; workers_submit() publishes it. */
	ex->out_no_body = strcmp(call_pseudo(call, ":method"), "HEAD") == 0;
	exchange_ref(ex); /* the handler's reference, dropped by exchange_release */
	backend_conn_ref(conn);
	rc = workers_submit(&b->workers, call);
	if (rc < 0) {
		backend_conn_unref(conn);
		exchange_unref(ex);
		free(call->path);
		free(call);
	}
	return rc;
}
