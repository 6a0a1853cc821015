/* The supervisor's state, shared by its parts: super.c (the event loop, processes, restarts),
 * reload.c (rolling replacement of the workers), control.c (the vlembedctl socket).
 * Nothing outside supervisor/ includes this; main.c uses super.h. */
#ifndef VL_SUPERVISOR_SV_H
#define VL_SUPERVISOR_SV_H

#include <stdint.h>
#include <sys/types.h>

#include "supervisor/backoff.h"
#include "supervisor/chan.h"
#include "supervisor/fsm.h"
#include "supervisor/listen.h"
#include "supervisor/notify.h"
#include "supervisor/options.h"

#define SV_MAX_SLOTS 64
#define SV_MAX_PROCS (2 * SV_MAX_SLOTS + 2)
#define SV_MAX_CTL_CONNS 16
#define SV_CTL_FRAME_MAX (64 * 1024)     /* vlembedctl requests are tiny */
#define SV_CHILD_FRAME_MAX (1024 * 1024) /* docs/internal-protocol.md: control channels */
#define SV_ABORT_GRACE_S 5.0             /* SIGABRT (hung) to SIGKILL */

enum sv_kind { SV_GATEWAY, SV_WORKER };

/* One running (or just exited) child. */
struct sv_proc {
    int used;
    int id; /* unique for the supervisor's life; workers' ids name them to the gateway */
    enum sv_kind kind;
    int slot; /* worker: its device slot; gateway: -1 */
    pid_t pid;
    enum sv_state state;
    struct sv_chan chan;
    char socket[108]; /* worker's --socket */
    double t_spawn, t_ready, t_last_hb, t_deadline;
    int retire;    /* its exit is expected: never restart for it */
    int successor; /* started by a reload and not yet promoted */
    int64_t queue, inflight;
    char fingerprint[80];
};

/* One device (worker slot) or the gateway: what persists across its processes. */
struct sv_slot {
    char device[32]; /* "cpu:0", "cuda:1" */
    char uuid[96];   /* GPU UUID ("" for cpu) */
    char name[96];   /* "NVIDIA H100 80GB HBM3", "cpu" */
    struct sv_backoff bo;
    int restarts;      /* processes started after the first */
    double restart_at; /* > 0: a restart is scheduled for then */
    int cur;           /* procs[] index of its serving process, or -1 */
};

struct sv_waiter; /* a vlembedctl connection waiting for a reload's end */

enum sv_reload_phase { SV_RL_IDLE, SV_RL_SPAWN, SV_RL_WAIT_READY, SV_RL_WAIT_OLD };

struct sv_reload {
    enum sv_reload_phase phase;
    int slot; /* the slot being replaced */
    int succ_id, old_id;
    int succ_status; /* waitpid status of a successor that died; -1 none */
    double t_start;
    int waiters[SV_MAX_CTL_CONNS]; /* control connection indices waiting for this roll */
    int n_waiters;
    int pending; /* another reload was asked for while this one ran */
    int pending_waiters[SV_MAX_CTL_CONNS];
    int n_pending_waiters;
    char error[512]; /* why the current roll failed ("" = ok so far) */
    int count_ok, count_failed;
};

struct sv_ctl_conn {
    struct sv_chan chan; /* chan.fd < 0: free */
    int close_after_flush;
};

struct sv {
    struct sv_opts opts;
    int argc;
    char **argv; /* kept for reloads, which re-read the config */
    char gateway_bin[4096], worker_bin[4096];
    char runtime_dir[80]; /* + "/worker-<id>.sock" must fit sun_path (108) */
    char control_path[108];
    struct sv_listen lis;
    struct sv_notify notify;
    int sig_fd;
    int ctl_fd;
    struct sv_ctl_conn conns[SV_MAX_CTL_CONNS];
    struct sv_proc procs[SV_MAX_PROCS];
    struct sv_slot slots[SV_MAX_SLOTS];
    int n_slots;
    struct sv_slot gw; /* the gateway's slot */
    int next_id;
    double t_start;
    int ready_sent; /* READY=1 sent once serving */
    int stopping;   /* 1 = graceful stop, 2 = fast stop */
    int exit_code;
    double next_watchdog;
    char last_status[256];
    struct sv_reload rl;
};

double sv_now(void);

/* super.c */
struct sv_proc *sv_proc_by_id(struct sv *s, int id);
int sv_proc_index(struct sv *s, const struct sv_proc *p);
/* Starts a worker for a slot; successor = 1 for a reload's new worker (not made the slot's
 * serving process until promoted). Returns the proc or NULL (err logged). */
struct sv_proc *sv_spawn_worker(struct sv *s, int slot, int successor);
void sv_proc_event(struct sv *s, struct sv_proc *p, enum sv_event ev);
void sv_publish(struct sv *s);
void sv_update_status(struct sv *s);

/* reload.c */
void sv_reload_request(struct sv *s, int conn); /* conn = -1: SIGHUP (nobody waits) */
void sv_reload_advance(struct sv *s);
void sv_reload_on_exit(struct sv *s, struct sv_proc *p, int wstatus);
void sv_reload_forget_conn(struct sv *s, int conn);

/* control.c */
int sv_control_open(struct sv *s, char *err, size_t errlen);
void sv_control_close(struct sv *s);
void sv_control_accept(struct sv *s);
void sv_control_io(struct sv *s, int conn, short revents);
void sv_control_reply_reload(struct sv *s, int conn, int ok, const char *error, double secs);

#endif
