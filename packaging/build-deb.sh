#!/bin/sh
# Builds the Debian packages mbgw and libmbgw-dev from this source tree:
#
#   packaging/build-deb.sh [--out DIR] [--check] [--keep]
#
# The tree (the files git tracks plus new, not ignored ones; or, outside a
# git checkout, everything but build*/ and node_modules/) is copied to a
# temporary directory, packaging/debian/ becomes its debian/, and
# `dpkg-buildpackage -us -uc -b` builds the binary packages there. The .deb,
# .changes and .buildinfo files land in DIR (default: build-deb/), and
# lintian checks them: any error fails the script.
#
#   --check   then test the packages: file lists, and the server run from a
#             throw-away root they are unpacked into (tests/packaging/check_deb.py)
#   --keep    keep the temporary build directory (its path is printed)
#
# Missing build dependencies are installed with apt-get when run as root;
# otherwise the script says which are missing.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
out="$src/build-deb"
check=0
keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--out) out="$2"; shift 2 ;;
	--out=*) out="${1#--out=}"; shift ;;
	--check) check=1; shift ;;
	--keep) keep=1; shift ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "build-deb: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

need_root_install() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "build-deb: missing: $* — install them (as root: apt-get install $*)" >&2
		exit 1
	fi
	echo "build-deb: installing $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
missing=""
for tool in dpkg-buildpackage:dpkg-dev lintian:lintian fakeroot:fakeroot; do
	command -v "${tool%%:*}" >/dev/null 2>&1 || missing="$missing ${tool#*:}"
done
[ -z "$missing" ] || need_root_install $missing

version=$(dpkg-parsechangelog -l "$src/packaging/debian/changelog" -S Version)
work=$(mktemp -d "${TMPDIR:-/tmp}/mbgw-deb.XXXXXX")
if [ "$keep" = 1 ]; then
	echo "build-deb: building in $work (kept)"
else
	trap 'rm -rf "$work"' EXIT
fi
tree="$work/mbgw-$version"
mkdir -p "$tree"

# A clean copy of the sources: no build directories, no local state.
if [ "$(git -C "$src" rev-parse --show-toplevel 2>/dev/null)" = "$src" ]; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf -) | tar -xf - -C "$tree"
else
	(cd "$src" && tar --exclude='./build*' --exclude='node_modules' --exclude='.git' -cf - .) |
		tar -xf - -C "$tree"
fi
rm -rf "$tree/debian"
cp -r "$tree/packaging/debian" "$tree/debian"

if ! (cd "$tree" && dpkg-checkbuilddeps >/dev/null 2>&1); then
	if [ "$(id -u)" -eq 0 ]; then
		echo "build-deb: installing build dependencies"
		DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq "$tree" >/dev/null
	else
		(cd "$tree" && dpkg-checkbuilddeps) || true
		echo "build-deb: install the build dependencies above (as root: apt-get build-dep $tree)" >&2
		exit 1
	fi
fi

echo "build-deb: dpkg-buildpackage -us -uc -b in $tree"
if ! (cd "$tree" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1); then
	tail -n 60 "$work/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed (log above)" >&2
	exit 1
fi

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
changes="mbgw_${version}_${arch}.changes"
rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
for f in "$work"/*.deb "$work"/*.changes "$work"/*.buildinfo; do
	[ -e "$f" ] && cp "$f" "$out/"
done
cp "$work/build.log" "$out/build.log"
ls -1 "$out"/*.deb

echo "build-deb: lintian"
# lintian exits non-zero on errors only (--fail-on error); warnings are shown.
lintian --fail-on error --display-info "$out/$changes"
echo "build-deb: lintian reports no errors"

if [ "$check" = 1 ]; then
	python=/usr/bin/python3
	[ -x "$python" ] || python=python3
	"$python" "$src/tests/packaging/check_deb.py" "$out"
fi
