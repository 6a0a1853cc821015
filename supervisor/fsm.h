/* The life of one supervised process (a worker or the gateway) as a state x event table.
 *
 * The supervisor's logic about a child is only this table: an event arrives (a message on
 * the child's control channel, a timer, its exit), the table names the next state and the one
 * action to take. Everything else (spawning, restart policy, reload order) lives outside and
 * reacts to the actions. Read fsm.c's table top to bottom to know what the supervisor does. */
#ifndef VL_SUPERVISOR_FSM_H
#define VL_SUPERVISOR_FSM_H

enum sv_state {
    SV_STARTING, /* spawned; loading; not yet announced `ready` */
    SV_READY,    /* serving: the gateway may route to it */
    SV_DRAINING, /* being replaced: the gateway routes nothing new, finishes what it sent */
    SV_STOPPING, /* SIGTERM (or SIGABRT/SIGKILL) sent; waiting for its exit */
    SV_DEAD,     /* exited; the slot's restart policy decides what comes next */
    SV_N_STATES
};

enum sv_event {
    SV_EV_READY,         /* `ready` (worker) / `gateway_ready` message */
    SV_EV_HEARTBEAT,     /* `heartbeat` message */
    SV_EV_HUNG,          /* no heartbeat for heartbeat-timeout (or not ready by start-timeout) */
    SV_EV_DRAIN,         /* a successor is ready: stop routing to this one */
    SV_EV_DRAINED,       /* the gateway reports no item of it in flight (or the gateway is gone) */
    SV_EV_DRAIN_TIMEOUT, /* drain-timeout passed while draining */
    SV_EV_STOP,          /* graceful stop of this process (shutdown, or a failed successor) */
    SV_EV_STOP_TIMEOUT,  /* stop-timeout passed after SIGTERM/SIGABRT */
    SV_EV_EXIT,          /* waitpid() reported its end */
    SV_N_EVENTS
};

enum sv_action {
    SV_ACT_NONE,    /* nothing (the event is expected and changes nothing) */
    SV_ACT_IGNORE,  /* nothing, but the event was unexpected in this state: logged at debug */
    SV_ACT_PUBLISH, /* tell the gateway the new worker set */
    SV_ACT_TERM,    /* send SIGTERM, arm stop-timeout, tell the gateway */
    SV_ACT_ABORT,   /* hung: send SIGABRT (core dump), arm stop-timeout, tell the gateway */
    SV_ACT_KILL,    /* send SIGKILL */
    SV_ACT_REAP,    /* record the exit; the slot's restart policy runs; tell the gateway */
};

struct sv_transition {
    enum sv_state next;
    enum sv_action action;
};

/* The table's entry for (state, event). Defined for every pair. */
struct sv_transition sv_fsm_step(enum sv_state state, enum sv_event event);

const char *sv_state_name(enum sv_state s);
const char *sv_event_name(enum sv_event e);
const char *sv_action_name(enum sv_action a);

#endif
