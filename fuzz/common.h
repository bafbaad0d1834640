/* common.h -- socket and clock helpers shared by the fuzz targets. See
 * common.c. */
#ifndef PTTH_FUZZ_COMMON_H
#define PTTH_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ptth.h"

/* How long one input may keep a peer busy before the target calls it a
 * hang and aborts. The router's own timeouts (set to 2 s by the targets)
 * are well inside it; libFuzzer's -timeout is well outside it. */
#define FUZZ_WAIT_MS 10000

long long fuzz_now_ms(void);
void fuzz_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int fuzz_connect(int port);
void fuzz_close(int fd);
int fuzz_send_all(int fd, const void *buf, size_t len);
int fuzz_exchange(int fd, const uint8_t *data, size_t len, bool half_close,
                  int timeout_ms, size_t *got);
int fuzz_wait_tunnels_exactly(struct ptth_router *r, int n, int timeout_ms);
int fuzz_wait_router_threads(struct ptth_router *r, int n, int timeout_ms);
struct ptth_router *fuzz_router_start(int *http_port, int *tunnel_port);
void fuzz_handler(struct ptth_request *req, struct ptth_response *res, void *arg);
void fuzz_quiet(void);

#endif
