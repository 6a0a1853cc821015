/* The state x event table of a supervised process (see fsm.h). Every pair is listed; a pair
 * that cannot happen or means nothing in that state is an explicit IGNORE, so nothing is
 * left to a default. */
#include "supervisor/fsm.h"

/* clang-format off */
#define T(n, a) {SV_##n, SV_ACT_##a}

static const struct sv_transition table[SV_N_STATES][SV_N_EVENTS] = {
/*  event:          READY              HEARTBEAT          HUNG               DRAIN               DRAINED            DRAIN_TIMEOUT      STOP               STOP_TIMEOUT       EXIT */
[SV_STARTING] = { T(READY,PUBLISH),  T(STARTING,NONE),  T(STOPPING,KILL),  T(STOPPING,TERM),   T(STARTING,IGNORE),T(STARTING,IGNORE),T(STOPPING,TERM),  T(STARTING,IGNORE),T(DEAD,REAP) },
[SV_READY]    = { T(READY,IGNORE),   T(READY,NONE),     T(STOPPING,ABORT), T(DRAINING,PUBLISH),T(READY,IGNORE),   T(READY,IGNORE),   T(STOPPING,TERM),  T(READY,IGNORE),   T(DEAD,REAP) },
[SV_DRAINING] = { T(DRAINING,IGNORE),T(DRAINING,NONE),  T(STOPPING,ABORT), T(DRAINING,IGNORE), T(STOPPING,TERM),  T(STOPPING,TERM),  T(STOPPING,TERM),  T(DRAINING,IGNORE),T(DEAD,REAP) },
[SV_STOPPING] = { T(STOPPING,IGNORE),T(STOPPING,NONE),  T(STOPPING,IGNORE),T(STOPPING,IGNORE), T(STOPPING,IGNORE),T(STOPPING,IGNORE),T(STOPPING,IGNORE),T(STOPPING,KILL),  T(DEAD,REAP) },
[SV_DEAD]     = { T(DEAD,IGNORE),    T(DEAD,IGNORE),    T(DEAD,IGNORE),    T(DEAD,IGNORE),     T(DEAD,IGNORE),    T(DEAD,IGNORE),    T(DEAD,IGNORE),    T(DEAD,IGNORE),    T(DEAD,IGNORE) },
};
/* clang-format on */
/* Reading it: a starting process that hangs (not ready by start-timeout) is killed outright,
 * having nothing to finish; a ready or draining one that misses heartbeats gets SIGABRT (a core
 * to look at) and SIGKILL 5 s later; DRAIN is only meaningful for a ready process; and
 * every state but DEAD ends in REAP when the process exits, whatever was going on. */

struct sv_transition sv_fsm_step(enum sv_state state, enum sv_event event)
{
    if ((unsigned)state >= SV_N_STATES || (unsigned)event >= SV_N_EVENTS)
        return (struct sv_transition){SV_DEAD, SV_ACT_IGNORE};
    return table[state][event];
}

const char *sv_state_name(enum sv_state s)
{
    static const char *n[] = {"starting", "ready", "draining", "stopping", "dead"};
    return (unsigned)s < SV_N_STATES ? n[s] : "?";
}

const char *sv_event_name(enum sv_event e)
{
    static const char *n[] = {"ready",         "heartbeat", "hung",         "drain", "drained",
                              "drain-timeout", "stop",      "stop-timeout", "exit"};
    return (unsigned)e < SV_N_EVENTS ? n[e] : "?";
}

const char *sv_action_name(enum sv_action a)
{
    static const char *n[] = {"none", "ignore", "publish", "term", "abort", "kill", "reap"};
    return (unsigned)a <= SV_ACT_REAP ? n[a] : "?";
}
