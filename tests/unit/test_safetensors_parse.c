/* The safetensors header parser on hostile input: crafted cases, every truncation of a valid
 * file, and a deterministic mutation run (byte flips and JSON-aware edits) that checks the
 * parser's promises on everything it accepts. The libFuzzer target is tests/fuzz/. */
#include <stdint.h>
#include <stdlib.h>

#include "tests/test.h"
#include "tests/unit/test_model_fixture.h"
#include "worker/safetensors.h"

/* Parses and checks the promises; returns the parser's rc. */
static int parse_checked(const uint8_t *b, size_t len, char *err, size_t errlen, int *n_out)
{
    struct vl_st_tensor *t = NULL;
    int n = 0;
    err[0] = 0;
    int rc = vl_st_parse(b, len, 0, "t", &t, &n, err, errlen);
    if (rc == 0) {
        for (int i = 0; i < n; i++) {
            const uint8_t *p = t[i].data;
            CHECK(p >= b && p + t[i].nbytes <= b + len);
            CHECK(t[i].nbytes == (size_t)t[i].numel * vl_dtype_size(t[i].dtype));
            for (int j = i + 1; j < n; j++) {
                const uint8_t *q = t[j].data;
                if (t[i].nbytes && t[j].nbytes)
                    CHECK(!(p < q + t[j].nbytes && q < p + t[i].nbytes));
                CHECK(strcmp(t[i].name, t[j].name) != 0);
            }
            free(t[i].name);
        }
    } else {
        CHECK_EQ_INT(n, 0);
        CHECK(err[0] != 0);
    }
    free(t);
    if (n_out)
        *n_out = n;
    return rc;
}

/* A file image from a raw header string and `data_len` bytes of data. */
static size_t raw_file(const char *hdr, size_t data_len, uint8_t **out)
{
    size_t hl = strlen(hdr), total = 8 + hl + data_len;
    uint8_t *b = calloc(1, total + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    *out = b;
    return total;
}

TEST(test_crafted)
{
    struct {
        const char *hdr;
        size_t data;
        int ok;
        const char *want;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 1, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, 1, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]}}", 0, 1, ""},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 7, 0, "past the end"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, 0,
         "unsupported dtype F64"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, "do not hold"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, 0, "do not hold"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, 0, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8.5]}}", 9, 0,
         "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, 0, "shape[0]"},
        {"{\"a\":{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296,16],"
         "\"data_offsets\":[0,8]}}",
         8, 0, "shape[1]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, 0,
         "rank 9"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, 0, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, 0, "twice"},
        {"{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "name"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, 0,
         "data_offsets"},
        {"{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, 0, "dtype"},
        {"{\"a\":[1,2]}", 0, 0, "not an object"},
        {"{\"__metadata__\":[1]}", 0, 0, "__metadata__"},
        {"[1,2,3]", 0, 0, "JSON object"},
        {"{\"a\":{\"dtype\":\"F32\"", 0, 0, "JSON object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740993],\"data_offsets\":[0,4]}}", 4, 0,
         "shape[0]"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *b;
        size_t len = raw_file(cases[i].hdr, cases[i].data, &b);
        int rc = parse_checked(b, len, err, sizeof err, NULL);
        if (rc != (cases[i].ok ? 0 : -1))
            TEST_FAIL_AT("case %zu (%s): rc %d, err \"%s\"", i, cases[i].hdr, rc, err);
        if (cases[i].want[0])
            CHECK_CONTAINS(err, cases[i].want);
        free(b);
    }
    /* a name longer than the limit */
    char big[1200];
    char name[600];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = 0;
    snprintf(big, sizeof big, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
             name);
    uint8_t *b;
    size_t len = raw_file(big, 4, &b);
    CHECK_EQ_INT(parse_checked(b, len, err, sizeof err, NULL), -1);
    CHECK_CONTAINS(err, "name of 599 bytes");
    /* header length fields: 0, larger than the file, larger than the cap */
    uint64_t lens[] = {0, 1, len, (uint64_t)VL_ST_HEADER_MAX + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int k = 0; k < 8; k++)
            b[k] = (uint8_t)(lens[i] >> (8 * k));
        CHECK_EQ_INT(parse_checked(b, len, err, sizeof err, NULL), -1);
        CHECK_CONTAINS(err, "header length");
    }
    free(b);
    CHECK_EQ_INT(parse_checked((const uint8_t *)"", 0, err, sizeof err, NULL), -1);
    CHECK_CONTAINS(err, "truncated");
}

static struct fx_file sample(void)
{
    struct fx_file f = {0};
    fx_add(&f, "model.visual.pos_embed.weight", "BF16", 2, FX_S(7, 3), 1, 0);
    fx_add(&f, "model.language_model.norm.weight", "F32", 1, FX_S(5), 1, 0);
    fx_add(&f, "x.f16", "F16", 3, FX_S(2, 2, 3), 1, 0);
    fx_add(&f, "scalar", "F32", 0, FX_S(0), 1, 0);
    return f;
}

TEST(test_every_truncation)
{
    struct fx_file f = sample();
    uint8_t *b;
    size_t len = fx_serialise(&f, &b);
    char err[512];
    int n;
    CHECK_EQ_INT(parse_checked(b, len, err, sizeof err, &n), 0);
    CHECK_EQ_INT(n, 4);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *c = malloc(cut + 1);
        memcpy(c, b, cut);
        CHECK_EQ_INT(parse_checked(c, cut, err, sizeof err, NULL), -1);
        free(c);
    }
    free(b);
    fx_file_free(&f);
}

static uint64_t rng = 12345;
static uint32_t rnd(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

TEST(test_mutations)
{
    struct fx_file f = sample();
    uint8_t *orig;
    size_t len = fx_serialise(&f, &orig);
    size_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | orig[i];
    static const char *tokens[] = {"0",        "1",      "-1",    "1e300", "18446744073709551616",
                                   "[",        "]",      "{",     "}",     ",",
                                   ":",        "\"",     "null",  "true",  "\"F32\"",
                                   "\"BF16\"", "\"I8\"", "[0,0]", "[]",    "[4294967295]",
                                   "\\u0000"};
    char err[512];
    int accepted = 0;
    uint8_t *m = malloc(len + 64);
    int failures_before = test_failures;
    for (int iter = 0; iter < 60000; iter++) {
        memcpy(m, orig, len);
        size_t mlen = len;
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            uint32_t kind = rnd() % 4;
            if (kind == 0) { /* flip a byte anywhere in the length or header */
                m[rnd() % (8 + hl)] ^= (uint8_t)(1u << (rnd() % 8));
            } else if (kind == 1) { /* overwrite a digit in the header */
                size_t p = 8 + rnd() % hl;
                if (m[p] >= '0' && m[p] <= '9')
                    m[p] = (uint8_t)('0' + rnd() % 10);
            } else if (kind == 2) { /* splice a JSON token over header bytes */
                const char *tk = tokens[rnd() % (sizeof tokens / sizeof tokens[0])];
                size_t tl = strlen(tk), p = 8 + rnd() % hl;
                if (p + tl <= 8 + hl)
                    memcpy(m + p, tk, tl);
            } else { /* shorten the file */
                mlen = rnd() % (len + 1);
            }
        }
        if (parse_checked(m, mlen, err, sizeof err, NULL) == 0)
            accepted++;
        if (test_failures != failures_before)
            break;
    }
    fprintf(stderr, "  %d of 60000 mutants accepted (all within the parser's promises)\n",
            accepted);
    free(m);
    free(orig);
    fx_file_free(&f);
}

TEST_MAIN(test_crafted, test_every_truncation, test_mutations)
