#!/usr/bin/env bash
# Sets up the machine (idempotent), builds everything and runs every test: unit, integration
# through our front end, guest end-to-end under QEMU, the arm64 build's daemons under qemu-user,
# then the unit and integration tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Ends with 'N passed, N failed'.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
sleep 1  # XML written in this second or later counts

# The suites of the root BUILD.bazel: //:all_tests (unit, integration, e2e) and //:asan_safe.
targets=$(bazel query 'tests(//:all_tests)' 2>/dev/null | sort)
fast_targets=$(bazel query 'tests(//:asan_safe)' 2>/dev/null | sort)

status=0
# The arm64 build's tests under qemu-user (tests/integration/arm64_test.sh): `manual` in Bazel,
# since no x86 build makes the arm64 daemons they need; run below, after that build.
arm64_targets="//tests/integration:arm64_test"
# A test outside every suite would silently never run in CI: refuse it.
stray=$(comm -13 <(printf '%s\n' $targets $arm64_targets | sort) \
  <(bazel query 'tests(//...)' 2>/dev/null | sort))
if [ -n "$stray" ]; then
  echo "tests in no suite of //:all_tests (tag them unit, integration or e2e):" $stray
  status=1
fi
bazel test --nocache_test_results //... || status=1
bazel build --config=arm64 //:daemons //tests/integration:seccomp_export \
  //tests/frontend:vhost-user-stat || status=1
bazel test --nocache_test_results $arm64_targets || status=1
testlogs=$(bazel info bazel-testlogs 2>/dev/null)
plain=$(python3 scripts/count_test_results.py "$testlogs" "$stamp" $targets $arm64_targets) ||
  status=1
echo "plain build: $plain"

touch "$stamp"; sleep 1
bazel test --nocache_test_results --config=asan $fast_targets || status=1
asan_testlogs=$(bazel info --config=asan bazel-testlogs 2>/dev/null)
asan=$(python3 scripts/count_test_results.py "$asan_testlogs" "$stamp" $fast_targets) || status=1
echo "asan+ubsan build: $asan"

# One closing line for both runs.
python3 - "$plain" "$asan" <<'PY'
import re, sys
totals = [0, 0, 0]
for line in sys.argv[1:]:
    for i, word in enumerate(("passed", "failed", "skipped")):
        m = re.search(r"(\d+) " + word, line)
        if m:
            totals[i] += int(m.group(1))
out = f"{totals[0]} passed, {totals[1]} failed"
if totals[2]:
    out += f", {totals[2]} skipped"
print(out)
PY
exit $status
