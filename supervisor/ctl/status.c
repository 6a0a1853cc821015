/* vlembedctl status [--runtime-dir DIR] [--json]: every process of a running vlembed, its
 * state, device, restarts and uptime, from the supervisor's control socket. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/exitcode.h"
#include "supervisor/chan.h"
#include "supervisor/control_client.h"
#include "supervisor/ctl/ctl.h"

static void fmt_dur(char *buf, size_t len, double s)
{
    long t = (long)s;
    if (t >= 86400)
        snprintf(buf, len, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60)
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, len, "%.1fs", s);
}

static double num(const msgpack_object *m, const char *key)
{
    const msgpack_object *o = vl_mp_get(m, key);
    if (!o)
        return 0;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        return o->via.f64;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double)o->via.u64;
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return (double)o->via.i64;
    return 0;
}

static const char *str(const msgpack_object *m, const char *key, char *buf, size_t len)
{
    if (sv_msg_str(m, key, buf, len) < 0)
        snprintf(buf, len, "-");
    return buf;
}

struct status_opts {
    char *runtime_dir;
    int json;
};
static const struct vl_opt status_tab[] = {
    {"runtime-dir", VL_OPT_STR, offsetof(struct status_opts, runtime_dir), NULL, 1, 0, NULL,
     "the supervisor's runtime directory [default: $VLEMBED_RUNTIME_DIR, $RUNTIME_DIRECTORY or "
     "/run/vlembed]"},
    {"json", VL_OPT_BOOL, offsetof(struct status_opts, json), "false", 1, 0, NULL,
     "print the supervisor's answer as JSON"},
};
#define N_STATUS (sizeof status_tab / sizeof status_tab[0])

int ctl_cmd_status(int argc, char **argv)
{
    struct status_opts o = {0};
    char err[512];
    int rc = vl_config_load(status_tab, N_STATUS, &o, argc, argv, NULL, NULL, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "vlembedctl status: %s\n", err);
        else
            vl_config_usage(status_tab, N_STATUS, "vlembedctl status",
                            "Shows the supervisor, the gateway and every worker: state, device,\n"
                            "restarts, uptime.");
        vl_config_free(status_tab, N_STATUS, &o);
        return rc < 0 ? 2 : 0;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", o.runtime_dir ? o.runtime_dir : sv_ctl_default_runtime_dir());
    int json = o.json;
    vl_config_free(status_tab, N_STATUS, &o);
    msgpack_unpacked u;
    void *bytes = NULL;
    if (sv_ctl_request(dir, "status", 10, &u, &bytes, err, sizeof err) < 0) {
        fprintf(stderr, "vlembedctl status: %s\n", err);
        return VL_EXIT_TRANSIENT;
    }
    const msgpack_object *m = &u.data;
    if (json) {
        sv_ctl_print_json(stdout, m);
        fputc('\n', stdout);
    } else {
        char a[256], b[256], c[256], d[64];
        fmt_dur(d, sizeof d, num(m, "uptime_s"));
        printf("vlembed %s\n", str(m, "status", a, sizeof a));
        printf("supervisor pid %.0f, up %s, backend %s, model %s\n", num(m, "pid"), d,
               str(m, "backend", b, sizeof b), str(m, "model", c, sizeof c));
        printf("http %s, api %s, reloads %.0f ok / %.0f failed%s\n\n", str(m, "http", a, sizeof a),
               str(m, "api_socket", b, sizeof b), num(m, "reloads_ok"), num(m, "reloads_failed"),
               num(m, "reloading") ? ", reloading now" : "");
        printf("%-8s %5s %8s %-9s %-8s %8s %9s %6s %8s  %s\n", "ROLE", "ID", "PID", "STATE",
               "DEVICE", "RESTARTS", "UPTIME", "QUEUE", "INFLIGHT", "NOTE");
        const msgpack_object *ps = vl_mp_get(m, "processes");
        for (uint32_t i = 0; ps && ps->type == MSGPACK_OBJECT_ARRAY && i < ps->via.array.size;
             i++) {
            const msgpack_object *p = &ps->via.array.ptr[i];
            char role[16], state[16], dev[32], name[96], note[160] = "";
            str(p, "role", role, sizeof role);
            str(p, "state", state, sizeof state);
            str(p, "device", dev, sizeof dev);
            str(p, "device_name", name, sizeof name);
            const msgpack_object *rep = vl_mp_get(p, "replacing");
            if (rep && rep->type == MSGPACK_OBJECT_BOOLEAN && rep->via.boolean)
                snprintf(note, sizeof note, "reload ");
            if (num(p, "restart_in_s") > 0)
                snprintf(note + strlen(note), sizeof note - strlen(note), "restart in %.1fs ",
                         num(p, "restart_in_s"));
            if (strcmp(role, "worker") == 0 && strcmp(name, "cpu") != 0 && strcmp(name, "-") != 0)
                snprintf(note + strlen(note), sizeof note - strlen(note), "%s", name);
            fmt_dur(d, sizeof d, num(p, "uptime_s"));
            printf("%-8s %5.0f %8.0f %-9s %-8s %8.0f %9s %6.0f %8.0f  %s\n", role, num(p, "id"),
                   num(p, "pid"), state, dev, num(p, "restarts"), num(p, "pid") ? d : "-",
                   num(p, "queue"), num(p, "inflight"), note);
        }
    }
    msgpack_unpacked_destroy(&u);
    free(bytes);
    return 0;
}
