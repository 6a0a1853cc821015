/* The supervisor's event loop and its children (see super.h, sv.h).
 *
 * One thread, one poll(2) loop over: a signalfd (SIGCHLD, SIGTERM, SIGINT, SIGHUP), the
 * control socket and its connections, and each child's control channel. Every child's life is
 * driven through fsm.c's table (sv_proc_event); what happens after a death is backoff.c's
 * policy; reloads are reload.c's. Timers are deadlines checked after every wake-up. */
#include "supervisor/super.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/exitcode.h"
#include "common/log.h"
#include "supervisor/gpu.h"
#include "supervisor/spawn.h"
#include "supervisor/sv.h"

#define SV_MAX_EXTRA_ARGS 32

double sv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct sv_proc *sv_proc_by_id(struct sv *s, int id)
{
    for (int i = 0; i < SV_MAX_PROCS; i++)
        if (s->procs[i].used && s->procs[i].id == id)
            return &s->procs[i];
    return NULL;
}

int sv_proc_index(struct sv *s, const struct sv_proc *p)
{
    return (int)(p - s->procs);
}

static const char *proc_role(const struct sv_proc *p)
{
    return p->kind == SV_GATEWAY ? "gateway" : "worker";
}

static const char *proc_device(struct sv *s, const struct sv_proc *p)
{
    return p->kind == SV_GATEWAY ? "its sockets" : s->slots[p->slot].device;
}

/* ---- spawning ---- */

/* Splits a space-separated flag string into argv[*n...]; returns -1 if too many. */
static int split_args(char *buf, char **argv, int *n, int max)
{
    for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (*n >= max)
            return -1;
        argv[(*n)++] = t;
    }
    return 0;
}

static struct sv_proc *proc_alloc(struct sv *s)
{
    for (int i = 0; i < SV_MAX_PROCS; i++)
        if (!s->procs[i].used) {
            struct sv_proc *p = &s->procs[i];
            memset(p, 0, sizeof *p);
            p->used = 1;
            p->chan.fd = -1;
            p->id = ++s->next_id;
            return p;
        }
    return NULL;
}

/* Starts one child with its control channel on fd 3. Fills p->pid, or returns -1. */
static int start_child(struct sv *s, struct sv_proc *p, char **argv, const int *fds, int n_fds,
                       const char *env)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
        vl_error("socketpair() failed while spawning %s: %s", proc_role(p), strerror(errno));
        return -1;
    }
    struct sv_spawn sp_args = {.path = argv[0], .argv = argv};
    sp_args.fds[sp_args.n_fds++] = sp[1];
    for (int i = 0; i < n_fds; i++)
        sp_args.fds[sp_args.n_fds++] = fds[i];
    if (env)
        sp_args.env[sp_args.n_env++] = env;
    char err[512];
    pid_t pid = sv_spawn_run(&sp_args, err, sizeof err);
    close(sp[1]);
    if (pid < 0) {
        vl_error("%s", err);
        close(sp[0]);
        return -1;
    }
    setpgid(pid, pid); /* also done in the child; whichever runs first wins the race */
    p->pid = pid;
    p->state = SV_STARTING;
    p->t_spawn = sv_now();
    sv_chan_init(&p->chan, sp[0], SV_CHILD_FRAME_MAX, SV_CHILD_FRAME_MAX);
    return 0;
}

struct sv_proc *sv_spawn_worker(struct sv *s, int slot, int successor)
{
    struct sv_slot *sl = &s->slots[slot];
    struct sv_proc *p = proc_alloc(s);
    if (!p) {
        vl_error("no free process entry while spawning a worker for %s", sl->device);
        return NULL;
    }
    p->kind = SV_WORKER;
    p->slot = slot;
    p->successor = successor;
    snprintf(p->socket, sizeof p->socket, "%s/worker-%d.sock", s->runtime_dir, p->id);
    unlink(p->socket); /* a leftover of an earlier run with the same id */

    char extra[4096];
    snprintf(extra, sizeof extra, "%s", s->opts.worker_args ? s->opts.worker_args : "");
    char *argv[16 + SV_MAX_EXTRA_ARGS];
    int n = 0;
    argv[n++] = s->worker_bin;
    argv[n++] = "--model";
    argv[n++] = s->opts.model;
    argv[n++] = "--backend";
    argv[n++] = s->opts.backend;
    argv[n++] = "--socket";
    argv[n++] = p->socket;
    argv[n++] = "--control-fd";
    argv[n++] = "3";
    if (split_args(extra, argv, &n, 15 + SV_MAX_EXTRA_ARGS) < 0)
        vl_warn("worker-args: more than %d words; the rest are dropped", SV_MAX_EXTRA_ARGS);
    argv[n] = NULL;

    char env[160];
    snprintf(env, sizeof env, "CUDA_VISIBLE_DEVICES=%s", sl->uuid);
    if (start_child(s, p, argv, NULL, 0, env) < 0) {
        p->used = 0;
        return NULL;
    }
    if (!successor)
        sl->cur = sv_proc_index(s, p);
    vl_info("worker %d started on %s%s%s (pid %d)%s", p->id, sl->device, sl->uuid[0] ? " " : "",
            sl->uuid, (int)p->pid, successor ? " as a reload successor" : "");
    return p;
}

static struct sv_proc *spawn_gateway(struct sv *s)
{
    struct sv_proc *p = proc_alloc(s);
    if (!p)
        return NULL;
    p->kind = SV_GATEWAY;
    p->slot = -1;
    char extra[4096];
    snprintf(extra, sizeof extra, "%s", s->opts.gateway_args ? s->opts.gateway_args : "");
    char *argv[16 + SV_MAX_EXTRA_ARGS], fdbuf[2][8];
    int fds[2], n_fds = 0, n = 0;
    argv[n++] = s->gateway_bin;
    argv[n++] = "--control-fd";
    argv[n++] = "3";
    if (s->lis.http_fd >= 0) {
        fds[n_fds] = s->lis.http_fd;
        snprintf(fdbuf[n_fds], sizeof fdbuf[n_fds], "%d", 3 + 1 + n_fds);
        argv[n++] = "--http-fd";
        argv[n++] = fdbuf[n_fds++];
    }
    if (s->lis.api_fd >= 0) {
        fds[n_fds] = s->lis.api_fd;
        snprintf(fdbuf[n_fds], sizeof fdbuf[n_fds], "%d", 3 + 1 + n_fds);
        argv[n++] = "--api-fd";
        argv[n++] = fdbuf[n_fds++];
    }
    argv[n++] = "--model";
    argv[n++] = s->opts.model;
    if (split_args(extra, argv, &n, 15 + SV_MAX_EXTRA_ARGS) < 0)
        vl_warn("gateway-args: more than %d words; the rest are dropped", SV_MAX_EXTRA_ARGS);
    argv[n] = NULL;
    if (start_child(s, p, argv, fds, n_fds, NULL) < 0) {
        p->used = 0;
        return NULL;
    }
    s->gw.cur = sv_proc_index(s, p);
    vl_info("gateway %d started (pid %d)", p->id, (int)p->pid);
    sv_publish(s); /* queued in the socketpair until the gateway reads it */
    return p;
}

/* ---- telling the gateway ---- */

void sv_publish(struct sv *s)
{
    if (s->gw.cur < 0)
        return;
    struct sv_proc *g = &s->procs[s->gw.cur];
    if (g->chan.fd < 0)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int n = 0;
    for (int i = 0; i < SV_MAX_PROCS; i++)
        n += s->procs[i].used && s->procs[i].kind == SV_WORKER && s->procs[i].state != SV_DEAD;
    msgpack_pack_map(&pk, 2);
    vl_mp_pack_kv_str(&pk, "type", "workers");
    vl_mp_pack_cstr(&pk, "workers");
    msgpack_pack_array(&pk, (size_t)n);
    for (int i = 0; i < SV_MAX_PROCS; i++) {
        struct sv_proc *p = &s->procs[i];
        if (!p->used || p->kind != SV_WORKER || p->state == SV_DEAD)
            continue;
        msgpack_pack_map(&pk, 5);
        vl_mp_pack_kv_int(&pk, "id", p->id);
        vl_mp_pack_kv_str(&pk, "socket", p->socket);
        vl_mp_pack_kv_str(&pk, "state", sv_state_name(p->state));
        vl_mp_pack_kv_str(&pk, "device", s->slots[p->slot].device);
        vl_mp_pack_kv_int(&pk, "pid", p->pid);
    }
    int rc = sv_chan_send_sbuf(&g->chan, &sb);
    if (rc < 0)
        vl_warn("sending the worker set to gateway %d failed: %s", g->id, strerror(-rc));
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the state table, applied ---- */

static void signal_proc(struct sv_proc *p, int sig, int group)
{
    if (p->pid > 0 && kill(group ? -p->pid : p->pid, sig) < 0 && errno != ESRCH)
        vl_warn("kill(%d, %s) failed: %s", (int)p->pid, strsignal(sig), strerror(errno));
}

static void reap(struct sv *s, struct sv_proc *p, int wstatus);

void sv_proc_event(struct sv *s, struct sv_proc *p, enum sv_event ev)
{
    struct sv_transition t = sv_fsm_step(p->state, ev);
    enum sv_state old = p->state;
    double now = sv_now();
    p->state = t.next;
    if (t.next != old)
        vl_debug("%s %d: %s --%s--> %s (%s)", proc_role(p), p->id, sv_state_name(old),
                 sv_event_name(ev), sv_state_name(t.next), sv_action_name(t.action));
    switch (t.action) {
    case SV_ACT_NONE:
        break;
    case SV_ACT_IGNORE:
        vl_debug("%s %d: event %s ignored in state %s", proc_role(p), p->id, sv_event_name(ev),
                 sv_state_name(old));
        break;
    case SV_ACT_PUBLISH:
        if (t.next == SV_READY) {
            p->t_ready = p->t_last_hb = now;
            vl_info("%s %d on %s ready after %.2f s", proc_role(p), p->id, proc_device(s, p),
                    now - p->t_spawn);
        }
        if (t.next == SV_DRAINING)
            p->t_deadline = now + s->opts.drain_timeout_s;
        if (p->kind == SV_WORKER)
            sv_publish(s);
        break;
    case SV_ACT_TERM:
        signal_proc(p, SIGTERM, 0);
        p->t_deadline = now + s->opts.stop_timeout_s;
        if (p->kind == SV_WORKER)
            sv_publish(s);
        break;
    case SV_ACT_ABORT:
        vl_error("%s %d on %s (pid %d) sent no heartbeat for %.1f s: hung; sending SIGABRT",
                 proc_role(p), p->id, proc_device(s, p), (int)p->pid, now - p->t_last_hb);
        signal_proc(p, SIGABRT, 0);
        signal_proc(p, SIGCONT, 0); /* a stopped process acts on SIGABRT only once continued */
        p->t_deadline = now + SV_ABORT_GRACE_S;
        if (p->kind == SV_WORKER)
            sv_publish(s);
        break;
    case SV_ACT_KILL:
        vl_warn("%s %d on %s (pid %d): %s; sending SIGKILL", proc_role(p), p->id, proc_device(s, p),
                (int)p->pid,
                old == SV_STARTING ? "not ready within start-timeout-s" : "did not exit in time");
        signal_proc(p, SIGKILL, 1);
        p->t_deadline = now + s->opts.stop_timeout_s;
        if (p->kind == SV_WORKER && old == SV_STARTING)
            sv_publish(s);
        break;
    case SV_ACT_REAP:
        break; /* sv_proc_exited() does the work: it has the exit status */
    }
}

/* ---- deaths and restarts ---- */

static void begin_stop(struct sv *s, int code, const char *why);

static int all_slots_failed(struct sv *s)
{
    for (int i = 0; i < s->n_slots; i++)
        if (!s->slots[i].bo.failed)
            return 0;
    return 1;
}

static struct sv_backoff_cfg backoff_cfg(const struct sv *s)
{
    return (struct sv_backoff_cfg){s->opts.restart_delay_min_s, s->opts.restart_delay_max_s,
                                   s->opts.healthy_after_s, (int)s->opts.max_permanent_failures};
}

static void reap(struct sv *s, struct sv_proc *p, int wstatus)
{
    double now = sv_now();
    char how[128];
    sv_exit_describe(wstatus, how, sizeof how);
    int expected = p->retire || s->stopping;
    int clean = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    vl_log(expected && clean ? VL_LOG_INFO : VL_LOG_WARN, "%s %d on %s (pid %d) exited: %s%s",
           proc_role(p), p->id, proc_device(s, p), (int)p->pid, how,
           expected ? "" : " (unexpected)");
    sv_chan_close(&p->chan);
    int idx = sv_proc_index(s, p);
    struct sv_backoff_cfg cfg = backoff_cfg(s);
    double ready_for = p->t_ready > 0 ? now - p->t_ready : -1;

    if (p->kind == SV_WORKER) {
        unlink(p->socket);
        struct sv_slot *sl = &s->slots[p->slot];
        int was_cur = sl->cur == idx;
        if (was_cur)
            sl->cur = -1;
        sv_reload_on_exit(s, p, wstatus);
        p->used = 0;
        if (!expected && was_cur) {
            if (s->rl.phase != SV_RL_IDLE && s->rl.slot == p->slot &&
                sv_proc_by_id(s, s->rl.succ_id)) {
                vl_info("%s: the reload's successor takes over", sl->device);
            } else {
                double d = sv_backoff_on_exit(&cfg, &sl->bo, wstatus, ready_for);
                if (d < 0) {
                    vl_error("%s: %d permanent failures (exit %d) in a row: device given up "
                             "until a reload; the others keep serving",
                             sl->device, sl->bo.perm_fails, VL_EXIT_PERMANENT);
                } else {
                    sl->restart_at = now + d;
                    vl_info("%s: restarting its worker in %.1f s (failure %d in a row)", sl->device,
                            d, sl->bo.fails);
                }
            }
        }
        sv_publish(s);
        if (!s->stopping && all_slots_failed(s))
            begin_stop(s, VL_EXIT_PERMANENT, "every device failed permanently");
    } else {
        s->gw.cur = -1;
        p->used = 0;
        /* Whatever the gateway had in flight died with it: nothing is left to drain. */
        for (int i = 0; i < SV_MAX_PROCS; i++)
            if (s->procs[i].used && s->procs[i].state == SV_DRAINING)
                sv_proc_event(s, &s->procs[i], SV_EV_DRAINED);
        if (!expected) {
            double d = sv_backoff_on_exit(&cfg, &s->gw.bo, wstatus, ready_for);
            if (d < 0)
                begin_stop(s, VL_EXIT_PERMANENT, "the gateway failed permanently");
            else {
                s->gw.restart_at = now + d;
                vl_info("gateway: restarting in %.1f s (failure %d in a row)", d, s->gw.bo.fails);
            }
        }
    }
    sv_update_status(s);
}

static void reap_children(struct sv *s)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0)
            return;
        struct sv_proc *p = NULL;
        for (int i = 0; i < SV_MAX_PROCS && !p; i++)
            if (s->procs[i].used && s->procs[i].pid == pid)
                p = &s->procs[i];
        if (!p)
            continue; /* a child whose exec failed: already reported by sv_spawn_run */
        sv_proc_event(s, p, SV_EV_EXIT);
        reap(s, p, st);
    }
}

/* ---- messages from children ---- */

static void on_message(struct sv *s, struct sv_proc *p, const msgpack_object *m)
{
    double now = sv_now();
    if (sv_msg_type_is(m, "heartbeat")) {
        p->t_last_hb = now;
        int64_t v;
        if (sv_msg_int(m, "queue", &v) == 0)
            p->queue = v;
        if (sv_msg_int(m, "inflight", &v) == 0)
            p->inflight = v;
        sv_proc_event(s, p, SV_EV_HEARTBEAT);
    } else if (p->kind == SV_WORKER && sv_msg_type_is(m, "ready")) {
        char sock[108] = "";
        sv_msg_str(m, "socket", sock, sizeof sock);
        sv_msg_str(m, "fingerprint", p->fingerprint, sizeof p->fingerprint);
        if (sock[0] && strcmp(sock, p->socket) != 0)
            vl_warn("worker %d reports socket \"%s\", expected \"%s\"", p->id, sock, p->socket);
        sv_proc_event(s, p, SV_EV_READY);
    } else if (p->kind == SV_WORKER && sv_msg_type_is(m, "draining")) {
        vl_debug("worker %d is draining", p->id);
    } else if (p->kind == SV_GATEWAY && sv_msg_type_is(m, "gateway_ready")) {
        sv_proc_event(s, p, SV_EV_READY);
        sv_publish(s);
    } else if (p->kind == SV_GATEWAY && sv_msg_type_is(m, "drained")) {
        int64_t id;
        struct sv_proc *w = sv_msg_int(m, "id", &id) == 0 ? sv_proc_by_id(s, (int)id) : NULL;
        if (w && w->kind == SV_WORKER)
            sv_proc_event(s, w, SV_EV_DRAINED);
    } else {
        char type[32] = "?";
        sv_msg_str(m, "type", type, sizeof type);
        vl_warn("%s %d sent an unknown message type \"%s\"; ignored", proc_role(p), p->id, type);
    }
}

static void proc_io(struct sv *s, struct sv_proc *p, short revents)
{
    if (revents & POLLOUT) {
        int rc = sv_chan_flush(&p->chan);
        if (rc < 0) {
            sv_chan_close(&p->chan);
            return;
        }
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    int rc = sv_chan_read(&p->chan);
    if (rc == 0 || (rc < 0 && rc != -EAGAIN)) {
        if (rc != 0)
            vl_warn("%s %d: control channel %s", proc_role(p), p->id,
                    rc == VL_FRAME_TOO_LARGE ? "frame over the cap" : strerror(-rc));
        sv_chan_close(&p->chan); /* its exit arrives through SIGCHLD */
        return;
    }
    for (;;) {
        msgpack_unpacked u;
        char err[128];
        int n = sv_chan_next(&p->chan, &u, err, sizeof err);
        if (n == 0)
            break;
        if (n < 0) {
            vl_warn("%s %d: %s; closing its control channel", proc_role(p), p->id, err);
            sv_chan_close(&p->chan);
            break;
        }
        on_message(s, p, &u.data);
        msgpack_unpacked_destroy(&u);
        if (!p->used || p->chan.fd < 0)
            break;
    }
}

/* ---- status for systemd and the log ---- */

static int count_ready(struct sv *s)
{
    int n = 0;
    for (int i = 0; i < s->n_slots; i++)
        n += s->slots[i].cur >= 0 && s->procs[s->slots[i].cur].state == SV_READY;
    return n;
}

static int count_failed(struct sv *s)
{
    int n = 0;
    for (int i = 0; i < s->n_slots; i++)
        n += s->slots[i].bo.failed;
    return n;
}

void sv_update_status(struct sv *s)
{
    int ready = count_ready(s), failed = count_failed(s);
    int gw_ready = s->gw.cur >= 0 && s->procs[s->gw.cur].state == SV_READY;
    const char *what = s->stopping                       ? "stopping"
                       : s->rl.phase != SV_RL_IDLE       ? "reloading"
                       : !s->ready_sent                  ? "starting"
                       : ready < s->n_slots || !gw_ready ? "degraded"
                                                         : "serving";
    int becomes_ready =
        !s->ready_sent && !s->stopping && gw_ready && ready > 0 && ready + failed == s->n_slots;
    if (becomes_ready)
        what = "serving";
    char failed_txt[32] = "";
    if (failed)
        snprintf(failed_txt, sizeof failed_txt, ", %d failed", failed);
    char line[256];
    snprintf(line, sizeof line, "%s: %d/%d workers ready%s, gateway %s", what, ready, s->n_slots,
             failed_txt,
             gw_ready         ? "ready"
             : s->gw.cur >= 0 ? "starting"
                              : "down");
    if (becomes_ready) {
        s->ready_sent = 1;
        sv_notify_send(&s->notify, "READY=1\nSTATUS=%s", line);
        vl_info("ready: %s (%.2f s after start)", line, sv_now() - s->t_start);
    } else if (strcmp(line, s->last_status) != 0) {
        sv_notify_send(&s->notify, "STATUS=%s", line);
    }
    snprintf(s->last_status, sizeof s->last_status, "%s", line);
}

/* ---- stopping ---- */

static void begin_stop(struct sv *s, int code, const char *why)
{
    if (s->stopping) {
        vl_warn("second stop request (%s): killing every child now", why);
        s->stopping = 2;
        for (int i = 0; i < SV_MAX_PROCS; i++)
            if (s->procs[i].used)
                signal_proc(&s->procs[i], SIGKILL, 1);
        return;
    }
    vl_info("stopping (%s): the gateway finishes its requests, then the workers theirs", why);
    s->stopping = 1;
    s->exit_code = code;
    sv_notify_send(&s->notify, "STOPPING=1\nSTATUS=stopping (%s)", why);
    for (int i = 0; i < s->n_slots; i++)
        s->slots[i].restart_at = 0;
    s->gw.restart_at = 0;
    sv_reload_advance(s); /* fails a running reload: "the supervisor is stopping" */
    if (s->gw.cur >= 0)
        sv_proc_event(s, &s->procs[s->gw.cur], SV_EV_STOP);
}

/* Once the gateway is gone, stop every worker; returns 1 when nothing is left. */
static int stop_progress(struct sv *s)
{
    if (s->gw.cur >= 0)
        return 0;
    int left = 0;
    for (int i = 0; i < SV_MAX_PROCS; i++)
        if (s->procs[i].used) {
            left++;
            if (s->procs[i].state != SV_STOPPING)
                sv_proc_event(s, &s->procs[i], SV_EV_STOP);
        }
    return left == 0;
}

/* ---- timers ---- */

static void check_timers(struct sv *s, double now)
{
    for (int i = 0; i < SV_MAX_PROCS; i++) {
        struct sv_proc *p = &s->procs[i];
        if (!p->used)
            continue;
        switch (p->state) {
        case SV_STARTING:
            if (now >= p->t_spawn + s->opts.start_timeout_s)
                sv_proc_event(s, p, SV_EV_HUNG);
            break;
        case SV_READY:
        case SV_DRAINING:
            if (now >= p->t_last_hb + s->opts.heartbeat_timeout_s)
                sv_proc_event(s, p, SV_EV_HUNG);
            else if (p->state == SV_DRAINING && now >= p->t_deadline) {
                vl_warn("worker %d: not drained after %.1f s; stopping it anyway", p->id,
                        s->opts.drain_timeout_s);
                sv_proc_event(s, p, SV_EV_DRAIN_TIMEOUT);
            }
            break;
        case SV_STOPPING:
            if (now >= p->t_deadline)
                sv_proc_event(s, p, SV_EV_STOP_TIMEOUT);
            break;
        default:
            break;
        }
    }
    if (s->stopping)
        return;
    for (int i = 0; i < s->n_slots; i++) {
        struct sv_slot *sl = &s->slots[i];
        int reloading_it = s->rl.phase != SV_RL_IDLE && s->rl.slot == i;
        if (sl->restart_at > 0 && now >= sl->restart_at && sl->cur < 0 && !reloading_it) {
            sl->restart_at = 0;
            sl->restarts++;
            if (!sv_spawn_worker(s, i, 0))
                sl->restart_at = now + s->opts.restart_delay_max_s;
        }
    }
    if (s->gw.restart_at > 0 && now >= s->gw.restart_at && s->gw.cur < 0) {
        s->gw.restart_at = 0;
        s->gw.restarts++;
        if (!spawn_gateway(s))
            s->gw.restart_at = now + s->opts.restart_delay_max_s;
    }
    if (s->notify.watchdog_usec > 0 && now >= s->next_watchdog) {
        sv_notify_send(&s->notify, "WATCHDOG=1");
        s->next_watchdog = now + (double)s->notify.watchdog_usec * 1e-6 / 2;
    }
}

static double min_d(double a, double b)
{
    return b > 0 && b < a ? b : a;
}

/* The next moment a timer may fire (an upper bound of 1 s keeps it simple and cheap). */
static int poll_timeout_ms(struct sv *s, double now)
{
    double next = now + 1.0;
    for (int i = 0; i < SV_MAX_PROCS; i++) {
        struct sv_proc *p = &s->procs[i];
        if (!p->used)
            continue;
        if (p->state == SV_STARTING)
            next = min_d(next, p->t_spawn + s->opts.start_timeout_s);
        if (p->state == SV_READY || p->state == SV_DRAINING)
            next = min_d(next, p->t_last_hb + s->opts.heartbeat_timeout_s);
        if (p->state == SV_DRAINING || p->state == SV_STOPPING)
            next = min_d(next, p->t_deadline);
    }
    for (int i = 0; i < s->n_slots; i++)
        next = min_d(next, s->slots[i].restart_at);
    next = min_d(next, s->gw.restart_at);
    if (s->notify.watchdog_usec > 0)
        next = min_d(next, s->next_watchdog);
    double ms = (next - now) * 1000.0 + 1;
    return ms < 0 ? 0 : ms > 1000 ? 1000 : (int)ms;
}

/* ---- setup ---- */

static int resolve_bins(struct sv *s, char *err, size_t errlen)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) {
        snprintf(err, errlen, "readlink(/proc/self/exe) failed: %s", strerror(errno));
        return -1;
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = 0;
    snprintf(s->gateway_bin, sizeof s->gateway_bin, "%s",
             s->opts.gateway_bin ? s->opts.gateway_bin : "");
    snprintf(s->worker_bin, sizeof s->worker_bin, "%s",
             s->opts.worker_bin ? s->opts.worker_bin : "");
    if (!s->gateway_bin[0])
        snprintf(s->gateway_bin, sizeof s->gateway_bin, "%.4000s/vlembed-gateway", self);
    if (!s->worker_bin[0])
        snprintf(s->worker_bin, sizeof s->worker_bin, "%.4000s/vlembed-worker", self);
    const char *bins[2] = {s->gateway_bin, s->worker_bin}, *keys[2] = {"gateway-bin", "worker-bin"};
    for (int i = 0; i < 2; i++)
        if (access(bins[i], X_OK) < 0) {
            snprintf(err, errlen, "%s: \"%.400s\" is not executable: %s", keys[i], bins[i],
                     strerror(errno));
            return -1;
        }
    return 0;
}

/* Creates the runtime directory (0750) if needed and refuses one that others may write. */
static int setup_runtime_dir(struct sv *s, char *err, size_t errlen)
{
    const char *d = s->opts.runtime_dir;
    char env[4096] = "";
    if (!d || !d[0]) {
        /* systemd's RuntimeDirectory= sets $RUNTIME_DIRECTORY (several: colon-separated) */
        snprintf(env, sizeof env, "%s",
                 getenv("RUNTIME_DIRECTORY") ? getenv("RUNTIME_DIRECTORY") : "");
        env[strcspn(env, ":")] = 0;
        d = env[0] ? env : "/run/vlembed";
    }
    /* worker-<id>.sock and control.sock must fit in sun_path: refuse, never truncate. */
    if (strlen(d) >= sizeof s->runtime_dir) {
        snprintf(err, errlen,
                 "runtime-dir: \"%.200s\" is longer than %zu bytes (Unix socket "
                 "paths in it must fit in 108)",
                 d, sizeof s->runtime_dir - 1);
        return -1;
    }
    snprintf(s->runtime_dir, sizeof s->runtime_dir, "%s", d);
    char path[sizeof s->runtime_dir];
    snprintf(path, sizeof path, "%s", s->runtime_dir);
    for (char *q = path + 1; *q; q++) /* mkdir -p */
        if (*q == '/') {
            *q = 0;
            mkdir(path, 0755);
            *q = '/';
        }
    if (mkdir(path, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "runtime-dir: mkdir(\"%s\") failed: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "runtime-dir: \"%s\" is not a directory", path);
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 022)) {
        snprintf(err, errlen,
                 "runtime-dir: \"%s\" must be owned by uid %d and not group/world-writable "
                 "(owner %d, mode %03o)",
                 path, (int)geteuid(), (int)st.st_uid, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

static int setup_slots(struct sv *s, char *err, size_t errlen)
{
    if (strcmp(s->opts.backend, "cpu") == 0) {
        s->n_slots = (int)s->opts.workers;
        for (int i = 0; i < s->n_slots; i++) {
            snprintf(s->slots[i].device, sizeof s->slots[i].device, "cpu:%d", i);
            snprintf(s->slots[i].name, sizeof s->slots[i].name, "cpu");
            s->slots[i].uuid[0] = 0; /* CUDA_VISIBLE_DEVICES="" : a CPU worker sees no GPU */
            s->slots[i].cur = -1;
        }
        return 0;
    }
    static struct sv_gpu gpus[SV_GPU_MAX];
    const char *source = "?";
    int n = sv_gpu_discover(gpus, SV_GPU_MAX, &source, err, errlen);
    if (n < 0)
        return -1;
    if (n == 0) {
        snprintf(err, errlen, "backend cuda: no GPU found (%s)", source);
        return -1;
    }
    int picked[SV_GPU_MAX];
    int k = sv_gpu_select(gpus, n, s->opts.devices, picked, SV_MAX_SLOTS, err, errlen);
    if (k < 0)
        return -1;
    vl_info("found %d GPU%s through %s; using %d", n, n == 1 ? "" : "s", source, k);
    s->n_slots = k;
    for (int i = 0; i < k; i++) {
        const struct sv_gpu *g = &gpus[picked[i]];
        snprintf(s->slots[i].device, sizeof s->slots[i].device, "cuda:%d", g->index);
        snprintf(s->slots[i].uuid, sizeof s->slots[i].uuid, "%s", g->uuid);
        snprintf(s->slots[i].name, sizeof s->slots[i].name, "%s", g->name);
        s->slots[i].cur = -1;
        vl_info("cuda:%d = %s (%s)", g->index, g->name, g->uuid);
    }
    return 0;
}

static int setup_sockets(struct sv *s, char *err, size_t errlen)
{
    int n = sv_listen_from_env(&s->lis, err, errlen);
    if (n < 0)
        return -1;
    if (n > 0)
        vl_info("socket activation: %d socket%s from systemd (http %s, api %s)", n,
                n == 1 ? "" : "s", s->lis.http_activated ? "yes" : "no",
                s->lis.api_activated ? "yes" : "no");
    int backlog = (int)s->opts.listen_backlog;
    if (s->lis.http_fd < 0 && strcmp(s->opts.http, "none") != 0) {
        if ((s->lis.http_fd = sv_listen_tcp(s->opts.http, backlog, err, errlen)) < 0)
            return -1;
        vl_info("listening on http://%s", s->opts.http);
    }
    const char *api = s->opts.api_socket;
    char def[sizeof s->runtime_dir + 16];
    if (!api) {
        snprintf(def, sizeof def, "%s/api.sock", s->runtime_dir);
        api = def;
    }
    if (s->lis.api_fd < 0 && strcmp(api, "none") != 0) {
        if ((s->lis.api_fd = sv_listen_unix(api, 0660, backlog, err, errlen)) < 0)
            return -1;
        snprintf(s->lis.api_path, sizeof s->lis.api_path, "%.107s", api);
        vl_info("listening on %s (msgpack API)", api);
    }
    if (s->lis.http_fd < 0 && s->lis.api_fd < 0) {
        snprintf(err, errlen, "http: none and api-socket: none leaves nothing to serve");
        return -1;
    }
    return 0;
}

static int setup_signals(struct sv *s, char *err, size_t errlen)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s->sig_fd < 0) {
        snprintf(err, errlen, "signalfd() failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void on_signals(struct sv *s)
{
    struct signalfd_siginfo si;
    while (read(s->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        switch (si.ssi_signo) {
        case SIGCHLD:
            reap_children(s);
            break;
        case SIGTERM:
        case SIGINT:
            begin_stop(s, VL_EXIT_OK, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        case SIGHUP:
            vl_info("SIGHUP: reloading (vlembedctl reload waits for the result; this does not)");
            sv_reload_request(s, -1);
            break;
        }
    }
    reap_children(s); /* SIGCHLDs coalesce: reap whatever is there */
}

/* ---- the loop ---- */

static void run_loop(struct sv *s)
{
    struct pollfd pfd[2 + SV_MAX_CTL_CONNS + SV_MAX_PROCS];
    int who[2 + SV_MAX_CTL_CONNS + SV_MAX_PROCS]; /* -1 sig, -2 ctl, 0.. conn, 1000.. proc */
    for (;;) {
        double now = sv_now();
        check_timers(s, now);
        sv_reload_advance(s);
        sv_update_status(s);
        if (s->stopping && stop_progress(s))
            return;
        int n = 0;
        pfd[n] = (struct pollfd){.fd = s->sig_fd, .events = POLLIN};
        who[n++] = -1;
        if (s->ctl_fd >= 0) {
            pfd[n] = (struct pollfd){.fd = s->ctl_fd, .events = POLLIN};
            who[n++] = -2;
        }
        for (int i = 0; i < SV_MAX_CTL_CONNS; i++)
            if (s->conns[i].chan.fd >= 0) {
                short ev = POLLIN | (sv_chan_want_write(&s->conns[i].chan) ? POLLOUT : 0);
                pfd[n] = (struct pollfd){.fd = s->conns[i].chan.fd, .events = ev};
                who[n++] = i;
            }
        for (int i = 0; i < SV_MAX_PROCS; i++)
            if (s->procs[i].used && s->procs[i].chan.fd >= 0) {
                short ev = POLLIN | (sv_chan_want_write(&s->procs[i].chan) ? POLLOUT : 0);
                pfd[n] = (struct pollfd){.fd = s->procs[i].chan.fd, .events = ev};
                who[n++] = 1000 + i;
            }
        int rc = poll(pfd, (nfds_t)n, poll_timeout_ms(s, now));
        if (rc < 0 && errno != EINTR) {
            vl_error("poll() failed: %s", strerror(errno));
            begin_stop(s, VL_EXIT_TRANSIENT, "poll() failed");
            continue;
        }
        for (int i = 0; rc > 0 && i < n; i++) {
            if (!pfd[i].revents)
                continue;
            if (who[i] == -1)
                on_signals(s);
            else if (who[i] == -2)
                sv_control_accept(s);
            else if (who[i] < 1000)
                sv_control_io(s, who[i], pfd[i].revents);
            else if (s->procs[who[i] - 1000].used && s->procs[who[i] - 1000].chan.fd == pfd[i].fd)
                proc_io(s, &s->procs[who[i] - 1000], pfd[i].revents);
        }
    }
}

int sv_main(int argc, char **argv)
{
    vl_log_init("supervisor", VL_LOG_INFO);
    static struct sv s; /* large; one per process */
    memset(&s, 0, sizeof s);
    s.sig_fd = s.ctl_fd = -1;
    s.gw.cur = -1;
    s.rl.succ_status = -1;
    for (int i = 0; i < SV_MAX_CTL_CONNS; i++)
        s.conns[i].chan.fd = -1;
    sv_listen_init(&s.lis);
    s.argc = argc;
    s.argv = argv;
    s.t_start = sv_now();
    char err[1024];
    int rc = sv_opts_load(&s.opts, argc, argv, err, sizeof err);
    if (rc == 1) {
        vl_config_usage(
            sv_opt_table, sv_n_opts, "vlembed-supervisor",
            "Runs vlembed: the gateway and one worker per device (docs/operations.md).");
        return VL_EXIT_OK;
    }
    if (rc < 0) {
        vl_error("%s", err);
        return VL_EXIT_PERMANENT;
    }
    int ok;
    vl_log_set_level(vl_log_level_parse(s.opts.log_level, &ok));
    if (sv_notify_init(&s.notify, err, sizeof err) < 0)
        vl_warn("%s; systemd notifications disabled", err);
    int code = VL_EXIT_PERMANENT;
    /* Block the signals before anything can start a thread: NVML (GPU discovery) does, and a
     * thread with SIGTERM unblocked would take the default action and kill us unlogged. */
    if (setup_signals(&s, err, sizeof err) < 0) {
        vl_error("%s", err);
        code = VL_EXIT_TRANSIENT;
        goto out;
    }
    if (resolve_bins(&s, err, sizeof err) < 0 || setup_runtime_dir(&s, err, sizeof err) < 0 ||
        setup_slots(&s, err, sizeof err) < 0 || setup_sockets(&s, err, sizeof err) < 0 ||
        sv_control_open(&s, err, sizeof err) < 0) {
        vl_error("%s", err);
        goto out;
    }
    vl_info("starting: model %s, backend %s, %d worker%s, runtime dir %s", s.opts.model,
            s.opts.backend, s.n_slots, s.n_slots == 1 ? "" : "s", s.runtime_dir);
    sv_notify_send(&s.notify, "STATUS=starting: loading the model on %d worker%s", s.n_slots,
                   s.n_slots == 1 ? "" : "s");
    s.next_watchdog = sv_now();
    if (!spawn_gateway(&s))
        s.gw.restart_at = sv_now() + s.opts.restart_delay_min_s;
    for (int i = 0; i < s.n_slots; i++)
        if (!sv_spawn_worker(&s, i, 0))
            s.slots[i].restart_at = sv_now() + s.opts.restart_delay_min_s;
    run_loop(&s);
    code = s.exit_code;
    vl_info("stopped (exit %d)", code);
out:
    sv_control_close(&s);
    sv_listen_close(&s.lis);
    sv_notify_free(&s.notify);
    if (s.sig_fd >= 0)
        close(s.sig_fd);
    sv_opts_free(&s.opts);
    return code;
}
