/* API keys (gateway/auth.c) and per-client limits (gateway/clients.c): the keys file's format and
 * permission checks, errors that never contain a key, the Bearer / X-API-Key header forms, exact
 * matching (no prefix, no extension, no case folding), the token bucket's arithmetic, entry
 * lifetimes, and client address names. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/auth.h"
#include "gateway/clients.h"
#include "tests/test.h"

static char dir[64];

static const char *write_keys(const char *name, const char *text, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

#define K1 "sk-test-0123456789abcdef"
#define K2 "sk-test-fedcba9876543210"

TEST(test_load_ok)
{
    struct auth_keys k;
    char err[512] = "";
    const char *p =
        write_keys("ok", "# comment\n\n  " K1 "   team a  \r\n\t" K2 "\n#" K2 "x\n", 0600);
    CHECK_EQ_INT(auth_keys_load(&k, p, err, sizeof err), 0);
    CHECK_EQ_INT(k.n, 2);
    if (k.n == 2) {
        CHECK_EQ_STR(k.keys[0].key, K1);
        CHECK_EQ_STR(k.keys[0].label, "team a");
        CHECK_EQ_STR(k.keys[1].key, K2);
        CHECK_EQ_STR(k.keys[1].label, "line 4");
        CHECK(k.keys[0].id != k.keys[1].id);
    }
    CHECK_EQ_INT(auth_keys_find(&k, K1, strlen(K1)), 0);
    CHECK_EQ_INT(auth_keys_find(&k, K2, strlen(K2)), 1);
    CHECK_EQ_INT(auth_keys_find(&k, K1, strlen(K1) - 1), -1); /* a prefix */
    CHECK_EQ_INT(auth_keys_find(&k, K1 "0", strlen(K1) + 1), -1);
    CHECK_EQ_INT(auth_keys_find(&k, "SK-TEST-0123456789ABCDEF", strlen(K1)), -1);
    CHECK_EQ_INT(auth_keys_find(&k, "", 0), -1);
    char longkey[600];
    memset(longkey, 'a', sizeof longkey);
    CHECK_EQ_INT(auth_keys_find(&k, longkey, sizeof longkey), -1);
    auth_keys_free(&k);
    CHECK_EQ_INT(k.n, 0);
    /* group-readable is allowed (a group of readers), not group-writable */
    p = write_keys("g", K1 "\n", 0640);
    CHECK_EQ_INT(auth_keys_load(&k, p, err, sizeof err), 0);
    auth_keys_free(&k);
}

/* Each bad file is refused with a message naming the file (and line), never the key. */
TEST(test_load_refused)
{
    static const struct {
        const char *name, *text;
        mode_t mode;
        const char *expect;
    } cases[] = {
        {"world", K1 "\n", 0644, "mode 0644"},
        {"worldw", K1 "\n", 0602, "mode 0602"},
        {"groupw", K1 "\n", 0660, "mode 0660"},
        {"empty", "# only a comment\n\n", 0600, "no key"},
        {"short", "sk-short\n", 0600, "line 1: a key must be 16 to 256"},
        {"dup", K1 "\n" K2 "\n" K1 " again\n", 0600, "line 3: the same key as line 1"},
        {"ctrl",
         "sk-test-0123456789\x01"
         "abcdef\n",
         0600, "line 1: a key must be visible ASCII"},
        {"utf8",
         "sk-test-0123456789\xc3\xa9"
         "abcdef\n",
         0600, "visible ASCII"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct auth_keys k;
        char err[512] = "";
        const char *p = write_keys(cases[i].name, cases[i].text, cases[i].mode);
        CHECK_EQ_INT(auth_keys_load(&k, p, err, sizeof err), -1);
        CHECK_EQ_INT(k.n, 0);
        if (!strstr(err, cases[i].expect) || !strstr(err, p))
            TEST_FAIL_AT("%s: error \"%s\" lacks \"%s\" or the path", cases[i].name, err,
                         cases[i].expect);
        if (strstr(err, "0123456789") || strstr(err, "sk-short"))
            TEST_FAIL_AT("%s: the error shows a key: %s", cases[i].name, err);
    }
    struct auth_keys k;
    char err[512];
    CHECK_EQ_INT(auth_keys_load(&k, dir, err, sizeof err), -1); /* a directory */
    CHECK(strstr(err, "not a regular file") != NULL);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none", dir);
    CHECK_EQ_INT(auth_keys_load(&k, missing, err, sizeof err), -1);
    CHECK(strstr(err, "No such file") != NULL);
}

TEST(test_headers)
{
    const char *key;
    size_t len;
    CHECK_EQ_INT(auth_extract(NULL, NULL, &key, &len), AUTH_MISSING);
    CHECK_EQ_INT(auth_extract("Bearer " K1, NULL, &key, &len), AUTH_OK);
    CHECK(len == strlen(K1) && !memcmp(key, K1, len));
    CHECK_EQ_INT(auth_extract("  bearer \t" K1 "  ", NULL, &key, &len), AUTH_OK);
    CHECK(len == strlen(K1) && !memcmp(key, K1, len));
    CHECK_EQ_INT(auth_extract("BEARER " K1, NULL, &key, &len), AUTH_OK);
    CHECK_EQ_INT(auth_extract("Basic dXNlcjpwYXNz", NULL, &key, &len), AUTH_MALFORMED);
    CHECK_EQ_INT(auth_extract("Bearer", NULL, &key, &len), AUTH_MALFORMED);
    CHECK_EQ_INT(auth_extract("Bearer   ", NULL, &key, &len), AUTH_MALFORMED);
    CHECK_EQ_INT(auth_extract("Bearer" K1, NULL, &key, &len), AUTH_MALFORMED);
    CHECK_EQ_INT(auth_extract(NULL, K2, &key, &len), AUTH_OK);
    CHECK(len == strlen(K2) && !memcmp(key, K2, len));
    CHECK_EQ_INT(auth_extract(NULL, "", &key, &len), AUTH_MALFORMED);
    /* Authorization wins over X-API-Key */
    CHECK_EQ_INT(auth_extract("Bearer " K1, K2, &key, &len), AUTH_OK);
    CHECK(len == strlen(K1) && !memcmp(key, K1, len));

    struct auth_keys k;
    char err[256];
    CHECK_EQ_INT(auth_keys_load(&k, write_keys("h", K1 "\n" K2 "\n", 0600), err, sizeof err), 0);
    int idx = -1;
    CHECK_EQ_INT(auth_check(&k, "Bearer " K2, NULL, &idx), AUTH_OK);
    CHECK_EQ_INT(idx, 1);
    CHECK_EQ_INT(auth_check(&k, "Bearer sk-test-nope-nope-nope", NULL, &idx), AUTH_INVALID);
    CHECK_EQ_INT(auth_check(&k, "Bearer " K1, "whatever", &idx), AUTH_OK);
    CHECK_EQ_INT(idx, 0);
    CHECK_EQ_INT(auth_check(&k, "Token " K1, NULL, &idx), AUTH_MALFORMED);
    auth_keys_free(&k);
}

TEST(test_bucket)
{
    struct client_limits lim = {.max_inflight = 2, .rate = 2, .burst = 3};
    struct client_table t;
    clients_init(&t, &lim);
    uint64_t now = 1000, wait = 0;
    struct client *c = clients_get(&t, "1.2.3.4", now);
    CHECK(c != NULL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(clients_take(&t, c, now, &wait), 0);
    CHECK_EQ_INT(clients_take(&t, c, now, &wait), -1);
    CHECK(wait >= 500 && wait <= 501); /* 2 per second: the next token in 0.5 s */
    CHECK_EQ_INT(clients_take(&t, c, now + 499, &wait), -1);
    CHECK_EQ_INT(clients_take(&t, c, now + 500, &wait), 0);
    /* the bucket never holds more than burst */
    CHECK_EQ_INT(clients_take(&t, c, now + 100000, &wait), 0);
    CHECK_EQ_INT(clients_take(&t, c, now + 100000, &wait), 0);
    CHECK_EQ_INT(clients_take(&t, c, now + 100000, &wait), 0);
    CHECK_EQ_INT(clients_take(&t, c, now + 100000, &wait), -1);
    /* the same name is the same entry; another name another one */
    struct client *c2 = clients_get(&t, "1.2.3.4", now);
    CHECK(c2 == c);
    CHECK_EQ_INT(c->refs, 2);
    struct client *d = clients_get(&t, "5.6.7.8", now);
    CHECK(d != c);
    CHECK_EQ_INT(t.n, 2);
    clients_put(&t, c2, now + 100000);
    clients_put(&t, c, now + 100000);
    /* bucket empty: the entry stays (forgetting it would hand out a fresh burst) */
    CHECK_EQ_INT(t.n, 2);
    clients_put(&t, d, now); /* full bucket, no holder: freed at once */
    CHECK_EQ_INT(t.n, 1);
    c = clients_get(&t, "1.2.3.4", now + 100000);
    CHECK_EQ_INT(clients_take(&t, c, now + 100000, &wait), -1); /* remembered */
    clients_put(&t, c, now + 100000);
    clients_free(&t);

    /* without a rate, an entry lives exactly as long as it is held */
    struct client_limits lim2 = {.max_inflight = 1};
    clients_init(&t, &lim2);
    for (int i = 0; i < 5000; i++) {
        char name[32];
        snprintf(name, sizeof name, "10.0.%d.%d", i / 256, i % 256);
        c = clients_get(&t, name, 0);
        CHECK_EQ_INT(clients_take(&t, c, 0, &wait), 0);
        clients_put(&t, c, 0);
    }
    CHECK_EQ_INT(t.n, 0);
    clients_free(&t);
}

TEST(test_addr_names)
{
    char out[64];
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.7", &a4.sin_addr);
    clients_addr_name(&a4, out, sizeof out);
    CHECK_EQ_STR(out, "192.0.2.7");
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", &a6.sin6_addr);
    clients_addr_name(&a6, out, sizeof out);
    CHECK_EQ_STR(out, "2001:db8:1:2::/64");
    inet_pton(AF_INET6, "2001:db8:1:2::1", &a6.sin6_addr);
    clients_addr_name(&a6, out, sizeof out);
    CHECK_EQ_STR(out, "2001:db8:1:2::/64"); /* the same /64: the same client */
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &a6.sin6_addr);
    clients_addr_name(&a6, out, sizeof out);
    CHECK_EQ_STR(out, "192.0.2.7");
    struct sockaddr un = {.sa_family = AF_UNIX};
    clients_addr_name(&un, out, sizeof out);
    CHECK_EQ_STR(out, "local");
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/vl-auth-XXXXXX");
    if (!mkdtemp(dir))
        abort();
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    setup();
    test_load_ok();
    test_load_refused();
    test_headers();
    test_bucket();
    test_addr_names();
    teardown();
    printf("%s\n", test_failures ? "FAILED" : "ok");
    return test_failures ? 1 : 0;
}
