#!/usr/bin/env bash
# Runs run_all --short on the benchmarks built into this test's runfiles (no recursive bazel) and
# checks that every benchmark ran and gave the table its rows. The figures themselves are not
# checked: on a shared machine no threshold would mean anything.
set -euo pipefail
dir="${TEST_SRCDIR:?}/vhost_user_suite/tests/bench"
out="${TEST_TMPDIR:?}/table.md"
# run_all exits non-zero when a benchmark fails or prints none of its rows.
bash "$dir/run_all" --short --bin-dir "$dir" --keep-logs="$TEST_TMPDIR/logs" | tee "$out"
fails=0
# device, rows expected: one per case each benchmark prints at --short.
for expected in rng:4 blk:9 scsi:7 vsock:3 fs:4 gpu:4 snd:16 footprint:4 restart:1 gpio:3 \
  input:4 i2c:8; do
  device=${expected%:*}
  rows=$(grep -c "^| $device | " "$out" || true)
  if [ "$rows" -lt "${expected#*:}" ]; then
    echo "FAIL: $rows rows for $device, expected ${expected#*:}"
    fails=$((fails + 1))
  fi
done
[ "$fails" = 0 ] && echo "PASS: every benchmark ran and printed its rows"
exit "$fails"
