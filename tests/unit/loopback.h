/* Client side of the unit tests that run a server on 127.0.0.1 (the gateway's HTTP server, a
 * stub media server): blocking sockets from a test thread. */
#ifndef VL_TESTS_UNIT_LOOPBACK_H
#define VL_TESTS_UNIT_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A TCP connection to 127.0.0.1:port with a 3 s receive timeout, or -1. */
static inline int lb_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Sends all n bytes, or stops quietly at the first error (a peer that closed: no SIGPIPE). */
static inline void lb_send_all(int fd, const void *b, size_t n)
{
    const char *p = b;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

/* Reads until n_resp complete HTTP responses (head + Content-Length body) have arrived, or EOF
 * or the timeout; *got = how many did. Returns them NUL-terminated in a static buffer. */
static inline char *lb_read_responses(int fd, int n_resp, int *got)
{
    static char buf[1 << 16];
    size_t len = 0;
    *got = 0;
    for (;;) {
        int cnt = 0;
        char *p = buf;
        buf[len] = 0;
        for (;;) {
            char *h = strstr(p, "\r\n\r\n");
            if (!h)
                break;
            char *cl = strstr(p, "Content-Length: ");
            if (!cl || cl > h)
                break;
            size_t blen = strtoul(cl + 16, NULL, 10);
            if ((size_t)(h + 4 - buf) + blen > len)
                break;
            cnt++;
            p = h + 4 + blen;
        }
        *got = cnt;
        if (cnt >= n_resp)
            return buf;
        ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
        if (k <= 0)
            return buf;
        len += (size_t)k;
    }
}

#endif
