/*
 * observe.c -- helpers for tests of the admin port and the access log:
 * scrape and parse with real parsers, wait for a router's threads, wait
 * for lines in a file, and run bin/ programs with a piped output.
 *
 * Owns:    each struct scrape's text; the caller owns files and children.
 * Threads: any test thread; observe_wait_exit() starts and joins a
 *          reaper thread of its own.
 * Locks:   the router's r->mu, through its condition (observe_wait_*);
 *          a reaper's own mutex.
 * Interface:
 *   - scrape_fetch() + scrape_value(): GET /metrics parsed by
 *     prometheus_client, then samples looked up by exact text;
 *   - observe_wait_conns() / observe_wait_threads(): wait on the
 *     router's own condition until requests are counted, or threads gone;
 *   - observe_wait_lines(): inotify on a log file;
 *   - observe_spawn_piped() / observe_read_until() / observe_wait_exit()
 *     for bin/router and bin/backend as child processes.
 * Tutorial: none; this is test support code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lock.h"
#include "router.h"          /* r->mu, r->threads_done: waits on the router's own condition */
#include "support/harness.h"
#include "support/observe.h"

/* Where Debian's python3-prometheus-client is: the system interpreter. */
#define OBSERVE_PYTHON "/usr/bin/python3"

/* Runs tests/scrape_check.py MODE on body; its output becomes out->text. */
static int
scrape_parse(const char *mode, const char *body, size_t len, struct scrape *out)
{
	char path[] = "/tmp/ptth-scrape-XXXXXX", cmd[256];
	int fd = mkstemp(path);
	size_t cap = 65536, used = 0;
	FILE *p;
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, body, len) != (ssize_t)len)
		rc = -EIO;
	close(fd);
	snprintf(cmd, sizeof cmd, OBSERVE_PYTHON " tests/scrape_check.py %s %s", mode, path);
	out->text = calloc(1, cap);
	p = rc == 0 && out->text != NULL ? popen(cmd, "r") : NULL;
	if (p == NULL)
		rc = rc < 0 ? rc : -ENOMEM;
	while (p != NULL && used + 1 < cap) {
		size_t n = fread(out->text + used, 1, cap - 1 - used, p);
		if (n == 0)
			break;
		used += n;
	}
	if (p != NULL && pclose(p) != 0)
		rc = -EPROTO;
	unlink(path);
	if (rc < 0)
		scrape_free(out);
	return rc;
}

int
scrape_fetch(int port, const char *mode, struct scrape *out)
{
	char url[128], *body = malloc(1 << 20);
	size_t len = 0;
	long status = 0;
	int rc = -EIO;

	out->text = NULL;
	if (body == NULL)
		return -ENOMEM;
	snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", port, mode);
	if (http_get(url, &status, body, 1 << 20, &len) == CURLE_OK && status == 200)
		rc = scrape_parse(mode, body, len, out);
	free(body);
	return rc;
}

void
scrape_free(struct scrape *s)
{
	free(s->text);
	s->text = NULL;
}

double
scrape_value(const struct scrape *s, const char *key)
{
	size_t klen = strlen(key);

	for (const char *line = s->text; line != NULL && *line != '\0';) {
		if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
			return strtod(line + klen + 1, NULL);
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return -1;
}

int
scrape_lines(const struct scrape *s)
{
	int n = 0;

	for (const char *p = s->text; p != NULL && *p != '\0'; p++)
		n += *p == '\n';
	return n;
}

/* Waits on r->threads_done until the count chosen by conns (user
 * connections, or every counted thread) is at most n. */
static int
observe_wait_router(struct ptth_router *r, int n, bool conns, int timeout_ms)
{
	struct timespec deadline = deadline_after_ms(timeout_ms);
	int rc = 0;

	mutex_lock(&r->mu);
	while ((conns ? r->conn_count : r->threads) > n && rc == 0)
		rc = cond_timedwait(&r->threads_done, &r->mu, &deadline);
	rc = (conns ? r->conn_count : r->threads) > n ? -ETIMEDOUT : 0;
	mutex_unlock(&r->mu);
	return rc;
}

int
observe_wait_conns(struct ptth_router *r, int n, int timeout_ms)
{
	return observe_wait_router(r, n, true, timeout_ms);
}

int
observe_wait_threads(struct ptth_router *r, int n, int timeout_ms)
{
	return observe_wait_router(r, n, false, timeout_ms);
}

char *
observe_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t cap = 1 << 20, len;
	char *buf;

	if (f == NULL)
		return NULL;
	buf = malloc(cap);
	if (buf != NULL) {
		len = fread(buf, 1, cap - 1, f);
		buf[len] = '\0';
	}
	fclose(f);
	return buf;
}

int
observe_count_lines(const char *path)
{
	char *text = observe_read_file(path);
	int n = 0;

	if (text == NULL)
		return -errno;
	for (const char *p = text; *p != '\0'; p++)
		n += *p == '\n';
	free(text);
	return n;
}

/* Watches the directory of path (creations, writes, renames): set up
 * before each check, so no change between check and wait is missed. */
int
observe_wait_lines(const char *path, int n, int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	char dir[4096], events[4096];
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), rc = -ETIMEDOUT;

	if (fd < 0)
		return -errno;
	snprintf(dir, sizeof dir, "%s", path);
	if (inotify_add_watch(fd, dirname(dir), IN_CREATE | IN_MODIFY | IN_MOVED_TO) < 0) {
		rc = -errno;
		goto out_close;
	}
	for (;;) {
		if (observe_count_lines(path) >= n) {
			rc = 0;
			break;
		}
		long long left = deadline - harness_now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			break;
		while (read(fd, events, sizeof events) > 0)
			;
	}
out_close:
	close(fd);
	return rc;
}

pid_t
observe_spawn_path(const char *path, const char *const args[], int child_fd, int *out_fd)
{
	const char *argv[40];
	size_t argc = 0;
	int fds[2] = { -1, -1 };
	pid_t pid, parent;

	argv[argc++] = path;
	for (size_t i = 0; args[i] != NULL && argc + 1 < sizeof argv / sizeof argv[0]; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	if (access(path, X_OK) < 0 || (child_fd >= 0 && pipe2(fds, O_CLOEXEC) < 0))
		return -errno;
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		int rc = -errno;
		if (child_fd >= 0) {
			close(fds[0]);
			close(fds[1]);
		}
		return rc;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls between fork and exec. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent ||
		    (child_fd >= 0 && dup2(fds[1], child_fd) < 0))
			_exit(127);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	if (child_fd >= 0) {
		close(fds[1]);
		*out_fd = fds[0];
	}
	return pid;
}

pid_t
observe_spawn_piped(const char *prog, const char *const args[], int child_fd, int *out_fd)
{
	const char *dir = getenv("PTTH_BIN_DIR");
	char path[4096];

	snprintf(path, sizeof path, "%s/%s", dir != NULL && dir[0] != '\0' ? dir : "bin", prog);
	return observe_spawn_path(path, args, child_fd, out_fd);
}

int
observe_free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

long
observe_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kib;
}

int
observe_read_until(int fd, char *buf, size_t cap, const char *needle, int count,
                   int timeout_ms)
{
	long long deadline = harness_now_ms() + timeout_ms;
	size_t len = 0;

	buf[0] = '\0';
	for (;;) {
		int seen = 0;
		for (const char *p = strstr(buf, needle); p != NULL; p = strstr(p + 1, needle))
			seen++;
		if (seen >= count)
			return 0;
		if (len + 1 >= cap)
			return -ENOBUFS;
		long long left = deadline - harness_now_ms();
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		len += (size_t)n;
		buf[len] = '\0';
	}
}

int
observe_number_after(const char *text, const char *prefix)
{
	const char *p = strstr(text, prefix);

	return p != NULL ? atoi(p + strlen(prefix)) : -1;
}

/* Reaps one child, so that a test can wait for the exit with a timeout. */
struct reaper {
	pid_t pid;
	pthread_mutex_t mu;
	pthread_cond_t done;
	/* guarded by mu: */
	bool exited;
	int status;
};

static void *
observe_reaper_thread_main(void *arg)
{
	struct reaper *rp = arg;
	int status = 0;

	while (waitpid(rp->pid, &status, 0) < 0 && errno == EINTR)
		;
	mutex_lock(&rp->mu);
	rp->exited = true;
	rp->status = status;
	cond_broadcast(&rp->done);
	mutex_unlock(&rp->mu);
	return NULL;
}

int
observe_wait_exit(pid_t pid, int timeout_ms, int *status)
{
	struct reaper rp = { .pid = pid };
	struct timespec deadline = deadline_after_ms(timeout_ms);
	pthread_t thread;
	bool exited;

	mutex_init(&rp.mu);
	cond_init(&rp.done);
	if (pthread_create(&thread, NULL, observe_reaper_thread_main, &rp) != 0) {
		harness_kill(pid, SIGKILL);
		return -EAGAIN;
	}
	mutex_lock(&rp.mu);
	while (!rp.exited && cond_timedwait(&rp.done, &rp.mu, &deadline) == 0)
		;
	exited = rp.exited;
	mutex_unlock(&rp.mu);
	if (!exited)
		kill(pid, SIGKILL); /* the reaper then returns */
	pthread_join(thread, NULL);
	*status = rp.status;
	cond_destroy(&rp.done);
	mutex_destroy(&rp.mu);
	return exited ? 0 : -ETIMEDOUT;
}
