/* vlembed-worker: placeholder main until its issue lands. */
#include <stdio.h>

#include "common/exitcode.h"
#include "common/log.h"

int main(void)
{
    vl_log_init("worker", VL_LOG_INFO);
    vl_error("vlembed-worker is not implemented yet");
    return VL_EXIT_PERMANENT;
}
