/* The CPU backend (worker/backend.h): converts the checkpoint's weights to float32 once at
 * create (embed_tokens stays mapped and is converted row by row on lookup), then embeds items
 * in batches bounded by a token and a patch budget. The reference for every other backend
 * and every test; not thread-safe (one embed call at a time). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/limits.h"
#include "common/log.h"
#include "worker/backend.h"
#include "worker/cpu.h"
#include "worker/positions.h"

/* Defaults when the options leave the budgets at 0: a batch of this size needs a few hundred
 * MB of float32 activations for the 2B model. */
#define CPU_DEFAULT_BATCH_TOKENS 8192
#define CPU_DEFAULT_BATCH_PATCHES 32768

#define CONV_CHUNK (1 << 18)
struct conv_job {
    const struct vl_tensor *t;
    float *dst;
};
static void conv_task(void *arg, int task, int thread)
{
    (void)thread;
    const struct conv_job *j = arg;
    size_t i0 = (size_t)task * CONV_CHUNK, n = (size_t)j->t->numel - i0;
    if (n > CONV_CHUNK)
        n = CONV_CHUNK;
    vl_dtype_to_f32(j->t->dtype, (const uint8_t *)j->t->data + i0 * vl_dtype_size(j->t->dtype),
                    j->dst + i0, n);
}

/* A float32 copy of a weight, converted in parallel; owned by the state. */
static const float *conv(struct cpu_state *s, const struct vl_tensor *t)
{
    if (!t->data)
        return NULL;
    float *p = vl_malloc(sizeof(float) * (size_t)t->numel);
    struct conv_job j = {t, p};
    cpu_pool_run(s->pool, conv_task, &j, (int)((t->numel + CONV_CHUNK - 1) / CONV_CHUNK));
    if (s->n_allocs == s->cap_allocs) {
        s->cap_allocs = s->cap_allocs ? 2 * s->cap_allocs : 256;
        s->allocs = vl_realloc(s->allocs, sizeof *s->allocs * (size_t)s->cap_allocs);
    }
    s->allocs[s->n_allocs++] = p;
    return p;
}

static struct cpu_linear lin(struct cpu_state *s, const struct vl_tensor *w,
                             const struct vl_tensor *b)
{
    struct cpu_linear l = {conv(s, w), b ? conv(s, b) : NULL, (int)w->shape[0], (int)w->shape[1]};
    return l;
}

static void state_free(struct cpu_state *s)
{
    if (!s)
        return;
    if (s->scratch) { /* NULL-terminated: one slot per pool thread, plus one */
        for (int i = 0; s->scratch[i]; i++)
            free(s->scratch[i]);
        free(s->scratch);
    }
    cpu_pool_free(s->pool);
    for (int i = 0; i < s->n_allocs; i++)
        free(s->allocs[i]);
    free(s->allocs);
    free(s->vb);
    free(s->ds);
    free(s->layers);
    free(s->ws);
    free(s);
}

void cpu_scratch_reserve(struct cpu_state *s, size_t n)
{
    if (n <= s->scratch_cap)
        return;
    for (int i = 0; i < cpu_pool_threads(s->pool); i++) {
        free(s->scratch[i]);
        s->scratch[i] = vl_malloc(sizeof(float) * n);
    }
    s->scratch_cap = n;
}

static float *ws_reserve(struct cpu_state *s, size_t floats)
{
    if (floats > s->ws_cap) {
        free(s->ws);
        s->ws = vl_malloc(sizeof(float) * floats);
        s->ws_cap = floats;
    }
    return s->ws;
}

/* ---- one batch ---- */

static int64_t item_patches(const struct vl_item *it)
{
    int64_t n = 0;
    for (int v = 0; v < it->n_visuals; v++)
        n += (int64_t)it->visuals[v].grid_t * it->visuals[v].grid_h * it->visuals[v].grid_w;
    return n;
}

/* Maps every pad token of each item to its row in the batch's merged vision output: image
 * pads take the item's images in order, video pads its videos (as masked_scatter does). */
static int map_visual_rows(const struct vl_item *items, int n, const int64_t *vis_base,
                           int64_t *vis_row, int32_t img_id, int32_t vid_id, char *err,
                           size_t errlen)
{
    int64_t t = 0;
    int vbase = 0;
    for (int i = 0; i < n; i++) {
        const struct vl_item *it = &items[i];
        int cursor[2] = {0, 0};
        int64_t used[2] = {0, 0};
        for (int32_t j = 0; j < it->n_ids; j++, t++) {
            int kind = it->ids[j] == img_id ? 0 : it->ids[j] == vid_id ? 1 : -1;
            vis_row[t] = -1;
            if (kind < 0)
                continue;
            for (;;) {
                int v = cursor[kind];
                if (v >= it->n_visuals) {
                    snprintf(err, errlen, "item %d: more %s pads than its grids hold", i,
                             kind ? "video" : "image");
                    return -1;
                }
                const struct vl_visual *vs = &it->visuals[v];
                int64_t m = (int64_t)vs->grid_t * vs->grid_h * vs->grid_w / 4;
                if ((int)vs->kind == kind && used[kind] < m) {
                    vis_row[t] = vis_base[vbase + v] + used[kind]++;
                    break;
                }
                cursor[kind]++;
                used[kind] = 0;
            }
        }
        vbase += it->n_visuals;
    }
    return 0;
}

static int run_batch(struct cpu_state *s, const struct vl_item *items, int n, float *out, char *err,
                     size_t errlen)
{
    const struct vl_model *m = s->m;
    int64_t T = 0, N = 0;
    int nv = 0;
    size_t max_seg = 1;
    for (int i = 0; i < n; i++) {
        T += items[i].n_ids;
        N += item_patches(&items[i]);
        nv += items[i].n_visuals;
        if ((size_t)items[i].n_ids > max_seg)
            max_seg = (size_t)items[i].n_ids;
        for (int v = 0; v < items[i].n_visuals; v++) {
            size_t seg = (size_t)items[i].visuals[v].grid_h * (size_t)items[i].visuals[v].grid_w;
            if (seg > max_seg)
                max_seg = seg;
        }
    }
    int32_t *pos = vl_malloc(sizeof(int32_t) * 3 * (size_t)T);
    int32_t *ipos = vl_malloc(sizeof(int32_t) * 3 * (size_t)T);
    int64_t *vis_row = vl_malloc(sizeof(int64_t) * (size_t)T);
    int64_t *vis_base = vl_malloc(sizeof(int64_t) * ((size_t)nv + 1));
    const struct vl_visual **vis = vl_malloc(sizeof *vis * ((size_t)nv + 1));
    int rc = -1;

    int64_t t0 = 0, merged = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const struct vl_item *it = &items[i];
        char e2[256];
        if (vl_positions_compute(it, m->cfg.image_token_id, m->cfg.video_token_id,
                                 m->cfg.vision.spatial_merge_size, ipos, e2, sizeof e2) != 0) {
            snprintf(err, errlen, "item %d: %s", i, e2);
            goto out;
        }
        for (int a = 0; a < 3; a++)
            memcpy(pos + (size_t)a * (size_t)T + (size_t)t0, ipos + (size_t)a * (size_t)it->n_ids,
                   sizeof(int32_t) * (size_t)it->n_ids);
        t0 += it->n_ids;
        for (int v = 0; v < it->n_visuals; v++, k++) {
            vis[k] = &it->visuals[v];
            vis_base[k] = merged;
            merged += (int64_t)vis[k]->grid_t * vis[k]->grid_h * vis[k]->grid_w / 4;
        }
    }
    if (map_visual_rows(items, n, vis_base, vis_row, m->cfg.image_token_id, m->cfg.video_token_id,
                        err, errlen) != 0)
        goto out;

    struct cpu_vis_batch vb = {vis, nv, N, merged};
    int H = m->cfg.text.hidden_size;
    size_t vis_out = (size_t)merged * (size_t)H * (1 + (size_t)m->cfg.vision.n_deepstack);
    struct cpu_text_batch tb = {items, n, T, pos, vis_row, NULL, NULL, merged};
    size_t vws = nv ? cpu_vision_ws_floats(s, &vb) : 0, tws = cpu_text_ws_floats(s, &tb);
    float *ws = ws_reserve(s, vis_out + (vws > tws ? vws : tws));
    cpu_scratch_reserve(s, max_seg);
    float *vmain = ws, *vds = ws + (size_t)merged * (size_t)H;
    float *work = ws + vis_out;
    if (nv) {
        cpu_vision_forward(s, &vb, work, vmain, vds);
        tb.vis_main = vmain;
        tb.vis_ds = vds;
    }
    cpu_text_forward(s, &tb, work, out);
    rc = 0;
out:
    free(pos);
    free(ipos);
    free(vis_row);
    free(vis_base);
    free(vis);
    return rc;
}

static int cpu_embed(struct vl_backend *b, const struct vl_item *items, int n, float *out,
                     char *err, size_t errlen)
{
    struct cpu_state *s = b->state;
    const struct vl_model *m = s->m;
    for (int i = 0; i < n; i++) {
        char e2[256];
        if (vl_item_validate(&items[i], m->cfg.image_token_id, m->cfg.video_token_id,
                             VL_MAX_SEQ_TOKENS, e2, sizeof e2) != 0) {
            snprintf(err, errlen, "item %d: %s", i, e2);
            return -1;
        }
        for (int32_t j = 0; j < items[i].n_ids; j++)
            if (items[i].ids[j] < 0 || items[i].ids[j] >= m->cfg.text.vocab_size) {
                snprintf(err, errlen, "item %d: token %d has id %d outside the vocabulary (%d)", i,
                         j, items[i].ids[j], m->cfg.text.vocab_size);
                return -1;
            }
    }
    int H = m->cfg.text.hidden_size;
    for (int i = 0; i < n;) {
        int64_t tok = items[i].n_ids, pat = item_patches(&items[i]);
        int j = i + 1;
        while (j < n && tok + items[j].n_ids <= s->max_tokens &&
               pat + item_patches(&items[j]) <= s->max_patches) {
            tok += items[j].n_ids;
            pat += item_patches(&items[j]);
            j++;
        }
        if (run_batch(s, items + i, j - i, out + (size_t)i * (size_t)H, err, errlen) != 0)
            return -1;
        i = j;
    }
    return 0;
}

static void cpu_destroy(struct vl_backend *b)
{
    state_free(b->state);
    b->state = NULL;
}

/* MemAvailable from /proc/meminfo in bytes, or 0 if unknown. */
static size_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (size_t)kb * 1024;
}

int vl_backend_cpu_create(const struct vl_model *m, const struct vl_backend_opts *o,
                          struct vl_backend *out, char *err, size_t errlen)
{
    const struct vl_vision_config *vc = &m->cfg.vision;
    const struct vl_text_config *tc = &m->cfg.text;
    if (vc->head_dim / 4 > 64 || tc->head_dim / 2 > 512 || tc->head_dim > 1024 ||
        vc->head_dim > 1024) {
        snprintf(err, errlen, "cpu backend: head_dim too large");
        return -1;
    }
    /* Every weight but embed_tokens becomes float32: refuse up front rather than be killed. */
    size_t need = 0;
    for (int i = 0; i < m->st.n_tensors; i++)
        if (m->st.tensors[i].data != m->embed_tokens.data &&
            strncmp(m->st.tensors[i].name, "lm_head.", 8) != 0)
            need += (size_t)m->st.tensors[i].numel * sizeof(float);
    size_t avail = mem_available();
    if (avail && need > avail) {
        snprintf(err, errlen,
                 "cpu backend: the float32 weights need %.1f GB but only %.1f GB of "
                 "memory is available",
                 need / 1e9, avail / 1e9);
        return -1;
    }
    struct cpu_state *s = vl_calloc(1, sizeof *s);
    s->m = m;
    int threads = o && o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    if (threads > 256)
        threads = 256;
    s->pool = cpu_pool_create(threads);
    s->scratch = vl_calloc((size_t)cpu_pool_threads(s->pool) + 1, sizeof *s->scratch);
    s->max_tokens = o && o->max_batch_tokens > 0 ? o->max_batch_tokens : CPU_DEFAULT_BATCH_TOKENS;
    s->max_patches =
        o && o->max_batch_patches > 0 ? o->max_batch_patches : CPU_DEFAULT_BATCH_PATCHES;

    s->patch = lin(s, &m->patch_embed_w, &m->patch_embed_b);
    s->pos_embed = conv(s, &m->pos_embed);
    s->vb = vl_calloc((size_t)vc->depth, sizeof *s->vb);
    for (int i = 0; i < vc->depth; i++) {
        const struct vl_vision_block *mb = &m->blocks[i];
        struct cpu_vblock *b = &s->vb[i];
        b->n1w = conv(s, &mb->norm1_w);
        b->n1b = conv(s, &mb->norm1_b);
        b->n2w = conv(s, &mb->norm2_w);
        b->n2b = conv(s, &mb->norm2_b);
        b->qkv = lin(s, &mb->qkv_w, &mb->qkv_b);
        b->proj = lin(s, &mb->proj_w, &mb->proj_b);
        b->fc1 = lin(s, &mb->fc1_w, &mb->fc1_b);
        b->fc2 = lin(s, &mb->fc2_w, &mb->fc2_b);
    }
    const struct vl_merger *mgs[VL_MAX_DEEPSTACK + 1];
    struct cpu_merger *dst[VL_MAX_DEEPSTACK + 1];
    s->ds = vl_calloc((size_t)vc->n_deepstack + 1, sizeof *s->ds);
    mgs[0] = &m->merger;
    dst[0] = &s->merger;
    for (int k = 0; k < vc->n_deepstack; k++) {
        mgs[k + 1] = &m->deepstack_mergers[k];
        dst[k + 1] = &s->ds[k];
    }
    for (int k = 0; k <= vc->n_deepstack; k++) {
        dst[k]->nw = conv(s, &mgs[k]->norm_w);
        dst[k]->nb = conv(s, &mgs[k]->norm_b);
        dst[k]->norm_dim = (int)mgs[k]->norm_w.shape[0];
        dst[k]->fc1 = lin(s, &mgs[k]->fc1_w, &mgs[k]->fc1_b);
        dst[k]->fc2 = lin(s, &mgs[k]->fc2_w, &mgs[k]->fc2_b);
    }
    s->layers = vl_calloc((size_t)tc->num_hidden_layers, sizeof *s->layers);
    for (int l = 0; l < tc->num_hidden_layers; l++) {
        const struct vl_text_layer *ml = &m->layers[l];
        struct cpu_layer *y = &s->layers[l];
        y->in_w = conv(s, &ml->input_norm_w);
        y->post_w = conv(s, &ml->post_norm_w);
        y->qn_w = conv(s, &ml->q_norm_w);
        y->kn_w = conv(s, &ml->k_norm_w);
        y->q = lin(s, &ml->q_w, ml->q_b.data ? &ml->q_b : NULL);
        y->k = lin(s, &ml->k_w, ml->k_b.data ? &ml->k_b : NULL);
        y->v = lin(s, &ml->v_w, ml->v_b.data ? &ml->v_b : NULL);
        y->o = lin(s, &ml->o_w, NULL);
        y->gate = lin(s, &ml->gate_w, NULL);
        y->up = lin(s, &ml->up_w, NULL);
        y->down = lin(s, &ml->down_w, NULL);
    }
    s->norm_w = conv(s, &m->norm_w);

    /* rotary inverse frequencies, in float32 as the reference computes them */
    int d = vc->head_dim / 2;
    for (int j = 0; j < d / 2; j++)
        s->vis_inv_freq[j] = 1.0f / powf(vc->rope_theta, (float)(2 * j) / (float)d);
    for (int i = 0; i < tc->head_dim / 2; i++)
        s->txt_inv_freq[i] =
            1.0f / powf((float)tc->rope_theta, (float)(2 * i) / (float)tc->head_dim);

    out->name = "cpu";
    out->state = s;
    out->embed = cpu_embed;
    out->destroy = cpu_destroy;
    vl_info("cpu backend: %d threads, batch budget %lld tokens / %lld patches",
            cpu_pool_threads(s->pool), (long long)s->max_tokens, (long long)s->max_patches);
    return 0;
}
