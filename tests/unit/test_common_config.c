/* Config: defaults, file, flags, precedence and refusal of bad keys/values naming the key. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/config.h"
#include "tests/test.h"

struct cfg {
    char *model;
    char *backend;
    int64_t workers;
    int64_t max_body;
    double deadline;
    int verbose;
};

static const struct vl_opt opts[] = {
    {"model", VL_OPT_STR, offsetof(struct cfg, model), NULL, 1, 0, NULL, "checkpoint"},
    {"backend", VL_OPT_STR, offsetof(struct cfg, backend), "cpu", 1, 0, "cpu|cuda", "backend"},
    {"workers", VL_OPT_INT, offsetof(struct cfg, workers), "1", 1, 64, NULL, "workers"},
    {"max-body", VL_OPT_SIZE, offsetof(struct cfg, max_body), "64M", 1, 1 << 30, NULL, "body"},
    {"deadline-s", VL_OPT_DOUBLE, offsetof(struct cfg, deadline), "30", 0.001, 3600, NULL, "s"},
    {"verbose", VL_OPT_BOOL, offsetof(struct cfg, verbose), "false", 1, 0, NULL, "v"},
};
#define N (sizeof opts / sizeof opts[0])

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/vl-cfg-XXXXXX");
    int fd = mkstemp(path);
    if (write(fd, text, strlen(text)) < 0)
        abort();
    close(fd);
    return path;
}

TEST(test_defaults)
{
    struct cfg c = {0};
    char err[256];
    char *argv[] = {"x", NULL};
    CHECK_EQ_INT(vl_config_load(opts, N, &c, 1, argv, NULL, NULL, err, sizeof err), 0);
    CHECK_EQ_STR(c.backend, "cpu");
    CHECK_EQ_INT(c.workers, 1);
    CHECK_EQ_INT(c.max_body, 64 << 20);
    CHECK_NEAR(c.deadline, 30, 0);
    CHECK(c.model == NULL);
    vl_config_free(opts, N, &c);
}

TEST(test_file_then_flags)
{
    char *p = write_tmp("# comment\n\nmodel = \"/m/dir \\\"x\\\"\"\nworkers=4\nmax_body = 2k\n"
                        "verbose = yes\n");
    struct cfg c = {0};
    char err[256];
    char *argv[] = {"x", "--workers", "8", "--config", p, "--backend=cuda", NULL};
    int rc = vl_config_load(opts, N, &c, 6, argv, NULL, NULL, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ_STR(c.model, "/m/dir \"x\"");
    CHECK_EQ_INT(c.workers, 8); /* flag wins over the file regardless of order */
    CHECK_EQ_INT(c.max_body, 2048);
    CHECK_EQ_STR(c.backend, "cuda");
    CHECK_EQ_INT(c.verbose, 1);
    vl_config_free(opts, N, &c);
    unlink(p);
}

static void expect_file_error(const char *text, const char *needle)
{
    char *p = write_tmp(text);
    struct cfg c = {0};
    char err[256] = "";
    char *argv[] = {"x", "--config", p, NULL};
    CHECK_EQ_INT(vl_config_load(opts, N, &c, 3, argv, NULL, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, needle);
    vl_config_free(opts, N, &c);
    unlink(p);
}

TEST(test_file_errors_name_key_and_line)
{
    expect_file_error("workers = 2\nbogus = 1\n", "line 2: unknown key 'bogus'");
    expect_file_error("workers = two\n", "'workers' must be an integer");
    expect_file_error("\n\nworkers = 65\n", "line 3: 'workers' = 65 is out of range");
    expect_file_error("backend = tpu\n", "'backend' must be one of cpu|cuda");
    expect_file_error("verbose = maybe\n", "'verbose' must be true or false");
    expect_file_error("max-body = 12q\n", "'max-body' must be a size");
    expect_file_error("justakey\n", "line 1: expected 'key = value'");
    expect_file_error("deadline-s = nan\n", "'deadline-s' must be a number");
}

TEST(test_flag_errors)
{
    struct cfg c = {0};
    char err[256];
    char *a1[] = {"x", "--nope", "1", NULL};
    CHECK_EQ_INT(vl_config_load(opts, N, &c, 3, a1, NULL, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "--nope: unknown option");
    char *a2[] = {"x", "--workers", NULL};
    CHECK_EQ_INT(vl_config_load(opts, N, &c, 2, a2, NULL, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "--workers: missing value");
    char *a3[] = {"x", "--workers=0", NULL};
    CHECK_EQ_INT(vl_config_load(opts, N, &c, 2, a3, NULL, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "out of range");
    char *a4[] = {"x", "stray", NULL};
    CHECK_EQ_INT(vl_config_load(opts, N, &c, 2, a4, NULL, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "unexpected argument 'stray'");
    char *a5[] = {"x", "--config", "/nonexistent/x.conf", NULL};
    CHECK_EQ_INT(vl_config_load(opts, N, &c, 3, a5, NULL, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "/nonexistent/x.conf");
    vl_config_free(opts, N, &c);
}

TEST(test_bool_flag_and_rest)
{
    struct cfg c = {0};
    char err[256];
    char *rest[4];
    int n_rest;
    char *argv[] = {"x", "--verbose", "pos1", "--workers", "3", NULL};
    CHECK_EQ_INT(vl_config_load(opts, N, &c, 5, argv, rest, &n_rest, err, sizeof err), 0);
    CHECK_EQ_INT(c.verbose, 1);
    CHECK_EQ_INT(n_rest, 1);
    CHECK_EQ_STR(rest[0], "pos1");
    CHECK_EQ_INT(c.workers, 3);
    vl_config_free(opts, N, &c);
}

TEST_MAIN(test_defaults, test_file_then_flags, test_file_errors_name_key_and_line, test_flag_errors,
          test_bool_flag_and_rest)
