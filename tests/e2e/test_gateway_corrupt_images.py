"""Truncated and corrupt images through a real gateway and CPU worker (tiny checkpoint), decided as
Pillow decides (docs/media.md, "Truncated and corrupt images"): tests/media/make_pillow_corpus.py
makes the corpus with Debian Pillow's verdict on each file; every file Pillow refuses is answered
400 invalid_media naming the item (input[1].image) with a message saying truncated or corrupt,
over HTTP (data: URI) and over the msgpack API (bin); every file Pillow decodes is embedded (200).
The pixel-exact comparison of the decoded files is tests/unit/test_media_vs_pillow.c."""
import base64
import os
import subprocess
import tempfile

from vlharness import ROOT, Cluster, MsgpackClient, check, finish


def main():
    d = tempfile.mkdtemp(prefix="vl-pil-")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/media/make_pillow_corpus.py"), d], check=True)
    names = open(os.path.join(d, "manifest")).read().split()
    c = Cluster(1)
    try:
        mp = MsgpackClient(c.api_socket)
        n_ref = n_ok = 0
        for i, name in enumerate(names):
            data = open(os.path.join(d, name), "rb").read()
            pil = open(os.path.join(d, name + ".pil"), "rb").read().split(b"\n", 1)[0].decode()
            refused = pil.startswith("error")
            uri = "data:application/octet-stream;base64," + base64.b64encode(data).decode()
            st, _, r = c.post({"input": ["a caption", {"image": uri}], "model": "tiny"})
            mp.send({"id": i, "input": ["a caption", {"image": data}], "model": "tiny"})
            a = mp.recv()
            if refused:
                n_ref += 1
                e = r.get("error", {}) if isinstance(r, dict) else {}
                me = a.get("error") or {}
                msg = e.get("message", "")
                check(st == 400 and e.get("code") == "invalid_media" and e.get("param") == "input[1].image"
                      and msg.startswith("input[1].image: ") and ("truncated" in msg or "corrupt" in msg)
                      and a.get("type") == "error" and a.get("id") == i and a.get("status") == 400
                      and me.get("code") == "invalid_media" and me.get("param") == "input[1].image",
                      "%s: Pillow refuses (%s); HTTP %d %s, msgpack %s %s"
                      % (name, pil[:60], st, msg, a.get("status"), me.get("message")))
            else:
                n_ok += 1
                check(st == 200 and len(r.get("data", [])) == 2 and r["usage"].get("images") == 1
                      and a.get("type") == "result" and a.get("id") == i,
                      "%s: Pillow decodes it; embedded over HTTP (%d) and msgpack (%s)"
                      % (name, st, a.get("type")))
        mp.close()
        check(n_ref >= 12 and n_ok >= 12, "the corpus has both kinds (%d refused, %d decoded)" % (n_ref, n_ok))
    finally:
        c.stop()
        subprocess.run(["rm", "-rf", d])
    finish()


if __name__ == "__main__":
    main()
