#!/usr/bin/env python3
"""Count criterion test cases across meson test logs and print the closing line.

Each criterion executable runs with --verbose, so its output has one [PASS]/[FAIL]/[SKIP] line
per case. A case counts once per environment (host, L1 VM); on the host, cases skipped for lack
of /dev/kvm that then ran in the L1 VM are reported as passed or failed there.
"""
import json
import re
import sys

case_re = re.compile(r"^\[(PASS|FAIL|SKIP|ERR )\] (\w+::\w+)", re.M)
crash_re = re.compile(r"^\[----\] (\w+::\w+): CRASH", re.M)


def parse(path):
    results = {}
    if path.endswith("l1-failed"):
        return {"l1::vm": "FAIL"}
    if not path.endswith(".json"):
        # Plain result lines ("[PASS] fuzz::virtq"), written by tests/run itself.
        with open(path) as f:
            return {name: status.strip() for status, name in case_re.findall(f.read())}
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            out = (entry.get("stdout") or "") + (entry.get("stderr") or "")
            found = False
            for status, name in case_re.findall(out):
                results[name] = status.strip()
                found = True
            for name in crash_re.findall(out):
                results[name] = "FAIL"
            if not found:
                results[entry["name"]] = "PASS" if entry["result"] in ("OK", "EXPECTEDFAIL") else (
                    "SKIP" if entry["result"] == "SKIP" else "FAIL")
            elif entry["result"] not in ("OK", "EXPECTEDFAIL", "SKIP") and not any(
                    s == "FAIL" for _, s in [(n, st) for st, n in case_re.findall(out)]):
                # The executable failed as a whole (timeout, sanitizer abort): count it.
                results[entry["name"] + "::executable"] = "FAIL"
    return results


merged = {}
for path in sys.argv[1:]:
    for name, status in parse(path).items():
        # A later environment (the L1 VM) settles what an earlier one skipped.
        if name not in merged or merged[name] == "SKIP":
            merged[name] = status
        elif status == "FAIL":
            merged[name] = "FAIL"

failed = sorted(n for n, s in merged.items() if s in ("FAIL", "ERR"))
skipped = sorted(n for n, s in merged.items() if s == "SKIP")
passed = sum(1 for s in merged.values() if s == "PASS")
for n in skipped:
    print(f"skipped: {n}")
for n in failed:
    print(f"FAILED: {n}")
print(f"{passed} passed, {len(failed)} failed, {len(skipped)} skipped")
sys.exit(1 if failed else 0)
