/* net.h -- small socket helpers. See net.c. */
#ifndef PTTH_NET_H
#define PTTH_NET_H

#include <stddef.h>
#include <sys/socket.h>

int net_listen(const char *addr, int *port_out);
int net_dial(const char *addr);
int net_local_port(int fd);
void net_peer_name(int fd, char *buf, size_t len);
void net_local_name(int fd, char *buf, size_t len);
void net_peer_ip(int fd, char *buf, size_t len);
int net_write_all(int fd, const void *buf, size_t len);
void net_set_nodelay(int fd);
void net_set_keepalive(int fd);
void net_set_recv_timeout(int fd, int ms);
void net_set_send_timeout(int fd, int ms);
int net_wake_fd_new(void);
void net_wake(int fd);
void net_wake_drain(int fd);

#endif
