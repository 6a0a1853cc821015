/* vlembedctl tokenize: JSON Lines {"text": "..."} on stdin -> {"ids": [...]} per line on stdout,
 * with the tokenizer.json given by --tokenizer (plain encode = HF encode(text,
 * add_special_tokens=False); --add-special-tokens applies the post-processor too). A bad line
 * gets {"error": "line N: ..."} in its place and the exit status becomes 1. docs/tokenizer.md. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/alloc.h"
#include "common/config.h"
#include "common/exitcode.h"
#include "gateway/tokenizer.h"
#include "supervisor/ctl/ctl.h"

/* One input line; longer is refused (the gateway's own request limits are far smaller). */
#define CTL_TOKENIZE_LINE_MAX ((size_t)64 * 1024 * 1024)

struct tokenize_opts {
    char *tokenizer;
    int add_special_tokens;
};

static const struct vl_opt tokenize_optv[] = {
    {"tokenizer", VL_OPT_STR, offsetof(struct tokenize_opts, tokenizer), NULL, 0, -1, NULL,
     "path of tokenizer.json (required)"},
    {"add-special-tokens", VL_OPT_BOOL, offsetof(struct tokenize_opts, add_special_tokens), "false",
     0, -1, NULL, "also apply the tokenizer's post-processor"},
};

static void emit_error(long line, const char *msg)
{
    char buf[600];
    snprintf(buf, sizeof buf, "line %ld: %s", line, msg);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", buf);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    fprintf(stderr, "vlembedctl tokenize: %s\n", buf);
    free(s);
    cJSON_Delete(o);
}

int ctl_cmd_tokenize(int argc, char **argv)
{
    struct tokenize_opts o = {0};
    char err[512];
    const size_t n_opts = sizeof tokenize_optv / sizeof tokenize_optv[0];
    int r = vl_config_load(tokenize_optv, n_opts, &o, argc, argv, NULL, NULL, err, sizeof err);
    if (r != 0) {
        if (r < 0)
            fprintf(stderr, "vlembedctl tokenize: %s\n", err);
        else
            vl_config_usage(tokenize_optv, n_opts, "vlembedctl tokenize",
                            "Reads JSON Lines {\"text\": ...} on stdin, writes {\"ids\": [...]} "
                            "per line (docs/tokenizer.md).");
        vl_config_free(tokenize_optv, n_opts, &o);
        return r > 0 ? 0 : 2;
    }
    if (!o.tokenizer) {
        fprintf(stderr, "vlembedctl tokenize: --tokenizer PATH is required\n");
        vl_config_free(tokenize_optv, n_opts, &o);
        return 2;
    }
    struct tok *t = tok_load(o.tokenizer, err, sizeof err);
    if (!t) {
        fprintf(stderr, "vlembedctl tokenize: %s\n", err);
        vl_config_free(tokenize_optv, n_opts, &o);
        return VL_EXIT_PERMANENT;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int status = 0;
    size_t out_cap = 0;
    char *out = NULL;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if ((size_t)len > CTL_TOKENIZE_LINE_MAX) {
            emit_error(lineno, "line longer than 64 MiB");
            status = 1;
            continue;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len == 0)
            continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        cJSON *text = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
        if (!cJSON_IsString(text)) {
            emit_error(lineno, j ? "no \"text\" string" : "not valid JSON");
            status = 1;
            cJSON_Delete(j);
            continue;
        }
        int32_t *ids;
        int32_t n;
        if (tok_encode(t, text->valuestring, strlen(text->valuestring), &ids, &n, err, sizeof err) <
            0) {
            emit_error(lineno, err);
            status = 1;
            cJSON_Delete(j);
            continue;
        }
        if (o.add_special_tokens)
            tok_post_process(t, &ids, &n);
        size_t need = (size_t)n * 12 + 16;
        if (need > out_cap) {
            out_cap = need;
            out = vl_realloc(out, out_cap);
        }
        size_t k = (size_t)sprintf(out, "{\"ids\":[");
        for (int32_t i = 0; i < n; i++)
            k += (size_t)sprintf(out + k, i ? ",%d" : "%d", ids[i]);
        k += (size_t)sprintf(out + k, "]}\n");
        fwrite(out, 1, k, stdout);
        free(ids);
        cJSON_Delete(j);
    }
    free(out);
    free(line);
    tok_free(t);
    vl_config_free(tokenize_optv, n_opts, &o);
    return status;
}
