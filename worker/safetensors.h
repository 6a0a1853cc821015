/* Read-only access to Hugging Face safetensors checkpoints: one `model.safetensors`, or the
 * shards named by `model.safetensors.index.json`. Files are mmap'ed read-only; tensors are
 * views (dtype, shape, pointer) into the mapping, never copies.
 *
 * File format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data area; offsets are relative to the data area.
 *
 * Everything read from a file is checked before use: the header length against the file size
 * and VL_ST_HEADER_MAX, every dtype (BF16, F16, F32 only), every shape (rank <= VL_ST_MAX_DIMS,
 * no overflow), every byte range (inside the data area, size = elements * dtype size, no two
 * tensors overlapping), names (non-empty, <= VL_ST_NAME_MAX bytes, unique across shards).
 * A violation is an error sentence naming the file and tensor; nothing here asserts on file
 * contents. */
#ifndef VL_WORKER_SAFETENSORS_H
#define VL_WORKER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* A header is JSON text for a few thousand tensors; 100 MB is far above any real checkpoint
 * (the 8B model's headers are ~100 kB) and keeps a hostile length from exhausting memory. */
#define VL_ST_HEADER_MAX (100u * 1024 * 1024)
#define VL_ST_MAX_DIMS 8
#define VL_ST_NAME_MAX 512
/* Shards per checkpoint: real ones have 1-10; the cap bounds the file table. */
#define VL_ST_MAX_FILES 1024

enum vl_dtype { VL_DTYPE_F32 = 0, VL_DTYPE_F16 = 1, VL_DTYPE_BF16 = 2 };

struct vl_st_tensor {
    char *name;
    enum vl_dtype dtype;
    int ndim;
    int64_t shape[VL_ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* into the read-only mapping */
    size_t nbytes;
    int file; /* index into vl_safetensors.files */
};

struct vl_st_file {
    char *path;
    void *map;
    size_t size;
};

struct vl_safetensors {
    struct vl_st_file *files;
    int n_files;
    struct vl_st_tensor *tensors; /* sorted by name */
    int n_tensors;
};

/* Bytes per element; 0 for an unknown value. */
size_t vl_dtype_size(enum vl_dtype d);
const char *vl_dtype_name(enum vl_dtype d);

/* Converts n elements of dtype d at src to float32 (bf16/f16 exactly; f32 copied). */
void vl_dtype_to_f32(enum vl_dtype d, const void *src, float *dst, size_t n);
static inline float vl_bf16_to_f32(uint16_t h)
{
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}
float vl_f16_to_f32(uint16_t h);

/* Parses one file's bytes (`buf`, `len`: the whole file, header and data) and appends its
 * tensors to *out (grown with realloc; *n_out updated) with `data` pointing into buf and
 * `file` = file_index. `what` names the file in errors. Pure function of its input: the fuzz
 * target and the unit tests call it on arbitrary bytes. Returns 0 or -1 with err set; on
 * error nothing is appended. */
int vl_st_parse(const uint8_t *buf, size_t len, int file_index, const char *what,
                struct vl_st_tensor **out, int *n_out, char *err, size_t errlen);

/* Opens a checkpoint directory: `model.safetensors.index.json` if present (every shard it
 * names is mapped; every tensor it lists must be in the shard it names), else
 * `model.safetensors`. Returns 0 or -1 with err; `st` is zeroed first and safe to free. */
int vl_st_open_dir(struct vl_safetensors *st, const char *dir, char *err, size_t errlen);

/* Maps and parses one file (appending to st). Returns 0 or -1 with err. */
int vl_st_open_file(struct vl_safetensors *st, const char *path, char *err, size_t errlen);

/* The tensor with this exact name, or NULL. */
const struct vl_st_tensor *vl_st_find(const struct vl_safetensors *st, const char *name);

/* Unmaps everything; safe on a zeroed or half-built struct. */
void vl_st_free(struct vl_safetensors *st);

#endif
