/* Every limit on outside input in one place, with its reason. Operator-tunable limits have
 * these as defaults (docs/limits.md lists them all); hard limits are compile-time caps. */
#ifndef VL_COMMON_LIMITS_H
#define VL_COMMON_LIMITS_H

/* Config: one value; longer is certainly a mistake (paths are < 4096). */
#define VL_CONFIG_VALUE_MAX 4096

/* Wire frames (4-byte length + msgpack map). Gateway<->worker frames carry resized pixels:
 * 64 items x one 1800-token image (~5.5 MB) fits well under 512 MiB; the default per-frame cap
 * between processes is 256 MiB. The public msgpack API defaults to 64 MiB per request. */
#define VL_FRAME_HEADER 4
#define VL_FRAME_MAX_INTERNAL (256u * 1024 * 1024)
#define VL_FRAME_MAX_API_DEFAULT (64u * 1024 * 1024)

/* The reference embedder's maximum sequence length (spec §6). */
#define VL_MAX_SEQ_TOKENS 8192

#endif
