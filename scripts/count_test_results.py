#!/usr/bin/env python3
"""Counts test cases from the JUnit XML that Bazel leaves for each test target.

Usage: count_test_results.py TESTLOGS_DIR STAMP_FILE TARGET...
Only XML newer than STAMP_FILE counts (results of this run); a target with no fresh XML (it did
not build, or did not run) counts as one failure. Prints 'N passed, N failed[, N skipped]'.
"""
import os
import sys
import xml.etree.ElementTree as ET


def target_xml(testlogs, target):
    package, name = target.lstrip("/").split(":")
    return os.path.join(testlogs, package, name, "test.xml")


def count(path):
    passed = failed = skipped = 0
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None or case.get("status") == "notrun":
            skipped += 1
        else:
            passed += 1
    if passed + failed + skipped == 0:
        # A target whose runner wrote no cases: judge it by the suite's own failure count.
        fails = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in root.iter("testsuite"))
        return (0, 1, 0) if fails else (1, 0, 0)
    return passed, failed, skipped


def main():
    testlogs, stamp, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
    since = os.path.getmtime(stamp)
    totals = [0, 0, 0]
    for target in targets:
        path = target_xml(testlogs, target)
        if not os.path.exists(path) or os.path.getmtime(path) < since:
            print(f"{target}: no result from this run (counted as failed)", file=sys.stderr)
            totals[1] += 1
            continue
        for i, n in enumerate(count(path)):
            totals[i] += n
    line = f"{totals[0]} passed, {totals[1]} failed"
    if totals[2]:
        line += f", {totals[2]} skipped"
    print(line)
    return 0 if totals[1] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
