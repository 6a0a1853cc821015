/* The supervisor's state x event table: complete, and the transitions the design relies on. */
#include "supervisor/fsm.h"
#include "tests/test.h"

TEST(test_every_pair_defined)
{
    for (int s = 0; s < SV_N_STATES; s++)
        for (int e = 0; e < SV_N_EVENTS; e++) {
            struct sv_transition t = sv_fsm_step((enum sv_state)s, (enum sv_event)e);
            CHECK((unsigned)t.next < SV_N_STATES);
            CHECK((unsigned)t.action <= SV_ACT_REAP);
            /* an unlisted pair would be {STARTING, NONE} (zeroes): only listed ones may be */
            if (t.next == SV_STARTING && t.action == SV_ACT_NONE)
                CHECK(s == SV_STARTING && e == SV_EV_HEARTBEAT);
        }
}

TEST(test_exit_always_reaps)
{
    for (int s = 0; s < SV_DEAD; s++) {
        struct sv_transition t = sv_fsm_step((enum sv_state)s, SV_EV_EXIT);
        CHECK_EQ_INT(t.next, SV_DEAD);
        CHECK_EQ_INT(t.action, SV_ACT_REAP);
    }
    CHECK_EQ_INT(sv_fsm_step(SV_DEAD, SV_EV_EXIT).action, SV_ACT_IGNORE);
}

TEST(test_lifecycle)
{
    struct sv_transition t = sv_fsm_step(SV_STARTING, SV_EV_READY);
    CHECK_EQ_INT(t.next, SV_READY);
    CHECK_EQ_INT(t.action, SV_ACT_PUBLISH);
    t = sv_fsm_step(SV_READY, SV_EV_DRAIN);
    CHECK_EQ_INT(t.next, SV_DRAINING);
    CHECK_EQ_INT(t.action, SV_ACT_PUBLISH);
    t = sv_fsm_step(SV_DRAINING, SV_EV_DRAINED);
    CHECK_EQ_INT(t.next, SV_STOPPING);
    CHECK_EQ_INT(t.action, SV_ACT_TERM);
    t = sv_fsm_step(SV_DRAINING, SV_EV_DRAIN_TIMEOUT);
    CHECK_EQ_INT(t.next, SV_STOPPING);
    CHECK_EQ_INT(t.action, SV_ACT_TERM);
    t = sv_fsm_step(SV_STOPPING, SV_EV_STOP_TIMEOUT);
    CHECK_EQ_INT(t.next, SV_STOPPING);
    CHECK_EQ_INT(t.action, SV_ACT_KILL);
}

TEST(test_hangs)
{
    /* not ready in time: nothing to finish, killed outright */
    CHECK_EQ_INT(sv_fsm_step(SV_STARTING, SV_EV_HUNG).action, SV_ACT_KILL);
    /* missed heartbeats while serving: SIGABRT first (a core to look at) */
    CHECK_EQ_INT(sv_fsm_step(SV_READY, SV_EV_HUNG).action, SV_ACT_ABORT);
    CHECK_EQ_INT(sv_fsm_step(SV_DRAINING, SV_EV_HUNG).action, SV_ACT_ABORT);
    CHECK_EQ_INT(sv_fsm_step(SV_READY, SV_EV_HUNG).next, SV_STOPPING);
    /* already stopping: the stop timer escalates, not the heartbeat check */
    CHECK_EQ_INT(sv_fsm_step(SV_STOPPING, SV_EV_HUNG).action, SV_ACT_IGNORE);
}

TEST(test_stop_and_drain_edges)
{
    CHECK_EQ_INT(sv_fsm_step(SV_STARTING, SV_EV_STOP).action, SV_ACT_TERM);
    CHECK_EQ_INT(sv_fsm_step(SV_READY, SV_EV_STOP).action, SV_ACT_TERM);
    CHECK_EQ_INT(sv_fsm_step(SV_DRAINING, SV_EV_STOP).action, SV_ACT_TERM);
    CHECK_EQ_INT(sv_fsm_step(SV_STOPPING, SV_EV_STOP).action, SV_ACT_IGNORE);
    /* a successor replacing a worker that never became ready: stop it, nothing to drain */
    CHECK_EQ_INT(sv_fsm_step(SV_STARTING, SV_EV_DRAIN).next, SV_STOPPING);
    /* `drained` for a worker that is not draining changes nothing */
    CHECK_EQ_INT(sv_fsm_step(SV_READY, SV_EV_DRAINED).next, SV_READY);
    CHECK_EQ_INT(sv_fsm_step(SV_READY, SV_EV_READY).action, SV_ACT_IGNORE);
}

TEST(test_names)
{
    CHECK_EQ_STR(sv_state_name(SV_DRAINING), "draining");
    CHECK_EQ_STR(sv_state_name(SV_DEAD), "dead");
    CHECK_EQ_STR(sv_event_name(SV_EV_STOP_TIMEOUT), "stop-timeout");
    CHECK_EQ_STR(sv_action_name(SV_ACT_REAP), "reap");
    CHECK_EQ_STR(sv_state_name((enum sv_state)99), "?");
}

TEST_MAIN(test_every_pair_defined, test_exit_always_reaps, test_lifecycle, test_hangs,
          test_stop_and_drain_edges, test_names)
