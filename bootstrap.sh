#!/usr/bin/env bash
# One-command set-up on Debian 12 as root: apt packages, .venv with the project, then run.
#   ./bootstrap.sh main   -> the main job (for now: every migration scenario, with the measurement verdicts)
#   ./bootstrap.sh test   -> unit tests and network scenarios but the measurement verdicts (what .ci/run calls)
set -euo pipefail
cd "$(dirname "$0")"
packages=(wireguard-tools wireguard-go iperf3 iptables iproute2 iputils-ping util-linux python3-venv
          chromium chromium-driver curl)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >&2
  .venv/bin/pip install -q -e '.[browser]' >&2
  touch "$stamp"
fi
mode=${1:-test}; shift || true
case "$mode" in
  main) exec .venv/bin/pytest -p no:cacheprovider -v scenarios -k migration "$@" ;;
  test) exec .venv/bin/pytest -p no:cacheprovider -v tests scenarios -m "not measurement" "$@" ;;
  *) echo "usage: $0 main|test [pytest options]" >&2; exit 2 ;;
esac
