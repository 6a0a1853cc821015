/* Test fixture: writes small safetensors files and whole random-weight Qwen3-VL checkpoints
 * in Hugging Face layout (config.json + model.safetensors, or shards + index), so that the
 * loader and the CPU forward can be tested without the committed checkpoint. Header-only,
 * included by tests/unit/test_model*.c and test_safetensors*.c. */
#ifndef VL_TEST_MODEL_FIXTURE_H
#define VL_TEST_MODEL_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx_tensor {
    char name[160];
    const char *dtype; /* "BF16", "F16", "F32" or anything (for bad-dtype tests) */
    int ndim;
    int64_t shape[5];
    size_t nbytes;
    uint8_t *bytes;
};

struct fx_file {
    struct fx_tensor *t;
    int n, cap;
};

static uint64_t fx_rng = 0x9e3779b97f4a7c15ull;
static inline float fx_randf(void) /* uniform in [-1, 1) */
{
    fx_rng = fx_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((fx_rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static inline uint16_t fx_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

/* Adds a tensor of random values scaled by `scale` (+ `offset`) in the given dtype. */
static inline struct fx_tensor *fx_add(struct fx_file *f, const char *name, const char *dtype,
                                       int ndim, const int64_t *shape, float scale, float offset)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->t = realloc(f->t, (size_t)f->cap * sizeof *f->t);
    }
    struct fx_tensor *t = &f->t[f->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    size_t es = !strcmp(dtype, "F32") ? 4 : 2;
    t->nbytes = numel * es;
    t->bytes = malloc(t->nbytes ? t->nbytes : 1);
    for (size_t i = 0; i < numel; i++) {
        float v = offset + scale * fx_randf();
        if (es == 4) {
            memcpy(t->bytes + 4 * i, &v, 4);
        } else if (!strcmp(dtype, "F16")) {
            /* values here are small and normal: a simple conversion (truncating) suffices */
            uint32_t u;
            memcpy(&u, &v, 4);
            uint16_t s = (uint16_t)((u >> 16) & 0x8000);
            int e = (int)((u >> 23) & 0xff) - 127 + 15;
            uint16_t h = e <= 0 ? s : (uint16_t)(s | (e << 10) | ((u >> 13) & 0x3ff));
            memcpy(t->bytes + 2 * i, &h, 2);
        } else {
            uint16_t h = fx_f32_to_bf16(v);
            memcpy(t->bytes + 2 * i, &h, 2);
        }
    }
    return t;
}

/* Serialises a file image; offsets follow tensor order. Caller frees *out. */
static inline size_t fx_serialise(const struct fx_file *f, uint8_t **out)
{
    size_t hcap = 256 + (size_t)f->n * 256, hl = 0, off = 0;
    char *h = malloc(hcap);
    hl += (size_t)snprintf(h + hl, hcap - hl, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < f->n; i++) {
        const struct fx_tensor *t = &f->t[i];
        hl += (size_t)snprintf(h + hl, hcap - hl, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name,
                               t->dtype);
        for (int d = 0; d < t->ndim; d++)
            hl +=
                (size_t)snprintf(h + hl, hcap - hl, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        hl += (size_t)snprintf(h + hl, hcap - hl, "],\"data_offsets\":[%zu,%zu]}", off,
                               off + t->nbytes);
        off += t->nbytes;
    }
    hl += (size_t)snprintf(h + hl, hcap - hl, "}");
    while (hl % 8)
        h[hl++] = ' ';
    size_t total = 8 + hl + off;
    uint8_t *b = malloc(total);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, h, hl);
    size_t p = 8 + hl;
    for (int i = 0; i < f->n; i++) {
        memcpy(b + p, f->t[i].bytes, f->t[i].nbytes);
        p += f->t[i].nbytes;
    }
    free(h);
    *out = b;
    return total;
}

static inline int fx_write_bytes(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = fwrite(b, 1, n, fp);
    fclose(fp);
    return w == n ? 0 : -1;
}

static inline int fx_write_file(const struct fx_file *f, const char *path)
{
    uint8_t *b;
    size_t n = fx_serialise(f, &b);
    int rc = fx_write_bytes(path, b, n);
    free(b);
    return rc;
}

static inline void fx_file_free(struct fx_file *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->t[i].bytes);
    free(f->t);
    memset(f, 0, sizeof *f);
}

/* A small model configuration for tests. */
struct fx_cfg {
    int v_depth, v_hidden, v_heads, v_inter, v_npos, n_ds, ds[4];
    int t_hidden, t_layers, t_heads, t_kv, t_hd, t_inter, vocab;
    int mrope[3];
    int rope_style; /* 0: transformers 5 rope_parameters, 1: 4.57 rope_theta + rope_scaling */
    const char *dtype;
};

static inline struct fx_cfg fx_cfg_default(void)
{
    struct fx_cfg c = {.v_depth = 3,
                       .v_hidden = 32,
                       .v_heads = 2,
                       .v_inter = 48,
                       .v_npos = 64,
                       .n_ds = 2,
                       .ds = {0, 2},
                       .t_hidden = 32,
                       .t_layers = 3,
                       .t_heads = 4,
                       .t_kv = 2,
                       .t_hd = 16,
                       .t_inter = 64,
                       .vocab = 151680,
                       .mrope = {4, 2, 2},
                       .rope_style = 0,
                       .dtype = "BF16"};
    return c;
}

static inline void fx_config_json(const struct fx_cfg *c, char *buf, size_t cap)
{
    char rope[256], ds[64] = "";
    size_t dl = 0;
    for (int i = 0; i < c->n_ds; i++)
        dl += (size_t)snprintf(ds + dl, sizeof ds - dl, "%s%d", i ? "," : "", c->ds[i]);
    if (c->rope_style == 0)
        snprintf(rope, sizeof rope,
                 "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":5000000.0,"
                 "\"mrope_section\":[%d,%d,%d],\"mrope_interleaved\":true}",
                 c->mrope[0], c->mrope[1], c->mrope[2]);
    else
        snprintf(rope, sizeof rope,
                 "\"rope_theta\":5000000,\"rope_scaling\":{\"rope_type\":\"default\","
                 "\"mrope_section\":[%d,%d,%d],\"mrope_interleaved\":true}",
                 c->mrope[0], c->mrope[1], c->mrope[2]);
    snprintf(buf, cap,
             "{\"architectures\":[\"Qwen3VLForConditionalGeneration\"],\"model_type\":\"qwen3_vl\","
             "\"image_token_id\":151655,\"video_token_id\":151656,\"vision_start_token_id\":151652,"
             "\"vision_end_token_id\":151653,\"tie_word_embeddings\":true,"
             "\"text_config\":{\"hidden_size\":%d,\"num_hidden_layers\":%d,"
             "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"head_dim\":%d,"
             "\"intermediate_size\":%d,\"vocab_size\":%d,\"rms_norm_eps\":1e-06,"
             "\"hidden_act\":\"silu\",\"attention_bias\":false,%s},"
             "\"vision_config\":{\"depth\":%d,\"hidden_size\":%d,\"num_heads\":%d,"
             "\"intermediate_size\":%d,\"patch_size\":16,\"temporal_patch_size\":2,"
             "\"spatial_merge_size\":2,\"in_channels\":3,\"out_hidden_size\":%d,"
             "\"num_position_embeddings\":%d,\"hidden_act\":\"gelu_pytorch_tanh\","
             "\"deepstack_visual_indexes\":[%s]}}",
             c->t_hidden, c->t_layers, c->t_heads, c->t_kv, c->t_hd, c->t_inter, c->vocab, rope,
             c->v_depth, c->v_hidden, c->v_heads, c->v_inter, c->t_hidden, c->v_npos, ds);
}

#define FX_S(...) ((const int64_t[]){__VA_ARGS__})

/* All tensors of a model with config c (weights ~ U(-1,1)/sqrt(fan_in), norms ~ 1). */
static inline void fx_model_tensors(const struct fx_cfg *c, struct fx_file *f)
{
    const char *dt = c->dtype;
    int V = c->v_hidden, I = c->v_inter, W4 = 4 * V, H = c->t_hidden;
    char n[160];
    float sv = 1.0f / sqrtf((float)V), s4 = 1.0f / sqrtf((float)W4);
    fx_add(f, "model.visual.patch_embed.proj.weight", dt, 5, FX_S(V, 3, 2, 16, 16), 0.05f, 0);
    fx_add(f, "model.visual.patch_embed.proj.bias", dt, 1, FX_S(V), 0.1f, 0);
    fx_add(f, "model.visual.pos_embed.weight", dt, 2, FX_S(c->v_npos, V), 0.5f, 0);
    for (int i = 0; i < c->v_depth; i++) {
#define VB(suffix, nd, sc, of, ...)                                                                \
    snprintf(n, sizeof n, "model.visual.blocks.%d.%s", i, suffix);                                 \
    fx_add(f, n, dt, nd, FX_S(__VA_ARGS__), sc, of)
        VB("norm1.weight", 1, 0.2f, 1, V);
        VB("norm1.bias", 1, 0.1f, 0, V);
        VB("norm2.weight", 1, 0.2f, 1, V);
        VB("norm2.bias", 1, 0.1f, 0, V);
        VB("attn.qkv.weight", 2, 2 * sv, 0, 3 * V, V);
        VB("attn.qkv.bias", 1, 0.1f, 0, 3 * V);
        VB("attn.proj.weight", 2, sv, 0, V, V);
        VB("attn.proj.bias", 1, 0.1f, 0, V);
        VB("mlp.linear_fc1.weight", 2, sv, 0, I, V);
        VB("mlp.linear_fc1.bias", 1, 0.1f, 0, I);
        VB("mlp.linear_fc2.weight", 2, 1.0f / sqrtf((float)I), 0, V, I);
        VB("mlp.linear_fc2.bias", 1, 0.1f, 0, V);
#undef VB
    }
    for (int k = -1; k < c->n_ds; k++) {
        char pre[96];
        if (k < 0)
            snprintf(pre, sizeof pre, "model.visual.merger");
        else
            snprintf(pre, sizeof pre, "model.visual.deepstack_merger_list.%d", k);
        int nw = k < 0 ? V : W4;
#define MB(suffix, nd, sc, of, ...)                                                                \
    snprintf(n, sizeof n, "%s.%s", pre, suffix);                                                   \
    fx_add(f, n, dt, nd, FX_S(__VA_ARGS__), sc, of)
        MB("norm.weight", 1, 0.2f, 1, nw);
        MB("norm.bias", 1, 0.1f, 0, nw);
        MB("linear_fc1.weight", 2, s4, 0, W4, W4);
        MB("linear_fc1.bias", 1, 0.1f, 0, W4);
        MB("linear_fc2.weight", 2, s4, 0, H, W4);
        MB("linear_fc2.bias", 1, 0.1f, 0, H);
#undef MB
    }
    fx_add(f, "model.language_model.embed_tokens.weight", dt, 2, FX_S(c->vocab, H), 1.0f, 0);
    float sh = 1.0f / sqrtf((float)H);
    int qd = c->t_heads * c->t_hd, kvd = c->t_kv * c->t_hd;
    for (int l = 0; l < c->t_layers; l++) {
#define LB(suffix, nd, sc, of, ...)                                                                \
    snprintf(n, sizeof n, "model.language_model.layers.%d.%s", l, suffix);                         \
    fx_add(f, n, dt, nd, FX_S(__VA_ARGS__), sc, of)
        LB("input_layernorm.weight", 1, 0.2f, 1, H);
        LB("post_attention_layernorm.weight", 1, 0.2f, 1, H);
        LB("self_attn.q_proj.weight", 2, 2 * sh, 0, qd, H);
        LB("self_attn.k_proj.weight", 2, 2 * sh, 0, kvd, H);
        LB("self_attn.v_proj.weight", 2, sh, 0, kvd, H);
        LB("self_attn.o_proj.weight", 2, 1.0f / sqrtf((float)qd), 0, H, qd);
        LB("self_attn.q_norm.weight", 1, 0.2f, 1, c->t_hd);
        LB("self_attn.k_norm.weight", 1, 0.2f, 1, c->t_hd);
        LB("mlp.gate_proj.weight", 2, sh, 0, c->t_inter, H);
        LB("mlp.up_proj.weight", 2, sh, 0, c->t_inter, H);
        LB("mlp.down_proj.weight", 2, 1.0f / sqrtf((float)c->t_inter), 0, H, c->t_inter);
#undef LB
    }
    fx_add(f, "model.language_model.norm.weight", dt, 1, FX_S(H), 0.2f, 1);
}

/* Writes DIR/config.json and the weights: one model.safetensors (shards = 1) or `shards`
 * files with an index. Returns 0 on success. */
static inline int fx_write_model(const struct fx_cfg *c, const char *dir, int shards)
{
    mkdir(dir, 0755);
    char path[512], cfg[4096];
    fx_config_json(c, cfg, sizeof cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (fx_write_bytes(path, cfg, strlen(cfg)))
        return -1;
    struct fx_file all = {0};
    fx_model_tensors(c, &all);
    int rc = 0;
    if (shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = fx_write_file(&all, path);
    } else {
        size_t icap = 64 + (size_t)all.n * 256, il = 0;
        char *idx = malloc(icap);
        il += (size_t)snprintf(idx + il, icap - il, "{\"metadata\":{},\"weight_map\":{");
        int listed = 0;
        for (int s = 0; s < shards; s++) {
            struct fx_file part = {.t = NULL};
            char shard[64];
            snprintf(shard, sizeof shard, "model-%05d-of-%05d.safetensors", s + 1, shards);
            for (int i = s; i < all.n; i += shards) {
                if (part.n == part.cap) {
                    part.cap = part.cap ? 2 * part.cap : 64;
                    part.t = realloc(part.t, (size_t)part.cap * sizeof *part.t);
                }
                part.t[part.n++] = all.t[i];
                il += (size_t)snprintf(idx + il, icap - il, "%s\"%s\":\"%s\"", listed++ ? "," : "",
                                       all.t[i].name, shard);
            }
            snprintf(path, sizeof path, "%s/%s", dir, shard);
            rc |= fx_write_file(&part, path);
            free(part.t);
        }
        il += (size_t)snprintf(idx + il, icap - il, "}}");
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        rc |= fx_write_bytes(path, idx, il);
        free(idx);
    }
    fx_file_free(&all);
    return rc;
}

/* A fresh temporary directory (mkdtemp); the caller removes it with fx_rmdir. */
static inline void fx_tmpdir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/vltest-XXXXXX");
    if (!mkdtemp(buf))
        buf[0] = 0;
}

static inline void fx_rmdir(const char *dir)
{
    char cmd[600];
    if (dir[0] && !strncmp(dir, "/tmp/vltest-", 12)) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
}

#endif
