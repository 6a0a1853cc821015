/* vlembedctl reload [--runtime-dir DIR] [--timeout S]: asks the supervisor to replace every
 * worker without downtime and waits until it has (the unit's ExecReload=). Exit status: 0 done;
 * 1 the reload failed (a successor did not become ready; the old workers keep serving);
 * 111 the supervisor could not be reached or did not answer within --timeout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/exitcode.h"
#include "supervisor/chan.h"
#include "supervisor/control_client.h"
#include "supervisor/ctl/ctl.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vlembedctl reload [--runtime-dir DIR] [--timeout SECONDS]\n"
               "  Replaces every worker, one device at a time, without refusing a request;\n"
               "  returns when done: 0 ok, 1 failed (old workers keep serving), 111 no answer.\n"
               "  --timeout: give up waiting after SECONDS (default: wait as long as it takes).\n");
}

int ctl_cmd_reload(int argc, char **argv)
{
    const char *dir = sv_ctl_default_runtime_dir();
    double timeout = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runtime-dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strncmp(argv[i], "--runtime-dir=", 14) == 0)
            dir = argv[i] + 14;
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout = atof(argv[++i]);
        else if (strcmp(argv[i], "--wait") == 0)
            continue; /* the default; accepted for unit files written that way */
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    msgpack_unpacked u;
    void *bytes = NULL;
    char err[512];
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
