/* Checkpoint loading: config.json spellings, sharded and single-file weights, and refusal of
 * every kind of bad checkpoint with a message naming the tensor or key. */
#include <math.h>

#include "tests/test.h"
#include "tests/unit/test_model_fixture.h"
#include "worker/model.h"

static int load_dir(const char *dir, char *err, size_t errlen)
{
    struct vl_model m;
    int rc = vl_model_load(&m, dir, err, errlen);
    vl_model_free(&m);
    return rc;
}

TEST(test_load_single_and_sharded)
{
    for (int shards = 1; shards <= 3; shards += 2) {
        char dir[64];
        fx_tmpdir(dir, sizeof dir);
        struct fx_cfg c = fx_cfg_default();
        CHECK_EQ_INT(fx_write_model(&c, dir, shards), 0);
        struct vl_model m;
        char err[512] = "";
        int rc = vl_model_load(&m, dir, err, sizeof err);
        CHECK_EQ_STR(err, "");
        CHECK_EQ_INT(rc, 0);
        if (rc == 0) {
            CHECK_EQ_INT(m.st.n_files, shards);
            CHECK_EQ_INT(m.cfg.text.hidden_size, 32);
            CHECK_EQ_INT(m.cfg.text.num_key_value_heads, 2);
            CHECK_EQ_INT(m.cfg.text.head_dim, 16);
            CHECK_EQ_INT(m.cfg.text.mrope_section[0], 4);
            CHECK_EQ_INT(m.cfg.text.mrope_section[2], 2);
            CHECK_NEAR(m.cfg.text.rope_theta, 5e6, 1e-3);
            CHECK_EQ_INT(m.cfg.vision.n_deepstack, 2);
            CHECK_EQ_INT(m.cfg.vision.deepstack_visual_indexes[1], 2);
            CHECK_EQ_INT(m.cfg.vision.num_grid_per_side, 8);
            CHECK_EQ_INT(m.cfg.vision.patch_dim, 1536);
            CHECK_EQ_INT(m.cfg.image_token_id, 151655);
            CHECK_EQ_INT(m.patch_embed_w.shape[0], 32);
            CHECK_EQ_INT(m.patch_embed_w.shape[1], 1536);
            CHECK_EQ_INT(m.layers[2].k_w.shape[0], 32);
            CHECK(m.deepstack_mergers[1].norm_w.shape[0] == 128);
            CHECK(m.embed_tokens.dtype == VL_DTYPE_BF16);
            /* the row converter agrees with the whole-tensor converter */
            float row[32], *all = malloc(sizeof(float) * 151680 * 32);
            vl_tensor_row_to_f32(&m.embed_tokens, 7, row);
            vl_tensor_to_f32(&m.embed_tokens, all);
            CHECK(memcmp(row, all + 7 * 32, sizeof row) == 0);
            free(all);
        }
        vl_model_free(&m);
        fx_rmdir(dir);
    }
}

TEST(test_rope_spellings)
{
    struct fx_cfg c = fx_cfg_default();
    char json[4096], err[256] = "";
    struct vl_model_config cfg;
    c.rope_style = 1;
    fx_config_json(&c, json, sizeof json);
    CHECK_EQ_INT(vl_model_config_parse(&cfg, json, strlen(json), err, sizeof err), 0);
    CHECK_EQ_STR(err, "");
    CHECK_NEAR(cfg.text.rope_theta, 5e6, 1e-3);
    CHECK_EQ_INT(cfg.text.mrope_section[1], 2);

    /* no mrope_section: refused, naming the key */
    const char *bad = "{\"text_config\":{\"hidden_size\":32,\"num_hidden_layers\":1,"
                      "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":151936,"
                      "\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":\"default\"}},"
                      "\"vision_config\":{}}";
    CHECK_EQ_INT(vl_model_config_parse(&cfg, bad, strlen(bad), err, sizeof err), -1);
    CHECK_CONTAINS(err, "mrope_section");

    /* a non-default rope type */
    const char *yarn = "{\"text_config\":{\"hidden_size\":32,\"num_hidden_layers\":1,"
                       "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":151936,"
                       "\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":1e6}},"
                       "\"vision_config\":{}}";
    CHECK_EQ_INT(vl_model_config_parse(&cfg, yarn, strlen(yarn), err, sizeof err), -1);
    CHECK_CONTAINS(err, "rope_type");

    /* missing rope_theta entirely */
    const char *noth = "{\"text_config\":{\"hidden_size\":32,\"num_hidden_layers\":1,"
                       "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":151936,"
                       "\"rope_scaling\":{\"mrope_section\":[8,4,4]}},\"vision_config\":{}}";
    CHECK_EQ_INT(vl_model_config_parse(&cfg, noth, strlen(noth), err, sizeof err), -1);
    CHECK_CONTAINS(err, "rope_theta");
}

TEST(test_config_errors_name_the_key)
{
    struct fx_cfg c = fx_cfg_default();
    char json[4096], err[256];
    struct vl_model_config cfg;
    struct {
        const char *from, *to, *want;
    } cases[] = {
        {"\"num_key_value_heads\":2", "\"num_key_value_heads\":3", "num_key_value_heads"},
        {"\"mrope_section\":[4,2,2]", "\"mrope_section\":[4,2,3]", "mrope_section"},
        {"\"deepstack_visual_indexes\":[0,2]", "\"deepstack_visual_indexes\":[0,7]",
         "deepstack_visual_indexes"},
        {"\"num_position_embeddings\":64", "\"num_position_embeddings\":60",
         "num_position_embeddings"},
        {"\"hidden_act\":\"gelu_pytorch_tanh\"", "\"hidden_act\":\"gelu\"", "hidden_act"},
        {"\"depth\":3", "\"depth\":-1", "vision_config.depth"},
        {"\"vocab_size\":151680", "\"vocab_size\":\"x\"", "vocab_size"},
        {"\"vocab_size\":151680", "\"vocab_size\":151000", "image_token_id"},
        {"\"out_hidden_size\":32", "\"out_hidden_size\":64", "out_hidden_size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_config_json(&c, json, sizeof json);
        char *p = strstr(json, cases[i].from);
        CHECK(p != NULL);
        if (!p)
            continue;
        char out[4096];
        snprintf(out, sizeof out, "%.*s%s%s", (int)(p - json), json, cases[i].to,
                 p + strlen(cases[i].from));
        err[0] = 0;
        CHECK_EQ_INT(vl_model_config_parse(&cfg, out, strlen(out), err, sizeof err), -1);
        CHECK_CONTAINS(err, cases[i].want);
    }
    CHECK_EQ_INT(vl_model_config_parse(&cfg, "[1,2]", 5, err, sizeof err), -1);
    CHECK_EQ_INT(vl_model_config_parse(&cfg, "{\"text_config\":", 15, err, sizeof err), -1);
}

/* Rewrites the single model.safetensors of a fixture model with the tensor list changed. */
static void write_with(const char *dir, const struct fx_cfg *c, void (*edit)(struct fx_file *f))
{
    fx_write_model(c, dir, 1);
    struct fx_file f = {0};
    fx_model_tensors(c, &f);
    edit(&f);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fx_write_file(&f, path);
    fx_file_free(&f);
}

static void drop_norm(struct fx_file *f)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, "model.language_model.layers.1.post_attention_layernorm.weight"))
            strcpy(f->t[i].name, "model.language_model.layers.1.post_attention_layernorm.wieght");
}
static void reshape_k(struct fx_file *f)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, "model.language_model.layers.0.self_attn.k_proj.weight")) {
            f->t[i].shape[0] = 16; /* [32, 32] -> [16, 64] keeps the byte count */
            f->t[i].shape[1] = 64;
        }
}
static void bad_dtype(struct fx_file *f)
{
    f->t[3].dtype = "I64"; /* 2-byte payload declared I64: the dtype is refused first */
}
static void add_lm_head(struct fx_file *f)
{
    fx_add(f, "lm_head.weight", "BF16", 2, FX_S(151680, 32), 1.0f, 0);
}
static void extra_layer(struct fx_file *f)
{
    fx_add(f, "model.language_model.layers.3.input_layernorm.weight", "BF16", 1, FX_S(32), 1, 0);
}
static void no_change(struct fx_file *f)
{
    (void)f;
}

TEST(test_bad_checkpoints)
{
    struct fx_cfg c = fx_cfg_default();
    char dir[64], err[512];
    struct {
        void (*edit)(struct fx_file *);
        int ok;
        const char *want;
    } cases[] = {
        {drop_norm, 0, "layers.1.post_attention_layernorm.weight is missing"},
        {reshape_k, 0, "layers.0.self_attn.k_proj.weight has shape [16, 64]"},
        {bad_dtype, 0, "unsupported dtype I64"},
        {add_lm_head, 1, ""},
        {extra_layer, 0, "num_hidden_layers"},
        {no_change, 1, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx_tmpdir(dir, sizeof dir);
        write_with(dir, &c, cases[i].edit);
        err[0] = 0;
        int rc = load_dir(dir, err, sizeof err);
        CHECK_EQ_INT(rc, cases[i].ok ? 0 : -1);
        if (cases[i].want[0])
            CHECK_CONTAINS(err, cases[i].want);
        fx_rmdir(dir);
    }
    /* f16 and f32 checkpoints load too */
    const char *dts[] = {"F16", "F32"};
    for (int i = 0; i < 2; i++) {
        struct fx_cfg c2 = c;
        c2.dtype = dts[i];
        fx_tmpdir(dir, sizeof dir);
        fx_write_model(&c2, dir, 2);
        err[0] = 0;
        CHECK_EQ_INT(load_dir(dir, err, sizeof err), 0);
        CHECK_EQ_STR(err, "");
        fx_rmdir(dir);
    }
    /* config disagreeing with weights: more layers than stored */
    struct fx_cfg c3 = c;
    fx_tmpdir(dir, sizeof dir);
    fx_write_model(&c3, dir, 1);
    c3.t_layers = 4;
    char json[4096], path[256];
    fx_config_json(&c3, json, sizeof json);
    snprintf(path, sizeof path, "%s/config.json", dir);
    fx_write_bytes(path, json, strlen(json));
    CHECK_EQ_INT(load_dir(dir, err, sizeof err), -1);
    CHECK_CONTAINS(err, "layers.3.input_layernorm.weight is missing");
    /* truncated weights file */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fx_write_model(&c, dir, 1);
    CHECK_EQ_INT(truncate(path, 100000), 0);
    CHECK_EQ_INT(load_dir(dir, err, sizeof err), -1);
    CHECK_CONTAINS(err, "past the end");
    /* missing weights */
    unlink(path);
    CHECK_EQ_INT(load_dir(dir, err, sizeof err), -1);
    CHECK_CONTAINS(err, "model.safetensors");
    fx_rmdir(dir);
}

TEST(test_bad_index)
{
    struct fx_cfg c = fx_cfg_default();
    char dir[64], err[512], path[256];
    fx_tmpdir(dir, sizeof dir);
    fx_write_model(&c, dir, 2);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    const char *idx1 = "{\"weight_map\":{\"model.language_model.norm.weight\":\"../etc/passwd\"}}";
    fx_write_bytes(path, idx1, strlen(idx1));
    CHECK_EQ_INT(load_dir(dir, err, sizeof err), -1);
    CHECK_CONTAINS(err, "not a file name");
    /* the index names the wrong shard for a tensor */
    const char *idx2 = "{\"weight_map\":{\"model.language_model.norm.weight\":"
                       "\"model-00001-of-00002.safetensors\",\"model.visual.pos_embed.weight\":"
                       "\"model-00001-of-00002.safetensors\",\"x\":"
                       "\"model-00002-of-00002.safetensors\"}}";
    fx_write_bytes(path, idx2, strlen(idx2));
    CHECK_EQ_INT(load_dir(dir, err, sizeof err), -1);
    CHECK_CONTAINS(err, "does not hold it");
    fx_write_bytes(path, "{}", 2);
    CHECK_EQ_INT(load_dir(dir, err, sizeof err), -1);
    CHECK_CONTAINS(err, "weight_map");
    fx_rmdir(dir);
}

TEST_MAIN(test_load_single_and_sharded, test_rope_spellings, test_config_errors_name_the_key,
          test_bad_checkpoints, test_bad_index)
