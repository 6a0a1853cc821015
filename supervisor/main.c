/* vlembed-supervisor: the process operators and systemd run. It holds the listening sockets,
 * starts the gateway and one worker per device, restarts what dies, replaces workers on
 * reload without downtime, and talks to systemd (docs/operations.md). */
#include "supervisor/super.h"

int main(int argc, char **argv)
{
    return sv_main(argc, argv);
}
