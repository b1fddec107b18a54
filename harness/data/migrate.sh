#!/bin/sh
# migrate.sh <seconds>: move the client's wg0 traffic to the next wgnet path every <seconds>.
#
# Same behaviour as the CoMPS demo's script: the current path is the single default route of
# table 51821; each switch deletes it and then adds the next one (so there is a short window
# with no route). Paths are the client's wgnetN interfaces, taken in turn.
# Mounted or copied into the client at /etc/wireguard/migrate.sh; run it in the background:
#   /etc/wireguard/migrate.sh 0.1 &
set -u
TABLE=51821

if [ $# -ne 1 ]; then
  echo "usage: $0 <seconds between switches>" >&2
  exit 2
fi
interval=$1
if ! awk -v s="$interval" 'BEGIN { exit !(s ~ /^[0-9]*\.?[0-9]+$/ && s + 0 > 0) }'; then
  echo "migrate.sh: the interval must be a positive number of seconds, got '$interval'" >&2
  exit 2
fi

paths=$(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep -E '^wgnet[0-9]+$' | sort -V)
if [ -z "$paths" ]; then
  echo "migrate.sh: no wgnet interfaces here" >&2
  exit 1
fi

current=$(ip route show default table $TABLE | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") print $(i + 1) }')
# the paths in turn, starting with the one after the current path
order=$(printf '%s\n' $paths | awk -v cur="$current" '{ p[NR] = $0; if ($0 == cur) at = NR }
  END { for (i = 1; i <= NR; i++) print p[(at + i - 1) % NR + 1] }')
while :; do
  for next in $order; do
    ip route del default table $TABLE 2>/dev/null
    ip route add default dev "$next" table $TABLE
    sleep "$interval"
  done
done
