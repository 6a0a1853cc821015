/* vlembed-supervisor: placeholder main until its issue lands. */
#include <stdio.h>

#include "common/exitcode.h"
#include "common/log.h"

int main(void)
{
    vl_log_init("supervisor", VL_LOG_INFO);
    vl_error("vlembed-supervisor is not implemented yet");
    return VL_EXIT_PERMANENT;
}
