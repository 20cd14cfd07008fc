#!/usr/bin/env python3
"""ABI guard for <mbgw/plugin.h>: compares the layout that libabigail's
abidw extracts from abi_probe.so with the committed baseline.

The rule of the plugin ABI (top of sdk/include/mbgw/plugin.h): a published
member never moves or changes type; structures only grow at their end.
So every member of every mbgw_* structure of the baseline must still be
there at the same offset with the same type (spelled out recursively,
through typedefs, pointers and function types), and new members may only
come after the baseline's last one. Anything else fails.

usage: abi_check.py BASELINE.xml PROBE.so HEADERS_DIR
       abi_check.py --dump PROBE.so HEADERS_DIR > BASELINE.xml   (new baseline)
"""
import subprocess
import sys
import xml.etree.ElementTree as ET


def abidw(probe, headers):
    return subprocess.run(["abidw", "--headers-dir", headers, probe], check=True,
                          capture_output=True, text=True).stdout


def layout(xml_text):
    root = ET.fromstring(xml_text)
    types = {}
    for el in root.iter():
        tid = el.get("id")
        if tid:
            types[tid] = el

    def spell(tid, depth=0):
        el = types.get(tid)
        if el is None or depth > 20:
            return "?"
        tag = el.tag
        if tag == "type-decl":
            return el.get("name")
        if tag == "typedef-decl":
            return "%s=%s" % (el.get("name"), spell(el.get("type-id"), depth + 1))
        if tag == "pointer-type-def":
            return spell(el.get("type-id"), depth + 1) + "*"
        if tag == "qualified-type-def":
            return ("const " if el.get("const") == "yes" else "") + spell(el.get("type-id"), depth + 1)
        if tag == "function-type":
            params = [spell(p.get("type-id"), depth + 1) if p.get("type-id") else "..."
                      for p in el.findall("parameter")]
            ret = el.find("return")
            return "fn(%s)->%s" % (",".join(params), spell(ret.get("type-id"), depth + 1))
        if tag in ("class-decl", "union-decl", "enum-decl"):
            return "%s %s" % (tag.split("-")[0], el.get("name"))
        if tag == "array-type-def":
            return spell(el.get("type-id"), depth + 1) + "[%s]" % el.get("size-in-bits")
        return tag

    out = {}
    for el in root.iter("class-decl"):
        name = el.get("name", "")
        if not name.startswith("mbgw_") or el.get("is-declaration-only") == "yes":
            continue
        members = []
        for dm in el.findall("data-member"):
            var = dm.find("var-decl")
            members.append((var.get("name"), int(dm.get("layout-offset-in-bits")),
                            spell(var.get("type-id"))))
        out[name] = members
    return out


def main(argv):
    if argv[1] == "--dump":
        sys.stdout.write(abidw(argv[2], argv[3]))
        return 0
    with open(argv[1]) as f:
        base = layout(f.read())
    cur = layout(abidw(argv[2], argv[3]))
    problems = []
    for struct, members in sorted(base.items()):
        if struct not in cur:
            problems.append("struct %s disappeared" % struct)
            continue
        now = {m[0]: m for m in cur[struct]}
        last = max((m[1] for m in members), default=-1)
        for name, off, typ in members:
            m = now.get(name)
            if m is None:
                problems.append("%s.%s was removed (retire it as `reserved`, never delete)" % (struct, name))
            elif m[1] != off:
                problems.append("%s.%s moved from bit %d to bit %d" % (struct, name, off, m[1]))
            elif m[2] != typ:
                problems.append("%s.%s changed type:\n    was %s\n    now %s" % (struct, name, typ, m[2]))
        base_names = {m[0] for m in members}
        for name, off, typ in cur[struct]:
            if name not in base_names and off <= last:
                problems.append("%s.%s was inserted before the end (bit %d); append new members only"
                                % (struct, name, off))
    checked = sum(len(v) for v in base.values())
    if problems:
        print("plugin ABI broken against the 1.0 baseline:")
        for p in problems:
            print("  - " + p)
        print("0 passed, 1 failed")
        return 1
    print("plugin ABI compatible with the 1.0 baseline (%d structures, %d members checked)"
          % (len(base), checked))
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
