/* Closed-loop load generator for the serving benchmark (bench/serve/run.sh).
 *
 *   loadgen http HOST:PORT BODY.json ITEMS CONNS SECONDS [PID...]
 *       POST /v1/embeddings, keep-alive
 *   loadgen worker SOCKET FRAME.bin ITEMS CONNS SECONDS [PID...]
 *       embed frames straight to a worker
 *
 * Each connection has one request outstanding at a time (one thread per connection, blocking
 * sockets); after a 1 s warm-up it counts completed requests, items, errors and each request's
 * latency, then prints one line: requests/s, items/s, p50, p90, p99 latency (ms), errors, and
 * for each PID given the CPU it used over the measured window in cores (user + system time from
 * /proc/PID/stat divided by wall time; "cpu=1.93,0.41" in PID order, -1 if unreadable).
 * In worker mode FRAME.bin is a whole frame (4-byte length + msgpack embed map) holding ITEMS
 * items; a request is complete when ITEMS answers have come back (one or more result frames). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int mode_http;
static const char *target;
static char *payload;
static size_t payload_len;
static int items_per_req = 1;
static double seconds;
static volatile int stop;
static double t_measure;

struct stats {
    double *lat;
    size_t n, cap;
    long errors;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(void)
{
    if (mode_http) {
        char host[256];
        snprintf(host, sizeof host, "%s", target);
        char *colon = strrchr(host, ':');
        *colon = 0;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
        if (getaddrinfo(host, colon + 1, &hints, &ai))
            return -1;
        int fd = socket(ai->ai_family, SOCK_STREAM, 0);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen)) {
            close(fd);
            fd = -1;
        }
        freeaddrinfo(ai);
        return fd;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", target);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int read_all(int fd, char *p, size_t n)
{
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One HTTP exchange on fd: returns the status or -1. */
static int http_once(int fd, char **buf, size_t *cap)
{
    if (write_all(fd, payload, payload_len))
        return -1;
    size_t len = 0;
    for (;;) {
        if (len + 65536 > *cap) {
            *cap = (*cap + 65536) * 2;
            *buf = realloc(*buf, *cap);
        }
        ssize_t k = read(fd, *buf + len, *cap - len - 1);
        if (k <= 0)
            return -1;
        len += (size_t)k;
        (*buf)[len] = 0;
        char *h = strstr(*buf, "\r\n\r\n");
        if (!h)
            continue;
        char *cl = strcasestr(*buf, "content-length:");
        if (!cl || cl > h)
            return -1;
        size_t blen = strtoul(cl + 15, NULL, 10);
        size_t need = (size_t)(h + 4 - *buf) + blen;
        while (len < need) {
            if (need + 1 > *cap) {
                *cap = need + 1;
                *buf = realloc(*buf, *cap);
            }
            k = read(fd, *buf + len, need - len);
            if (k <= 0)
                return -1;
            len += (size_t)k;
        }
        return atoi(*buf + 9);
    }
}

/* Counts "id" answers in result frames until `want` items came back. */
static int worker_once(int fd, char **buf, size_t *cap)
{
    if (write_all(fd, payload, payload_len))
        return -1;
    int got = 0;
    while (got < items_per_req) {
        unsigned char hdr[4];
        if (read_all(fd, (char *)hdr, 4))
            return -1;
        size_t n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
        if (n + 1 > *cap) {
            *cap = n + 1;
            *buf = realloc(*buf, *cap);
        }
        if (read_all(fd, *buf, n))
            return -1;
        /* count the items of a result frame: each answer has an "id" key (a2 69 64);
         * "embedding" (a9 ...) answers are the successes */
        const char *p = *buf;
        int ids = 0, ok = 0;
        for (size_t i = 0; i + 3 <= n; i++) {
            if (memcmp(p + i, "\xa2id", 3) == 0)
                ids++;
            if (i + 10 <= n && memcmp(p + i,
                                      "\xa9"
                                      "embedding",
                                      10) == 0)
                ok++;
        }
        if (ids == 0)
            continue; /* hello */
        if (ok != ids)
            return 500;
        got += ids;
    }
    return 200;
}

static void *conn_main(void *arg)
{
    struct stats *st = arg;
    int fd = dial();
    char *buf = NULL;
    size_t cap = 0;
    if (fd < 0) {
        st->errors++;
        return NULL;
    }
    if (!mode_http) { /* the worker's hello */
        unsigned char hdr[4];
        read_all(fd, (char *)hdr, 4);
        size_t n = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
        buf = malloc(n + 1);
        cap = n + 1;
        read_all(fd, buf, n);
    }
    while (!stop) {
        double t0 = now();
        int s = mode_http ? http_once(fd, &buf, &cap) : worker_once(fd, &buf, &cap);
        double t1 = now();
        if (t0 < t_measure)
            continue;
        if (s != 200) {
            st->errors++;
            if (s < 0) {
                close(fd);
                fd = dial();
                if (fd < 0)
                    break;
            }
            continue;
        }
        if (st->n == st->cap) {
            st->cap = st->cap * 2 + 1024;
            st->lat = realloc(st->lat, st->cap * sizeof *st->lat);
        }
        st->lat[st->n++] = (t1 - t0) * 1e3;
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

/* utime + stime of pid in seconds, or -1. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces; the fields after it do not */
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: loadgen http HOST:PORT BODY ITEMS CONNS SECONDS [PID...]\n"
                        "       loadgen worker SOCKET FRAME ITEMS CONNS SECONDS [PID...]\n");
        return 2;
    }
    mode_http = strcmp(argv[1], "http") == 0;
    target = argv[2];
    FILE *f = fopen(argv[3], "rb");
    if (!f) {
        perror(argv[3]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long blen = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)blen);
    size_t got = fread(body, 1, (size_t)blen, f);
    fclose(f);
    if (got != (size_t)blen) {
        free(body);
        return 2;
    }
    int argi = 4;
    items_per_req = atoi(argv[argi++]);
    int conns = atoi(argv[argi++]);
    seconds = atof(argv[argi++]);
    int npids = argc - argi;
    int *pids = calloc((size_t)(npids ? npids : 1), sizeof *pids);
    double *cpu0 = calloc((size_t)(npids ? npids : 1), sizeof *cpu0);
    for (int i = 0; i < npids; i++)
        pids[i] = atoi(argv[argi + i]);
    if (mode_http) {
        char head[512];
        int hl = snprintf(head, sizeof head,
                          "POST /v1/embeddings HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                          "application/json\r\nContent-Length: %ld\r\n\r\n",
                          blen);
        payload = malloc((size_t)hl + (size_t)blen);
        memcpy(payload, head, (size_t)hl);
        memcpy(payload + hl, body, (size_t)blen);
        payload_len = (size_t)hl + (size_t)blen;
    } else {
        payload = body;
        payload_len = (size_t)blen;
    }
    struct stats *st = calloc((size_t)conns, sizeof *st);
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    t_measure = now() + 1.0;
    for (int i = 0; i < conns; i++)
        pthread_create(&th[i], NULL, conn_main, &st[i]);
    struct timespec warm = {.tv_sec = 1};
    nanosleep(&warm, NULL); /* the warm-up second; CPU is counted from here, like requests */
    double c_t0 = now();
    for (int i = 0; i < npids; i++)
        cpu0[i] = proc_cpu_s(pids[i]);
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (long)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    stop = 1;
    double elapsed = now() - t_measure;
    double c_wall = now() - c_t0;
    char cpu[512] = "";
    size_t cl = 0;
    for (int i = 0; i < npids && cl + 32 < sizeof cpu; i++) {
        double c1 = proc_cpu_s(pids[i]);
        double cores = cpu0[i] < 0 || c1 < 0 ? -1 : (c1 - cpu0[i]) / c_wall;
        cl += (size_t)snprintf(cpu + cl, sizeof cpu - cl, "%s%.2f", i ? "," : " cpu=", cores);
    }
    for (int i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
    size_t n = 0;
    long errors = 0;
    for (int i = 0; i < conns; i++)
        n += st[i].n, errors += st[i].errors;
    double *all = malloc((n ? n : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < conns; i++)
        for (size_t j = 0; j < st[i].n; j++)
            all[k++] = st[i].lat[j];
    qsort(all, n, sizeof *all, cmp);
    double p50 = n ? all[n / 2] : 0, p90 = n ? all[n * 9 / 10] : 0, p99 = n ? all[n * 99 / 100] : 0;
    printf("conns=%d requests=%zu req/s=%.1f items/s=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
           "errors=%ld%s\n",
           conns, n, n / elapsed, n * (double)items_per_req / elapsed, p50, p90, p99, errors, cpu);
    return errors ? 1 : 0;
}
