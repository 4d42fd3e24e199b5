#!/usr/bin/env bash
# Coverage-guided fuzzing of one target with libFuzzer (clang 14), ASan and UBSan.
# Usage: tests/fuzz/run_libfuzzer.sh message_fuzz|virtqueue_fuzz|device_fuzz|scsi_lun_fuzz|
#        scsi_device_fuzz|gpu_device_fuzz|gpu_device_3d_fuzz [SECONDS]
# New inputs that reach new code land in a scratch corpus under /tmp; crashes in the current
# directory (crash-*), to be copied into tests/fuzz/corpus/TARGET as regressions once fixed.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:?target}
seconds=${2:-60}
out=$(mktemp -d /tmp/fuzz-$target-XXXXXX)
common=($(ls common/virtio/*.cc common/device/*.cc common/vhost_user/*.cc | grep -v _test.cc)
        common/testing/fake_guest_memory.cc)
if [ "$target" = device_fuzz ]; then
  common+=(common/testing/driver_ring.cc common/runtime/unix_listener.cc
           common/runtime/control_socket.cc)
  for d in vhost-user-gpio vhost-user-i2c vhost-user-vsock vhost-user-fs; do
    common+=($(ls $d/*.cc | grep -v -e main.cc -e _test.cc))
  done
fi
libs=()
scsi_lun=(vhost-user-scsi/cdb.cc vhost-user-scsi/lun_spec.cc vhost-user-scsi/persistent_reservations.cc
          vhost-user-scsi/scsi_lun.cc vhost-user-scsi/sense.cc)
if [ "$target" = scsi_lun_fuzz ]; then
  common=("${scsi_lun[@]}")
elif [ "$target" = scsi_device_fuzz ]; then
  common+=("${scsi_lun[@]}" common/testing/driver_ring.cc common/testing/test_queue.cc
           common/block/io_ring.cc common/block/null_disk.cc common/block/file_disk.cc
           common/block/sync_io.cc vhost-user-scsi/logical_unit.cc vhost-user-scsi/scsi_device.cc
           vhost-user-scsi/state_file.cc)
  libs+=(-luring)
elif [ "$target" = gpu_device_fuzz ] || [ "$target" = gpu_device_3d_fuzz ]; then
  common+=(common/testing/driver_ring.cc common/testing/test_queue.cc vhost-user-gpu/edid.cc
           vhost-user-gpu/gpu_spec.cc vhost-user-gpu/pixel_format.cc
           vhost-user-gpu/resource_table.cc vhost-user-gpu/command_util.cc
           vhost-user-gpu/gpu_device.cc vhost-user-gpu/gpu_device_3d.cc
           tests/fuzz/gpu_fuzz_harness.cc)
fi
absl_libs=$(ls /usr/lib/x86_64-linux-gnu/libabsl_*.so | sed 's|.*/lib\(absl_[a-z0-9_]*\)\.so|-l\1|' | tr '\n' ' ')
clang++-14 -std=c++17 -O1 -g -I. -fsanitize=fuzzer,address,undefined \
  "tests/fuzz/$target.cc" "${common[@]}" -o "$out/$target" \
  -Wl,--start-group $absl_libs -Wl,--end-group -lglog -lgflags "${libs[@]}" -pthread
mkdir -p "$out/corpus"
cp "tests/fuzz/corpus/$target"/* "$out/corpus/"
"$out/$target" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 "$out/corpus"
echo "corpus grown to $(ls "$out/corpus" | wc -l) inputs in $out/corpus"
