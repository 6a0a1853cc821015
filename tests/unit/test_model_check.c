/* `vlembed-worker --check`: 0 on the committed checkpoint, 100 (never a crash) on every kind of
 * broken checkpoint, both through worker_check_main and the real binary. */
#include <stdlib.h>
#include <sys/wait.h>

#include "common/exitcode.h"
#include "tests/test.h"
#include "tests/unit/test_model_fixture.h"
#include "worker/check.h"

static int check_dir(const char *dir, const char *backend)
{
    char *argv[] = {"--check", (char *)dir, "--threads", "2", "--backend", (char *)backend, NULL};
    return worker_check_main(6, argv);
}

static const char *root(void)
{
    const char *r = getenv("VL_ROOT");
    return r ? r : ".";
}

TEST(test_check_committed_model)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/tests/data/tiny-model", root());
    CHECK_EQ_INT(check_dir(dir, "cpu"), VL_EXIT_OK);
    CHECK_EQ_INT(check_dir(dir, "tpu"), VL_EXIT_PERMANENT);
    char *bad[] = {"--check", NULL};
    CHECK_EQ_INT(worker_check_main(1, bad), VL_EXIT_PERMANENT);
    char *help[] = {"--check", "--help", NULL};
    CHECK_EQ_INT(worker_check_main(2, help), VL_EXIT_OK);
}

TEST(test_check_fixture_models)
{
    char dir[64];
    fx_tmpdir(dir, sizeof dir);
    struct fx_cfg c = fx_cfg_default();
    fx_write_model(&c, dir, 3);
    CHECK_EQ_INT(check_dir(dir, "cpu"), VL_EXIT_OK);
    /* a config that disagrees with the weights: q_proj is [64, 32], 8 heads need [128, 32] */
    char path[256], json[4096];
    struct fx_cfg c2 = c;
    c2.t_heads = 8;
    fx_config_json(&c2, json, sizeof json);
    snprintf(path, sizeof path, "%s/config.json", dir);
    fx_write_bytes(path, json, strlen(json));
    CHECK_EQ_INT(check_dir(dir, "cpu"), VL_EXIT_PERMANENT);
    fx_rmdir(dir);

    /* a shard truncated in its data */
    fx_tmpdir(dir, sizeof dir);
    fx_write_model(&c, dir, 2);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    CHECK_EQ_INT(truncate(path, 5000), 0);
    CHECK_EQ_INT(check_dir(dir, "cpu"), VL_EXIT_PERMANENT);
    /* ... and through the real binary */
    const char *b = getenv("VL_BUILD");
    if (b) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s/vlembed-worker --check %s >/dev/null 2>&1", b, dir);
        int st = system(cmd);
        CHECK(WIFEXITED(st));
        CHECK_EQ_INT(WEXITSTATUS(st), VL_EXIT_PERMANENT);
        snprintf(cmd, sizeof cmd,
                 "%s/vlembed-worker --check %s/tests/data/tiny-model --threads 2"
                 " >/dev/null 2>&1",
                 b, root());
        st = system(cmd);
        CHECK(WIFEXITED(st));
        CHECK_EQ_INT(WEXITSTATUS(st), VL_EXIT_OK);
    }
    fx_rmdir(dir);
}

TEST_MAIN(test_check_committed_model, test_check_fixture_models)
