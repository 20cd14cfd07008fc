"""packaging/debian/control stays in step with the build: every library
(-dev package) and build tool that scripts/deps.sh installs for the build
is a Build-Depends of the source package, so `apt-get build-dep` (which
packaging/build-deb.sh uses on a fresh machine) brings everything."""
import os
import re

from pkg_common import run_tests

SOURCE_DIR = os.environ["MBGW_SOURCE_DIR"]


def read(*parts):
    with open(os.path.join(SOURCE_DIR, *parts)) as f:
        return f.read()


def test_build_depends_cover_deps_sh():
    deps = read("scripts", "deps.sh")
    m = re.search(r'^pkgs="([^"]*)"', deps, re.M)
    assert m, "no build package list (pkgs=\"...\") in scripts/deps.sh"
    # Build-essential packages (make, gcc, libc6-dev) are implied by dpkg-buildpackage.
    need = [p for p in m.group(1).split() if p.endswith("-dev") and p != "libc6-dev"
            or p in ("cmake", "pkg-config")]
    control = read("packaging", "debian", "control")
    bd = re.search(r"^Build-Depends:(.*?)^\S", control, re.M | re.S)
    assert bd, "no Build-Depends in packaging/debian/control"
    have = set(re.findall(r"([a-z0-9][a-z0-9+.-]+)", re.sub(r"\([^)]*\)", "", bd.group(1))))
    missing = [p for p in need if p not in have]
    assert not missing, ("scripts/deps.sh builds with %s, which packaging/debian/control does not list "
                         "in Build-Depends" % ", ".join(missing))


if __name__ == "__main__":
    run_tests([test_build_depends_cover_deps_sh])
