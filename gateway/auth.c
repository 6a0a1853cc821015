/* API keys: the keys file and the constant-time check (see auth.h; docs/security.md). */
#include "gateway/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/limits.h"

void auth_keys_free(struct auth_keys *k)
{
    for (int i = 0; i < k->n; i++) {
        explicit_bzero(k->keys[i].key, k->keys[i].len);
        free(k->keys[i].key);
    }
    free(k->keys);
    k->keys = NULL;
    k->n = 0;
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

/* Reads the whole file from an open fd, at most VL_API_KEYS_FILE_MAX bytes. */
static char *read_fd(int fd, size_t *out_len, const char *path, char *err, size_t errlen)
{
    size_t cap = 4096, len = 0;
    char *buf = vl_malloc(cap + 1);
    for (;;) {
        if (len == cap) {
            if (cap >= VL_API_KEYS_FILE_MAX) {
                snprintf(err, errlen, "api-keys-file %s: larger than %u bytes", path,
                         VL_API_KEYS_FILE_MAX);
                explicit_bzero(buf, len);
                free(buf);
                return NULL;
            }
            cap *= 2;
            buf = vl_realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "api-keys-file %s: read failed: %s", path, strerror(errno));
            explicit_bzero(buf, len);
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = 0;
    *out_len = len;
    return buf;
}

/* Parses the file text into k; on error k is left for the caller to free. */
static int parse_keys(struct auth_keys *k, char *text, size_t len, const char *path, char *err,
                      size_t errlen)
{
    int line = 0;
    char *p = text, *end = text + len;
    while (p < end) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        char *q = p;
        p = nl ? nl + 1 : end;
        while (q < eol && (*q == ' ' || *q == '\t'))
            q++;
        char *e = eol;
        while (e > q && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (q == e || *q == '#')
            continue;
        char *ke = q;
        while (ke < e && *ke != ' ' && *ke != '\t')
            ke++;
        size_t kl = (size_t)(ke - q);
        for (size_t i = 0; i < kl; i++) {
            if ((unsigned char)q[i] < 0x21 || (unsigned char)q[i] > 0x7e) {
                snprintf(err, errlen,
                         "api-keys-file %s line %d: a key must be visible ASCII characters only",
                         path, line);
                return -1;
            }
        }
        if (kl < VL_API_KEY_MIN || kl > VL_API_KEY_MAX) {
            snprintf(err, errlen,
                     "api-keys-file %s line %d: a key must be %d to %d characters long, not %zu",
                     path, line, VL_API_KEY_MIN, VL_API_KEY_MAX, kl);
            return -1;
        }
        if (k->n >= VL_API_KEYS_MAX) {
            snprintf(err, errlen, "api-keys-file %s: more than %d keys", path, VL_API_KEYS_MAX);
            return -1;
        }
        for (int i = 0; i < k->n; i++) {
            if (k->keys[i].len == kl && memcmp(k->keys[i].key, q, kl) == 0) {
                snprintf(err, errlen, "api-keys-file %s line %d: the same key as %s", path, line,
                         k->keys[i].label);
                return -1;
            }
        }
        char *lab = ke;
        while (lab < e && (*lab == ' ' || *lab == '\t'))
            lab++;
        if ((k->n & (k->n - 1)) == 0) /* 0, 1, 2, 4, ...: full, double */
            k->keys = vl_realloc(k->keys, (size_t)(k->n ? 2 * k->n : 1) * sizeof *k->keys);
        struct auth_key *a = &k->keys[k->n++];
        memset(a, 0, sizeof *a);
        a->key = vl_malloc(kl + 1);
        memcpy(a->key, q, kl);
        a->key[kl] = 0;
        a->len = kl;
        a->id = fnv1a(q, kl);
        if (lab < e) {
            size_t ll = (size_t)(e - lab);
            if (ll >= sizeof a->label)
                ll = sizeof a->label - 1;
            memcpy(a->label, lab, ll);
            a->label[ll] = 0;
            for (char *c = a->label; *c; c++) /* labels go to logs: keep them printable */
                if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                    *c = '?';
        } else
            snprintf(a->label, sizeof a->label, "line %d", line);
    }
    if (k->n == 0) {
        snprintf(err, errlen, "api-keys-file %s: no key in the file", path);
        return -1;
    }
    return 0;
}

int auth_keys_load(struct auth_keys *k, const char *path, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "api-keys-file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "api-keys-file %s: fstat failed: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "api-keys-file %s: not a regular file", path);
        close(fd);
        return -1;
    }
    /* checked on the opened file, so a rename in between cannot swap in another one */
    if (st.st_mode & (S_IRWXO | S_IWGRP)) {
        snprintf(err, errlen,
                 "api-keys-file %s: mode %04o lets other users read or change the keys; "
                 "chmod 600 (or 640 for a group of readers)",
                 path, (unsigned)(st.st_mode & 07777));
        close(fd);
        return -1;
    }
    size_t len = 0;
    char *text = read_fd(fd, &len, path, err, errlen);
    close(fd);
    if (!text)
        return -1;
    int rc = parse_keys(k, text, len, path, err, errlen);
    explicit_bzero(text, len);
    free(text);
    if (rc)
        auth_keys_free(k);
    return rc;
}

/* 0 when equal. Reads every byte of the configured key whatever p holds, so the time depends on
 * klen alone (p is indexed modulo its length; a length mismatch is folded into the result). */
static unsigned ct_compare(const char *key, size_t klen, const char *p, size_t plen)
{
    unsigned d = klen != plen;
    if (plen == 0)
        return 1;
    for (size_t i = 0; i < klen; i++)
        d |= (unsigned char)key[i] ^ (unsigned char)p[i % plen];
    return d;
}

int auth_keys_find(const struct auth_keys *k, const char *p, size_t len)
{
    if (len > VL_API_KEY_MAX) /* the maximum is public: saying "longer" leaks nothing */
        return -1;
    int found = -1;
    for (int i = 0; i < k->n; i++) { /* no early exit: every key is compared */
        unsigned d = ct_compare(k->keys[i].key, k->keys[i].len, p, len);
        /* branch-free select: mask is all ones when d == 0 */
        int mask = -(int)(d == 0);
        found = (found & ~mask) | (i & mask);
    }
    return found;
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

enum auth_result auth_extract(const char *authorization, const char *api_key_header,
                              const char **key, size_t *len)
{
    const char *v;
    if (authorization) {
        v = skip_ws(authorization);
        if (strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
            return AUTH_MALFORMED;
        v = skip_ws(v + 6);
    } else if (api_key_header) {
        v = skip_ws(api_key_header);
    } else
        return AUTH_MISSING;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0)
        return AUTH_MALFORMED;
    *key = v;
    *len = n;
    return AUTH_OK;
}

enum auth_result auth_check(const struct auth_keys *k, const char *authorization,
                            const char *api_key_header, int *index)
{
    const char *key;
    size_t len;
    enum auth_result r = auth_extract(authorization, api_key_header, &key, &len);
    if (r != AUTH_OK)
        return r;
    int i = auth_keys_find(k, key, len);
    if (i < 0)
        return AUTH_INVALID;
    *index = i;
    return AUTH_OK;
}
