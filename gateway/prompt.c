/* Prompt rendering for embedding items and chat messages (prompt.h). Both paths build the chat
 * template's text with one placeholder per visual (what HF apply_chat_template returns), then
 * expand it as the HF Qwen3-VL processor does: video placeholders become timestamped frame-pair
 * blocks in the text, the text is tokenized once, and each pad token is multiplied out by id. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/limits.h"
#include "gateway/prompt.h"

#define TPL_IMAGE "<|vision_start|><|image_pad|><|vision_end|>"
#define TPL_VIDEO "<|vision_start|><|video_pad|><|vision_end|>"

struct sbuf {
    char *s;
    size_t n, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 256;
        b->s = vl_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* A placeholder in the rendered text: where, and which visual it stands for. */
struct slot {
    size_t off;
    const struct prompt_visual *v;
};

struct render {
    struct sbuf text;
    struct slot *slots;
    int n_slots, cap_slots;
};

static void add_visual(struct render *r, const struct prompt_visual *v)
{
    if (r->n_slots == r->cap_slots) {
        r->cap_slots = r->cap_slots ? r->cap_slots * 2 : 8;
        r->slots = vl_realloc(r->slots, (size_t)r->cap_slots * sizeof *r->slots);
    }
    r->slots[r->n_slots].off = r->text.n;
    r->slots[r->n_slots].v = v;
    r->n_slots++;
    sb_puts(&r->text, v->kind == VL_VISUAL_VIDEO ? TPL_VIDEO : TPL_IMAGE);
}

/* ---- instruction ---------------------------------------------------------------------------- */

/* Python's str.isspace(): Unicode White_Space plus U+001C..U+001F. */
static int py_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static int utf8_at(const uint8_t *s, size_t n, size_t i, uint32_t *cp)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t l = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &c);
    *cp = (uint32_t)c;
    return (int)l;
}

char *prompt_instruction(const char *instr, size_t len, char *err, size_t errlen)
{
    if (!instr)
        return vl_strdup(PROMPT_DEFAULT_INSTRUCTION);
    long bad = tok_utf8_invalid_at(instr, len);
    if (bad >= 0) {
        vl_seterr(err, errlen, "instruction: invalid UTF-8 at byte %ld", bad);
        return NULL;
    }
    const uint8_t *s = (const uint8_t *)instr;
    size_t a = 0, b = len, last = 0;
    uint32_t cp = 0, last_cp = 0;
    while (a < len) { /* strip leading */
        int l = utf8_at(s, len, a, &cp);
        if (!py_space(cp))
            break;
        a += (size_t)l;
    }
    /* strip trailing: find the last non-space character */
    size_t i = a;
    b = a;
    while (i < len) {
        int l = utf8_at(s, len, i, &cp);
        if (!py_space(cp)) {
            last = i;
            last_cp = cp;
            b = i + (size_t)l;
        }
        i += (size_t)l;
    }
    (void)last;
    if (b == a)
        return vl_strdup(PROMPT_DEFAULT_INSTRUCTION);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)last_cp);
    int punct = c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
    char *out = vl_malloc(b - a + 2);
    memcpy(out, instr + a, b - a);
    size_t k = b - a;
    if (!punct)
        out[k++] = '.';
    out[k] = 0;
    return out;
}

/* ---- visuals -------------------------------------------------------------------------------- */

void prompt_visual_order(const struct prompt_visual *visuals, int n, int *order)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (visuals[i].kind == VL_VISUAL_VIDEO)
            order[k++] = i;
    for (int i = 0; i < n; i++)
        if (visuals[i].kind != VL_VISUAL_VIDEO)
            order[k++] = i;
}

void prompt_video_timestamps(const int32_t *idx, int n_frames, double fps, double *out)
{
    if (!(fps > 0))
        fps = 24.0;
    for (int k = 0; 2 * k < n_frames; k++) {
        int32_t i0 = idx[2 * k], i1 = 2 * k + 1 < n_frames ? idx[2 * k + 1] : idx[n_frames - 1];
        out[k] = ((double)i0 / fps + (double)i1 / fps) / 2;
    }
}

/* Checks one visual; returns its LM token count, or -1 with err naming visuals[i]. */
static int64_t visual_tokens(const struct prompt_visual *v, int i, char *err, size_t errlen)
{
    if (v->kind != VL_VISUAL_IMAGE && v->kind != VL_VISUAL_VIDEO) {
        vl_seterr(err, errlen, "visuals[%d]: unknown kind %d", i, (int)v->kind);
        return -1;
    }
    if (v->grid_t < 1 || v->grid_h < 2 || v->grid_w < 2 || v->grid_h % 2 || v->grid_w % 2 ||
        v->grid_t > 100000 || v->grid_h > 100000 || v->grid_w > 100000 ||
        (v->kind == VL_VISUAL_IMAGE && v->grid_t != 1)) {
        vl_seterr(err, errlen,
                  "visuals[%d]: bad grid (t=%d, h=%d, w=%d): t >= 1 (1 for an image), "
                  "h and w even and >= 2",
                  i, v->grid_t, v->grid_h, v->grid_w);
        return -1;
    }
    if (v->kind == VL_VISUAL_VIDEO) {
        if (!v->timestamps) {
            vl_seterr(err, errlen, "visuals[%d]: a video needs grid_t timestamps", i);
            return -1;
        }
        for (int k = 0; k < v->grid_t; k++)
            if (!isfinite(v->timestamps[k]) || v->timestamps[k] < 0 || v->timestamps[k] > 1e9) {
                vl_seterr(err, errlen,
                          "visuals[%d]: timestamp %d is not a number of seconds in "
                          "[0, 1e9]",
                          i, k);
                return -1;
            }
    }
    return (int64_t)v->grid_t * v->grid_h * v->grid_w / 4;
}

/* ---- shared back half: expand, tokenize, check, truncate, post-process ---------------------- */

static int finish(const struct tok *t, struct render *r, size_t cut, int n_given_visuals,
                  int add_special_tokens, int32_t max_tokens, int32_t **ids_out, int32_t *n_out,
                  char **prompt_text, char *err, size_t errlen)
{
    int rc = -1;
    struct sbuf enc = {0};
    int32_t *ids = NULL, *full = NULL;
    int32_t n = 0;
    if (max_tokens <= 0)
        max_tokens = VL_MAX_SEQ_TOKENS;

    int32_t id_vs = tok_token_id(t, "<|vision_start|>"), id_ve = tok_token_id(t, "<|vision_end|>");
    int32_t id_img = tok_token_id(t, "<|image_pad|>"), id_vid = tok_token_id(t, "<|video_pad|>");
    if (n_given_visuals && (id_vs < 0 || id_ve < 0 || id_img < 0 || id_vid < 0)) {
        vl_seterr(err, errlen, "the tokenizer lacks the Qwen3-VL vision tokens");
        goto out;
    }
    int kept = 0;
    while (kept < r->n_slots && r->slots[kept].off + strlen(TPL_IMAGE) <= cut)
        kept++;
    if (kept != n_given_visuals) {
        vl_seterr(err, errlen,
                  "%d of %d visuals are not rendered in the prompt (a visual in a "
                  "non-user message, or after the continued final text)",
                  n_given_visuals - kept, n_given_visuals);
        goto out;
    }
    int64_t vision_total = 0;
    int64_t want_vs = 0, want_img = 0, want_vid = 0;
    for (int i = 0; i < kept; i++) {
        int64_t k = visual_tokens(r->slots[i].v, i, err, errlen);
        if (k < 0)
            goto out;
        vision_total += k;
        if (r->slots[i].v->kind == VL_VISUAL_IMAGE)
            want_vs++, want_img++;
        else
            want_vs += r->slots[i].v->grid_t, want_vid += r->slots[i].v->grid_t;
    }
    if (vision_total + 2 * want_vs > max_tokens) {
        vl_seterr(err, errlen, "the visuals alone need %lld tokens, more than max_tokens %d",
                  (long long)(vision_total + 2 * want_vs), max_tokens);
        goto out;
    }

    /* processor-side expansion of video placeholders into timestamped frame-pair blocks */
    size_t pos = 0;
    for (int i = 0; i < kept; i++) {
        const struct prompt_visual *v = r->slots[i].v;
        if (v->kind != VL_VISUAL_VIDEO)
            continue;
        sb_put(&enc, r->text.s + pos, r->slots[i].off - pos);
        for (int k = 0; k < v->grid_t; k++) {
            char ts[64];
            snprintf(ts, sizeof ts, "<%.1f seconds>", v->timestamps[k]);
            sb_puts(&enc, ts);
            sb_puts(&enc, TPL_VIDEO);
        }
        pos = r->slots[i].off + strlen(TPL_VIDEO);
    }
    sb_put(&enc, r->text.s + pos, cut - pos);

    if (tok_encode(t, enc.s ? enc.s : "", enc.n, &ids, &n, err, errlen) < 0)
        goto out;
    int64_t got_vs = 0, got_ve = 0, got_img = 0, got_vid = 0;
    for (int32_t i = 0; i < n; i++) {
        got_vs += ids[i] == id_vs;
        got_ve += ids[i] == id_ve;
        got_img += ids[i] == id_img;
        got_vid += ids[i] == id_vid;
    }
    if (got_vs != want_vs || got_ve != want_vs || got_img != want_img || got_vid != want_vid) {
        vl_seterr(err, errlen,
                  "a text or the instruction contains a vision special token "
                  "(<|vision_start|>, <|vision_end|>, <|image_pad|> or <|video_pad|>)");
        goto out;
    }

    /* multiply out the pads */
    int64_t total = n - got_img - got_vid + vision_total;
    full = vl_malloc((size_t)(total + tok_post_process_added(t) + 1) * sizeof *full);
    int64_t k = 0;
    int vi = 0, pair = 0;
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] == id_img || ids[i] == id_vid) {
            const struct prompt_visual *v = r->slots[vi].v;
            int64_t cnt = (int64_t)v->grid_h * v->grid_w / 4; /* per image / frame pair */
            for (int64_t j = 0; j < cnt; j++)
                full[k++] = ids[i];
            if (v->kind == VL_VISUAL_IMAGE || ++pair == v->grid_t)
                vi++, pair = 0;
        } else
            full[k++] = ids[i];
    }

    /* right-truncation as the tokenizer does it: room is kept for the post-processor's ids */
    int32_t added = add_special_tokens ? tok_post_process_added(t) : 0;
    int64_t limit = (int64_t)max_tokens - added;
    if (limit < 1) {
        vl_seterr(err, errlen, "max_tokens %d leaves no room besides the %d special tokens",
                  max_tokens, added);
        goto out;
    }
    if (k > limit) {
        for (int64_t i = limit; i < k; i++)
            if (full[i] == id_vs || full[i] == id_ve || full[i] == id_img || full[i] == id_vid) {
                vl_seterr(err, errlen,
                          "the prompt has %lld tokens; truncating it to max_tokens %d "
                          "would cut a vision block",
                          (long long)(k + added), max_tokens);
                goto out;
            }
        k = limit;
    }
    int32_t nk = (int32_t)k;
    if (add_special_tokens)
        tok_post_process(t, &full, &nk);
    *ids_out = full;
    *n_out = nk;
    full = NULL;
    if (prompt_text) {
        *prompt_text = vl_strndup(r->text.s ? r->text.s : "", cut);
    }
    rc = 0;
out:
    free(enc.s);
    free(ids);
    free(full);
    return rc;
}

/* ---- native form --------------------------------------------------------------------------- */

int prompt_render(const struct tok *t, const struct prompt_input *in, int32_t **ids, int32_t *n_ids,
                  char **prompt_text, char *err, size_t errlen)
{
    *ids = NULL;
    *n_ids = 0;
    if (prompt_text)
        *prompt_text = NULL;
    if (in->n_texts < 0 || in->n_visuals < 0 || (in->n_texts && (!in->texts || !in->text_lens)) ||
        (in->n_visuals && !in->visuals)) {
        vl_seterr(err, errlen, "bad prompt input (counts without arrays)");
        return -1;
    }
    char *instr = prompt_instruction(in->instruction, in->instruction_len, err, errlen);
    if (!instr)
        return -1;
    size_t text_total = 0;
    for (int i = 0; i < in->n_texts; i++) {
        long bad = tok_utf8_invalid_at(in->texts[i], in->text_lens[i]);
        if (bad >= 0) {
            vl_seterr(err, errlen, "texts[%d]: invalid UTF-8 at byte %ld", i, bad);
            free(instr);
            return -1;
        }
        text_total += in->text_lens[i];
    }
    struct render r = {0};
    sb_puts(&r.text, "<|im_start|>system\n");
    sb_puts(&r.text, instr);
    sb_puts(&r.text, "<|im_end|>\n<|im_start|>user\n");
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < in->n_visuals; i++)
            if ((in->visuals[i].kind == VL_VISUAL_VIDEO) == (pass == 0))
                add_visual(&r, &in->visuals[i]);
    if (in->n_visuals == 0 && text_total == 0)
        sb_puts(&r.text, "NULL");
    for (int i = 0; i < in->n_texts; i++)
        sb_put(&r.text, in->texts[i], in->text_lens[i]);
    sb_puts(&r.text, "<|im_end|>\n<|im_start|>assistant\n");
    int rc = finish(t, &r, r.text.n, in->n_visuals, 1, in->max_tokens, ids, n_ids, prompt_text, err,
                    errlen);
    free(instr);
    free(r.text.s);
    free(r.slots);
    return rc;
}

/* ---- chat form ------------------------------------------------------------------------------ */

static const char *role_name(enum prompt_role r)
{
    return r == PROMPT_ROLE_SYSTEM ? "system" : r == PROMPT_ROLE_USER ? "user" : "assistant";
}

/* Appends a message's text parts (or string content); visuals only when allowed. */
static int render_content(struct render *r, const struct prompt_message *m, int visuals_ok, int mi,
                          long *text_end, char *err, size_t errlen)
{
    *text_end = -1;
    if (!m->parts) {
        long bad = m->content ? tok_utf8_invalid_at(m->content, m->content_len) : -1;
        if (bad >= 0) {
            vl_seterr(err, errlen, "messages[%d].content: invalid UTF-8 at byte %ld", mi, bad);
            return -1;
        }
        if (m->content)
            sb_put(&r->text, m->content, m->content_len);
        *text_end = (long)r->text.n;
        return 0;
    }
    for (int j = 0; j < m->n_parts; j++) {
        const struct prompt_part *p = &m->parts[j];
        if (p->kind == PROMPT_PART_TEXT) {
            long bad = p->text ? tok_utf8_invalid_at(p->text, p->text_len) : -1;
            if (bad >= 0) {
                vl_seterr(err, errlen, "messages[%d].content[%d].text: invalid UTF-8 at byte %ld",
                          mi, j, bad);
                return -1;
            }
            if (p->text)
                sb_put(&r->text, p->text, p->text_len);
            *text_end = (long)r->text.n;
        } else if (visuals_ok) {
            enum vl_visual_kind want =
                p->kind == PROMPT_PART_VIDEO ? VL_VISUAL_VIDEO : VL_VISUAL_IMAGE;
            if (!p->visual || p->visual->kind != want) {
                vl_seterr(err, errlen,
                          "messages[%d].content[%d]: visual missing or of the wrong "
                          "kind",
                          mi, j);
                return -1;
            }
            add_visual(r, p->visual);
        }
    }
    return 0;
}

int prompt_render_chat(const struct tok *t, const struct prompt_chat *c, int32_t **ids,
                       int32_t *n_ids, char **prompt_text, char *err, size_t errlen)
{
    *ids = NULL;
    *n_ids = 0;
    if (prompt_text)
        *prompt_text = NULL;
    if (c->n_messages < 1 || !c->messages) {
        vl_seterr(err, errlen, "messages: at least one message is needed");
        return -1;
    }
    if (c->add_generation_prompt && c->continue_final_message) {
        vl_seterr(err, errlen,
                  "add_generation_prompt and continue_final_message cannot both be "
                  "true");
        return -1;
    }
    struct render r = {0};
    int rc = -1, n_visuals = 0;
    for (int i = 0; i < c->n_messages; i++)
        for (int j = 0; c->messages[i].parts && j < c->messages[i].n_parts; j++)
            n_visuals += c->messages[i].parts[j].kind != PROMPT_PART_TEXT;

    int first = 0;
    long text_end = -1; /* end of the last message's last text in the render */
    if (c->messages[0].role == PROMPT_ROLE_SYSTEM) {
        sb_puts(&r.text, "<|im_start|>system\n");
        if (render_content(&r, &c->messages[0], 0, 0, &text_end, err, errlen) < 0)
            goto out;
        sb_puts(&r.text, "<|im_end|>\n");
        first = 1;
    }
    for (int i = first; i < c->n_messages; i++) {
        const struct prompt_message *m = &c->messages[i];
        if (m->role != PROMPT_ROLE_SYSTEM && m->role != PROMPT_ROLE_USER &&
            m->role != PROMPT_ROLE_ASSISTANT) {
            vl_seterr(err, errlen, "messages[%d].role: must be system, user or assistant", i);
            goto out;
        }
        sb_puts(&r.text, "<|im_start|>");
        sb_puts(&r.text, role_name(m->role));
        sb_puts(&r.text, "\n");
        if (render_content(&r, m, m->role != PROMPT_ROLE_ASSISTANT, i, &text_end, err, errlen) < 0)
            goto out;
        sb_puts(&r.text, "<|im_end|>\n");
    }
    if (c->add_generation_prompt)
        sb_puts(&r.text, "<|im_start|>assistant\n");

    /* continue_final_message as transformers 5 does it: the render is cut right after the final
     * message's last text block (it marks that spot with a sentinel), so nothing the template
     * emits after it (<|im_end|>, ...) stays. Our template writes text verbatim, so the spot is
     * where that text ended. */
    size_t cut = r.text.n;
    if (c->continue_final_message) {
        if (text_end < 0) {
            vl_seterr(err, errlen,
                      "continue_final_message is set but the final message has no "
                      "text to continue");
            goto out;
        }
        cut = (size_t)text_end;
    }
    rc = finish(t, &r, cut, n_visuals, c->add_special_tokens, c->max_tokens, ids, n_ids,
                prompt_text, err, errlen);
out:
    free(r.text.s);
    free(r.slots);
    return rc;
}
