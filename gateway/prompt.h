/* Prompt rendering: one embedding item (instruction, visuals, texts) -> the token ids the
 * reference embedder feeds the model (spec §6, §7.5, §5; docs/tokenizer.md). Two entry points:
 *
 *   prompt_render       the native form of the official embedder ([EMB] format_model_input):
 *                       system = instruction, user = all videos, then all images, then the
 *                       texts concatenated ("NULL" when the item is empty), assistant turn opened.
 *   prompt_render_chat  a list of chat messages rendered with the Qwen3-VL chat template
 *                       (reconstructed, see docs/tokenizer.md) and HF apply_chat_template's
 *                       add_generation_prompt / continue_final_message semantics, for the
 *                       vLLM-style `messages` request.
 *
 * Both then expand the vision placeholders as the HF processor does: an image becomes
 * <|vision_start|> + t*h*w/4 x <|image_pad|> + <|vision_end|>; a video becomes, per frame pair k,
 * "<{ts_k:.1f} seconds>" + <|vision_start|> + h*w/4 x <|video_pad|> + <|vision_end|>. The
 * tokenizer's post-processor is applied (add_special_tokens=True, the processor's default), and
 * the result is right-truncated to max_tokens like the reference, except that a cut removing
 * any vision token is an error (the model could not run such a prompt).
 *
 * ORDER OF VISUALS: the prompt's vision blocks come in the order videos (caller order), then
 * images (caller order) for prompt_render, and in message/part order for prompt_render_chat.
 * The `vl_item.visuals` handed to a worker must be in that same order; prompt_visual_order()
 * computes it for prompt_render. */
#ifndef VL_GATEWAY_PROMPT_H
#define VL_GATEWAY_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "common/item.h"
#include "gateway/tokenizer.h"

/* The reference embedder's default instruction (spec §6). */
#define PROMPT_DEFAULT_INSTRUCTION "Represent the user's input."

struct prompt_visual {
    enum vl_visual_kind kind;
    int32_t grid_t, grid_h, grid_w; /* as in struct vl_visual; h and w even */
    const double *timestamps;       /* video: grid_t values in seconds (§7.5); image: NULL */
};

struct prompt_input {
    const char *instruction; /* NULL (or blank) = PROMPT_DEFAULT_INSTRUCTION */
    size_t instruction_len;
    const char *const *texts; /* caller order; concatenated with no separator */
    const size_t *text_lens;
    int n_texts;
    const struct prompt_visual *visuals; /* caller order; rendered videos first, then images */
    int n_visuals;
    int32_t max_tokens; /* <= 0 means VL_MAX_SEQ_TOKENS (8192) */
};

/* Renders and tokenizes one item. Returns 0 with malloc'd *ids (and, if prompt_text is not NULL,
 * the chat-template text with one placeholder per visual, as HF apply_chat_template prints it),
 * or -1 with a sentence in err: invalid UTF-8 (naming instruction or texts[i]), a bad grid or
 * timestamp (naming visuals[i]), a vision special token written in a text, or a truncation that
 * would cut a vision block. */
int prompt_render(const struct tok *t, const struct prompt_input *in, int32_t **ids, int32_t *n_ids,
                  char **prompt_text, char *err, size_t errlen);

/* The instruction as the reference uses it: strip() (Python's whitespace), then '.' appended
 * unless the last character is Unicode punctuation (category P*); NULL or blank gives the
 * default. Returns a malloc'd string, or NULL with err on invalid UTF-8. */
char *prompt_instruction(const char *instr, size_t len, char *err, size_t errlen);

/* Fills order[0..n) with the indices of `visuals` in prompt order (videos, then images, each
 * group stable). */
void prompt_visual_order(const struct prompt_visual *visuals, int n, int *order);

/* Per-frame-pair timestamps of a video (§7.5, HF _calculate_timestamps with merge size 2):
 * indices are padded to an even count with the last one; ts_k = (idx[2k]/fps + idx[2k+1]/fps)/2.
 * Writes (n_frames + 1) / 2 values to out. fps <= 0 means the processor's fallback of 24. */
void prompt_video_timestamps(const int32_t *frame_indices, int n_frames, double fps, double *out);

/* ---- chat messages (vLLM-style requests) ----------------------------------------------------- */

enum prompt_role { PROMPT_ROLE_SYSTEM = 0, PROMPT_ROLE_USER, PROMPT_ROLE_ASSISTANT };
enum prompt_part_kind { PROMPT_PART_TEXT = 0, PROMPT_PART_IMAGE, PROMPT_PART_VIDEO };

struct prompt_part {
    enum prompt_part_kind kind;
    const char *text; /* PROMPT_PART_TEXT */
    size_t text_len;
    const struct prompt_visual *visual; /* IMAGE / VIDEO (kind must match) */
};

struct prompt_message {
    enum prompt_role role;
    /* content is either a plain string (parts == NULL) or a list of parts */
    const char *content;
    size_t content_len;
    const struct prompt_part *parts;
    int n_parts;
};

struct prompt_chat {
    const struct prompt_message *messages;
    int n_messages;
    int add_generation_prompt;  /* append "<|im_start|>assistant\n" */
    int continue_final_message; /* cut the render right after the last message's final text */
    int add_special_tokens;     /* apply the tokenizer's post-processor */
    int32_t max_tokens;         /* <= 0 means VL_MAX_SEQ_TOKENS */
};

/* Renders chat messages as HF apply_chat_template(messages, tokenize=False, ...) with the
 * Qwen3-VL template would, then expands placeholders and tokenizes as prompt_render does.
 * Errors as prompt_render, plus: both add_generation_prompt and continue_final_message set;
 * continue_final_message without text in the final message. Visuals are consumed in message and
 * part order (system messages' visuals are ignored by the template, as are assistant's). */
int prompt_render_chat(const struct tok *t, const struct prompt_chat *c, int32_t **ids,
                       int32_t *n_ids, char **prompt_text, char *err, size_t errlen);

#endif
