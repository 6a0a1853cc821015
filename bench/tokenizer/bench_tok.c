/* Tokenizer encode throughput on one thread: reads JSON Lines {"text": ...}, encodes every text
 * `reps` times with tok_encode (plain encode) and prints the best pass as tokens/s. With --dump
 * FILE it also writes {"ids": [...]} per line (checked against HF by the reference script).
 *   bench_tok TOKENIZER.json CORPUS.jsonl [reps] [--dump FILE]
 * Built by bench/tokenizer/build.sh against only libcjson and libutf8proc, so it runs on the GPU
 * machine with those two libraries carried next to it (docs/performance.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/alloc.h"
#include "gateway/tokenizer.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tok TOKENIZER.json CORPUS.jsonl [reps] [--dump FILE]\n");
        return 2;
    }
    int reps = argc > 3 && argv[3][0] != '-' ? atoi(argv[3]) : 5;
    const char *dump = NULL;
    for (int i = 3; i + 1 < argc; i++)
        if (strcmp(argv[i], "--dump") == 0)
            dump = argv[i + 1];
    char err[512];
    double t0 = now();
    struct tok *t = tok_load(argv[1], err, sizeof err);
    if (!t) {
        fprintf(stderr, "bench_tok: %s\n", err);
        return 1;
    }
    double t_load = now() - t0;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char **texts = NULL;
    size_t *lens = NULL, n = 0, cap = 0, bytes = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
        if (cJSON_IsString(s)) {
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                texts = vl_realloc(texts, cap * sizeof *texts);
                lens = vl_realloc(lens, cap * sizeof *lens);
            }
            texts[n] = vl_strdup(s->valuestring);
            lens[n] = strlen(s->valuestring);
            bytes += lens[n];
            n++;
        }
        cJSON_Delete(j);
    }
    fclose(f);
    free(line);
    FILE *df = dump ? fopen(dump, "w") : NULL;
    double best = 1e30;
    long long tokens = 0;
    for (int r = 0; r < reps; r++) {
        long long ntok = 0;
        double a = now();
        for (size_t i = 0; i < n; i++) {
            int32_t *ids, k;
            if (tok_encode(t, texts[i], lens[i], &ids, &k, err, sizeof err) < 0) {
                fprintf(stderr, "bench_tok: text %zu: %s\n", i, err);
                if (df && r == 0)
                    fprintf(df, "{\"error\":\"%s\"}\n", err);
                continue;
            }
            ntok += k;
            if (df && r == 0) {
                fputs("{\"ids\":[", df);
                for (int32_t q = 0; q < k; q++)
                    fprintf(df, q ? ",%d" : "%d", ids[q]);
                fputs("]}\n", df);
            }
            free(ids);
        }
        double dt = now() - a;
        if (dt < best)
            best = dt;
        tokens = ntok;
    }
    if (df)
        fclose(df);
    printf("vlembed tok_encode: %zu texts, %zu bytes, %lld tokens, best of %d: %.4f s, "
           "%.0f tokens/s, %.1f MB/s (load %.2f s)\n",
           n, bytes, tokens, reps, best, tokens / best, bytes / best / 1e6, t_load);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    free(lens);
    tok_free(t);
    return 0;
}
