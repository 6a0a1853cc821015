/* Loading tokenizer.json into an immutable `struct tok`, id/string lookups, the
 * post-processor, and decoding. Encoding lives in tok_encode.c and tok_bpe.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/alloc.h"
#include "common/log.h"
#include "gateway/tok_internal.h"

/* tokenizer.json of a real checkpoint is ~11 MB; anything past this is not a tokenizer. */
#define TOK_JSON_MAX ((size_t)512 * 1024 * 1024)
/* Ids past this are certainly a broken file (the largest vocabularies are ~260k). */
#define TOK_ID_MAX 16000000

/* The Split regexes recognised, exactly as tokenizer.json spells them (after JSON decoding). */
static const char qwen_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char cl100k_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* GPT-2 byte-level alphabet: printable Latin-1 bytes (33-126, 161-172, 174-255) stand for
 * themselves; the other 68 (0-32, 127-160, 173) for U+0100..U+0143 in byte order. */
static int printable_byte(uint32_t b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256)
        return printable_byte(cp) ? (int)cp : -1;
    if (cp < 256 + 33)
        return (int)(cp - 256); /* bytes 0-32 */
    if (cp < 256 + 67)
        return (int)(cp - 256 - 33 + 127); /* bytes 127-160 */
    if (cp == 256 + 67)
        return 173;
    return -1;
}

void tok_ivec_push(struct tok_ivec *a, int32_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = vl_realloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

/* ---- string -> id map -------------------------------------------------------------------- */

static uint32_t str_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int32_t str_map_get(const struct tok *t, const char *s, size_t n)
{
    if (!t->str_map.slots)
        return -1;
    uint32_t h = str_hash(s, n) & t->str_map.mask;
    for (;;) {
        int32_t id = t->str_map.slots[h];
        if (id < 0)
            return -1;
        const char *k = t->id_str[id];
        if (strlen(k) == n && memcmp(k, s, n) == 0)
            return id;
        h = (h + 1) & t->str_map.mask;
    }
}

/* Inserts id under its string unless the string is already there (first insert wins). */
static void str_map_put(struct tok *t, int32_t id)
{
    const char *s = t->id_str[id];
    size_t n = strlen(s);
    uint32_t h = str_hash(s, n) & t->str_map.mask;
    for (;;) {
        int32_t cur = t->str_map.slots[h];
        if (cur < 0) {
            t->str_map.slots[h] = id;
            return;
        }
        if (strcmp(t->id_str[cur], s) == 0)
            return;
        h = (h + 1) & t->str_map.mask;
    }
}

/* ---- helpers over cJSON ------------------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    return dflt;
}

/* Decodes a byte-level token string into bytes; -1 if a character is outside the alphabet. */
static int bytelevel_decode(const char *s, uint8_t *out, uint32_t *n_out)
{
    size_t n = strlen(s), i = 0;
    uint32_t k = 0;
    if (tok_utf8_invalid_at(s, n) >= 0)
        return -1;
    while (i < n) {
        uint32_t cp;
        i += (size_t)tok_utf8_next((const uint8_t *)s, i, &cp);
        int b = tok_cp_to_byte(cp);
        if (b < 0)
            return -1;
        out[k++] = (uint8_t)b;
    }
    *n_out = k;
    return 0;
}

/* ---- components ---------------------------------------------------------------------------- */

static int load_normalizer(struct tok *t, const cJSON *n, char *err, size_t errlen)
{
    if (!n || cJSON_IsNull(n))
        return 0;
    const char *type = jstr(n, "type");
    if (!type) {
        vl_seterr(err, errlen, "tokenizer.json: normalizer has no type");
        return -1;
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        const cJSON *e;
        if (!cJSON_IsArray(list)) {
            vl_seterr(err, errlen,
                      "tokenizer.json: normalizer Sequence without a normalizers list");
            return -1;
        }
        cJSON_ArrayForEach(e, list) if (load_normalizer(t, e, err, errlen) < 0) return -1;
        return 0;
    }
    enum tok_norm k;
    if (strcmp(type, "NFC") == 0)
        k = TOK_NORM_NFC;
    else if (strcmp(type, "NFD") == 0)
        k = TOK_NORM_NFD;
    else if (strcmp(type, "NFKC") == 0)
        k = TOK_NORM_NFKC;
    else if (strcmp(type, "NFKD") == 0)
        k = TOK_NORM_NFKD;
    else {
        vl_seterr(err, errlen,
                  "tokenizer.json: normalizer \"%s\" is not supported (NFC, NFD, NFKC, "
                  "NFKD or a Sequence of them)",
                  type);
        return -1;
    }
    if (t->n_norm == TOK_NORM_MAX) {
        vl_seterr(err, errlen, "tokenizer.json: more than %d normalizers", TOK_NORM_MAX);
        return -1;
    }
    t->norm[t->n_norm++] = k;
    return 0;
}

static int load_bytelevel_pretok(const cJSON *p, char *err, size_t errlen)
{
    if (jbool(p, "add_prefix_space", 0)) {
        vl_seterr(err, errlen,
                  "tokenizer.json: ByteLevel pre-tokenizer with add_prefix_space=true "
                  "is not supported");
        return -1;
    }
    if (jbool(p, "use_regex", 1)) {
        vl_seterr(err, errlen,
                  "tokenizer.json: ByteLevel pre-tokenizer with use_regex=true (GPT-2 "
                  "regex) is not supported");
        return -1;
    }
    return 0;
}

static int load_pretokenizer(struct tok *t, const cJSON *p, char *err, size_t errlen)
{
    const char *type = p ? jstr(p, "type") : NULL;
    if (!type) {
        vl_seterr(err, errlen, "tokenizer.json: no pre_tokenizer (a byte-level BPE needs one)");
        return -1;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        t->split = TOK_SPLIT_NONE;
        return load_bytelevel_pretok(p, err, errlen);
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (strcmp(type, "Sequence") != 0 || !cJSON_IsArray(list) || cJSON_GetArraySize(list) != 2) {
        vl_seterr(err, errlen,
                  "tokenizer.json: pre_tokenizer \"%s\" is not supported (expected "
                  "Sequence[Split, ByteLevel])",
                  type);
        return -1;
    }
    const cJSON *sp = cJSON_GetArrayItem(list, 0), *bl = cJSON_GetArrayItem(list, 1);
    const char *st = jstr(sp, "type"), *bt = jstr(bl, "type");
    if (!st || strcmp(st, "Split") != 0 || !bt || strcmp(bt, "ByteLevel") != 0) {
        vl_seterr(err, errlen,
                  "tokenizer.json: pre_tokenizer Sequence[%s, %s] is not supported "
                  "(expected Sequence[Split, ByteLevel])",
                  st ? st : "?", bt ? bt : "?");
        return -1;
    }
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(sp, "pattern");
    const char *re = pat ? jstr(pat, "Regex") : NULL;
    const char *beh = jstr(sp, "behavior");
    if (!re || !beh || strcmp(beh, "Isolated") != 0 || jbool(sp, "invert", 0)) {
        vl_seterr(err, errlen,
                  "tokenizer.json: Split pre-tokenizer must be a Regex with behavior "
                  "Isolated and invert=false");
        return -1;
    }
    if (strcmp(re, qwen_regex) == 0)
        t->split = TOK_SPLIT_QWEN;
    else if (strcmp(re, cl100k_regex) == 0)
        t->split = TOK_SPLIT_CL100K;
    else {
        vl_seterr(err, errlen,
                  "tokenizer.json: Split regex is not one of the supported ones "
                  "(Qwen2/Qwen3, cl100k): %.120s",
                  re);
        return -1;
    }
    return load_bytelevel_pretok(bl, err, errlen);
}

/* Composes one TemplateProcessing-like step (pieces) onto the current template. */
static void post_compose(struct tok *t, const struct tok_post_piece *step, int n_step)
{
    struct tok_post_piece *cur = t->post;
    int n_cur = t->n_post;
    if (!cur) { /* identity: [Sequence] */
        cur = vl_calloc(1, sizeof *cur);
        cur[0].is_sequence = 1;
        n_cur = 1;
    }
    int n_new = 0;
    for (int i = 0; i < n_step; i++)
        n_new += step[i].is_sequence ? n_cur : 1;
    struct tok_post_piece *nw = vl_calloc((size_t)n_new, sizeof *nw);
    int k = 0;
    for (int i = 0; i < n_step; i++) {
        const struct tok_post_piece *src = step[i].is_sequence ? cur : &step[i];
        int cnt = step[i].is_sequence ? n_cur : 1;
        for (int j = 0; j < cnt; j++, k++) {
            nw[k].is_sequence = src[j].is_sequence;
            nw[k].n_ids = src[j].n_ids;
            if (src[j].n_ids) {
                nw[k].ids = vl_malloc((size_t)src[j].n_ids * sizeof(int32_t));
                memcpy(nw[k].ids, src[j].ids, (size_t)src[j].n_ids * sizeof(int32_t));
            }
        }
    }
    for (int i = 0; i < n_cur; i++)
        free(cur[i].ids);
    free(cur);
    t->post = nw;
    t->n_post = n_new;
}

static int load_post(struct tok *t, const cJSON *p, char *err, size_t errlen)
{
    if (!p || cJSON_IsNull(p))
        return 0;
    const char *type = jstr(p, "type");
    if (!type) {
        vl_seterr(err, errlen, "tokenizer.json: post_processor has no type");
        return -1;
    }
    if (strcmp(type, "ByteLevel") == 0)
        return 0; /* offsets only */
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors"), *e;
        if (!cJSON_IsArray(list)) {
            vl_seterr(err, errlen, "tokenizer.json: post_processor Sequence without processors");
            return -1;
        }
        cJSON_ArrayForEach(e, list) if (load_post(t, e, err, errlen) < 0) return -1;
        return 0;
    }
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        const cJSON *cid = cJSON_GetArrayItem(cls, 1), *sid = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(cid) || !cJSON_IsNumber(sid) || !(cid->valuedouble >= 0) ||
            cid->valuedouble > TOK_ID_MAX || !(sid->valuedouble >= 0) ||
            sid->valuedouble > TOK_ID_MAX) {
            vl_seterr(err, errlen, "tokenizer.json: %s without [token, id] cls/sep", type);
            return -1;
        }
        int32_t c = (int32_t)cid->valuedouble, s = (int32_t)sid->valuedouble;
        struct tok_post_piece step[3] = {{0, &c, 1}, {1, NULL, 0}, {0, &s, 1}};
        post_compose(t, step, 3);
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") != 0) {
        vl_seterr(err, errlen, "tokenizer.json: post_processor \"%s\" is not supported", type);
        return -1;
    }
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    if (!cJSON_IsArray(single)) {
        vl_seterr(err, errlen, "tokenizer.json: TemplateProcessing without a single template");
        return -1;
    }
    int n = cJSON_GetArraySize(single), n_seq = 0;
    struct tok_post_piece *step = vl_calloc((size_t)n + 1, sizeof *step);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const cJSON *it = cJSON_GetArrayItem(single, i);
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (seq) {
            const char *sid = jstr(seq, "id");
            if (!sid || strcmp(sid, "A") != 0) {
                vl_seterr(err, errlen,
                          "tokenizer.json: TemplateProcessing single template names "
                          "sequence \"%s\" (only A is possible)",
                          sid ? sid : "?");
                rc = -1;
            }
            step[i].is_sequence = 1;
            n_seq++;
            continue;
        }
        const char *name = sp ? jstr(sp, "id") : NULL;
        const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
        const cJSON *ids = def ? cJSON_GetObjectItemCaseSensitive(def, "ids") : NULL;
        if (!cJSON_IsArray(ids)) {
            vl_seterr(err, errlen,
                      "tokenizer.json: TemplateProcessing special token \"%s\" has no "
                      "ids in special_tokens",
                      name ? name : "?");
            rc = -1;
            break;
        }
        int k = cJSON_GetArraySize(ids);
        step[i].ids = vl_calloc((size_t)k + 1, sizeof(int32_t));
        step[i].n_ids = k;
        for (int j = 0; j < k; j++) {
            const cJSON *v = cJSON_GetArrayItem(ids, j);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > TOK_ID_MAX) {
                vl_seterr(err, errlen, "tokenizer.json: bad id for special token \"%s\"", name);
                rc = -1;
                break;
            }
            step[i].ids[j] = (int32_t)v->valuedouble;
        }
    }
    if (rc == 0 && n_seq != 1) {
        vl_seterr(err, errlen,
                  "tokenizer.json: TemplateProcessing single template must hold the "
                  "sequence exactly once");
        rc = -1;
    }
    if (rc == 0)
        post_compose(t, step, n);
    for (int i = 0; i < n; i++)
        free(step[i].ids);
    free(step);
    return rc;
}

static int load_model(struct tok *t, const cJSON *m, const cJSON *added, char *err, size_t errlen)
{
    const char *type = jstr(m, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!type || strcmp(type, "BPE") != 0) {
        vl_seterr(err, errlen, "tokenizer.json: model type \"%s\" is not supported (only BPE)",
                  type ? type : "(none)");
        return -1;
    }
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        vl_seterr(err, errlen, "tokenizer.json: BPE model without vocab object and merges list");
        return -1;
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0) {
        vl_seterr(err, errlen, "tokenizer.json: BPE dropout is not supported");
        return -1;
    }
    const char *csp = jstr(m, "continuing_subword_prefix"), *ews = jstr(m, "end_of_word_suffix");
    if ((csp && *csp) || (ews && *ews)) {
        vl_seterr(err, errlen,
                  "tokenizer.json: BPE continuing_subword_prefix/end_of_word_suffix "
                  "are not supported");
        return -1;
    }
    if (jbool(m, "ignore_merges", 0)) {
        vl_seterr(err, errlen, "tokenizer.json: BPE ignore_merges=true is not supported");
        return -1;
    }

    /* id space: vocab ids and added-token ids */
    double max_id = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > TOK_ID_MAX ||
            e->valuedouble != (double)(int32_t)e->valuedouble) {
            vl_seterr(err, errlen, "tokenizer.json: vocab entry \"%.60s\" has a bad id", e->string);
            return -1;
        }
        if (e->valuedouble > max_id)
            max_id = e->valuedouble;
    }
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *content = jstr(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > TOK_ID_MAX ||
            !content || !*content) {
            vl_seterr(err, errlen, "tokenizer.json: an added token lacks a valid id or content");
            return -1;
        }
        if (id->valuedouble > max_id)
            max_id = id->valuedouble;
    }
    t->n_ids = (int32_t)max_id + 1;
    t->id_str = vl_calloc((size_t)t->n_ids, sizeof *t->id_str);
    t->id_bytes = vl_calloc((size_t)t->n_ids, sizeof *t->id_bytes);
    t->id_nbytes = vl_calloc((size_t)t->n_ids, sizeof *t->id_nbytes);
    t->id_special = vl_calloc((size_t)t->n_ids, 1);
    uint32_t cap = 1;
    while (cap < 2u * (uint32_t)t->n_ids + 16)
        cap <<= 1;
    t->str_map.slots = vl_malloc(cap * sizeof(int32_t));
    memset(t->str_map.slots, 0xff, cap * sizeof(int32_t));
    t->str_map.mask = cap - 1;

    /* added tokens first: they win string lookups, as in HF token_to_id */
    int n_added = cJSON_GetArraySize(added);
    if (n_added > 30000) {
        vl_seterr(err, errlen, "tokenizer.json: %d added tokens (at most 30000)", n_added);
        return -1;
    }
    t->added = vl_calloc((size_t)n_added + 1, sizeof *t->added);
    cJSON_ArrayForEach(e, added)
    {
        struct tok_added *a = &t->added[t->n_added++];
        a->id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        a->content = vl_strdup(jstr(e, "content"));
        a->len = (uint32_t)strlen(a->content);
        a->special = (uint8_t)jbool(e, "special", 0);
        a->lstrip = (uint8_t)jbool(e, "lstrip", 0);
        a->rstrip = (uint8_t)jbool(e, "rstrip", 0);
        a->single_word = (uint8_t)jbool(e, "single_word", 0);
        a->normalized = (uint8_t)jbool(e, "normalized", !a->special);
        if (tok_utf8_invalid_at(a->content, a->len) >= 0) {
            vl_seterr(err, errlen, "tokenizer.json: added token %d is not valid UTF-8", a->id);
            return -1;
        }
        if (a->normalized)
            t->any_normalized_added = 1;
        if (!t->id_str[a->id]) {
            t->id_str[a->id] = vl_strdup(a->content);
            str_map_put(t, a->id);
        }
        t->id_special[a->id] = a->special;
    }

    uint8_t buf[1024];
    cJSON_ArrayForEach(e, vocab)
    {
        int32_t id = (int32_t)e->valuedouble;
        size_t n = strlen(e->string);
        if (n > sizeof buf) {
            vl_seterr(err, errlen, "tokenizer.json: vocab entry of %zu bytes is too long", n);
            return -1;
        }
        if (!t->id_str[id]) {
            t->id_str[id] = vl_strdup(e->string);
        }
        uint32_t nb;
        if (bytelevel_decode(e->string, buf, &nb) < 0) {
            vl_seterr(err, errlen,
                      "tokenizer.json: vocab entry \"%.60s\" is not in the byte-level "
                      "alphabet (only byte-level BPE is supported)",
                      e->string);
            return -1;
        }
        if (!t->id_bytes[id]) {
            t->id_bytes[id] = vl_malloc(nb ? nb : 1);
            memcpy(t->id_bytes[id], buf, nb);
            t->id_nbytes[id] = nb;
        }
        if (strcmp(t->id_str[id], e->string) == 0)
            str_map_put(t, id);
    }
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    cJSON_ArrayForEach(e, vocab)
    {
        int32_t id = (int32_t)e->valuedouble;
        if (t->id_nbytes[id] == 1 && t->id_bytes[id] && t->byte_id[t->id_bytes[id][0]] < 0)
            t->byte_id[t->id_bytes[id][0]] = id;
    }
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] < 0) {
            vl_seterr(err, errlen,
                      "tokenizer.json: the vocab has no token for byte 0x%02x (a "
                      "byte-level BPE covers all 256)",
                      b);
            return -1;
        }

    /* merges: ranks by position; each pair and its result must be vocab tokens */
    int n_merges = cJSON_GetArraySize(merges);
    uint32_t mcap = 1;
    while (mcap < 2u * (uint32_t)n_merges + 16)
        mcap <<= 1;
    t->merges.keys = vl_malloc(mcap * sizeof(uint64_t));
    t->merges.vals = vl_malloc(mcap * sizeof(uint64_t));
    memset(t->merges.keys, 0xff, mcap * sizeof(uint64_t));
    t->merges.mask = mcap - 1;
    uint32_t rank = 0;
    char cat[2100];
    cJSON_ArrayForEach(e, merges)
    {
        const char *a = NULL, *b = NULL;
        char tmp[2100];
        if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
        } else if (cJSON_IsString(e) && strlen(e->valuestring) < sizeof tmp) {
            strcpy(tmp, e->valuestring);
            char *sp = strchr(tmp, ' ');
            if (sp) {
                *sp = 0;
                a = tmp;
                b = sp + 1;
            }
        }
        if (!a || !b || strlen(a) + strlen(b) >= sizeof cat) {
            vl_seterr(err, errlen, "tokenizer.json: merge %u is not a pair of tokens", rank);
            return -1;
        }
        int32_t ia = str_map_get(t, a, strlen(a)), ib = str_map_get(t, b, strlen(b));
        size_t la = strlen(a), lb = strlen(b);
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb + 1);
        int32_t ic = str_map_get(t, cat, strlen(cat));
        if (ia < 0 || ib < 0 || ic < 0) {
            vl_seterr(err, errlen,
                      "tokenizer.json: merge %u (\"%.40s\" \"%.40s\") names a token "
                      "missing from the vocab",
                      rank, a, b);
            return -1;
        }
        uint64_t key = ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib;
        uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & t->merges.mask;
        while (t->merges.keys[h] != UINT64_MAX && t->merges.keys[h] != key)
            h = (h + 1) & t->merges.mask;
        if (t->merges.keys[h] == UINT64_MAX) { /* a repeated pair keeps its first rank */
            t->merges.keys[h] = key;
            t->merges.vals[h] = ((uint64_t)rank << 32) | (uint32_t)ic;
        }
        rank++;
    }
    return 0;
}

/* Groups added tokens by first byte, longest first, for leftmost-longest matching. */
static void index_added(struct tok *t)
{
    t->added_by_byte = vl_calloc((size_t)t->n_added + 1, sizeof *t->added_by_byte);
    int k = 0;
    for (int b = 0; b < 256; b++) {
        t->added_first[b] = -1;
        t->added_by_byte_n[b] = 0;
        int start = k;
        for (int i = 0; i < t->n_added; i++)
            if ((uint8_t)t->added[i].content[0] == b)
                t->added_by_byte[k++] = (int16_t)i;
        if (k == start)
            continue;
        t->added_first[b] = (int16_t)start;
        t->added_by_byte_n[b] = (int16_t)(k - start);
        for (int i = start + 1; i < k; i++) /* insertion sort, longest first */
            for (int j = i; j > start && t->added[t->added_by_byte[j]].len >
                                             t->added[t->added_by_byte[j - 1]].len;
                 j--) {
                int16_t x = t->added_by_byte[j];
                t->added_by_byte[j] = t->added_by_byte[j - 1];
                t->added_by_byte[j - 1] = x;
            }
    }
}

struct tok *tok_load_json(const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        const char *where = cJSON_GetErrorPtr();
        vl_seterr(err, errlen, "tokenizer.json: not valid JSON (near byte %ld)",
                  where && where >= json && where <= json + len ? (long)(where - json) : -1L);
        cJSON_Delete(root);
        return NULL;
    }
    struct tok *t = vl_calloc(1, sizeof *t);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    int rc = -1;
    if (!cJSON_IsObject(model)) {
        vl_seterr(err, errlen, "tokenizer.json: no model object");
        goto out;
    }
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added)) {
        vl_seterr(err, errlen, "tokenizer.json: added_tokens is not a list");
        goto out;
    }
    if (load_model(t, model, cJSON_IsArray(added) ? added : NULL, err, errlen) < 0 ||
        load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err, errlen) < 0 ||
        load_pretokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err, errlen) <
            0 ||
        load_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), err, errlen) < 0)
        goto out;
    if (!dec || !jstr(dec, "type") || strcmp(jstr(dec, "type"), "ByteLevel") != 0) {
        vl_seterr(err, errlen, "tokenizer.json: decoder \"%s\" is not supported (only ByteLevel)",
                  dec && jstr(dec, "type") ? jstr(dec, "type") : "(none)");
        goto out;
    }
    index_added(t);
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc < 0) {
        tok_free(t);
        return NULL;
    }
    return t;
}

struct tok *tok_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        vl_seterr(err, errlen, "cannot open tokenizer %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= TOK_JSON_MAX) {
                fclose(f);
                free(buf);
                vl_seterr(err, errlen, "tokenizer %s is larger than %zu bytes", path, TOK_JSON_MAX);
                return NULL;
            }
            cap = cap ? cap * 2 : (1u << 20);
            buf = vl_realloc(buf, cap);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        vl_seterr(err, errlen, "cannot read tokenizer %s", path);
        return NULL;
    }
    struct tok *t = tok_load_json(buf, n, err, errlen);
    free(buf);
    return t;
}

void tok_free(struct tok *t)
{
    if (!t)
        return;
    for (int32_t i = 0; t->id_str && i < t->n_ids; i++)
        free(t->id_str[i]);
    for (int32_t i = 0; t->id_bytes && i < t->n_ids; i++)
        free(t->id_bytes[i]);
    free(t->id_str);
    free(t->id_bytes);
    free(t->id_nbytes);
    free(t->id_special);
    free(t->str_map.slots);
    free(t->merges.keys);
    free(t->merges.vals);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->added_by_byte);
    for (int i = 0; i < t->n_post; i++)
        free(t->post[i].ids);
    free(t->post);
    free(t);
}

/* ---- lookups, post-processing, decoding --------------------------------------------------- */

int32_t tok_token_id(const struct tok *t, const char *token)
{
    return token ? str_map_get(t, token, strlen(token)) : -1;
}

const char *tok_id_token(const struct tok *t, int32_t id)
{
    return id >= 0 && id < t->n_ids ? t->id_str[id] : NULL;
}

int tok_is_special(const struct tok *t, int32_t id)
{
    return id >= 0 && id < t->n_ids && t->id_special[id];
}

int32_t tok_vocab_size(const struct tok *t)
{
    return t->n_ids;
}

int32_t tok_post_process_added(const struct tok *t)
{
    int32_t n = 0;
    for (int i = 0; i < t->n_post; i++)
        n += t->post[i].n_ids;
    return n;
}

int tok_post_process(const struct tok *t, int32_t **ids, int32_t *n_ids)
{
    if (!t->post)
        return 0;
    int32_t extra = tok_post_process_added(t), n = *n_ids;
    int32_t *out = vl_malloc(((size_t)n + (size_t)extra + 1) * sizeof *out);
    int32_t k = 0;
    for (int i = 0; i < t->n_post; i++) {
        if (t->post[i].is_sequence) {
            if (n)
                memcpy(out + k, *ids, (size_t)n * sizeof *out);
            k += n;
        } else {
            memcpy(out + k, t->post[i].ids, (size_t)t->post[i].n_ids * sizeof *out);
            k += t->post[i].n_ids;
        }
    }
    free(*ids);
    *ids = out;
    *n_ids = k;
    return 0;
}

long tok_utf8_invalid_at(const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else
            return (long)i;
        if (len - i <= need)
            return (long)i;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += need + 1;
    }
    return -1;
}

/* Length of the maximal invalid subpart at s[i] (>= 1), per Unicode's U+FFFD practice (the
 * one Rust's String::from_utf8_lossy follows). */
static size_t invalid_subpart(const uint8_t *s, size_t n, size_t i)
{
    uint8_t c = s[i];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 1;
    size_t k = 1;
    for (; k <= need && i + k < n; k++) {
        uint8_t b = s[i + k];
        if (k == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
            break;
    }
    return k; /* the lead byte plus the valid continuation prefix */
}

char *tok_decode_ex(const struct tok *t, const int32_t *ids, int32_t n, int skip_special)
{
    size_t total = 0;
    for (int32_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_ids)
            total += t->id_bytes[ids[i]] ? t->id_nbytes[ids[i]]
                                         : (t->id_str[ids[i]] ? strlen(t->id_str[ids[i]]) : 0);
    uint8_t *raw = vl_malloc(total + 1);
    size_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || (skip_special && t->id_special[id]))
            continue;
        if (t->id_bytes[id]) {
            memcpy(raw + k, t->id_bytes[id], t->id_nbytes[id]);
            k += t->id_nbytes[id];
        } else if (t->id_str[id]) {
            /* an added token outside the vocab: HF's ByteLevel decoder maps its characters
             * through the byte alphabet when all are in it, else keeps its UTF-8 as is */
            const char *s = t->id_str[id];
            size_t sl = strlen(s), j = 0, k0 = k;
            int ok = 1;
            while (j < sl) {
                uint32_t cp;
                j += (size_t)tok_utf8_next((const uint8_t *)s, j, &cp);
                int b = tok_cp_to_byte(cp);
                if (b < 0) {
                    ok = 0;
                    break;
                }
                raw[k++] = (uint8_t)b;
            }
            if (!ok) {
                k = k0;
                memcpy(raw + k, s, sl);
                k += sl;
            }
        }
    }
    /* lossy UTF-8: each maximal invalid subpart becomes U+FFFD (3 bytes, never longer than
     * 3x the input) */
    char *out = vl_malloc(3 * k + 1);
    size_t o = 0, i = 0;
    while (i < k) {
        long bad = tok_utf8_invalid_at((const char *)raw + i, k - i);
        size_t good = bad < 0 ? k - i : (size_t)bad;
        memcpy(out + o, raw + i, good);
        o += good;
        i += good;
        if (i < k) {
            size_t sk = invalid_subpart(raw, k, i);
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += sk;
        }
    }
    out[o] = 0;
    free(raw);
    return out;
}

char *tok_decode(const struct tok *t, const int32_t *ids, int32_t n)
{
    return tok_decode_ex(t, ids, n, 0);
}
