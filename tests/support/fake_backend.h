/*
 * fake_backend.h -- a hand-made HTTP/2 backend on a router's tunnel, for
 * answers no well-behaved backend gives. See fake_backend.c.
 *
 * Typical use, in a cmocka test with a router whose tunnel port is p:
 *     struct fake *f = fake_start(p, 100);
 *     ...wait for ptth_router_wait_tunnels(), then fake_wait(f,
 *     FAKE_SETTINGS_ACKED, 1): the router has applied our SETTINGS...
 *     ...requests through the router: GET /foo gets 200 "bar", GET /hold
 *     waits for fake_release(f), GET /rst?code=8 is reset with CANCEL...
 *     fake_free(f);
 */
#ifndef PTTH_TEST_FAKE_BACKEND_H
#define PTTH_TEST_FAKE_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <nghttp2/nghttp2.h>

#define FAKE_SLOTS 64            /* streams the fake tracks at once */
#define FAKE_TIMEOUT_MS 10000    /* the longest fake_wait() waits */

/* What fake_wait() counts. */
enum fake_event { FAKE_SETTINGS_ACKED, FAKE_REQUESTS, FAKE_RESETS };

/* The fake. The test thread reads the counters under mu; everything
 * else belongs to the fake's thread. */
struct fake {
	/* Set before the thread starts; the fake thread's alone afterwards
	 * (the test thread reads fd and session again only after joining): */
	int fd;
	int wake_fd;                 /* eventfd: a command is waiting */
	nghttp2_session *session;
	pthread_t thread;
	bool close_after_flush;      /* /break: hang up once written */
	bool break_sent;
	char paths[FAKE_SLOTS][128]; /* :path of stream id, by (id / 2) % FAKE_SLOTS */
	int32_t held[FAKE_SLOTS];
	int held_count;

	pthread_mutex_t mu;          /* taken alone, never across nghttp2 or I/O */
	pthread_cond_t changed;      /* CLOCK_MONOTONIC */
	/* guarded by mu: */
	int settings_acked, requests, resets;
	int32_t last_request, last_reset;
	uint32_t last_reset_code;
	bool hold, release, stop;
};


/* Dials 127.0.0.1:tunnel_port as a backend would and serves HTTP/2 on
 * a thread of its own, with max_streams concurrent streams allowed;
 * /hold requests are held from the start. Returns the fake or NULL. */
struct fake *fake_start(int tunnel_port, uint32_t max_streams);
/* Answers the held streams and holds no more. */
void fake_release(struct fake *f);
/* Waits until ev happened n times. Returns 0 or -ETIMEDOUT (after
 * FAKE_TIMEOUT_MS). */
int fake_wait(struct fake *f, enum fake_event ev, int n);
/* The stream id of the last request head the fake saw. */
int32_t fake_last_request(struct fake *f);
/* How many request heads the fake has seen. */
int fake_requests(struct fake *f);
/* Stops the fake (closing its tunnel if still open), joins its thread
 * and frees it. NULL is allowed. */
void fake_free(struct fake *f);

#endif
