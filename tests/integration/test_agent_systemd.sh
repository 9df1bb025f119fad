#!/usr/bin/env bash
# contrib/systemd/fleetpki-agent.service: systemd accepts it (with the
# built agent in place of /usr/bin/fleetpki-agent) and it keeps the
# hardening docs/agent.md promises.
. "$(dirname "$0")/lib.sh"
U=$(dirname "$0")/../../contrib/systemd/fleetpki-agent.service
A=${FP_BUILD_DIR:-/nonexistent}/src/agent/fleetpki-agent
[ -x "$A" ] || { echo "skip: no $A"; exit 77; }
command -v systemd-analyze >/dev/null || { echo "skip: no systemd-analyze"; exit 77; }
for k in 'DynamicUser=yes' 'StateDirectory=fleetpki-agent' 'ProtectSystem=strict' 'NoNewPrivileges=yes' \
         'ProtectHome=yes' 'PrivateTmp=yes' 'CapabilityBoundingSet=$' 'RestrictAddressFamilies=' \
         'SystemCallFilter=@system-service' 'RestartPreventExitStatus=2' 'UMask=0077'; do
    grep -q "^$k" "$U" || fail "unit lacks $k"
done
pass "hardening settings present"
sed "s|/usr/bin/fleetpki-agent|$A|g" "$U" >"$T/fleetpki-agent.service"
systemd-analyze verify "$T/fleetpki-agent.service" >"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "systemd-analyze verify"; }
! grep -v 'Documentation\|file:///usr/share/doc' "$T/verify.out" | grep -q . || { cat "$T/verify.out" >&2; fail "systemd-analyze warnings"; }
pass "systemd-analyze verify accepts the unit"
