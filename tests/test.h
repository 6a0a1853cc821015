/* A tiny unit-test harness: each tests/unit/test_*.c is its own binary with a main() made by
 * TEST_MAIN(); every check prints both sides when it fails; the exit status is the verdict.
 *
 *   TEST(name) { CHECK(x > 0); CHECK_EQ_INT(a, b); CHECK_EQ_STR(s, "x"); CHECK_NEAR(f, g, 1e-6); }
 *   TEST_MAIN(test_a, test_b)
 */
#ifndef VL_TESTS_TEST_H
#define VL_TESTS_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;

/* Reads a whole file into a malloc'd buffer with a NUL after its end; NULL and *n = 0 if it
 * cannot be read. */
static inline uint8_t *test_read_file(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz + 1 : 1);
    if (b) {
        *n = fread(b, 1, sz > 0 ? (size_t)sz : 0, f);
        b[*n] = 0;
    }
    fclose(f);
    return b;
}

/* The real Qwen3 tokenizer.json that `make deps` puts under the build directory
 * (tests/run.sh exports VL_BUILD); falls back to the default build directory. */
static inline const char *test_tokenizer_path(void)
{
    static char buf[4096];
    const char *b = getenv("VL_BUILD");
    if (b) {
        snprintf(buf, sizeof buf, "%s/deps/tokenizer-qwen3/tokenizer.json", b);
        FILE *f = fopen(buf, "rb");
        if (f) {
            fclose(f);
            return buf;
        }
    }
    return "build/deps/tokenizer-qwen3/tokenizer.json";
}

#define TEST(name) static void name(void)

#define TEST_FAIL_AT(...)                                                                          \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        test_failures++;                                                                           \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TEST_FAIL_AT("CHECK(%s) failed", #cond);                                               \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_)                                                                            \
            TEST_FAIL_AT("%s == %s failed: %lld vs %lld", #a, #b, va_, vb_);                       \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                                                 \
            TEST_FAIL_AT("%s == %s failed: \"%s\" vs \"%s\"", #a, #b, sa_ ? sa_ : "(null)",        \
                         sb_ ? sb_ : "(null)");                                                    \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            TEST_FAIL_AT("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_);                \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double da_ = (double)(a), db_ = (double)(b);                                               \
        if (!(fabs(da_ - db_) <= (tol)))                                                           \
            TEST_FAIL_AT("|%s - %s| <= %g failed: %.9g vs %.9g", #a, #b, (double)(tol), da_, db_); \
    } while (0)

#define TEST_RUN_ONE(fn)                                                                           \
    do {                                                                                           \
        int before_ = test_failures;                                                               \
        fn();                                                                                      \
        fprintf(stderr, "%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #fn);               \
    } while (0);

#define TEST_MAIN(...)                                                                             \
    int main(void)                                                                                 \
    {                                                                                              \
        void (*fns_[])(void) = {__VA_ARGS__};                                                      \
        const char *names_ = #__VA_ARGS__;                                                         \
        for (size_t i_ = 0; i_ < sizeof fns_ / sizeof fns_[0]; i_++) {                             \
            int before_ = test_failures;                                                           \
            fns_[i_]();                                                                            \
            const char *p_ = names_;                                                               \
            for (size_t k_ = 0; k_ < i_; k_++)                                                     \
                p_ = strchr(p_, ',') + 1;                                                          \
            while (*p_ == ' ')                                                                     \
                p_++;                                                                              \
            int len_ = (int)(strchr(p_, ',') ? strchr(p_, ',') - p_ : (long)strlen(p_));           \
            fprintf(stderr, "%s %.*s\n", test_failures == before_ ? "ok  " : "FAIL", len_, p_);    \
        }                                                                                          \
        return test_failures ? 1 : 0;                                                              \
    }

#endif
