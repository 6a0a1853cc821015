#!/usr/bin/env bash
# systemd units: `systemd-analyze verify` is clean (no PID 1 needed) on the shipped
# vlembed.service and vlembed.socket, with ExecStart/ExecReload pointed at this build's
# binaries (verify checks that they exist), and `systemd-analyze security --offline=true`
# scores the service at most 3.0 (the reliability target; docs/operations.md has the score).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${VL_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin|$BUILD|g" systemd/vlembed.service > "$tmp/vlembed.service"
cp systemd/vlembed.socket "$tmp/vlembed.socket"
grep -q "ExecStart=$BUILD/vlembed-supervisor" "$tmp/vlembed.service"

out=$(cd "$tmp" && systemd-analyze verify --man=no ./vlembed.service ./vlembed.socket 2>&1) || {
  echo "systemd-analyze verify failed:"; echo "$out"; exit 1; }
if [ -n "$out" ]; then echo "systemd-analyze verify is not clean:"; echo "$out"; exit 1; fi
echo "verify: clean"

# A broken unit must be caught (the check above can fail): an unknown key is reported.
sed 's/^KillMode=mixed/KillMode=mixed\nNoSuchSetting=1/' "$tmp/vlembed.service" > "$tmp/broken.service"
bad=$(cd "$tmp" && systemd-analyze verify --man=no ./broken.service 2>&1 || true)
echo "$bad" | grep -q "NoSuchSetting" || { echo "verify did not report an unknown key: $bad"; exit 1; }

score=$(cd "$tmp" && systemd-analyze security --offline=true ./vlembed.service 2>&1 |
        sed -n 's/.*Overall exposure level for vlembed.service: \([0-9.]*\).*/\1/p')
echo "security: exposure $score"
[ -n "$score" ] || { echo "no exposure score"; exit 1; }
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || { echo "exposure $score > 3.0"; exit 1; }

# The properties the design relies on are really there.
for key in 'Type=notify' 'NotifyAccess=main' 'Restart=on-failure' 'RestartPreventExitStatus=100' \
           'ProtectSystem=strict' 'NoNewPrivileges=yes' 'User=vlembed' 'RuntimeDirectory=vlembed' \
           'DevicePolicy=closed' 'DeviceAllow=char-nvidia\* rw' 'KillMode=mixed' 'WatchdogSec=' \
           'ExecReload=.*vlembedctl reload'; do
  grep -q "^$key" systemd/vlembed.service || { echo "vlembed.service lacks $key"; exit 1; }
done
if grep -qE '^(PrivateDevices|MemoryDenyWriteExecute)=yes' systemd/vlembed.service; then
  echo "PrivateDevices/MemoryDenyWriteExecute would break CUDA"; exit 1
fi
# The example config parses: with --help the supervisor loads the file first and exits 0
# only if every key and value in it is valid.
"$BUILD/vlembed-supervisor" --config systemd/vlembed.conf --help >/dev/null
echo "ok"
