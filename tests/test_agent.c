/*
 * test_agent.c -- bin/agent in front of web servers ptth did not write:
 * python3 -m http.server (a file tree, HEAD, Range, 304), nginx (static
 * files, a large file, return 204, gzip), a small Node.js app
 * (tests/agent/app.js: request bodies, streamed, stalled and broken
 * responses, trailers, 103, hop-by-hop fields) and a python3-websockets
 * echo server (tests/agent/ws_echo.py).
 *
 * Each test starts what it needs: a router in this process (harness),
 * the local server, and bin/agent from PTTH_BIN_DIR dialled to the
 * router's tunnel port with --to pointing at the local server; users are
 * libcurl or raw sockets on the router's HTTP port. Every port is
 * ephemeral: python and node bind port 0 and print the port; nginx is
 * handed a socket this process bound (the NGINX variable, its way of
 * inheriting listening sockets), so no port is guessed.
 *
 * Many checks compare the answer through router and agent with the
 * answer the same server gives directly: status, body and the fields
 * that must survive the trip. The teardown, which cmocka runs even after
 * a failed assertion, ends every child (SIGTERM, then SIGKILL) and reaps
 * it, and stops the router; bin/agent must exit 0 on its SIGTERM, so a
 * sanitizer's report in it fails the test. Missing programs fail the test and name
 * their package: make test installs them. Sizes shrink under sanitizers.
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <curl/curl.h>

#include "support/harness.h"

extern char **environ;

#define MIB (1024 * 1024)
#define MAX_CHILDREN 8
#define START_TIMEOUT_MS 20000     /* a child printing its port */
#define TERM_TIMEOUT_MS 5000       /* SIGTERM to SIGKILL */
#define KEEP_BODY 65536            /* body bytes a fetch keeps for checks */
#define CONCURRENT 100
#define RSS_LIMIT_KIB (64 * 1024)

/* One child process. */
struct child {
	char name[32];
	pid_t pid;               /* 0 once reaped */
	int pidfd;               /* readable once it has exited */
	int out_fd;              /* read end of its stdout, or -1 */
	char out[4096];          /* what was read from out_fd */
	size_t out_len;
	char err_path[PATH_MAX]; /* its stderr */
};

/* Everything one test starts; the teardown undoes whatever is set. */
struct fixture {
	char dir[256];           /* temporary directory, removed at teardown */
	struct harness_router hr;
	struct child children[MAX_CHILDREN];
	int nchildren;
	struct child *agent;
	int app_port, python_port, nginx_port;
};

/* ---------------------------------------------------------------------
 * Files and programs.
 */

static void
write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");

	if (fp == NULL)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	if (fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
		fail_msg("cannot write %s", path);
}

/* Reads a whole (small) file into buf, NUL-terminated. Returns its length. */
static size_t
read_file(const char *path, char *buf, size_t cap)
{
	FILE *fp = fopen(path, "rb");
	size_t n = 0;

	if (fp != NULL) {
		n = fread(buf, 1, cap - 1, fp);
		fclose(fp);
	}
	buf[n] = '\0';
	return n;
}

/* Implements nftw's callback. We use it to remove the test directory. */
static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Finds name on PATH or in the sbin directories (nginx is in
 * /usr/sbin), or fails naming the Debian package that brings it. */
static void
program_find(const char *name, const char *package, char *path, size_t len)
{
	const char *env = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof dirs, "/usr/bin:%s:/usr/sbin:/sbin", env ? env : "/bin");
	for (char *save, *dir = strtok_r(dirs, ":", &save); dir != NULL;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(path, len, "%s/%s", dir, name);
		if (access(path, X_OK) == 0)
			return;
	}
	fail_msg("%s is not installed: this suite needs the Debian package %s, which "
	         "make test installs", name, package);
}

/* ---------------------------------------------------------------------
 * Children: fork and exec, so that each dies with this process
 * (PR_SET_PDEATHSIG) even when a test crashes.
 */

/* Starts path with argv and envp: stdin from /dev/null, stdout into a
 * pipe when pipe_out (else /dev/null), stderr into DIR/NAME.err, and
 * pass_fd, when not -1, as its fd 3. Returns the child. */
static struct child *
child_start(struct fixture *f, const char *path, char *const argv[], char *const envp[],
            int pass_fd, bool pipe_out)
{
	struct child *c = &f->children[f->nchildren];
	int out[2] = { -1, -1 }, null_fd, err_fd;
	pid_t parent = getpid();
	char err[sizeof c->err_path];

	assert_true(f->nchildren < MAX_CHILDREN);
	memset(c, 0, sizeof *c);
	c->out_fd = c->pidfd = -1;
	snprintf(c->name, sizeof c->name, "%s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
	snprintf(err, sizeof err, "%s/%d-%s.err", f->dir, f->nchildren, c->name);
	memcpy(c->err_path, err, sizeof err);
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	err_fd = open(c->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(null_fd >= 0 && err_fd >= 0);
	if (pipe_out)
		assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		dup2(null_fd, 0);
		dup2(pipe_out ? out[1] : null_fd, 1);
		dup2(err_fd, 2);
		if (pass_fd >= 0 && dup2(pass_fd, 3) < 0)
			_exit(127);
		close_range(pass_fd >= 0 ? 4 : 3, ~0U, 0);
		signal(SIGPIPE, SIG_DFL);
		execve(path, argv, envp);
		_exit(127);
	}
	close(null_fd);
	close(err_fd);
	if (pipe_out) {
		close(out[1]);
		c->out_fd = out[0];
	}
	c->pidfd = pidfd_open(c->pid, 0);
	assert_true(c->pidfd >= 0);
	f->nchildren++;
	return c;
}

/* Waits up to timeout_ms for c to exit and reaps it. Returns true once
 * it has exited. */
static bool
child_wait(struct child *c, int timeout_ms, int *status)
{
	struct pollfd pfd = { .fd = c->pidfd, .events = POLLIN };
	int st = 0;

	if (c->pid == 0)
		return true;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return false;
	while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
		;
	if (status != NULL)
		*status = st;
	c->pid = 0;
	close(c->pidfd);
	c->pidfd = -1;
	return true;
}

/* Ends c if it still runs (SIGTERM, then SIGKILL) and closes its pipe. */
static void
child_end(struct child *c)
{
	if (c->pid != 0) {
		kill(c->pid, SIGTERM);
		if (!child_wait(c, TERM_TIMEOUT_MS, NULL)) {
			kill(c->pid, SIGKILL);
			child_wait(c, -1, NULL);
		}
	}
	if (c->out_fd >= 0)
		close(c->out_fd);
	c->out_fd = -1;
}

/* Prints c's stderr, to explain a failure. */
static void
child_report(struct child *c)
{
	char err[8192];

	read_file(c->err_path, err, sizeof err);
	fprintf(stderr, "---- %s stderr ----\n%s\n", c->name, err);
}

/* Reads c's stdout until it holds word followed by a number, and
 * returns the number (a port). Fails when c exits first or stays
 * silent for START_TIMEOUT_MS. */
static int
child_read_port(struct child *c, const char *word)
{
	long long deadline = harness_now_ms() + START_TIMEOUT_MS;
	const char *at;

	while ((at = strstr(c->out, word)) == NULL ||
	       strpbrk(at + strlen(word), " \n)") == NULL) {
		struct pollfd pfd = { .fd = c->out_fd, .events = POLLIN };
		long long left = deadline - harness_now_ms();
		ssize_t n = -1;

		if (left > 0 && poll(&pfd, 1, (int)left) > 0)
			n = read(c->out_fd, c->out + c->out_len, sizeof c->out - 1 - c->out_len);
		if (n <= 0) {
			child_report(c);
			fail_msg("%s did not print \"%s PORT\"", c->name, word);
		}
		c->out_len += (size_t)n;
		c->out[c->out_len] = '\0';
	}
	return atoi(at + strlen(word));
}

/* ---------------------------------------------------------------------
 * The fixture and the programs under test.
 */

static int
fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof f->dir, "%s/ptth-agent.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	/* Readable by all, for nginx's workers when they are not root. */
	if (mkdtemp(f->dir) == NULL || chmod(f->dir, 0755) < 0 ||
	    harness_router_start(&f->hr) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

/* Ends the agent first, and checks that a SIGTERM makes it exit 0: under
 * a sanitizer, a leak or an error in bin/agent shows up here. Returns
 * false (after printing its log) when it did not. */
static bool
agent_end(struct child *agent)
{
	int status = 0;

	if (agent == NULL || agent->pid == 0)
		return true;
	kill(agent->pid, SIGTERM);
	if (child_wait(agent, HARNESS_TIMEOUT_MS, &status) && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		return true;
	child_end(agent);
	child_report(agent);
	fprintf(stderr, "bin/agent did not exit 0 on SIGTERM (wait status 0x%x)\n",
	        (unsigned)status);
	return false;
}

static int
fixture_teardown(void **state)
{
	struct fixture *f = *state;
	bool clean = agent_end(f->agent);

	for (int i = f->nchildren - 1; i >= 0; i--)
		child_end(&f->children[i]);
	harness_router_free(&f->hr);
	nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return clean ? 0 : -1;
}

/* Starts bin/agent dialled to the router, forwarding to 127.0.0.1:port,
 * with extra flags (NULL-terminated, may be NULL). */
static void
agent_spawn(struct fixture *f, int port, const char *const extra[])
{
	const char *dir = getenv("PTTH_BIN_DIR");
	char path[PATH_MAX], router[64], to[64];
	char *argv[16] = { path, "--router", router, "--to", to };
	int argc = 5;

	snprintf(path, sizeof path, "%s/agent", dir && dir[0] ? dir : "bin");
	snprintf(router, sizeof router, "127.0.0.1:%d", f->hr.tunnel_port);
	snprintf(to, sizeof to, "127.0.0.1:%d", port);
	for (int i = 0; extra != NULL && extra[i] != NULL; i++)
		argv[argc++] = (char *)extra[i];
	argv[argc] = NULL;
	assert_true(access(path, X_OK) == 0);
	f->agent = child_start(f, path, argv, environ, -1, false);
}

/* The same, and waits for its (raw) tunnel. */
static void
agent_start(struct fixture *f, int port, const char *const extra[])
{
	agent_spawn(f, port, extra);
	if (ptth_router_wait_tunnels(f->hr.router, 1, HARNESS_TIMEOUT_MS) < 0) {
		child_report(f->agent);
		fail_msg("bin/agent never opened a tunnel");
	}
}

/* Starts tests/agent/app.js; returns its port. */
static int
app_start(struct fixture *f)
{
	char node[PATH_MAX];
	char *argv[] = { node, "tests/agent/app.js", NULL };

	program_find("node", "nodejs", node, sizeof node);
	f->app_port = child_read_port(child_start(f, node, argv, environ, -1, true), "listening ");
	return f->app_port;
}

/* Starts python3 -m http.server on f->dir/www; returns its port. */
static int
python_start(struct fixture *f)
{
	char python[PATH_MAX], www[PATH_MAX + 8];
	char *argv[] = { python, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
	                 "--directory", www, NULL };

	program_find("python3", "python3", python, sizeof python);
	snprintf(www, sizeof www, "%s/www", f->dir);
	f->python_port = child_read_port(child_start(f, python, argv, environ, -1, true), " port ");
	return f->python_port;
}

/* Binds a listening socket on 127.0.0.1:0. Returns it; *port is set. */
static int
listen_any(int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(fd, 256), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Starts nginx (master and one worker, in the foreground) serving
 * f->dir/www: static files, gzip for text, `location = /empty { return
 * 204; }`, and X-Connection naming the connection each request came on.
 * Returns its port. */
static int
nginx_start(struct fixture *f)
{
	char nginx[PATH_MAX], conf[PATH_MAX + 16], text[4096];
	char *argv[] = { nginx, "-p", f->dir, "-e", "stderr", "-c", conf, NULL };
	char *envp[] = { "NGINX=3;", NULL };  /* inherit fd 3 as a listening socket */
	int port, fd = listen_any(&port);

	program_find("nginx", "nginx", nginx, sizeof nginx);
	snprintf(conf, sizeof conf, "%s/nginx.conf", f->dir);
	/* As root, nginx's workers would run as nobody, who may not reach a
	 * TMPDIR under /root: keep them root. */
	snprintf(text, sizeof text,
	         "%sdaemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log stderr;\n"
	         "events { worker_connections 512; }\n"
	         "http {\n  access_log off;\n  types { text/plain txt; text/html html; }\n"
	         "  client_body_temp_path %s/tmp;\n  proxy_temp_path %s/tmp;\n"
	         "  fastcgi_temp_path %s/tmp;\n  uwsgi_temp_path %s/tmp;\n"
	         "  scgi_temp_path %s/tmp;\n"
	         "  server {\n    listen 127.0.0.1:%d;\n    root %s/www;\n"
	         "    gzip on;\n    gzip_min_length 1;\n    gzip_types text/plain;\n"
	         "    add_header X-Connection $connection;\n"
	         "    location = /empty { return 204; }\n  }\n}\n",
	         geteuid() == 0 ? "user root root;\n" : "", f->dir, f->dir, f->dir, f->dir,
	         f->dir, f->dir, port, f->dir);
	write_file(conf, text, strlen(text));
	child_start(f, nginx, argv, envp, fd, false);
	close(fd); /* nginx holds it now; connections wait in its backlog */
	f->nginx_port = port;
	return port;
}

/* Fills DIR/www with a small tree: index.html, a.txt (text, 3000 bytes),
 * sub/b.bin (binary, 70000 bytes) and, when big is not 0, big.bin (big
 * bytes, sparse, with a marker every MiB). */
static void
www_fill(struct fixture *f, uint64_t big)
{
	char path[PATH_MAX + 32], text[3000];
	unsigned char bin[70000];

	snprintf(path, sizeof path, "%s/www", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/www/sub", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof path, "%s/www/index.html", f->dir);
	write_file(path, "<h1>it works</h1>\n", 18);
	for (size_t i = 0; i < sizeof text; i++)
		text[i] = (char)(i % 64 == 63 ? '\n' : 'a' + i % 26);
	snprintf(path, sizeof path, "%s/www/a.txt", f->dir);
	write_file(path, text, sizeof text);
	for (size_t i = 0; i < sizeof bin; i++)
		bin[i] = (unsigned char)(i * 7 + (i >> 8));
	snprintf(path, sizeof path, "%s/www/sub/b.bin", f->dir);
	write_file(path, bin, sizeof bin);
	if (big == 0)
		return;
	snprintf(path, sizeof path, "%s/www/big.bin", f->dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)big), 0);
	for (uint64_t at = 0; at < big; at += MIB)
		assert_int_equal(pwrite(fd, &at, sizeof at, (off_t)at), (ssize_t)sizeof at);
	close(fd);
}

/* ---------------------------------------------------------------------
 * Users: one libcurl transfer, with its head, a checksum of its body and
 * the first KEEP_BODY bytes kept.
 */
struct fetch {
	/* in: */
	const char *method;           /* NULL: GET, or POST with a body */
	const char *headers[8];       /* "Name: value", NULL-terminated */
	uint64_t upload;              /* body bytes to send (pattern), or 0 */
	bool chunked;                 /* send them chunked, not sized */
	pid_t watch_pid;              /* sample this process's VmHWM too, or 0 */
	/* out: */
	CURLcode rc;
	long status;
	char head[16384];             /* the last head, then any trailers */
	size_t head_len;
	char body[KEEP_BODY];
	size_t body_len;
	uint64_t total;               /* body bytes received */
	uint32_t hash;                /* FNV-1a over every body byte */
	uint64_t sent;
	long max_rss_kib;             /* the highest RSS seen in this process */
};

/* Implements CURLOPT_HEADERFUNCTION: keeps the last head (a new status
 * line starts over) and the trailers after it. */
static size_t
fetch_header_callback(char *data, size_t size, size_t nitems, void *arg)
{
	struct fetch *fx = arg;
	size_t len = size * nitems;

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
		fx->head_len = 0;
	if (fx->head_len + len < sizeof fx->head) {
		memcpy(fx->head + fx->head_len, data, len);
		fx->head_len += len;
		fx->head[fx->head_len] = '\0';
	}
	return len;
}

/* Implements CURLOPT_WRITEFUNCTION: hashes, keeps the start, and
 * samples this process's RSS every 4 MiB. */
static size_t
fetch_write_callback(char *data, size_t size, size_t nitems, void *arg)
{
	struct fetch *fx = arg;
	size_t len = size * nitems;
	long rss;

	for (size_t i = 0; i < len; i++)
		fx->hash = (fx->hash ^ (unsigned char)data[i]) * 16777619u;
	if (fx->body_len < sizeof fx->body - 1) {
		size_t n = len < sizeof fx->body - 1 - fx->body_len ? len
		                                                    : sizeof fx->body - 1 - fx->body_len;
		memcpy(fx->body + fx->body_len, data, n);
		fx->body_len += n;
		fx->body[fx->body_len] = '\0';
	}
	if (fx->total / (4 * MIB) != (fx->total + len) / (4 * MIB) &&
	    harness_memory(&rss, NULL) == 0 && rss > fx->max_rss_kib)
		fx->max_rss_kib = rss;
	fx->total += len;
	return len;
}

/* Implements CURLOPT_READFUNCTION: the upload, byte i = 'a' + i % 26. */
static size_t
fetch_read_callback(char *buf, size_t size, size_t nitems, void *arg)
{
	struct fetch *fx = arg;
	size_t len = size * nitems;

	if (len > fx->upload - fx->sent)
		len = (size_t)(fx->upload - fx->sent);
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + (fx->sent + i) % 26);
	fx->sent += len;
	return len;
}

/* Runs one transfer of url as fx says; fills fx's outputs. */
static void
fetch_run(struct fetch *fx, const char *url)
{
	CURL *c = curl_easy_init();
	struct curl_slist *list = NULL;

	assert_non_null(c);
	fx->hash = 2166136261u;
	harness_memory(&fx->max_rss_kib, NULL);
	for (int i = 0; fx->headers[i] != NULL; i++)
		list = curl_slist_append(list, fx->headers[i]);
	list = curl_slist_append(list, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)HARNESS_TIMEOUT_MS * 4);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, fetch_header_callback);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, fx);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write_callback);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, fx);
	if (fx->method != NULL && strcmp(fx->method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (fx->method != NULL)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, fx->method);
	if (fx->upload > 0 || (fx->method != NULL && strcmp(fx->method, "POST") == 0)) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, fetch_read_callback);
		curl_easy_setopt(c, CURLOPT_READDATA, fx);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		                 fx->chunked ? (curl_off_t)-1 : (curl_off_t)fx->upload);
	}
	fx->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &fx->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(list);
}

/* Fetches path through the router. */
static void
fetch_routed(struct fixture *f, struct fetch *fx, const char *path)
{
	char url[1024];

	harness_url(&f->hr, path, url, sizeof url);
	fetch_run(fx, url);
}

/* Fetches path straight from the local server on port. */
static void
fetch_direct(struct fetch *fx, int port, const char *path)
{
	char url[1024];

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
	fetch_run(fx, url);
}

/* Copies the value of the field name in fx's head (or trailers) into
 * buf. Returns false when there is no such field. */
static bool
fetch_field(const struct fetch *fx, const char *name, char *buf, size_t size)
{
	size_t len = strlen(name);

	for (const char *line = fx->head; line != NULL && *line != '\0';
	     line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		if (strncasecmp(line, name, len) != 0 || line[len] != ':')
			continue;
		const char *v = line + len + 1 + strspn(line + len + 1, " ");
		size_t vlen = strcspn(v, "\r\n");
		snprintf(buf, size, "%.*s", (int)(vlen < size ? vlen : size - 1), v);
		return true;
	}
	return false;
}

/* Asserts that path answers the same through the router as straight
 * from the server on port: status, every body byte, and the fields
 * that must cross unchanged. The same request fields go both ways. */
static void
expect_same_as_direct(struct fixture *f, int port, const char *method, const char *path,
                      const char *header)
{
	static const char *const fields[] = {
		"content-type", "content-length", "content-range", "content-encoding",
		"last-modified", "etag", "location", "server", "accept-ranges", NULL,
	};
	struct fetch *direct = calloc(1, sizeof *direct), *routed = calloc(1, sizeof *routed);
	char a[512], b[512];

	assert_non_null(direct);
	assert_non_null(routed);
	direct->method = routed->method = method;
	direct->headers[0] = routed->headers[0] = header;
	fetch_direct(direct, port, path);
	fetch_routed(f, routed, path);
	assert_int_equal(direct->rc, CURLE_OK);
	if (routed->rc != CURLE_OK || routed->status != direct->status)
		child_report(f->agent);
	assert_int_equal(routed->rc, CURLE_OK);
	assert_int_equal(routed->status, direct->status);
	assert_true(routed->total == direct->total);
	assert_int_equal(routed->hash, direct->hash);
	for (int i = 0; fields[i] != NULL; i++) {
		bool in_direct = fetch_field(direct, fields[i], a, sizeof a);
		bool in_routed = fetch_field(routed, fields[i], b, sizeof b);
		if (in_direct != in_routed || (in_direct && strcmp(a, b) != 0))
			fail_msg("%s %s: %s is \"%s\" directly, \"%s\" through the agent", path,
			         header ? header : "", fields[i], in_direct ? a : "(none)",
			         in_routed ? b : "(none)");
	}
	free(direct);
	free(routed);
}

/* The VmHWM of process pid, in KiB, or -1. */
static long
process_hwm_kib(pid_t pid)
{
	char path[64], text[4096];
	const char *at;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	read_file(path, text, sizeof text);
	at = strstr(text, "VmHWM:");
	return at ? atol(at + 6) : -1;
}

/* How many lines of the agent's log contain needle. */
static int
agent_log_count(struct fixture *f, const char *needle)
{
	char log[65536];
	int n = 0;

	read_file(f->agent->err_path, log, sizeof log);
	for (const char *p = log; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* Reads from fd, appending to buf (len so far in *len), until needle
 * appears. Fails after the socket's own timeout or a close. */
static void
recv_until(int fd, char *buf, size_t cap, size_t *len, const char *needle)
{
	while (strstr(buf, needle) == NULL) {
		ssize_t n = recv(fd, buf + *len, cap - 1 - *len, 0);
		if (n <= 0)
			fail_msg("no \"%s\" before the connection ended; got:\n%s", needle, buf);
		*len += (size_t)n;
		buf[*len] = '\0';
	}
}

/* Sends a raw request to the router and returns everything until the
 * router closes (the request should say Connection: close). */
static void
raw_exchange(struct fixture *f, const char *request, char *buf, size_t cap)
{
	int fd = harness_dial(f->hr.http_port);

	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, request, strlen(request)), 0);
	assert_true(harness_recv_until_close(fd, buf, cap) >= 0);
	close(fd);
}

/* FNV-1a of the body pattern 'a' + i % 26, as app.js's /bytes sends it. */
static uint32_t
pattern_hash(uint64_t n)
{
	uint32_t h = 2166136261u;

	for (uint64_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)('a' + i % 26)) * 16777619u;
	return h;
}

/* Adler-32 of the same pattern, as app.js's /count reports it. */
static uint32_t
pattern_adler32(uint64_t n)
{
	uint32_t a = 1, b = 0;

	for (uint64_t i = 0; i < n; i++) {
		a = (a + (uint32_t)('a' + i % 26)) % 65521;
		b = (b + a) % 65521;
	}
	return (b << 16) | a;
}

/* FNV-1a of a whole file. */
static uint32_t
file_hash(const char *path)
{
	static unsigned char buf[1 << 16];
	uint32_t h = 2166136261u;
	FILE *fp = fopen(path, "rb");
	size_t n;

	assert_non_null(fp);
	while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
		for (size_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 16777619u;
	fclose(fp);
	return h;
}

/* Asserts that the agent and this process (the router) stayed under
 * RSS_LIMIT_KIB while moving bytes. Sanitizers use far more memory on
 * their own, so only plain builds are held to it. */
static void
expect_memory_bounded(struct fixture *f, struct fetch *fx, long before_kib, uint64_t bytes)
{
	long agent_hwm = process_hwm_kib(f->agent->pid), hwm = 0;

	if (harness_memory(NULL, &hwm) == 0 && hwm > fx->max_rss_kib)
		fx->max_rss_kib = hwm;
	print_message("%llu MiB: agent VmHWM %ld KiB; router process RSS %ld KiB before, "
	              "peak %ld KiB\n", (unsigned long long)(bytes / MIB), agent_hwm,
	              before_kib, fx->max_rss_kib);
	assert_true(agent_hwm > 0);
	if (harness_sanitized())
		return;
	assert_true(agent_hwm < RSS_LIMIT_KIB);
	assert_true(fx->max_rss_kib - before_kib < RSS_LIMIT_KIB);
}

/* ---------------------------------------------------------------------
 * python3 -m http.server: a file tree, HEAD, Range, 304.
 */

static void
test_agent_python_file_tree_matches_direct(void **state)
{
	struct fixture *f = *state;
	static const char *const paths[] = {
		"/", "/index.html", "/a.txt", "/sub/", "/sub", "/sub/b.bin", "/missing", NULL,
	};
	static const char *const quiet[] = { "--quiet", NULL };

	www_fill(f, 0);
	agent_start(f, python_start(f), quiet);
	for (int i = 0; paths[i] != NULL; i++)
		expect_same_as_direct(f, f->python_port, NULL, paths[i], NULL);
}

static void
test_agent_python_head_range_and_304_match_direct(void **state)
{
	struct fixture *f = *state;
	static const char *const quiet[] = { "--quiet", NULL };
	struct fetch fx = { 0 };
	char since[128], header[160];

	www_fill(f, 0);
	agent_start(f, python_start(f), quiet);
	expect_same_as_direct(f, f->python_port, "HEAD", "/a.txt", NULL);
	expect_same_as_direct(f, f->python_port, "HEAD", "/sub/b.bin", NULL);
	/* http.server ignores Range: what matters is that the answer is its. */
	expect_same_as_direct(f, f->python_port, NULL, "/sub/b.bin", "Range: bytes=10-99");
	fetch_direct(&fx, f->python_port, "/a.txt");
	assert_true(fetch_field(&fx, "last-modified", since, sizeof since));
	snprintf(header, sizeof header, "If-Modified-Since: %s", since);
	expect_same_as_direct(f, f->python_port, NULL, "/a.txt", header);
	memset(&fx, 0, sizeof fx);
	fx.headers[0] = header;
	fetch_routed(f, &fx, "/a.txt");
	assert_int_equal(fx.status, 304);
	assert_true(fx.total == 0);
}

/* ---------------------------------------------------------------------
 * nginx: static files, Range, 304, 204, gzip, keep-alive, a large file.
 */

static void
test_agent_nginx_static_files_match_direct(void **state)
{
	struct fixture *f = *state;
	static const char *const quiet[] = { "--quiet", NULL };
	struct fetch fx = { 0 };
	char etag[128], header[160];

	www_fill(f, 0);
	agent_start(f, nginx_start(f), quiet);
	expect_same_as_direct(f, f->nginx_port, NULL, "/index.html", NULL);
	expect_same_as_direct(f, f->nginx_port, NULL, "/sub/b.bin", NULL);
	expect_same_as_direct(f, f->nginx_port, NULL, "/missing", NULL);
	expect_same_as_direct(f, f->nginx_port, "HEAD", "/sub/b.bin", NULL);
	expect_same_as_direct(f, f->nginx_port, NULL, "/sub/b.bin", "Range: bytes=100-199");
	expect_same_as_direct(f, f->nginx_port, NULL, "/sub/b.bin", "Range: bytes=-50");
	fetch_direct(&fx, f->nginx_port, "/sub/b.bin");
	assert_true(fetch_field(&fx, "etag", etag, sizeof etag));
	snprintf(header, sizeof header, "If-None-Match: %s", etag);
	expect_same_as_direct(f, f->nginx_port, NULL, "/sub/b.bin", header);
	memset(&fx, 0, sizeof fx);
	fx.headers[0] = "Range: bytes=100-199";
	fetch_routed(f, &fx, "/sub/b.bin");
	assert_int_equal(fx.status, 206);
	assert_true(fx.total == 100);
}

static void
test_agent_nginx_return_204_has_no_body(void **state)
{
	struct fixture *f = *state;
	struct fetch fx = { 0 };

	www_fill(f, 0);
	agent_start(f, nginx_start(f), NULL);
	fetch_routed(f, &fx, "/empty");
	assert_int_equal(fx.rc, CURLE_OK);
	assert_int_equal(fx.status, 204);
	assert_true(fx.total == 0);
	expect_same_as_direct(f, f->nginx_port, NULL, "/empty", NULL);
}

static void
test_agent_nginx_gzip_passes_through_untouched(void **state)
{
	struct fixture *f = *state;
	struct fetch fx = { 0 };
	char encoding[64];

	www_fill(f, 0);
	agent_start(f, nginx_start(f), NULL);
	expect_same_as_direct(f, f->nginx_port, NULL, "/a.txt", "Accept-Encoding: gzip");
	fx.headers[0] = "Accept-Encoding: gzip";
	fetch_routed(f, &fx, "/a.txt");
	assert_int_equal(fx.status, 200);
	assert_true(fetch_field(&fx, "content-encoding", encoding, sizeof encoding));
	assert_string_equal(encoding, "gzip");
	assert_true(fx.total > 2 && fx.total < 3000);
	assert_int_equal((unsigned char)fx.body[0], 0x1f); /* the gzip magic, as nginx sent it */
	assert_int_equal((unsigned char)fx.body[1], 0x8b);
}

/* A user may send its next request as soon as the last body byte of the
 * previous one arrives, a moment before the agent's handler puts its
 * connection back in the pool: that request opens another connection.
 * So the checks below ask that most requests reuse one, not all. */
#define KEEPALIVE_REQUESTS 10

static void
test_agent_nginx_connection_is_kept_alive(void **state)
{
	struct fixture *f = *state;
	char seen[KEEPALIVE_REQUESTS][32];
	int distinct = 0;

	www_fill(f, 0);
	agent_start(f, nginx_start(f), NULL);
	for (int i = 0; i < KEEPALIVE_REQUESTS; i++) {
		struct fetch fx = { 0 };
		char conn[32];
		bool known = false;
		fetch_routed(f, &fx, "/a.txt");
		assert_int_equal(fx.status, 200);
		assert_true(fetch_field(&fx, "x-connection", conn, sizeof conn));
		for (int j = 0; j < distinct; j++)
			known |= strcmp(seen[j], conn) == 0;
		if (!known)
			snprintf(seen[distinct++], sizeof seen[0], "%s", conn);
	}
	print_message("%d requests came to nginx on %d connections\n", KEEPALIVE_REQUESTS,
	              distinct);
	assert_true(distinct <= KEEPALIVE_REQUESTS / 2);
}

static void
test_agent_nginx_large_file_streams_in_bounded_memory(void **state)
{
	struct fixture *f = *state;
	const uint64_t n = (harness_sanitized() ? 16ull : 256ull) * MIB;
	static const char *const quiet[] = { "--quiet", NULL };
	struct fetch *fx = calloc(1, sizeof *fx);
	char path[PATH_MAX + 16];
	long before;

	assert_non_null(fx);
	www_fill(f, n);
	agent_start(f, nginx_start(f), quiet);
	harness_memory_reset_peak();
	assert_int_equal(harness_memory(&before, NULL), 0);
	fetch_routed(f, fx, "/big.bin");
	assert_int_equal(fx->rc, CURLE_OK);
	assert_int_equal(fx->status, 200);
	assert_true(fx->total == n);
	snprintf(path, sizeof path, "%s/www/big.bin", f->dir);
	assert_int_equal(fx->hash, file_hash(path));
	expect_memory_bounded(f, fx, before, n);
	free(fx);
}

/* ---------------------------------------------------------------------
 * A Node.js app: bodies both ways, streaming, fields, trailers, 1xx.
 */

/* Uploads n pattern bytes to /count and checks what the app received. */
static void
expect_upload_counted(struct fixture *f, struct fetch *fx, uint64_t n, bool chunked)
{
	char want[160];

	fx->upload = n;
	fx->chunked = chunked;
	fetch_routed(f, fx, "/count");
	assert_int_equal(fx->rc, CURLE_OK);
	assert_int_equal(fx->status, 200);
	snprintf(want, sizeof want, "{\"bytes\":%llu,\"adler32\":%u,", (unsigned long long)n,
	         pattern_adler32(n));
	if (strncmp(fx->body, want, strlen(want)) != 0)
		fail_msg("the app counted %s, not %s...", fx->body, want);
	if (chunked)
		assert_non_null(strstr(fx->body, "\"length\":null,\"chunked\":true"));
	else
		snprintf(want, sizeof want, "\"length\":\"%llu\",\"chunked\":false",
		         (unsigned long long)n);
	assert_true(chunked || strstr(fx->body, want) != NULL);
	assert_non_null(strstr(fx->body, "\"expect\":null")); /* no Expect of libcurl's */
}

static void
test_agent_post_body_with_content_length_arrives_whole(void **state)
{
	struct fixture *f = *state;
	struct fetch fx = { 0 };

	agent_start(f, app_start(f), NULL);
	expect_upload_counted(f, &fx, MIB + 17, false);
}

static void
test_agent_chunked_post_body_is_sent_chunked(void **state)
{
	struct fixture *f = *state;
	struct fetch fx = { 0 };

	agent_start(f, app_start(f), NULL);
	expect_upload_counted(f, &fx, 300001, true);
}

static void
test_agent_large_upload_streams_in_bounded_memory(void **state)
{
	struct fixture *f = *state;
	const uint64_t n = (harness_sanitized() ? 16ull : 256ull) * MIB;
	static const char *const quiet[] = { "--quiet", NULL };
	struct fetch *fx = calloc(1, sizeof *fx);
	long before;

	assert_non_null(fx);
	agent_start(f, app_start(f), quiet);
	harness_memory_reset_peak();
	assert_int_equal(harness_memory(&before, NULL), 0);
	expect_upload_counted(f, fx, n, true);
	expect_memory_bounded(f, fx, before, n);
	free(fx);
}

static void
test_agent_streamed_download_arrives_byte_for_byte(void **state)
{
	struct fixture *f = *state;
	const uint64_t n = (harness_sanitized() ? 4ull : 32ull) * MIB + 5;
	struct fetch fx = { 0 };
	char path[64];

	agent_start(f, app_start(f), NULL);
	snprintf(path, sizeof path, "/bytes?n=%llu", (unsigned long long)n);
	fetch_routed(f, &fx, path);
	assert_int_equal(fx.rc, CURLE_OK);
	assert_int_equal(fx.status, 200);
	assert_true(fx.total == n);
	assert_int_equal(fx.hash, pattern_hash(n));
}

static void
test_agent_response_streams_before_the_app_ends_it(void **state)
{
	struct fixture *f = *state;
	const char *request = "GET /hold HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";
	char buf[4096] = "", url[128];
	size_t len = 0;
	long status = 0;
	int fd;

	agent_start(f, app_start(f), NULL);
	fd = harness_dial(f->hr.http_port);
	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, request, strlen(request)), 0);
	/* The app holds the rest back until /release: "first" must get here
	 * on its own, through router and agent. */
	recv_until(fd, buf, sizeof buf, &len, "first\n");
	assert_null(strstr(buf, "second"));
	snprintf(url, sizeof url, "http://127.0.0.1:%d/release", f->app_port);
	assert_int_equal(http_get(url, &status, NULL, 0, NULL), CURLE_OK);
	recv_until(fd, buf, sizeof buf, &len, "second\n");
	recv_until(fd, buf, sizeof buf, &len, "\r\n0\r\n\r\n");
	close(fd);
}

static void
test_agent_response_head_is_sent_before_any_body_byte(void **state)
{
	struct fixture *f = *state;
	const char *request = "GET /head-first HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";
	char buf[4096] = "", url[128];
	size_t len = 0;
	long status = 0;
	int fd;

	agent_start(f, app_start(f), NULL);
	fd = harness_dial(f->hr.http_port);
	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, request, strlen(request)), 0);
	/* An event stream starts this way: a head, then a wait. */
	recv_until(fd, buf, sizeof buf, &len, "\r\n\r\n");
	assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/release", f->app_port);
	assert_int_equal(http_get(url, &status, NULL, 0, NULL), CURLE_OK);
	recv_until(fd, buf, sizeof buf, &len, "second\n\r\n0\r\n\r\n");
	close(fd);
}

static void
test_agent_request_fields_reach_the_app_as_the_router_sent_them(void **state)
{
	struct fixture *f = *state;
	const char *request = "GET /headers?x=1 HTTP/1.1\r\nHost: example.test\r\n"
	                      "Connection: close, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n"
	                      "Cookie: a=1\r\nX-Empty:\r\nUser-Agent: raw\r\n\r\n";
	char buf[8192];

	agent_start(f, app_start(f), NULL);
	raw_exchange(f, request, buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 200 "));
	assert_non_null(strstr(buf, "\"method\":\"GET\",\"url\":\"/headers?x=1\",\"version\":\"1.1\""));
	assert_non_null(strstr(buf, "[\"Host\",\"example.test\"]"));
	assert_non_null(strstr(buf, "[\"X-Keep\",\"2\"]"));
	assert_non_null(strstr(buf, "[\"Cookie\",\"a=1\"]"));
	assert_non_null(strstr(buf, "[\"X-Empty\",\"\"]"));
	assert_non_null(strstr(buf, "[\"User-Agent\",\"raw\"]"));
	assert_non_null(strstr(buf, "[\"X-Forwarded-For\",\"127.0.0.1\"]"));
	assert_non_null(strstr(buf, "[\"X-Forwarded-Host\",\"example.test\"]"));
	assert_non_null(strstr(buf, "[\"Forwarded\",\"for=127.0.0.1;host=\\\"example.test\\\";proto=http\"]"));
	assert_null(strstr(buf, "X-Hop"));
	assert_null(strstr(buf, "\"Accept\"")); /* the user sent none: neither does libcurl */
	assert_null(strstr(buf, "\"Expect\""));
	assert_null(strstr(buf, "\"Connection\",\"close"));
}

static void
test_agent_hop_by_hop_response_fields_are_dropped(void **state)
{
	struct fixture *f = *state;
	struct fetch fx = { 0 };
	char value[128];

	agent_start(f, app_start(f), NULL);
	fetch_routed(f, &fx, "/hop");
	assert_int_equal(fx.status, 200);
	assert_true(fetch_field(&fx, "x-public", value, sizeof value));
	assert_true(fetch_field(&fx, "date", value, sizeof value)); /* the app's own */
	assert_false(fetch_field(&fx, "x-private", value, sizeof value));
	assert_false(fetch_field(&fx, "keep-alive", value, sizeof value));
	assert_string_equal(fx.body, "hop\n");
}

static void
test_agent_trailers_reach_the_user(void **state)
{
	struct fixture *f = *state;
	const char *request = "GET /trailers HTTP/1.1\r\nHost: app\r\nTE: trailers\r\n"
	                      "Connection: close\r\n\r\n";
	char buf[4096];

	agent_start(f, app_start(f), NULL);
	raw_exchange(f, request, buf, sizeof buf);
	assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
	assert_non_null(strstr(buf, "\r\n5\r\nbody\n\r\n0\r\nx-checksum: 12345\r\n\r\n"));
}

static void
test_agent_interim_responses_are_not_forwarded(void **state)
{
	struct fixture *f = *state;
	const char *request = "GET /early-hints HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";
	char buf[4096];

	agent_start(f, app_start(f), NULL);
	raw_exchange(f, request, buf, sizeof buf);
	assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_null(strstr(buf, "103"));
	assert_non_null(strstr(buf, "hinted\n"));
}

static void
test_agent_expect_100_continue_is_answered_once(void **state)
{
	struct fixture *f = *state;
	const char *head = "POST /count HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n"
	                   "Expect: 100-continue\r\nConnection: close\r\n\r\n";
	char buf[4096] = "";
	size_t len = 0;
	int fd;

	agent_start(f, app_start(f), NULL);
	fd = harness_dial(f->hr.http_port);
	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, head, strlen(head)), 0);
	recv_until(fd, buf, sizeof buf, &len, "HTTP/1.1 100 Continue\r\n\r\n");
	assert_int_equal(harness_send_all(fd, "hello", 5), 0);
	assert_true(harness_recv_until_close(fd, buf + len, sizeof buf - len) >= 0);
	close(fd);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_null(strstr(strstr(buf, "\r\n\r\n"), "100 Continue")); /* once */
	assert_non_null(strstr(buf, "{\"bytes\":5,"));
	assert_non_null(strstr(buf, "\"expect\":null"));
}

static void
test_agent_204_and_304_carry_no_body_and_errors_pass_as_they_are(void **state)
{
	struct fixture *f = *state;
	static const int codes[] = { 204, 304, 404, 500, 503 };

	agent_start(f, app_start(f), NULL);
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/status?code=%d", codes[i]);
		expect_same_as_direct(f, f->app_port, NULL, path, NULL);
	}
}

static void
test_agent_connections_to_the_app_are_reused(void **state)
{
	struct fixture *f = *state;
	struct fetch before = { 0 }, after = { 0 };
	int opened;

	agent_start(f, app_start(f), NULL);
	fetch_routed(f, &before, "/connections");
	for (int i = 0; i < KEEPALIVE_REQUESTS; i++) {
		struct fetch fx = { 0 };
		fetch_routed(f, &fx, "/hop");
		assert_int_equal(fx.status, 200);
	}
	fetch_routed(f, &after, "/connections");
	assert_int_equal(before.status, 200);
	opened = atoi(after.body) - atoi(before.body);
	print_message("%d requests opened %d connections to the app\n", KEEPALIVE_REQUESTS,
	              opened);
	assert_true(opened <= KEEPALIVE_REQUESTS / 2);
}

/* ---------------------------------------------------------------------
 * Failures: each answered as the contract says and logged once.
 */

static void
test_agent_local_server_down_gives_502_logged_once(void **state)
{
	struct fixture *f = *state;
	struct fetch fx = { 0 };
	int port, fd = listen_any(&port);

	close(fd); /* nothing listens on port now */
	agent_start(f, port, NULL);
	fetch_routed(f, &fx, "/anything");
	assert_int_equal(fx.rc, CURLE_OK);
	assert_int_equal(fx.status, 502);
	assert_non_null(strstr(fx.body, "502 Bad Gateway: local server 127.0.0.1:"));
	assert_non_null(strstr(fx.body, "refused the connection\n"));
	assert_int_equal(agent_log_count(f, "refused the connection"), 1);
}

static void
test_agent_stalled_local_server_gives_504_logged_once(void **state)
{
	struct fixture *f = *state;
	static const char *const timeout[] = { "--timeout-ms", "1000", NULL };
	struct fetch fx = { 0 };
	long long start;

	agent_start(f, app_start(f), timeout);
	start = harness_now_ms();
	fetch_routed(f, &fx, "/stall");
	assert_int_equal(fx.rc, CURLE_OK);
	assert_int_equal(fx.status, 504);
	assert_true(harness_now_ms() - start >= 1000);
	assert_non_null(strstr(fx.body, "504 Gateway Timeout: local server 127.0.0.1:"));
	assert_non_null(strstr(fx.body, "sent nothing for 1000 ms\n"));
	assert_int_equal(agent_log_count(f, "sent nothing for"), 1);
}

/* Asks the router for path, reads until have arrived, lets the app cut
 * its connection (GET /release), and returns what arrived until the
 * router closed the user's connection. */
static void
cut_exchange(struct fixture *f, const char *path, const char *have, char *buf, size_t cap)
{
	char request[256], url[128];
	size_t len = 0;
	long status = 0;
	int fd = harness_dial(f->hr.http_port);

	assert_true(fd >= 0);
	buf[0] = '\0';
	snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: app\r\n\r\n", path);
	assert_int_equal(harness_send_all(fd, request, strlen(request)), 0);
	recv_until(fd, buf, cap, &len, have);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/release", f->app_port);
	assert_int_equal(http_get(url, &status, NULL, 0, NULL), CURLE_OK);
	assert_true(harness_recv_until_close(fd, buf + len, cap - len) >= 0);
	close(fd);
}

static void
test_agent_local_server_closing_mid_body_cuts_the_body(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	const char *body;

	agent_start(f, app_start(f), NULL);
	cut_exchange(f, "/cut", "zabcdefghijklmnopqrstuv", buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "Content-Length: 1000\r\n"));
	body = strstr(buf, "\r\n\r\n");
	assert_non_null(body);
	assert_int_equal(strlen(body + 4), 100); /* of 1000, then the close */
	cut_exchange(f, "/cut-chunked", "two\n\r\n", buf, sizeof buf);
	assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
	assert_null(strstr(buf, "\r\n0\r\n")); /* no last chunk */
	assert_int_equal(agent_log_count(f, "body cut"), 2);
}

static void
test_agent_local_server_stalling_mid_body_cuts_the_body(void **state)
{
	struct fixture *f = *state;
	static const char *const timeout[] = { "--timeout-ms", "1000", NULL };
	struct fetch fx = { 0 };

	agent_start(f, app_start(f), timeout);
	fetch_routed(f, &fx, "/stall-body");
	assert_int_equal(fx.status, 200);
	assert_true(fx.rc != CURLE_OK);
	assert_string_equal(fx.body, "partial");
	assert_int_equal(agent_log_count(f, "silent for 1000 ms"), 1);
}

/* ---------------------------------------------------------------------
 * Tunnels: the PTTH handshake with a token. WebSockets, with
 * python3-websockets on both ends (tests/agent/ws_echo.py as the app,
 * tests/websocket/ws_client.py as the user).
 */

static void
test_agent_behind_the_handshake_serves_its_service_with_a_token(void **state)
{
	struct fixture *f = *state;
	struct ptth_router_options opts;
	char tokens[PATH_MAX], token[PATH_MAX], buf[8192];
	const char *extra[] = { "--service", "web", "--token-file", token, NULL };

	/* A router that takes handshakes with a known token only. */
	harness_router_free(&f->hr);
	snprintf(tokens, sizeof tokens, "%s/tokens", f->dir);
	snprintf(token, sizeof token, "%s/web.tok", f->dir);
	write_file(tokens, "web-token web\n", 14);
	write_file(token, "web-token\n", 10);
	ptth_router_options_init(&opts);
	opts.tunnel_tokens_file = tokens;
	assert_int_equal(harness_router_start_opts(&f->hr, &opts), 0);
	agent_spawn(f, app_start(f), extra);
	if (ptth_router_wait_service_tunnels(f->hr.router, "web", 1, HARNESS_TIMEOUT_MS) < 0) {
		child_report(f->agent);
		fail_msg("bin/agent never joined service web");
	}
	raw_exchange(f, "GET /headers HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
	             buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "[\"Host\",\"web\"]"));
	raw_exchange(f, "GET /headers HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
	             buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 503 ")); /* the default pool is empty */
}

/* Starts tests/agent/ws_echo.py (python3-websockets); returns its port. */
static int
ws_echo_start(struct fixture *f)
{
	char *argv[] = { "/usr/bin/python3", "tests/agent/ws_echo.py", NULL };

	return child_read_port(child_start(f, argv[0], argv, environ, -1, true), "listening ");
}

/* Runs tests/websocket/ws_client.py MODE ws://router/PATH [ARG] (python3-
 * websockets as the user) and asserts it printed "OK". */
static void
ws_client_run(struct fixture *f, const char *mode, const char *path, const char *arg)
{
	char url[256];
	char *argv[] = { "/usr/bin/python3", "tests/websocket/ws_client.py", (char *)mode, url,
	                 (char *)arg, NULL };
	struct child *c;
	int status = 0;

	snprintf(url, sizeof url, "ws://127.0.0.1:%d%s", f->hr.http_port, path);
	c = child_start(f, argv[0], argv, environ, -1, true);
	while (c->out_len < sizeof c->out - 1) {
		ssize_t n = read(c->out_fd, c->out + c->out_len, sizeof c->out - 1 - c->out_len);
		if (n <= 0)
			break;
		c->out_len += (size_t)n;
	}
	c->out[c->out_len] = '\0';
	assert_true(child_wait(c, 4 * HARNESS_TIMEOUT_MS, &status));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || strncmp(c->out, "OK", 2) != 0) {
		child_report(c);
		child_report(f->agent);
		fail_msg("ws_client.py %s %s: status 0x%x: %s", mode, url, (unsigned)status, c->out);
	}
	print_message("ws_client.py %s: %s", mode, c->out);
}

static void
test_agent_websocket_echoes_through_the_upgrade(void **state)
{
	struct fixture *f = *state;

	agent_start(f, ws_echo_start(f), NULL);
	ws_client_run(f, "echo", "/chat", NULL);
	ws_client_run(f, "big", "/chat", "4194304");
	ws_client_run(f, "close", "/chat", NULL);
}

static void
test_agent_websocket_streams_in_bounded_memory(void **state)
{
	struct fixture *f = *state;
	static const char *const quiet[] = { "--quiet", NULL };
	char bytes[32];
	long hwm;

	snprintf(bytes, sizeof bytes, "%llu", (harness_sanitized() ? 16ull : 128ull) * MIB);
	agent_start(f, ws_echo_start(f), quiet);
	ws_client_run(f, "stream", "/chat", bytes);
	hwm = process_hwm_kib(f->agent->pid);
	print_message("%s bytes each way: agent VmHWM %ld KiB\n", bytes, hwm);
	assert_true(hwm > 0);
	assert_true(harness_sanitized() || hwm < RSS_LIMIT_KIB);
}

static void
test_agent_refused_websocket_is_answered_with_its_status(void **state)
{
	struct fixture *f = *state;
	char buf[4096];

	agent_start(f, ws_echo_start(f), NULL);
	raw_exchange(f, "GET /forbidden HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\n"
	             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	             "Sec-WebSocket-Version: 13\r\n\r\n", buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 403 "));
	assert_non_null(strstr(buf, "answered the upgrade with 403"));
	assert_int_equal(agent_log_count(f, "answered the upgrade with 403"), 1);
}

static void
test_agent_websocket_to_a_server_that_is_down_gives_502(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	int port, fd = listen_any(&port);

	close(fd);
	agent_start(f, port, NULL);
	raw_exchange(f, "GET /chat HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\n"
	             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	             "Sec-WebSocket-Version: 13\r\n\r\n", buf, sizeof buf);
	assert_non_null(strstr(buf, "HTTP/1.1 502 "));
	assert_non_null(strstr(buf, "cannot be reached: Connection refused"));
}

/* ---------------------------------------------------------------------
 * Concurrency and life cycle.
 */

static void
test_agent_100_concurrent_requests_share_one_tunnel(void **state)
{
	struct fixture *f = *state;
	static const char *const quiet[] = { "--quiet", NULL };
	CURLM *multi = curl_multi_init();
	CURL *easy[CONCURRENT];
	struct fetch *fx = calloc(CONCURRENT, sizeof *fx);
	char url[128];
	long long deadline = harness_now_ms() + 4 * HARNESS_TIMEOUT_MS;
	int running = 1, ok = 0;

	assert_non_null(multi);
	assert_non_null(fx);
	agent_start(f, app_start(f), quiet);
	/* The app answers only once all of them are inside at once. */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/barrier?n=%d", f->hr.http_port, CONCURRENT);
	for (int i = 0; i < CONCURRENT; i++) {
		easy[i] = curl_easy_init();
		assert_non_null(easy[i]);
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_PROXY, "");
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, fetch_write_callback);
		curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &fx[i]);
		curl_multi_add_handle(multi, easy[i]);
	}
	while (running > 0 && harness_now_ms() < deadline) {
		curl_multi_perform(multi, &running);
		curl_multi_poll(multi, NULL, 0, 200, NULL);
	}
	for (int i = 0; i < CONCURRENT; i++) {
		long status = 0;
		curl_easy_getinfo(easy[i], CURLINFO_RESPONSE_CODE, &status);
		ok += status == 200 && strcmp(fx[i].body, "ok\n") == 0;
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
	}
	curl_multi_cleanup(multi);
	free(fx);
	assert_int_equal(ok, CONCURRENT);
	assert_int_equal(ptth_router_tunnel_count(f->hr.router), 1);
}

static void
test_agent_sigterm_lets_a_request_in_flight_finish(void **state)
{
	struct fixture *f = *state;
	const char *request = "GET /hold HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";
	char buf[4096] = "", url[128];
	size_t len = 0;
	long status = 0;
	int fd, wstatus = 0;

	agent_start(f, app_start(f), NULL);
	fd = harness_dial(f->hr.http_port);
	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, request, strlen(request)), 0);
	recv_until(fd, buf, sizeof buf, &len, "first\n");
	kill(f->agent->pid, SIGTERM);
	assert_int_equal(ptth_router_wait_tunnels_at_most(f->hr.router, 0, HARNESS_TIMEOUT_MS), 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/release", f->app_port);
	assert_int_equal(http_get(url, &status, NULL, 0, NULL), CURLE_OK);
	recv_until(fd, buf, sizeof buf, &len, "\r\n0\r\n\r\n");
	close(fd);
	assert_true(child_wait(f->agent, HARNESS_TIMEOUT_MS, &wstatus));
	assert_true(WIFEXITED(wstatus));
	assert_int_equal(WEXITSTATUS(wstatus), 0);
}

static void
test_agent_bad_flags_exit_2(void **state)
{
	struct fixture *f = *state;
	const char *dir = getenv("PTTH_BIN_DIR");
	char path[PATH_MAX];
	char *no_to[] = { path, "--router", "127.0.0.1:1", NULL };
	char *bad_to[] = { path, "--to", "no-port", NULL };
	char *bad_number[] = { path, "--to", "127.0.0.1:80", "--timeout-ms", "soon", NULL };
	char *const *cases[] = { no_to, bad_to, bad_number };

	snprintf(path, sizeof path, "%s/agent", dir && dir[0] ? dir : "bin");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct child *c = child_start(f, path, cases[i], environ, -1, false);
		int wstatus = 0;
		assert_true(child_wait(c, HARNESS_TIMEOUT_MS, &wstatus));
		assert_true(WIFEXITED(wstatus));
		assert_int_equal(WEXITSTATUS(wstatus), 2);
		f->nchildren--; /* reaped: its slot may be used again */
	}
}

#define AGENT_TEST(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		AGENT_TEST(test_agent_python_file_tree_matches_direct),
		AGENT_TEST(test_agent_python_head_range_and_304_match_direct),
		AGENT_TEST(test_agent_nginx_static_files_match_direct),
		AGENT_TEST(test_agent_nginx_return_204_has_no_body),
		AGENT_TEST(test_agent_nginx_gzip_passes_through_untouched),
		AGENT_TEST(test_agent_nginx_connection_is_kept_alive),
		AGENT_TEST(test_agent_nginx_large_file_streams_in_bounded_memory),
		AGENT_TEST(test_agent_post_body_with_content_length_arrives_whole),
		AGENT_TEST(test_agent_chunked_post_body_is_sent_chunked),
		AGENT_TEST(test_agent_large_upload_streams_in_bounded_memory),
		AGENT_TEST(test_agent_streamed_download_arrives_byte_for_byte),
		AGENT_TEST(test_agent_response_streams_before_the_app_ends_it),
		AGENT_TEST(test_agent_response_head_is_sent_before_any_body_byte),
		AGENT_TEST(test_agent_request_fields_reach_the_app_as_the_router_sent_them),
		AGENT_TEST(test_agent_hop_by_hop_response_fields_are_dropped),
		AGENT_TEST(test_agent_trailers_reach_the_user),
		AGENT_TEST(test_agent_interim_responses_are_not_forwarded),
		AGENT_TEST(test_agent_expect_100_continue_is_answered_once),
		AGENT_TEST(test_agent_204_and_304_carry_no_body_and_errors_pass_as_they_are),
		AGENT_TEST(test_agent_connections_to_the_app_are_reused),
		AGENT_TEST(test_agent_local_server_down_gives_502_logged_once),
		AGENT_TEST(test_agent_stalled_local_server_gives_504_logged_once),
		AGENT_TEST(test_agent_local_server_closing_mid_body_cuts_the_body),
		AGENT_TEST(test_agent_local_server_stalling_mid_body_cuts_the_body),
		AGENT_TEST(test_agent_behind_the_handshake_serves_its_service_with_a_token),
		AGENT_TEST(test_agent_websocket_echoes_through_the_upgrade),
		AGENT_TEST(test_agent_websocket_streams_in_bounded_memory),
		AGENT_TEST(test_agent_refused_websocket_is_answered_with_its_status),
		AGENT_TEST(test_agent_websocket_to_a_server_that_is_down_gives_502),
		AGENT_TEST(test_agent_100_concurrent_requests_share_one_tunnel),
		AGENT_TEST(test_agent_sigterm_lets_a_request_in_flight_finish),
		AGENT_TEST(test_agent_bad_flags_exit_2),
	};

	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
