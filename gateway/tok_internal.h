/* The tokenizer's internals, shared by tokenizer.c (load, lookup, post-process, decode),
 * tok_encode.c (added tokens, normalizer, pre-tokenizer) and tok_bpe.c (BPE merges).
 * Nothing here is for callers outside gateway/tok*.c. */
#ifndef VL_GATEWAY_TOK_INTERNAL_H
#define VL_GATEWAY_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/tokenizer.h"

enum tok_norm { TOK_NORM_NFC = 1, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD };
#define TOK_NORM_MAX 4

/* Pre-tokenizer split rule (the regex of a Split step, recognised by its exact text). */
enum tok_split_kind {
    TOK_SPLIT_NONE = 0, /* ByteLevel(use_regex=false) alone: the whole text is one piece */
    TOK_SPLIT_QWEN,     /* Qwen2/Qwen3: single digits */
    TOK_SPLIT_CL100K,   /* same rules with \p{N}{1,3} */
};

struct tok_added {
    char *content;
    uint32_t len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
};

/* One element of a TemplateProcessing "single" template, flattened: either the sequence or a
 * run of fixed ids. */
struct tok_post_piece {
    int is_sequence;
    int32_t *ids;
    int32_t n_ids;
};

/* Open-addressing hash from a (left id, right id) pair to (rank, merged id). */
struct tok_merge_map {
    uint64_t *keys; /* (left << 32) | right; UINT64_MAX = empty */
    uint64_t *vals; /* (rank << 32) | merged id */
    uint32_t mask;
};

/* Open-addressing hash from a token string to its id. */
struct tok_str_map {
    int32_t *slots; /* id, or -1 = empty */
    uint32_t mask;
};

struct tok {
    int32_t n_ids;       /* largest id + 1 */
    char **id_str;       /* [n_ids] token string as in tokenizer.json, or NULL (gap) */
    uint8_t **id_bytes;  /* [n_ids] decoded bytes (byte-level decoding), or NULL */
    uint32_t *id_nbytes; /* [n_ids] */
    uint8_t *id_special; /* [n_ids] 1 for special added tokens */
    struct tok_str_map str_map;

    int32_t byte_id[256]; /* id of each single-byte token */
    struct tok_merge_map merges;

    struct tok_added *added;
    int n_added;
    int16_t added_first[256]; /* first index into added_by_byte for a first byte, or -1 */
    int16_t *added_by_byte;   /* added tokens (indices), grouped by first byte, longest first */
    int16_t added_by_byte_n[256];
    int any_normalized_added;

    enum tok_norm norm[TOK_NORM_MAX];
    int n_norm;
    enum tok_split_kind split;

    struct tok_post_piece *post; /* flattened single-sequence template; NULL = adds nothing */
    int n_post;
};

/* BPE-encodes one pre-tokenized piece (raw bytes) and appends its ids. */
struct tok_ivec {
    int32_t *v;
    size_t n, cap;
};
void tok_ivec_push(struct tok_ivec *a, int32_t x);
void tok_bpe_piece(const struct tok *t, const uint8_t *s, size_t n, struct tok_ivec *out);

/* Merge map lookup: 1 and (rank, merged id) if the pair merges, else 0. */
static inline int tok_merge_find(const struct tok_merge_map *m, int32_t a, int32_t b,
                                 uint32_t *rank, int32_t *merged)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & m->mask;
    for (;;) {
        uint64_t k = m->keys[h];
        if (k == key) {
            *rank = (uint32_t)(m->vals[h] >> 32);
            *merged = (int32_t)(uint32_t)m->vals[h];
            return 1;
        }
        if (k == UINT64_MAX)
            return 0;
        h = (h + 1) & m->mask;
    }
}

/* Byte-level alphabet (GPT-2): the byte a code point stands for, or -1 if it is not in it. */
int tok_cp_to_byte(uint32_t cp);

/* Decodes one UTF-8 sequence at s[i] (input already validated); returns its length. */
static inline int tok_utf8_next(const uint8_t *s, size_t i, uint32_t *cp)
{
    uint8_t c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
          ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
    return 4;
}

/* Character classes of the pre-tokenizer regex: \p{L}, \p{N}, \s (Unicode White_Space). */
enum { TOK_CL_L = 1, TOK_CL_N = 2, TOK_CL_S = 4 };
int tok_cp_class(uint32_t cp);

/* Code points unassigned in libutf8proc's Unicode but assigned in the newer one HF's regex engine
 * uses (gateway/tok_unicode.c, generated from reference data), with their class. */
struct tok_cp_range {
    uint32_t first, last;
    int cls;
};
extern const struct tok_cp_range tok_cp_overrides[];
extern const int tok_cp_n_overrides;

/* Splits normalised text into pre-tokenizer pieces: calls fn(start, end) for each. */
void tok_pretokenize(enum tok_split_kind kind, const uint8_t *s, size_t n,
                     void (*fn)(void *ctx, size_t start, size_t end), void *ctx);

#endif
