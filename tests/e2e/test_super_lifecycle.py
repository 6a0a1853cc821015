"""vlembed-supervisor end to end with the real gateway and two real CPU workers (tiny checkpoint):

* systemd's view: a datagram socket on NOTIFY_SOCKET receives READY=1 (once serving), STATUS=,
  WATCHDOG=1 (every WATCHDOG_USEC/2), RELOADING=1 + MONOTONIC_USEC= then READY=1 around a
  reload, and STOPPING=1 on SIGTERM;
* `vlembedctl status` (table and --json): every process, state, device, restarts, uptime;
* a SIGKILLed worker is restarted at once (its device's restart count goes up) while the other
  serves; a SIGSTOPped worker misses heartbeats, gets SIGABRT and is replaced;
* `vlembedctl reload` (and SIGHUP) replaces every worker (new pids) and returns 0; a reload
  whose new workers cannot load (config now names a broken checkpoint) returns 1 naming the
  failure, and the old workers keep serving the same vectors;
* a device whose worker keeps exiting 100 is given up after max-permanent-failures while the
  other device serves; a reload with the checkpoint back revives it;
* SIGTERM stops everything (exit 0) and removes the control socket.
Also: systemd socket activation (systemd-socket-activate passes the HTTP socket)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from supervised import (MODEL, SUPERVISOR, Service, check, finish, free_port,  # noqa: E402
                        reference_vectors, same_vector, TEXTS)


def main():
    tmp_model = None
    svc = None
    try:
        # A private copy of the checkpoint, so the test can take it away and bring it back.
        base = os.environ.get("TMPDIR", "/tmp")
        tmp_model = os.path.join(base, "vl-super-model-%d" % os.getpid())
        shutil.copytree(MODEL, tmp_model)
        conf = ("model = %s\nrestart-delay-min-s = 0.1\nrestart-delay-max-s = 0.5\n"
                "max-permanent-failures = 3\nheartbeat-timeout-s = 2\n" % tmp_model)
        svc = Service(workers=2, config=conf, notify=True, env={"WATCHDOG_USEC": "1000000"})
        st = svc.wait_serving(2, timeout=60)
        if not check(st is not None, "supervisor serving with 2 workers"):
            svc.dump_log()
            return
        n = svc.notify
        check(n.wait_for("READY=1", 10) is not None, "READY=1 sent once serving")
        check(any("STATUS=serving: 2/2 workers ready" in m for _, m in n.messages),
              "STATUS= says 2/2 workers ready")
        time.sleep(1.2)
        check(sum("WATCHDOG=1" in m for _, m in n.messages) >= 2,
              "WATCHDOG=1 pings at WATCHDOG_USEC/2")

        ws = svc.workers(st)
        g = svc.gateway(st)
        check(len(ws) == 2 and sorted(w["device"] for w in ws) == ["cpu:0", "cpu:1"],
              "status --json: two workers on cpu:0 and cpu:1")
        check(all(w["state"] == "ready" and w["pid"] > 0 and w["restarts"] == 0 for w in ws),
              "workers ready, with pids, no restarts")
        check(g is not None and g["state"] == "ready", "gateway ready")
        r = svc.ctl("status")
        check(r.returncode == 0 and "ROLE" in r.stdout and "cpu:1" in r.stdout and
              "gateway" in r.stdout, "vlembedctl status prints the process table")
        print(r.stdout)

        ref = reference_vectors(svc)
        check(len(ref) == len(TEXTS), "embeddings answered through the supervised gateway")

        # ---- crash restart ----
        victim = ws[0]
        t0 = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        st = svc.wait(lambda s: any(w["device"] == victim["device"] and w["state"] == "ready" and
                                    w["pid"] != victim["pid"] for w in svc.workers(s)), 20)
        ttr = time.monotonic() - t0
        check(st is not None, "SIGKILLed worker replaced (time to ready %.2f s)" % ttr)
        if st:
            w = [w for w in svc.workers(st) if w["device"] == victim["device"]][0]
            check(w["restarts"] == 1, "its device's restart count is 1 (got %d)" % w["restarts"])
        code, body = svc.embed(TEXTS[:2])
        check(code == 200 and same_vector(body["data"][1]["embedding"], ref[TEXTS[1]]),
              "serving after the restart")

        # ---- hang detection ----
        st = svc.wait_serving(2, 20)
        hung = svc.workers(st)[1]
        t0 = time.monotonic()
        os.kill(hung["pid"], signal.SIGSTOP)
        st = svc.wait(lambda s: any(w["device"] == hung["device"] and w["state"] == "ready" and
                                    w["pid"] != hung["pid"] for w in svc.workers(s)), 30)
        dt = time.monotonic() - t0
        # the last heartbeat came 0-1 s before SIGSTOP: detection after 1-2 s, + SIGABRT, restart
        check(st is not None and 1.0 <= dt <= 12.0,
              "SIGSTOPped worker detected (heartbeat-timeout-s 2) and replaced in %.2f s" % dt)
        log = svc.log_text()
        check("hung; sending SIGABRT" in log, "log names the hang and the SIGABRT")
        check("signal 6" in log, "the hung worker died of SIGABRT")

        # ---- reload ----
        st = svc.wait_serving(2, 20)
        before = {w["pid"] for w in svc.workers(st)}
        t_reload = time.monotonic()
        r = svc.ctl("reload")
        check(r.returncode == 0 and "done" in r.stdout, "vlembedctl reload returns 0 when done: "
              + r.stdout.strip() + r.stderr.strip())
        st = svc.status()
        after = {w["pid"] for w in svc.workers(st)}
        check(len(after) == 2 and not (before & after), "every worker replaced by reload")
        check(st["reloads_ok"] == 1, "status counts the reload")
        t_rl = n.wait_for("RELOADING=1", 5, after=t_reload)
        t_rd = n.wait_for("READY=1", 5, after=t_reload)
        check(t_rl is not None and t_rd is not None and t_rl <= t_rd,
              "RELOADING=1 then READY=1 around the reload")
        check(any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for _, m in n.messages),
              "RELOADING=1 carries MONOTONIC_USEC=")

        # ---- SIGHUP: the same reload, nobody waiting ----
        before = {w["pid"] for w in svc.workers()}
        os.kill(svc.proc.pid, signal.SIGHUP)
        st = svc.wait(lambda s: s["reloads_ok"] == 2 and not s["reloading"], 30)
        check(st is not None and not (before & {w["pid"] for w in svc.workers(st)}),
              "SIGHUP reloads every worker too")

        # ---- failed reload: the new config names a broken checkpoint ----
        broken = tmp_model + "-broken"
        os.makedirs(broken, exist_ok=True)
        with open(os.path.join(broken, "config.json"), "w") as f:
            f.write("{ not json")
        svc.write_config(conf.replace(tmp_model, broken))
        before = {w["pid"] for w in svc.workers()}
        r = svc.ctl("reload")
        check(r.returncode == 1 and "exit 100" in r.stderr and "keeps serving" in r.stderr,
              "a failing reload returns 1 and says why: " + r.stderr.strip())
        st = svc.status()
        check({w["pid"] for w in svc.workers(st)} == before and
              all(w["state"] == "ready" for w in svc.workers(st)),
              "the old workers keep serving after a failed reload")
        code, body = svc.embed([TEXTS[3]])
        check(code == 200 and same_vector(body["data"][0]["embedding"], ref[TEXTS[3]]),
              "same vectors after the failed reload")
        check(st["reloads_failed"] == 1, "status counts the failed reload")
        svc.write_config(conf)

        # ---- a device given up after repeated exit 100, the other keeps serving ----
        hidden = tmp_model + "-away"
        log_mark = len(svc.log_text())
        os.rename(tmp_model, hidden)  # restarts now fail to load: exit 100
        victim = svc.workers()[0]
        os.kill(victim["pid"], signal.SIGKILL)
        st = svc.wait(lambda s: any(w["device"] == victim["device"] and w["state"] == "failed"
                                    for w in svc.workers(s)), 30)
        check(st is not None, "device %s marked failed after 3 exit-100s" % victim["device"])
        if st:
            other = [w for w in svc.workers(st) if w["device"] != victim["device"]]
            check(other and other[0]["state"] == "ready", "the other device keeps serving")
            check(st["state"] == "degraded", "supervisor state is degraded")
        code, body = svc.embed([TEXTS[4], TEXTS[5]])
        check(code == 200 and same_vector(body["data"][1]["embedding"], ref[TEXTS[5]]),
              "requests still answered by the remaining worker")
        time.sleep(1.0)
        check(sum("exited: exit 100" in l for l in svc.log_text()[log_mark:].splitlines()) == 3,
              "no restart after the 3rd exit 100 (no fork storm)")
        os.rename(hidden, tmp_model)
        r = svc.ctl("reload")
        check(r.returncode == 0, "reload with the checkpoint back: " + r.stdout + r.stderr)
        st = svc.wait_serving(2, 20)
        check(st is not None and st["state"] == "serving", "the failed device serves again")

        # ---- graceful stop ----
        t_stop = time.monotonic()
        rc = svc.stop()
        check(rc == 0, "SIGTERM: supervisor exits 0 (got %s)" % rc)
        check(n.first("STOPPING=1", t_stop) is not None, "STOPPING=1 sent")
        check(not os.path.exists(os.path.join(svc.run_dir, "control.sock")),
              "control socket removed at exit")
        log = svc.log_text()
        check("stopped (exit 0)" in log and log.count("exited: exit 0") >= 3,
              "gateway and workers exited 0 on the way down")
    finally:
        if svc:
            if svc.proc.poll() is None or _failed():
                svc.dump_log(80)
            svc.cleanup()
        for p in (tmp_model, (tmp_model or "") + "-broken", (tmp_model or "") + "-away"):
            if p:
                shutil.rmtree(p, ignore_errors=True)


def _failed():
    from supervised import _failures
    return bool(_failures)


def socket_activation():
    """systemd-socket-activate binds the HTTP socket and passes it as LISTEN_FDS (name http)."""
    if not shutil.which("systemd-socket-activate"):
        check(False, "systemd-socket-activate is installed (Debian package systemd)")
        return
    port = free_port()
    svc = Service(workers=1, port=port,
                  wrapper=["systemd-socket-activate", "-l", "127.0.0.1:%d" % port,
                           "--fdname=http"],
                  extra=["--http", "127.0.0.1:1"])  # ignored: systemd's socket wins
    try:
        # systemd-socket-activate execs the supervisor only at the first connection; wait
        # until it has bound the port.
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        # The gateway may answer 503 (Retry-After) until it has its first ready worker.
        code, body = 0, None
        while time.monotonic() < end + 20 and code != 200:
            code, body = svc.embed([TEXTS[0]], timeout=60)
            if code != 200:
                time.sleep(0.1)
        check(code == 200, "socket activation: the supervisor starts and serves on systemd's "
              "socket (%s %s)" % (code, str(body)[:100]))
        st = svc.wait_serving(1, 30)
        check(st is not None and st["http"] == "systemd socket",
              "status reports the HTTP socket came from systemd")
        check("socket activation: 1 socket from systemd" in svc.log_text(), "log says so")
        check(svc.stop() == 0, "socket-activated supervisor stops cleanly")
    finally:
        svc.cleanup()


if __name__ == "__main__":
    main()
    socket_activation()
    finish()
