/*
 * user.c -- an example user that sends N simultaneous GETs through the
 * router and prints each request as it starts and each response as it ends.
 *
 * Owns: one libcurl multi handle, and per transfer one easy handle, one
 *   body buffer (at most BODY_CAP bytes) and one error buffer. All are freed
 *   before main() returns.
 * Threads: one. Every transfer runs on the main thread through libcurl's
 *   multi interface, so the requests are concurrent without being parallel,
 *   and all printing happens on that thread.
 * Locks: none; nothing is shared between threads.
 * Interface:
 *   - bin/user [--url URL] [-n N]; the defaults are
 *     http://localhost:8888/foo and 10, matching the Go original's user.go.
 *   - "> GET URL" is printed when a transfer is added, and
 *     "< CODE REASON \"BODY\"" when its response is complete, with BODY
 *     quoted the way Go's %q verb quotes a string.
 *   - A transport failure prints "< error: TEXT" instead.
 *   - Exit status: 0 if every transfer got a response (any HTTP status),
 *     1 if any failed, 2 for a bad command line.
 * Tutorial: "Running the demo", where this program plays the user who
 *   talks to a backend through the router.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "http://localhost:8888/foo"
#define DEFAULT_COUNT 10
/* Each transfer holds one socket, and the usual soft limit is 1024 fds. */
#define MAX_COUNT 1000
#define BODY_CAP (64 * 1024)
#define REASON_CAP 128

struct options {
	const char *url;
	long count;
};

/* One request in flight. Only the main thread touches it, through the
 * libcurl callbacks that run inside curl_multi_perform(). */
struct transfer {
	CURL *easy;
	char *body;		/* first BODY_CAP bytes of the body */
	size_t body_len;	/* bytes stored in body */
	size_t body_seen;	/* bytes received, stored or not */
	char reason[REASON_CAP];	/* from the last status line seen */
	char error[CURL_ERROR_SIZE];
	int added;		/* easy is attached to the multi handle */
};

static const struct {
	long code;
	const char *text;
} reason_table[] = {
	{ 200, "OK" }, { 201, "Created" }, { 204, "No Content" },
	{ 301, "Moved Permanently" }, { 302, "Found" },
	{ 304, "Not Modified" }, { 400, "Bad Request" },
	{ 404, "Not Found" }, { 405, "Method Not Allowed" },
	{ 408, "Request Timeout" }, { 413, "Payload Too Large" },
	{ 414, "URI Too Long" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" }, { 502, "Bad Gateway" },
	{ 503, "Service Unavailable" }, { 504, "Gateway Timeout" },
};

/*
 * Returns the standard reason phrase for code, or "" if the table does not
 * know it. Used only when the status line carried no phrase, as HTTP/2
 * responses never do.
 */
static const char *
reason_lookup(long code)
{
	size_t i;

	for (i = 0; i < sizeof(reason_table) / sizeof(reason_table[0]); i++)
		if (reason_table[i].code == code)
			return reason_table[i].text;
	return "";
}

/*
 * Copies the reason phrase of a status line such as "HTTP/1.1 200 OK\r\n"
 * into reason, or stores "" if the line has none. The phrase is whatever
 * follows the second space, without the line ending.
 */
static void
status_line_parse(const char *line, size_t len, char *reason)
{
	const char *end = line + len;
	const char *p;
	size_t n;

	p = memchr(line, ' ', len);
	if (p != NULL)
		p = memchr(p + 1, ' ', (size_t)(end - p - 1));
	reason[0] = '\0';
	if (p == NULL)
		return;
	p++;
	while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	n = (size_t)(end - p);
	if (n >= REASON_CAP)
		n = REASON_CAP - 1;
	memcpy(reason, p, n);
	reason[n] = '\0';
}

/*
 * Implements CURLOPT_HEADERFUNCTION. We use it to capture the reason phrase
 * the server actually sent, so a backend's custom phrase is shown as Go's
 * resp.Status would show it. libcurl delivers every status line here, one
 * per response (a 100 Continue comes first), so the last one wins.
 */
static size_t
on_header_callback(char *data, size_t size, size_t nitems, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * nitems;

	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0)
		status_line_parse(data, len, t->reason);
	return len;
}

/*
 * Implements CURLOPT_WRITEFUNCTION. We use it to keep the first BODY_CAP
 * bytes of the body and count the rest, so a huge response cannot exhaust
 * memory. Returning less than len would abort the transfer, so an
 * allocation failure does exactly that.
 */
static size_t
on_write_callback(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t len = size * nmemb;
	size_t room = BODY_CAP - t->body_len;
	size_t keep = len < room ? len : room;

	if (keep > 0 && t->body == NULL) {
		t->body = malloc(BODY_CAP);
		if (t->body == NULL)
			return 0;
	}
	if (keep > 0)
		memcpy(t->body + t->body_len, data, keep);
	t->body_len += keep;
	t->body_seen += len;
	return len;
}

/*
 * Writes buf to stdout quoted the way Go's %q verb quotes a string:
 * printable ASCII as itself, quote and backslash escaped, the C control
 * escapes Go uses, and every other byte as \xNN.
 */
static void
body_print_quoted(const char *buf, size_t len)
{
	static const char esc_from[] = "\a\b\f\n\r\t\v";
	static const char esc_to[] = "abfnrtv";
	const char *e;
	size_t i;

	putchar('"');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		e = c != 0 ? strchr(esc_from, c) : NULL;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (e != NULL)
			printf("\\%c", esc_to[e - esc_from]);
		else if (c >= 0x20 && c < 0x7f)
			putchar(c);
		else
			printf("\\x%02x", c);
	}
	putchar('"');
}

/*
 * Sets one easy option and reports a failure on stderr. Returns 0 or -1.
 * A macro keeps the option name in the message without a lookup table.
 */
#define EASY_SET(easy, opt, val) \
	easy_check(curl_easy_setopt((easy), (opt), (val)), #opt)

static int
easy_check(CURLcode rc, const char *what)
{
	if (rc == CURLE_OK)
		return 0;
	fprintf(stderr, "user: %s: %s\n", what, curl_easy_strerror(rc));
	return -1;
}

static int
multi_check(CURLMcode rc, const char *what)
{
	if (rc == CURLM_OK)
		return 0;
	fprintf(stderr, "user: %s: %s\n", what, curl_multi_strerror(rc));
	return -1;
}

/*
 * Creates t's easy handle for a GET of url and configures it. Returns 0,
 * or -1 after reporting on stderr; t->easy is then freed by transfer_free.
 */
static int
transfer_init(struct transfer *t, const char *url)
{
	t->easy = curl_easy_init();
	if (t->easy == NULL) {
		fprintf(stderr, "user: curl_easy_init failed\n");
		return -1;
	}
	/* A fresh connection per transfer is what the Go original gets from
	 * its simultaneous requests; forcing it keeps that true even if a
	 * transfer happens to start after another one has finished. */
	if (EASY_SET(t->easy, CURLOPT_URL, url) < 0 ||
	    EASY_SET(t->easy, CURLOPT_FRESH_CONNECT, 1L) < 0 ||
	    EASY_SET(t->easy, CURLOPT_ERRORBUFFER, t->error) < 0 ||
	    EASY_SET(t->easy, CURLOPT_HEADERFUNCTION, on_header_callback) < 0 ||
	    EASY_SET(t->easy, CURLOPT_HEADERDATA, t) < 0 ||
	    EASY_SET(t->easy, CURLOPT_WRITEFUNCTION, on_write_callback) < 0 ||
	    EASY_SET(t->easy, CURLOPT_WRITEDATA, t) < 0 ||
	    EASY_SET(t->easy, CURLOPT_PRIVATE, t) < 0)
		return -1;
	return 0;
}

static void
transfer_free(struct transfer *t)
{
	if (t->easy != NULL)
		curl_easy_cleanup(t->easy);
	free(t->body);
}

/*
 * Prints the result line for a finished transfer. Returns 0 if it got an
 * HTTP response of any status, -1 if it failed in transport.
 */
static int
transfer_report(struct transfer *t, CURLcode result)
{
	long code = 0;
	const char *reason;

	if (result == CURLE_OK)
		result = curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
	if (result != CURLE_OK) {
		/* The error buffer has the detail ("Failed to connect to ..."),
		 * but libcurl leaves it empty for some failures. */
		printf("< error: %s\n",
		       t->error[0] != '\0' ? t->error : curl_easy_strerror(result));
		fflush(stdout);
		return -1;
	}
	reason = t->reason[0] != '\0' ? t->reason : reason_lookup(code);
	printf("< %ld%s%s ", code, reason[0] != '\0' ? " " : "", reason);
	body_print_quoted(t->body, t->body_len);
	putchar('\n');
	fflush(stdout);
	return 0;
}

/*
 * Configures the multi handle so that no two transfers share a connection:
 * no limit on connections per host, and neither HTTP/1.1 pipelining nor
 * HTTP/2 multiplexing.
 */
static int
multi_configure(CURLM *multi)
{
	if (multi_check(curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS,
					  0L), "CURLMOPT_MAX_HOST_CONNECTIONS") < 0 ||
	    multi_check(curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
					  0L), "CURLMOPT_MAX_TOTAL_CONNECTIONS") < 0 ||
	    multi_check(curl_multi_setopt(multi, CURLMOPT_PIPELINING,
					  (long)CURLPIPE_NOTHING), "CURLMOPT_PIPELINING") < 0)
		return -1;
	return 0;
}

/*
 * Creates, configures and adds every transfer, printing "> GET URL" for
 * each as it is added. Returns 0, or -1 after reporting on stderr.
 */
static int
transfers_start(CURLM *multi, struct transfer *ts, long count,
		const char *url)
{
	long i;

	for (i = 0; i < count; i++) {
		if (transfer_init(&ts[i], url) < 0)
			return -1;
		if (multi_check(curl_multi_add_handle(multi, ts[i].easy),
				"curl_multi_add_handle") < 0)
			return -1;
		ts[i].added = 1;
		printf("> GET %s\n", url);
		fflush(stdout);
	}
	return 0;
}

/*
 * Reports every transfer libcurl says has finished and removes it from
 * multi. Adds the number of transport failures to *failed.
 * Returns 0, or -1 if the multi handle itself failed.
 */
static int
transfers_collect(CURLM *multi, int *failed)
{
	struct transfer *t;
	CURLMsg *msg;
	char *priv;
	int left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		if (easy_check(curl_easy_getinfo(msg->easy_handle,
						 CURLINFO_PRIVATE, &priv),
			       "CURLINFO_PRIVATE") < 0)
			return -1;
		t = (struct transfer *)priv;
		if (transfer_report(t, msg->data.result) < 0)
			(*failed)++;
		if (multi_check(curl_multi_remove_handle(multi, t->easy),
				"curl_multi_remove_handle") < 0)
			return -1;
		t->added = 0;
	}
	return 0;
}

/*
 * Drives all transfers in multi to completion on this thread, reporting
 * each as it finishes. Returns the number of transport failures, or -1 if
 * the multi handle itself failed.
 */
static int
transfers_run(CURLM *multi)
{
	int running = 1;
	int failed = 0;

	while (running > 0) {
		if (multi_check(curl_multi_perform(multi, &running),
				"curl_multi_perform") < 0)
			return -1;
		if (transfers_collect(multi, &failed) < 0)
			return -1;
		if (running > 0 &&
		    multi_check(curl_multi_poll(multi, NULL, 0, 1000, NULL),
				"curl_multi_poll") < 0)
			return -1;
	}
	return failed;
}

static void
usage_print(FILE *f)
{
	fprintf(f,
		"usage: user [--url URL] [-n N]\n"
		"Sends N simultaneous GETs of URL and prints each response.\n"
		"  --url URL  the URL to fetch (default %s)\n"
		"  -n N       how many requests, 1 to %d (default %d)\n"
		"  --help     show this help and exit\n",
		DEFAULT_URL, MAX_COUNT, DEFAULT_COUNT);
}

/* Parses a request count; returns it, or -1 if s is not 1..MAX_COUNT. */
static long
count_parse(const char *s)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < 1 || n > MAX_COUNT)
		return -1;
	return n;
}

/*
 * Fills o from the command line. Returns 0 to run, 1 if --help was shown,
 * or 2 after printing a one-line error on stderr.
 */
static int
options_parse(struct options *o, int argc, char **argv)
{
	int i;

	o->url = DEFAULT_URL;
	o->count = DEFAULT_COUNT;
	for (i = 1; i < argc; i++) {
		const char *flag = argv[i];

		if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
			usage_print(stdout);
			return 1;
		}
		if (strcmp(flag, "--url") != 0 && strcmp(flag, "-n") != 0) {
			fprintf(stderr, "user: unknown flag '%s' (try --help)\n", flag);
			return 2;
		}
		if (++i == argc) {
			fprintf(stderr, "user: %s needs a value\n", flag);
			return 2;
		}
		if (flag[1] == '-')
			o->url = argv[i];
		else if ((o->count = count_parse(argv[i])) < 0) {
			fprintf(stderr, "user: -n wants 1 to %d, not '%s'\n",
				MAX_COUNT, argv[i]);
			return 2;
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct options opt;
	struct transfer *ts;
	CURLM *multi;
	int status = 1;
	int rc;
	long i;

	rc = options_parse(&opt, argc, argv);
	if (rc != 0)
		return rc == 1 ? 0 : 2;
	/* Line buffering alone would do, but the explicit fflush after each
	 * line also covers a stdout that refuses setvbuf. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (easy_check(curl_global_init(CURL_GLOBAL_DEFAULT),
		       "curl_global_init") < 0)
		return 1;
	ts = calloc((size_t)opt.count, sizeof(*ts));
	if (ts == NULL) {
		fprintf(stderr, "user: out of memory\n");
		goto out_global;
	}
	multi = curl_multi_init();
	if (multi == NULL) {
		fprintf(stderr, "user: curl_multi_init failed\n");
		goto out_free_transfers;
	}
	if (multi_configure(multi) < 0 ||
	    transfers_start(multi, ts, opt.count, opt.url) < 0)
		goto out_cleanup;
	rc = transfers_run(multi);
	status = rc == 0 ? 0 : 1;
out_cleanup:
	/* After a failure some handles may still be attached, and they must
	 * be detached before either the multi or the easy handle is freed. */
	for (i = 0; i < opt.count; i++)
		if (ts[i].added &&
		    multi_check(curl_multi_remove_handle(multi, ts[i].easy),
				"curl_multi_remove_handle") < 0)
			status = 1;
	if (multi_check(curl_multi_cleanup(multi), "curl_multi_cleanup") < 0)
		status = 1;
	for (i = 0; i < opt.count; i++)
		transfer_free(&ts[i]);
out_free_transfers:
	free(ts);
out_global:
	curl_global_cleanup();
	return status;
}
