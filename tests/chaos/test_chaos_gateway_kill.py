"""Chaos: SIGKILL the gateway repeatedly while clients keep connecting.

The supervisor holds the listening sockets and hands them to each new gateway, so the kernel
keeps accepting connections into the backlog while no gateway runs: no client may ever see
"connection refused". Requests that were inside the killed gateway are lost with it (their
connection is reset) and are counted and reported, not hidden; so are any 503s of a gateway
that has not yet heard of a ready worker. Four client threads, 4 kills ~2.5 s apart (healthy-after-s 1, so each restart is immediate).
Prints one `CHAOS {...}` summary line."""
import json
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from supervised import (Load, Service, check, finish, reference_vectors,  # noqa: E402
                        restart_times)

KILLS = int(os.environ.get("CHAOS_GATEWAY_KILLS", "4"))


def main():
    svc = Service(workers=2, extra=["--healthy-after-s", "1"])
    try:
        if not check(svc.wait_serving(2, 60) is not None, "serving with 2 workers"):
            return
        ref = reference_vectors(svc)
        load = Load(svc, ref, threads=4).start()
        time.sleep(1.0)
        ttr = []
        for _ in range(KILLS):
            st = svc.wait_serving(2, 20)
            if not check(st is not None, "gateway ready again"):
                break
            g = svc.gateway(st)
            t0 = time.monotonic()
            os.kill(g["pid"], signal.SIGKILL)
            st = svc.wait(lambda s: svc.gateway(s) and svc.gateway(s)["state"] == "ready" and
                          svc.gateway(s)["pid"] != g["pid"], 20, step=0.01)
            if st is None:
                check(False, "replacement gateway ready")
                break
            ttr.append(1)
            time.sleep(1.5)
        counts = load.stop()
        kills = len(ttr)
        ttr = restart_times(svc.log_text(), "gateway")  # kill -> new gateway ready, from the log
        summary = dict(counts, kills=kills,
                       ttr_median_s=round(statistics.median(ttr), 3) if ttr else None,
                       ttr_max_s=round(max(ttr), 3) if ttr else None, errors=load.errors)
        print("CHAOS gateway_kill " + json.dumps(summary), flush=True)
        check(kills == KILLS and len(ttr) == KILLS, "%d gateway kills, each replaced" % KILLS)
        check(counts["refused"] == 0, "0 connections refused (%d)" % counts["refused"])
        check(counts["wrong"] == 0, "0 wrong vectors (%d)" % counts["wrong"])
        check(counts["duplicated"] == 0, "0 duplicated (%d)" % counts["duplicated"])
        check(counts["ok"] >= 50, "requests answered around the kills (%d)" % counts["ok"])
        check(svc.stop() == 0, "clean stop")
    finally:
        from supervised import _failures
        if _failures:
            svc.dump_log(60)
        svc.cleanup()


if __name__ == "__main__":
    main()
    finish()
