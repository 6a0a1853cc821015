/* Restart policy: exponential delays, the healthy reset, giving up after exit-100s in a row. */
#include <sys/wait.h>

#include "supervisor/backoff.h"
#include "tests/test.h"

#define EXITED(code) ((code) << 8) /* a waitpid status for exit(code) */
#define KILLED(sig) (sig)          /* a waitpid status for death by signal */

static const struct sv_backoff_cfg cfg = {1.0, 60.0, 10.0, 3};

TEST(test_status_macros_match_waitpid)
{
    CHECK(WIFEXITED(EXITED(100)) && WEXITSTATUS(EXITED(100)) == 100);
    CHECK(WIFSIGNALED(KILLED(9)) && WTERMSIG(KILLED(9)) == 9);
}

TEST(test_exponential_and_capped)
{
    struct sv_backoff b = {0};
    double want[] = {0, 1, 2, 4, 8, 16, 32, 60, 60};
    for (int i = 0; i < 9; i++)
        CHECK_NEAR(sv_backoff_on_exit(&cfg, &b, KILLED(9), 1.0), want[i], 1e-9);
    CHECK_EQ_INT(b.fails, 9);
    CHECK_EQ_INT(b.failed, 0);
}

TEST(test_healthy_run_resets)
{
    struct sv_backoff b = {0};
    sv_backoff_on_exit(&cfg, &b, KILLED(9), -1);
    sv_backoff_on_exit(&cfg, &b, KILLED(9), -1);
    CHECK_NEAR(sv_backoff_on_exit(&cfg, &b, EXITED(111), 3.0), 2, 1e-9);
    /* ready for 10 s (healthy-after-s): the streak is over, the restart is immediate */
    CHECK_NEAR(sv_backoff_on_exit(&cfg, &b, KILLED(6), 10.0), 0, 1e-9);
    CHECK_EQ_INT(b.fails, 1);
}

TEST(test_permanent_gives_up)
{
    struct sv_backoff b = {0};
    CHECK(sv_backoff_on_exit(&cfg, &b, EXITED(100), -1) >= 0);
    CHECK(sv_backoff_on_exit(&cfg, &b, EXITED(100), -1) > 0);
    CHECK_NEAR(sv_backoff_on_exit(&cfg, &b, EXITED(100), -1), -1, 0);
    CHECK_EQ_INT(b.failed, 1);
    CHECK_EQ_INT(b.perm_fails, 3);
    sv_backoff_reset(&b);
    CHECK_EQ_INT(b.failed, 0);
    CHECK_EQ_INT(b.fails, 0);
}

TEST(test_transient_breaks_permanent_run)
{
    struct sv_backoff b = {0};
    sv_backoff_on_exit(&cfg, &b, EXITED(100), -1);
    sv_backoff_on_exit(&cfg, &b, EXITED(100), -1);
    sv_backoff_on_exit(&cfg, &b, KILLED(11), -1); /* a crash is not "permanent" */
    CHECK_EQ_INT(b.perm_fails, 0);
    CHECK(sv_backoff_on_exit(&cfg, &b, EXITED(100), -1) > 0);
    CHECK_EQ_INT(b.failed, 0);
    /* exit 0 without being asked is unexpected, hence transient */
    CHECK_EQ_INT(sv_exit_is_permanent(EXITED(0)), 0);
    CHECK_EQ_INT(sv_exit_is_permanent(EXITED(100)), 1);
}

TEST(test_describe)
{
    char buf[96];
    sv_exit_describe(EXITED(100), buf, sizeof buf);
    CHECK_EQ_STR(buf, "exit 100");
    sv_exit_describe(KILLED(9), buf, sizeof buf);
    CHECK_CONTAINS(buf, "signal 9");
}

TEST_MAIN(test_status_macros_match_waitpid, test_exponential_and_capped, test_healthy_run_resets,
          test_permanent_gives_up, test_transient_breaks_permanent_run, test_describe)
