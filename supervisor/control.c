/* The control socket: RUNTIME-DIR/control.sock (mode 0600), one msgpack frame per request,
 * for vlembedctl status / reload (docs/internal-protocol.md, "vlembedctl <-> supervisor").
 * Only our own uid (or root) may talk to it: checked with SO_PEERCRED on every connection. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "supervisor/sv.h"

#define SV_CTL_OUT_MAX (4 * 1024 * 1024)

int sv_control_open(struct sv *s, char *err, size_t errlen)
{
    snprintf(s->control_path, sizeof s->control_path, "%.80s/control.sock", s->runtime_dir);
    s->ctl_fd = sv_listen_unix(s->control_path, 0600, 16, err, errlen);
    if (s->ctl_fd < 0) {
        s->control_path[0] = 0;
        return -1;
    }
    fcntl(s->ctl_fd, F_SETFL, fcntl(s->ctl_fd, F_GETFL) | O_NONBLOCK); /* accept loop */
    return 0;
}

static void conn_close(struct sv *s, int i)
{
    sv_reload_forget_conn(s, i);
    sv_chan_close(&s->conns[i].chan);
}

void sv_control_close(struct sv *s)
{
    for (int i = 0; i < SV_MAX_CTL_CONNS; i++)
        if (s->conns[i].chan.fd >= 0) {
            sv_chan_flush(&s->conns[i].chan);
            conn_close(s, i);
        }
    if (s->ctl_fd >= 0)
        close(s->ctl_fd);
    s->ctl_fd = -1;
    if (s->control_path[0])
        unlink(s->control_path);
}

void sv_control_accept(struct sv *s)
{
    for (;;) {
        int fd = accept4(s->ctl_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct ucred cr;
        socklen_t len = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
            (cr.uid != geteuid() && cr.uid != 0)) {
            vl_warn("control socket: refused a connection from uid %d pid %d (not our uid)",
                    (int)cr.uid, (int)cr.pid);
            close(fd);
            continue;
        }
        int slot = -1;
        for (int i = 0; i < SV_MAX_CTL_CONNS && slot < 0; i++)
            if (s->conns[i].chan.fd < 0)
                slot = i;
        if (slot < 0) {
            vl_warn("control socket: %d connections open; refusing one more", SV_MAX_CTL_CONNS);
            close(fd);
            continue;
        }
        sv_chan_init(&s->conns[slot].chan, fd, SV_CTL_FRAME_MAX, SV_CTL_OUT_MAX);
    }
}

static void send_sbuf(struct sv *s, int conn, msgpack_sbuffer *sb)
{
    if (s->conns[conn].chan.fd >= 0 && sv_chan_send_sbuf(&s->conns[conn].chan, sb) < 0)
        conn_close(s, conn);
}

/* One entry of the status reply's `processes` array. */
static void pack_proc(struct sv *s, msgpack_packer *pk, const struct sv_proc *p,
                      const struct sv_slot *sl, const char *role, double now)
{
    msgpack_pack_map(pk, 15);
    vl_mp_pack_kv_str(pk, "role", role);
    vl_mp_pack_kv_int(pk, "id", p ? p->id : 0);
    vl_mp_pack_kv_int(pk, "pid", p ? p->pid : 0);
    vl_mp_pack_kv_str(pk, "state", p ? sv_state_name(p->state) : sl->bo.failed ? "failed" : "dead");
    vl_mp_pack_kv_str(pk, "device", p && p->kind == SV_GATEWAY ? "-" : sl->device);
    vl_mp_pack_kv_str(pk, "device_name", p && p->kind == SV_GATEWAY ? "" : sl->name);
    vl_mp_pack_kv_str(pk, "uuid", p && p->kind == SV_GATEWAY ? "" : sl->uuid);
    vl_mp_pack_kv_int(pk, "restarts", sl->restarts);
    sv_pack_kv_double(pk, "uptime_s", p ? now - p->t_spawn : 0);
    sv_pack_kv_double(pk, "ready_s", p && p->t_ready > 0 ? now - p->t_ready : 0);
    vl_mp_pack_kv_int(pk, "queue", p ? p->queue : 0);
    vl_mp_pack_kv_int(pk, "inflight", p ? p->inflight : 0);
    vl_mp_pack_kv_str(pk, "socket", p ? p->socket : "");
    sv_pack_kv_bool(pk, "replacing", p && (p->successor || p->retire));
    sv_pack_kv_double(pk, "restart_in_s", !p && sl->restart_at > 0 ? sl->restart_at - now : 0);
}

static void reply_status(struct sv *s, int conn)
{
    double now = sv_now();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int n = 0;
    for (int i = 0; i < SV_MAX_PROCS; i++)
        n += s->procs[i].used;
    n += s->gw.cur < 0;
    for (int i = 0; i < s->n_slots; i++)
        n += s->slots[i].cur < 0;
    char state[32];
    snprintf(state, sizeof state, "%.*s", (int)strcspn(s->last_status, ":"), s->last_status);
    msgpack_pack_map(&pk, 14);
    vl_mp_pack_kv_str(&pk, "type", "status");
    vl_mp_pack_kv_int(&pk, "pid", getpid());
    sv_pack_kv_double(&pk, "uptime_s", now - s->t_start);
    vl_mp_pack_kv_str(&pk, "state", state);
    vl_mp_pack_kv_str(&pk, "status", s->last_status);
    vl_mp_pack_kv_str(&pk, "backend", s->opts.backend);
    vl_mp_pack_kv_str(&pk, "model", s->opts.model);
    vl_mp_pack_kv_str(&pk, "runtime_dir", s->runtime_dir);
    vl_mp_pack_kv_str(&pk, "http",
                      s->lis.http_activated ? "systemd socket"
                      : s->lis.http_fd >= 0 ? s->opts.http
                                            : "none");
    vl_mp_pack_kv_str(&pk, "api_socket",
                      s->lis.api_activated ? "systemd socket"
                      : s->lis.api_path[0] ? s->lis.api_path
                                           : "none");
    sv_pack_kv_bool(&pk, "reloading", s->rl.phase != SV_RL_IDLE);
    vl_mp_pack_kv_int(&pk, "reloads_ok", s->rl.count_ok);
    vl_mp_pack_kv_int(&pk, "reloads_failed", s->rl.count_failed);
    vl_mp_pack_cstr(&pk, "processes");
    msgpack_pack_array(&pk, (size_t)n);
    if (s->gw.cur >= 0)
        pack_proc(s, &pk, &s->procs[s->gw.cur], &s->gw, "gateway", now);
    else
        pack_proc(s, &pk, NULL, &s->gw, "gateway", now);
    for (int i = 0; i < s->n_slots; i++) {
        int listed = 0;
        for (int j = 0; j < SV_MAX_PROCS; j++) {
            struct sv_proc *p = &s->procs[j];
            if (p->used && p->kind == SV_WORKER && p->slot == i) {
                pack_proc(s, &pk, p, &s->slots[i], "worker", now);
                listed += j == s->slots[i].cur;
            }
        }
        if (s->slots[i].cur < 0 && !listed)
            pack_proc(s, &pk, NULL, &s->slots[i], "worker", now);
    }
    send_sbuf(s, conn, &sb);
    msgpack_sbuffer_destroy(&sb);
}

void sv_control_reply_reload(struct sv *s, int conn, int ok, const char *error, double secs)
{
    if (conn < 0 || conn >= SV_MAX_CTL_CONNS || s->conns[conn].chan.fd < 0)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    vl_mp_pack_kv_str(&pk, "type", "reload");
    sv_pack_kv_bool(&pk, "ok", ok);
    vl_mp_pack_kv_str(&pk, "error", ok ? "" : error);
    sv_pack_kv_double(&pk, "seconds", secs);
    vl_mp_pack_kv_int(&pk, "workers", s->n_slots);
    send_sbuf(s, conn, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void reply_error(struct sv *s, int conn, const char *msg)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    vl_mp_pack_kv_str(&pk, "type", "error");
    vl_mp_pack_kv_str(&pk, "error", msg);
    send_sbuf(s, conn, &sb);
    msgpack_sbuffer_destroy(&sb);
}

void sv_control_io(struct sv *s, int conn, short revents)
{
    struct sv_chan *c = &s->conns[conn].chan;
    if (revents & POLLOUT && sv_chan_flush(c) < 0) {
        conn_close(s, conn);
        return;
    }
    if (!(revents & ~POLLOUT))
        return;
    int rc = sv_chan_read(c);
    if (rc == 0 || (rc < 0 && rc != -EAGAIN)) {
        conn_close(s, conn);
        return;
    }
    for (;;) {
        msgpack_unpacked u;
        char err[128];
        int n = sv_chan_next(c, &u, err, sizeof err);
        if (n == 0)
            return;
        if (n < 0) {
            vl_warn("control socket: %s; closing the connection", err);
            conn_close(s, conn);
            return;
        }
        if (sv_msg_type_is(&u.data, "status"))
            reply_status(s, conn);
        else if (sv_msg_type_is(&u.data, "reload"))
            sv_reload_request(s, conn);
        else
            reply_error(s, conn, "unknown request type (expected status or reload)");
        msgpack_unpacked_destroy(&u);
        if (c->fd < 0)
            return;
    }
}
