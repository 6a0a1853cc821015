/* Tokenizer parity with HF `tokenizers` on the committed corpus (tests/data/tokenizer/, made by
 * scripts/ref/make_tokenizer_ref.py on the GPU machine), the post-processor (real one and a
 * TemplateProcessing that appends <|endoftext|>), decoding, character classes and NFC against
 * tables taken from HF, refusal of bad tokenizer.json files, and concurrent encoding.
 * Needs build/deps/tokenizer-qwen3/tokenizer.json (make deps). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "gateway/tok_internal.h"
#include "gateway/tokenizer.h"
#include "tests/test.h"

#define TOK_PATH test_tokenizer_path()
#define DATA "tests/data/tokenizer/"

static struct tok *tk;

static char *slurp(const char *path, size_t *len)
{
    size_t n;
    char *b = (char *)test_read_file(path, &n);
    if (len)
        *len = n;
    return b;
}

/* Calls fn for each JSON line of a file; returns the number of lines or -1. */
static int each_line(const char *path, void (*fn)(cJSON *row, int lineno, void *ctx), void *ctx)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        n++;
        if (j)
            fn(j, n, ctx);
        else
            TEST_FAIL_AT("%s line %d: not JSON", path, n);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    return n;
}

static int ids_equal(const cJSON *want, const int32_t *got, int32_t n)
{
    if (cJSON_GetArraySize(want) != n)
        return 0;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, want) if ((int32_t)e->valuedouble != got[i++]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, int32_t n)
{
    fprintf(stderr, "    %s (%d):", what, n);
    for (int32_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

struct corpus_stats {
    int rows, enc_bad, post_bad, dec_bad;
    const struct tok *t;
};

static void check_row(cJSON *row, int lineno, void *ctx)
{
    struct corpus_stats *st = ctx;
    const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
    const cJSON *want = cJSON_GetObjectItem(row, "ids");
    const cJSON *want_sp = cJSON_GetObjectItem(row, "ids_special");
    const cJSON *want_dec = cJSON_GetObjectItem(row, "decoded");
    int32_t *ids, n;
    char err[256];
    st->rows++;
    if (tok_encode(st->t, text, strlen(text), &ids, &n, err, sizeof err) < 0) {
        TEST_FAIL_AT("corpus line %d: encode failed: %s", lineno, err);
        st->enc_bad++;
        return;
    }
    if (!ids_equal(want, ids, n)) {
        if (st->enc_bad < 5) {
            char *w = cJSON_PrintUnformatted(want);
            TEST_FAIL_AT("corpus line %d: ids differ for \"%.80s\"\n    HF: %.300s", lineno, text,
                         w);
            print_ids("C ", ids, n);
            free(w);
        } else
            test_failures++;
        st->enc_bad++;
    }
    char *dec = tok_decode(st->t, ids, n);
    if (want_dec && strcmp(dec, want_dec->valuestring) != 0) {
        if (st->dec_bad < 5)
            TEST_FAIL_AT("corpus line %d: decode differs: \"%.80s\" vs HF \"%.80s\"", lineno, dec,
                         want_dec->valuestring);
        else
            test_failures++;
        st->dec_bad++;
    }
    free(dec);
    if (want_sp) {
        tok_post_process(st->t, &ids, &n);
        if (!ids_equal(want_sp, ids, n)) {
            if (st->post_bad < 5)
                TEST_FAIL_AT("corpus line %d: ids with add_special_tokens differ", lineno);
            else
                test_failures++;
            st->post_bad++;
        }
    }
    free(ids);
}

TEST(test_corpus_parity)
{
    CHECK(tk != NULL);
    if (!tk)
        return;
    struct corpus_stats st = {.t = tk};
    int n = each_line(DATA "corpus.jsonl", check_row, &st);
    CHECK(n >= 2000);
    fprintf(stderr, "corpus: %d strings, %d encode / %d post-process / %d decode mismatches\n",
            st.rows, st.enc_bad, st.post_bad, st.dec_bad);
    CHECK_EQ_INT(st.enc_bad, 0);
    CHECK_EQ_INT(st.post_bad, 0);
    CHECK_EQ_INT(st.dec_bad, 0);
    CHECK_EQ_INT(tok_post_process_added(tk), 0); /* the real Qwen3 tokenizer appends nothing */
}

/* The real tokenizer.json with its post_processor replaced by a TemplateProcessing appending
 * <|endoftext|> (the same change the reference script makes). */
static char *eos_json(size_t *len)
{
    size_t n;
    char *s = slurp(TOK_PATH, &n);
    if (!s)
        return NULL;
    cJSON *root = cJSON_ParseWithLength(s, n);
    free(s);
    const char *pp = "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\","
                     "\"type_id\":0}},{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}}],"
                     "\"pair\":[],\"special_tokens\":{\"<|endoftext|>\":{\"id\":\"<|endoftext|>\","
                     "\"ids\":[151643],\"tokens\":[\"<|endoftext|>\"]}}}";
    cJSON_ReplaceItemInObjectCaseSensitive(root, "post_processor", cJSON_Parse(pp));
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    *len = strlen(out);
    return out;
}

static void check_eos_row(cJSON *row, int lineno, void *ctx)
{
    struct corpus_stats *st = ctx;
    const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
    int32_t *ids, n;
    char err[256];
    st->rows++;
    if (tok_encode(st->t, text, strlen(text), &ids, &n, err, sizeof err) < 0) {
        TEST_FAIL_AT("post_eos line %d: %s", lineno, err);
        return;
    }
    if (!ids_equal(cJSON_GetObjectItem(row, "ids_plain"), ids, n))
        st->enc_bad++;
    tok_post_process(st->t, &ids, &n);
    if (!ids_equal(cJSON_GetObjectItem(row, "ids"), ids, n)) {
        if (st->post_bad < 3) {
            TEST_FAIL_AT("post_eos line %d: post-processed ids differ", lineno);
            print_ids("C", ids, n);
        }
        st->post_bad++;
    }
    free(ids);
}

TEST(test_post_processor_template_eos)
{
    size_t len;
    char *js = eos_json(&len);
    CHECK(js != NULL);
    if (!js)
        return;
    char err[256] = "";
    struct tok *t = tok_load_json(js, len, err, sizeof err);
    free(js);
    CHECK(t != NULL);
    if (!t) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(tok_post_process_added(t), 1);
    struct corpus_stats st = {.t = t};
    int n = each_line(DATA "post_eos.jsonl", check_eos_row, &st);
    CHECK(n >= 100);
    CHECK_EQ_INT(st.enc_bad, 0);
    CHECK_EQ_INT(st.post_bad, 0);
    int32_t *ids, k;
    CHECK_EQ_INT(tok_encode(t, "", 0, &ids, &k, err, sizeof err), 0);
    tok_post_process(t, &ids, &k);
    CHECK_EQ_INT(k, 1);
    CHECK_EQ_INT(ids[0], 151643);
    free(ids);
    tok_free(t);
}

/* The real tokenizer.json with lstrip / rstrip / single_word / normalized set on a few added
 * tokens (FLAG_CHANGES in scripts/ref/make_tokenizer_ref.py). */
static struct tok *flags_tokenizer(void)
{
    size_t n;
    char *s = slurp(TOK_PATH, &n);
    if (!s)
        return NULL;
    cJSON *root = cJSON_ParseWithLength(s, n);
    free(s);
    static const struct {
        const char *content, *flag;
    } ch[] = {{"<think>", "lstrip"},          {"</think>", "rstrip"},
              {"<tool_call>", "single_word"}, {"<|fim_prefix|>", "normalized"},
              {"<|file_sep|>", "lstrip"},     {"<|file_sep|>", "rstrip"}};
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "added_tokens"))
    {
        const char *c = cJSON_GetObjectItem(e, "content")->valuestring;
        for (size_t i = 0; i < sizeof ch / sizeof ch[0]; i++)
            if (strcmp(c, ch[i].content) == 0)
                cJSON_ReplaceItemInObject(e, ch[i].flag, cJSON_CreateTrue());
    }
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    char err[256];
    struct tok *t = tok_load_json(js, strlen(js), err, sizeof err);
    free(js);
    if (!t)
        TEST_FAIL_AT("flags tokenizer: %s", err);
    return t;
}

TEST(test_added_token_flags)
{
    struct tok *t = flags_tokenizer();
    if (!t)
        return;
    struct corpus_stats st = {.t = t};
    int n = each_line(DATA "flags.jsonl", check_row, &st);
    CHECK(n >= 300);
    CHECK_EQ_INT(st.enc_bad, 0);
    tok_free(t);
}

/* Character classes and NFC against the per-code-point tables taken from HF. */
TEST(test_unicode_tables)
{
    size_t n;
    char *s = slurp(DATA "unicode.json", &n);
    CHECK(s != NULL);
    if (!s)
        return;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    const cJSON *runs = cJSON_GetObjectItem(j, "class_runs");
    int nr = cJSON_GetArraySize(runs), bad = 0;
    for (int r = 0; r < nr; r++) {
        const cJSON *run = cJSON_GetArrayItem(runs, r);
        uint32_t a = (uint32_t)cJSON_GetArrayItem(run, 0)->valuedouble;
        char k = cJSON_GetArrayItem(run, 1)->valuestring[0];
        uint32_t b =
            r + 1 < nr
                ? (uint32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(runs, r + 1), 0)->valuedouble
                : a + 1;
        int want = k == 'L' ? TOK_CL_L : k == 'N' ? TOK_CL_N : k == 'S' ? TOK_CL_S : 0;
        for (uint32_t cp = a; cp < b; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF)
                continue;
            /* the tables skip planes 4-13; a run spanning them is not evidence */
            if (cp >= 0x40000 && cp < 0xE0000)
                continue;
            if ((cp >= 0xE1000 && cp < 0xF0000) || cp >= 0xF0100)
                continue;
            int got = tok_cp_class(cp);
            if (got != want) {
                if (bad < 10)
                    TEST_FAIL_AT("U+%04X: class %d, HF's regex sees %c", cp, got, k);
                bad++;
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
    const cJSON *nfc = cJSON_GetObjectItem(j, "nfc"), *e;
    int nbad = 0, nn = 0;
    cJSON_ArrayForEach(e, nfc)
    {
        uint32_t cp = (uint32_t)strtoul(e->string, NULL, 10);
        utf8proc_uint8_t in[8];
        utf8proc_ssize_t l = utf8proc_encode_char((utf8proc_int32_t)cp, in);
        in[l] = 0;
        utf8proc_uint8_t *out = utf8proc_NFC(in);
        nn++;
        if (!out || strcmp((char *)out, e->valuestring) != 0) {
            if (nbad < 40)
                TEST_FAIL_AT("NFC(U+%04X) differs from HF", cp);
            nbad++;
        }
        free(out);
    }
    CHECK(nn > 100);
    CHECK_EQ_INT(nbad, 0);
    cJSON_Delete(j);
}

TEST(test_lookup_and_decode)
{
    CHECK_EQ_INT(tok_token_id(tk, "<|image_pad|>"), 151655);
    CHECK_EQ_INT(tok_token_id(tk, "<|im_start|>"), 151644);
    CHECK_EQ_INT(tok_token_id(tk, "\xC4\xA0the"), 279); /* "Ġthe" */
    CHECK_EQ_INT(tok_token_id(tk, "no such token at all"), -1);
    CHECK_EQ_STR(tok_id_token(tk, 151645), "<|im_end|>");
    CHECK(tok_is_special(tk, 151643));
    CHECK(!tok_is_special(tk, 279));
    int32_t ids[] = {151644, 872, 198, 9707, 151645};
    char *s = tok_decode(tk, ids, 5);
    CHECK_EQ_STR(s, "<|im_start|>user\nHello<|im_end|>");
    free(s);
    s = tok_decode_ex(tk, ids, 5, 1);
    CHECK_EQ_STR(s, "user\nHello");
    free(s);
    /* a lone byte of a multi-byte character decodes to U+FFFD */
    int32_t half[] = {tk->byte_id[0xE4], tk->byte_id[0xBD], 9707};
    s = tok_decode(tk, half, 3);
    CHECK_EQ_STR(s, "\xEF\xBF\xBDHello");
    free(s);
}

TEST(test_bad_input)
{
    char err[256] = "";
    int32_t *ids = (int32_t *)1, n = 7;
    CHECK_EQ_INT(tok_encode(tk, "ab\xC3(", 4, &ids, &n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "invalid UTF-8 at byte 2");
    CHECK(ids == NULL);
    CHECK_EQ_INT(tok_encode(tk, "\xED\xA0\x80", 3, &ids, &n, err, sizeof err), -1); /* surrogate */
    CHECK_EQ_INT(tok_encode(tk, "\xC0\xAF", 2, &ids, &n, err, sizeof err), -1);     /* overlong */
    CHECK_EQ_INT(tok_encode(tk, "", 0, &ids, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 0);
    free(ids);
}

TEST(test_bad_tokenizer_files)
{
    char err[256] = "";
    CHECK(tok_load("/nonexistent/tokenizer.json", err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "cannot open");
    CHECK(tok_load_json("{\"model\": ", 10, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "not valid JSON");
    const char *wp = "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}},\"added_tokens\":[]}";
    CHECK(tok_load_json(wp, strlen(wp), err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "model type \"WordPiece\" is not supported");
    const char *nomodel = "{\"added_tokens\":[]}";
    CHECK(tok_load_json(nomodel, strlen(nomodel), err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "no model");
    /* a merge naming a token missing from the vocab */
    const char *bm =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[[\"a\",\"zz\"]]}}";
    CHECK(tok_load_json(bm, strlen(bm), err, sizeof err) == NULL);
    CHECK(err[0] != 0);
    /* the real file with an unsupported pre-tokenizer regex */
    size_t n;
    char *s = slurp(TOK_PATH, &n);
    if (s) {
        cJSON *root = cJSON_ParseWithLength(s, n);
        free(s);
        cJSON *pre = cJSON_GetObjectItem(root, "pre_tokenizer");
        cJSON *split = cJSON_GetArrayItem(cJSON_GetObjectItem(pre, "pretokenizers"), 0);
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(split, "pattern"), "Regex",
                                  cJSON_CreateString("\\w+"));
        char *js = cJSON_PrintUnformatted(root);
        CHECK(tok_load_json(js, strlen(js), err, sizeof err) == NULL);
        CHECK_CONTAINS(err, "Split regex is not one of the supported ones");
        free(js);
        cJSON_ReplaceItemInObject(root, "normalizer", cJSON_Parse("{\"type\":\"Lowercase\"}"));
        js = cJSON_PrintUnformatted(root);
        CHECK(tok_load_json(js, strlen(js), err, sizeof err) == NULL);
        free(js);
        cJSON_Delete(root);
    }
}

/* A BertProcessing post-processor's cls/sep ids are range-checked like TemplateProcessing's: an
 * id of 1e300, -1 or 2^31 is refused with a sentence (it was cast to int32_t unchecked: UB, found
 * by UBSan's float-cast-overflow); a valid id loads and is added. On the real tokenizer.json. */
TEST(test_bert_processing_ids)
{
    size_t n;
    char *s = slurp(TOK_PATH, &n);
    CHECK(s != NULL);
    if (!s)
        return;
    cJSON *root = cJSON_ParseWithLength(s, n);
    free(s);
    static const char *const ids[] = {"151643", "1e300", "-1", "2147483648"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char pp[256], err[256] = "";
        snprintf(pp, sizeof pp,
                 "{\"type\":\"BertProcessing\",\"cls\":[\"x\",%s],\"sep\":[\"y\",151643]}", ids[i]);
        cJSON_ReplaceItemInObject(root, "post_processor", cJSON_Parse(pp));
        char *js = cJSON_PrintUnformatted(root);
        struct tok *t = tok_load_json(js, strlen(js), err, sizeof err);
        free(js);
        if (i == 0) {
            CHECK(t != NULL);
            if (t)
                CHECK_EQ_INT(tok_post_process_added(t), 2);
        } else {
            CHECK(t == NULL);
            CHECK_CONTAINS(err, "BertProcessing without [token, id] cls/sep");
        }
        tok_free(t);
    }
    cJSON_Delete(root);
}

/* Byte-level BPE loses nothing: decode(encode(s)) is NFC(s) for any valid UTF-8 without added
 * tokens; random bytes are either refused as invalid UTF-8 or round-trip the same way. */
TEST(test_round_trip_random)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int bad = 0, refused = 0;
    for (int k = 0; k < 3000; k++) {
        char buf[600];
        size_t n = 0;
        int len = 1 + (int)((x >> 33) % 150);
        for (int i = 0; i < len; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(x >> 33), cp;
            if (k % 3 == 0) { /* raw bytes */
                buf[n++] = (char)(r & 0xFF);
                continue;
            }
            switch (r % 5) {
            case 0:
                cp = 0x20 + (r >> 8) % 0x5F;
                break;
            case 1:
                cp = " \n\t\r"[(r >> 8) % 4];
                break;
            case 2:
                cp = 0x80 + (r >> 8) % 0x2F80;
                break;
            case 3:
                cp = 0x300 + (r >> 8) % 0x70;
                break; /* combining marks */
            default:
                cp = 1 + (r >> 8) % 0x10FFFF;
                break;
            }
            if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0 || cp == '<')
                cp = 'x';
            n += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)buf + n);
        }
        buf[n] = 0;
        int32_t *ids, m;
        char err[128];
        if (tok_encode(tk, buf, n, &ids, &m, err, sizeof err) < 0) {
            if (tok_utf8_invalid_at(buf, n) < 0) {
                TEST_FAIL_AT("valid text refused: %s", err);
                bad++;
            }
            refused++;
            continue;
        }
        char *dec = tok_decode(tk, ids, m);
        utf8proc_uint8_t *nfc = utf8proc_NFC((const utf8proc_uint8_t *)buf);
        if (!nfc || strcmp(dec, (char *)nfc) != 0) {
            if (bad < 3)
                TEST_FAIL_AT("round trip %d: decode(encode(s)) != NFC(s)", k);
            bad++;
        }
        free(nfc);
        free(dec);
        free(ids);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(refused > 500); /* most raw-byte strings are invalid UTF-8 */
}

/* tok_encode from several threads on one tokenizer gives the single-threaded answer. */
struct thr {
    const char *text;
    int32_t *want;
    int32_t n_want;
    int bad;
};

static void *thr_main(void *p)
{
    struct thr *a = p;
    for (int r = 0; r < 30; r++) {
        int32_t *ids, n;
        char err[128];
        if (tok_encode(tk, a->text, strlen(a->text), &ids, &n, err, sizeof err) < 0 ||
            n != a->n_want || memcmp(ids, a->want, (size_t)n * sizeof *ids) != 0)
            a->bad++;
        free(ids);
    }
    return NULL;
}

TEST(test_concurrent_encode)
{
    const char *texts[4] = {
        "Hello world, it's 2026! <|im_start|>user\n",
        "机器学习是人工智能的一个分支。 "
        "机器学习是人工智能的一个分支。",
        "Cafe\xCC\x81 na\xC3\xAFve \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD   \n\n x",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    struct thr a[8];
    pthread_t th[8];
    char err[128];
    for (int i = 0; i < 8; i++) {
        a[i].text = texts[i % 4];
        a[i].bad = 0;
        CHECK_EQ_INT(
            tok_encode(tk, a[i].text, strlen(a[i].text), &a[i].want, &a[i].n_want, err, sizeof err),
            0);
    }
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, thr_main, &a[i]);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(a[i].bad, 0);
        free(a[i].want);
    }
}

static void setup(void)
{
    char err[256];
    tk = tok_load(TOK_PATH, err, sizeof err);
    if (!tk)
        TEST_FAIL_AT("tok_load(%s): %s (run make deps)", TOK_PATH, err);
}

static void teardown(void)
{
    tok_free(tk);
}

TEST_MAIN(setup, test_corpus_parity, test_post_processor_template_eos, test_added_token_flags,
          test_unicode_tables, test_lookup_and_decode, test_bad_input, test_bad_tokenizer_files,
          test_bert_processing_ids, test_round_trip_random, test_concurrent_encode, teardown)
