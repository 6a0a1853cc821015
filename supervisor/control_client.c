/* vlembedctl's side of the control socket (see control_client.h). */
#include "supervisor/control_client.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/frame.h"
#include "supervisor/chan.h"

const char *sv_ctl_default_runtime_dir(void)
{
    const char *d = getenv("VLEMBED_RUNTIME_DIR");
    if (d && *d)
        return d;
    d = getenv("RUNTIME_DIRECTORY");
    if (d && *d && !strchr(d, ':'))
        return d;
    return "/run/vlembed";
}

int sv_ctl_request(const char *runtime_dir, const char *type, double timeout_s,
                   msgpack_unpacked *reply, void **bytes, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control.sock", runtime_dir);
    if (n < 0 || (size_t)n >= sizeof sa.sun_path) {
        snprintf(err, errlen, "runtime dir \"%s\" is too long for a socket path", runtime_dir);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(err, errlen,
                 "cannot connect to %s: %s (is vlembed-supervisor running with "
                 "this --runtime-dir?)",
                 sa.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (timeout_s > 0) {
        struct timeval tv = {(time_t)timeout_s, (suseconds_t)(fmod(timeout_s, 1.0) * 1e6)};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    vl_mp_pack_kv_str(&pk, "type", type);
    int rc = vl_frame_write_fd(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = vl_frame_read_fd(fd, 16u * 1024 * 1024, &buf, &len);
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "control socket: %s",
                 rc == -EAGAIN  ? "no reply in time"
                 : rc == -EPIPE ? "the supervisor closed the connection (did it stop?)"
                                : strerror(-rc));
        return -1;
    }
    size_t off = 0;
    msgpack_unpacked_init(reply);
    char why[160];
    if (vl_mp_check(buf, len, 8, why, sizeof why) < 0 ||
        msgpack_unpack_next(reply, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        reply->data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(reply);
        free(buf);
        snprintf(err, errlen, "control socket: malformed reply");
        return -1;
    }
    *bytes = buf; /* msgpack-c's strings point into it */
    return 0;
}

static void json_str(FILE *f, const char *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void sv_ctl_print_json(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", f);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", f);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(f, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(f, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        fprintf(f, "%.3f", o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        json_str(f, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputc(',', f);
            sv_ctl_print_json(f, &o->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fputc(',', f);
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR)
                json_str(f, k->via.str.ptr, k->via.str.size);
            else
                fputs("\"?\"", f);
            fputc(':', f);
            sv_ctl_print_json(f, &o->via.map.ptr[i].val);
        }
        fputc('}', f);
        break;
    default:
        fputs("null", f);
        break;
    }
}
