/* Listening sockets: systemd's or our own (see listen.h). */
#include "supervisor/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SD_LISTEN_FDS_START 3

void sv_listen_init(struct sv_listen *l)
{
    memset(l, 0, sizeof *l);
    l->http_fd = l->api_fd = -1;
}

/* Returns the address family of a listening stream socket, or -1. */
static int listening_family(int fd)
{
    int type = 0, acc = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
        return -1;
    len = sizeof acc;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc)
        return -1;
    struct sockaddr_storage ss;
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return ss.ss_family;
}

int sv_listen_from_env(struct sv_listen *l, char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char namebuf[512];
    snprintf(namebuf, sizeof namebuf, "%s", names ? names : "");
    int rc = 0;
    if (!pid || !fds || atol(pid) != (long)getpid())
        goto out;
    char *end;
    long n = strtol(fds, &end, 10);
    if (*end || n < 0 || n > 16) {
        snprintf(err, errlen, "LISTEN_FDS=\"%s\" is not a count of 0..16", fds);
        rc = -1;
        goto out;
    }
    char *save = NULL, *name = n > 0 && namebuf[0] ? strtok_r(namebuf, ":", &save) : NULL;
    for (long i = 0; i < n; i++, name = name ? strtok_r(NULL, ":", &save) : NULL) {
        int fd = SD_LISTEN_FDS_START + (int)i;
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        int fam = listening_family(fd);
        if (fam < 0) {
            snprintf(err, errlen, "systemd passed fd %d (%s) that is not a listening stream socket",
                     fd, name ? name : "unnamed");
            rc = -1;
            goto out;
        }
        /* FileDescriptorName=http / api; any other name (systemd's default is the socket
         * unit's name, shared by all its sockets) is told apart by address family. */
        int is_http;
        if (name && strcmp(name, "http") == 0)
            is_http = 1;
        else if (name && strcmp(name, "api") == 0)
            is_http = 0;
        else
            is_http = fam != AF_UNIX;
        int *slot = is_http ? &l->http_fd : &l->api_fd;
        if (*slot >= 0) {
            snprintf(err, errlen, "systemd passed two %s sockets", is_http ? "http" : "api");
            rc = -1;
            goto out;
        }
        *slot = fd;
        if (is_http)
            l->http_activated = 1;
        else
            l->api_activated = 1;
        rc++;
    }
out:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return rc;
}

int sv_listen_tcp(const char *hostport, int backlog, char *err, size_t errlen)
{
    char host[256], port[16];
    const char *colon = strrchr(hostport, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= sizeof port ||
        (size_t)(colon - hostport) >= sizeof host) {
        snprintf(err, errlen, "--http \"%s\": expected HOST:PORT", hostport);
        return -1;
    }
    size_t hlen = (size_t)(colon - hostport);
    memcpy(host, hostport, hlen);
    host[hlen] = 0;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = 0;
    }
    snprintf(port, sizeof port, "%s", colon + 1);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "--http \"%s\": getaddrinfo() failed: %s", hostport,
                 gai_strerror(gai));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, backlog) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "bind()/listen() on %s failed: %s", hostport, strerror(saved));
    return fd;
}

int sv_listen_unix(const char *path, unsigned mode, int backlog, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path || !path[0]) {
        snprintf(err, errlen, "socket path \"%s\" is empty or longer than %zu bytes", path,
                 sizeof sa.sun_path - 1);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "\"%s\" exists and is not a socket", path);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            snprintf(err, errlen, "\"%s\" is in use by a running process", path);
            return -1;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_UNIX) failed: %s", strerror(errno));
        return -1;
    }
    /* bind under a restrictive umask, then set the mode: no window where it is wider. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || chmod(path, mode) < 0 || listen(fd, backlog) < 0) {
        snprintf(err, errlen, "bind()/chmod()/listen() on \"%s\" failed: %s", path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void sv_listen_close(struct sv_listen *l)
{
    if (l->http_fd >= 0)
        close(l->http_fd);
    if (l->api_fd >= 0)
        close(l->api_fd);
    if (l->api_path[0])
        unlink(l->api_path);
    sv_listen_init(l);
}
