/* backend.h -- internal entry points of backend.c, for tests. */
#ifndef PTTH_BACKEND_H
#define PTTH_BACKEND_H

#include "ptth.h"

int backend_start_fd(struct ptth_backend *b, int fd);

#endif
