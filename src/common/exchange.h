/* exchange.h -- one HTTP/2 stream shared by an application thread and a
 * tunnel thread. See exchange.c for the rules. */
#ifndef PTTH_EXCHANGE_H
#define PTTH_EXCHANGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <nghttp2/nghttp2.h>

#include "body_pipe.h"
#include "headers.h"

struct inbox;
struct exchange;

/* Tunnel thread only: exchanges whose in side changed during one pass of
 * the loop, to be woken once each, after nghttp2 has returned (see
 * exchange_batch_flush). */
struct exchange_batch {
	struct exchange *head;
};

/* What exchange_wait() may wait for; any one of them ends the wait, and
 * so does the end of the stream. */
enum {
	EX_WAIT_OUT_SPACE = 1 << 0, /* room in the out pipe */
	EX_WAIT_IN_HEAD = 1 << 1,   /* the in head is complete */
	EX_WAIT_IN_DATA = 1 << 2,   /* bytes (or the end) in the in pipe */
};

struct exchange {
	atomic_int refs;            /* the exchange is freed when this drops to 0 */

	/* Set before the exchange is shared, read-only afterwards: */
	struct inbox *inbox;        /* the tunnel thread's inbox, for kicks */
	char peer[64];              /* the other end's address, for logs */
	bool extended_connect;      /* router: an RFC 8441 extended CONNECT (a
	                               WebSocket), for a backend that takes one */
	bool duplex;                /* router: an upgraded connection, whose user
	                               thread also waits for room in the out pipe:
	                               the tunnel's reads of it count as changes
	                               (in_events) and write notify_fd */

	/* Written by the app thread before it publishes them (the router
	 * queues the exchange, a backend handler calls exchange_commit_head),
	 * read-only afterwards: */
	struct header_list out_head;/* router: request fields; backend: response fields */
	int out_status;             /* backend: the response status */
	struct header_list out_trailers; /* sent after the body; published by
	                               exchange_finish_out() */
	bool out_has_body;          /* a DATA provider is needed */

	/* Backend: set by the tunnel thread before the handler starts,
	 * read-only afterwards: */
	bool out_no_body;           /* the request is HEAD: the response is its
	                               head alone, out bytes are dropped */

	pthread_mutex_t mu;         /* lock order: after inbox->mu is released; never nested */
	pthread_cond_t changed;     /* broadcast on every change a waiter may need */
	/* guarded by mu: */
	struct body_pipe out;       /* app thread writes, tunnel thread reads */
	struct body_pipe in;        /* tunnel thread writes, app thread reads */
	struct header_list in_head; /* router: response fields; backend: request fields;
	                               complete and read-only once in_head_done is set */
	int in_status;              /* router: the response status */
	struct header_list in_trailers; /* fields after the body; complete once
	                               the in pipe is finished */
	bool in_head_done;          /* in_head is complete */
	bool out_head_ready;        /* backend: the handler committed its response head */
	bool out_deferred;          /* the tunnel's data provider waits for a resume */
	bool cancelled;             /* the app thread gave up on the stream */
	uint32_t reset_code;        /* the RST_STREAM code it asked for */
	bool released;              /* the app thread let go; in bytes are discarded */
	bool closed;                /* the stream is over */
	int error;                  /* why it ended badly: 0 or a PTTH_E* code */
	unsigned in_events;         /* changes on the in side so far */
	bool notify_armed;          /* write notify_fd at the next change */
	int notify_fd;              /* router: the user thread's eventfd, or -1;
	                               set once, by the first exchange_arm_notify(),
	                               so a thread that saw notify_armed under mu
	                               may write it after unlocking */

	/* guarded by inbox->mu: */
	bool kicked;                /* on the inbox's kick list */
	struct exchange *kick_next;

	/* tunnel thread only, no lock: */
	int32_t stream_id;          /* 0 until the stream exists */
	int send_error;             /* router: nghttp2 would not send the request
	                               head (PTTH_ETOOBIG), or 0 */
	bool head_submitted;        /* backend: response HEADERS submitted */
	bool reset_sent;            /* RST_STREAM submitted after a cancel */
	bool malformed_logged;      /* router: a malformed response was logged */
	uint64_t in_delivered;      /* DATA bytes put into the in pipe */
	uint64_t in_consumed;       /* of which reported to nghttp2 */
	struct exchange *open_prev, *open_next; /* the tunnel's open streams */
	struct exchange_batch *batch; /* where in-side changes wait to wake the app */
	struct exchange *batch_next;
	bool batched;               /* on batch, with a reference */
};

struct exchange *exchange_new(size_t pipe_cap);
void exchange_ref(struct exchange *ex);
void exchange_unref(struct exchange *ex);

/* Application-thread side. */
ssize_t exchange_write_out(struct exchange *ex, const void *data, size_t len);
int exchange_write_out_all(struct exchange *ex, const void *data, size_t len);
void exchange_finish_out(struct exchange *ex);
ssize_t exchange_read_in(struct exchange *ex, void *buf, size_t len, bool block);
int exchange_wait(struct exchange *ex, unsigned what);
int exchange_wait_until(struct exchange *ex, unsigned what, long long deadline_ms);
void exchange_cancel(struct exchange *ex);
void exchange_reset(struct exchange *ex, uint32_t error_code);
bool exchange_in_head_done(struct exchange *ex);
bool exchange_arm_notify(struct exchange *ex, int fd, unsigned *seen);
void exchange_disarm_notify(struct exchange *ex);
void exchange_release(struct exchange *ex, bool drain_in);
struct exchange *exchange_recycle(struct exchange *ex);
void exchange_empty(struct exchange *ex);
void exchange_commit_head(struct exchange *ex);
int exchange_move_out(struct exchange *dst, struct exchange *src);

/* Tunnel-thread side. */
ssize_t exchange_data_source_read_callback(nghttp2_session *session, int32_t stream_id,
                                           uint8_t *buf, size_t length,
                                           uint32_t *data_flags,
                                           nghttp2_data_source *source, void *user_data);
void exchange_deliver_in(struct exchange *ex, nghttp2_session *session,
                         const uint8_t *data, size_t len);
int exchange_add_in_header(struct exchange *ex, const uint8_t *name, size_t namelen,
                           const uint8_t *value, size_t valuelen);
void exchange_end_in_head(struct exchange *ex);
void exchange_finish_in(struct exchange *ex);
void exchange_close(struct exchange *ex, nghttp2_session *session, int error);
bool exchange_service(struct exchange *ex, nghttp2_session *session);
void exchange_batch_flush(struct exchange_batch *b);
void exchange_open_link(struct exchange **head, struct exchange *ex);
void exchange_open_unlink(struct exchange **head, struct exchange *ex);

#endif
