#!/usr/bin/env bash
# One-command set-up on Debian 12 as root: apt packages, .venv with the project, then run.
#   ./bootstrap.sh main [options]  -> the main job: an interval sweep with its HTML report (namespace backend)
#   ./bootstrap.sh test [options]  -> unit tests and network scenarios on both backends, and the scenarios
#                                     marked ssh over local SSH hosts (what .ci/run calls)
#   ./bootstrap.sh install         -> only the install phase both call, for everything `test` needs
#                                     (the pristine-root scenario checks that list on a minimal Debian)
#   ./bootstrap.sh merge DIR... --out DIR -> only .venv, then `comps-harness merge` of a sweep's shards
#                                     (the nightly's merge job: no network, no apt package but python3-venv)
# `test` starts dockerd when none runs (there is no systemd here) and stops it again afterwards;
# the Docker images are built by the harness on first use (offline with debootstrap if no registry answers).
set -euo pipefail
cd "$(dirname "$0")"
# the main job's --budget: it ends inside 5 minutes on the 2-core reference machine, set-up excluded
# (a --budget given after `main` replaces it); harness/cli/bench.py's MAIN_BUDGET is the same
MAIN_BUDGET=4m45s
mode=${1:-test}; shift || true
case "$mode" in main|test|install|merge) ;; *) echo "usage: $0 main|test|install|merge [options]" >&2; exit 2 ;; esac

# What each part needs (recommended packages are not installed: no kernel image, no systemd, no
# desktop pieces; so every package the harness calls is named here)
base=(wireguard-tools wireguard-go iperf3 iptables iproute2 iputils-ping util-linux python3-venv
      curl tcpdump fonts-dejavu-core ca-certificates git)
# Docker for the tests (both backends) and for a sweep asked to run on docker or all; a machine with
# its own engine (docker-ce) keeps it. debootstrap makes the offline base image and the pristine root.
docker_packages=()
command -v dockerd >/dev/null || docker_packages+=(docker.io)
command -v docker-compose >/dev/null || docker_packages+=(docker-compose)
docker_packages+=(debootstrap)
# The VM runner (comps-harness vm, --vm): qemu, busybox for virtme-ng's initramfs, kmod's depmod for
# the unpacked kernel, and udev: virtme-ng-init starts udevd in the guest to find its virtio-serial
# ports; without it the command's output and exit status are lost (vng exits 255). The kernel itself
# is fetched into .cache/ below (Debian's kernel package; elsewhere, e.g. on GitHub's Ubuntu runners,
# whose kernel has WireGuard and netem itself, the tests leave the VM scenarios out and say so, and
# `main --vm` boots the kernel given with --kernel, e.g. the runner's own /boot/vmlinuz-$(uname -r)).
# binutils and file: virtme-ng reads the kernel's version with `strings` and checks busybox with `file`.
vm_packages=(qemu-system-x86 busybox-static kmod udev binutils file)
# The ssh backend's tests (scenarios/test_ssh_hosts.py, `comps-harness preflight` without --inventory): local
# SSH hosts run Debian's OpenSSH server, reached with its client through netcat (the inventory's proxy_command).
ssh_packages=(openssh-client openssh-server netcat-openbsd)
# The User-mode Linux guest (--guest uml, marker uml): its kernel is built from Debian's linux-source-6.1
# (fetched by the build itself) with these; `test` builds it when missing (~5 min on 2 cores, once).
uml_packages=(make gcc libc6-dev flex bison bc xz-utils patch)

needs_docker=
needs_vm=
not_vm=
if [ "$mode" = merge ]; then :
elif [ "$mode" != main ] || [[ " $* " =~ [[:space:]=,](docker|all)[[:space:],] ]]; then needs_docker=1; fi
fetch_kernel=
if [ "$mode" = merge ]; then :
elif [ "$mode" != main ] || [[ " $* " =~ [[:space:]]--vm[[:space:]] ]]; then
  if grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
    needs_vm=1 fetch_kernel=1
  elif [ "$mode" = main ]; then
    # elsewhere (GitHub's Ubuntu runners) the guest boots a kernel of the machine's: --kernel PATH
    needs_vm=1
    [[ " $* " =~ [[:space:]]--(vm-)?kernel[[:space:]=] ]] ||
      echo "not Debian: no Debian kernel package here; give the guest one, e.g. --kernel /boot/vmlinuz-\$(uname -r)" >&2
  else
    echo "not Debian: no guest kernel package here; the VM scenarios (marker vm) are left out" >&2
    not_vm=" and not vm and not uml"
  fi
fi

install_phase() {
  local packages=("${base[@]}")
  # A browser and its driver: Debian's chromium, unless one is there already (GitHub's Ubuntu runners
  # have Google Chrome and chromedriver; Ubuntu's chromium package is only a snap).
  if ! { command -v chromedriver >/dev/null && command -v chromium google-chrome >/dev/null; }; then
    packages+=(chromium chromium-driver)
  fi
  [ -n "$needs_docker" ] && packages+=("${docker_packages[@]}")
  [ -n "$needs_vm" ] && packages+=("${vm_packages[@]}")
  [ "$mode" != main ] && [ "$mode" != merge ] && packages+=("${ssh_packages[@]}")
  [ -n "$fetch_kernel" ] && [ "$mode" = test ] && packages+=("${uml_packages[@]}")
  [ "$mode" = merge ] && packages=(python3-venv)
  local missing=()
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}" >&2
  fi
  # The dependencies exactly as locked (hashes checked), then the project itself; refresh the lock with
  #   .venv/bin/pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
  #     --no-emit-find-links --extra browser --extra docker --extra test --extra vm -o requirements.lock pyproject.toml
  local stamp=.venv/.installed-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
  if [ ! -f "$stamp" ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >&2
    .venv/bin/pip install -q --require-hashes -r requirements.lock >&2
    .venv/bin/pip install -q --no-deps -e . >&2
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
  # Debian's stock kernel for the guest, unpacked into .cache/kernels/ (idempotent: quick when there)
  if [ -n "$fetch_kernel" ]; then .venv/bin/comps-harness vm --fetch >&2; fi
  # the UML guest's kernel, for the uml scenarios (a failed build is said; those scenarios then fail)
  if [ -n "$fetch_kernel" ] && [ "$mode" = test ]; then
    .venv/bin/comps-harness vm --guest uml --fetch >&2 || echo "the UML kernel did not build (see above)" >&2
  fi
}

started_dockerd=
stop_dockerd() {
  if [ -n "$started_dockerd" ]; then
    echo "stopping the dockerd this script started (pid $started_dockerd)" >&2
    kill "$started_dockerd" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.1; done
  fi
}
start_dockerd() {
  timeout 10 docker info >/dev/null 2>&1 && return 0
  echo "starting dockerd (log: reports/dockerd.log)" >&2
  mkdir -p reports
  dockerd >reports/dockerd.log 2>&1 &
  started_dockerd=$!
  trap stop_dockerd EXIT
  for _ in $(seq 120); do timeout 10 docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "dockerd did not come up within 60 s; see reports/dockerd.log" >&2
  exit 1
}

install_phase
case "$mode" in
  install)
    echo "installed: apt packages, .venv, the guest kernel" >&2 ;;
  merge)
    exec .venv/bin/comps-harness merge "$@" ;;
  main)
    [ -n "$needs_docker" ] && start_dockerd
    status=0
    .venv/bin/comps-harness sweep --budget "$MAIN_BUDGET" "$@" || status=$?
    exit "$status" ;;
  test)
    # lint, format and types on the tree as committed; a failure fails the run, after the tests
    checks=0
    .venv/bin/ruff check . >&2 && .venv/bin/ruff format --check . >&2 && .venv/bin/mypy >&2 || checks=$?
    start_dockerd
    status=0
    .venv/bin/pytest -p no:cacheprovider -v tests scenarios -m "not measurement$not_vm" --backend all,ssh "$@" || status=$?
    if [ "$status" -eq 0 ] && [ "$checks" -ne 0 ]; then echo "ruff or mypy failed (see above)" >&2; status=1; fi
    exit "$status" ;;
esac
