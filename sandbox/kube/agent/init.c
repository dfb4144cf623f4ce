/* opsportal-init: what bubblewrap runs inside a sandbox container, before (and as) the command.
 *
 *   opsportal-init UID GID STATUS_FD STDERR_FD ARGV...
 *
 * bwrap without a user namespace cannot change the uid, and a user namespace would map the container's
 * uid back to root on the host; so this drops to UID:GID for real (setgroups/setgid/setuid), points fd 2
 * at STDERR_FD (bwrap's own stderr stays a separate pipe, so its errors are told apart from the app's),
 * closes every other inherited descriptor and execs ARGV, searching the container's PATH.
 * STATUS_FD tells the runtime how the exec went: "R" before the exec, then either end-of-file (the exec
 * succeeded: the descriptor is close-on-exec) or an error message after the "R" (the exec failed).
 * Built static: it runs inside the image's rootfs, which may have no libc at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fail(int status_fd, const char *what, const char *arg) {
    dprintf(status_fd, "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "", strerror(errno));
    _exit(127);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: opsportal-init UID GID STATUS_FD STDERR_FD ARGV...\n");
        return 127;
    }
    uid_t uid = (uid_t)strtoul(argv[1], NULL, 10);
    gid_t gid = (gid_t)strtoul(argv[2], NULL, 10);
    int status_fd = atoi(argv[3]);
    int stderr_fd = atoi(argv[4]);
    char **app = argv + 5;

    if (dup2(stderr_fd, 2) < 0) fail(status_fd, "dup2", NULL);
    /* Keep 0, 1, 2 and the status descriptor; nothing else of the runtime's may leak into the app. */
    int low = status_fd < 3 ? 3 : status_fd;
    if (status_fd > 3) close_range(3, status_fd - 1, 0);
    close_range(low + 1, ~0U, 0);
    if (setgroups(1, &gid) < 0) fail(status_fd, "setgroups", NULL);
    if (setgid(gid) < 0) fail(status_fd, "setgid", NULL);
    if (setuid(uid) < 0) fail(status_fd, "setuid", NULL);
    if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0) fail(status_fd, "fcntl", NULL);
    if (write(status_fd, "R", 1) != 1) _exit(127);
    execvp(app[0], app);
    if (errno == ENOENT)
        dprintf(status_fd, "exec: \"%s\": executable file not found in $PATH", app[0]);
    else
        dprintf(status_fd, "exec: \"%s\": %s", app[0], strerror(errno));
    _exit(127);
}
