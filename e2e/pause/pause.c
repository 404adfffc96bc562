/*
 * pause: the process that holds a pod sandbox's namespaces in the test
 * cluster's nodes (e2e/cluster).  The test cluster pulls no image from any
 * registry, so the sandbox image is built here: this program, linked
 * statically, alone in a FROM-scratch image.  It sleeps until SIGINT or
 * SIGTERM and reaps the children it inherits as PID 1 of the sandbox.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	struct sigaction stop = {.sa_handler = on_stop}, child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};

	if (sigaction(SIGINT, &stop, NULL) || sigaction(SIGTERM, &stop, NULL) || sigaction(SIGCHLD, &child, NULL))
		return 1;
	for (;;)
		pause();
}
