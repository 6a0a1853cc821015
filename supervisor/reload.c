/* Reload without downtime: every worker is replaced by a successor on the same device, one
 * device at a time, and the old one is retired only after the new one is serving.
 *
 * Per device (phase):
 *   SPAWN       start the successor (same device, same pinning) from the re-read config;
 *   WAIT_READY  until it reports `ready` (the gateway is told at once and routes to both);
 *               if it exits or hangs first, the reload fails here: the old worker never
 *               stopped serving, the successor is discarded, and every waiter gets the error;
 *   WAIT_OLD    the old worker is DRAINING (the gateway sends it nothing new, reports
 *               `drained` when its last item is answered, or drain-timeout-s passes), then
 *               gets SIGTERM, finishes, exits; then the next device.
 * systemd hears RELOADING=1 at the start and READY=1 at the end (sd_notify(3)); vlembedctl
 * reload (the unit's ExecReload=) returns when the roll has ended, non-zero if it failed.
 *
 * A reload also sends SIGHUP to a ready gateway, which re-reads its --api-keys-file
 * (docs/security.md); nothing else of the gateway changes without a gateway restart.
 *
 * What a reload re-reads: the config file and flags, as at start. model, worker-bin,
 * worker-args, the timeouts, the backoff keys and log-level take effect; keys that need new
 * sockets or a different set of devices only at the next start (a warning says so). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "supervisor/sv.h"

static void finish(struct sv *s, int ok)
{
    double secs = sv_now() - s->rl.t_start;
    if (ok) {
        s->rl.count_ok++;
        vl_info("reload done: %d worker%s replaced in %.2f s", s->n_slots,
                s->n_slots == 1 ? "" : "s", secs);
    } else {
        s->rl.count_failed++;
        vl_error("reload failed after %.2f s: %s", secs, s->rl.error);
    }
    for (int i = 0; i < s->rl.n_waiters; i++)
        sv_control_reply_reload(s, s->rl.waiters[i], ok, s->rl.error, secs);
    s->rl.n_waiters = 0;
    s->rl.phase = SV_RL_IDLE;
    s->rl.succ_id = s->rl.old_id = 0;
    s->rl.succ_status = -1;
    if (s->ready_sent && !s->stopping)
        sv_notify_send(&s->notify, "READY=1\nSTATUS=%s after %.1f s%s%s",
                       ok ? "reloaded" : "reload failed", secs, ok ? "" : ": ",
                       ok ? "" : s->rl.error);
    s->last_status[0] = 0; /* the next sv_update_status sends the steady-state line again */
}

static void fail(struct sv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sv *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->rl.error, sizeof s->rl.error, fmt, ap);
    va_end(ap);
    struct sv_proc *p = sv_proc_by_id(s, s->rl.succ_id);
    if (p) {
        p->retire = 1;
        sv_proc_event(s, p, SV_EV_STOP);
    }
    finish(s, 0);
}

static int str_changed(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

static void take_str(char **dst, char **src)
{
    free(*dst);
    *dst = *src;
    *src = NULL;
}

/* Re-reads the configuration; applies what a reload may change. Returns 0 or -1 (error set). */
static int reread_config(struct sv *s)
{
    struct sv_opts n;
    char err[512];
    int rc = sv_opts_load(&n, s->argc, s->argv, err, sizeof err);
    if (rc != 0) {
        snprintf(s->rl.error, sizeof s->rl.error, "config: %.400s", rc == 1 ? "--help given" : err);
        sv_opts_free(&n);
        return -1;
    }
    if (n.worker_bin && access(n.worker_bin, X_OK) < 0) {
        snprintf(s->rl.error, sizeof s->rl.error, "worker-bin: \"%.400s\" is not executable",
                 n.worker_bin);
        sv_opts_free(&n);
        return -1;
    }
    struct {
        const char *key;
        int changed;
    } fixed[] = {
        {"backend", str_changed(n.backend, s->opts.backend)},
        {"workers", n.workers != s->opts.workers},
        {"devices", str_changed(n.devices, s->opts.devices)},
        {"http", str_changed(n.http, s->opts.http)},
        {"api-socket", str_changed(n.api_socket, s->opts.api_socket)},
        {"runtime-dir", str_changed(n.runtime_dir, s->opts.runtime_dir)},
        {"listen-backlog", n.listen_backlog != s->opts.listen_backlog},
        {"gateway-bin", str_changed(n.gateway_bin, s->opts.gateway_bin)},
        {"gateway-args", str_changed(n.gateway_args, s->opts.gateway_args)},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (fixed[i].changed)
            vl_warn("reload: %s changed; it takes effect at the next start, not now", fixed[i].key);
    if (str_changed(n.model, s->opts.model))
        vl_info("reload: model %s -> %s", s->opts.model, n.model);
    take_str(&s->opts.model, &n.model);
    if (n.worker_bin) {
        snprintf(s->worker_bin, sizeof s->worker_bin, "%s", n.worker_bin);
        take_str(&s->opts.worker_bin, &n.worker_bin);
    }
    take_str(&s->opts.worker_args, &n.worker_args);
    take_str(&s->opts.log_level, &n.log_level);
    int ok;
    vl_log_set_level(vl_log_level_parse(s->opts.log_level, &ok));
    s->opts.heartbeat_timeout_s = n.heartbeat_timeout_s;
    s->opts.start_timeout_s = n.start_timeout_s;
    s->opts.drain_timeout_s = n.drain_timeout_s;
    s->opts.stop_timeout_s = n.stop_timeout_s;
    s->opts.restart_delay_min_s = n.restart_delay_min_s;
    s->opts.restart_delay_max_s = n.restart_delay_max_s;
    s->opts.healthy_after_s = n.healthy_after_s;
    s->opts.max_permanent_failures = n.max_permanent_failures;
    sv_opts_free(&n);
    return 0;
}

static void start(struct sv *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s->rl.t_start = sv_now();
    s->rl.error[0] = 0;
    s->rl.slot = 0;
    s->rl.succ_id = s->rl.old_id = 0;
    s->rl.succ_status = -1;
    s->rl.phase = SV_RL_SPAWN;
    vl_info("reload: replacing %d worker%s one at a time", s->n_slots, s->n_slots == 1 ? "" : "s");
    sv_notify_send(&s->notify, "RELOADING=1\nMONOTONIC_USEC=%lld\nSTATUS=reloading",
                   (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000);
    if (reread_config(s) < 0)
        finish(s, 0);
}

/* The gateway re-reads its API keys on SIGHUP. Only a ready one: before it has installed its
 * handler, SIGHUP's default action would kill it. A gateway still starting reads the file anyway.
 */
static void signal_gateway(struct sv *s)
{
    if (s->gw.cur < 0)
        return;
    struct sv_proc *g = &s->procs[s->gw.cur];
    if (!g->used || g->pid <= 0 || g->state != SV_READY)
        return;
    if (kill(g->pid, SIGHUP) == 0)
        vl_info("reload: SIGHUP to gateway %d (pid %d): it re-reads its API keys", g->id,
                (int)g->pid);
    else
        vl_warn("reload: SIGHUP to gateway %d (pid %d) failed", g->id, (int)g->pid);
}

void sv_reload_request(struct sv *s, int conn)
{
    if (s->stopping) {
        if (conn >= 0)
            sv_control_reply_reload(s, conn, 0, "the supervisor is stopping", 0);
        return;
    }
    signal_gateway(s);
    if (s->rl.phase != SV_RL_IDLE) {
        /* A reload asked for during another must see the config as it is now: run it after. */
        s->rl.pending = 1;
        if (conn >= 0 && s->rl.n_pending_waiters < SV_MAX_CTL_CONNS)
            s->rl.pending_waiters[s->rl.n_pending_waiters++] = conn;
        vl_info("reload requested during a reload: it runs when this one ends");
        return;
    }
    s->rl.n_waiters = 0;
    if (conn >= 0)
        s->rl.waiters[s->rl.n_waiters++] = conn;
    start(s);
}

/* The successor is ready: it becomes the slot's worker, the old one drains. */
static void promote(struct sv *s, struct sv_proc *p)
{
    struct sv_slot *sl = &s->slots[p->slot];
    struct sv_proc *old = sl->cur >= 0 ? &s->procs[sl->cur] : NULL;
    sl->cur = sv_proc_index(s, p);
    p->successor = 0;
    sv_backoff_reset(&sl->bo);
    sl->restart_at = 0;
    s->rl.old_id = 0;
    if (old) {
        old->retire = 1;
        s->rl.old_id = old->id;
        vl_info("reload: %s: worker %d ready; worker %d drains", sl->device, p->id, old->id);
        sv_proc_event(s, old, SV_EV_DRAIN);
        if (s->gw.cur < 0 && old->state == SV_DRAINING) /* no gateway: nothing is in flight */
            sv_proc_event(s, old, SV_EV_DRAINED);
    } else {
        vl_info("reload: %s: worker %d ready (the device had no serving worker)", sl->device,
                p->id);
    }
}

void sv_reload_advance(struct sv *s)
{
    for (;;) {
        if (s->rl.phase == SV_RL_IDLE) {
            if (!s->rl.pending || s->stopping)
                return;
            s->rl.pending = 0;
            memcpy(s->rl.waiters, s->rl.pending_waiters, sizeof s->rl.waiters);
            s->rl.n_waiters = s->rl.n_pending_waiters;
            s->rl.n_pending_waiters = 0;
            start(s);
            continue;
        }
        if (s->stopping) {
            fail(s, "the supervisor is stopping");
            for (int i = 0; i < s->rl.n_pending_waiters; i++)
                sv_control_reply_reload(s, s->rl.pending_waiters[i], 0,
                                        "the supervisor is stopping", 0);
            s->rl.n_pending_waiters = 0;
            s->rl.pending = 0;
            return;
        }
        if (s->rl.phase == SV_RL_SPAWN) {
            if (s->rl.slot >= s->n_slots) {
                finish(s, 1);
                continue;
            }
            struct sv_proc *p = sv_spawn_worker(s, s->rl.slot, 1);
            if (!p) {
                fail(s, "%s: could not start a new worker", s->slots[s->rl.slot].device);
                continue;
            }
            s->rl.succ_id = p->id;
            s->rl.succ_status = -1;
            s->rl.phase = SV_RL_WAIT_READY;
            return;
        }
        if (s->rl.phase == SV_RL_WAIT_READY) {
            struct sv_proc *p = sv_proc_by_id(s, s->rl.succ_id);
            if (!p) {
                char how[128] = "ended";
                if (s->rl.succ_status != -1)
                    sv_exit_describe(s->rl.succ_status, how, sizeof how);
                fail(s,
                     "%s: the new worker exited before it was ready (%s); the old worker "
                     "keeps serving",
                     s->slots[s->rl.slot].device, how);
                continue;
            }
            if (p->state != SV_READY)
                return;
            promote(s, p);
            s->rl.phase = SV_RL_WAIT_OLD;
            continue;
        }
        /* SV_RL_WAIT_OLD */
        if (s->rl.old_id && sv_proc_by_id(s, s->rl.old_id))
            return;
        s->rl.slot++;
        s->rl.phase = SV_RL_SPAWN;
    }
}

void sv_reload_on_exit(struct sv *s, struct sv_proc *p, int wstatus)
{
    if (s->rl.phase != SV_RL_IDLE && p->id == s->rl.succ_id && p->successor)
        s->rl.succ_status = wstatus;
}

static void drop(int *list, int *n, int conn)
{
    for (int i = 0; i < *n; i++)
        if (list[i] == conn)
            list[i--] = list[--*n];
}

void sv_reload_forget_conn(struct sv *s, int conn)
{
    drop(s->rl.waiters, &s->rl.n_waiters, conn);
    drop(s->rl.pending_waiters, &s->rl.n_pending_waiters, conn);
}
