/* fork + exec with an fd map (see spawn.h). */
#include "supervisor/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* In the child, between fork and exec: only async-signal-safe calls and setenv (the
 * supervisor is single-threaded, so the allocator is in a consistent state). */
static void child(const struct sv_spawn *s, pid_t parent, int report_fd)
{
    int e = 0;
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        _exit(127); /* the supervisor is already gone */

    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, 0) < 0)
        goto fail;
    /* Move every source above the target range first, so that dup2 never overwrites a
     * source that is itself one of the targets. */
    int tmp[SV_SPAWN_MAX_FDS];
    for (int i = 0; i < s->n_fds; i++)
        if ((tmp[i] = fcntl(s->fds[i], F_DUPFD_CLOEXEC, 3 + SV_SPAWN_MAX_FDS)) < 0)
            goto fail;
    for (int i = 0; i < s->n_fds; i++)
        if (dup2(tmp[i], 3 + i) < 0) /* dup2 clears FD_CLOEXEC on the target */
            goto fail;
    close_range((unsigned)(3 + s->n_fds), ~0U, CLOSE_RANGE_CLOEXEC);
    for (int i = 0; i < s->n_env; i++) {
        const char *eq = strchr(s->env[i], '=');
        char key[128];
        size_t klen = eq ? (size_t)(eq - s->env[i]) : 0;
        if (!eq || klen >= sizeof key)
            continue;
        memcpy(key, s->env[i], klen);
        key[klen] = 0;
        setenv(key, eq + 1, 1);
    }
    execv(s->path, s->argv);
fail:
    e = errno;
    if (write(report_fd, &e, sizeof e) < 0) {
        /* nothing more to do: the parent sees exit 127 */
    }
    _exit(127);
}

pid_t sv_spawn_run(const struct sv_spawn *s, char *err, size_t errlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe2() failed while spawning \"%s\": %s", s->path, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork() failed while spawning \"%s\": %s", s->path, strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        child(s, parent, p[1]);
    }
    close(p[1]);
    int e = 0;
    ssize_t r;
    do
        r = read(p[0], &e, sizeof e);
    while (r < 0 && errno == EINTR);
    close(p[0]);
    if (r == (ssize_t)sizeof e) {
        snprintf(err, errlen, "exec of \"%s\" failed: %s", s->path, strerror(e));
        return -1;
    }
    return pid;
}
