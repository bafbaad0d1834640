/*
 * attack.c -- hostile users against a router, and a trickle of ordinary
 * requests beside them whose answers measure what is left of the service.
 * Built as build/bench/attack by `make attack`, which runs it from
 * bench/attack.sh; see docs/HARDENING.md.
 *
 * Owns:    every socket it opens (attackers and trickle requests); all
 *          are closed before it exits.
 * Threads: one. Every socket is non-blocking and driven by one epoll loop
 *          that also wakes every TICK_MS for the timed steps (the next
 *          byte of a slow attacker, a trickle request's deadline, a
 *          sample of the router's /proc/PID/status).
 * Locks:   none.
 * Interface:
 *   attack --port PORT --mode MODE [--conns N] [--seconds S] [--rate R]
 *          [--byte-ms MS] [--pid PID] [--header]
 *   MODE is one of:
 *     never-read   GET /bytes?n=1000000000 and never read a byte (a small
 *                  receive buffer, as a frugal attacker would set); after
 *                  a hold of 5 to 15 s, close and send it again;
 *     slow-upload  POST /echo with Content-Length 1000000000, then one body
 *                  byte every --byte-ms (2000); answers are read and dropped;
 *     slowloris    a request head that never ends, one byte every --byte-ms
 *                  (1000); answers (a 408) are read and dropped.
 *   An attacker whose connection ends reconnects at once, so N stay open.
 *   They connect at RAMP_PER_S; then the trickle runs for --seconds: --rate
 *   (20) fresh connections per second, each "GET /foo" with
 *   Connection: close, a success when "HTTP/1.1 200" arrives within 1 s.
 *   --pid names the router, whose VmRSS and Threads are sampled every
 *   TICK_MS from the first attacker to the end, and watched afterwards
 *   until its thread count is back to where it started (SETTLE_MS at most).
 *   Output: one Markdown table row on stdout (--header prints the header
 *   row first), with the host's ListenDrops during the run: connections
 *   whose SYN found the router's accept queue full. Exit status 0 when it ran, 2 for a bad command line, 1
 *   when it could not run at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define TICK_MS 10
#define RAMP_PER_S 1000          /* attackers connecting per second */
#define TRICKLE_SLOTS 512        /* trickle requests in flight at most */
#define TRICKLE_OK_MS 1000       /* a 200 later than this is a failure */
#define TRICKLE_GIVE_UP_MS 5000  /* a trickle request is abandoned then */
#define SAMPLE_MS 100
#define SETTLE_MS 20000
#define NEVER_READ_RCVBUF 4096

enum mode { NEVER_READ, SLOW_UPLOAD, SLOWLORIS };

enum state { IDLE, CONNECTING, OPEN };

/* One socket: an attacker slot or a trickle request. */
struct conn {
	int fd;                  /* -1 when closed */
	enum state state;
	long long started_ms;    /* when connect() was called */
	long long next_ms;       /* attacker: next step (byte, reconnect, hold end) */
	size_t sent;             /* bytes of the request sent so far */
	char line[32];           /* the start of the answer's status line */
	size_t line_len;
};

struct options {
	int port;
	enum mode mode;
	int conns;
	int seconds;
	int rate;
	int byte_ms;
	int pid;
	bool header;
};

/* What one run measured. */
struct tally {
	long trickle_sent, trickle_ok, trickle_late, trickle_other, trickle_failed;
	long *latencies;         /* ms, of every trickle answer with a status */
	long latency_count;
	long attacks_opened;     /* attacker connections made, reconnections included */
	long attacks_ended;      /* ... that the router ended (or refused) */
	long answers_408, answers_503, answers_other;
	long connect_errors;
	long listen_drops;       /* the host's ListenDrops during the run */
	long rss_base_kib, rss_peak_kib, threads_base, threads_peak;
	long threads_after;      /* when the settle wait ended */
	long long settle_ms;     /* from the attackers' close to threads back at base */
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------
 * The router's /proc/PID/status.
 */

/* Reads VmRSS (KiB) and Threads. Returns 0, or -1 when the process is gone. */
static int
proc_sample(int pid, long *rss_kib, long *threads)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL) {
		sscanf(line, "VmRSS: %ld", rss_kib);
		sscanf(line, "Threads: %ld", threads);
	}
	fclose(f);
	return 0;
}

/* The host's count of connections dropped because a listening socket's
 * accept queue was full (TcpExt ListenDrops in /proc/net/netstat), or -1.
 * Each such drop costs the user a SYN retransmission: a second. */
static long
listen_drops(void)
{
	char names[4096], values[4096];
	char *ns, *vs, *n, *v;
	long found = -1;
	FILE *f = fopen("/proc/net/netstat", "r");

	if (f == NULL)
		return -1;
	while (fgets(names, sizeof names, f) != NULL && fgets(values, sizeof values, f) != NULL) {
		if (strncmp(names, "TcpExt:", 7) != 0)
			continue;
		n = strtok_r(names, " \n", &ns);
		v = strtok_r(values, " \n", &vs);
		while (n != NULL && v != NULL && found < 0) {
			if (strcmp(n, "ListenDrops") == 0)
				found = atol(v);
			n = strtok_r(NULL, " \n", &ns);
			v = strtok_r(NULL, " \n", &vs);
		}
	}
	fclose(f);
	return found;
}

static void
tally_sample(struct tally *t, int pid)
{
	long rss = 0, threads = 0;

	if (pid <= 0 || proc_sample(pid, &rss, &threads) < 0)
		return;
	if (rss > t->rss_peak_kib)
		t->rss_peak_kib = rss;
	if (threads > t->threads_peak)
		t->threads_peak = threads;
}

/* ---------------------------------------------------------------------
 * Sockets.
 */

static int epfd = -1;

/* Starts a non-blocking connect to 127.0.0.1:port and registers it with
 * index idx. Returns 0 or -1 (errno set). */
static int
conn_open(struct conn *c, int port, uint32_t idx, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = idx };
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	if (rcvbuf > 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) ||
	    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		int saved = errno;
		close(c->fd);
		c->fd = -1;
		errno = saved;
		return -1;
	}
	c->state = CONNECTING;
	c->started_ms = now_ms();
	c->sent = 0;
	c->line_len = 0;
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->state = IDLE;
}

/* Sets the events watched: a never-reader stops watching input once its
 * request is out, so that it reads nothing, ever. */
static void
conn_watch(struct conn *c, uint32_t idx, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u32 = idx };

	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends up to len bytes of data from c->sent on. Returns 0 (sent, or
 * the socket is full: try later) or -1 when the connection is gone. */
static int
conn_send(struct conn *c, const char *data, size_t len)
{
	ssize_t n = send(c->fd, data + c->sent, len - c->sent, MSG_NOSIGNAL);

	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	c->sent += (size_t)n;
	return 0;
}

/* Reads what arrived, keeping the first bytes for the status line.
 * Returns 1 while open, 0 at end of file, -1 on an error. */
static int
conn_drain(struct conn *c)
{
	char buf[16384];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof buf, 0);
		if (n < 0)
			return (errno == EAGAIN || errno == EINTR) ? 1 : -1;
		if (n == 0)
			return 0;
		size_t keep = sizeof c->line - 1 - c->line_len;
		if (keep > (size_t)n)
			keep = (size_t)n;
		memcpy(c->line + c->line_len, buf, keep);
		c->line_len += keep;
		c->line[c->line_len] = '\0';
	}
}

/* The status code of "HTTP/1.1 NNN ...", or 0 when not (yet) there. */
static int
conn_status(const struct conn *c)
{
	if (c->line_len < 12 || strncmp(c->line, "HTTP/1.", 7) != 0)
		return 0;
	return atoi(c->line + 9);
}

/* ---------------------------------------------------------------------
 * Attackers.
 */

static const char never_read_request[] =
	"GET /bytes?n=1000000000 HTTP/1.1\r\nHost: attack\r\n\r\n";
static const char slow_upload_head[] =
	"POST /echo HTTP/1.1\r\nHost: attack\r\n"
	"Content-Type: application/octet-stream\r\nContent-Length: 1000000000\r\n\r\n";
/* The slowloris head: this start, then "X-Slow-N: 1\r\n" lines forever. */
static const char slowloris_start[] = "GET /foo HTTP/1.1\r\nHost: attack\r\n";

/* The byte a slowloris attacker sends as its n-th (from 0): the start,
 * then "X-Slow-NNN: 1\r\n" lines of 15 bytes each. */
static char
slowloris_byte(size_t n)
{
	char line[32];
	size_t start = sizeof slowloris_start - 1;

	if (n < start)
		return slowloris_start[n];
	n -= start;
	snprintf(line, sizeof line, "X-Slow-%03zu: 1\r\n", n / 15 % 1000);
	return line[n % 15];
}

/* Counts how the router ended an attacker, from the status it sent. */
static void
attacker_ended(struct tally *t, struct conn *c)
{
	int status = conn_status(c);

	t->attacks_ended++;
	if (status == 408)
		t->answers_408++;
	else if (status == 503)
		t->answers_503++;
	else if (status != 0)
		t->answers_other++;
}

/* A random time in [lo, hi) ms from now. */
static long long
after_ms(long lo, long hi)
{
	return now_ms() + lo + random() % (hi - lo);
}

/* The connection is up: the first step of each mode. */
static void
attacker_connected(const struct options *o, struct conn *c, uint32_t idx)
{
	c->state = OPEN;
	switch (o->mode) {
	case NEVER_READ:
		conn_send(c, never_read_request, sizeof never_read_request - 1);
		conn_watch(c, idx, EPOLLRDHUP); /* never EPOLLIN: nothing is read */
		c->next_ms = after_ms(5000, 15000);
		break;
	case SLOW_UPLOAD:
		conn_send(c, slow_upload_head, sizeof slow_upload_head - 1);
		conn_watch(c, idx, EPOLLIN | EPOLLRDHUP);
		c->next_ms = now_ms() + o->byte_ms;
		break;
	case SLOWLORIS:
		conn_watch(c, idx, EPOLLIN | EPOLLRDHUP);
		c->next_ms = now_ms(); /* the first byte at once */
		break;
	}
}

/* A timed step of an open attacker. Returns -1 when its connection is gone. */
static int
attacker_step(const struct options *o, struct conn *c)
{
	char b;

	if (o->mode == NEVER_READ)
		return -1; /* the hold is over: close (a reset) and ask again */
	if (o->mode == SLOW_UPLOAD && c->sent < sizeof slow_upload_head - 1)
		return conn_send(c, slow_upload_head, sizeof slow_upload_head - 1);
	b = o->mode == SLOW_UPLOAD ? 'x' : slowloris_byte(c->sent);
	c->next_ms = now_ms() + o->byte_ms;
	if (send(c->fd, &b, 1, MSG_NOSIGNAL) == 1) {
		c->sent++;
		return 0;
	}
	return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

/* ---------------------------------------------------------------------
 * The trickle.
 */

static const char trickle_request[] =
	"GET /foo HTTP/1.1\r\nHost: trickle\r\nConnection: close\r\n\r\n";

/* Records a finished trickle request: status 0 when none came in time. */
static void
trickle_done(struct tally *t, struct conn *c, int status)
{
	long ms = (long)(now_ms() - c->started_ms);

	if (status != 0)
		t->latencies[t->latency_count++] = ms;
	if (status == 200 && ms <= TRICKLE_OK_MS)
		t->trickle_ok++;
	else if (status == 200)
		t->trickle_late++;
	else if (status != 0)
		t->trickle_other++;
	else
		t->trickle_failed++;
	conn_close(c);
}

/* Events on a trickle request (epoll index idx). */
static void
trickle_event(struct tally *t, struct conn *c, uint32_t idx, uint32_t events)
{
	size_t len = sizeof trickle_request - 1;

	if (c->state == CONNECTING && (events & EPOLLERR)) {
		trickle_done(t, c, 0);
		return;
	}
	if (c->state == CONNECTING && (events & EPOLLOUT))
		c->state = OPEN;
	if (c->state == OPEN && c->sent < len) {
		if (conn_send(c, trickle_request, len) < 0) {
			trickle_done(t, c, 0);
			return;
		}
		if (c->sent == len) /* all out: watch for the answer only */
			conn_watch(c, idx, EPOLLIN | EPOLLRDHUP);
	}
	int open = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ? conn_drain(c) : 1;
	int status = conn_status(c);
	if (status != 0 || open <= 0)
		trickle_done(t, c, status);
}

/* ---------------------------------------------------------------------
 * The run.
 */

struct run {
	const struct options *o;
	struct tally *t;
	struct conn *attackers;          /* o->conns */
	struct conn trickle[TRICKLE_SLOTS];
	long long trickle_start_ms, trickle_end_ms, next_trickle_ms;
};

/* Events on an attacker. */
static void
attacker_event(struct run *run, uint32_t idx, uint32_t events)
{
	struct conn *c = &run->attackers[idx];

	if (c->state == CONNECTING) {
		if (events & (EPOLLERR | EPOLLHUP)) {
			run->t->connect_errors++;
			conn_close(c);
			c->next_ms = now_ms() + 100;
			return;
		}
		if (events & EPOLLOUT) {
			run->t->attacks_opened++;
			attacker_connected(run->o, c, idx);
		}
		return;
	}
	if (c->state != OPEN)
		return;
	/* The router closed (EPOLLRDHUP, all a never-reader watches) or
	 * reset the connection; the others read its answer first. */
	bool gone = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
	if (run->o->mode != NEVER_READ && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
	    conn_drain(c) <= 0)
		gone = true;
	if (gone) {
		attacker_ended(run->t, c);
		conn_close(c);
		c->next_ms = now_ms(); /* reconnect at once */
	}
}

/* Timed work on every attacker: connect the idle, step the open. */
static void
attackers_tick(struct run *run, long long now, bool stopping)
{
	for (int i = 0; i < run->o->conns; i++) {
		struct conn *c = &run->attackers[i];
		if (stopping || c->next_ms > now)
			continue;
		if (c->state == IDLE) {
			int rcvbuf = run->o->mode == NEVER_READ ? NEVER_READ_RCVBUF : 0;
			if (conn_open(c, run->o->port, (uint32_t)i, rcvbuf) < 0) {
				run->t->connect_errors++;
				c->next_ms = now + 100;
			}
		} else if (c->state == OPEN && attacker_step(run->o, c) < 0) {
			conn_close(c);
			c->next_ms = now; /* reconnect on the next tick */
		}
	}
}

/* Starts trickle requests that are due and gives up on overdue ones. */
static void
trickle_tick(struct run *run, long long now)
{
	for (int i = 0; i < TRICKLE_SLOTS; i++) {
		struct conn *c = &run->trickle[i];
		if (c->state != IDLE && now - c->started_ms > TRICKLE_GIVE_UP_MS)
			trickle_done(run->t, c, 0);
	}
	while (now >= run->next_trickle_ms && run->next_trickle_ms < run->trickle_end_ms) {
		run->next_trickle_ms += 1000 / run->o->rate;
		run->t->trickle_sent++;
		int i;
		for (i = 0; i < TRICKLE_SLOTS && run->trickle[i].state != IDLE; i++)
			;
		if (i == TRICKLE_SLOTS ||
		    conn_open(&run->trickle[i], run->o->port, (uint32_t)(run->o->conns + i), 0) < 0)
			run->t->trickle_failed++;
	}
}

static bool
trickle_busy(const struct run *run)
{
	for (int i = 0; i < TRICKLE_SLOTS; i++)
		if (run->trickle[i].state != IDLE)
			return true;
	return false;
}

/* Handles what epoll reports within timeout_ms. */
static void
run_poll(struct run *run, int timeout_ms)
{
	struct epoll_event evs[256];
	int n = epoll_wait(epfd, evs, 256, timeout_ms);

	for (int i = 0; i < n; i++) {
		uint32_t idx = evs[i].data.u32;
		if (idx < (uint32_t)run->o->conns)
			attacker_event(run, idx, evs[i].events);
		else
			trickle_event(run->t, &run->trickle[idx - (uint32_t)run->o->conns], idx,
			              evs[i].events);
	}
}

/* The attack with the trickle beside it, until the trickle is done. */
static void
run_attack(struct run *run)
{
	const struct options *o = run->o;
	long long start = now_ms(), next_sample = start;

	for (int i = 0; i < o->conns; i++)
		run->attackers[i].next_ms = start + (long long)i * 1000 / RAMP_PER_S;
	/* The trickle starts a second after the last attacker's first connect. */
	run->trickle_start_ms = start + (long long)o->conns * 1000 / RAMP_PER_S + 1000;
	run->trickle_end_ms = run->trickle_start_ms + (long long)o->seconds * 1000;
	run->next_trickle_ms = run->trickle_start_ms;
	for (;;) {
		long long now = now_ms();
		if (now >= run->trickle_end_ms && !trickle_busy(run))
			break;
		attackers_tick(run, now, false);
		if (now >= run->trickle_start_ms)
			trickle_tick(run, now);
		if (now >= next_sample) {
			tally_sample(run->t, o->pid);
			next_sample = now + SAMPLE_MS;
		}
		run_poll(run, TICK_MS);
	}
}

/* Closes every attacker, then waits (SETTLE_MS at most) until the router
 * has no more threads than before the attack. */
static void
run_settle(struct run *run)
{
	long long start = now_ms();
	long rss = 0, threads = 0;

	for (int i = 0; i < run->o->conns; i++)
		conn_close(&run->attackers[i]);
	if (run->o->pid <= 0)
		return;
	while (proc_sample(run->o->pid, &rss, &threads) == 0 && now_ms() - start < SETTLE_MS &&
	       threads > run->t->threads_base) {
		struct timespec ts = { 0, SAMPLE_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	run->t->threads_after = threads;
	run->t->settle_ms = now_ms() - start;
}

/* ---------------------------------------------------------------------
 * The report.
 */

static int
compare_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* The p-th percentile of the sorted latencies, or -1 when there are none. */
static long
percentile(const struct tally *t, int p)
{
	if (t->latency_count == 0)
		return -1;
	return t->latencies[(t->latency_count - 1) * p / 100];
}

static const char *
mode_name(enum mode m)
{
	return m == NEVER_READ ? "never-read" : m == SLOW_UPLOAD ? "slow-upload" : "slowloris";
}

static void
report_header(void)
{
	printf("| attack | attackers | trickle sent | 200 within 1 s | late 200 | other status "
	       "| no answer | p50 / p99 / max ms | router RSS before -> peak | router threads "
	       "before -> peak -> after | attackers' connections (ended by the router: 408 / 503 "
	       "/ other) | SYNs dropped, accept queue full |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void
report_row(const struct options *o, struct tally *t)
{
	double pct = t->trickle_sent ? 100.0 * (double)t->trickle_ok / (double)t->trickle_sent : 0;

	qsort(t->latencies, (size_t)t->latency_count, sizeof *t->latencies, compare_long);
	printf("| %s | %d | %ld | %ld (%.1f%%) | %ld | %ld | %ld | %ld / %ld / %ld "
	       "| %.1f -> %.1f MiB | %ld -> %ld -> %ld | %ld (%ld: %ld / %ld / %ld) | %ld |\n",
	       mode_name(o->mode), o->conns, t->trickle_sent, t->trickle_ok, pct, t->trickle_late,
	       t->trickle_other, t->trickle_failed, percentile(t, 50), percentile(t, 99),
	       percentile(t, 100), (double)t->rss_base_kib / 1024, (double)t->rss_peak_kib / 1024,
	       t->threads_base, t->threads_peak, t->threads_after, t->attacks_opened,
	       t->attacks_ended, t->answers_408, t->answers_503, t->answers_other,
	       t->listen_drops);
	fprintf(stderr, "attack: %s: %.1f%% of the trickle answered 200 within 1 s; "
	        "threads back to %ld after %lld ms; %ld connect errors\n",
	        mode_name(o->mode), pct, t->threads_after, t->settle_ms, t->connect_errors);
}

/* ---------------------------------------------------------------------
 * Command line and main().
 */

static int
parse_int(const char *flag, const char *value, int min, int max)
{
	char *end;
	long n = strtol(value, &end, 10);

	if (*value == '\0' || *end != '\0' || n < min || n > max) {
		fprintf(stderr, "attack: --%s wants %d to %d, not \"%s\"\n", flag, min, max, value);
		exit(2);
	}
	return (int)n;
}

static enum mode
parse_mode(const char *value)
{
	if (strcmp(value, "never-read") == 0)
		return NEVER_READ;
	if (strcmp(value, "slow-upload") == 0)
		return SLOW_UPLOAD;
	if (strcmp(value, "slowloris") == 0)
		return SLOWLORIS;
	fprintf(stderr, "attack: --mode is never-read, slow-upload or slowloris, not \"%s\"\n",
	        value);
	exit(2);
}

static void
parse_flags(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "mode", required_argument, NULL, 'm' },
		{ "conns", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'r' },
		{ "byte-ms", required_argument, NULL, 'b' },
		{ "pid", required_argument, NULL, 'P' },
		{ "header", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	int ch, idx = 0;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		const char *flag = longopts[idx].name;
		switch (ch) {
		case 'p': o->port = parse_int(flag, optarg, 1, 65535); break;
		case 'm': o->mode = parse_mode(optarg); break;
		case 'c': o->conns = parse_int(flag, optarg, 0, 100000); break;
		case 's': o->seconds = parse_int(flag, optarg, 1, 3600); break;
		case 'r': o->rate = parse_int(flag, optarg, 1, 1000); break;
		case 'b': o->byte_ms = parse_int(flag, optarg, 1, 600000); break;
		case 'P': o->pid = parse_int(flag, optarg, 1, 1 << 30); break;
		case 'H': o->header = true; break;
		default:
			fprintf(stderr, "attack: bad flag \"%s\" (see bench/attack.c)\n",
			        argv[optind - 1]);
			exit(2);
		}
	}
	if (o->port == 0) {
		fprintf(stderr, "attack: --port is needed\n");
		exit(2);
	}
	if (o->byte_ms == 0)
		o->byte_ms = o->mode == SLOW_UPLOAD ? 2000 : 1000;
}

/* Raises the soft limit on open files to the hard one: every attacker
 * is a socket. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	struct options o = { .mode = SLOWLORIS, .conns = 100, .seconds = 20, .rate = 20 };
	struct tally t = { 0 };
	struct run run = { .o = &o, .t = &t };
	int rc = 1;

	parse_flags(argc, argv, &o);
	raise_fd_limit();
	srandom((unsigned)getpid());
	epfd = epoll_create1(EPOLL_CLOEXEC);
	run.attackers = calloc((size_t)o.conns + 1, sizeof *run.attackers);
	t.latencies = calloc((size_t)o.rate * (size_t)o.seconds + TRICKLE_SLOTS, sizeof(long));
	if (epfd < 0 || run.attackers == NULL || t.latencies == NULL) {
		fprintf(stderr, "attack: cannot set up: %s\n", strerror(errno));
		goto out;
	}
	for (int i = 0; i < o.conns; i++)
		run.attackers[i].fd = -1;
	for (int i = 0; i < TRICKLE_SLOTS; i++)
		run.trickle[i].fd = -1;
	if (o.pid > 0 && proc_sample(o.pid, &t.rss_base_kib, &t.threads_base) < 0) {
		fprintf(stderr, "attack: no process %d\n", o.pid);
		goto out;
	}
	t.rss_peak_kib = t.rss_base_kib;
	t.threads_peak = t.threads_base;
	long drops = listen_drops();
	run_attack(&run);
	t.listen_drops = drops >= 0 ? listen_drops() - drops : -1;
	run_settle(&run);
	if (o.header)
		report_header();
	report_row(&o, &t);
	rc = 0;
out:
	free(run.attackers);
	free(t.latencies);
	if (epfd >= 0)
		close(epfd);
	return rc;
}
