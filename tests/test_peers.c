/*
 * test_peers.c -- interoperability with programs written elsewhere: the
 * router in front of nghttpd (users: libcurl, and h2load --h1), our
 * backend behind nghttp and h2load, and the curl command line as the
 * user of a router with our backend.
 *
 * The peers run as child processes (posix_spawn) with stdout and stderr
 * captured in files under a temporary directory. socat does the plumbing
 * that the peers cannot do themselves:
 *   - nghttpd only listens, so "socat TCP:<tunnel port> TCP:<nghttpd port>"
 *     dials the router's tunnel port on its behalf and joins the two;
 *   - nghttp and h2load only dial, and so does our backend, so a socat
 *     with two TCP-LISTEN addresses accepts the backend on the first,
 *     then listens on the second for the HTTP/2 client. Both ask for
 *     port 0; socat -d -d reports the ports it bound on its stderr.
 *
 * Every test gets a fresh fixture (setup/teardown). The teardown, which
 * cmocka runs even after a failed assertion, ends every child (SIGTERM,
 * then SIGKILL after a bounded wait) and reaps it, stops the backend and
 * the router, joining all their threads, and removes the directory.
 * A missing peer program fails the test and names the package: make
 * test installs them, so a missing one is a broken setup, never a skip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <curl/curl.h>

#include "ptth.h"
#include "backend/routes.h"

extern char **environ;

#define MAX_CHILDREN 4
#define BIG_SIZE (1024 * 1024)         /* the large file served by nghttpd */
#define UPLOAD_SIZE (1024 * 1024 + 17) /* uploads: odd, and above 1 MiB */
#define CONCURRENT 20
#define START_TIMEOUT_MS 10000         /* a peer becoming ready */
#define RUN_TIMEOUT_MS 120000          /* a client finishing (TSan is slow) */
#define TERM_TIMEOUT_MS 3000           /* SIGTERM to SIGKILL */

/* One peer process. */
struct child {
	char name[32];            /* the program's name, for messages */
	pid_t pid;                /* 0 once reaped */
	int pidfd;                /* readable once the child has exited; -1 after */
	int status;               /* its wait status, once reaped */
	bool piped;               /* stderr goes to err_pipe, not err_path */
	int err_pipe;             /* read end of its stderr while piped, else -1 */
	char err_buf[8192];       /* what was read from err_pipe so far */
	size_t err_len, err_seen; /* bytes read; bytes already parsed */
	char out_path[PATH_MAX];  /* its stdout */
	char err_path[PATH_MAX];  /* its stderr, when not piped */
};

/* Everything one test starts; the teardown undoes whatever is set. */
struct peers {
	char *dir;                /* temporary directory, removed at teardown */
	struct child children[MAX_CHILDREN];
	size_t nchildren;
	struct ptth_router *router;
	int http_port, tunnel_port;
	struct ptth_mux *mux;
	struct ptth_backend *backend;
	unsigned char *big;       /* BIG_SIZE bytes, also in www/big.bin */
	int nghttpd_port;
};

/* ---------------------------------------------------------------------
 * Small helpers: time, files, ports.
 */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline, never negative. */
static int
ms_left(long long deadline)
{
	long long left = deadline - now_ms();

	return left > 0 ? (int)left : 0;
}

/* Fills buf with len bytes of a fixed pseudo-random sequence (xorshift),
 * so that a reordered or repeated block cannot go unnoticed. */
static void
fill_pattern(unsigned char *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed ? seed : 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (unsigned char)x;
	}
}

static void
write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	if (fwrite(data, 1, len, f) != len || fclose(f) != 0)
		fail_msg("cannot write %s", path);
}

/* Reads a whole file into a NUL-terminated buffer the caller frees.
 * Returns NULL when the file cannot be read. */
static char *
read_file(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap + 1);
			assert_non_null(buf);
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	if (len_out != NULL)
		*len_out = len;
	return buf;
}

/* Implements nftw's callback. We use it to remove the test directory. */
static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Returns a port on 127.0.0.1 that was free a moment ago. There is a
 * tiny race: another process may bind it before the peer does. Callers
 * whose peer cannot report the port it bound (nghttpd) live with it and
 * retry when the peer fails to start. */
static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* True when something accepts a TCP connection on 127.0.0.1:port. */
static bool
port_accepts(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0;
	close(fd);
	return ok;
}

/* Looks for an executable called name on PATH, then in the sbin
 * directories that a non-root PATH often lacks (Debian puts nghttpd in
 * /usr/sbin). Returns true and its path in path when found. */
static bool
program_lookup(const char *name, char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof dirs, "%s:/usr/local/sbin:/usr/sbin:/sbin",
	         env ? env : "/usr/local/bin:/usr/bin:/bin");
	for (char *save, *dir = strtok_r(dirs, ":", &save); dir != NULL;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/%s", dir, name);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

/* As program_lookup, but fails the test, naming the package, when the
 * program is missing: make test installs every peer, so a missing one
 * is a broken setup, not a reason to skip. */
static void
program_find(const char *name, const char *package, char *path, size_t len)
{
	if (!program_lookup(name, path, len))
		fail_msg("%s is not installed (not on PATH nor in /usr/sbin): this suite "
		         "needs the Debian package %s, which make test installs",
		         name, package);
}

/* ---------------------------------------------------------------------
 * Child processes.
 */

/* Fills the spawn actions for c: stdin from /dev/null, stdout into
 * c->out_path, stderr into err_fd when it is not -1, else c->err_path,
 * and no other descriptor of ours. */
static void
spawn_actions_init(posix_spawn_file_actions_t *fa, const struct child *c, int err_fd)
{
	assert_int_equal(posix_spawn_file_actions_init(fa), 0);
	posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(fa, 1, c->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (err_fd >= 0)
		posix_spawn_file_actions_adddup2(fa, err_fd, 2);
	else
		posix_spawn_file_actions_addopen(fa, 2, c->err_path,
		                                 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addclosefrom_np(fa, 3);
}

/* Fills the spawn attributes: no blocked signals, and SIGPIPE back at
 * its default (this process ignores it, and exec would keep that). */
static void
spawn_attr_init(posix_spawnattr_t *attr)
{
	sigset_t sigs;

	assert_int_equal(posix_spawnattr_init(attr), 0);
	sigemptyset(&sigs);
	posix_spawnattr_setsigmask(attr, &sigs);
	sigaddset(&sigs, SIGPIPE);
	posix_spawnattr_setsigdefault(attr, &sigs);
	posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

/* Starts argv[0] (a program name, looked up with program_find; package
 * names it in the failure message) with stdout into DIR/N-NAME.out and
 * stderr into DIR/N-NAME.err, or into a pipe the test reads when
 * pipe_stderr is set. Returns the child, which the teardown ends and
 * reaps. */
static struct child *
peers_spawn(struct peers *p, const char *package, char *argv[], bool pipe_stderr)
{
	struct child *c;
	char path[PATH_MAX];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int pipefd[2] = { -1, -1 }, rc;

	assert_true(p->nchildren < MAX_CHILDREN);
	program_find(argv[0], package, path, sizeof path);
	c = &p->children[p->nchildren];
	memset(c, 0, sizeof *c);
	c->pidfd = c->err_pipe = -1;
	snprintf(c->name, sizeof c->name, "%s", argv[0]);
	snprintf(c->out_path, sizeof c->out_path, "%s/%zu-%s.out", p->dir, p->nchildren, argv[0]);
	snprintf(c->err_path, sizeof c->err_path, "%s/%zu-%s.err", p->dir, p->nchildren, argv[0]);
	if (pipe_stderr)
		assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	spawn_actions_init(&fa, c, pipefd[1]);
	spawn_attr_init(&attr);
	rc = posix_spawn(&c->pid, path, &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (pipe_stderr) {
		close(pipefd[1]);
		c->err_pipe = pipefd[0];
		c->piped = true;
	}
	if (rc != 0) {
		if (c->err_pipe >= 0)
			close(c->err_pipe);
		fail_msg("cannot start %s: %s", path, strerror(rc));
	}
	p->nchildren++;
	/* The pid cannot be reused before we reap it, so the pidfd is its. */
	c->pidfd = pidfd_open(c->pid, 0);
	if (c->pidfd < 0) {
		rc = errno;
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		c->pid = 0;
		fail_msg("pidfd_open: %s", strerror(rc));
	}
	return c;
}

/* Waits up to timeout_ms (-1: no limit) for c to exit, and reaps it.
 * Returns true once it has exited. */
static bool
child_wait(struct child *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->pidfd, .events = POLLIN };

	if (c->pid == 0)
		return true;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
		;
	c->pid = 0;
	close(c->pidfd);
	c->pidfd = -1;
	return true;
}

/* Ends c if it still runs: SIGTERM, then SIGKILL after TERM_TIMEOUT_MS,
 * then reaps it. Used by the teardown for every child. */
static void
child_end(struct child *c)
{
	if (c->pid != 0) {
		kill(c->pid, SIGTERM);
		if (!child_wait(c, TERM_TIMEOUT_MS)) {
			kill(c->pid, SIGKILL);
			child_wait(c, -1); /* SIGKILL cannot be ignored */
		}
	}
	if (c->err_pipe >= 0) {
		close(c->err_pipe);
		c->err_pipe = -1;
	}
}

/* Appends whatever c's stderr pipe holds right now to err_buf. */
static void
child_drain_pipe(struct child *c)
{
	struct pollfd pfd = { .fd = c->err_pipe, .events = POLLIN };
	ssize_t n;

	while (c->err_pipe >= 0 && c->err_len < sizeof c->err_buf - 1 &&
	       poll(&pfd, 1, 0) == 1) {
		n = read(c->err_pipe, c->err_buf + c->err_len, sizeof c->err_buf - 1 - c->err_len);
		if (n <= 0)
			break;
		c->err_len += (size_t)n;
	}
}

/* True when buf looks like text, so that a report may print it. */
static bool
is_text(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\r' &&
		    buf[i] != '\t')
			return false;
	return true;
}

/* Prints what c wrote, to explain a failure: the last 4000 bytes of its
 * stdout (where a client's status and errors are) unless it is binary,
 * and its stderr. Written with fprintf: cmocka's print_error cuts each
 * message at 1 KiB. */
static void
child_report(struct child *c)
{
	size_t len = 0;
	char *out = read_file(c->out_path, &len);
	char *err = NULL;

	if (c->piped) {
		child_drain_pipe(c);
		c->err_buf[c->err_len] = '\0';
	} else {
		err = read_file(c->err_path, NULL);
	}
	if (out == NULL) {
		fprintf(stderr, "---- %s stdout: none ----\n", c->name);
	} else if (!is_text(out, len)) {
		fprintf(stderr, "---- %s stdout: %zu bytes, not text ----\n", c->name, len);
	} else {
		const char *tail = len > 4000 ? out + len - 4000 : out;
		fprintf(stderr, "---- %s stdout%s ----\n%s\n", c->name,
		        tail != out ? " (last 4000 bytes)" : "", tail);
	}
	fprintf(stderr, "---- %s stderr ----\n%s\n", c->name,
	        c->piped ? c->err_buf : err ? err : "(none)");
	fflush(stderr);
	free(out);
	free(err);
}

/* Waits up to RUN_TIMEOUT_MS for a client to finish and checks that it
 * exited with status 0. Returns its stdout (caller frees). */
static char *
child_finish(struct child *c, size_t *len)
{
	char *out;

	if (!child_wait(c, RUN_TIMEOUT_MS)) {
		child_report(c);
		fail_msg("%s did not finish within %d ms", c->name, RUN_TIMEOUT_MS);
	}
	if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
		child_report(c);
		fail_msg("%s failed: wait status 0x%x", c->name, (unsigned)c->status);
	}
	out = read_file(c->out_path, len);
	assert_non_null(out);
	return out;
}

/* Looks in c's unparsed stderr for a complete socat line "... listening
 * on AF=2 127.0.0.1:PORT"; marks what it read as parsed. Returns PORT,
 * or 0 when no such line is there yet. */
static int
socat_parse_listen_port(struct child *c)
{
	char *start = c->err_buf + c->err_seen, *end = c->err_buf + c->err_len;
	char *line, *eol, *colon;
	int port = 0;

	while (port == 0 &&
	       (line = memmem(start, (size_t)(end - start), "listening on ", 13)) != NULL &&
	       (eol = memchr(line, '\n', (size_t)(end - line))) != NULL) {
		*eol = '\0';
		colon = strrchr(line, ':');
		if (colon != NULL)
			port = atoi(colon + 1);
		*eol = '\n';
		start = eol + 1;
		c->err_seen = (size_t)(start - c->err_buf);
	}
	return port > 0 ? port : 0;
}

/* Reads c's piped stderr until a socat "listening on" line not seen
 * before, and returns its port. socat -d -d writes that line after
 * listen() and before accept(), with the port it really bound, so we can
 * ask for port 0 and need not poll: we block on the pipe, bounded by
 * START_TIMEOUT_MS. */
static int
socat_next_listen_port(struct child *c)
{
	long long deadline = now_ms() + START_TIMEOUT_MS;
	int port;

	while ((port = socat_parse_listen_port(c)) == 0) {
		struct pollfd pfd = { .fd = c->err_pipe, .events = POLLIN };
		size_t room = sizeof c->err_buf - 1 - c->err_len;
		int left = ms_left(deadline);
		ssize_t n = 0;

		if (left > 0 && room > 0 && poll(&pfd, 1, left) == 1)
			n = read(c->err_pipe, c->err_buf + c->err_len, room);
		if (n <= 0) {
			child_report(c);
			fail_msg("socat did not report a listening port within %d ms%s",
			         START_TIMEOUT_MS, n == 0 && left > 0 ? " (it exited)" : "");
		}
		c->err_len += (size_t)n;
	}
	return port;
}

/* ---------------------------------------------------------------------
 * The fixture.
 */

static int
peers_setup(void **state)
{
	struct peers *p = calloc(1, sizeof *p);
	const char *tmp = getenv("TMPDIR");

	if (p == NULL)
		return -1;
	if (asprintf(&p->dir, "%s/ptth-peers-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		free(p);
		return -1;
	}
	if (mkdtemp(p->dir) == NULL) {
		print_error("mkdtemp %s: %s\n", p->dir, strerror(errno));
		free(p->dir);
		free(p);
		return -1;
	}
	*state = p;
	return 0;
}

/* Undoes whatever the test got to start, in reverse order: the peers
 * first (which closes their connections to us), then our backend and
 * router, which join every thread they started. */
static int
peers_teardown(void **state)
{
	struct peers *p = *state;

	for (size_t i = p->nchildren; i-- > 0;)
		child_end(&p->children[i]);
	ptth_backend_free(p->backend);
	ptth_router_free(p->router);
	ptth_mux_free(p->mux);
	nftw(p->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(p->big);
	free(p->dir);
	free(p);
	return 0;
}

/* Starts an in-process router on 127.0.0.1 port 0 for both sides. */
static void
peers_start_router(struct peers *p)
{
	struct ptth_router_options opts;

	ptth_router_options_init(&opts);
	opts.http_addr = "127.0.0.1:0";
	opts.tunnel_addr = "127.0.0.1:0";
	p->router = ptth_router_new(&opts);
	assert_non_null(p->router);
	assert_int_equal(ptth_router_start(p->router), 0);
	assert_int_equal(ptth_router_ports(p->router, &p->http_port, &p->tunnel_port), 0);
}

/* Starts our backend, with bin/backend's routes, dialling 127.0.0.1:port. */
static void
peers_start_backend(struct peers *p, int port)
{
	char addr[32];
	struct ptth_backend_options opts = { .router_addr = addr, .handler = ptth_mux_serve };

	p->mux = ptth_mux_new();
	assert_non_null(p->mux);
	assert_int_equal(routes_register(p->mux, NULL), 0);
	opts.handler_arg = p->mux;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	p->backend = ptth_backend_new(&opts);
	assert_non_null(p->backend);
	assert_int_equal(ptth_backend_start(p->backend), 0);
}

/* Waits until nghttpd accepts connections on its port. nghttpd tells us
 * nothing when it is ready, so this polls: a connect attempt, then up to
 * 10 ms of waiting on its pidfd, which also ends the wait at once if
 * nghttpd exits (for instance because its port was taken in the race
 * free_port() describes). Bounded by START_TIMEOUT_MS. Returns true when
 * ready, false when nghttpd exited. */
static bool
nghttpd_wait_ready(struct child *c, int port)
{
	long long deadline = now_ms() + START_TIMEOUT_MS;

	while (!port_accepts(port)) {
		if (child_wait(c, 10))
			return false;
		if (ms_left(deadline) == 0) {
			child_report(c);
			fail_msg("nghttpd did not accept connections on port %d within %d ms",
			         port, START_TIMEOUT_MS);
		}
	}
	return true;
}

/* Serves DIR/www (hello.txt and the 1 MiB big.bin) with nghttpd on a
 * free port, retrying with another port if it loses the race for one. */
static void
peers_start_nghttpd(struct peers *p)
{
	char www[PATH_MAX], path[PATH_MAX + 16], port[16];
	struct child *c = NULL;

	snprintf(www, sizeof www, "%s/www", p->dir);
	assert_int_equal(mkdir(www, 0700), 0);
	snprintf(path, sizeof path, "%s/hello.txt", www);
	write_file(path, "hello", 5);
	p->big = malloc(BIG_SIZE);
	assert_non_null(p->big);
	fill_pattern(p->big, BIG_SIZE, 12345);
	snprintf(path, sizeof path, "%s/big.bin", www);
	write_file(path, p->big, BIG_SIZE);

	for (int attempt = 0; attempt < 3; attempt++) {
		p->nghttpd_port = free_port();
		snprintf(port, sizeof port, "%d", p->nghttpd_port);
		char *argv[] = { "nghttpd", "--no-tls", "-a", "127.0.0.1", "-d", www, port, NULL };
		c = peers_spawn(p, "nghttp2-server", argv, false);
		if (nghttpd_wait_ready(c, p->nghttpd_port))
			return;
		p->nchildren--; /* reaped: its slot can be reused */
	}
	child_report(c);
	fail_msg("nghttpd exited at start three times");
}

/* Joins nghttpd to the router's tunnel port through socat, and waits
 * (ptth_router_wait_tunnels blocks on the pool) until the tunnel is live. */
static void
peers_join_nghttpd(struct peers *p)
{
	char tunnel[64], server[64];
	char *argv[] = { "socat", "-d", "-d", tunnel, server, NULL };
	struct child *c;

	snprintf(tunnel, sizeof tunnel, "TCP:127.0.0.1:%d,nodelay", p->tunnel_port);
	snprintf(server, sizeof server, "TCP:127.0.0.1:%d,nodelay", p->nghttpd_port);
	c = peers_spawn(p, "socat", argv, false);
	if (ptth_router_wait_tunnels(p->router, 1, 5000) != 0) {
		child_report(c);
		fail_msg("the tunnel from socat+nghttpd did not come up within 5 s");
	}
}

/* The router with nghttpd behind it, ready for requests. */
static void
peers_start_router_with_nghttpd(struct peers *p)
{
	peers_start_router(p);
	peers_start_nghttpd(p);
	peers_join_nghttpd(p);
}

/* Starts "socat TCP-LISTEN:0 TCP-LISTEN:0", lets our backend dial the
 * first port as if it were a router, and returns the second port, on
 * which socat now waits for the HTTP/2 client. */
static int
peers_start_backend_behind_socat(struct peers *p)
{
	char *argv[] = { "socat", "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr,nodelay",
	                 "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr,nodelay", NULL };
	struct child *c = peers_spawn(p, "socat", argv, true);

	peers_start_backend(p, socat_next_listen_port(c));
	return socat_next_listen_port(c);
}

/* The router with our backend dialled straight into it. */
static void
peers_start_router_with_backend(struct peers *p)
{
	peers_start_router(p);
	peers_start_backend(p, p->tunnel_port);
	assert_int_equal(ptth_router_wait_tunnels(p->router, 1, 5000), 0);
}

/* Writes UPLOAD_SIZE pattern bytes to DIR/upload.bin; returns them. */
static unsigned char *
peers_write_upload(struct peers *p, char *path, size_t len)
{
	unsigned char *data = malloc(UPLOAD_SIZE);

	assert_non_null(data);
	fill_pattern(data, UPLOAD_SIZE, 777);
	snprintf(path, len, "%s/upload.bin", p->dir);
	write_file(path, data, UPLOAD_SIZE);
	return data;
}

/* ---------------------------------------------------------------------
 * libcurl as the user of the router: n transfers at once on one multi
 * handle, all on the test's thread.
 */

struct fetch {
	char url[128];
	CURL *easy;
	char *body;
	size_t len, cap;
	long status;
	CURLcode result;
};

/* Implements CURLOPT_WRITEFUNCTION. We use it to collect the body. */
static size_t
fetch_write_callback(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t n = size * nmemb;

	if (f->cap - f->len < n + 1) {
		size_t cap = f->cap ? f->cap : 4096;
		while (cap - f->len < n + 1)
			cap *= 2;
		char *body = realloc(f->body, cap);
		if (body == NULL)
			return 0; /* fails the transfer */
		f->body = body;
		f->cap = cap;
	}
	memcpy(f->body + f->len, data, n);
	f->len += n;
	f->body[f->len] = '\0';
	return n;
}

/* Runs every transfer in f[0..n) concurrently until all are done; each
 * is bounded by RUN_TIMEOUT_MS. Fills status and result. */
static void
fetch_all(struct fetch *f, size_t n)
{
	CURLM *multi = curl_multi_init();
	int running = 1;
	CURLMsg *msg;
	int left;

	assert_non_null(multi);
	for (size_t i = 0; i < n; i++) {
		f[i].easy = curl_easy_init();
		assert_non_null(f[i].easy);
		f[i].result = CURLE_FAILED_INIT;
		curl_easy_setopt(f[i].easy, CURLOPT_URL, f[i].url);
		curl_easy_setopt(f[i].easy, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(f[i].easy, CURLOPT_TIMEOUT_MS, (long)RUN_TIMEOUT_MS);
		curl_easy_setopt(f[i].easy, CURLOPT_WRITEFUNCTION, fetch_write_callback);
		curl_easy_setopt(f[i].easy, CURLOPT_WRITEDATA, &f[i]);
		curl_easy_setopt(f[i].easy, CURLOPT_PRIVATE, &f[i]);
		assert_int_equal(curl_multi_add_handle(multi, f[i].easy), CURLM_OK);
	}
	while (running > 0) {
		assert_int_equal(curl_multi_perform(multi, &running), CURLM_OK);
		if (running > 0)
			assert_int_equal(curl_multi_poll(multi, NULL, 0, 1000, NULL), CURLM_OK);
	}
	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		struct fetch *done;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&done);
		done->result = msg->data.result;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &done->status);
	}
	for (size_t i = 0; i < n; i++) {
		curl_multi_remove_handle(multi, f[i].easy);
		curl_easy_cleanup(f[i].easy);
		f[i].easy = NULL;
	}
	curl_multi_cleanup(multi);
}

static void
fetch_free(struct fetch *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i].body);
}

/* GETs path from the router; asserts the transfer worked. */
static void
fetch_one(struct peers *p, const char *path, struct fetch *f)
{
	memset(f, 0, sizeof *f);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d%s", p->http_port, path);
	fetch_all(f, 1);
	if (f->result != CURLE_OK)
		fail_msg("GET %s: %s", path, curl_easy_strerror(f->result));
}

/* ---------------------------------------------------------------------
 * The tests.
 */

/* Every peer program is present. The other tests fail with the same
 * message when theirs is not; this one lists every missing one at once. */
static void
test_peers_programs_are_installed(void **state)
{
	static const char *const progs[][2] = {
		{ "nghttpd", "nghttp2-server" }, { "nghttp", "nghttp2-client" },
		{ "h2load", "nghttp2-client" },  { "socat", "socat" },
		{ "curl", "curl" },
	};
	char path[PATH_MAX], missing[512] = "";

	(void)state;
	for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
		if (program_lookup(progs[i][0], path, sizeof path))
			continue;
		snprintf(missing + strlen(missing), sizeof missing - strlen(missing),
		         " %s (package %s)", progs[i][0], progs[i][1]);
	}
	if (missing[0] != '\0')
		fail_msg("peer programs not installed (not on PATH nor in /usr/sbin):%s; "
		         "make test installs them", missing);
}

static void
test_peers_router_serves_small_file_from_nghttpd(void **state)
{
	struct peers *p = *state;
	struct fetch f;

	peers_start_router_with_nghttpd(p);
	fetch_one(p, "/hello.txt", &f);
	assert_int_equal(f.status, 200);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.body, "hello", 5);
	fetch_free(&f, 1);
}

static void
test_peers_router_serves_1mib_file_from_nghttpd_intact(void **state)
{
	struct peers *p = *state;
	struct fetch f;

	peers_start_router_with_nghttpd(p);
	fetch_one(p, "/big.bin", &f);
	assert_int_equal(f.status, 200);
	assert_int_equal(f.len, BIG_SIZE);
	assert_memory_equal(f.body, p->big, BIG_SIZE);
	fetch_free(&f, 1);
}

/* Twenty user connections at once, half for the small file and half for
 * the 1 MiB one, so small answers must pass large ones in the tunnel. */
static void
test_peers_router_serves_20_concurrent_requests_from_nghttpd(void **state)
{
	struct peers *p = *state;
	struct fetch f[CONCURRENT];

	peers_start_router_with_nghttpd(p);
	memset(f, 0, sizeof f);
	for (size_t i = 0; i < CONCURRENT; i++)
		snprintf(f[i].url, sizeof f[i].url, "http://127.0.0.1:%d%s", p->http_port,
		         i % 2 ? "/big.bin" : "/hello.txt");
	fetch_all(f, CONCURRENT);
	for (size_t i = 0; i < CONCURRENT; i++) {
		if (f[i].result != CURLE_OK)
			fail_msg("request %zu (%s): %s", i, f[i].url,
			         curl_easy_strerror(f[i].result));
		assert_int_equal(f[i].status, 200);
		if (i % 2) {
			assert_int_equal(f[i].len, BIG_SIZE);
			assert_memory_equal(f[i].body, p->big, BIG_SIZE);
		} else {
			assert_int_equal(f[i].len, 5);
			assert_memory_equal(f[i].body, "hello", 5);
		}
	}
	fetch_free(f, CONCURRENT);
}

static void
test_peers_router_passes_nghttpd_404_through(void **state)
{
	struct peers *p = *state;
	struct fetch f;

	peers_start_router_with_nghttpd(p);
	fetch_one(p, "/no-such-file.txt", &f);
	assert_int_equal(f.status, 404);
	fetch_free(&f, 1);
	/* The tunnel survives a 404: the next request still works. */
	fetch_one(p, "/hello.txt", &f);
	assert_int_equal(f.status, 200);
	assert_memory_equal(f.body, "hello", 5);
	fetch_free(&f, 1);
}

/* nghttpd allows 100 concurrent streams. h2load --h1 opens 150 user
 * connections at once, each sending 4 requests with keep-alive, so the
 * router must hold some requests back until streams on the tunnel end. */
static void
test_peers_router_serves_150_h2load_h1_users_past_stream_limit(void **state)
{
	struct peers *p = *state;
	char url[64];
	char *argv[] = { "h2load", "--h1", "-n", "600", "-c", "150", url, NULL };
	char *out;

	peers_start_router_with_nghttpd(p);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/hello.txt", p->http_port);
	struct child *c = peers_spawn(p, "nghttp2-client", argv, false);
	out = child_finish(c, NULL);
	if (strstr(out, "600 succeeded, 0 failed, 0 errored") == NULL ||
	    strstr(out, "status codes: 600 2xx") == NULL) {
		child_report(c);
		fail_msg("h2load --h1 did not report 600 requests succeeded with 2xx");
	}
	free(out);
}

static void
test_peers_backend_answers_nghttp_get(void **state)
{
	struct peers *p = *state;
	char url[64];
	char *argv[] = { "nghttp", "-v", url, NULL };
	char *out;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/foo", peers_start_backend_behind_socat(p));
	struct child *c = peers_spawn(p, "nghttp2-client", argv, false);
	out = child_finish(c, NULL);
	/* -v interleaves the body with the frame log, at the start of a line. */
	if (strstr(out, ":status: 200") == NULL || strstr(out, "\nbar") == NULL) {
		child_report(c);
		fail_msg("nghttp did not see \":status: 200\" and the body \"bar\"");
	}
	free(out);
}

/* RFC 9110 section 9.3.2, RFC 9113 section 8.1.1: nghttp sends HEAD and
 * -v logs every frame. The answer is one HEADERS frame that ends the
 * stream and keeps the Content-Length of the GET; no DATA frame follows,
 * and nghttp, which checks HTTP messaging, resets nothing. */
static void
test_peers_backend_answers_nghttp_head_without_data(void **state)
{
	struct peers *p = *state;
	char url[64];
	char *argv[] = { "nghttp", "-v", "-H", ":method: HEAD", url, NULL };
	char *out;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/foo", peers_start_backend_behind_socat(p));
	struct child *c = peers_spawn(p, "nghttp2-client", argv, false);
	out = child_finish(c, NULL);
	/* The response's HEADERS line, e.g. "recv HEADERS frame <length=25,
	 * flags=0x05, stream_id=13>": 0x05 is END_STREAM | END_HEADERS. */
	const char *headers = strstr(out, "recv HEADERS frame <");
	const char *eol = headers != NULL ? strchr(headers, '\n') : NULL;
	const char *flags = headers != NULL ? strstr(headers, "flags=0x05") : NULL;
	if (strstr(out, ":status: 200") == NULL || strstr(out, "content-length: 3") == NULL ||
	    flags == NULL || eol == NULL || flags > eol ||
	    strstr(out, "recv DATA frame") != NULL || strstr(out, "RST_STREAM") != NULL) {
		child_report(c);
		fail_msg("nghttp did not see HEADERS with END_STREAM and no DATA for HEAD");
	}
	free(out);
}

static void
test_peers_backend_serves_h2load_1000_requests(void **state)
{
	struct peers *p = *state;
	char url[64];
	char *argv[] = { "h2load", "-n", "1000", "-c", "1", "-m", "10", url, NULL };
	char *out;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/foo", peers_start_backend_behind_socat(p));
	struct child *c = peers_spawn(p, "nghttp2-client", argv, false);
	out = child_finish(c, NULL);
	if (strstr(out, "1000 succeeded, 0 failed, 0 errored") == NULL) {
		child_report(c);
		fail_msg("h2load did not report \"1000 succeeded, 0 failed, 0 errored\"");
	}
	free(out);
}

/* nghttp -d uploads a file with POST; without -v it prints only the
 * response body, which must be the file. */
static void
test_peers_backend_echoes_nghttp_upload(void **state)
{
	struct peers *p = *state;
	char url[64], file[PATH_MAX];
	char *argv[] = { "nghttp", "-d", file, url, NULL };
	unsigned char *data = peers_write_upload(p, file, sizeof file);
	char *out;
	size_t len;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", peers_start_backend_behind_socat(p));
	struct child *c = peers_spawn(p, "nghttp2-client", argv, false);
	out = child_finish(c, &len);
	if (len != UPLOAD_SIZE || memcmp(out, data, UPLOAD_SIZE) != 0) {
		child_report(c);
		fail_msg("nghttp got %zu bytes back for a %d-byte upload%s", len, UPLOAD_SIZE,
		         len == UPLOAD_SIZE ? ", with different content" : "");
	}
	free(out);
	free(data);
}

static void
test_peers_curl_cli_gets_foo_through_router(void **state)
{
	struct peers *p = *state;
	char url[64];
	char *argv[] = { "curl", "-s", "-i", "--noproxy", "*", url, NULL };
	char *out, *body;

	peers_start_router_with_backend(p);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/foo", p->http_port);
	struct child *c = peers_spawn(p, "curl", argv, false);
	out = child_finish(c, NULL);
	body = strstr(out, "\r\n\r\n");
	if (strncmp(out, "HTTP/1.1 200", 12) != 0 || body == NULL || strcmp(body + 4, "bar") != 0) {
		child_report(c);
		fail_msg("curl -i did not show HTTP/1.1 200 and the body \"bar\"");
	}
	free(out);
}

static void
test_peers_curl_cli_posts_file_to_echo(void **state)
{
	struct peers *p = *state;
	char url[64], file[PATH_MAX], data_arg[PATH_MAX + 1];
	char *argv[] = { "curl", "-s", "-S", "-f", "--noproxy", "*", "--data-binary",
	                 data_arg, url, NULL };
	unsigned char *data = peers_write_upload(p, file, sizeof file);
	char *out;
	size_t len;

	peers_start_router_with_backend(p);
	snprintf(data_arg, sizeof data_arg, "@%s", file);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", p->http_port);
	struct child *c = peers_spawn(p, "curl", argv, false);
	out = child_finish(c, &len);
	if (len != UPLOAD_SIZE || memcmp(out, data, UPLOAD_SIZE) != 0) {
		child_report(c);
		fail_msg("curl got %zu bytes back for a %d-byte upload%s", len, UPLOAD_SIZE,
		         len == UPLOAD_SIZE ? ", with different content" : "");
	}
	free(out);
	free(data);
}

static void
test_peers_curl_cli_sees_404_for_unknown_path(void **state)
{
	struct peers *p = *state;
	char url[64];
	char *argv[] = { "curl", "-s", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
	                 url, NULL };
	char *out;

	peers_start_router_with_backend(p);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/no-such-path", p->http_port);
	struct child *c = peers_spawn(p, "curl", argv, false);
	out = child_finish(c, NULL);
	if (strcmp(out, "404") != 0) {
		child_report(c);
		fail_msg("curl -w %%{http_code} printed \"%s\", not \"404\"", out);
	}
	free(out);
}

#define PEERS_TEST(fn) cmocka_unit_test_setup_teardown(fn, peers_setup, peers_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peers_programs_are_installed),
		PEERS_TEST(test_peers_router_serves_small_file_from_nghttpd),
		PEERS_TEST(test_peers_router_serves_1mib_file_from_nghttpd_intact),
		PEERS_TEST(test_peers_router_serves_20_concurrent_requests_from_nghttpd),
		PEERS_TEST(test_peers_router_passes_nghttpd_404_through),
		PEERS_TEST(test_peers_router_serves_150_h2load_h1_users_past_stream_limit),
		PEERS_TEST(test_peers_backend_answers_nghttp_get),
		PEERS_TEST(test_peers_backend_answers_nghttp_head_without_data),
		PEERS_TEST(test_peers_backend_serves_h2load_1000_requests),
		PEERS_TEST(test_peers_backend_echoes_nghttp_upload),
		PEERS_TEST(test_peers_curl_cli_gets_foo_through_router),
		PEERS_TEST(test_peers_curl_cli_posts_file_to_echo),
		PEERS_TEST(test_peers_curl_cli_sees_404_for_unknown_path),
	};
	int rc;

	/* Our sockets may be written after a peer has gone. */
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "curl_global_init failed\n");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
