/* Enter a running sandbox container: its cgroups, then its ipc, uts, net, pid, cgroup and mount namespaces, its
 * root, its user and capabilities, and its working directory. Built two ways from this one file:
 *
 *  - libopsportal-enter.so, for LD_PRELOAD: kwok runs exec commands (the web terminal, kubectl exec) on
 *    the host; with LD_PRELOAD=<this .so> and OPSPORTAL_ENTER_PID=<container pid> in the Exec object's
 *    envs, a constructor moves the freshly started program into the container before its main() runs,
 *    so every program it then execs comes from the container's rootfs. It gets the container's
 *    environment, plus TERM and the variables named in OPSPORTAL_ENTER_KEEP from the caller's.
 *  - opsportal-enter PID ARGV... (compiled with -DENTER_MAIN), for the agent's exec probes and preStop
 *    hooks: enters the same way, takes the container's environment and execs ARGV found in its PATH.
 *
 * A pid namespace applies only to children, so after setns the program forks: the child goes on inside
 * the container, the parent stays outside, relays SIGHUP/SIGINT/SIGTERM/SIGQUIT/SIGWINCH to it, waits
 * and exits with its status (re-raising a fatal signal), so the caller sees one process that behaves
 * like the command. Failures print one line on stderr and exit 126, as a shell does for "cannot run".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child_pid;

static void die(const char *what, const char *arg) {
    int saved = errno;
    fprintf(stderr, "opsportal-enter: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(saved));
    _exit(126);
}

static void relay(int signum) {
    if (child_pid > 0) kill(child_pid, signum);
}

/* Join the container's memory, cpu and cpuacct cgroups (v1), read from /proc/PID/cgroup. */
static void join_cgroups(const char *pid) {
    char path[4096];
    snprintf(path, sizeof path, "/proc/%s/cgroup", pid);
    FILE *f = fopen(path, "re");
    if (!f) die("open", path);
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *ctls = strchr(line, ':');
        if (!ctls) continue;
        ctls++;
        char *cgpath = strchr(ctls, ':');
        if (!cgpath) continue;
        *cgpath++ = '\0';
        cgpath[strcspn(cgpath, "\n")] = '\0';
        if (*ctls == '\0' || strncmp(ctls, "name=", 5) == 0) continue; /* v2 or named hierarchies */
        int wanted = 0;
        char copy[256];
        snprintf(copy, sizeof copy, "%s", ctls);
        for (char *save = NULL, *c = strtok_r(copy, ",", &save); c; c = strtok_r(NULL, ",", &save))
            if (!strcmp(c, "memory") || !strcmp(c, "cpu") || !strcmp(c, "cpuacct")) wanted = 1;
        if (!wanted) continue;
        char procs[4096];
        snprintf(procs, sizeof procs, "/sys/fs/cgroup/%s%s/cgroup.procs", ctls, cgpath);
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0) continue; /* e.g. co-mounted controllers under another name: best effort */
        char self[32];
        int n = snprintf(self, sizeof self, "%d\n", getpid());
        if (write(fd, self, n) != n) die("join cgroup", procs);
        close(fd);
    }
    fclose(f);
}

/* The target's capability sets, so that an exec into a root container gets what the container has
 * (containerd's default set), not everything the host's root has. */
struct caps {
    unsigned long long inheritable, permitted, effective, bounding;
};

/* The target's uid, gid, supplementary groups and capabilities, from /proc/PID/status. */
static void read_ids(const char *pid, uid_t *uid, gid_t *gid, gid_t *groups, int *ngroups, struct caps *caps) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/status", pid);
    FILE *f = fopen(path, "re");
    if (!f) die("open", path);
    char line[4096];
    *ngroups = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Uid:", 4)) *uid = (uid_t)strtoul(line + 4, NULL, 10);
        else if (!strncmp(line, "Gid:", 4)) *gid = (gid_t)strtoul(line + 4, NULL, 10);
        else if (!strncmp(line, "CapInh:", 7)) caps->inheritable = strtoull(line + 7, NULL, 16);
        else if (!strncmp(line, "CapPrm:", 7)) caps->permitted = strtoull(line + 7, NULL, 16);
        else if (!strncmp(line, "CapEff:", 7)) caps->effective = strtoull(line + 7, NULL, 16);
        else if (!strncmp(line, "CapBnd:", 7)) caps->bounding = strtoull(line + 7, NULL, 16);
        else if (!strncmp(line, "Groups:", 7)) {
            char *p = line + 7, *end;
            while (*ngroups < 64) {
                unsigned long g = strtoul(p, &end, 10);
                if (end == p) break;
                groups[(*ngroups)++] = (gid_t)g;
                p = end;
            }
        }
    }
    fclose(f);
}

static int open_ns(const char *pid, const char *name) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/ns/%s", pid, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open", path);
    return fd;
}

/* The container's working directory as its app sees it (the image's or pod's workingDir). */
static void read_workdir(const char *pid, char *out, size_t size) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/cwd", pid);
    ssize_t n = readlink(path, out, size - 1);
    if (n <= 0 || out[0] != '/') n = 0, out[n++] = '/';
    out[n] = '\0';
}

/* Replace the environment with the target's (its initial one: the kubelet gives an exec its container's
 * env), keeping the current values of the names in the comma-separated KEEP (may be NULL). */
static void take_environment(const char *pid, const char *keep) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open", path);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
    }
    close(fd);
    if (!buf) die("read", path);
    buf[len] = '\0';
    char *kept[32];
    int nkept = 0;
    if (keep) {
        char *names = strdup(keep);
        for (char *save = NULL, *name = strtok_r(names, ",", &save); name && nkept < 32;
             name = strtok_r(NULL, ",", &save)) {
            const char *value = getenv(name);
            if (!value) continue;
            size_t size = strlen(name) + strlen(value) + 2;
            kept[nkept] = malloc(size);
            if (kept[nkept]) snprintf(kept[nkept++], size, "%s=%s", name, value);
        }
    }
    clearenv();
    for (char *p = buf; p < buf + len; p += strlen(p) + 1)
        if (strchr(p, '=')) putenv(p); /* the buffer stays alive: putenv keeps the pointer */
    for (int i = 0; i < nkept; i++) putenv(kept[i]);
}

/* Take the target's user, groups and capability sets (a uid other than 0 ends up with none). */
static void become(uid_t uid, gid_t gid, gid_t *groups, int ngroups, const struct caps *caps) {
    /* The bounding set is cut to what the target may use: a root exec's programs would otherwise get
     * the whole bounding set back at execve (bwrap keeps them from that with securebits). */
    unsigned long long allowed = caps->bounding & caps->permitted;
    for (int cap = 0; cap < 64; cap++)
        if (!(allowed & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            die("drop a capability from the bounding set", NULL);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (setgroups((size_t)ngroups, groups) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
        die("drop to the container's user", NULL);
    if (uid != 0) return; /* setuid to another uid has cleared the permitted and effective sets */
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].inheritable = (__u32)(caps->inheritable >> (32 * i));
        data[i].permitted = (__u32)(caps->permitted >> (32 * i));
        data[i].effective = (__u32)(caps->effective >> (32 * i));
    }
    if (syscall(SYS_capset, &header, data) < 0) die("set the container's capabilities", NULL);
}

/* Returns in the child, inside the container; the parent never returns. */
static void enter(const char *pid, const char *keep) {
    char *end;
    long value = strtol(pid, &end, 10);
    if (value <= 0 || *end) {
        errno = EINVAL;
        die("bad container pid", pid);
    }
    uid_t uid = 0;
    gid_t gid = 0, groups[64];
    int ngroups = 0;
    char workdir[4096];
    struct caps caps = {0, 0, 0, 0};
    read_ids(pid, &uid, &gid, groups, &ngroups, &caps);
    read_workdir(pid, workdir, sizeof workdir);
    take_environment(pid, keep);
    char root_path[64];
    snprintf(root_path, sizeof root_path, "/proc/%s/root", pid);
    int root = open(root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) die("open", root_path);
    /* The cgroup namespace after the groups are joined, so that its root is the container's groups
     * (as for the container itself: /proc/self/cgroup reads "/"); the mount namespace last, since the
     * paths above are the host's. */
    static const char *names[] = {"ipc", "uts", "net", "pid", "cgroup", "mnt"};
    static const int types[] = {CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWCGROUP, CLONE_NEWNS};
    enum { COUNT = sizeof names / sizeof *names };
    int fds[COUNT];
    for (int i = 0; i < COUNT; i++) fds[i] = open_ns(pid, names[i]);
    join_cgroups(pid);
    for (int i = 0; i < COUNT; i++) {
        if (setns(fds[i], types[i]) < 0) die("setns", names[i]);
        close(fds[i]);
    }
    if (fchdir(root) < 0 || chroot(".") < 0) die("chroot", root_path);
    close(root);
    if (chdir(workdir) < 0 && chdir("/") < 0) die("chdir", workdir);

    /* Block the relayed signals across the fork so none is lost between fork and the handlers. */
    static const int relayed[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGWINCH};
    sigset_t set, old;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaddset(&set, relayed[i]);
    sigprocmask(SIG_BLOCK, &set, &old);
    child_pid = fork();
    if (child_pid < 0) die("fork", NULL);
    if (child_pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        become(uid, gid, groups, ngroups, &caps);
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = relay;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaction(relayed[i], &sa, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    int status;
    while (waitpid(child_pid, &status, 0) < 0)
        if (errno != EINTR) die("waitpid", NULL);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        kill(getpid(), sig);
        _exit(128 + sig);
    }
    _exit(WEXITSTATUS(status));
}

#ifdef ENTER_MAIN
int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: opsportal-enter PID ARGV...\n");
        return 126;
    }
    enter(argv[1], NULL);
    execvp(argv[2], argv + 2);
    int saved = errno;
    fprintf(stderr, "opsportal-enter: exec %s: %s\n", argv[2], strerror(saved));
    return saved == ENOENT ? 127 : 126;
}
#else
__attribute__((constructor)) static void enter_from_env(void) {
    const char *pid = getenv("OPSPORTAL_ENTER_PID");
    if (!pid) return;
    char copy[32];
    snprintf(copy, sizeof copy, "%s", pid);
    /* The container's environment replaces the caller's (kwok's own would leak in otherwise), which also
     * drops LD_PRELOAD and OPSPORTAL_ENTER_PID, so nothing started inside enters again. TERM (the
     * terminal's type) and the names listed in OPSPORTAL_ENTER_KEEP keep the caller's values. */
    char keep[1024];
    const char *extra = getenv("OPSPORTAL_ENTER_KEEP");
    snprintf(keep, sizeof keep, "TERM%s%s", extra ? "," : "", extra ? extra : "");
    enter(copy, keep);
}
#endif
