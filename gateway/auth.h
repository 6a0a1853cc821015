/* API keys for the HTTP API (docs/security.md): a keys file loaded at start and on SIGHUP, and
 * the check of the key a request presents (`Authorization: Bearer KEY`, or the `X-API-Key` /
 * `api-key` headers some clients send).
 *
 * Promises: a keys file that other users can read or write, that is not a regular file, or that
 * holds no key, a malformed line or a duplicate is refused as a whole (the keys loaded before
 * stay in force on a reload); a key is compared in time that depends only on the configured keys,
 * never on how much of the presented key matches; no key (configured or presented) is ever
 * written to a log or an answer: errors name the file and line only. */
#ifndef VL_GATEWAY_AUTH_H
#define VL_GATEWAY_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct auth_key {
    char *key; /* the secret (wiped on free) */
    size_t len;
    char label[64]; /* the rest of its line, or "line N": what logs may name */
    uint64_t id;    /* FNV-1a of the key: the per-key limits' identity (never logged) */
};

struct auth_keys {
    struct auth_key *keys;
    int n;
};

/* Loads PATH into k (which must be zeroed or freed). Returns 0, or -1 with err naming the file
 * and, for a bad line, its number. */
int auth_keys_load(struct auth_keys *k, const char *path, char *err, size_t errlen);
void auth_keys_free(struct auth_keys *k);

/* The index of the key equal to p[0..len) or -1. Time depends on the configured keys only. */
int auth_keys_find(const struct auth_keys *k, const char *p, size_t len);

enum auth_result { AUTH_OK = 0, AUTH_MISSING, AUTH_MALFORMED, AUTH_INVALID };

/* Picks the presented key from the headers (either may be NULL): `Authorization` wins when both
 * are present; it must use the Bearer scheme. On AUTH_OK the key is at *key, *len (a view into
 * the header). Otherwise AUTH_MISSING (no credential) or AUTH_MALFORMED (a credential that
 * cannot be a key: other scheme, empty). */
enum auth_result auth_extract(const char *authorization, const char *api_key_header,
                              const char **key, size_t *len);

/* Extract + find. *index is the key's index on AUTH_OK. */
enum auth_result auth_check(const struct auth_keys *k, const char *authorization,
                            const char *api_key_header, int *index);

#endif
