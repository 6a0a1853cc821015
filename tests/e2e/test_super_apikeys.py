#!/usr/bin/env python3
"""`vlembedctl reload` (the unit's ExecReload=) also reloads the gateway's API keys: the
supervisor forwards SIGHUP to its ready gateway, which re-reads --api-keys-file
(docs/security.md). Real supervisor, gateway and CPU worker on the tiny checkpoint."""
import http.client
import json
import os
import time

from supervised import Service, check, finish

K_OLD = "sk-super-old-0123456789abcdef"
K_NEW = "sk-super-new-fedcba9876543210"


def status_with(svc, key):
    c = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=30)
    try:
        c.request("POST", "/v1/embeddings", json.dumps({"input": ["a red sofa"]}),
                  {"Content-Type": "application/json", "Authorization": "Bearer " + key})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def write_keys(path, key):
    with open(path + ".tmp", "w") as f:
        f.write("# test keys\n%s\n" % key)
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)


def main():
    import tempfile
    d = tempfile.mkdtemp(prefix="vl-keys-")
    keys = os.path.join(d, "keys")
    write_keys(keys, K_OLD)
    svc = Service(workers=1, extra=["--gateway-args", "--api-keys-file " + keys])
    try:
        check(svc.wait_serving(1, 60) is not None, "service serving with an API keys file")
        check(status_with(svc, K_OLD) == 200, "the configured key is accepted")
        check(status_with(svc, K_NEW) == 401, "an unknown key gets 401")
        write_keys(keys, K_NEW)
        r = svc.ctl("reload")
        check(r.returncode == 0, "vlembedctl reload returns 0: " + r.stderr.strip())
        got = None
        for _ in range(100):  # the gateway handles SIGHUP on its loop: allow a moment
            got = (status_with(svc, K_NEW), status_with(svc, K_OLD))
            if got == (200, 401):
                break
            time.sleep(0.05)
        check(got == (200, 401), "after reload: new key 200, old key 401 (got %s)" % (got,))
        log = svc.log_text()
        check("re-reads its API keys" in log, "the supervisor logs the SIGHUP to the gateway")
        check(K_OLD not in log and K_NEW not in log, "no key appears in the log")
        check(svc.stop() == 0, "supervisor exits 0 on SIGTERM")
    except Exception:
        svc.dump_log()
        raise
    finally:
        svc.cleanup()
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)
    finish()


if __name__ == "__main__":
    main()
