/* The public listening sockets, held by the supervisor for the whole life of the service so
 * that a gateway crash or restart refuses no connection: the kernel keeps queueing
 * connections on them (up to the backlog) while the next gateway starts; the gateway gets
 * them as inherited fds (--http-fd, --api-fd).
 *
 * They come from systemd socket activation (LISTEN_FDS, sd_listen_fds(3): fds from 3 on,
 * named by LISTEN_FDNAMES "http" / "api", else told apart by address family) or are bound
 * here from --http HOST:PORT and --api-socket PATH. */
#ifndef VL_SUPERVISOR_LISTEN_H
#define VL_SUPERVISOR_LISTEN_H

#include <stddef.h>

struct sv_listen {
    int http_fd;        /* -1 = none */
    int api_fd;         /* -1 = none */
    int http_activated; /* 1 = came from systemd */
    int api_activated;
    char api_path[108]; /* the path we bound (unlinked at exit); "" if activated */
};

void sv_listen_init(struct sv_listen *l);

/* Takes sockets passed by systemd, if LISTEN_PID is ours. Returns the number taken (0 if
 * none), or -1 with err set (a passed fd that is not a listening stream socket, an unknown
 * name). Unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES; marks the fds close-on-exec. */
int sv_listen_from_env(struct sv_listen *l, char *err, size_t errlen);

/* Binds and listens on HOST:PORT ("127.0.0.1:8080", "[::1]:8080", ":8080" = every address).
 * Returns the fd (close-on-exec), or -1 with err set. */
int sv_listen_tcp(const char *hostport, int backlog, char *err, size_t errlen);

/* Binds and listens on a Unix socket path with the given mode. A stale socket file (nobody
 * accepting) is replaced; a live one is an error, as is a path too long for sun_path (never
 * truncated). Returns the fd (close-on-exec), or -1 with err set. */
int sv_listen_unix(const char *path, unsigned mode, int backlog, char *err, size_t errlen);

/* Closes both; unlinks the Unix socket we bound ourselves. */
void sv_listen_close(struct sv_listen *l);

#endif
