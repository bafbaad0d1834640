/*
 * observe.h -- helpers for tests of what a router shows about itself:
 * its admin port (scraped, then parsed by tests/scrape_check.py with
 * python3's prometheus_client and json), its access log, and the
 * processes those tests spawn.
 *
 * Every helper reports failure to its caller; none calls a cmocka
 * assertion. See observe.c for the module card.
 */
#ifndef PTTH_TEST_OBSERVE_H
#define PTTH_TEST_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ptth.h"

/* The parsed answer of GET /metrics or GET /tunnels: the lines that
 * tests/scrape_check.py printed. */
struct scrape {
	char *text;     /* NUL-terminated, one sample or tunnel per line */
};

/* GETs path from 127.0.0.1:port and parses the body with
 * tests/scrape_check.py (mode "metrics" or "tunnels"). Returns 0, or a
 * negative code when the GET or the parse failed (the parser's message
 * is on stderr). Free with scrape_free(). */
int scrape_fetch(int port, const char *mode, struct scrape *out);
void scrape_free(struct scrape *s);
/* The value of the sample written exactly as key (labels sorted by
 * name, as scrape_check.py prints them), or -1 when it is absent. */
double scrape_value(const struct scrape *s, const char *key);
/* The number of lines (tunnels, for a "tunnels" scrape). */
int scrape_lines(const struct scrape *s);

/* Waits until the router has at most n user connections. Each user
 * thread counts its requests (metrics, access log) before it unlists
 * its connection, so n = 0 means every request so far is counted.
 * Returns 0 or -ETIMEDOUT. */
int observe_wait_conns(struct ptth_router *r, int n, int timeout_ms);
/* Waits until at most n connection and tunnel threads are left.
 * Returns 0 or -ETIMEDOUT. */
int observe_wait_threads(struct ptth_router *r, int n, int timeout_ms);

/* Reads path whole into a new NUL-terminated buffer (free it).
 * Returns NULL on failure. */
char *observe_read_file(const char *path);
/* The number of '\n' in the file at path, or a negative code. */
int observe_count_lines(const char *path);
/* Waits (inotify, no polling) until the file at path exists and holds
 * at least n lines. Returns 0, -ETIMEDOUT or another negative code. */
int observe_wait_lines(const char *path, int n, int timeout_ms);

/* Starts PTTH_BIN_DIR/prog with args (NULL-terminated, not counting
 * argv[0]) and its fd child_fd (STDOUT_FILENO or STDERR_FILENO) on a
 * pipe whose read end is stored in *out_fd. The child dies with this
 * process. Returns the pid or a negative code. */
pid_t observe_spawn_piped(const char *prog, const char *const args[], int child_fd,
                          int *out_fd);
/* The same for any program, by absolute path; child_fd -1 leaves the
 * child's output alone (out_fd is then unused). */
pid_t observe_spawn_path(const char *path, const char *const args[], int child_fd,
                         int *out_fd);
/* A TCP port free on 127.0.0.1 a moment ago: bound to port 0, then
 * closed. For programs that need a fixed port in their configuration
 * (haproxy); another process may take it in between, a small race the
 * caller accepts. Returns the port or a negative code. */
int observe_free_port(void);
/* The resident memory of a process (VmRSS), in KiB, or -1. */
long observe_rss_kib(pid_t pid);
/* Reads from fd into buf (cap bytes, kept NUL-terminated) until it
 * holds count copies of needle. Returns 0, -ETIMEDOUT, -ENOBUFS or
 * -EPIPE (the writer is gone). */
int observe_read_until(int fd, char *buf, size_t cap, const char *needle, int count,
                       int timeout_ms);
/* The number after the first copy of prefix in text, or -1. */
int observe_number_after(const char *text, const char *prefix);
/* Waits up to timeout_ms for pid to exit and reaps it; kills it if it
 * does not. Returns 0 with the wait status in *status, or -ETIMEDOUT. */
int observe_wait_exit(pid_t pid, int timeout_ms, int *status);

#endif
