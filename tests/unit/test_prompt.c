/* Prompt rendering against the reference: every case of tests/data/tokenizer/prompts.jsonl
 * (rendered by HF apply_chat_template + Qwen3VLProcessor on the GPU machine) is rebuilt from its
 * recorded input and rendered by prompt_render / prompt_render_chat; text and ids must match
 * exactly, and a case the reference could not run must be refused here too. Plus the local rules:
 * instruction normalisation, visual order, timestamps, truncation through a vision block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gateway/prompt.h"
#include "gateway/tokenizer.h"
#include "tests/test.h"

#define TOK_PATH test_tokenizer_path()
#define DATA "tests/data/tokenizer/"

static struct tok *tk, *tk_eos;

static char *slurp(const char *path, size_t *len)
{
    size_t n;
    char *b = (char *)test_read_file(path, &n);
    if (len)
        *len = n;
    return b;
}

/* Visuals of a recorded case, in the order the case lists them (images, videos separately). */
struct case_vis {
    struct prompt_visual img[16], vid[16];
    double ts[16][64];
    int n_img, n_vid;
};

static void load_visuals(const cJSON *in, struct case_vis *cv)
{
    const cJSON *e;
    cv->n_img = cv->n_vid = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(in, "images"))
    {
        struct prompt_visual *v = &cv->img[cv->n_img++];
        v->kind = VL_VISUAL_IMAGE;
        v->grid_t = 1;
        v->grid_h = (int32_t)cJSON_GetArrayItem(e, 0)->valuedouble / 16;
        v->grid_w = (int32_t)cJSON_GetArrayItem(e, 1)->valuedouble / 16;
        v->timestamps = NULL;
    }
    const cJSON *meta = cJSON_GetObjectItem(in, "video_meta");
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(in, "videos"))
    {
        int k = cv->n_vid;
        struct prompt_visual *v = &cv->vid[cv->n_vid++];
        int nf = (int)cJSON_GetArrayItem(e, 0)->valuedouble;
        v->kind = VL_VISUAL_VIDEO;
        v->grid_t = (nf + 1) / 2;
        v->grid_h = (int32_t)cJSON_GetArrayItem(e, 1)->valuedouble / 16;
        v->grid_w = (int32_t)cJSON_GetArrayItem(e, 2)->valuedouble / 16;
        const cJSON *m = cJSON_GetArrayItem(meta, k);
        double fps = cJSON_GetArrayItem(m, 0)->valuedouble;
        int32_t idx[128];
        int ni = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetArrayItem(m, 1)) idx[ni++] = (int32_t)x->valuedouble;
        prompt_video_timestamps(idx, ni, fps, cv->ts[k]);
        v->timestamps = cv->ts[k];
    }
}

static int run_native(const struct tok *t, const cJSON *in, int32_t **ids, int32_t *n, char **text,
                      char *err, size_t errlen)
{
    struct case_vis cv;
    load_visuals(in, &cv);
    struct prompt_visual vis[32];
    int nv = 0;
    /* caller order: images first here on purpose, the renderer must still put videos first */
    for (int i = 0; i < cv.n_img; i++)
        vis[nv++] = cv.img[i];
    for (int i = 0; i < cv.n_vid; i++)
        vis[nv++] = cv.vid[i];
    const char *texts[16];
    size_t lens[16];
    int nt = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(in, "texts"))
    {
        texts[nt] = e->valuestring;
        lens[nt++] = strlen(e->valuestring);
    }
    const cJSON *ins = cJSON_GetObjectItem(in, "instruction");
    const cJSON *ml = cJSON_GetObjectItem(in, "max_length");
    struct prompt_input pi = {
        .instruction = cJSON_IsString(ins) ? ins->valuestring : NULL,
        .instruction_len = cJSON_IsString(ins) ? strlen(ins->valuestring) : 0,
        .texts = texts,
        .text_lens = lens,
        .n_texts = nt,
        .visuals = vis,
        .n_visuals = nv,
        .max_tokens = ml ? (int32_t)ml->valuedouble : 0,
    };
    return prompt_render(t, &pi, ids, n, text, err, errlen);
}

static int run_chat(const struct tok *t, const cJSON *in, int32_t **ids, int32_t *n, char **text,
                    char *err, size_t errlen)
{
    struct case_vis cv;
    load_visuals(in, &cv);
    struct prompt_message msgs[16];
    struct prompt_part parts[16][16];
    int nm = 0, ii = 0, vi = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(in, "messages"))
    {
        struct prompt_message *pm = &msgs[nm];
        memset(pm, 0, sizeof *pm);
        const char *role = cJSON_GetObjectItem(m, "role")->valuestring;
        pm->role = strcmp(role, "system") == 0 ? PROMPT_ROLE_SYSTEM
                   : strcmp(role, "user") == 0 ? PROMPT_ROLE_USER
                                               : PROMPT_ROLE_ASSISTANT;
        const cJSON *c = cJSON_GetObjectItem(m, "content");
        if (cJSON_IsString(c)) {
            pm->content = c->valuestring;
            pm->content_len = strlen(c->valuestring);
        } else {
            const cJSON *p;
            int np = 0;
            cJSON_ArrayForEach(p, c)
            {
                struct prompt_part *pp = &parts[nm][np++];
                memset(pp, 0, sizeof *pp);
                const char *type = cJSON_GetObjectItem(p, "type")->valuestring;
                if (strcmp(type, "text") == 0) {
                    pp->kind = PROMPT_PART_TEXT;
                    pp->text = cJSON_GetObjectItem(p, "text")->valuestring;
                    pp->text_len = strlen(pp->text);
                } else if (strcmp(type, "image") == 0) {
                    pp->kind = PROMPT_PART_IMAGE;
                    pp->visual = &cv.img[ii++];
                } else {
                    pp->kind = PROMPT_PART_VIDEO;
                    pp->visual = &cv.vid[vi++];
                }
            }
            pm->parts = parts[nm];
            pm->n_parts = np;
        }
        nm++;
    }
    const cJSON *ast = cJSON_GetObjectItem(in, "add_special_tokens");
    struct prompt_chat ch = {
        .messages = msgs,
        .n_messages = nm,
        .add_generation_prompt = cJSON_IsTrue(cJSON_GetObjectItem(in, "add_generation_prompt")),
        .continue_final_message = cJSON_IsTrue(cJSON_GetObjectItem(in, "continue_final_message")),
        .add_special_tokens = ast ? cJSON_IsTrue(ast) : 1,
    };
    return prompt_render_chat(t, &ch, ids, n, text, err, errlen);
}

/* The reference ids as transformers 4.57.3 (the embedder's pinned version) makes them. The
 * GPU machine has transformers 5.17, whose Qwen3-VL processor replaces only <|video_pad|> in
 * the template's <|vision_start|><|video_pad|><|vision_end|>, so each video keeps an extra outer
 * <|vision_start|> ... <|vision_end|> around its timestamped frame blocks; 4.57.3 replaces the
 * whole triple (spec §6, [HF-PROC]). The extra pair is recognisable and removed here: a
 * <|vision_start|> followed by a timestamp's "<" (id 27), and a <|vision_end|> right after
 * another (neither occurs otherwise). Returns `want` itself when nothing changes. */
static const cJSON *reference_ids(const cJSON *rec, const cJSON *want)
{
    if (!cJSON_GetObjectItem(rec, "video_grid_thw"))
        return want;
    cJSON *out = cJSON_CreateArray();
    int n = cJSON_GetArraySize(want);
    for (int i = 0; i < n; i++) {
        int v = (int)cJSON_GetArrayItem(want, i)->valuedouble;
        int next = i + 1 < n ? (int)cJSON_GetArrayItem(want, i + 1)->valuedouble : -1;
        int prev = i > 0 ? (int)cJSON_GetArrayItem(want, i - 1)->valuedouble : -1;
        if ((v == 151652 && next == 27) || (v == 151653 && prev == 151653))
            continue;
        cJSON_AddItemToArray(out, cJSON_CreateNumber(v));
    }
    return out;
}

TEST(test_reference_prompts)
{
    size_t len;
    char *all = slurp(DATA "prompts.jsonl", &len);
    CHECK(all != NULL);
    if (!all)
        return;
    int cases = 0, bad = 0;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *rec = cJSON_Parse(line);
        const char *name = cJSON_GetObjectItem(rec, "case")->valuestring;
        const cJSON *in = cJSON_GetObjectItem(rec, "input");
        const cJSON *want = cJSON_GetObjectItem(rec, "ids");
        const cJSON *rendered = cJSON_GetObjectItem(rec, "rendered");
        const struct tok *t =
            strcmp(cJSON_GetObjectItem(rec, "tokenizer")->valuestring, "eos") == 0 ? tk_eos : tk;
        int32_t *ids = NULL, n = 0;
        char *text = NULL, err[256] = "";
        int rc = cJSON_GetObjectItem(in, "messages") ? run_chat(t, in, &ids, &n, &text, err, 256)
                                                     : run_native(t, in, &ids, &n, &text, err, 256);
        cases++;
        int before = test_failures;
        if (!want) {
            /* the reference could not run it: we must refuse it as well */
            if (rc == 0)
                TEST_FAIL_AT("%s: the reference failed (%s) but we rendered it", name,
                             cJSON_GetObjectItem(rec, "error")->valuestring);
        } else if (rc < 0) {
            TEST_FAIL_AT("%s: %s", name, err);
        } else {
            want = reference_ids(rec, want);
            if (rendered && strcmp(text, rendered->valuestring) != 0)
                TEST_FAIL_AT("%s: rendered text differs:\n  C : %s\n  HF: %s", name, text,
                             rendered->valuestring);
            int same = cJSON_GetArraySize(want) == n;
            for (int i = 0; same && i < n; i++)
                same = (int32_t)cJSON_GetArrayItem(want, i)->valuedouble == ids[i];
            if (!same) {
                int first = 0;
                while (first < n && first < cJSON_GetArraySize(want) &&
                       (int32_t)cJSON_GetArrayItem(want, first)->valuedouble == ids[first])
                    first++;
                TEST_FAIL_AT("%s: ids differ (C %d ids, HF %d), first difference at %d", name, n,
                             cJSON_GetArraySize(want), first);
            }
        }
        bad += test_failures != before;
        if (want && want != cJSON_GetObjectItem(rec, "ids"))
            cJSON_Delete((cJSON *)want);
        free(ids);
        free(text);
        cJSON_Delete(rec);
    }
    fprintf(stderr, "prompts: %d cases, %d differ\n", cases, bad);
    CHECK(cases >= 20);
    free(all);
}

TEST(test_instruction_rules)
{
    char err[128];
    char *s = prompt_instruction(NULL, 0, err, sizeof err);
    CHECK_EQ_STR(s, "Represent the user's input.");
    free(s);
    s = prompt_instruction(" \t\n", 3, err, sizeof err);
    CHECK_EQ_STR(s, "Represent the user's input.");
    free(s);
    s = prompt_instruction("  Find it \x1f", 11, err, sizeof err);
    CHECK_EQ_STR(s, "Find it.");
    free(s);
    s = prompt_instruction("Why?", 4, err, sizeof err);
    CHECK_EQ_STR(s, "Why?");
    free(s);
    s = prompt_instruction("\xE6\x89\xBE\xE3\x80\x82", 6, err, sizeof err); /* ends in U+3002 */
    CHECK_EQ_STR(s, "\xE6\x89\xBE\xE3\x80\x82");
    free(s);
    s = prompt_instruction("a \xE2\x80\x83", 5, err, sizeof err); /* trailing EM SPACE */
    CHECK_EQ_STR(s, "a.");
    free(s);
    s = prompt_instruction("x+", 2, err, sizeof err); /* '+' is Sm, not punctuation */
    CHECK_EQ_STR(s, "x+.");
    free(s);
    CHECK(prompt_instruction("\xFF", 1, err, sizeof err) == NULL);
    CHECK_CONTAINS(err, "instruction: invalid UTF-8");
}

TEST(test_order_and_timestamps)
{
    struct prompt_visual v[4] = {{VL_VISUAL_IMAGE, 1, 2, 2, NULL},
                                 {VL_VISUAL_VIDEO, 1, 2, 2, NULL},
                                 {VL_VISUAL_IMAGE, 1, 4, 2, NULL},
                                 {VL_VISUAL_VIDEO, 2, 2, 2, NULL}};
    int order[4];
    prompt_visual_order(v, 4, order);
    CHECK_EQ_INT(order[0], 1);
    CHECK_EQ_INT(order[1], 3);
    CHECK_EQ_INT(order[2], 0);
    CHECK_EQ_INT(order[3], 2);
    int32_t idx[5] = {0, 1, 2, 3, 4};
    double ts[3];
    prompt_video_timestamps(idx, 5, 2.0, ts); /* odd count: last index repeated */
    CHECK_NEAR(ts[0], 0.25, 1e-12);
    CHECK_NEAR(ts[1], 1.25, 1e-12);
    CHECK_NEAR(ts[2], 2.0, 1e-12);
    char buf[32];
    snprintf(buf, sizeof buf, "%.1f", ts[0]); /* Python f"{0.25:.1f}" == "0.2" */
    CHECK_EQ_STR(buf, "0.2");
}

TEST(test_errors)
{
    int32_t *ids, n;
    char *text, err[256];
    /* truncation through a vision block is refused; through text it is a plain cut */
    struct prompt_visual img = {VL_VISUAL_IMAGE, 1, 8, 8, NULL}; /* 16 tokens */
    const char *t1 = "some words after the image";
    size_t l1 = strlen(t1);
    struct prompt_input in = {.texts = &t1,
                              .text_lens = &l1,
                              .n_texts = 1,
                              .visuals = &img,
                              .n_visuals = 1,
                              .max_tokens = 20};
    CHECK_EQ_INT(prompt_render(tk, &in, &ids, &n, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "cut a vision block");
    in.max_tokens = 32;
    CHECK_EQ_INT(prompt_render(tk, &in, &ids, &n, &text, err, sizeof err), 0);
    CHECK_EQ_INT(n, 32);
    free(ids);
    free(text);
    /* a vision special token written in a text */
    const char *t2 = "look: <|image_pad|>";
    size_t l2 = strlen(t2);
    struct prompt_input in2 = {.texts = &t2, .text_lens = &l2, .n_texts = 1};
    CHECK_EQ_INT(prompt_render(tk, &in2, &ids, &n, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "vision special token");
    /* invalid UTF-8 names the text */
    const char *t3[2] = {"ok", "bad \xC3"};
    size_t l3[2] = {2, 5};
    struct prompt_input in3 = {.texts = t3, .text_lens = l3, .n_texts = 2};
    CHECK_EQ_INT(prompt_render(tk, &in3, &ids, &n, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "texts[1]: invalid UTF-8");
    /* odd grid */
    struct prompt_visual odd = {VL_VISUAL_IMAGE, 1, 3, 4, NULL};
    struct prompt_input in4 = {.visuals = &odd, .n_visuals = 1};
    CHECK_EQ_INT(prompt_render(tk, &in4, &ids, &n, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "visuals[0]: bad grid");
    /* video without timestamps */
    struct prompt_visual vid = {VL_VISUAL_VIDEO, 2, 2, 2, NULL};
    struct prompt_input in5 = {.visuals = &vid, .n_visuals = 1};
    CHECK_EQ_INT(prompt_render(tk, &in5, &ids, &n, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "timestamps");
    /* chat: both flags; an image in an assistant message */
    struct prompt_message m = {.role = PROMPT_ROLE_USER, .content = "x", .content_len = 1};
    struct prompt_chat c = {
        .messages = &m, .n_messages = 1, .add_generation_prompt = 1, .continue_final_message = 1};
    CHECK_EQ_INT(prompt_render_chat(tk, &c, &ids, &n, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "cannot both be true");
    struct prompt_part p = {.kind = PROMPT_PART_IMAGE, .visual = &img};
    struct prompt_message ma = {.role = PROMPT_ROLE_ASSISTANT, .parts = &p, .n_parts = 1};
    struct prompt_chat c2 = {.messages = &ma, .n_messages = 1};
    CHECK_EQ_INT(prompt_render_chat(tk, &c2, &ids, &n, NULL, err, sizeof err), -1);
    CHECK_CONTAINS(err, "not rendered");
}

/* The vLLM-style request of the brief gives the native form's ids: messages = [system "Represent
 * the user input.", user [image, "A cat in the snow."], assistant ""], continue_final_message,
 * add_special_tokens. (HF agrees: prompts.jsonl's chat_continue_empty_assistant case.) */
TEST(test_chat_equals_native)
{
    struct prompt_visual img = {VL_VISUAL_IMAGE, 1, 4, 4, NULL};
    const char *instr = "Represent the user input.", *txt = "A cat in the snow.";
    size_t tl = strlen(txt);
    struct prompt_input in = {.instruction = instr,
                              .instruction_len = strlen(instr),
                              .texts = &txt,
                              .text_lens = &tl,
                              .n_texts = 1,
                              .visuals = &img,
                              .n_visuals = 1};
    struct prompt_part sys_p = {.kind = PROMPT_PART_TEXT, .text = instr, .text_len = strlen(instr)};
    struct prompt_part user_p[2] = {{.kind = PROMPT_PART_IMAGE, .visual = &img},
                                    {.kind = PROMPT_PART_TEXT, .text = txt, .text_len = tl}};
    struct prompt_message msgs[3] = {
        {.role = PROMPT_ROLE_SYSTEM, .parts = &sys_p, .n_parts = 1},
        {.role = PROMPT_ROLE_USER, .parts = user_p, .n_parts = 2},
        {.role = PROMPT_ROLE_ASSISTANT, .content = "", .content_len = 0}};
    struct prompt_chat c = {
        .messages = msgs, .n_messages = 3, .continue_final_message = 1, .add_special_tokens = 1};
    int32_t *a, *b, na, nb;
    char *ta, *tb, err[256];
    CHECK_EQ_INT(prompt_render(tk, &in, &a, &na, &ta, err, sizeof err), 0);
    CHECK_EQ_INT(prompt_render_chat(tk, &c, &b, &nb, &tb, err, sizeof err), 0);
    CHECK_EQ_STR(ta, tb);
    CHECK_EQ_INT(na, nb);
    CHECK(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    CHECK_EQ_INT(a[na - 1], 198); /* pooled token: the "\n" after "assistant" */
    free(a);
    free(b);
    free(ta);
    free(tb);
}

static void setup(void)
{
    char err[256];
    tk = tok_load(TOK_PATH, err, sizeof err);
    if (!tk) {
        TEST_FAIL_AT("tok_load: %s (run make deps)", err);
        exit(1);
    }
    /* the same tokenizer with a post-processor appending <|endoftext|> */
    size_t n;
    char *s = slurp(TOK_PATH, &n);
    cJSON *root = cJSON_ParseWithLength(s, n);
    free(s);
    cJSON_ReplaceItemInObjectCaseSensitive(
        root, "post_processor",
        cJSON_Parse("{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\","
                    "\"type_id\":0}},{\"SpecialToken\":{\"id\":\"<|endoftext|>\",\"type_id\":0}}],"
                    "\"special_tokens\":{\"<|endoftext|>\":{\"id\":\"<|endoftext|>\",\"ids\":"
                    "[151643],\"tokens\":[\"<|endoftext|>\"]}}}"));
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    tk_eos = tok_load_json(js, strlen(js), err, sizeof err);
    free(js);
    if (!tk_eos)
        TEST_FAIL_AT("eos tokenizer: %s", err);
}

static void teardown(void)
{
    tok_free(tk);
    tok_free(tk_eos);
}

TEST_MAIN(setup, test_reference_prompts, test_chat_equals_native, test_instruction_rules,
          test_order_and_timestamps, test_errors, teardown)
