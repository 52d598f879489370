/* hello.wasm: a WASI preview-1 command for the `wasm` enclave runtime.
 *
 * Prints its argv and environment, then acts on its arguments (after argv[0]):
 *   exit=N      exit with status N (proc_exit) once done        (default 0)
 *   spin        loop forever in wasm code (for kill / fuel / timeout tests)
 *   sleep=S     sleep S seconds (poll_oneoff with a clock subscription)
 *   cat         copy stdin to stdout until end of file
 *   grow=M      allocate and touch M MiB of linear memory; "grew M" or "grow failed"
 *   read=PATH   print the content of PATH (only preopened directories are visible)
 *   write=PATH  write "written\n" to PATH
 *   cwd         print the working directory as wasi-libc sees it
 *
 * Built with Debian's clang + wasm-ld + wasi-libc (samples/Makefile).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

extern char **environ;

/* sleep(3) through poll_oneoff directly (WASI preview 1, "poll_oneoff"):
 * wasi-libc's clock_nanosleep needs compiler-rt's __muloti4, which Debian
 * ships separately (libclang-rt-14-dev-wasm32); this keeps the build to
 * clang + lld + wasi-libc. */
static int wasi_sleep(unsigned seconds) {
    __wasi_subscription_t sub = {0};
    __wasi_event_t event;
    __wasi_size_t n;
    sub.u.tag = __WASI_EVENTTYPE_CLOCK;
    sub.u.u.clock.id = __WASI_CLOCKID_MONOTONIC;
    sub.u.u.clock.timeout = (__wasi_timestamp_t)seconds * 1000000000ull;
    return __wasi_poll_oneoff(&sub, &event, 1, &n);
}

static int copy(FILE *in, FILE *out) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) return -1;
    return ferror(in) ? -1 : 0;
}

int main(int argc, char **argv) {
    int code = 0;
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    fflush(stdout);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "exit=", 5)) {
            code = atoi(a + 5);
        } else if (!strcmp(a, "spin")) {
            volatile unsigned long n = 0;
            for (;;) n++;
        } else if (!strncmp(a, "sleep=", 6)) {
            int err = wasi_sleep((unsigned)atoi(a + 6));
            printf(err ? "sleep: error %d\n" : "slept\n", err);
        } else if (!strcmp(a, "cat")) {
            if (copy(stdin, stdout)) { perror("cat"); return 1; }
        } else if (!strncmp(a, "grow=", 5)) {
            size_t mib = (size_t)atoi(a + 5);
            /* volatile: otherwise clang may drop an allocation nobody reads */
            volatile char *p = malloc(mib << 20);
            if (p) {
                for (size_t off = 0; off < (mib << 20); off += 4096) p[off] = 1;
                printf("grew %zu (%d)\n", mib, p[(mib << 20) - 4096]);
            } else {
                printf("grow failed\n");
            }
        } else if (!strncmp(a, "read=", 5)) {
            FILE *f = fopen(a + 5, "r");
            if (!f) { printf("read %s: %s\n", a + 5, strerror(errno)); continue; }
            copy(f, stdout);
            fclose(f);
        } else if (!strncmp(a, "write=", 6)) {
            FILE *f = fopen(a + 6, "w");
            if (!f) { printf("write %s: %s\n", a + 6, strerror(errno)); continue; }
            fputs("written\n", f);
            fclose(f);
            printf("wrote %s\n", a + 6);
        } else if (!strcmp(a, "cwd")) {
            char buf[256];
            printf("cwd %s\n", getcwd(buf, sizeof buf) ? buf : strerror(errno));
        }
        fflush(stdout);
    }
    fflush(stdout);
    return code;
}
