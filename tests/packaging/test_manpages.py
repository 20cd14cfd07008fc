"""The man pages stay in step with the code.

- mbgw.conf(5) documents every key of the tables server_keys, route_keys
  and tls_keys in core/conf/conf.c (parsed from the C source), each in the
  section it belongs to, with a default (or "Required"), and no key that
  the code does not have.
- mbgw(8) documents every command and option of main.c's usage text and
  the signals.
- mbgw-plugin(7) points to <mbgw/plugin.h> and plugins.md.
- The pages render without groff warnings; their version, and the Debian
  changelog's, is the project version.
"""
import os
import re
import shutil
import subprocess

from pkg_common import run_tests

SOURCE_DIR = os.environ["MBGW_SOURCE_DIR"]
MAN = os.path.join(SOURCE_DIR, "docs", "man")


def read(*parts):
    with open(os.path.join(SOURCE_DIR, *parts)) as f:
        return f.read()


def conf_keys():
    """{table name: [keys]} from core/conf/conf.c."""
    src = read("core", "conf", "conf.c")
    tables = {}
    for name in ("server_keys", "route_keys", "tls_keys"):
        m = re.search(r"static const struct key_def %s\[\]\s*=\s*\{(.*?)\n\};" % name, src, re.S)
        assert m, "cannot find the table %s in core/conf/conf.c" % name
        body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
        keys = re.findall(r"\{\s*\"([a-z0-9_]+)\"\s*,", body)
        assert keys, "no keys parsed from %s" % name
        tables[name] = keys
    return tables


def man_entries(text):
    """{subsection title: {key: entry text}} for the `.TP` / `.B key`
    entries of each `.SS` subsection of a man page."""
    out, sub = {}, None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".SS "):
            sub = line[4:].strip().strip('"')
            out.setdefault(sub, {})
        elif line.startswith(".SH "):
            sub = None
        elif line == ".TP" and sub is not None and i + 1 < len(lines):
            m = re.match(r"\.B\s+(\S+)\s*$", lines[i + 1])
            if m:
                body = []
                j = i + 2
                while j < len(lines) and lines[j] not in (".TP",) and not lines[j].startswith((".SS", ".SH")):
                    body.append(lines[j])
                    j += 1
                out[sub][m.group(1)] = "\n".join(body)
        i += 1
    return out


SECTION_OF_TABLE = {"server_keys": "[server]", "route_keys": "[route NAME]", "tls_keys": "[tls]"}


def test_conf5_has_every_key():
    tables = conf_keys()
    entries = man_entries(read("docs", "man", "mbgw.conf.5"))
    problems = []
    for table, keys in tables.items():
        sub = SECTION_OF_TABLE[table]
        documented = entries.get(sub)
        if documented is None:
            problems.append("mbgw.conf.5 has no '.SS %s' subsection" % sub)
            continue
        for k in keys:
            if k not in documented:
                problems.append("key '%s' of %s (core/conf/conf.c) is missing from docs/man/mbgw.conf.5 "
                                "under .SS %s (add a .TP / .B %s entry with its default and unit)"
                                % (k, table, sub, k))
            elif not re.search(r"Default:|Required", documented[k]):
                problems.append("mbgw.conf.5: key '%s' under %s names no default ('Default: ...' or "
                                "'Required')" % (k, sub))
        for k in documented:
            if k not in keys:
                problems.append("mbgw.conf.5 documents '%s' under %s, which %s in core/conf/conf.c "
                                "does not have" % (k, sub, table))
    assert not problems, "\n".join(problems)


def test_mbgw8_has_commands_options_signals():
    page = read("docs", "man", "mbgw.8")
    main = read("core", "main.c")
    m = re.search(r"static void usage\(FILE \*f\)\s*\{(.*?)\n\}", main, re.S)
    assert m, "cannot find usage() in core/main.c"
    usage = "".join(re.findall(r"\"((?:[^\"\\]|\\.)*)\"", m.group(1)))
    words = set(re.findall(r"mbgw (?:\[)?(run|check|reload)\b", usage))
    words |= set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", usage))
    assert {"run", "check", "reload", "-c", "--version"} <= words, words
    problems = []
    for w in sorted(words):
        troff = w.replace("-", "\\-")
        if not re.search(r"^\.(?:B|BR|BI|TP|IP)?\s*.*(?<![\w-])%s\b" % re.escape(troff), page, re.M):
            problems.append("mbgw.8 does not document '%s' (from main.c's usage)" % w)
    for sig in ("SIGTERM", "SIGINT", "SIGHUP"):
        if sig not in page:
            problems.append("mbgw.8 does not document %s" % sig)
    for section in ("SYNOPSIS", "COMMANDS", "OPTIONS", "SIGNALS", "FILES"):
        if ".SH %s" % section not in page:
            problems.append("mbgw.8 has no %s section" % section)
    assert not problems, "\n".join(problems)


def test_plugin7_points_to_reference():
    page = read("docs", "man", "mbgw-plugin.7")
    for needle in ("mbgw/plugin.h", "plugins.md", "find_package(mbgw", "pkg\\-config", "mbgw_add_plugin",
                   "plugin\\-template"):
        assert needle in page, "mbgw-plugin.7 does not mention %s" % needle


def test_versions_and_rendering():
    cm = read("CMakeLists.txt")
    version = re.search(r"project\(mbgw VERSION (\S+)", cm).group(1)
    changelog = read("packaging", "debian", "changelog").splitlines()[0]
    m = re.match(r"mbgw \(([^)-]+)(?:-\S+)?\)", changelog)
    assert m and m.group(1) == version, "debian/changelog %r vs project version %s" % (changelog, version)
    groff = shutil.which("groff")
    for name in ("mbgw.8", "mbgw.conf.5", "mbgw-plugin.7"):
        text = read("docs", "man", name)
        th = re.search(r'^\.TH .*"mbgw ([^"]+)"', text, re.M)
        assert th and th.group(1) == version, "%s: .TH version %s, project %s" % (
            name, th.group(1) if th else None, version)
        if groff:
            r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", os.path.join(MAN, name)],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and not r.stderr.strip(), "%s: groff warnings:\n%s" % (name, r.stderr)


if __name__ == "__main__":
    run_tests([test_conf5_has_every_key, test_mbgw8_has_commands_options_signals,
               test_plugin7_points_to_reference, test_versions_and_rendering])
