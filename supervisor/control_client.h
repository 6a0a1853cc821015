/* The client side of the supervisor's control socket, for vlembedctl and tests. */
#ifndef VL_SUPERVISOR_CONTROL_CLIENT_H
#define VL_SUPERVISOR_CONTROL_CLIENT_H

#include <msgpack.h>
#include <stdio.h>
#include <stddef.h>

/* The runtime directory vlembedctl uses when not told: $VLEMBED_RUNTIME_DIR, else
 * $RUNTIME_DIRECTORY (set by systemd for ExecReload=), else /run/vlembed. */
const char *sv_ctl_default_runtime_dir(void);

/* Connects to RUNTIME-DIR/control.sock, sends {type: TYPE}, waits for one reply map
 * (timeout_s <= 0: no limit). Returns 0 with *reply filled and *bytes holding the frame its
 * strings point into (msgpack_unpacked_destroy the reply, then free the bytes), or -1 with
 * err. */
int sv_ctl_request(const char *runtime_dir, const char *type, double timeout_s,
                   msgpack_unpacked *reply, void **bytes, char *err, size_t errlen);

/* Writes a msgpack object as JSON text to f (maps, arrays, strings, numbers, bools, nil). */
void sv_ctl_print_json(FILE *f, const msgpack_object *o);

#endif
