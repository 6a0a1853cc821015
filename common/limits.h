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

/* API keys (gateway/auth.c, docs/security.md). Shorter than 16 characters is guessable; longer
 * than 256 is no real key. A keys file over 1 MiB or 4096 keys is a mistake (a file of keys, not
 * a user database). */
#define VL_API_KEY_MIN 16
#define VL_API_KEY_MAX 256
#define VL_API_KEYS_MAX 4096
#define VL_API_KEYS_FILE_MAX (1u << 20)

/* Per-client limits (gateway/clients.c): clients tracked at once. An entry lives while its
 * client has a connection or a request open, or its token bucket is not yet full again; past
 * this many, a new client is refused (429) until idle entries expire. */
#define VL_CLIENTS_MAX 65536

/* Pixels one request may decode (gateway/pixel_budget.h): its images and video frames, summed
 * from their headers before anything is decoded. Decoding + resizing costs CPU by declared
 * pixels, not bytes (a 450-byte JPEG may declare 3.5 Mpx), and each image alone may have 50 M
 * (max_decoded_pixels): 64 of those would be 3.2 G pixels, ~30-50 core-seconds, from one small
 * request. The default admits the largest batch the other limits allow of normal photos:
 * --max-visuals (64) x 16 Mpx (the largest common phone output, 4608x3456 = 15.9 M; 12 Mpx
 * 4032x3024 is the usual), i.e. about 10-16 core-seconds of decoding (docs/media.md,
 * "Per-request decode budget", has the measurements and what it means for video files). */
#define VL_REQUEST_PIXELS_DEFAULT 1024000000LL
#define VL_REQUEST_PIXELS_DEFAULT_S "1024000000"

/* Bytes the gateway may buffer at once, summed over every request (gateway/membudget.h,
 * --max-buffered-bytes): HTTP bodies, fetched media bodies, decoded data: URIs / local files.
 * The per-request limits alone allow --max-connections (4096) x --max-body (32 MiB) = 128 GiB
 * of bodies, and one request of --max-visuals (64) URLs x 32 MiB = 2 GiB of fetched bodies
 * (video files: 256 MiB each). 4 GiB holds 128 maximal bodies or two maximal all-URL requests
 * at once, far above what a busy gateway holds for normal traffic (a 1 MiB JPEG per image), and
 * with the decoded pixels and the process itself (~1 GiB) stays well inside the memory of a
 * GPU host (>= 32 GiB); docs/security.md ("Buffered-bytes budget") argues it. */
#define VL_MAX_BUFFERED_BYTES_DEFAULT_S "4G"

/* A connection whose queued answers the kernel takes none of for this long is closed
 * (gateway/send_deadline.h, --send-timeout-s): a client reading at any rate frees some socket
 * buffer every round trip, so 30 s without a byte taken means it stopped reading (nginx's
 * send_timeout, the same rule between two writes, defaults to 60 s; half of it here because
 * what the gateway holds for such a client is answers it already computed). */
#define VL_SEND_TIMEOUT_MS_DEFAULT 30000
#define VL_SEND_TIMEOUT_DEFAULT_S "30"
/* Answer bytes queued for one connection above which the gateway stops taking its requests
 * (--max-unsent-bytes): 16 MiB holds a whole answer of the default --max-items (256) vectors of
 * the 8B model (4096 dimensions) as JSON (~12.6 MB), so a client that reads as it goes is never
 * paused, while one pipelining without reading holds at most this plus the answers of the
 * requests it has outstanding (--max-pipeline on HTTP, --max-msgpack-inflight, 256, on the socket).
 */
#define VL_MAX_UNSENT_BYTES_DEFAULT (16u << 20)
#define VL_MAX_UNSENT_BYTES_DEFAULT_S "16M"

/* glibc's mmap threshold in the gateway (mallopt M_MMAP_THRESHOLD): blocks this large or larger
 * are mmap()ed and go back to the kernel when freed, so the memory of a burst of large requests
 * does not stay in the process (gateway/main.c; docs/security.md, "Buffered-bytes budget").
 * 256 KiB: above the connections' read and staging buffers (64 KiB), below every body or image
 * worth returning. */
#define VL_GATEWAY_MMAP_THRESHOLD (256 * 1024)

/* Every VL_GATEWAY_TRIM_INTERVAL_MS the gateway calls malloc_trim(0) if at least
 * VL_GATEWAY_TRIM_MIN_BYTES of buffered bytes were released since its last trim: a large buffer
 * that glibc carved out of free heap space (instead of a fresh mmap) stays resident when freed
 * until the heap is trimmed. 1 s and 1 MiB: a burst's memory goes back within a second, and an
 * idle or text-only gateway never trims (a trim walks every arena's free chunks; about a
 * millisecond here). */
#define VL_GATEWAY_TRIM_INTERVAL_MS 1000
#define VL_GATEWAY_TRIM_MIN_BYTES (1 << 20)
/* ...and at once, after the loop iteration that saw it, once VL_GATEWAY_TRIM_BURST_BYTES were
 * released since the last trim: under a load of large requests the freed-but-resident memory
 * stays below about this much instead of a second's worth of traffic. */
#define VL_GATEWAY_TRIM_BURST_BYTES (8 << 20)

#endif
