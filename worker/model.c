/* Checkpoint loading: config.json parsing and validation of every tensor against it.
 * See model.h for what is accepted. */
#include "worker/model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

/* ---- config.json ------------------------------------------------------------------------ */

/* Upper bounds on config integers: far above the 8B model, low enough that products of two
 * of them cannot overflow int64 and hostile values cannot ask for absurd allocations. */
#define CFG_DIM_MAX (1 << 20)
#define CFG_LAYERS_MAX 1024
#define CFG_VOCAB_MAX (1 << 22)

/* Reads an integer key; `def` < 0 means required. */
static int cfg_int(const cJSON *obj, const char *section, const char *key, int def, int min,
                   int max, int *out, char *err, size_t errlen)
{
    const cJSON *j = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!j || cJSON_IsNull(j)) {
        if (def < 0) {
            snprintf(err, errlen, "config.json: %s%s is missing", section, key);
            return -1;
        }
        *out = def;
        return 0;
    }
    double v = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(v >= min && v <= max) || v != floor(v)) {
        snprintf(err, errlen, "config.json: %s%s must be an integer in [%d, %d]", section, key, min,
                 max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int cfg_bool(const cJSON *obj, const char *key, int def)
{
    const cJSON *j = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (cJSON_IsBool(j))
        return cJSON_IsTrue(j);
    return def;
}

static int cfg_act(const cJSON *obj, const char *section, const char *key, const char *want,
                   char *err, size_t errlen)
{
    const cJSON *j = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!j)
        return 0; /* the reference's default is the supported one */
    if (!cJSON_IsString(j) || strcmp(j->valuestring, want) != 0) {
        snprintf(err, errlen, "config.json: %s%s must be \"%s\"", section, key, want);
        return -1;
    }
    return 0;
}

int vl_model_config_parse(struct vl_model_config *cfg, const char *json, size_t len, char *err,
                          size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "config.json: not a JSON object");
        cJSON_Delete(root);
        return -1;
    }
    int rc = -1;
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (!cJSON_IsObject(tc) || !cJSON_IsObject(vc)) {
        snprintf(err, errlen,
                 "config.json: text_config and vision_config objects are required "
                 "(is this a Qwen3-VL checkpoint?)");
        goto out;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(mt) && strcmp(mt->valuestring, "qwen3_vl") != 0) {
        snprintf(err, errlen, "config.json: model_type is \"%.64s\", expected \"qwen3_vl\"",
                 mt->valuestring);
        goto out;
    }

    /* token ids (defaults: the Qwen3-VL tokenizer's) */
    int v;
    struct {
        const char *key;
        int def;
        int32_t *dst;
    } ids[] = {
        {"image_token_id", 151655, &cfg->image_token_id},
        {"video_token_id", 151656, &cfg->video_token_id},
        {"vision_start_token_id", 151652, &cfg->vision_start_token_id},
        {"vision_end_token_id", 151653, &cfg->vision_end_token_id},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (cfg_int(root, "", ids[i].key, ids[i].def, 0, CFG_VOCAB_MAX, &v, err, errlen))
            goto out;
        *ids[i].dst = v;
    }

    /* text */
    struct vl_text_config *t = &cfg->text;
    const char *ts = "text_config.";
    if (cfg_int(tc, ts, "hidden_size", -1, 1, CFG_DIM_MAX, &t->hidden_size, err, errlen) ||
        cfg_int(tc, ts, "num_hidden_layers", -1, 1, CFG_LAYERS_MAX, &t->num_hidden_layers, err,
                errlen) ||
        cfg_int(tc, ts, "num_attention_heads", -1, 1, 4096, &t->num_attention_heads, err, errlen) ||
        cfg_int(tc, ts, "num_key_value_heads", t->num_attention_heads, 1, 4096,
                &t->num_key_value_heads, err, errlen) ||
        cfg_int(tc, ts, "intermediate_size", -1, 1, CFG_DIM_MAX, &t->intermediate_size, err,
                errlen) ||
        cfg_int(tc, ts, "vocab_size", -1, 1, CFG_VOCAB_MAX, &t->vocab_size, err, errlen))
        goto out;
    if (cfg_int(tc, ts, "head_dim", t->hidden_size / t->num_attention_heads, 2, 4096, &t->head_dim,
                err, errlen))
        goto out;
    if (t->head_dim % 2) {
        snprintf(err, errlen, "config.json: text_config.head_dim must be even");
        goto out;
    }
    if (t->num_attention_heads % t->num_key_value_heads) {
        snprintf(err, errlen,
                 "config.json: text_config.num_attention_heads (%d) is not a "
                 "multiple of num_key_value_heads (%d)",
                 t->num_attention_heads, t->num_key_value_heads);
        goto out;
    }
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (*ids[i].dst >= t->vocab_size) {
            snprintf(err, errlen, "config.json: %s (%d) is outside text_config.vocab_size (%d)",
                     ids[i].key, *ids[i].dst, t->vocab_size);
            goto out;
        }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(tc, "rms_norm_eps");
    t->rms_norm_eps = 1e-6f;
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1)) {
            snprintf(err, errlen, "config.json: text_config.rms_norm_eps must be in (0, 1)");
            goto out;
        }
        t->rms_norm_eps = (float)eps->valuedouble;
    }
    if (cfg_act(tc, ts, "hidden_act", "silu", err, errlen))
        goto out;
    t->attention_bias = cfg_bool(tc, "attention_bias", 0);
    t->tie_word_embeddings =
        cfg_bool(root, "tie_word_embeddings", cfg_bool(tc, "tie_word_embeddings", 0));

    /* rope: transformers 5 `rope_parameters`, or 4.57 `rope_theta` + `rope_scaling` */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(tc, "rope_parameters");
    const char *rp_name = "text_config.rope_parameters";
    if (!cJSON_IsObject(rp)) {
        rp = cJSON_GetObjectItemCaseSensitive(tc, "rope_scaling");
        rp_name = "text_config.rope_scaling";
    }
    if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp)) {
        snprintf(err, errlen, "config.json: %s must be an object", rp_name);
        goto out;
    }
    const cJSON *rtype = rp ? cJSON_GetObjectItemCaseSensitive(rp, "rope_type") : NULL;
    if (!rtype && rp)
        rtype = cJSON_GetObjectItemCaseSensitive(rp, "type");
    if (rtype && (!cJSON_IsString(rtype) || strcmp(rtype->valuestring, "default") != 0)) {
        snprintf(err, errlen,
                 "config.json: %s.rope_type \"%.32s\" is not supported (only "
                 "\"default\")",
                 rp_name, cJSON_IsString(rtype) ? rtype->valuestring : "?");
        goto out;
    }
    const cJSON *theta = rp ? cJSON_GetObjectItemCaseSensitive(rp, "rope_theta") : NULL;
    const char *theta_name = "rope_parameters.rope_theta";
    if (!theta) {
        theta = cJSON_GetObjectItemCaseSensitive(tc, "rope_theta");
        theta_name = "rope_theta";
    }
    if (!cJSON_IsNumber(theta) || !(theta->valuedouble > 1)) {
        snprintf(err, errlen,
                 "config.json: text_config.%s is missing or not a number > 1 "
                 "(the reference's 5000000 must be explicit)",
                 theta_name);
        goto out;
    }
    t->rope_theta = theta->valuedouble;
    const cJSON *ms = rp ? cJSON_GetObjectItemCaseSensitive(rp, "mrope_section") : NULL;
    if (!ms) {
        snprintf(err, errlen, "config.json: %s.mrope_section is missing", rp_name);
        goto out;
    }
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) != 3) {
        snprintf(err, errlen, "config.json: %s.mrope_section must be an array of 3 integers",
                 rp_name);
        goto out;
    }
    int msum = 0;
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(ms, i);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 4096 ||
            x->valuedouble != floor(x->valuedouble)) {
            snprintf(err, errlen, "config.json: %s.mrope_section[%d] is not a small integer",
                     rp_name, i);
            goto out;
        }
        t->mrope_section[i] = (int)x->valuedouble;
        msum += t->mrope_section[i];
    }
    if (msum != t->head_dim / 2) {
        snprintf(err, errlen, "config.json: %s.mrope_section sums to %d but head_dim/2 is %d",
                 rp_name, msum, t->head_dim / 2);
        goto out;
    }
    t->mrope_interleaved = cfg_bool(rp, "mrope_interleaved", 1);

    /* vision */
    struct vl_vision_config *vi = &cfg->vision;
    const char *vs = "vision_config.";
    if (cfg_int(vc, vs, "depth", -1, 1, CFG_LAYERS_MAX, &vi->depth, err, errlen) ||
        cfg_int(vc, vs, "hidden_size", -1, 1, CFG_DIM_MAX, &vi->hidden_size, err, errlen) ||
        cfg_int(vc, vs, "num_heads", -1, 1, 4096, &vi->num_heads, err, errlen) ||
        cfg_int(vc, vs, "intermediate_size", -1, 1, CFG_DIM_MAX, &vi->intermediate_size, err,
                errlen) ||
        cfg_int(vc, vs, "patch_size", 16, 1, 1024, &vi->patch_size, err, errlen) ||
        cfg_int(vc, vs, "temporal_patch_size", 2, 2, 2, &vi->temporal_patch_size, err, errlen) ||
        cfg_int(vc, vs, "spatial_merge_size", 2, 2, 2, &vi->spatial_merge_size, err, errlen) ||
        cfg_int(vc, vs, "in_channels", 3, 3, 3, &vi->in_channels, err, errlen) ||
        cfg_int(vc, vs, "out_hidden_size", -1, 1, CFG_DIM_MAX, &vi->out_hidden_size, err, errlen) ||
        cfg_int(vc, vs, "num_position_embeddings", -1, 1, 1 << 24, &vi->num_position_embeddings,
                err, errlen))
        goto out;
    if (cfg_act(vc, vs, "hidden_act", "gelu_pytorch_tanh", err, errlen))
        goto out;
    if (vi->hidden_size % vi->num_heads || (vi->hidden_size / vi->num_heads) % 4) {
        snprintf(err, errlen,
                 "config.json: vision_config.hidden_size (%d) / num_heads (%d) "
                 "must be an integer multiple of 4",
                 vi->hidden_size, vi->num_heads);
        goto out;
    }
    vi->head_dim = vi->hidden_size / vi->num_heads;
    int g = (int)lround(sqrt((double)vi->num_position_embeddings));
    if (g * g != vi->num_position_embeddings) {
        snprintf(err, errlen,
                 "config.json: vision_config.num_position_embeddings (%d) is not a "
                 "perfect square",
                 vi->num_position_embeddings);
        goto out;
    }
    vi->num_grid_per_side = g;
    vi->patch_dim = vi->in_channels * vi->temporal_patch_size * vi->patch_size * vi->patch_size;
    vi->layer_norm_eps = 1e-6f;
    vi->rope_theta = 10000.0f; /* transformers 5 also writes it as rope_parameters.rope_theta */
    const cJSON *vrp = cJSON_GetObjectItemCaseSensitive(vc, "rope_parameters");
    const cJSON *vth =
        cJSON_IsObject(vrp) ? cJSON_GetObjectItemCaseSensitive(vrp, "rope_theta") : NULL;
    if (vth) {
        if (!cJSON_IsNumber(vth) || !(vth->valuedouble > 1)) {
            snprintf(err, errlen,
                     "config.json: vision_config.rope_parameters.rope_theta must be "
                     "a number > 1");
            goto out;
        }
        vi->rope_theta = (float)vth->valuedouble;
    }
    if (vi->out_hidden_size != t->hidden_size) {
        snprintf(err, errlen,
                 "config.json: vision_config.out_hidden_size (%d) differs from "
                 "text_config.hidden_size (%d)",
                 vi->out_hidden_size, t->hidden_size);
        goto out;
    }
    const cJSON *dsi = cJSON_GetObjectItemCaseSensitive(vc, "deepstack_visual_indexes");
    if (!cJSON_IsArray(dsi) || cJSON_GetArraySize(dsi) > VL_MAX_DEEPSTACK) {
        snprintf(err, errlen,
                 "config.json: vision_config.deepstack_visual_indexes must be an "
                 "array of at most %d block indexes",
                 VL_MAX_DEEPSTACK);
        goto out;
    }
    vi->n_deepstack = cJSON_GetArraySize(dsi);
    for (int i = 0; i < vi->n_deepstack; i++) {
        const cJSON *x = cJSON_GetArrayItem(dsi, i);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= vi->depth ||
            x->valuedouble != floor(x->valuedouble) ||
            (i > 0 && (int)x->valuedouble <= vi->deepstack_visual_indexes[i - 1])) {
            snprintf(err, errlen,
                     "config.json: vision_config.deepstack_visual_indexes[%d] must "
                     "be an increasing block index < depth (%d)",
                     i, vi->depth);
            goto out;
        }
        vi->deepstack_visual_indexes[i] = (int)x->valuedouble;
    }
    if (vi->n_deepstack > t->num_hidden_layers) {
        snprintf(err, errlen, "config.json: %d deepstack levels but only %d decoder layers",
                 vi->n_deepstack, t->num_hidden_layers);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int vl_model_config_load(struct vl_model_config *cfg, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path) {
        snprintf(err, errlen, "model directory path too long");
        return -1;
    }
    FILE *f = fopen(path, "rbe");
    if (!f) {
        snprintf(err, errlen, "open(\"%s\") failed: %s", path, strerror(errno));
        return -1;
    }
    enum { MAX = 4 * 1024 * 1024 }; /* config.json is a few kB */
    char *buf = vl_malloc(MAX + 1);
    size_t n = fread(buf, 1, MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > MAX) {
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "larger than 4 MiB");
        free(buf);
        return -1;
    }
    int rc = vl_model_config_parse(cfg, buf, n, err, errlen);
    free(buf);
    return rc;
}

/* ---- tensors ---------------------------------------------------------------------------- */

/* Binds `name` (printf format) with the expected shape (ndim dims in want[]). A Conv3d patch
 * weight of rank 5 is viewed as 2-D by passing flatten_tail = 1. */
static int bind(const struct vl_model *m, struct vl_tensor *out, int optional, int ndim,
                const int64_t *want, int flatten_tail, char *err, size_t errlen, const char *fmt,
                ...) __attribute__((format(printf, 9, 10)));

static int bind(const struct vl_model *m, struct vl_tensor *out, int optional, int ndim,
                const int64_t *want, int flatten_tail, char *err, size_t errlen, const char *fmt,
                ...)
{
    char name[VL_ST_NAME_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const struct vl_st_tensor *t = vl_st_find(&m->st, name);
    memset(out, 0, sizeof *out);
    if (!t) {
        if (optional)
            return 0;
        snprintf(err, errlen, "checkpoint: tensor %s is missing", name);
        return -1;
    }
    char got[128] = "", exp[128] = "";
    size_t gl = 0, el = 0;
    for (int d = 0; d < t->ndim && gl < sizeof got - 24; d++)
        gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%lld", d ? ", " : "",
                               (long long)t->shape[d]);
    for (int d = 0; d < ndim && el < sizeof exp - 24; d++)
        el += (size_t)snprintf(exp + el, sizeof exp - el, "%s%lld", d ? ", " : "",
                               (long long)want[d]);
    int ok;
    if (flatten_tail) {
        int64_t tail = 1;
        for (int d = 1; d < t->ndim; d++)
            tail *= t->shape[d];
        ok = t->ndim >= 2 && t->shape[0] == want[0] && tail == want[1];
    } else {
        ok = t->ndim == ndim;
        for (int d = 0; ok && d < ndim; d++)
            ok = t->shape[d] == want[d];
    }
    if (!ok) {
        snprintf(err, errlen, "checkpoint: tensor %s has shape [%s], the config needs [%s]%s", name,
                 got, exp, flatten_tail ? " (flattened)" : "");
        return -1;
    }
    out->name = t->name;
    out->dtype = t->dtype;
    out->ndim = ndim;
    for (int d = 0; d < 4; d++)
        out->shape[d] = d < ndim ? want[d] : 1;
    out->numel = t->numel;
    out->data = t->data;
    return 0;
}

#define V1(a) ((const int64_t[]){(a)})
#define V2(a, b) ((const int64_t[]){(a), (b)})
#define B1(dst, a, ...) bind(m, dst, 0, 1, V1(a), 0, err, errlen, __VA_ARGS__)
#define B2(dst, a, b, ...) bind(m, dst, 0, 2, V2(a, b), 0, err, errlen, __VA_ARGS__)

static int bind_merger(struct vl_model *m, struct vl_merger *mg, int64_t norm, const char *pre,
                       char *err, size_t errlen)
{
    const struct vl_vision_config *v = &m->cfg.vision;
    int64_t w4 = (int64_t)v->hidden_size * v->spatial_merge_size * v->spatial_merge_size;
    if (B1(&mg->norm_w, norm, "%s.norm.weight", pre) ||
        B1(&mg->norm_b, norm, "%s.norm.bias", pre) ||
        B2(&mg->fc1_w, w4, w4, "%s.linear_fc1.weight", pre) ||
        B1(&mg->fc1_b, w4, "%s.linear_fc1.bias", pre) ||
        B2(&mg->fc2_w, v->out_hidden_size, w4, "%s.linear_fc2.weight", pre) ||
        B1(&mg->fc2_b, v->out_hidden_size, "%s.linear_fc2.bias", pre))
        return -1;
    return 0;
}

static int bind_all(struct vl_model *m, char *err, size_t errlen)
{
    const struct vl_vision_config *v = &m->cfg.vision;
    const struct vl_text_config *t = &m->cfg.text;
    const char *vp = "model.visual", *lp = "model.language_model";
    int64_t V = v->hidden_size;
    if (bind(m, &m->patch_embed_w, 0, 2, V2(V, v->patch_dim), 1, err, errlen,
             "%s.patch_embed.proj.weight", vp) ||
        B1(&m->patch_embed_b, V, "%s.patch_embed.proj.bias", vp) ||
        B2(&m->pos_embed, v->num_position_embeddings, V, "%s.pos_embed.weight", vp))
        return -1;
    m->blocks = vl_calloc((size_t)v->depth, sizeof *m->blocks);
    for (int i = 0; i < v->depth; i++) {
        struct vl_vision_block *b = &m->blocks[i];
        int64_t I = v->intermediate_size;
        if (B1(&b->norm1_w, V, "%s.blocks.%d.norm1.weight", vp, i) ||
            B1(&b->norm1_b, V, "%s.blocks.%d.norm1.bias", vp, i) ||
            B1(&b->norm2_w, V, "%s.blocks.%d.norm2.weight", vp, i) ||
            B1(&b->norm2_b, V, "%s.blocks.%d.norm2.bias", vp, i) ||
            B2(&b->qkv_w, 3 * V, V, "%s.blocks.%d.attn.qkv.weight", vp, i) ||
            B1(&b->qkv_b, 3 * V, "%s.blocks.%d.attn.qkv.bias", vp, i) ||
            B2(&b->proj_w, V, V, "%s.blocks.%d.attn.proj.weight", vp, i) ||
            B1(&b->proj_b, V, "%s.blocks.%d.attn.proj.bias", vp, i) ||
            B2(&b->fc1_w, I, V, "%s.blocks.%d.mlp.linear_fc1.weight", vp, i) ||
            B1(&b->fc1_b, I, "%s.blocks.%d.mlp.linear_fc1.bias", vp, i) ||
            B2(&b->fc2_w, V, I, "%s.blocks.%d.mlp.linear_fc2.weight", vp, i) ||
            B1(&b->fc2_b, V, "%s.blocks.%d.mlp.linear_fc2.bias", vp, i))
            return -1;
    }
    char pre[96];
    snprintf(pre, sizeof pre, "%s.merger", vp);
    if (bind_merger(m, &m->merger, V, pre, err, errlen))
        return -1;
    m->deepstack_mergers = vl_calloc((size_t)v->n_deepstack + 1, sizeof *m->deepstack_mergers);
    for (int k = 0; k < v->n_deepstack; k++) {
        snprintf(pre, sizeof pre, "%s.deepstack_merger_list.%d", vp, k);
        int64_t w4 = V * v->spatial_merge_size * v->spatial_merge_size;
        if (bind_merger(m, &m->deepstack_mergers[k], w4, pre, err, errlen))
            return -1;
    }
    /* A checkpoint with more deepstack mergers than the config names disagrees with it. */
    snprintf(pre, sizeof pre, "%s.deepstack_merger_list.%d.linear_fc1.weight", vp, v->n_deepstack);
    if (vl_st_find(&m->st, pre)) {
        snprintf(err, errlen,
                 "checkpoint: tensor %s exists but config.json "
                 "vision_config.deepstack_visual_indexes names only %d levels",
                 pre, v->n_deepstack);
        return -1;
    }
    snprintf(pre, sizeof pre, "%s.blocks.%d.norm1.weight", vp, v->depth);
    if (vl_st_find(&m->st, pre)) {
        snprintf(err, errlen,
                 "checkpoint: tensor %s exists but config.json vision_config.depth "
                 "is %d",
                 pre, v->depth);
        return -1;
    }

    int64_t H = t->hidden_size, hd = t->head_dim, I = t->intermediate_size;
    int64_t qd = (int64_t)t->num_attention_heads * hd, kvd = (int64_t)t->num_key_value_heads * hd;
    if (B2(&m->embed_tokens, t->vocab_size, H, "%s.embed_tokens.weight", lp) ||
        B1(&m->norm_w, H, "%s.norm.weight", lp))
        return -1;
    m->layers = vl_calloc((size_t)t->num_hidden_layers, sizeof *m->layers);
    for (int l = 0; l < t->num_hidden_layers; l++) {
        struct vl_text_layer *y = &m->layers[l];
        if (B1(&y->input_norm_w, H, "%s.layers.%d.input_layernorm.weight", lp, l) ||
            B1(&y->post_norm_w, H, "%s.layers.%d.post_attention_layernorm.weight", lp, l) ||
            B2(&y->q_w, qd, H, "%s.layers.%d.self_attn.q_proj.weight", lp, l) ||
            B2(&y->k_w, kvd, H, "%s.layers.%d.self_attn.k_proj.weight", lp, l) ||
            B2(&y->v_w, kvd, H, "%s.layers.%d.self_attn.v_proj.weight", lp, l) ||
            B2(&y->o_w, H, qd, "%s.layers.%d.self_attn.o_proj.weight", lp, l) ||
            B1(&y->q_norm_w, hd, "%s.layers.%d.self_attn.q_norm.weight", lp, l) ||
            B1(&y->k_norm_w, hd, "%s.layers.%d.self_attn.k_norm.weight", lp, l) ||
            B2(&y->gate_w, I, H, "%s.layers.%d.mlp.gate_proj.weight", lp, l) ||
            B2(&y->up_w, I, H, "%s.layers.%d.mlp.up_proj.weight", lp, l) ||
            B2(&y->down_w, H, I, "%s.layers.%d.mlp.down_proj.weight", lp, l))
            return -1;
        if (t->attention_bias && (B1(&y->q_b, qd, "%s.layers.%d.self_attn.q_proj.bias", lp, l) ||
                                  B1(&y->k_b, kvd, "%s.layers.%d.self_attn.k_proj.bias", lp, l) ||
                                  B1(&y->v_b, kvd, "%s.layers.%d.self_attn.v_proj.bias", lp, l)))
            return -1;
    }
    snprintf(pre, sizeof pre, "%s.layers.%d.input_layernorm.weight", lp, t->num_hidden_layers);
    if (vl_st_find(&m->st, pre)) {
        snprintf(err, errlen,
                 "checkpoint: tensor %s exists but config.json "
                 "text_config.num_hidden_layers is %d",
                 pre, t->num_hidden_layers);
        return -1;
    }
    return 0;
}

int vl_model_load(struct vl_model *m, const char *dir, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->dir = vl_strdup(dir);
    if (vl_model_config_load(&m->cfg, dir, err, errlen) != 0)
        return -1;
    if (vl_st_open_dir(&m->st, dir, err, errlen) != 0)
        return -1;
    return bind_all(m, err, errlen);
}

void vl_model_free(struct vl_model *m)
{
    if (!m)
        return;
    free(m->blocks);
    free(m->deepstack_mergers);
    free(m->layers);
    vl_st_free(&m->st);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

void vl_tensor_to_f32(const struct vl_tensor *t, float *dst)
{
    vl_dtype_to_f32(t->dtype, t->data, dst, (size_t)t->numel);
}

void vl_tensor_row_to_f32(const struct vl_tensor *t, int64_t r, float *dst)
{
    size_t cols = (size_t)(t->numel / t->shape[0]);
    const uint8_t *p = (const uint8_t *)t->data + (size_t)r * cols * vl_dtype_size(t->dtype);
    vl_dtype_to_f32(t->dtype, p, dst, cols);
}

size_t vl_model_weight_bytes(const struct vl_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->st.n_tensors; i++)
        n += m->st.tensors[i].nbytes;
    return n;
}

int vl_model_prune_last_layer(int layers, int n_deepstack)
{
    const char *e = getenv("VL_LM_LAST_LAYER");
    return layers > n_deepstack && !(e && strcmp(e, "all") == 0);
}
