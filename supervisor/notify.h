/* sd_notify without libsystemd: one datagram per message to the Unix socket named by
 * $NOTIFY_SOCKET (a path, or "@name" for systemd's abstract socket). Messages used:
 * READY=1, RELOADING=1 (+ MONOTONIC_USEC=), STOPPING=1, STATUS=..., WATCHDOG=1,
 * EXTEND_TIMEOUT_USEC=... (sd_notify(3)). Without $NOTIFY_SOCKET every send is a no-op.
 *
 * The watchdog interval comes from $WATCHDOG_USEC (honoured only if $WATCHDOG_PID is unset or
 * ours); the caller pings at half of it. sv_notify_init removes these variables from the
 * environment so the children never see them. */
#ifndef VL_SUPERVISOR_NOTIFY_H
#define VL_SUPERVISOR_NOTIFY_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct sv_notify {
    int fd; /* -1 = disabled */
    struct sockaddr_un addr;
    socklen_t addrlen;
    int64_t watchdog_usec; /* 0 = no watchdog */
};

/* Reads the environment. Returns 0 (enabled or not), or -1 if $NOTIFY_SOCKET is malformed
 * (err says why; notifications are then disabled). */
int sv_notify_init(struct sv_notify *n, char *err, size_t errlen);

/* Sends one message (several "KEY=value" lines joined by '\n'). Returns 0, or -errno (logged
 * by the caller; a failed notification never stops the supervisor). */
int sv_notify_send(struct sv_notify *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void sv_notify_free(struct sv_notify *n);

#endif
