"""Chaos: SIGKILL random workers repeatedly while clients keep sending requests.

Real processes (vlembed-supervisor, the gateway, two CPU workers on the tiny checkpoint) and
real HTTP clients. While four client threads send 1-3 texts per request, a killer SIGKILLs a
random ready worker (leaving the other ready: with both gone there is nobody to retry on), waits
for its replacement to be ready, pauses 0.2-0.6 s, and repeats: 8 kills (a count, not a
duration, so that a loaded CI machine makes the test longer rather than weaker). Every request
must be answered 200 with one vector per input, in order, equal to the vector of that text embedded alone before the
chaos: 0 lost, 0 wrong, 0 duplicated. Also: restarts counted by the supervisor = kills; no
zombie children. Prints one `CHAOS {...}` summary line (docs/operations.md quotes it)."""
import json
import os
import random
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from supervised import (Load, Service, check, finish, reference_vectors,  # noqa: E402
                        restart_times)

KILLS = int(os.environ.get("CHAOS_KILLS", "8"))


def zombies(pid):
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            n += 1
    return n


def main():
    svc = Service(workers=2, extra=["--restart-delay-max-s", "1", "--healthy-after-s", "0.5"])
    try:
        if not check(svc.wait_serving(2, 60) is not None, "serving with 2 workers"):
            return
        ref = reference_vectors(svc)
        load = Load(svc, ref, threads=4).start()
        rng = random.Random(7)
        kills, ttr = 0, []
        t_start = time.monotonic()
        while kills < KILLS:
            st = svc.wait_serving(2, 20)
            if st is None:
                check(False, "both workers ready again between kills")
                break
            victim = rng.choice(svc.workers(st))
            os.kill(victim["pid"], signal.SIGKILL)
            kills += 1
            st = svc.wait(lambda s: any(w["device"] == victim["device"] and w["state"] == "ready"
                                        and w["pid"] != victim["pid"] for w in svc.workers(s)),
                          20, step=0.01)
            if st is None:
                check(False, "replacement of worker %d ready" % victim["id"])
                break
            time.sleep(rng.uniform(0.2, 0.6))
        counts = load.stop()
        # kill -> replacement ready, from the supervisor's own log timestamps
        ttr = restart_times(svc.log_text(), "worker")
        st = svc.status()
        restarts = sum(w["restarts"] for w in svc.workers(st))
        summary = dict(counts, kills=kills, restarts=restarts,
                       seconds=round(time.monotonic() - t_start, 1),
                       ttr_median_s=round(statistics.median(ttr), 3) if ttr else None,
                       ttr_max_s=round(max(ttr), 3) if ttr else None,
                       p50_ms=round(load.percentile(50) * 1000, 1),
                       p99_ms=round(load.percentile(99) * 1000, 1),
                       zombies=zombies(svc.proc.pid), errors=load.errors)
        print("CHAOS worker_kill " + json.dumps(summary), flush=True)
        check(len(ttr) == kills, "a restart time for every kill")
        check(kills == KILLS, "%d kills, each replaced (%d)" % (KILLS, kills))
        check(counts["ok"] >= 50, "requests answered under chaos (%d)" % counts["ok"])
        check(counts["lost"] == 0, "0 lost (%d)" % counts["lost"])
        check(counts["wrong"] == 0, "0 wrong vectors (%d)" % counts["wrong"])
        check(counts["duplicated"] == 0, "0 duplicated (%d)" % counts["duplicated"])
        check(restarts == kills, "supervisor restarts (%d) = kills (%d)" % (restarts, kills))
        check(summary["zombies"] == 0, "no zombie children")
        check(svc.stop() == 0, "clean stop after the chaos")
    finally:
        from supervised import _failures
        if _failures:
            svc.dump_log(60)
        svc.cleanup()


if __name__ == "__main__":
    main()
    finish()
