/* vlembed-supervisor as a library call: main.c only calls sv_main. */
#ifndef VL_SUPERVISOR_SUPER_H
#define VL_SUPERVISOR_SUPER_H

/* Loads the options, sets up sockets, starts the gateway and the workers and supervises
 * them until SIGTERM/SIGINT (graceful) or a fatal condition. Returns the process exit code:
 * 0 after a requested stop, 100 for a permanent failure (bad option, every device failed,
 * the gateway failing permanently), 111 for a transient one. */
int sv_main(int argc, char **argv);

#endif
