/*
 * exercise.h -- what every exercise checker shares (tests/exercises/).
 *
 * A checker is a cmocka suite, or a script, that says whether one
 * exercise of docs/EXERCISES.md is done. On the tree as shipped it
 * fails, on purpose, with a message that says what is missing; it is
 * therefore not part of make test, but of make exercise N=k.
 *
 * Each checker's card carries a line "Exercise: N STARS TITLE", which
 * make exercise lists, and defines EXERCISE before including this.
 * A line "probe: NAME: C STATEMENTS" in a comment of its own asks make
 * to compile the statements (inside a function, after #include
 * "ptth.h") and to define NAME when they compile: that is how a
 * checker asks whether a field or a constant the exercise adds exists
 * yet, and fails with a message instead of a compiler error.
 */
#ifndef PTTH_EXERCISE_H
#define PTTH_EXERCISE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#ifndef EXERCISE
#error "define EXERCISE as the exercise's number, as a string, before this include"
#endif

/* Fails the check with "exercise N: " and the message. */
#define exercise_fail(...) fail_msg("exercise " EXERCISE ": " __VA_ARGS__)

/* Fails with the message unless cond holds. */
#define exercise_check(cond, ...)            \
	do {                                     \
		if (!(cond))                         \
			exercise_fail(__VA_ARGS__);      \
	} while (0)

/* text as a C string literal would show it ("bar\n"), cut to fit; four
 * calls may be used in one message before a buffer is reused. */
static inline const char *
exercise_quote(const char *text)
{
	static char bufs[4][160];
	static int next;
	char *buf = bufs[next++ % 4], *p = buf;

	*p++ = '"';
	for (; text != NULL && *text != '\0' && p < buf + sizeof bufs[0] - 8; text++) {
		unsigned char ch = (unsigned char)*text;
		if (ch == '\n' || ch == '\r' || ch == '\t' || ch == '"' || ch == '\\')
			p += sprintf(p, "\\%c", ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch == '\t' ? 't' : ch);
		else if (ch < 0x20 || ch >= 0x7f)
			p += sprintf(p, "\\x%02x", ch);
		else
			*p++ = (char)ch;
	}
	if (text != NULL && *text != '\0')
		p += sprintf(p, "...");
	*p++ = '"';
	*p = '\0';
	return buf;
}

#endif
