/* libFuzzer target for the safetensors header parser (worker/safetensors.c: vl_st_parse).
 * The input is a whole file image: 8-byte length, JSON header, data. Accepted inputs must
 * satisfy the parser's promises (every tensor inside the buffer, sizes consistent, no
 * overlaps), checked here so the fuzzer finds broken promises, not only crashes.
 *
 * Build and run (docs/model.md):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_safetensors.c worker/safetensors.c common/alloc.c common/log.c \
 *     -lcjson -o build/fuzz_safetensors
 *   build/fuzz_safetensors -max_total_time=60 tests/fuzz/corpus_safetensors/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vl_st_tensor *t = NULL;
    int n = 0;
    char err[512];
    if (vl_st_parse(data, size, 0, "fuzz", &t, &n, err, sizeof err) == 0) {
        for (int i = 0; i < n; i++) {
            const uint8_t *p = t[i].data;
            if (p < data || p + t[i].nbytes > data + size ||
                t[i].nbytes != (size_t)t[i].numel * vl_dtype_size(t[i].dtype))
                abort();
            for (int j = 0; j < n; j++) {
                const uint8_t *q = t[j].data;
                if (i != j && t[i].nbytes && t[j].nbytes && p < q + t[j].nbytes &&
                    q < p + t[i].nbytes)
                    abort();
            }
            free(t[i].name);
        }
    } else if (n != 0 || !err[0]) {
        abort(); /* a refusal appends nothing and always says why */
    }
    free(t);
    return 0;
}
