/* hello-native: a static Linux program for the `native` software enclave.
 *
 * Prints its argv and environment, then acts on its arguments (after argv[0]):
 *   exit=N      exit with status N once done                      (default 0)
 *   probe       print what the sandbox looks like from inside:
 *                 dumpable=    prctl(PR_GET_DUMPABLE)   (man 2 prctl)
 *                 nnp= seccomp=  NoNewPrivs / Seccomp of /proc/self/status
 *                 ptrace=      ptrace(PTRACE_TRACEME) -> "ok" or the errno name
 *                 vm_readv=    process_vm_readv on itself
 *                 exe=         readlink(/proc/self/exe)
 *                 exe_read=    open(/proc/self/exe, O_RDONLY)
 *                 rlimit_as=   RLIMIT_AS soft limit in bytes ("unlimited")
 *   spin        loop forever (for kill tests)
 *   sleep=S     sleep S seconds
 *   alloc=M     allocate and touch M MiB; "alloc M" or "alloc failed"
 *   cat         copy stdin to stdout until end of file
 *   fds         list its open file descriptors ("fds 0 1 2")
 *
 * Statically linked (samples/Makefile) so it runs in a busybox rootfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

extern char **environ;

static const char *result(long ret) { return ret < 0 ? strerrorname_np(errno) : "ok"; }

static void status_field(const char *name) {
    char line[256];
    size_t len = strlen(name);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) { printf("%s=?\n", name); return; }
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, len) && line[len] == ':') {
            char *v = line + len + 1;
            while (*v == ' ' || *v == '\t') v++;
            printf("%s=%s", name, v);
        }
    fclose(f);
}

static void probe(void) {
    char exe[256] = "";
    char word[8] = "", copy[8] = "";
    struct iovec local = {copy, sizeof copy}, remote = {word, sizeof word};
    struct rlimit rl;
    printf("dumpable=%d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    status_field("NoNewPrivs");
    status_field("Seccomp");
    printf("ptrace=%s\n", result(ptrace(PTRACE_TRACEME, 0, NULL, NULL)));
    printf("vm_readv=%s\n", result(process_vm_readv(getpid(), &local, 1, &remote, 1, 0)));
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    printf("exe=%s\n", n < 0 ? strerrorname_np(errno) : exe);
    int fd = open("/proc/self/exe", O_RDONLY);
    printf("exe_read=%s\n", result(fd));
    if (fd >= 0) close(fd);
    getrlimit(RLIMIT_AS, &rl);
    if (rl.rlim_cur == RLIM_INFINITY) printf("rlimit_as=unlimited\n");
    else printf("rlimit_as=%llu\n", (unsigned long long)rl.rlim_cur);
    printf("uid=%d\n", (int)getuid());
}

static void fds(void) {
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d) { printf("fds ?\n"); return; }
    printf("fds");
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d)) printf(" %s", e->d_name);
    printf("\n");
    closedir(d);
}

int main(int argc, char **argv) {
    int code = 0;
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "exit=", 5)) {
            code = atoi(a + 5);
        } else if (!strcmp(a, "probe")) {
            probe();
        } else if (!strcmp(a, "fds")) {
            fds();
        } else if (!strcmp(a, "spin")) {
            fflush(stdout);
            volatile unsigned long n = 0;
            for (;;) n++;
        } else if (!strncmp(a, "sleep=", 6)) {
            fflush(stdout);
            sleep((unsigned)atoi(a + 6));
            printf("slept\n");
        } else if (!strncmp(a, "alloc=", 6)) {
            size_t mib = (size_t)atoi(a + 6);
            /* volatile: otherwise the compiler may drop an allocation nobody reads */
            volatile char *p = malloc(mib << 20);
            if (p) {
                for (size_t off = 0; off < (mib << 20); off += 4096) p[off] = 1;
                printf("alloc %zu (%d)\n", mib, p[(mib << 20) - 4096]);
            } else {
                printf("alloc failed\n");
            }
        } else if (!strcmp(a, "cat")) {
            char buf[4096];
            ssize_t got;
            fflush(stdout);
            while ((got = read(0, buf, sizeof buf)) > 0)
                if (write(1, buf, (size_t)got) != got) return 1;
        }
        fflush(stdout);
    }
    return code;
}
