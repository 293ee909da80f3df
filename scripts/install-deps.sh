#!/usr/bin/env bash
# Installs the Debian packages in scripts/debian-packages.txt that are not
# installed yet. Needs root (or sudo). Does nothing when all are present.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done < scripts/debian-packages.txt
# Node.js and npm run the tests' SCIM server (tests/peers/scim). A machine
# that has them from elsewhere keeps its own; otherwise Debian's.
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  for pkg in nodejs npm; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
  done
fi
if ((${#missing[@]} == 0)); then
  echo "install-deps: all Debian packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo > /dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=sudo
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
