/* GPU discovery through NVML (dlopen) or the NVIDIA driver's /proc files (see gpu.h). */
#include "supervisor/gpu.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- NVML, declared here: the supervisor has no NVIDIA headers and must build without them.
 * These prototypes are NVML's stable C ABI (nvml.h): every call returns 0 (NVML_SUCCESS) or
 * an error code; a device handle is an opaque pointer. */
typedef int (*nvml_init_fn)(void);
typedef int (*nvml_count_fn)(unsigned *);
typedef int (*nvml_handle_fn)(unsigned, void **);
typedef int (*nvml_str_fn)(void *, char *, unsigned);
typedef const char *(*nvml_errstr_fn)(int);

int sv_gpu_discover_nvml(struct sv_gpu *out, int max, char *err, size_t errlen)
{
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, errlen, "dlopen(libnvidia-ml.so.1) failed: %s", dlerror());
        return -1;
    }
    nvml_init_fn init = (nvml_init_fn)dlsym(lib, "nvmlInit_v2");
    nvml_init_fn shutdown = (nvml_init_fn)dlsym(lib, "nvmlShutdown");
    nvml_count_fn count = (nvml_count_fn)dlsym(lib, "nvmlDeviceGetCount_v2");
    nvml_handle_fn handle = (nvml_handle_fn)dlsym(lib, "nvmlDeviceGetHandleByIndex_v2");
    nvml_str_fn uuid = (nvml_str_fn)dlsym(lib, "nvmlDeviceGetUUID");
    nvml_str_fn name = (nvml_str_fn)dlsym(lib, "nvmlDeviceGetName");
    nvml_errstr_fn errstr = (nvml_errstr_fn)dlsym(lib, "nvmlErrorString");
    if (!init || !shutdown || !count || !handle || !uuid || !name) {
        snprintf(err, errlen, "libnvidia-ml.so.1 lacks an NVML entry point (nvmlInit_v2...)");
        dlclose(lib);
        return -1;
    }
    int rc = init();
    if (rc != 0) {
        snprintf(err, errlen, "nvmlInit_v2() failed: %s", errstr ? errstr(rc) : "error");
        dlclose(lib);
        return -1;
    }
    unsigned n = 0;
    int got = 0;
    rc = count(&n);
    if (rc != 0) {
        snprintf(err, errlen, "nvmlDeviceGetCount_v2() failed: %s", errstr ? errstr(rc) : "?");
        got = -1;
    }
    for (unsigned i = 0; got >= 0 && i < n && got < max; i++) {
        void *dev = NULL;
        struct sv_gpu *g = &out[got];
        memset(g, 0, sizeof *g);
        if (handle(i, &dev) != 0 || uuid(dev, g->uuid, sizeof g->uuid) != 0)
            continue; /* a device NVML cannot open is not one we can pin a worker to */
        if (name(dev, g->name, sizeof g->name) != 0)
            snprintf(g->name, sizeof g->name, "unknown");
        g->index = (int)i;
        got++;
    }
    shutdown();
    dlclose(lib);
    return got;
}

/* Copies the value after "Key:" (skipping blanks) up to the end of the line. */
static int field(const char *text, const char *key, char *dst, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, key, klen) != 0 || line[klen] != ':')
            continue;
        const char *v = line + klen + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strcspn(v, "\r\n");
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n >= cap)
            n = cap - 1;
        memcpy(dst, v, n);
        dst[n] = 0;
        return 0;
    }
    return -1;
}

int sv_gpu_parse_information(const char *text, struct sv_gpu *g)
{
    memset(g, 0, sizeof *g);
    if (field(text, "GPU UUID", g->uuid, sizeof g->uuid) < 0 || strncmp(g->uuid, "GPU-", 4) != 0)
        return -1;
    if (field(text, "Model", g->name, sizeof g->name) < 0)
        snprintf(g->name, sizeof g->name, "unknown");
    if (field(text, "Bus Location", g->bus, sizeof g->bus) < 0)
        g->bus[0] = 0;
    return 0;
}

static int cmp_bus(const void *a, const void *b)
{
    return strcmp(((const struct sv_gpu *)a)->bus, ((const struct sv_gpu *)b)->bus);
}

int sv_gpu_discover_proc(const char *root, struct sv_gpu *out, int max, char *err, size_t errlen)
{
    DIR *d = opendir(root);
    if (!d) {
        snprintf(err, errlen, "opendir(\"%s\") failed: %s", root, strerror(errno));
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (e->d_name[0] == '.')
            continue;
        char path[512], text[4096];
        snprintf(path, sizeof path, "%s/%s/information", root, e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        size_t len = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[len] = 0;
        if (sv_gpu_parse_information(text, &out[n]) < 0)
            continue;
        if (!out[n].bus[0])
            snprintf(out[n].bus, sizeof out[n].bus, "%.31s", e->d_name);
        n++;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_bus);
    for (int i = 0; i < n; i++)
        out[i].index = i;
    return n;
}

int sv_gpu_discover(struct sv_gpu *out, int max, const char **source, char *err, size_t errlen)
{
    char nvml_err[256];
    int n = sv_gpu_discover_nvml(out, max, nvml_err, sizeof nvml_err);
    if (n >= 0) {
        *source = "nvml";
        return n;
    }
    char proc_err[256];
    n = sv_gpu_discover_proc("/proc/driver/nvidia/gpus", out, max, proc_err, sizeof proc_err);
    if (n >= 0) {
        *source = "proc";
        return n;
    }
    snprintf(err, errlen, "no NVIDIA driver found (%s; %s)", nvml_err, proc_err);
    return -1;
}

int sv_gpu_select(const struct sv_gpu *all, int n, const char *list, int *picked, int max,
                  char *err, size_t errlen)
{
    if (!list || !*list || strcmp(list, "all") == 0) {
        int k = 0;
        for (int i = 0; i < n && k < max; i++)
            picked[k++] = i;
        return k;
    }
    int k = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        char tok[128];
        if (len == 0 || len >= sizeof tok) {
            snprintf(err, errlen, "--devices: empty or overlong entry in \"%s\"", list);
            return -1;
        }
        memcpy(tok, p, len);
        tok[len] = 0;
        int found = -1, matches = 0;
        char *end;
        long idx = strtol(tok, &end, 10);
        if (*end == 0 && end != tok) {
            for (int i = 0; i < n; i++)
                if (all[i].index == idx)
                    found = i, matches = 1;
        } else {
            for (int i = 0; i < n; i++)
                if (strncmp(all[i].uuid, tok, len) == 0)
                    found = i, matches++;
        }
        if (matches != 1) {
            snprintf(err, errlen, "--devices: \"%s\" %s (%d GPU%s found)", tok,
                     matches ? "matches more than one GPU" : "matches no GPU", n,
                     n == 1 ? "" : "s");
            return -1;
        }
        for (int j = 0; j < k; j++)
            if (picked[j] == found) {
                snprintf(err, errlen, "--devices: \"%s\" names a GPU twice", tok);
                return -1;
            }
        if (k == max) {
            snprintf(err, errlen, "--devices: more than %d entries", max);
            return -1;
        }
        picked[k++] = found;
        p += len;
        if (*p == ',')
            p++;
    }
    return k;
}
