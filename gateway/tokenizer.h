/* Byte-level BPE tokenizer that loads a Hugging Face `tokenizer.json` and encodes text to the
 * same ids as HF `tokenizers` (docs/tokenizer.md). Supported: model BPE (byte-level vocab,
 * no dropout, no unk/byte-fallback), normalizer NFC/NFD/NFKC/NFKD (or a Sequence of them, or
 * none), pre-tokenizer Sequence[Split(Qwen2/cl100k regex, Isolated), ByteLevel(use_regex=false)]
 * or a plain ByteLevel(use_regex=false), post-processors ByteLevel / TemplateProcessing /
 * BertProcessing / RobertaProcessing / Sequence, decoder ByteLevel. Anything else is refused at
 * load with a sentence that names it.
 *
 * A `struct tok` is immutable after tok_load(): every function below may be called from many
 * threads at once on the same tokenizer (there is no cache). */
#ifndef VL_GATEWAY_TOKENIZER_H
#define VL_GATEWAY_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct tok;

/* Loads tokenizer.json from `path`. NULL with one sentence in err on any failure (file, JSON,
 * unsupported component, merge naming a token missing from the vocab, ...). */
struct tok *tok_load(const char *path, char *err, size_t errlen);

/* Same, from the file's bytes in memory (`json` need not be NUL-terminated). */
struct tok *tok_load_json(const char *json, size_t len, char *err, size_t errlen);

/* Frees everything; NULL is fine. */
void tok_free(struct tok *t);

/* Plain encode, identical to HF `encode(text, add_special_tokens=False)`: added and special
 * tokens written in the text are matched (leftmost-longest) and become their ids; the rest is
 * normalised, pre-tokenized and BPE-encoded. Returns 0 and a malloc'd array in *ids (never NULL,
 * even for 0 ids), or -1 with a sentence in err: invalid UTF-8 (with the byte offset) or an
 * input longer than TOK_MAX_INPUT_BYTES. */
int tok_encode(const struct tok *t, const char *text, size_t len, int32_t **ids, int32_t *n_ids,
               char *err, size_t errlen);

/* Longest text tok_encode accepts (bytes). The gateway's request limits are far below it. */
#define TOK_MAX_INPUT_BYTES ((size_t)256 * 1024 * 1024)

/* Applies tokenizer.json's post_processor for one sequence (what add_special_tokens=True adds),
 * in place: *ids is realloc'd when tokens are added. ByteLevel adds nothing. Returns 0. */
int tok_post_process(const struct tok *t, int32_t **ids, int32_t *n_ids);

/* Number of ids the post-processor adds to one sequence (0 for the real Qwen3 tokenizer). */
int32_t tok_post_process_added(const struct tok *t);

/* Id of a token by its string as written in tokenizer.json (an added token's content, or a vocab
 * entry in its byte-level spelling such as "Ġthe"); -1 if there is none. */
int32_t tok_token_id(const struct tok *t, const char *token);

/* The token string of an id as written in tokenizer.json, or NULL if out of range. */
const char *tok_id_token(const struct tok *t, int32_t id);

/* 1 if `id` is an added token flagged "special" in tokenizer.json, else 0. */
int tok_is_special(const struct tok *t, int32_t id);

/* Size of the id space (largest id + 1). */
int32_t tok_vocab_size(const struct tok *t);

/* Decodes ids to UTF-8 like HF `decode(ids, skip_special_tokens=False)`: byte-level bytes are
 * joined and any invalid UTF-8 is replaced by U+FFFD per maximal invalid subpart. Ids out of
 * range are skipped. Returns a malloc'd NUL-terminated string. */
char *tok_decode(const struct tok *t, const int32_t *ids, int32_t n);

/* Same, with skip_special_tokens: ids of special added tokens are left out. */
char *tok_decode_ex(const struct tok *t, const int32_t *ids, int32_t n, int skip_special);

/* Offset of the first invalid UTF-8 byte in s[0..len), or -1 if it is valid (no overlongs,
 * surrogates or code points past U+10FFFF). */
long tok_utf8_invalid_at(const char *s, size_t len);

#endif
