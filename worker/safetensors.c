/* safetensors reader: bounded header parser, read-only mappings, sharded checkpoints.
 * See safetensors.h for the format and what is validated. */
#include "worker/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"

size_t vl_dtype_size(enum vl_dtype d)
{
    switch (d) {
    case VL_DTYPE_F32:
        return 4;
    case VL_DTYPE_F16:
        return 2;
    case VL_DTYPE_BF16:
        return 2;
    }
    return 0;
}

const char *vl_dtype_name(enum vl_dtype d)
{
    switch (d) {
    case VL_DTYPE_F32:
        return "F32";
    case VL_DTYPE_F16:
        return "F16";
    case VL_DTYPE_BF16:
        return "BF16";
    }
    return "?";
}

float vl_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    union {
        uint32_t u;
        float f;
    } v = {.u = u};
    return v.f;
}

void vl_dtype_to_f32(enum vl_dtype d, const void *src, float *dst, size_t n)
{
    const uint16_t *h = src;
    switch (d) {
    case VL_DTYPE_F32:
        memcpy(dst, src, n * 4);
        break;
    case VL_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t x;
            memcpy(&x, h + i, 2); /* mapping offsets need not be 2-aligned */
            dst[i] = vl_bf16_to_f32(x);
        }
        break;
    case VL_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t x;
            memcpy(&x, h + i, 2);
            dst[i] = vl_f16_to_f32(x);
        }
        break;
    }
}

/* A JSON number that is a non-negative integer <= max (exactly representable). */
static int json_uint(const cJSON *j, double max, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return -1;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= max) || v != (double)(uint64_t)v)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int cmp_begin(const void *a, const void *b)
{
    const struct vl_st_tensor *x = a, *y = b;
    uintptr_t pa = (uintptr_t)x->data, pb = (uintptr_t)y->data;
    if (pa != pb)
        return pa < pb ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct vl_st_tensor *)a)->name, ((const struct vl_st_tensor *)b)->name);
}

static void tensors_free(struct vl_st_tensor *t, int n)
{
    for (int i = 0; i < n; i++)
        free(t[i].name);
}

int vl_st_parse(const uint8_t *buf, size_t len, int file_index, const char *what,
                struct vl_st_tensor **out, int *n_out, char *err, size_t errlen)
{
    if (len < 8) {
        snprintf(err, errlen, "%s: truncated safetensors file (%zu bytes, need at least 8)", what,
                 len);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen < 2 || hlen > VL_ST_HEADER_MAX || hlen > len - 8) {
        snprintf(err, errlen,
                 "%s: safetensors header length %llu is invalid for a file of %zu bytes "
                 "(truncated or corrupt file; limit %u)",
                 what, (unsigned long long)hlen, len, VL_ST_HEADER_MAX);
        return -1;
    }
    const uint8_t *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        snprintf(err, errlen, "%s: safetensors header is not a JSON object (corrupt file)", what);
        cJSON_Delete(root);
        return -1;
    }
    int cap = cJSON_GetArraySize(root), n = 0;
    struct vl_st_tensor *t = vl_calloc((size_t)cap + 1, sizeof *t);
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        const char *name = e->string ? e->string : "";
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                snprintf(err, errlen, "%s: __metadata__ is not an object", what);
                goto fail;
            }
            continue;
        }
        size_t nl = strlen(name);
        if (nl == 0 || nl > VL_ST_NAME_MAX) {
            snprintf(err, errlen, "%s: tensor name of %zu bytes (must be 1..%d)", what, nl,
                     VL_ST_NAME_MAX);
            goto fail;
        }
        if (!cJSON_IsObject(e)) {
            snprintf(err, errlen, "%s: tensor %s: entry is not an object", what, name);
            goto fail;
        }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo)) {
            snprintf(err, errlen,
                     "%s: tensor %s: needs string dtype, array shape and array "
                     "data_offsets",
                     what, name);
            goto fail;
        }
        struct vl_st_tensor *x = &t[n];
        if (!strcmp(jd->valuestring, "BF16"))
            x->dtype = VL_DTYPE_BF16;
        else if (!strcmp(jd->valuestring, "F16"))
            x->dtype = VL_DTYPE_F16;
        else if (!strcmp(jd->valuestring, "F32"))
            x->dtype = VL_DTYPE_F32;
        else {
            snprintf(err, errlen, "%s: tensor %s: unsupported dtype %.32s (BF16, F16, F32 only)",
                     what, name, jd->valuestring);
            goto fail;
        }
        int nd = cJSON_GetArraySize(js);
        if (nd > VL_ST_MAX_DIMS) {
            snprintf(err, errlen, "%s: tensor %s: rank %d exceeds %d", what, name, nd,
                     VL_ST_MAX_DIMS);
            goto fail;
        }
        x->ndim = nd;
        size_t numel = 1;
        for (int d = 0; d < nd; d++) {
            uint64_t v;
            if (json_uint(cJSON_GetArrayItem(js, d), 9007199254740991.0, &v) ||
                !vl_mul_ok(numel, (size_t)v, &numel) || numel > (size_t)INT64_MAX) {
                snprintf(err, errlen, "%s: tensor %s: shape[%d] is not a valid dimension", what,
                         name, d);
                goto fail;
            }
            x->shape[d] = (int64_t)v;
        }
        uint64_t b, en;
        if (cJSON_GetArraySize(jo) != 2 ||
            json_uint(cJSON_GetArrayItem(jo, 0), 9007199254740991.0, &b) ||
            json_uint(cJSON_GetArrayItem(jo, 1), 9007199254740991.0, &en)) {
            snprintf(err, errlen, "%s: tensor %s: data_offsets must be two non-negative integers",
                     what, name);
            goto fail;
        }
        size_t nbytes;
        if (!vl_mul_ok(numel, vl_dtype_size(x->dtype), &nbytes) || en < b || en - b != nbytes) {
            snprintf(err, errlen,
                     "%s: tensor %s: data_offsets [%llu, %llu] do not hold %zu elements of %s",
                     what, name, (unsigned long long)b, (unsigned long long)en, numel,
                     vl_dtype_name(x->dtype));
            goto fail;
        }
        if (en > data_len) {
            snprintf(err, errlen,
                     "%s: tensor %s: data_offsets [%llu, %llu] run past the end of the data "
                     "(%zu bytes; truncated file?)",
                     what, name, (unsigned long long)b, (unsigned long long)en, data_len);
            goto fail;
        }
        x->numel = (int64_t)numel;
        x->nbytes = nbytes;
        x->data = data + b;
        x->file = file_index;
        x->name = vl_strdup(name);
        n++;
    }
    cJSON_Delete(root);
    root = NULL;
    /* No two tensors may share bytes. */
    qsort(t, (size_t)n, sizeof *t, cmp_begin);
    for (int i = 1; i < n; i++) {
        const uint8_t *prev_end = (const uint8_t *)t[i - 1].data + t[i - 1].nbytes;
        if ((const uint8_t *)t[i].data < prev_end) {
            snprintf(err, errlen, "%s: tensors %s and %s overlap in the file", what, t[i - 1].name,
                     t[i].name);
            goto fail;
        }
    }
    qsort(t, (size_t)n, sizeof *t, cmp_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(t[i - 1].name, t[i].name)) {
            snprintf(err, errlen, "%s: tensor %s appears twice", what, t[i].name);
            goto fail;
        }
    *out = vl_realloc(*out, ((size_t)*n_out + (size_t)n + 1) * sizeof **out);
    memcpy(*out + *n_out, t, (size_t)n * sizeof *t);
    *n_out += n;
    free(t);
    return 0;
fail:
    cJSON_Delete(root);
    tensors_free(t, n);
    free(t);
    return -1;
}

int vl_st_open_file(struct vl_safetensors *st, const char *path, char *err, size_t errlen)
{
    if (st->n_files >= VL_ST_MAX_FILES) {
        snprintf(err, errlen, "%s: more than %d safetensors files", path, VL_ST_MAX_FILES);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "open(\"%s\") failed: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            snprintf(err, errlen, "mmap(\"%s\", %zu bytes) failed: %s", path, size,
                     strerror(errno));
            close(fd);
            return -1;
        }
    }
    close(fd);
    int idx = st->n_files;
    int before = st->n_tensors;
    if (vl_st_parse(map ? map : (const void *)"", size, idx, path, &st->tensors, &st->n_tensors,
                    err, errlen) != 0) {
        if (map)
            munmap(map, size);
        return -1;
    }
    st->files = vl_realloc(st->files, ((size_t)idx + 1) * sizeof *st->files);
    st->files[idx] = (struct vl_st_file){.path = vl_strdup(path), .map = map, .size = size};
    st->n_files++;
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_name);
    for (int i = 1; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name)) {
            snprintf(err, errlen, "tensor %s appears in two shards (%s and %s)",
                     st->tensors[i].name, st->files[st->tensors[i - 1].file].path,
                     st->files[st->tensors[i].file].path);
            (void)before;
            return -1;
        }
    return 0;
}

static char *read_small_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rbe");
    if (!f) {
        snprintf(err, errlen, "open(\"%s\") failed: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = vl_malloc(max + 1);
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "file too large");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

int vl_st_open_dir(struct vl_safetensors *st, const char *dir, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir) >=
        sizeof path) {
        snprintf(err, errlen, "model directory path too long");
        return -1;
    }
    if (access(path, F_OK) != 0) {
        if ((size_t)snprintf(path, sizeof path, "%s/model.safetensors", dir) >= sizeof path) {
            snprintf(err, errlen, "model directory path too long");
            return -1;
        }
        return vl_st_open_file(st, path, err, errlen);
    }
    size_t len;
    char *text = read_small_file(path, 64u * 1024 * 1024, &len, err, errlen);
    if (!text)
        return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        snprintf(err, errlen, "%s: not JSON with a \"weight_map\" object", path);
        cJSON_Delete(root);
        return -1;
    }
    const cJSON *e;
    int rc = 0;
    /* Open each distinct shard once, in order of first mention. */
    cJSON_ArrayForEach(e, wm)
    {
        const char *shard = cJSON_IsString(e) ? e->valuestring : NULL;
        if (!shard || !*shard || strchr(shard, '/') || !strcmp(shard, ".") ||
            !strcmp(shard, "..")) {
            snprintf(err, errlen,
                     "model.safetensors.index.json: weight_map[\"%.200s\"] is not a "
                     "file name in the model directory",
                     e->string ? e->string : "");
            rc = -1;
            break;
        }
        char sp[PATH_MAX];
        if ((size_t)snprintf(sp, sizeof sp, "%s/%s", dir, shard) >= sizeof sp) {
            snprintf(err, errlen, "shard path too long");
            rc = -1;
            break;
        }
        int seen = 0;
        for (int f = 0; f < st->n_files && !seen; f++)
            seen = !strcmp(st->files[f].path, sp);
        if (!seen && (rc = vl_st_open_file(st, sp, err, errlen)) != 0)
            break;
    }
    /* Every listed tensor must be in the shard the index names. */
    if (rc == 0) {
        cJSON_ArrayForEach(e, wm)
        {
            const struct vl_st_tensor *t = vl_st_find(st, e->string);
            char sp[PATH_MAX];
            snprintf(sp, sizeof sp, "%s/%s", dir, e->valuestring);
            if (!t || strcmp(st->files[t->file].path, sp) != 0) {
                snprintf(err, errlen,
                         "model.safetensors.index.json lists tensor %.200s in %.200s, but that "
                         "shard does not hold it",
                         e->string, e->valuestring);
                rc = -1;
                break;
            }
        }
    }
    cJSON_Delete(root);
    return rc;
}

const struct vl_st_tensor *vl_st_find(const struct vl_safetensors *st, const char *name)
{
    if (!st->tensors || !name)
        return NULL;
    struct vl_st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->tensors, (size_t)st->n_tensors, sizeof key, cmp_name);
}

void vl_st_free(struct vl_safetensors *st)
{
    if (!st)
        return;
    tensors_free(st->tensors, st->n_tensors);
    free(st->tensors);
    for (int i = 0; i < st->n_files; i++) {
        if (st->files[i].map)
            munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    free(st->files);
    memset(st, 0, sizeof *st);
}
