/* Restart policy of one slot (a device's worker, or the gateway): exponential backoff on
 * consecutive failures, and giving up on a slot after repeated permanent failures (exit 100).
 *
 *   delay(1) = 0;  delay(n) = min(restart_delay_min * 2^(n-2), restart_delay_max)  for n >= 2
 *
 * for the n-th failure in a row: the first death after a healthy run is restarted at once (as
 * s6-supervise does for a service that was up), a crash loop slows down: 0, 1, 2, 4 ... 60 s.
 * A process that stayed ready for at least healthy_s before it died starts a new run of
 * failures (n = 1). max_permanent exits with code 100 in a row mark the slot failed: it is not
 * restarted again until a reload asks for it. systemd's own RestartSec= cannot do this on
 * systemd 252 (RestartSteps= arrived in 254), hence this module. */
#ifndef VL_SUPERVISOR_BACKOFF_H
#define VL_SUPERVISOR_BACKOFF_H

struct sv_backoff_cfg {
    double delay_min_s; /* first delay */
    double delay_max_s; /* cap */
    double healthy_s;   /* ready this long = the failure streak is over */
    int max_permanent;  /* consecutive exit-100s before the slot is marked failed */
};

struct sv_backoff {
    int fails;      /* consecutive failures (any cause) */
    int perm_fails; /* consecutive exit-100 failures */
    int failed;     /* 1 = given up */
};

/* Classifies a waitpid() status: 1 if it is the permanent-failure exit code, else 0. */
int sv_exit_is_permanent(int wstatus);

/* Records an unexpected exit (wstatus from waitpid; ready_for_s = seconds it had been ready,
 * or a negative number if it never was). Returns the delay in seconds before the restart, or
 * -1 if the slot is now failed. */
double sv_backoff_on_exit(const struct sv_backoff_cfg *cfg, struct sv_backoff *b, int wstatus,
                          double ready_for_s);

/* Forgets the history (a reload gives a failed slot a new chance). */
void sv_backoff_reset(struct sv_backoff *b);

/* Describes a waitpid() status in words: "exit 100", "signal 9 (Killed)". */
void sv_exit_describe(int wstatus, char *buf, unsigned len);

#endif
