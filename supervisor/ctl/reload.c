/* vlembedctl reload [--runtime-dir DIR] [--timeout S]: asks the supervisor to replace every
 * worker without downtime and waits until it has (the unit's ExecReload=). Exit status: 0 done;
 * 1 the reload failed (a successor did not become ready; the old workers keep serving);
 * 111 the supervisor could not be reached or did not answer within --timeout. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/exitcode.h"
#include "supervisor/chan.h"
#include "supervisor/control_client.h"
#include "supervisor/ctl/ctl.h"

struct reload_opts {
    char *runtime_dir;
    double timeout;
    int wait;
};
#define O(name, type, field, def, lo, hi, help)                                                    \
    {                                                                                              \
        name, VL_OPT_##type, offsetof(struct reload_opts, field), def, lo, hi, NULL, help          \
    }
static const struct vl_opt reload_tab[] = {
    O("runtime-dir", STR, runtime_dir, NULL, 1, 0,
      "the supervisor's runtime directory [default: $VLEMBED_RUNTIME_DIR, $RUNTIME_DIRECTORY or "
      "/run/vlembed]"),
    O("timeout", DOUBLE, timeout, "0", 0, 86400,
      "give up waiting after this many seconds (0: wait as long as it takes)"),
    O("wait", BOOL, wait, "true", 1, 0, "wait until done (always; accepted for unit files)"),
};
#undef O
#define N_RELOAD (sizeof reload_tab / sizeof reload_tab[0])

int ctl_cmd_reload(int argc, char **argv)
{
    static const char *what =
        "Replaces every worker, one device at a time, without refusing a request;\n"
        "returns when done: 0 ok, 1 failed (old workers keep serving), 111 no answer.";
    struct reload_opts o = {0};
    char err[512];
    int rc = vl_config_load(reload_tab, N_RELOAD, &o, argc, argv, NULL, NULL, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "vlembedctl reload: %s\n", err);
        else
            vl_config_usage(reload_tab, N_RELOAD, "vlembedctl reload", what);
        vl_config_free(reload_tab, N_RELOAD, &o);
        return rc < 0 ? 2 : 0;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", o.runtime_dir ? o.runtime_dir : sv_ctl_default_runtime_dir());
    double timeout = o.timeout;
    vl_config_free(reload_tab, N_RELOAD, &o);
    msgpack_unpacked u;
    void *bytes = NULL;
    if (sv_ctl_request(dir, "reload", timeout, &u, &bytes, err, sizeof err) < 0) {
        fprintf(stderr, "vlembedctl reload: %s\n", err);
        return VL_EXIT_TRANSIENT;
    }
    const msgpack_object *ok = vl_mp_get(&u.data, "ok");
    int good = ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
    const msgpack_object *secs = vl_mp_get(&u.data, "seconds");
    double s = secs && secs->type == MSGPACK_OBJECT_FLOAT64 ? secs->via.f64 : 0;
    char msg[512] = "";
    sv_msg_str(&u.data, "error", msg, sizeof msg);
    if (good)
        printf("reload: done in %.2f s\n", s);
    else
        fprintf(stderr, "vlembedctl reload: failed%s%s\n", msg[0] ? ": " : "", msg);
    msgpack_unpacked_destroy(&u);
    free(bytes);
    return good ? 0 : 1;
}
