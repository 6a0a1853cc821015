/* A fixed pool of pthreads that runs a set of independent tasks (see cpu.h). One job at a
 * time: the caller publishes (fn, arg, n_tasks), wakes the workers, takes tasks itself, and
 * waits until every worker has finished the job. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/alloc.h"
#include "common/log.h"
#include "worker/cpu.h"

struct cpu_pool {
    int n;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    cpu_task_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next;
    int busy;     /* workers still in the current job */
    unsigned gen; /* job generation */
    int stop;
};

struct worker_arg {
    struct cpu_pool *p;
    int id;
};

static void take_tasks(struct cpu_pool *p, int id)
{
    int t;
    while ((t = atomic_fetch_add(&p->next, 1)) < p->n_tasks)
        p->fn(p->arg, t, id);
}

static void *worker_main(void *v)
{
    struct worker_arg *wa = v;
    struct cpu_pool *p = wa->p;
    int id = wa->id;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        take_tasks(p, id);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0)
            pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
}

struct cpu_pool *cpu_pool_create(int n)
{
    struct cpu_pool *p = vl_calloc(1, sizeof *p);
    p->n = n < 1 ? 1 : n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->th = vl_calloc((size_t)p->n, sizeof *p->th);
    for (int i = 1; i < p->n; i++) {
        struct worker_arg *wa = vl_malloc(sizeof *wa);
        *wa = (struct worker_arg){p, i};
        int rc = pthread_create(&p->th[i], NULL, worker_main, wa);
        if (rc != 0) {
            /* fewer threads is still correct: run with what started */
            vl_warn("pthread_create() failed for CPU worker thread %d; using %d threads", i, i);
            free(wa);
            p->n = i;
            break;
        }
    }
    return p;
}

int cpu_pool_threads(const struct cpu_pool *p)
{
    return p->n;
}

void cpu_pool_run(struct cpu_pool *p, cpu_task_fn fn, void *arg, int n_tasks)
{
    if (n_tasks <= 0)
        return;
    if (p->n == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->busy = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    take_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void cpu_pool_free(struct cpu_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p->th);
    free(p);
}
