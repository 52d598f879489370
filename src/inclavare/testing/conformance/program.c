/* The conformance kit's test program (inclavare.testing.conformance).
 *
 * One program for every runtime: built as a static Linux executable (the
 * `native` runtime, PALs that run Linux programs) or as a WASI preview-1
 * command (the `wasm` runtime); see program.py for the two builds. Its first
 * argument selects what it does:
 *
 *   argv ...            write each argv entry, argv[0] included, then a NUL byte
 *   env                 write each environment entry, then a NUL byte
 *   exit N              exit with status N
 *   print OUT ERR       write OUT to stdout and ERR to stderr, exit 0
 *   sleep S             sleep S seconds, exit 0
 *   cat                 copy stdin to stdout until end of file, exit 0
 *   ignore-term S       ignore SIGTERM, write "ready\n", sleep S seconds (not WASI)
 *   raise SIG           send itself signal SIG (not WASI)
 *
 * NUL separators make the argv and environment readable back exactly
 * (spaces, empty strings, any UTF-8), because neither can contain a NUL.
 * Anything else exits 100 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __wasi__
#include <wasi/api.h>
#else
#include <signal.h>
#endif

extern char **environ;

static int put(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t done = write(fd, s, n);
		if (done <= 0)
			return -1;
		s += done;
		n -= (size_t)done;
	}
	return 0;
}

/* WASI: sleep through poll_oneoff, as samples/wasm/hello.c does (wasi-libc's
 * clock_nanosleep needs compiler-rt, a separate Debian package). */
static int nap(unsigned seconds)
{
#ifdef __wasi__
	__wasi_subscription_t sub = { 0 };
	__wasi_event_t event;
	__wasi_size_t n;

	sub.u.tag = __WASI_EVENTTYPE_CLOCK;
	sub.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
	sub.u.u.clock.timeout = (__wasi_timestamp_t)seconds * 1000000000ull;
	return __wasi_poll_oneoff(&sub, &event, 1, &n) ? 1 : 0;
#else
	while (seconds > 0)
		seconds = sleep(seconds);
	return 0;
#endif
}

static int list(char **items)
{
	for (; *items; items++)
		if (put(1, *items, strlen(*items) + 1))
			return 1;
	return 0;
}

static int cat(void)
{
	char buf[4096];
	ssize_t got;

	while ((got = read(0, buf, sizeof buf)) > 0)
		if (put(1, buf, (size_t)got))
			return 1;
	return got < 0;
}

int main(int argc, char **argv)
{
	const char *verb = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "0";

	if (!strcmp(verb, "argv"))
		return list(argv);
	if (!strcmp(verb, "env"))
		return list(environ);
	if (!strcmp(verb, "exit"))
		return atoi(arg);
	if (!strcmp(verb, "print") && argc == 4)
		return put(1, argv[2], strlen(argv[2])) || put(2, argv[3], strlen(argv[3]));
	if (!strcmp(verb, "sleep"))
		return nap((unsigned)atoi(arg));
	if (!strcmp(verb, "cat"))
		return cat();
#ifndef __wasi__
	if (!strcmp(verb, "ignore-term")) {
		signal(SIGTERM, SIG_IGN);
		if (put(1, "ready\n", 6))
			return 1;
		return nap((unsigned)atoi(arg));
	}
	if (!strcmp(verb, "raise")) {
		raise(atoi(arg));
		return 100;
	}
#endif
	put(2, "inclavare conformance program: unknown request\n", 47);
	return 100;
}
