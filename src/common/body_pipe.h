/* body_pipe.h -- a bounded byte ring for one direction of a body. See body_pipe.c. */
#ifndef PTTH_BODY_PIPE_H
#define PTTH_BODY_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct body_pipe {
	char *buf;          /* ring storage, grown on demand up to cap */
	size_t size;        /* bytes allocated for buf */
	size_t cap;         /* most bytes the pipe ever holds */
	size_t head, len;   /* first unread byte, bytes unread */
	size_t unreported;  /* bytes read but not yet reported to flow control */
	bool finished;      /* the writer wrote its last byte */
};

void body_pipe_init(struct body_pipe *p, size_t cap);
void body_pipe_destroy(struct body_pipe *p);
ssize_t body_pipe_write(struct body_pipe *p, const void *data, size_t len);
size_t body_pipe_read(struct body_pipe *p, void *buf, size_t len);
size_t body_pipe_space(const struct body_pipe *p);
void body_pipe_finish(struct body_pipe *p);
bool body_pipe_at_end(const struct body_pipe *p);
size_t body_pipe_take_unreported(struct body_pipe *p);
void body_pipe_discard(struct body_pipe *p);
void body_pipe_empty(struct body_pipe *p, size_t keep);

#endif
