/* A loaded Qwen3-VL(-Embedding) checkpoint: its configuration and a validated view of every
 * weight tensor. Both backends (worker/cpu_*.c and worker/cuda/) take a `const struct
 * vl_model *` and read only what is here; nothing in this struct is backend-specific.
 *
 * Loading (vl_model_load):
 *   1. DIR/config.json is parsed (cJSON). Both rope spellings are accepted (spec §12):
 *      transformers 5 `text_config.rope_parameters = {rope_type, rope_theta, mrope_section,
 *      mrope_interleaved}` and 4.57-era `text_config.rope_theta` + `text_config.rope_scaling =
 *      {rope_type, mrope_section, mrope_interleaved}`. Only rope_type "default" is supported.
 *   2. The safetensors files are mapped read-only (worker/safetensors.h): weights stay in
 *      their file dtype (BF16, F16 or F32) at `vl_tensor.data`; backends convert them.
 *   3. Every tensor the forward needs is looked up by its Hugging Face name (spec §2) and its
 *      shape checked against the config; a missing tensor, a wrong shape, or a config value
 *      out of range is refused with an error naming the tensor or key. Extra tensors (an
 *      unused `lm_head.weight`) are ignored.
 *
 * Layout conventions (PyTorch's, unchanged): a Linear weight is [out, in] row-major; the
 * Conv3d patch embedding [V, C, T, P, P] is used as a Linear [V, C*T*P*P] (spec §2); qkv rows
 * are [q; k; v]. */
#ifndef VL_WORKER_MODEL_H
#define VL_WORKER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "worker/safetensors.h"

/* Deepstack levels a config may name (real models: 3). */
#define VL_MAX_DEEPSTACK 16

/* One weight: a view into the mapped checkpoint. shape[] is in PyTorch order; unused dims
 * are 1. `name` points into the safetensors table. */
struct vl_tensor {
    const char *name;
    enum vl_dtype dtype;
    int ndim;
    int64_t shape[4];
    int64_t numel;
    const void *data;
};

struct vl_vision_config {
    int depth;       /* ViT blocks */
    int hidden_size; /* V */
    int num_heads;
    int head_dim;                /* V / num_heads */
    int intermediate_size;       /* ViT MLP width */
    int patch_size;              /* 16 */
    int temporal_patch_size;     /* 2 */
    int spatial_merge_size;      /* 2 */
    int in_channels;             /* 3 */
    int out_hidden_size;         /* O = text hidden_size */
    int num_position_embeddings; /* G*G, a perfect square */
    int num_grid_per_side;       /* G */
    int n_deepstack;
    int deepstack_visual_indexes[VL_MAX_DEEPSTACK]; /* block indexes, 0-based, increasing */
    int patch_dim;        /* in_channels * temporal_patch_size * patch_size^2 (1536) */
    float layer_norm_eps; /* 1e-6 (hard-coded in the reference) */
    float rope_theta;     /* 10000 (hard-coded in the reference) */
};

struct vl_text_config {
    int hidden_size; /* H */
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads;
    int head_dim;
    int intermediate_size;
    int vocab_size;
    float rms_norm_eps;
    double rope_theta;
    int mrope_section[3];  /* T, H, W frequency counts; sum = head_dim / 2 */
    int mrope_interleaved; /* informational: the reference always interleaves */
    int attention_bias;    /* q/k/v projections carry biases */
    int tie_word_embeddings;
};

struct vl_model_config {
    struct vl_vision_config vision;
    struct vl_text_config text;
    int32_t image_token_id;        /* <|image_pad|> 151655 */
    int32_t video_token_id;        /* <|video_pad|> 151656 */
    int32_t vision_start_token_id; /* 151652 */
    int32_t vision_end_token_id;   /* 151653 */
};

struct vl_vision_block {
    struct vl_tensor norm1_w, norm1_b, norm2_w, norm2_b; /* [V] */
    struct vl_tensor qkv_w, qkv_b;                       /* [3V, V], [3V] */
    struct vl_tensor proj_w, proj_b;                     /* [V, V], [V] */
    struct vl_tensor fc1_w, fc1_b;                       /* [I_v, V], [I_v] */
    struct vl_tensor fc2_w, fc2_b;                       /* [V, I_v], [V] */
};

/* The final merger (norm over V, before the 2x2 shuffle) and each DeepStack merger (norm over
 * 4V, after the shuffle) have the same tensors; only the norm width differs. */
struct vl_merger {
    struct vl_tensor norm_w, norm_b; /* [V] (final) or [4V] (deepstack) */
    struct vl_tensor fc1_w, fc1_b;   /* [4V, 4V], [4V] */
    struct vl_tensor fc2_w, fc2_b;   /* [O, 4V], [O] */
};

struct vl_text_layer {
    struct vl_tensor input_norm_w, post_norm_w; /* [H] */
    struct vl_tensor q_w, k_w, v_w;             /* [nh*hd, H], [nkv*hd, H], [nkv*hd, H] */
    struct vl_tensor q_b, k_b, v_b;             /* only when attention_bias; else data NULL */
    struct vl_tensor o_w;                       /* [H, nh*hd] */
    struct vl_tensor q_norm_w, k_norm_w;        /* [hd] */
    struct vl_tensor gate_w, up_w;              /* [I, H] */
    struct vl_tensor down_w;                    /* [H, I] */
};

struct vl_model {
    struct vl_model_config cfg;
    char *dir;
    struct vl_safetensors st;

    /* vision tower (model.visual.*) */
    struct vl_tensor patch_embed_w; /* [V, C, T, P, P] viewed as [V, patch_dim] */
    struct vl_tensor patch_embed_b; /* [V] */
    struct vl_tensor pos_embed;     /* [G*G, V] */
    struct vl_vision_block *blocks; /* [depth] */
    struct vl_merger merger;
    struct vl_merger *deepstack_mergers; /* [n_deepstack] */

    /* language model (model.language_model.*) */
    struct vl_tensor embed_tokens; /* [vocab, H] */
    struct vl_text_layer *layers;  /* [num_hidden_layers] */
    struct vl_tensor norm_w;       /* [H] final RMSNorm */
};

/* Parses DIR/config.json alone into cfg (no weights). Returns 0 or -1 with err naming the
 * key. */
int vl_model_config_load(struct vl_model_config *cfg, const char *dir, char *err, size_t errlen);

/* Parses config JSON text (used by vl_model_config_load and the tests). */
int vl_model_config_parse(struct vl_model_config *cfg, const char *json, size_t len, char *err,
                          size_t errlen);

/* Loads and validates a checkpoint directory (see the top of this file). Returns 0, or -1
 * with err naming the file, tensor or key; `m` is zeroed first and safe to free either way. */
int vl_model_load(struct vl_model *m, const char *dir, char *err, size_t errlen);

/* Unmaps and frees; safe on a zeroed or half-built struct. */
void vl_model_free(struct vl_model *m);

/* Converts a whole tensor to float32 (dst holds t->numel floats). */
void vl_tensor_to_f32(const struct vl_tensor *t, float *dst);

/* Converts row r of a 2-D tensor ([rows, cols]) to float32 (dst holds cols floats). */
void vl_tensor_row_to_f32(const struct vl_tensor *t, int64_t r, float *dst);

/* Total bytes of all tensors in the checkpoint files (for logs and memory planning). */
size_t vl_model_weight_bytes(const struct vl_model *m);

/* Whether the backends finish the last decoder layer only on the pooled rows (each item's last
 * token): after the last attention no row reads another, so the o projection, the MLP and the
 * residual adds of every other row are dead work (1/layers of the LM's linear layers). The
 * default for a model of `layers` decoder layers and `n_deepstack` DeepStack levels; not when
 * DeepStack still writes visual rows after the last layer (layers <= n_deepstack: only test
 * configurations), nor with environment VL_LM_LAST_LAYER=all (every row, for A/B runs). */
int vl_model_prune_last_layer(int layers, int n_deepstack);

#endif
