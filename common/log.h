/* One log function for every process: one line per event on stderr, prefixed with a
 * UTC timestamp, the process role (supervisor, gateway, worker[0], ctl) and the pid. */
#ifndef VL_COMMON_LOG_H
#define VL_COMMON_LOG_H

#include <stddef.h>

enum vl_log_level { VL_LOG_DEBUG = 0, VL_LOG_INFO, VL_LOG_WARN, VL_LOG_ERROR };

/* Sets the role printed on every line (copied, truncated to 31 bytes) and the threshold. */
void vl_log_init(const char *role, enum vl_log_level min_level);
void vl_log_set_level(enum vl_log_level min_level);
enum vl_log_level vl_log_level_parse(const char *s, int *ok);

/* Writes one line atomically (a single write(2)); newlines inside the message are escaped. */
void vl_log(enum vl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define vl_debug(...) vl_log(VL_LOG_DEBUG, __VA_ARGS__)
#define vl_info(...) vl_log(VL_LOG_INFO, __VA_ARGS__)
#define vl_warn(...) vl_log(VL_LOG_WARN, __VA_ARGS__)
#define vl_error(...) vl_log(VL_LOG_ERROR, __VA_ARGS__)

/* Formats an error message into err[errlen] (truncated; nothing when err is NULL or errlen 0):
 * the `char *err, size_t errlen` convention of every fallible function. */
void vl_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
