/*
 * net.c -- small socket helpers: parse "HOST:PORT", listen, dial, wake fds.
 *
 * Owns:    nothing; every fd it creates is handed to the caller.
 * Threads: any; the functions keep no state.
 * Locks:   none.
 * Interface:
 *   - net_listen("127.0.0.1:0", &port) binds and listens, port 0 allowed;
 *   - net_dial("localhost:8887") connects, trying every address;
 *   - net_write_all() writes a whole buffer to a blocking socket;
 *   - net_wake_fd_new()/net_wake()/net_wake_drain(): an eventfd that one
 *     thread writes to wake another blocked in poll().
 * Helpers report errors as negative codes and never log: callers decide.
 * Tutorial: "Two ports".
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "ptth.h"
#include "net.h"

/* Splits "HOST:PORT", "[V6]:PORT" or ":PORT" into host (NULL for any) and
 * port strings inside buf. Returns 0 or PTTH_EADDR. */
static int
net_split(const char *addr, char *buf, size_t len, const char **host,
          const char **port)
{
	char *colon;

	if (addr == NULL || strlen(addr) >= len)
		return PTTH_EADDR;
	strcpy(buf, addr);
	colon = strrchr(buf, ':');
	if (colon == NULL || colon[1] == '\0')
		return PTTH_EADDR;
	*colon = '\0';
	*port = colon + 1;
	*host = buf;
	if (buf[0] == '[' && colon > buf && colon[-1] == ']') {
		colon[-1] = '\0';
		*host = buf + 1;
	}
	if (**host == '\0')
		*host = NULL;
	return 0;
}

/* Resolves addr; IPv4 results come first so that "localhost" means
 * 127.0.0.1 on machines that also list ::1. Caller frees with freeaddrinfo. */
static int
net_resolve(const char *addr, int passive, struct addrinfo **out)
{
	char buf[256];
	const char *host, *port;
	struct addrinfo hints = { 0 };
	int rc;

	rc = net_split(addr, buf, sizeof buf, &host, &port);
	if (rc < 0)
		return rc;
	hints.ai_family = (host == NULL) ? AF_INET : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	hints.ai_flags |= AI_ADDRCONFIG;
	rc = getaddrinfo(host, port, &hints, out);
	if (rc != 0)
		return PTTH_EADDR;
	return 0;
}

/* Picks the first IPv4 entry of the list, or the first entry. */
static struct addrinfo *
net_pick(struct addrinfo *list)
{
	for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next)
		if (ai->ai_family == AF_INET)
			return ai;
	return list;
}

/* Binds and listens on addr. Stores the bound port in *port_out when it
 * is not NULL. Returns the listening fd or a negative code. */
int
net_listen(const char *addr, int *port_out)
{
	struct addrinfo *list, *ai;
	int fd, one = 1, rc;

	rc = net_resolve(addr, 1, &list);
	if (rc < 0)
		return rc;
	ai = net_pick(list);
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto out_free;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		rc = -errno;
		close(fd);
		goto out_free;
	}
	rc = fd;
	if (port_out != NULL)
		*port_out = net_local_port(fd);
out_free:
	freeaddrinfo(list);
	return rc;
}

/* Connects to addr, trying each resolved address in turn.
 * Returns the connected fd or a negative code (the last error seen). */
int
net_dial(const char *addr)
{
	struct addrinfo *list;
	int fd, rc;

	rc = net_resolve(addr, 0, &list);
	if (rc < 0)
		return rc;
	rc = -ECONNREFUSED;
	for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			rc = fd;
			break;
		}
		rc = -errno;
		close(fd);
	}
	freeaddrinfo(list);
	return rc;
}

/* Returns the local port of a bound socket, or a negative code. */
int
net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Formats a socket address as "IP:PORT" ("[IP6]:PORT"), or "?". */
static void
net_format(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	snprintf(buf, len, "?");
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%d", host, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%d", host, ntohs(sin6->sin6_port));
	}
}

/* Writes "IP:PORT" of the peer of fd into buf ("?" when unknown). */
void
net_peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNSPEC;
	net_format(&ss, buf, len);
}

/* Writes "IP:PORT" of our own end of fd into buf ("?" when unknown). */
void
net_local_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNSPEC;
	net_format(&ss, buf, len);
}

/* Writes the peer's IP address of fd, without port or brackets, into
 * buf ("?" when unknown). */
void
net_peer_ip(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;

	snprintf(buf, len, "?");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)len);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)len);
}

/* Writes all len bytes to a blocking socket. MSG_NOSIGNAL turns a peer
 * that went away into -EPIPE instead of a SIGPIPE that kills the process.
 * Returns 0 or a negative code. */
int
net_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Turns off Nagle's algorithm: requests and responses are small and
 * latency matters more than packet count. */
void
net_set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Makes a blocking recv() on fd give up with EAGAIN after ms. */
void
net_set_recv_timeout(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Makes a blocking send() on fd give up with EAGAIN when it could move
 * no byte for ms; a send() that moved some returns the count, so the
 * timeout runs between writes that make progress. */
void
net_set_send_timeout(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Asks the kernel to probe an idle connection (SO_KEEPALIVE), a second
 * line of defence behind HTTP/2 PING for tunnels. */
void
net_set_keepalive(int fd)
{
	int one = 1;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

/* Creates the eventfd another thread writes to wake a poll()ing owner.
 * It is non-blocking so that draining it never blocks the owner. */
int
net_wake_fd_new(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* Wakes the thread polling fd. Never blocks: the counter saturates long
 * before it could overflow, and a full counter is already a wake-up. */
void
net_wake(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof one) < 0 && errno != EAGAIN)
		abort(); /* only a closed fd can fail here: a lifetime bug */
}

/* Resets the eventfd counter after a wake-up was seen. */
void
net_wake_drain(int fd)
{
	uint64_t count;

	if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
		abort();
}
