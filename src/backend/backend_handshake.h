/* backend_handshake.h -- the backend's side of the PTTH handshake. See
 * backend_handshake.c. */
#ifndef PTTH_BACKEND_HANDSHAKE_H
#define PTTH_BACKEND_HANDSHAKE_H

#include <stddef.h>

#define BACKEND_HANDSHAKE_TIMEOUT_MS 10000 /* the router must answer within this */

int backend_handshake_format(const char *host, const char *service, const char *token,
                             char *buf, size_t cap);
int backend_handshake_check(char *buf, size_t len, const char *body, char *msg,
                            size_t msg_len);
int backend_handshake(int fd, const char *host, const char *service, const char *token,
                      int timeout_ms, int stop_fd, char *msg, size_t msg_len);

#endif
