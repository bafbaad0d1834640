/*
 * test_access_log.c -- the access log: the line format, field by field
 * (a unit test of access_log_format()); the lines a router in this
 * process writes for known requests, bytes checked against what libcurl
 * received; reopening after a rename (ptth_router_reopen_access_log());
 * and bin/router with --access-log: SIGHUP after a rename starts a new
 * file, and "-" writes to stdout.
 *
 * Run some tests only with make test TESTS=access_log FILTER=WORD.
 *
 * Lines are read once they are written: in this process the tests wait
 * on the router's own condition until every user connection is gone
 * (each counts and logs its request before that); for bin/router they
 * wait for the file with inotify, or for the process to exit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access_log.h"
#include "metrics.h"
#include "support/harness.h"
#include "support/observe.h"

#define WAIT_MS HARNESS_TIMEOUT_MS

/* One parsed line of the log. */
struct line {
	char client[64], time[40], request[1200], service[64], tunnel[16];
	int status;
	long long bytes;
	double duration;
};

/* Parses the documented format:
 *   CLIENT [TIME] "REQUEST" STATUS BYTES DURATION TUNNEL SERVICE
 * Returns true when the whole line matched. */
static bool
line_parse(const char *text, struct line *l)
{
	int end = 0;

	memset(l, 0, sizeof *l);
	return sscanf(text, "%63s [%39[^]]] \"%1199[^\"]\" %d %lld %lf %15s %63s%n", l->client,
	              l->time, l->request, &l->status, &l->bytes, &l->duration, l->tunnel,
	              l->service, &end) == 8 && (text[end] == '\n' || text[end] == '\0');
}

/* The n-th line (from 0) of text, parsed. */
static bool
line_at(const char *text, int n, struct line *l)
{
	for (int i = 0; i < n && text != NULL; i++) {
		text = strchr(text, '\n');
		if (text != NULL)
			text++;
	}
	return text != NULL && *text != '\0' && line_parse(text, l);
}

/* A temporary file name (the file itself is removed: the router creates it). */
static void
temp_path(char *path, size_t size, const char *what)
{
	snprintf(path, size, "/tmp/ptth-access-%s-%d-XXXXXX", what, (int)getpid());
	close(mkstemp(path));
	unlink(path);
}

/* access_log_format(): every field, escaping, and the "-" placeholders. */
static void
test_access_log_format_writes_every_field(void **state)
{
	struct metrics_service svc;
	struct request_record rec;
	char buf[ACCESS_LOG_LINE_MAX];

	(void)state;
	request_record_begin(&rec);
	rec.start_wall_ms = 1700000000123LL; /* 2023-11-14T22:13:20.123Z */
	request_record_head(&rec, "GET", "/a\"b\\c\x01 d", 1);
	request_record_answer(&rec, 200, false);
	rec.response_bytes = 1234;
	request_record_tunnel(&rec, 7, NULL);
	access_log_format(buf, sizeof buf, &rec, "127.0.0.1:5555", 1500001);
	assert_string_equal(buf, "127.0.0.1:5555 [2023-11-14T22:13:20.123Z] "
	                         "\"GET /a\\x22b\\x5cc\\x01\\x20d HTTP/1.1\" 200 1234 1.500001 7 -\n");
	/* No head parsed, no tunnel, a named service. */
	request_record_begin(&rec);
	rec.start_wall_ms = 0;
	request_record_answer(&rec, 400, true);
	metrics_service_init(&svc, "shop");
	rec.service = &svc;
	access_log_format(buf, sizeof buf, &rec, "[::1]:80", 42);
	assert_string_equal(buf, "[::1]:80 [1970-01-01T00:00:00.000Z] \"-\" 400 0 0.000042 - shop\n");
}

/* A target longer than the record keeps is cut, and the line bounded. */
static void
test_access_log_long_target_is_cut(void **state)
{
	static char target[8192];
	struct request_record rec;
	char buf[ACCESS_LOG_LINE_MAX];
	size_t len;

	(void)state;
	memset(target, '"', sizeof target - 1); /* each becomes 4 bytes escaped */
	target[0] = '/';
	request_record_begin(&rec);
	request_record_head(&rec, "GET", target, 1);
	request_record_answer(&rec, 414, true);
	len = access_log_format(buf, sizeof buf, &rec, "127.0.0.1:1", 1);
	assert_true(len < sizeof buf);
	assert_int_equal(buf[len - 1], '\n');
	assert_non_null(strstr(buf, "\" 414 0 0.000001 - -\n"));
}

/* A router in this process logging to a file. */
struct fixture {
	struct harness_router hr;
	char path[128];
};

static int
fixture_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct ptth_router_options o;

	if (f == NULL)
		return -1;
	temp_path(f->path, sizeof f->path, "lib");
	ptth_router_options_init(&o);
	o.access_log = f->path;
	o.max_uri = 64;
	if (harness_router_start_opts(&f->hr, &o) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
fixture_teardown(void **state)
{
	struct fixture *f = *state;
	char old[160];

	harness_router_free(&f->hr);
	snprintf(old, sizeof old, "%s.1", f->path);
	unlink(f->path);
	unlink(old);
	free(f);
	return 0;
}

/* GETs path on c; returns the bytes curl received (head and body). */
static long long
get_counting(CURL *c, struct fixture *f, const char *path, long *status)
{
	struct http_reply reply = { 0 };
	char url[256];
	long head = 0;

	harness_url(&f->hr, path, url, sizeof url);
	if (http_client_get(c, url, &reply) != CURLE_OK)
		return -1;
	curl_easy_getinfo(c, CURLINFO_HEADER_SIZE, &head);
	*status = reply.status;
	return head + (long long)reply.total;
}

/* Known requests, one line each, in order, every field checked. */
static void
test_access_log_lines_match_the_requests(void **state)
{
	struct fixture *f = *state;
	struct harness_backend *a = harness_backend_start(&f->hr, "a");
	CURL *c = http_client_new();
	long long foo_bytes, missing_bytes;
	long status = 0;
	char *text;
	struct line l;
	int fd;

	assert_non_null(a);
	assert_non_null(c);
	foo_bytes = get_counting(c, f, "/foo?x=1", &status);
	assert_int_equal(status, 200);
	missing_bytes = get_counting(c, f, "/missing", &status);
	assert_int_equal(status, 404);
	curl_easy_cleanup(c);
	/* Lines of different connections are in the order their requests
	 * ended: let the keep-alive connection's be written first. */
	assert_int_equal(observe_wait_conns(f->hr.router, 0, WAIT_MS), 0);
	fd = harness_dial(f->hr.http_port);
	assert_true(fd >= 0);
	assert_int_equal(harness_send_all(fd, "garbage\r\n\r\n", 11), 0);
	char answer[1024];
	assert_true(harness_recv_until_close(fd, answer, sizeof answer) > 0);
	close(fd);
	assert_int_equal(observe_wait_conns(f->hr.router, 0, WAIT_MS), 0);

	text = observe_read_file(f->path);
	assert_non_null(text);
	assert_true(line_at(text, 0, &l));
	assert_true(strncmp(l.client, "127.0.0.1:", 10) == 0);
	assert_int_equal(strlen(l.time), 24); /* 2026-11-29T01:02:03.456Z */
	assert_int_equal(l.time[23], 'Z');
	assert_string_equal(l.request, "GET /foo?x=1 HTTP/1.1");
	assert_int_equal(l.status, 200);
	assert_int_equal(l.bytes, foo_bytes);
	assert_true(l.duration >= 0 && l.duration < 30);
	assert_string_equal(l.tunnel, "1");
	assert_string_equal(l.service, "-");
	assert_true(line_at(text, 1, &l));
	assert_string_equal(l.request, "GET /missing HTTP/1.1");
	assert_int_equal(l.status, 404);
	assert_int_equal(l.bytes, missing_bytes);
	assert_true(line_at(text, 2, &l));
	assert_string_equal(l.request, "-");
	assert_int_equal(l.status, 400);
	assert_true(l.bytes > 0);
	assert_string_equal(l.tunnel, "-");
	assert_false(line_at(text, 3, &l));
	free(text);
	harness_backend_free(a);
}

/* After a rename, ptth_router_reopen_access_log() starts a new file. */
static void
test_access_log_reopen_starts_a_new_file(void **state)
{
	struct fixture *f = *state;
	struct harness_backend *a = harness_backend_start(&f->hr, "a");
	char url[256], old[160];
	long status = 0;
	struct line l;
	char *text;

	assert_non_null(a);
	harness_url(&f->hr, "/foo?before", url, sizeof url);
	assert_int_equal(http_get(url, &status, NULL, 0, NULL), CURLE_OK);
	assert_int_equal(observe_wait_conns(f->hr.router, 0, WAIT_MS), 0);
	snprintf(old, sizeof old, "%s.1", f->path);
	assert_int_equal(rename(f->path, old), 0);
	assert_int_equal(ptth_router_reopen_access_log(f->hr.router), 0);
	harness_url(&f->hr, "/foo?after", url, sizeof url);
	assert_int_equal(http_get(url, &status, NULL, 0, NULL), CURLE_OK);
	assert_int_equal(observe_wait_conns(f->hr.router, 0, WAIT_MS), 0);

	text = observe_read_file(old);
	assert_true(line_at(text, 0, &l));
	assert_string_equal(l.request, "GET /foo?before HTTP/1.1");
	assert_false(line_at(text, 1, &l));
	free(text);
	text = observe_read_file(f->path);
	assert_true(line_at(text, 0, &l));
	assert_string_equal(l.request, "GET /foo?after HTTP/1.1");
	assert_false(line_at(text, 1, &l));
	free(text);
	harness_backend_free(a);
}

/* Without an access log there is nothing to reopen. */
static void
test_access_log_reopen_without_a_log_is_an_error(void **state)
{
	struct harness_router hr;

	(void)state;
	assert_int_equal(harness_router_start(&hr), 0);
	assert_int_equal(ptth_router_reopen_access_log(hr.router), PTTH_ESTATE);
	harness_router_free(&hr);
}

/* A router that cannot open its log does not start. */
static void
test_access_log_unwritable_path_fails_start(void **state)
{
	struct ptth_router_options o;
	struct harness_router hr;

	(void)state;
	ptth_router_options_init(&o);
	o.access_log = "/nonexistent-dir/access.log";
	assert_int_equal(harness_router_start_opts(&hr, &o), -ENOENT);
	assert_null(hr.router);
}

/* bin/router and bin/backend as processes. */
struct programs {
	pid_t router, backend;
	int out_fd;               /* the router's stdout */
	int http_port;
	char out[8192];           /* what the router printed so far */
};

/* Starts bin/router with --access-log log_arg and a bin/backend dialling
 * it, and waits until the backend's tunnel is up: the admin port's
 * /healthz says 200 (admin requests are not logged). */
static int
programs_start(struct programs *p, const char *log_arg)
{
	const char *args[] = { "--http", "127.0.0.1:0", "--tunnels", "127.0.0.1:0", "--quiet",
	                       "--admin", "127.0.0.1:0", "--access-log", log_arg, NULL };
	char addr[64], url[128];
	long status = 0;
	int tunnel_port, admin_port;

	p->backend = -1;
	p->router = observe_spawn_piped("router", args, STDOUT_FILENO, &p->out_fd);
	if (p->router < 0)
		return -1;
	if (observe_read_until(p->out_fd, p->out, sizeof p->out, "\n", 3, WAIT_MS) < 0)
		return -1;
	admin_port = observe_number_after(p->out, "metrics on http://127.0.0.1:");
	tunnel_port = observe_number_after(p->out, "tcp://127.0.0.1:");
	p->http_port = observe_number_after(p->out, "http://127.0.0.1:");
	snprintf(addr, sizeof addr, "127.0.0.1:%d", tunnel_port);
	const char *bargs[] = { "--router", addr, "--quiet", NULL };
	p->backend = harness_spawn("backend", bargs);
	if (p->backend < 0)
		return -1;
	/* The backend dials once it runs; nothing to block on in another
	 * process: ask again until its tunnel is up (bounded). */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", admin_port);
	for (long long end = harness_now_ms() + WAIT_MS; harness_now_ms() < end;) {
		if (http_get(url, &status, NULL, 0, NULL) == CURLE_OK && status == 200)
			return 0;
		usleep(20 * 1000);
	}
	return -1;
}

/* Stops both (SIGTERM: the router drains, so every line is written).
 * Returns the router's wait status. */
static int
programs_stop(struct programs *p)
{
	int status = -1;

	if (p->backend > 0)
		harness_kill(p->backend, SIGTERM);
	if (p->router > 0) {
		kill(p->router, SIGTERM);
		if (observe_wait_exit(p->router, WAIT_MS, &status) < 0)
			status = -1;
	}
	close(p->out_fd);
	return status;
}

static long
program_get(struct programs *p, const char *path)
{
	char url[256];
	long status = 0;

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", p->http_port, path);
	return http_get(url, &status, NULL, 0, NULL) == CURLE_OK ? status : -1;
}

/* logrotate's way: rename the file, SIGHUP, and bin/router writes a new
 * file with the old name; nothing is lost or doubled. */
static void
test_access_log_sighup_reopens_the_file(void **state)
{
	struct programs p = { 0 };
	char path[128], old[160];
	char *text;
	struct line l;
	int status;

	(void)state;
	temp_path(path, sizeof path, "hup");
	snprintf(old, sizeof old, "%s.1", path);
	assert_int_equal(programs_start(&p, path), 0);
	assert_int_equal(program_get(&p, "/foo?n=1"), 200);
	assert_int_equal(program_get(&p, "/foo?n=2"), 200);
	assert_int_equal(observe_wait_lines(path, 2, WAIT_MS), 0);
	assert_int_equal(rename(path, old), 0);
	assert_int_equal(kill(p.router, SIGHUP), 0);
	assert_int_equal(observe_wait_lines(path, 0, WAIT_MS), 0); /* created by the reopen */
	assert_int_equal(program_get(&p, "/foo?n=3"), 200);
	assert_int_equal(program_get(&p, "/nothing"), 404);
	status = programs_stop(&p);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	text = observe_read_file(old);
	assert_true(line_at(text, 0, &l));
	assert_string_equal(l.request, "GET /foo?n=1 HTTP/1.1");
	assert_true(line_at(text, 1, &l));
	assert_string_equal(l.request, "GET /foo?n=2 HTTP/1.1");
	assert_false(line_at(text, 2, &l));
	free(text);
	text = observe_read_file(path);
	assert_true(line_at(text, 0, &l));
	assert_string_equal(l.request, "GET /foo?n=3 HTTP/1.1");
	assert_int_equal(l.status, 200);
	assert_true(line_at(text, 1, &l));
	assert_string_equal(l.request, "GET /nothing HTTP/1.1");
	assert_int_equal(l.status, 404);
	assert_false(line_at(text, 2, &l));
	free(text);
	unlink(path);
	unlink(old);
}

/* --access-log -: the lines go to stdout, after the "Listening" lines. */
static void
test_access_log_dash_writes_to_stdout(void **state)
{
	struct programs p = { 0 };
	char out[4096];
	struct line l;
	int status;

	(void)state;
	assert_int_equal(programs_start(&p, "-"), 0);
	assert_int_equal(program_get(&p, "/foo?stdout"), 200);
	assert_int_equal(observe_read_until(p.out_fd, out, sizeof out, "\n", 1, WAIT_MS), 0);
	status = programs_stop(&p);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(line_at(out, 0, &l));
	assert_string_equal(l.request, "GET /foo?stdout HTTP/1.1");
	assert_int_equal(l.status, 200);
}

#define LOG_TEST(name) cmocka_unit_test_setup_teardown(name, fixture_setup, fixture_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_access_log_format_writes_every_field),
		cmocka_unit_test(test_access_log_long_target_is_cut),
		LOG_TEST(test_access_log_lines_match_the_requests),
		LOG_TEST(test_access_log_reopen_starts_a_new_file),
		cmocka_unit_test(test_access_log_reopen_without_a_log_is_an_error),
		cmocka_unit_test(test_access_log_unwritable_path_fails_start),
		cmocka_unit_test(test_access_log_sighup_reopens_the_file),
		cmocka_unit_test(test_access_log_dash_writes_to_stdout),
	};

	return cmocka_run_group_tests(tests, harness_setup, harness_teardown);
}
