/* Logging (one line per event, role and level, newlines escaped) and allocation (abort with the
 * size on OOM), each checked in a child process so that stderr and abort() can be observed. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/exitcode.h"
#include "common/log.h"
#include "tests/test.h"

/* Runs fn in a child with stderr captured; returns the wait status, output in buf. */
static int in_child(void (*fn)(void), char *buf, size_t cap)
{
    int p[2];
    if (pipe(p) < 0)
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        fn();
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return st;
}

static void log_lines(void)
{
    vl_log_init("worker[3]", VL_LOG_INFO);
    vl_debug("hidden");
    vl_info("loaded %s in %d ms", "model", 42);
    vl_error("two\nlines");
}

TEST(test_log_format)
{
    char out[4096];
    int st = in_child(log_lines, out, sizeof out);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_CONTAINS(out, "worker[3][");
    CHECK_CONTAINS(out, "] info: loaded model in 42 ms\n");
    CHECK_CONTAINS(out, "] error: two\\nlines\n");
    CHECK(strstr(out, "hidden") == NULL);
    int lines = 0;
    for (char *p = out; *p; p++)
        lines += *p == '\n';
    CHECK_EQ_INT(lines, 2);
}

TEST(test_log_level_parse)
{
    int ok;
    CHECK_EQ_INT(vl_log_level_parse("warn", &ok), VL_LOG_WARN);
    CHECK_EQ_INT(ok, 1);
    vl_log_level_parse("loud", &ok);
    CHECK_EQ_INT(ok, 0);
}

static void oom(void)
{
#ifndef __SANITIZE_ADDRESS__ /* ASan reserves its shadow up front; it honours                      \
                                allocator_may_return_null */
    struct rlimit rl = {256u << 20, 256u << 20};
    setrlimit(RLIMIT_AS, &rl);
#endif
    vl_log_init("test", VL_LOG_INFO);
    volatile char *p = vl_malloc((size_t)1 << 40);
    p[0] = 1;
}

TEST(test_alloc_aborts_with_size)
{
    char out[4096];
    int st = in_child(oom, out, sizeof out);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK_CONTAINS(out, "malloc(1099511627776 bytes) failed: out of memory");
}

TEST(test_alloc_helpers)
{
    size_t n;
    CHECK(vl_mul_ok(1u << 20, 1u << 20, &n) && n == (size_t)1 << 40);
    CHECK(!vl_mul_ok(SIZE_MAX / 2, 3, &n));
    char *s = vl_strndup("abcdef", 3);
    CHECK_EQ_STR(s, "abc");
    free(s);
    int *z = vl_calloc(10, sizeof(int));
    CHECK_EQ_INT(z[9], 0);
    free(z);
    CHECK_EQ_INT(VL_EXIT_PERMANENT, 100);
    CHECK_EQ_INT(VL_EXIT_TRANSIENT, 111);
}

TEST_MAIN(test_log_format, test_log_level_parse, test_alloc_aborts_with_size, test_alloc_helpers)
