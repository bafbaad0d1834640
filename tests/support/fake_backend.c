/*
 * fake_backend.c -- a hand-made HTTP/2 backend on a tunnel: an nghttp2
 * server session on a thread of its own, which a test steers by path.
 * It advertises the MAX_CONCURRENT_STREAMS it is given and answers
 * every request 200 "bar" (HEAD too, against RFC 9110 section 9.3.2:
 * it is a rogue backend), except:
 *   /hold...   kept unanswered until fake_release();
 *   /break...  a head without Content-Length and "hello", then the
 *              tunnel is closed (FIN) with the stream still open;
 *   /endless   a head without Content-Length, then body bytes for as
 *              long as flow control lets it send;
 *   /deaf      a head without Content-Length, then nothing: no body
 *              byte, and no request body byte is ever taken (its window
 *              is never reopened). Other streams' request bodies are
 *              consumed as they arrive;
 *   /rst?code=N  no answer: RST_STREAM with error code N (RFC 9113
 *              section 7: 8 is CANCEL, 11 ENHANCE_YOUR_CALM...).
 *
 * Owns:    the tunnel socket, the session, a wake eventfd and the thread.
 * Threads: fake_thread_main() ("test-fake-h2") is the only thread in the
 *          session; the test thread sends commands (release, stop)
 *          through mu and the eventfd and reads the counters.
 * Locks:   f->mu guards the counters and commands; taken alone, never
 *          across I/O or an nghttp2 call.
 * Interface:
 *   - fake_start(tunnel_port, max_streams), then fake_wait() for
 *     FAKE_SETTINGS_ACKED before counting on the router's view of it;
 *   - fake_wait() / fake_requests() / fake_last_request() for what it saw
 *     (request heads, RST_STREAM frames and their codes);
 *   - fake_release() answers the held /hold streams; fake_free() ends it.
 * Tutorial: none; this is test support code (tests/support/README.md).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/fake_backend.h"
#include "support/harness.h"
#include "support/http1_client.h"   /* dial_loopback(), send_all() */

#define FAKE_NV(n, v) \
	{ (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE }

static char *
fake_path(struct fake *f, int32_t stream_id)
{
	return f->paths[(stream_id / 2) % FAKE_SLOTS];
}

/* Implements nghttp2_data_source_read_callback. We use it to send "bar"
 * and end the stream. */
static ssize_t
fake_bar_read_callback(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                       size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                       void *user_data)
{
	(void)session;
	(void)stream_id;
	(void)length; /* always at least 16 KiB */
	(void)source;
	(void)user_data;
	memcpy(buf, "bar", 3);
	*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return 3;
}

/* Implements nghttp2_data_source_read_callback. We use it for /endless:
 * every call fills the frame, and the body never ends. */
static ssize_t
fake_endless_read_callback(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                           size_t length, uint32_t *data_flags,
                           nghttp2_data_source *source, void *user_data)
{
	(void)session;
	(void)stream_id;
	(void)data_flags;
	(void)source;
	(void)user_data;
	memset(buf, 'e', length);
	return (ssize_t)length;
}

/* Implements nghttp2_data_source_read_callback. We use it for /deaf:
 * there is never a body byte to send. */
static ssize_t
fake_silent_read_callback(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                          size_t length, uint32_t *data_flags,
                          nghttp2_data_source *source, void *user_data)
{
	(void)session;
	(void)stream_id;
	(void)buf;
	(void)length;
	(void)data_flags;
	(void)source;
	(void)user_data;
	return NGHTTP2_ERR_DEFERRED;
}

/* Implements nghttp2_data_source_read_callback. We use it to send
 * "hello" once and then nothing: the stream never ends. */
static ssize_t
fake_break_read_callback(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                         void *user_data)
{
	struct fake *f = user_data;

	(void)session;
	(void)stream_id;
	(void)length;
	(void)data_flags;
	(void)source;
	if (f->break_sent)
		return NGHTTP2_ERR_DEFERRED;
	f->break_sent = true;
	memcpy(buf, "hello", 5);
	return 5;
}

static void
fake_answer(struct fake *f, int32_t stream_id)
{
	nghttp2_nv nv[] = { FAKE_NV(":status", "200"), FAKE_NV("content-type", "text/plain"),
	                    FAKE_NV("content-length", "3") };
	nghttp2_data_provider body = { .read_callback = fake_bar_read_callback };

	/* Fails harmlessly for a stream the router already reset. */
	nghttp2_submit_response(f->session, stream_id, nv, 3, &body);
}

/* A head without Content-Length, then the body read_callback makes. */
static void
fake_answer_unsized(struct fake *f, int32_t stream_id, nghttp2_data_source_read_callback cb)
{
	nghttp2_nv nv[] = { FAKE_NV(":status", "200"), FAKE_NV("content-type", "text/plain") };
	nghttp2_data_provider body = { .read_callback = cb };

	nghttp2_submit_response(f->session, stream_id, nv, 2, &body);
}

static void
fake_answer_break(struct fake *f, int32_t stream_id)
{
	nghttp2_nv nv[] = { FAKE_NV(":status", "200"), FAKE_NV("content-type", "text/plain") };
	nghttp2_data_provider body = { .read_callback = fake_break_read_callback };

	nghttp2_submit_response(f->session, stream_id, nv, 2, &body);
	f->close_after_flush = true;
}

/* A complete request head arrived: count it, then answer, hold, reset
 * or break. */
static void
fake_on_request(struct fake *f, int32_t stream_id)
{
	const char *path = fake_path(f, stream_id);
	bool hold;

	pthread_mutex_lock(&f->mu);
	f->requests++;
	f->last_request = stream_id;
	hold = f->hold;
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->mu);
	if (strncmp(path, "/rst?code=", 10) == 0)
		nghttp2_submit_rst_stream(f->session, NGHTTP2_FLAG_NONE, stream_id,
		                          (uint32_t)strtoul(path + 10, NULL, 10));
	else if (strncmp(path, "/break", 6) == 0)
		fake_answer_break(f, stream_id);
	else if (strcmp(path, "/endless") == 0)
		fake_answer_unsized(f, stream_id, fake_endless_read_callback);
	else if (strcmp(path, "/deaf") == 0)
		fake_answer_unsized(f, stream_id, fake_silent_read_callback);
	else if (hold && strncmp(path, "/hold", 5) == 0 && f->held_count < FAKE_SLOTS)
		f->held[f->held_count++] = stream_id;
	else
		fake_answer(f, stream_id);
}

/* Implements nghttp2_on_begin_headers_callback. We use it to forget the
 * path of an earlier stream that had the same slot. */
static int
fake_on_begin_headers_callback(nghttp2_session *session, const nghttp2_frame *frame,
                               void *user_data)
{
	(void)session;
	fake_path(user_data, frame->hd.stream_id)[0] = '\0';
	return 0;
}

/* Implements nghttp2_on_header_callback. We use it to keep :path. */
static int
fake_on_header_callback(nghttp2_session *session, const nghttp2_frame *frame,
                        const uint8_t *name, size_t namelen, const uint8_t *value,
                        size_t valuelen, uint8_t flags, void *user_data)
{
	(void)session;
	(void)flags;
	if (namelen == 5 && memcmp(name, ":path", 5) == 0)
		snprintf(fake_path(user_data, frame->hd.stream_id), 128, "%.*s", (int)valuelen,
		         (const char *)value);
	return 0;
}

/* Implements nghttp2_on_data_chunk_recv_callback. We use it to take
 * request body bytes (reopening the window) on every stream but /deaf:
 * the session does not do it by itself (no_auto_window_update). */
static int
fake_on_data_chunk_recv_callback(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                 const uint8_t *data, size_t len, void *user_data)
{
	(void)flags;
	(void)data;
	if (strcmp(fake_path(user_data, stream_id), "/deaf") != 0)
		nghttp2_session_consume(session, stream_id, len);
	return 0;
}

/* Implements nghttp2_on_frame_recv_callback. We use it to record
 * SETTINGS ACKs and resets, and to act on complete request heads. */
static int
fake_on_frame_recv_callback(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data)
{
	struct fake *f = user_data;

	(void)session;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		fake_on_request(f, frame->hd.stream_id);
		return 0;
	}
	pthread_mutex_lock(&f->mu);
	if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
		f->settings_acked++;
	} else if (frame->hd.type == NGHTTP2_RST_STREAM) {
		f->resets++;
		f->last_reset = frame->hd.stream_id;
		f->last_reset_code = frame->rst_stream.error_code;
	}
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/* Writes everything the session wants to send, coalesced into as few
 * send() calls as it fits in, so that frames queued together (a head
 * and its body) reach the router in one read, as from a real backend.
 * Returns 0 or -1. */
static int
fake_flush(struct fake *f)
{
	uint8_t out[64 * 1024];
	size_t len = 0;
	const uint8_t *data;
	ssize_t n;

	while ((n = nghttp2_session_mem_send(f->session, &data)) > 0) {
		if (len + (size_t)n > sizeof out) {
			if (send_all(f->fd, out, len) < 0)
				return -1;
			len = 0;
		}
		if ((size_t)n > sizeof out) {
			if (send_all(f->fd, data, (size_t)n) < 0)
				return -1;
			continue;
		}
		memcpy(out + len, data, (size_t)n);
		len += (size_t)n;
	}
	if (len > 0 && send_all(f->fd, out, len) < 0)
		return -1;
	return n < 0 ? -1 : 0;
}

/* Acts on the commands of the test thread. Returns -1 to stop. */
static int
fake_take_commands(struct fake *f)
{
	uint64_t count;
	bool stop, release;

	if (read(f->wake_fd, &count, sizeof count) < 0)
		return -1;
	pthread_mutex_lock(&f->mu);
	stop = f->stop;
	release = f->release;
	f->release = false;
	if (release)
		f->hold = false;
	pthread_mutex_unlock(&f->mu);
	if (stop)
		return -1;
	for (int i = 0; release && i < f->held_count; i++)
		fake_answer(f, f->held[i]);
	if (release)
		f->held_count = 0;
	return 0;
}

/* Closes the sending side, as a backend that dies after writing does,
 * then waits for the router to close its side. */
static void
fake_hang_up(struct fake *f)
{
	char buf[4096];

	shutdown(f->fd, SHUT_WR);
	while (recv(f->fd, buf, sizeof buf, 0) > 0)
		;
}

/* The fake backend's thread: the only one that touches its session. */
static void *
fake_thread_main(void *arg)
{
	struct fake *f = arg;
	uint8_t buf[16384];

	pthread_setname_np(pthread_self(), "test-fake-h2");
	for (;;) {
		if (fake_flush(f) < 0)
			break;
		if (f->close_after_flush) {
			fake_hang_up(f);
			break;
		}
		struct pollfd p[2] = { { .fd = f->fd, .events = POLLIN },
		                       { .fd = f->wake_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((p[1].revents & POLLIN) && fake_take_commands(f) < 0)
			break;
		if (p[0].revents != 0) {
			ssize_t n = recv(f->fd, buf, sizeof buf, 0);
			if (n <= 0 || nghttp2_session_mem_recv(f->session, buf, (size_t)n) < 0)
				break;
		}
	}
	close(f->fd);
	f->fd = -1;
	return NULL;
}

/* Creates the server session with our callbacks and queues SETTINGS. */
static int
fake_session_new(struct fake *f, uint32_t max_streams)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	nghttp2_settings_entry settings[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams },
	};
	int rc;

	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -ENOMEM;
	if (nghttp2_option_new(&opt) != 0) {
		nghttp2_session_callbacks_del(cbs);
		return -ENOMEM;
	}
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, fake_on_begin_headers_callback);
	nghttp2_session_callbacks_set_on_header_callback(cbs, fake_on_header_callback);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
	                                                         fake_on_data_chunk_recv_callback);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, fake_on_frame_recv_callback);
	rc = nghttp2_session_server_new2(&f->session, cbs, f, opt);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	if (rc != 0)
		return -ENOMEM;
	if (nghttp2_submit_settings(f->session, NGHTTP2_FLAG_NONE, settings, 1) != 0)
		return -EPROTO;
	return 0;
}

struct fake *
fake_start(int tunnel_port, uint32_t max_streams)
{
	struct fake *f = calloc(1, sizeof *f);

	if (f == NULL)
		return NULL;
	f->fd = dial_loopback(tunnel_port);
	f->wake_fd = eventfd(0, EFD_CLOEXEC);
	pthread_mutex_init(&f->mu, NULL);
	harness_cond_init_monotonic(&f->changed);
	f->hold = true;
	if (f->fd < 0 || f->wake_fd < 0 || fake_session_new(f, max_streams) < 0 ||
	    pthread_create(&f->thread, NULL, fake_thread_main, f) != 0)
		goto out_free;
	return f;
out_free:
	if (f->session != NULL)
		nghttp2_session_del(f->session);
	if (f->fd >= 0)
		close(f->fd);
	if (f->wake_fd >= 0)
		close(f->wake_fd);
	pthread_cond_destroy(&f->changed);
	pthread_mutex_destroy(&f->mu);
	free(f);
	return NULL;
}

static void
fake_wake(struct fake *f)
{
	uint64_t one = 1;

	if (write(f->wake_fd, &one, sizeof one) < 0)
		abort(); /* an eventfd write only fails on overflow */
}

/* Answers the held streams and holds no more. */
void
fake_release(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	f->release = true;
	pthread_mutex_unlock(&f->mu);
	fake_wake(f);
}

static int
fake_count_locked(const struct fake *f, enum fake_event ev)
{
	switch (ev) {
	case FAKE_SETTINGS_ACKED: return f->settings_acked;
	case FAKE_REQUESTS: return f->requests;
	case FAKE_RESETS: return f->resets;
	}
	return 0;
}

/* Waits until ev happened n times. Returns 0 or -ETIMEDOUT. */
int
fake_wait(struct fake *f, enum fake_event ev, int n)
{
	struct timespec deadline = harness_deadline(FAKE_TIMEOUT_MS);
	int rc = 0;

	pthread_mutex_lock(&f->mu);
	while (fake_count_locked(f, ev) < n && rc == 0)
		rc = pthread_cond_timedwait(&f->changed, &f->mu, &deadline);
	rc = fake_count_locked(f, ev) >= n ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&f->mu);
	return rc;
}

/* The stream id of the last request head the fake saw. */
int32_t
fake_last_request(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	int32_t id = f->last_request;
	pthread_mutex_unlock(&f->mu);
	return id;
}

/* How many request heads the fake backend has seen. */
int
fake_requests(struct fake *f)
{
	int n;

	pthread_mutex_lock(&f->mu);
	n = f->requests;
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* Stops the fake (closing its tunnel if still open), joins its thread
 * and frees it. NULL is allowed. */
void
fake_free(struct fake *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_mutex_unlock(&f->mu);
	fake_wake(f);
	pthread_join(f->thread, NULL);
	nghttp2_session_del(f->session);
	close(f->wake_fd);
	pthread_cond_destroy(&f->changed);
	pthread_mutex_destroy(&f->mu);
	free(f);
}
