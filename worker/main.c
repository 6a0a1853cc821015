/* vlembed-worker: placeholder main until its issue lands; `--check DIR` already works
 * (worker/check.c). */
#include <stdio.h>
#include <string.h>

#include "common/exitcode.h"
#include "common/log.h"
#include "worker/check.h"

int main(int argc, char **argv)
{
    vl_log_init("worker", VL_LOG_INFO);
    if (argc >= 2 && strcmp(argv[1], "--check") == 0)
        return worker_check_main(argc - 1, argv + 1);
    vl_error("vlembed-worker is not implemented yet (only --check DIR)");
    return VL_EXIT_PERMANENT;
}
