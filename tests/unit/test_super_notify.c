/* sd_notify without libsystemd: the datagrams arrive on the socket NOTIFY_SOCKET names (a path
 * or an abstract "@name"), the watchdog interval is read, and the variables are removed. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "supervisor/notify.h"
#include "tests/test.h"

static int bind_dgram(const char *name, int abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t len;
    if (abstract) {
        memcpy(sa.sun_path + 1, name, strlen(name));
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
    } else {
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", name);
        unlink(name);
        len = sizeof sa;
    }
    if (bind(fd, (struct sockaddr *)&sa, len) < 0)
        return -1;
    return fd;
}

static void recv_str(int fd, char *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap - 1, MSG_DONTWAIT);
    buf[n < 0 ? 0 : n] = 0;
}

TEST(test_path_socket)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/vl-notify-%d.sock", (int)getpid());
    int fd = bind_dgram(path, 0);
    CHECK(fd >= 0);
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "4000000", 1);
    unsetenv("WATCHDOG_PID");
    struct sv_notify n;
    char err[256];
    CHECK_EQ_INT(sv_notify_init(&n, err, sizeof err), 0);
    CHECK_EQ_INT(n.watchdog_usec, 4000000);
    CHECK(getenv("NOTIFY_SOCKET") == NULL);
    CHECK(getenv("WATCHDOG_USEC") == NULL);
    CHECK_EQ_INT(sv_notify_send(&n, "READY=1\nSTATUS=%s", "serving: 2/2"), 0);
    char buf[256];
    recv_str(fd, buf, sizeof buf);
    CHECK_EQ_STR(buf, "READY=1\nSTATUS=serving: 2/2");
    sv_notify_free(&n);
    close(fd);
    unlink(path);
}

TEST(test_abstract_socket_and_foreign_watchdog)
{
    char name[64];
    snprintf(name, sizeof name, "vl-notify-test-%d", (int)getpid());
    int fd = bind_dgram(name, 1);
    CHECK(fd >= 0);
    char env[80];
    snprintf(env, sizeof env, "@%s", name);
    setenv("NOTIFY_SOCKET", env, 1);
    setenv("WATCHDOG_USEC", "1000000", 1);
    setenv("WATCHDOG_PID", "1", 1); /* meant for another process: not ours to honour */
    struct sv_notify n;
    char err[256];
    CHECK_EQ_INT(sv_notify_init(&n, err, sizeof err), 0);
    CHECK_EQ_INT(n.watchdog_usec, 0);
    CHECK_EQ_INT(sv_notify_send(&n, "STOPPING=1"), 0);
    char buf[64];
    recv_str(fd, buf, sizeof buf);
    CHECK_EQ_STR(buf, "STOPPING=1");
    sv_notify_free(&n);
    close(fd);
}

TEST(test_disabled_and_malformed)
{
    unsetenv("NOTIFY_SOCKET");
    struct sv_notify n;
    char err[256];
    CHECK_EQ_INT(sv_notify_init(&n, err, sizeof err), 0);
    CHECK_EQ_INT(sv_notify_send(&n, "READY=1"), 0); /* a no-op */
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    CHECK_EQ_INT(sv_notify_init(&n, err, sizeof err), -1);
    CHECK_CONTAINS(err, "relative/path");
    CHECK_EQ_INT(n.fd, -1);
}

TEST_MAIN(test_path_socket, test_abstract_socket_and_foreign_watchdog, test_disabled_and_malformed)
