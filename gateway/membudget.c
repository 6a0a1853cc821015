/* The process-wide buffered-bytes budget (see membudget.h). */
#include "gateway/membudget.h"

#include <errno.h>

void mem_budget_init(struct mem_budget *b, int64_t limit)
{
    b->limit = limit > 0 ? limit : 0;
    atomic_init(&b->used, 0);
    atomic_init(&b->peak, 0);
    atomic_init(&b->released, 0);
    for (int i = 0; i < MEMB_N; i++)
        atomic_init(&b->refused[i], 0);
}

int mem_budget_charge(struct mem_budget *b, int64_t n, enum mem_budget_what what)
{
    if (!b || n <= 0)
        return 0;
    int64_t cur = atomic_load(&b->used);
    for (;;) {
        if (b->limit && (n > b->limit || cur > b->limit - n)) {
            atomic_fetch_add(&b->refused[what], 1);
            return -EBUSY;
        }
        if (atomic_compare_exchange_weak(&b->used, &cur, cur + n))
            break;
    }
    int64_t now = cur + n, pk = atomic_load(&b->peak);
    while (now > pk && !atomic_compare_exchange_weak(&b->peak, &pk, now))
        ;
    return 0;
}

void mem_budget_charge_always(struct mem_budget *b, int64_t n)
{
    if (!b || n <= 0)
        return;
    int64_t now = atomic_fetch_add(&b->used, n) + n, pk = atomic_load(&b->peak);
    while (now > pk && !atomic_compare_exchange_weak(&b->peak, &pk, now))
        ;
}

void mem_budget_release(struct mem_budget *b, int64_t n)
{
    if (!b || n <= 0)
        return;
    atomic_fetch_sub(&b->used, n);
    atomic_fetch_add(&b->released, (uint64_t)n);
}

uint64_t mem_budget_released(const struct mem_budget *b)
{
    return b ? atomic_load(&((struct mem_budget *)b)->released) : 0;
}

int64_t mem_budget_used(const struct mem_budget *b)
{
    return b ? atomic_load(&((struct mem_budget *)b)->used) : 0;
}

uint64_t mem_budget_refused(const struct mem_budget *b, enum mem_budget_what what)
{
    return b ? atomic_load(&((struct mem_budget *)b)->refused[what]) : 0;
}

const char *mem_budget_what_name(enum mem_budget_what what)
{
    static const char *const names[MEMB_N] = {"http_body", "fetch", "source", "msgpack_frame"};
    return what >= 0 && what < MEMB_N ? names[what] : "unknown";
}
