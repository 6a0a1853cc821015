/* One line per event: "2026-11-27T15:10:11.123Z gateway[1234] info: message". */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char log_role[32] = "vlembed";
static enum vl_log_level log_min = VL_LOG_INFO;

void vl_log_init(const char *role, enum vl_log_level min_level)
{
    snprintf(log_role, sizeof log_role, "%s", role ? role : "vlembed");
    log_min = min_level;
}

void vl_log_set_level(enum vl_log_level min_level)
{
    log_min = min_level;
}

enum vl_log_level vl_log_level_parse(const char *s, int *ok)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *ok = 1;
            return (enum vl_log_level)i;
        }
    *ok = 0;
    return VL_LOG_INFO;
}

void vl_log(enum vl_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < log_min)
        return;
    char msg[2048], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(
        line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %s: ", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
        log_role, (int)getpid(), names[level < 0 || level > 3 ? 1 : level]);
    for (const char *p = msg; *p && n < (int)sizeof line - 3; p++) {
        if (*p == '\n') {
            line[n++] = '\\';
            line[n++] = 'n';
        } else {
            line[n++] = *p;
        }
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void vl_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
