/* Replays every committed fuzz input (tests/fuzz/corpus_NAME/: the seeds, and the regress-*
 * inputs that once crashed a target or broke one of its promises) through the fuzz targets' own
 * code and checks, compiled here as a plain test: so the fuzz findings stay fixed in every build
 * (`make test`, and under ASan/UBSan with `make SAN=address,undefined`), also where clang and
 * libFuzzer are missing. A target that finds a violation aborts, one that hangs is killed by
 * SIGALRM after 20 s; the input being replayed is printed first. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LLVMFuzzerTestOneInput fuzz_http_one
#include "tests/fuzz/fuzz_http.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_api_json_one
#include "tests/fuzz/fuzz_api_json.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_mpapi_one
#include "tests/fuzz/fuzz_mpapi.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_image_one
#include "tests/fuzz/fuzz_image.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "tests/fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput

#include "tests/test.h"

static int replay(const char *root, const char *name, int (*one)(const uint8_t *, size_t),
                  int *n_regress)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus_%s", root, name);
    DIR *d = opendir(dir);
    if (!d) {
        TEST_FAIL_AT("cannot open %s", dir);
        return 0;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        uint8_t *buf = test_read_file(path, &len);
        if (!buf) {
            TEST_FAIL_AT("cannot read %s", path);
            continue;
        }
        fprintf(stderr, "replay %s\n", path);
        alarm(20); /* a target that hangs (a connection never answered) fails the test */
        one(buf, len);
        alarm(0);
        free(buf);
        n++;
        *n_regress += !strncmp(e->d_name, "regress-", 8);
    }
    closedir(d);
    return n;
}

int main(void)
{
    const char *root = getenv("VL_ROOT") ? getenv("VL_ROOT") : ".";
    static const struct {
        const char *name;
        int (*one)(const uint8_t *, size_t);
        int min_inputs;
    } targets[] = {
        {"http", fuzz_http_one, 18},
        {"api_json", fuzz_api_json_one, 14},
        {"mpapi", fuzz_mpapi_one, 12},
        {"image", fuzz_image_one, 13},
        {"safetensors", fuzz_safetensors_one, 3},
    };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        int regress = 0;
        int n = replay(root, targets[i].name, targets[i].one, &regress);
        printf("%-12s %3d inputs replayed (%d regressions)\n", targets[i].name, n, regress);
        if (n < targets[i].min_inputs)
            TEST_FAIL_AT("%s: %d inputs, expected at least %d", targets[i].name, n,
                         targets[i].min_inputs);
    }
    printf("%s\n", test_failures ? "FAILED" : "ok");
    return test_failures ? 1 : 0;
}
