#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real; does nothing when all are present.
set -euo pipefail
packages=(
  prometheus               # prometheus and promtool
  prometheus-alertmanager
  prometheus-node-exporter # the benchmark anchor
  docker-registry          # CNCF Distribution 2.8
  docker.io                # dockerd for the DTR discovery and image tests
  busybox-static           # root filesystem of the stand-in DTR containers
  debootstrap              # Debian base image for the image build test
  chromium                 # the status page test
  python3-venv
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-debs: run as root, or install: ${missing[*]}" >&2
  exit 1
fi
echo "install-debs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
