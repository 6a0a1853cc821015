/* `vlembed-worker --check DIR`: load a checkpoint, embed two canary items (built here, without
 * the gateway) and print their checksums — for operators and GPU tests. docs/model.md. */
#ifndef VL_WORKER_CHECK_H
#define VL_WORKER_CHECK_H

/* argv[0] is "--check" (or any name); then DIR and options (--backend, --threads, --device).
 * Returns the process exit code: 0, or 100 (VL_EXIT_PERMANENT) for a bad checkpoint, option
 * or backend. */
int worker_check_main(int argc, char **argv);

#endif
