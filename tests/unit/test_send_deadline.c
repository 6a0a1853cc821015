/* The send deadline's bookkeeping (gateway/send_deadline.h), as both gateway protocols use it:
 * the clock starts with a backlog's first bytes, moves when the queue shrinks (emptying
 * included), not when it grows or stays; the deadline is timeout_ms after the last progress; the
 * wake-ups sample the queue a quarter of the timeout apart, never past the deadline; the cap
 * pauses only above it; and the memory budget's unconditional charge for queued answers passes
 * the limit without refusing, and is released like any other. */
#include "gateway/membudget.h"
#include "gateway/send_deadline.h"
#include "tests/test.h"

TEST(test_clock_starts_with_backlog)
{
    struct vl_send_clock k = {0};
    CHECK_EQ_INT(vl_send_observe(&k, 0, 100), 0); /* empty and empty again: no news */
    CHECK_EQ_INT(k.t_progress_ms, 0);
    CHECK_EQ_INT(vl_send_deadline(&k, 0, 1000), 0);
    CHECK_EQ_INT(vl_send_wake(&k, 0, 1000, 100), 0);
    CHECK_EQ_INT(vl_send_observe(&k, 5000, 50000), 1); /* a backlog begins: its clock starts */
    CHECK_EQ_INT(vl_send_deadline(&k, 5000, 1000), 51000);
}

TEST(test_growth_is_not_progress_shrink_is)
{
    struct vl_send_clock k = {0};
    vl_send_observe(&k, 5000, 1000);
    CHECK_EQ_INT(vl_send_observe(&k, 5000, 1500), 0); /* stuck */
    CHECK_EQ_INT(vl_send_observe(&k, 9000, 1700), 0); /* another answer queued: no progress */
    CHECK_EQ_INT(vl_send_deadline(&k, 9000, 1000), 2000);
    CHECK_EQ_INT(vl_send_observe(&k, 8999, 1900), 1); /* one byte taken */
    CHECK_EQ_INT(vl_send_deadline(&k, 8999, 1000), 2900);
    CHECK_EQ_INT(vl_send_observe(&k, 0, 2500), 1); /* emptied */
    CHECK_EQ_INT(k.t_progress_ms, 2500);
    CHECK_EQ_INT(vl_send_deadline(&k, 0, 1000), 0);
    CHECK_EQ_INT(vl_send_observe(&k, 0, 9000), 0); /* the idle clock keeps when it emptied */
    CHECK_EQ_INT(k.t_progress_ms, 2500);
}

TEST(test_wake_and_off)
{
    struct vl_send_clock k = {0};
    vl_send_observe(&k, 100, 1000);
    CHECK_EQ_INT(vl_send_wake(&k, 100, 1000, 1000), 1250);  /* a quarter of the timeout */
    CHECK_EQ_INT(vl_send_wake(&k, 100, 1000, 1900), 2000);  /* never past the deadline */
    CHECK_EQ_INT(vl_send_wake(&k, 100, 3, 1000), 1000 + 1); /* at least 1 ms ahead */
    CHECK_EQ_INT(vl_send_deadline(&k, 100, 0), 0);          /* timeout 0: off */
    CHECK_EQ_INT(vl_send_wake(&k, 100, 0, 1000), 0);
}

TEST(test_fold)
{
    struct vl_send_clock k = {0};
    vl_send_observe(&k, 100, 1000); /* backlog from 1000: deadline 2000, next tick 1250 */
    int kind = 7;
    CHECK_EQ_INT(vl_send_fold(&k, 100, 1000, 1000, 0, &kind), 1250); /* no other deadline */
    CHECK_EQ_INT(kind, VL_SEND_DL_TICK);
    kind = 7;
    CHECK_EQ_INT(vl_send_fold(&k, 100, 1000, 1000, 1100, &kind), 1100); /* receive first */
    CHECK_EQ_INT(kind, 7);
    CHECK_EQ_INT(vl_send_fold(&k, 100, 1000, 1900, 5000, &kind), 2000); /* send deadline */
    CHECK_EQ_INT(kind, VL_SEND_DL_SEND); /* the tick there is the deadline itself */
    kind = 7;
    CHECK_EQ_INT(vl_send_fold(&k, 0, 1000, 1000, 1500, &kind), 1500); /* nothing queued */
    CHECK_EQ_INT(kind, 7);
    CHECK_EQ_INT(vl_send_fold(&k, 100, 0, 1000, 0, &kind), 0); /* send deadline off */
    CHECK_EQ_INT(kind, 7);
}

TEST(test_backlogged)
{
    CHECK(!vl_send_backlogged(1000, 1000)); /* at the cap: still taking */
    CHECK(vl_send_backlogged(1001, 1000));
    CHECK(!vl_send_backlogged((size_t)1 << 40, 0)); /* 0: no cap */
}

TEST(test_charge_always)
{
    struct mem_budget b;
    mem_budget_init(&b, 1000);
    CHECK_EQ_INT(mem_budget_charge(&b, 900, MEMB_HTTP_BODY), 0);
    mem_budget_charge_always(&b, 500); /* past the limit: taken all the same */
    CHECK_EQ_INT(mem_budget_used(&b), 1400);
    CHECK_EQ_INT(atomic_load(&b.peak), 1400);
    CHECK(mem_budget_charge(&b, 1, MEMB_HTTP_BODY) != 0); /* new requests refused meanwhile */
    CHECK_EQ_INT(mem_budget_refused(&b, MEMB_HTTP_BODY), 1);
    mem_budget_release(&b, 500);
    CHECK_EQ_INT(mem_budget_charge(&b, 100, MEMB_HTTP_BODY), 0);
    mem_budget_release(&b, 1000);
    CHECK_EQ_INT(mem_budget_used(&b), 0);
    mem_budget_charge_always(NULL, 5); /* no budget: nothing */
}

TEST_MAIN(test_clock_starts_with_backlog, test_growth_is_not_progress_shrink_is, test_wake_and_off,
          test_fold, test_backlogged, test_charge_always)
