/*
 * pause: the sandbox ("infra") process of a Kubernetes pod.
 *
 * containerd's CRI plugin starts it first in every pod (the `sandbox_image`
 * of its config); the pod's namespaces live as long as it does. It must:
 *  - do nothing and use nothing while the pod runs;
 *  - exit promptly on SIGTERM or SIGINT (StopPodSandbox sends SIGTERM, then
 *    SIGKILL after a grace period), with status 0;
 *  - reap zombies: as PID 1 of a pod that shares its PID namespace
 *    (shareProcessNamespace), orphans are re-parented to it.
 *
 * Signals are taken synchronously with sigwait(3) instead of handlers. They
 * stay blocked, which also matters for PID 1: the kernel discards a signal
 * sent to a namespace's init that has no handler for it, but never one that
 * is blocked (signal(7), pid_namespaces(7) "The namespace init process").
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	sigset_t set;
	int sig;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		puts("pause (inclavare samples/pause)");
		return 0;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
		perror("pause: sigprocmask");
		return 1;
	}
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig != SIGCHLD) {
			fprintf(stderr, "pause: shutting down on signal %d\n", sig);
			return 0;
		}
		/* One SIGCHLD may stand for several exits: reap them all. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
