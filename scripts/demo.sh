#!/usr/bin/env bash
# The main job, end to end: installs what is needed (idempotent), builds the daemons, and boots a
# Linux guest under QEMU whose virtio_rng driver reads entropy from our vhost-user-rng and whose
# virtio_blk driver gets a disk from our vhost-user-blk (it makes an ext2 file system on it), and
# which reads what the host types on a virtual keyboard served by our vhost-user-input, and uses a
# gpiochip served by our vhost-user-gpio (sets an LED line, gets a button interrupt), and an I2C
# EEPROM served by our vhost-user-i2c, a host program talking to it over our vhost-user-vsock, and
# a host directory shared by our vhost-user-fs, and a SCSI disk served by our vhost-user-scsi (sg_inq
# names it; a checksummed block written through it is found in the host's image file), and which
# plays a 1 s 440 Hz tone (aplay -D hw:0,0) on a sound card served by our vhost-user-snd: the host
# measures the tone's frequency and duration in the daemon's WAV sink, and which draws a test
# pattern on a display served by our vhost-user-gpu, found pixel for pixel in QEMU's screendump.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
bazel build //vhost-user-rng:vhost-user-rng //vhost-user-blk:vhost-user-blk \
  //vhost-user-input:vhost-user-input //vhost-user-gpio:vhost-user-gpio //vhost-user-gpio:gpio_guest_tool \
  //vhost-user-i2c:vhost-user-i2c //vhost-user-i2c:i2c_guest_tool \
  //vhost-user-vsock:vhost-user-vsock //vhost-user-vsock:vsock_guest_tool //vhost-user-fs:vhost-user-fs \
  //vhost-user-scsi:vhost-user-scsi //vhost-user-snd:vhost-user-snd \
  //vhost-user-gpu:vhost-user-gpu //vhost-user-gpu:gpu_guest_tool 2>&1 |
  grep -E "^(ERROR|FAILED)" && exit 1
python3 tests/e2e/demo.py bazel-bin
