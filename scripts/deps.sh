#!/bin/sh
# Installs, as root on Debian 12, whatever the build and tests need and is
# missing. Does nothing (and needs no network) when all is present.
#   scripts/deps.sh            build + run dependencies
#   scripts/deps.sh test       also test dependencies (Criterion, Python
#                              websockets, Node.js + npm `ws`, clang)
set -eu
cd "$(dirname "$0")/.."

pkgs="make cmake gcc pkg-config libc6-dev libssl-dev zlib1g-dev libcjson-dev libjwt-dev libcrypt-dev openssl"
if [ "${1:-}" = test ]; then
	pkgs="$pkgs libcriterion-dev python3 python3-websockets clang libclang-rt-14-dev curl abigail-tools chromium tinyproxy python3-prometheus-client nginx haproxy testssl.sh"
	# Packaging tests (tests/packaging): .deb build, lintian, unit verification.
	pkgs="$pkgs dpkg-dev debhelper fakeroot lintian"
	command -v systemd-analyze >/dev/null 2>&1 || pkgs="$pkgs systemd"
	command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs"
	command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm"
fi

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing packages:$missing — run as root or install them" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "${1:-}" = test ] && [ ! -d tests/interop/node_modules/ws ]; then
	echo "deps: installing the npm ws client for interop tests"
	(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
