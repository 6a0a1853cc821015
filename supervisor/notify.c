/* sd_notify over a datagram socket (see notify.h). */
#include "supervisor/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sv_notify_init(struct sv_notify *n, char *err, size_t errlen)
{
    memset(n, 0, sizeof *n);
    n->fd = -1;
    const char *wd = getenv("WATCHDOG_USEC"), *wdpid = getenv("WATCHDOG_PID");
    if (wd && (!wdpid || atol(wdpid) == (long)getpid())) {
        char *end;
        long long v = strtoll(wd, &end, 10);
        if (*end == 0 && v > 0)
            n->watchdog_usec = v;
    }
    const char *path = getenv("NOTIFY_SOCKET");
    int rc = 0;
    if (path && *path) {
        size_t len = strlen(path);
        if ((path[0] != '/' && path[0] != '@') || len >= sizeof n->addr.sun_path || len < 2) {
            snprintf(err, errlen, "NOTIFY_SOCKET=\"%s\" is not a Unix socket path", path);
            rc = -1;
        } else {
            n->addr.sun_family = AF_UNIX;
            memcpy(n->addr.sun_path, path, len);
            if (path[0] == '@')
                n->addr.sun_path[0] = 0; /* abstract namespace: no trailing NUL counted */
            n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                     (path[0] == '@' ? 0 : 1));
            n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (n->fd < 0) {
                snprintf(err, errlen, "socket(AF_UNIX, SOCK_DGRAM) failed for NOTIFY_SOCKET: %s",
                         strerror(errno));
                rc = -1;
            }
        }
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    return rc;
}

int sv_notify_send(struct sv_notify *n, const char *fmt, ...)
{
    if (n->fd < 0)
        return 0;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -EINVAL;
    if ((size_t)len >= sizeof msg)
        len = sizeof msg - 1;
    ssize_t w =
        sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&n->addr, n->addrlen);
    return w < 0 ? -errno : 0;
}

void sv_notify_free(struct sv_notify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
