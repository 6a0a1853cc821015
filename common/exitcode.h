/* Process exit codes: a contract between every vlembed process, the supervisor and systemd.
 *   0   clean stop
 *   100 permanent failure (bad config, bad checkpoint, no such device): do not restart
 *   111 transient failure: restart (with backoff)
 * Death by a signal (including abort() on a CUDA error) is treated as transient. */
#ifndef VL_COMMON_EXITCODE_H
#define VL_COMMON_EXITCODE_H

#define VL_EXIT_OK 0
#define VL_EXIT_PERMANENT 100
#define VL_EXIT_TRANSIENT 111

#endif
