"""Chaos: `vlembedctl reload` again and again while clients keep sending requests.

Real supervisor, gateway and two CPU workers; four client threads for the whole run; 5 reloads
back to back (each replaces both workers: successor ready, old one drained, then stopped).
Every reload must return 0 and every request must be answered correctly: 0 failed, 0 wrong,
0 duplicated. Prints one `CHAOS {...}` summary line with the reload durations."""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from supervised import Load, Service, check, finish, reference_vectors  # noqa: E402

RELOADS = int(os.environ.get("CHAOS_RELOADS", "5"))


def main():
    svc = Service(workers=2)
    try:
        if not check(svc.wait_serving(2, 60) is not None, "serving with 2 workers"):
            return
        ref = reference_vectors(svc)
        load = Load(svc, ref, threads=4).start()
        time.sleep(1.0)
        durations, bad = [], 0
        pids_seen = set()
        for _ in range(RELOADS):
            before = {w["pid"] for w in svc.workers()}
            t0 = time.monotonic()
            r = svc.ctl("reload")
            durations.append(time.monotonic() - t0)
            after = {w["pid"] for w in svc.workers()}
            if r.returncode != 0 or before & after:
                bad += 1
                print("reload: rc=%d %s %s" % (r.returncode, r.stdout, r.stderr))
            pids_seen |= after
            time.sleep(0.5)
        time.sleep(1.0)
        counts = load.stop()
        st = svc.status()
        summary = dict(counts, reloads=RELOADS, reloads_ok=st["reloads_ok"],
                       reload_median_s=round(statistics.median(durations), 3),
                       reload_max_s=round(max(durations), 3),
                       p50_ms=round(load.percentile(50) * 1000, 1),
                       p99_ms=round(load.percentile(99) * 1000, 1), errors=load.errors)
        print("CHAOS reload " + json.dumps(summary), flush=True)
        check(bad == 0, "every reload returned 0 and replaced both workers")
        check(st["reloads_ok"] == RELOADS, "supervisor counts %d reloads" % RELOADS)
        check(len(pids_seen) == 2 * RELOADS, "2 new workers per reload")
        check(counts["ok"] >= 50, "requests answered during the reloads (%d)" % counts["ok"])
        check(counts["lost"] == 0, "0 failed requests (%d)" % counts["lost"])
        check(counts["wrong"] == 0, "0 wrong vectors (%d)" % counts["wrong"])
        check(counts["duplicated"] == 0, "0 duplicated (%d)" % counts["duplicated"])
        check(svc.stop() == 0, "clean stop")
    finally:
        from supervised import _failures
        if _failures:
            svc.dump_log(60)
        svc.cleanup()


if __name__ == "__main__":
    main()
    finish()
