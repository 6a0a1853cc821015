/* The supervisor's sockets and processes: systemd's LISTEN_FDS, its own binds (stale socket
 * replaced, live one refused, long path refused), control channels carrying framed msgpack
 * and refusing malformed or oversized maps, and spawning a child with fds at 3, 4... and an
 * environment. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/chan.h"
#include "supervisor/listen.h"
#include "supervisor/spawn.h"
#include "tests/test.h"

TEST(test_listen_fds_named)
{
    char err[256], path[64];
    snprintf(path, sizeof path, "/tmp/vl-lfd-%d.sock", (int)getpid());
    int a = sv_listen_tcp("127.0.0.1:0", 16, err, sizeof err);
    int b = sv_listen_unix(path, 0660, 16, err, sizeof err);
    CHECK(a >= 0 && b >= 0);
    /* systemd passes them from fd 3 on, in FileDescriptorName order */
    int hi_a = fcntl(a, F_DUPFD, 100), hi_b = fcntl(b, F_DUPFD, 100);
    close(a);
    close(b);
    CHECK(dup2(hi_b, 3) == 3 && dup2(hi_a, 4) == 4);
    close(hi_a);
    close(hi_b);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "api:http", 1);
    struct sv_listen l;
    sv_listen_init(&l);
    CHECK_EQ_INT(sv_listen_from_env(&l, err, sizeof err), 2);
    CHECK_EQ_INT(l.api_fd, 3);
    CHECK_EQ_INT(l.http_fd, 4);
    CHECK(l.http_activated && l.api_activated);
    CHECK(getenv("LISTEN_FDS") == NULL && getenv("LISTEN_PID") == NULL);
    CHECK_EQ_INT(fcntl(3, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

    /* unnamed: told apart by address family */
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    sv_listen_init(&l);
    CHECK_EQ_INT(sv_listen_from_env(&l, err, sizeof err), 2);
    CHECK_EQ_INT(l.api_fd, 3);
    CHECK_EQ_INT(l.http_fd, 4);

    /* meant for another process: ignored */
    setenv("LISTEN_PID", "1", 1);
    setenv("LISTEN_FDS", "2", 1);
    sv_listen_init(&l);
    CHECK_EQ_INT(sv_listen_from_env(&l, err, sizeof err), 0);

    /* systemd's default name (the socket unit's), shared by both: by address family */
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "vlembed.socket:vlembed.socket", 1);
    sv_listen_init(&l);
    CHECK_EQ_INT(sv_listen_from_env(&l, err, sizeof err), 2);
    CHECK_EQ_INT(l.api_fd, 3);
    CHECK_EQ_INT(l.http_fd, 4);

    /* two of a kind */
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "http:http", 1);
    sv_listen_init(&l);
    CHECK_EQ_INT(sv_listen_from_env(&l, err, sizeof err), -1);
    CHECK_CONTAINS(err, "two http sockets");
    close(3);
    close(4);
    unlink(path);
}

TEST(test_listen_fds_not_listening)
{
    int sp[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    int hi = fcntl(sp[0], F_DUPFD, 100);
    CHECK(dup2(hi, 3) == 3);
    char pid[16], err[256];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    unsetenv("LISTEN_FDNAMES");
    struct sv_listen l;
    sv_listen_init(&l);
    CHECK_EQ_INT(sv_listen_from_env(&l, err, sizeof err), -1);
    CHECK_CONTAINS(err, "not a listening stream socket");
    close(3);
    close(hi);
    close(sp[0]);
    close(sp[1]);
}

TEST(test_listen_unix_stale_live_long)
{
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/vl-stale-%d.sock", (int)getpid());
    int fd = sv_listen_unix(path, 0600, 4, err, sizeof err);
    CHECK(fd >= 0);
    /* live: someone accepts there */
    CHECK_EQ_INT(sv_listen_unix(path, 0600, 4, err, sizeof err), -1);
    CHECK_CONTAINS(err, "in use");
    close(fd); /* the file stays: now stale */
    fd = sv_listen_unix(path, 0600, 4, err, sizeof err);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);
    char longp[200];
    memset(longp, 'x', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = 0;
    CHECK_EQ_INT(sv_listen_unix(longp, 0600, 4, err, sizeof err), -1);
    CHECK_CONTAINS(err, "longer than");
    CHECK_EQ_INT(sv_listen_tcp("nocolon", 4, err, sizeof err), -1);
    CHECK_CONTAINS(err, "HOST:PORT");
}

/* Sends payload as one frame on fd; returns what sv_chan_next makes of it. */
static int chan_verdict(const uint8_t *payload, size_t len)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
        return -99;
    struct sv_chan c;
    sv_chan_init(&c, sp[1], 1024, 1024);
    uint8_t hdr[4];
    vl_frame_header(hdr, (uint32_t)len);
    if (write(sp[0], hdr, 4) != 4 || write(sp[0], payload, len) != (ssize_t)len)
        return -99;
    sv_chan_read(&c);
    msgpack_unpacked u;
    char err[256];
    int rc = sv_chan_next(&c, &u, err, sizeof err);
    if (rc == 1)
        msgpack_unpacked_destroy(&u);
    sv_chan_close(&c);
    close(sp[0]);
    return rc;
}

TEST(test_chan_refuses_bombs)
{
    /* {"type": "x"} */
    const uint8_t ok[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x'};
    CHECK_EQ_INT(chan_verdict(ok, sizeof ok), 1);
    CHECK_EQ_INT(chan_verdict(ok, sizeof ok - 1), -1); /* truncated map */
    /* array32 declaring 4 billion elements in 5 bytes: refused before msgpack-c allocates */
    const uint8_t bomb[] = {0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ_INT(chan_verdict(bomb, sizeof bomb), -1);
    /* str32 declaring 4 GiB */
    const uint8_t sbomb[] = {0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    CHECK_EQ_INT(chan_verdict(sbomb, sizeof sbomb), -1);
    /* nested deeper than the control channel allows (8) */
    uint8_t deep[24] = {0x81, 0xa1, 'a'};
    memset(deep + 3, 0x91, sizeof deep - 4);
    deep[sizeof deep - 1] = 0x01;
    CHECK_EQ_INT(chan_verdict(deep, sizeof deep), -1);
    const uint8_t not_map[] = {0x92, 0x01, 0x02};
    CHECK_EQ_INT(chan_verdict(not_map, sizeof not_map), -1);
}

TEST(test_chan_roundtrip)
{
    int sp[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    struct sv_chan a, b;
    sv_chan_init(&a, sp[0], 1024, 1 << 20);
    sv_chan_init(&b, sp[1], 1024, 1 << 20);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    vl_mp_pack_kv_str(&pk, "type", "drained");
    vl_mp_pack_kv_int(&pk, "id", 42);
    vl_mp_pack_kv_int(&pk, "neg", -7);
    CHECK_EQ_INT(sv_chan_send_sbuf(&a, &sb), 0);
    CHECK_EQ_INT(sv_chan_send_sbuf(&a, &sb), 0);
    msgpack_sbuffer_destroy(&sb);
    CHECK(sv_chan_read(&b) > 0);
    for (int i = 0; i < 2; i++) {
        msgpack_unpacked u;
        char err[128];
        CHECK_EQ_INT(sv_chan_next(&b, &u, err, sizeof err), 1);
        CHECK(sv_msg_type_is(&u.data, "drained"));
        int64_t v = 0;
        CHECK_EQ_INT(sv_msg_int(&u.data, "id", &v), 0);
        CHECK_EQ_INT(v, 42);
        CHECK_EQ_INT(sv_msg_int(&u.data, "neg", &v), 0);
        CHECK_EQ_INT(v, -7);
        char s[8];
        CHECK_EQ_INT(sv_msg_str(&u.data, "id", s, sizeof s), -1); /* wrong type */
        msgpack_unpacked_destroy(&u);
    }
    msgpack_unpacked u;
    char err[128];
    CHECK_EQ_INT(sv_chan_next(&b, &u, err, sizeof err), 0);
    /* a frame over the cap is refused before it is buffered */
    uint8_t hdr[4] = {0, 0, 0x10, 0};
    CHECK_EQ_INT(write(sp[0], hdr, 4), 4);
    CHECK_EQ_INT(sv_chan_read(&b), VL_FRAME_TOO_LARGE);
    /* the outgoing queue is bounded */
    struct sv_chan small;
    int sp2[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sp2), 0);
    sv_chan_init(&small, sp2[0], 1024, 64);
    uint8_t big[100] = {0x01};
    CHECK_EQ_INT(sv_chan_send(&small, big, sizeof big), -ENOBUFS);
    sv_chan_close(&small);
    close(sp2[1]);
    sv_chan_close(&a);
    CHECK_EQ_INT(sv_chan_read(&b), 0); /* EOF */
    sv_chan_close(&b);
}

TEST(test_spawn_fds_and_env)
{
    int sp[2];
    CHECK_EQ_INT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    int leak = open("/dev/null", O_RDONLY); /* not close-on-exec: must not reach the child */
    char leakstr[16];
    snprintf(leakstr, sizeof leakstr, "%d", leak);
    /* the child writes "$VL_T" to fd 3, checks fd 4 is open and fd `leak` is not */
    char script[256];
    snprintf(script, sizeof script,
             "printf %%s \"$VL_T\" >&3; [ -e /proc/self/fd/4 ] || exit 3; "
             "[ -e /proc/self/fd/%s ] && exit 4; exit 7",
             leakstr);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    struct sv_spawn s = {.path = "/bin/sh", .argv = argv};
    s.fds[s.n_fds++] = sp[1];
    s.fds[s.n_fds++] = sp[1];
    s.env[s.n_env++] = "VL_T=pinned";
    char err[256];
    /* the fd leak check needs every other fd close-on-exec, as the supervisor keeps them */
    fcntl(leak, F_SETFD, 0);
    pid_t pid = sv_spawn_run(&s, err, sizeof err);
    CHECK(pid > 0);
    close(sp[1]);
    int st = 0;
    CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st));
    /* close_range(CLOEXEC) in the child closes even fds the parent forgot */
    CHECK_EQ_INT(WEXITSTATUS(st), 7);
    char buf[32] = {0};
    CHECK_EQ_INT(read(sp[0], buf, sizeof buf - 1), 6);
    CHECK_EQ_STR(buf, "pinned");
    close(sp[0]);
    close(leak);

    char *bad[] = {"/nonexistent/vlembed-worker", NULL};
    struct sv_spawn s2 = {.path = bad[0], .argv = bad};
    CHECK_EQ_INT(sv_spawn_run(&s2, err, sizeof err), -1);
    CHECK_CONTAINS(err, "/nonexistent/vlembed-worker");
    while (waitpid(-1, &st, 0) > 0) {
    }
}

TEST_MAIN(test_listen_fds_named, test_listen_fds_not_listening, test_listen_unix_stale_live_long,
          test_chan_refuses_bombs, test_chan_roundtrip, test_spawn_fds_and_env)
