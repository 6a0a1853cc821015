/* tok_encode: HF `tokenizers`' encode pipeline for a byte-level BPE, step by step:
 *   1. added tokens with normalized=false are matched in the raw text (leftmost-longest,
 *      honouring lstrip / rstrip / single_word);
 *   2. each remaining segment is normalised (NFC etc. via utf8proc), then added tokens with
 *      normalized=true are matched in it;
 *   3. each remaining segment is split by the pre-tokenizer regex (hand-coded here, see
 *      tok_pretokenize) and every piece is BPE-encoded on its raw bytes (the byte-level
 *      alphabet is only a spelling of bytes, so it is skipped).
 * Nothing is cached, so concurrent calls on one tokenizer are safe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "common/alloc.h"
#include "common/log.h"
#include "gateway/tok_internal.h"

/* ---- character classes ------------------------------------------------------------------- */

int tok_cp_class(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'))
            return TOK_CL_L;
        if (cp >= '0' && cp <= '9')
            return TOK_CL_N;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D))
            return TOK_CL_S;
        return 0;
    }
    /* Unicode White_Space (what \s means for Oniguruma and Rust's regex) */
    if (cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
        cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000)
        return TOK_CL_S;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return TOK_CL_L;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return TOK_CL_N;
    case UTF8PROC_CATEGORY_CN: { /* unassigned for utf8proc: maybe assigned since */
        int lo = 0, hi = tok_cp_n_overrides - 1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            if (cp < tok_cp_overrides[mid].first)
                hi = mid - 1;
            else if (cp > tok_cp_overrides[mid].last)
                lo = mid + 1;
            else
                return tok_cp_overrides[mid].cls;
        }
        return 0;
    }
    default:
        return 0;
    }
}

/* ASCII classes, looked up without a call. */
static const uint8_t ascii_class[128] = {
    ['\t'] = TOK_CL_S,
    ['\n'] = TOK_CL_S,
    ['\v'] = TOK_CL_S,
    ['\f'] = TOK_CL_S,
    ['\r'] = TOK_CL_S,
    [' '] = TOK_CL_S,
#define R10(c) [c] = TOK_CL_N
    R10('0'),
    R10('1'),
    R10('2'),
    R10('3'),
    R10('4'),
    R10('5'),
    R10('6'),
    R10('7'),
    R10('8'),
    R10('9'),
#undef R10
#define L(c) [c] = TOK_CL_L, [c - 32] = TOK_CL_L
    L('a'),
    L('b'),
    L('c'),
    L('d'),
    L('e'),
    L('f'),
    L('g'),
    L('h'),
    L('i'),
    L('j'),
    L('k'),
    L('l'),
    L('m'),
    L('n'),
    L('o'),
    L('p'),
    L('q'),
    L('r'),
    L('s'),
    L('t'),
    L('u'),
    L('v'),
    L('w'),
    L('x'),
    L('y'),
    L('z'),
#undef L
};

/* Class and length of the character at s[i] (i < n). */
static inline int cls_at(const uint8_t *s, size_t i, uint32_t *cp, int *len)
{
    if (s[i] < 0x80) {
        *cp = s[i];
        *len = 1;
        return ascii_class[s[i]];
    }
    *len = tok_utf8_next(s, i, cp);
    return tok_cp_class(*cp);
}

/* ---- pre-tokenizer ------------------------------------------------------------------------- */

/* Case-folded ASCII letter an apostrophe contraction may use at s[i], or 0. Oniguruma's
 * case-insensitive match folds U+017F LATIN SMALL LETTER LONG S to 's' too. */
static int fold_at(const uint8_t *s, size_t n, size_t i, int *len)
{
    if (i >= n)
        return 0;
    if (s[i] < 0x80) {
        *len = 1;
        int c = s[i];
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
    }
    if (s[i] == 0xC5 && i + 1 < n && s[i + 1] == 0xBF) {
        *len = 2;
        return 's';
    }
    return 0;
}

/* End of the regex match that starts at i (always > i). The alternatives, tried in order:
 *   1 (?i:'s|'t|'re|'ve|'m|'ll|'d)   2 [^\r\n\p{L}\p{N}]?\p{L}+   3 \p{N} (or \p{N}{1,3})
 *   4 ' '?[^\s\p{L}\p{N}]+[\r\n]*    5 \s*[\r\n]+   6 \s+(?!\S)   7 \s+
 * with Oniguruma's leftmost-first backtracking semantics. */
static size_t match_at(enum tok_split_kind kind, const uint8_t *s, size_t n, size_t i)
{
    uint32_t cp;
    int len;
    int c0 = cls_at(s, i, &cp, &len);

    if (s[i] == '\'') { /* 1 */
        int l1, l2;
        int f1 = fold_at(s, n, i + 1, &l1);
        if (f1 == 's' || f1 == 't' || f1 == 'm' || f1 == 'd')
            return i + 1 + (size_t)l1;
        if (f1 == 'r' || f1 == 'v' || f1 == 'l') {
            int f2 = fold_at(s, n, i + 1 + (size_t)l1, &l2);
            if ((f1 != 'l' && f2 == 'e') || (f1 == 'l' && f2 == 'l'))
                return i + 1 + (size_t)l1 + (size_t)l2;
        }
    }
    if (c0 & TOK_CL_L) { /* 2, without the optional prefix */
        size_t j = i + (size_t)len;
        while (j < n) {
            int l;
            if (!(cls_at(s, j, &cp, &l) & TOK_CL_L))
                break;
            j += (size_t)l;
        }
        return j;
    }
    if (!(c0 & TOK_CL_N) && cp != '\r' && cp != '\n' && i + (size_t)len < n) { /* 2, prefixed */
        size_t j = i + (size_t)len;
        int l;
        uint32_t c1;
        if (cls_at(s, j, &c1, &l) & TOK_CL_L) {
            j += (size_t)l;
            while (j < n) {
                if (!(cls_at(s, j, &c1, &l) & TOK_CL_L))
                    break;
                j += (size_t)l;
            }
            return j;
        }
    }
    if (c0 & TOK_CL_N) { /* 3 */
        size_t j = i + (size_t)len;
        if (kind == TOK_SPLIT_CL100K)
            for (int k = 1; k < 3 && j < n; k++) {
                int l;
                if (!(cls_at(s, j, &cp, &l) & TOK_CL_N))
                    break;
                j += (size_t)l;
            }
        return j;
    }
    /* 4: optional literal space, then a run of "other" characters, then CR/LF */
    size_t j = i;
    if (s[i] == ' ' && i + 1 < n) {
        int l;
        if (cls_at(s, i + 1, &cp, &l) == 0)
            j = i + 1;
    }
    if (j > i || c0 == 0) {
        while (j < n) {
            int l;
            if (cls_at(s, j, &cp, &l) != 0)
                break;
            j += (size_t)l;
        }
        while (j < n && (s[j] == '\r' || s[j] == '\n'))
            j++;
        return j;
    }
    /* 5-7: c0 is whitespace. Run [i, e); last CR/LF in it; start of its last character. */
    size_t e = i, last_nl = 0, last_start = i;
    int have_nl = 0;
    while (e < n) {
        int l;
        if (!(cls_at(s, e, &cp, &l) & TOK_CL_S))
            break;
        if (cp == '\r' || cp == '\n')
            have_nl = 1, last_nl = e;
        last_start = e;
        e += (size_t)l;
    }
    if (have_nl)
        return last_nl + 1; /* 5 */
    if (e == n)
        return e; /* 6, at the end of the text */
    if (last_start > i)
        return last_start; /* 6: leave the last space to prefix the next word */
    return e;              /* 7 */
}

void tok_pretokenize(enum tok_split_kind kind, const uint8_t *s, size_t n,
                     void (*fn)(void *ctx, size_t start, size_t end), void *ctx)
{
    if (kind == TOK_SPLIT_NONE) {
        if (n)
            fn(ctx, 0, n);
        return;
    }
    size_t i = 0;
    while (i < n) {
        size_t e = match_at(kind, s, n, i);
        fn(ctx, i, e);
        i = e;
    }
}

/* ---- encode -------------------------------------------------------------------------------- */

struct enc {
    const struct tok *t;
    const uint8_t *s;
    struct tok_ivec *out;
};

static void on_piece(void *ctx, size_t a, size_t b)
{
    struct enc *e = ctx;
    tok_bpe_piece(e->t, e->s + a, b - a, e->out);
}

static int is_word_char(const uint8_t *s, size_t i)
{
    uint32_t cp;
    int len;
    return s[i] == '_' || (cls_at(s, i, &cp, &len) & (TOK_CL_L | TOK_CL_N));
}

/* Start of the character that ends at s[i] (exclusive end i > 0). */
static size_t prev_char(const uint8_t *s, size_t i)
{
    do
        i--;
    while (i > 0 && (s[i] & 0xC0) == 0x80);
    return i;
}

/* Callback for each segment of text between added tokens / each added token. */
typedef void (*seg_fn)(void *ctx, const uint8_t *s, size_t n, int32_t added_id);

/* Splits s on added tokens whose `normalized` flag equals `normalized`, HF-style. */
static void split_added(const struct tok *t, const uint8_t *s, size_t n, int normalized, seg_fn fn,
                        void *ctx)
{
    size_t done = 0, i = 0;
    while (i < n) {
        int16_t first = t->added_first[s[i]];
        const struct tok_added *hit = NULL;
        if (first >= 0)
            for (int k = 0; k < t->added_by_byte_n[s[i]]; k++) {
                const struct tok_added *a = &t->added[t->added_by_byte[first + k]];
                if (a->normalized == normalized && a->len <= n - i &&
                    memcmp(s + i, a->content, a->len) == 0) {
                    hit = a;
                    break;
                }
            }
        if (!hit) {
            i++;
            continue;
        }
        size_t start = i, stop = i + hit->len;
        if (hit->single_word) {
            int ok_l = start == 0 || !is_word_char(s, prev_char(s, start));
            int ok_r = stop == n || !is_word_char(s, stop);
            if (!ok_l || !ok_r) {
                i = stop;
                continue;
            }
        }
        if (hit->lstrip) {
            while (start > done) {
                size_t p = prev_char(s, start);
                uint32_t cp;
                int len;
                if (!(cls_at(s, p, &cp, &len) & TOK_CL_S))
                    break;
                start = p;
            }
        }
        if (hit->rstrip) {
            while (stop < n) {
                uint32_t cp;
                int len;
                if (!(cls_at(s, stop, &cp, &len) & TOK_CL_S))
                    break;
                stop += (size_t)len;
            }
        }
        if (start > done)
            fn(ctx, s + done, start - done, -1);
        fn(ctx, s + start, stop - start, hit->id);
        done = i = stop;
    }
    if (n > done)
        fn(ctx, s + done, n - done, -1);
}

struct pipe {
    const struct tok *t;
    struct tok_ivec *out;
};

static void seg_model(void *ctx, const uint8_t *s, size_t n, int32_t added_id)
{
    struct pipe *p = ctx;
    if (added_id >= 0) {
        tok_ivec_push(p->out, added_id);
        return;
    }
    struct enc e = {p->t, s, p->out};
    tok_pretokenize(p->t->split, s, n, on_piece, &e);
}

/* 1 if normalising s[0..n) with t's normalizers certainly leaves it unchanged. */
static int norm_identity(const struct tok *t, const uint8_t *s, size_t n)
{
    int only_nfc = 1;
    for (int k = 0; k < t->n_norm; k++)
        if (t->norm[k] != TOK_NORM_NFC)
            only_nfc = 0;
    /* ASCII is invariant under every normal form; under NFC so is anything below U+0300
     * (starters that nothing after them can compose with) */
    uint8_t lim = only_nfc ? 0xCC : 0x80; /* UTF-8 lead byte of U+0300 is 0xCC */
    for (size_t i = 0; i < n; i++)
        if (s[i] >= lim)
            return 0;
    return 1;
}

static void seg_normalize(void *ctx, const uint8_t *s, size_t n, int32_t added_id)
{
    struct pipe *p = ctx;
    const struct tok *t = p->t;
    if (added_id >= 0 || t->n_norm == 0 || norm_identity(t, s, n)) {
        if (added_id < 0 && t->any_normalized_added)
            split_added(t, s, n, 1, seg_model, p);
        else
            seg_model(p, s, n, added_id);
        return;
    }
    uint8_t *cur = NULL;
    const uint8_t *src = s;
    utf8proc_ssize_t len = (utf8proc_ssize_t)n;
    for (int k = 0; k < t->n_norm; k++) {
        int opt = UTF8PROC_STABLE;
        switch (t->norm[k]) {
        case TOK_NORM_NFC:
            opt |= UTF8PROC_COMPOSE;
            break;
        case TOK_NORM_NFD:
            opt |= UTF8PROC_DECOMPOSE;
            break;
        case TOK_NORM_NFKC:
            opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
            break;
        case TOK_NORM_NFKD:
            opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
            break;
        }
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t r = utf8proc_map(src, len, &dst, (utf8proc_option_t)opt);
        if (r < 0) { /* cannot happen on validated UTF-8; keep the text rather than lose it */
            free(dst);
            break;
        }
        free(cur);
        cur = dst;
        src = dst;
        len = r;
    }
    if (t->any_normalized_added)
        split_added(t, src, (size_t)len, 1, seg_model, p);
    else
        seg_model(p, src, (size_t)len, -1);
    free(cur);
}

int tok_encode(const struct tok *t, const char *text, size_t len, int32_t **ids, int32_t *n_ids,
               char *err, size_t errlen)
{
    *ids = NULL;
    *n_ids = 0;
    if (len > TOK_MAX_INPUT_BYTES) {
        vl_seterr(err, errlen, "text of %zu bytes is longer than the tokenizer's limit of %zu", len,
                  TOK_MAX_INPUT_BYTES);
        return -1;
    }
    long bad = tok_utf8_invalid_at(text, len);
    if (bad >= 0) {
        vl_seterr(err, errlen, "invalid UTF-8 at byte %ld", bad);
        return -1;
    }
    struct tok_ivec out = {0};
    struct pipe p = {t, &out};
    split_added(t, (const uint8_t *)text, len, 0, seg_normalize, &p);
    if (!out.v)
        out.v = vl_malloc(sizeof(int32_t));
    *ids = out.v;
    *n_ids = (int32_t)out.n;
    return 0;
}
