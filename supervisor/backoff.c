/* Restart policy (see backoff.h). */
#include "supervisor/backoff.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "common/exitcode.h"

int sv_exit_is_permanent(int wstatus)
{
    return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == VL_EXIT_PERMANENT;
}

double sv_backoff_on_exit(const struct sv_backoff_cfg *cfg, struct sv_backoff *b, int wstatus,
                          double ready_for_s)
{
    if (ready_for_s >= cfg->healthy_s) {
        b->fails = 0;
        b->perm_fails = 0;
    }
    if (sv_exit_is_permanent(wstatus)) {
        b->perm_fails++;
        if (b->perm_fails >= cfg->max_permanent) {
            b->failed = 1;
            return -1;
        }
    } else {
        b->perm_fails = 0;
    }
    b->fails++;
    if (b->fails == 1)
        return 0;
    /* 2^(n-2) overflows nothing: the exponent is capped well before double range matters. */
    int e = b->fails - 2 < 30 ? b->fails - 2 : 30;
    double d = cfg->delay_min_s * ldexp(1.0, e);
    return d < cfg->delay_max_s ? d : cfg->delay_max_s;
}

void sv_backoff_reset(struct sv_backoff *b)
{
    memset(b, 0, sizeof *b);
}

void sv_exit_describe(int wstatus, char *buf, unsigned len)
{
    if (WIFEXITED(wstatus))
        snprintf(buf, len, "exit %d", WEXITSTATUS(wstatus));
    else if (WIFSIGNALED(wstatus))
        snprintf(buf, len, "signal %d (%s)%s", WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)),
                 WCOREDUMP(wstatus) ? ", core dumped" : "");
    else
        snprintf(buf, len, "status 0x%x", (unsigned)wstatus);
}
