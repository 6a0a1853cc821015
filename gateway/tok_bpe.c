/* Byte-level BPE on one pre-tokenized piece: start from one symbol per byte and repeatedly merge
 * the adjacent pair of lowest merge rank (leftmost on ties), as HF `tokenizers`' BPE does with
 * its (rank, position) priority queue. Short pieces use a linear scan over cached pair ranks;
 * long ones a binary heap, so a megabyte without a break costs O(n log n), not O(n^2). */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "gateway/tok_internal.h"

#define BPE_SCAN_MAX 64

static void bpe_scan(const struct tok *t, const uint8_t *s, size_t n, struct tok_ivec *out)
{
    int32_t id[BPE_SCAN_MAX], mg[BPE_SCAN_MAX];
    uint32_t rk[BPE_SCAN_MAX];
    size_t m = n;
    for (size_t i = 0; i < n; i++)
        id[i] = t->byte_id[s[i]];
    for (size_t i = 0; i + 1 < m; i++)
        if (!tok_merge_find(&t->merges, id[i], id[i + 1], &rk[i], &mg[i]))
            rk[i] = UINT32_MAX;
    while (m > 1) {
        size_t best = 0;
        uint32_t br = rk[0];
        for (size_t i = 1; i + 1 < m; i++)
            if (rk[i] < br)
                br = rk[i], best = i;
        if (br == UINT32_MAX)
            break;
        id[best] = mg[best];
        size_t tail = m - best - 2; /* elements after best+1 */
        memmove(id + best + 1, id + best + 2, tail * sizeof *id);
        memmove(rk + best + 1, rk + best + 2, (tail ? tail - 1 : 0) * sizeof *rk);
        memmove(mg + best + 1, mg + best + 2, (tail ? tail - 1 : 0) * sizeof *mg);
        m--;
        if (best > 0 &&
            !tok_merge_find(&t->merges, id[best - 1], id[best], &rk[best - 1], &mg[best - 1]))
            rk[best - 1] = UINT32_MAX;
        if (best + 1 < m &&
            !tok_merge_find(&t->merges, id[best], id[best + 1], &rk[best], &mg[best]))
            rk[best] = UINT32_MAX;
    }
    for (size_t i = 0; i < m; i++)
        tok_ivec_push(out, id[i]);
}

struct bpe_sym {
    int32_t id, prev, next; /* prev/next: -1 at the ends; id -1 once merged away */
};

struct bpe_cand {
    uint32_t rank;
    int32_t pos;         /* left symbol */
    int32_t left, right; /* ids the pair had when queued (stale entries fail this check) */
    int32_t merged;
};

static int cand_less(const struct bpe_cand *a, const struct bpe_cand *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct bpe_cand *h, size_t *n, struct bpe_cand c)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static struct bpe_cand heap_pop(struct bpe_cand *h, size_t *n)
{
    struct bpe_cand top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct bpe_cand *best = &last;
        if (l < *n && cand_less(&h[l], best))
            m = l, best = &h[l];
        if (r < *n && cand_less(&h[r], best))
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n)
        h[i] = last;
    return top;
}

static void try_queue(const struct tok *t, struct bpe_sym *sym, int32_t pos, struct bpe_cand *h,
                      size_t *nh)
{
    if (pos < 0 || sym[pos].next < 0)
        return;
    struct bpe_cand c = {.pos = pos, .left = sym[pos].id, .right = sym[sym[pos].next].id};
    if (tok_merge_find(&t->merges, c.left, c.right, &c.rank, &c.merged))
        heap_push(h, nh, c);
}

static void bpe_heap(const struct tok *t, const uint8_t *s, size_t n, struct tok_ivec *out)
{
    struct bpe_sym *sym = vl_malloc(n * sizeof *sym);
    /* each merge queues at most two new pairs: n - 1 + 2 (n - 1) entries at most */
    struct bpe_cand *h = vl_malloc(3 * n * sizeof *h);
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i].id = t->byte_id[s[i]];
        sym[i].prev = (int32_t)i - 1;
        sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++)
        try_queue(t, sym, (int32_t)i, h, &nh);
    while (nh) {
        struct bpe_cand c = heap_pop(h, &nh);
        struct bpe_sym *a = &sym[c.pos];
        if (a->id != c.left || a->next < 0 || sym[a->next].id != c.right)
            continue;
        struct bpe_sym *b = &sym[a->next];
        a->id = c.merged;
        a->next = b->next;
        if (b->next >= 0)
            sym[b->next].prev = c.pos;
        b->id = -1;
        try_queue(t, sym, a->prev, h, &nh);
        try_queue(t, sym, c.pos, h, &nh);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        tok_ivec_push(out, sym[i].id);
    free(sym);
    free(h);
}

void tok_bpe_piece(const struct tok *t, const uint8_t *s, size_t n, struct tok_ivec *out)
{
    if (n == 0)
        return;
    if (n == 1)
        tok_ivec_push(out, t->byte_id[s[0]]);
    else if (n <= BPE_SCAN_MAX)
        bpe_scan(t, s, n, out);
    else
        bpe_heap(t, s, n, out);
}
