#!/usr/bin/env bash
# Check for, and install when missing, the Debian/Ubuntu system packages Haven needs:
# the shared libraries and fonts WeasyPrint loads at import (its PyPI wheel is pure Python),
# poppler-utils (pdftotext etc.) and, with --browser, chromium for the browser tests.
#
#   scripts/system-deps.sh [--browser] [--venv]
#
# Idempotent: when everything is installed it prints one line ("system libraries: ok") and
# runs no apt-get at all. Otherwise it runs `apt-get update` once and installs only the
# missing packages (always --no-install-recommends: chromium would otherwise pull in
# fonts-liberation v1, which has no "ə"). As root it runs apt-get directly, otherwise through
# sudo when sudo exists; failing that it prints the exact command to run and exits 1.
set -euo pipefail

PACKAGES=(
    libpango-1.0-0
    libpangoft2-1.0-0
    libharfbuzz-subset0
    fontconfig
    fonts-dejavu-core
    fonts-noto-core
    fonts-liberation2
    poppler-utils
)

usage() {
    echo "usage: $0 [--browser] [--venv]" >&2
}

for arg in "$@"; do
    case "$arg" in
        --browser) PACKAGES+=(chromium) ;;
        # Debian splits venv out of python3; the Makefile asks for it only when venv fails.
        --venv) PACKAGES+=(python3-venv) ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "$0: unknown argument: $arg" >&2
            usage
            exit 2
            ;;
    esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "system-deps: dpkg-query not found; this script supports Debian/Ubuntu only." >&2
    echo "Install the equivalents of: ${PACKAGES[*]}" >&2
    exit 1
fi

is_installed() {
    # A package removed but not purged reports "deinstall ok config-files": not installed.
    # One line per installed architecture, hence the newline and grep.
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -qx 'install ok installed'
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "system libraries: ok"
    exit 0
fi

echo "system-deps: missing: ${missing[*]}"

# Wait for a concurrently running apt/dpkg (e.g. unattended-upgrades) instead of failing.
APT_OPTS=(-o DPkg::Lock::Timeout=600)
install_cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y"
install_cmd+=" --no-install-recommends ${missing[*]}"

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "system-deps: not root and sudo is not available. As root, run:" >&2
    echo "    $install_cmd" >&2
    exit 1
fi

run() {
    # `env` rather than `sudo VAR=value`, which sudoers policies may refuse.
    ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive "$@"
}

if ! run apt-get "${APT_OPTS[@]}" update -q; then
    echo "system-deps: apt-get update failed. Run as root:" >&2
    echo "    $install_cmd" >&2
    exit 1
fi

if ! run apt-get "${APT_OPTS[@]}" install -y -q --no-install-recommends "${missing[@]}"; then
    echo "system-deps: apt-get install failed. Run as root:" >&2
    echo "    $install_cmd" >&2
    exit 1
fi

still_missing=()
for pkg in "${missing[@]}"; do
    is_installed "$pkg" || still_missing+=("$pkg")
done
if [ "${#still_missing[@]}" -ne 0 ]; then
    echo "system-deps: still not installed: ${still_missing[*]}" >&2
    exit 1
fi

echo "system libraries: installed ${missing[*]}"
