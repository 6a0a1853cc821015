/* Starting a child process the way every supervised process is started: its own process
 * group (a terminal's Ctrl-C reaches only the supervisor, which stops the children in order),
 * SIGTERM when the supervisor dies (PR_SET_PDEATHSIG, re-checked against a race), default
 * signal dispositions and an empty signal mask, stdin on /dev/null, stdout/stderr inherited,
 * the given fds at 3, 4, 5... and every other fd closed on exec. */
#ifndef VL_SUPERVISOR_SPAWN_H
#define VL_SUPERVISOR_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#define SV_SPAWN_MAX_FDS 4
#define SV_SPAWN_MAX_ENV 4

struct sv_spawn {
    const char *path;          /* executable */
    char *const *argv;         /* NULL-terminated */
    int fds[SV_SPAWN_MAX_FDS]; /* fds[i] becomes fd 3 + i in the child */
    int n_fds;
    const char *env[SV_SPAWN_MAX_ENV]; /* "KEY=value" set in the child's environment */
    int n_env;
};

/* Forks and execs. Returns the child's pid once exec has succeeded, or -1 with err set
 * (fork failed, or exec failed: the child has then exited 127 and is reaped by the caller's
 * normal waitpid loop). */
pid_t sv_spawn_run(const struct sv_spawn *s, char *err, size_t errlen);

#endif
