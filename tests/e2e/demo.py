"""The README's first command: a Linux guest under QEMU uses our daemons: it reads entropy from
vhost-user-rng, makes a file system on a disk served by vhost-user-blk, reads what the host
types on a virtual keyboard served by vhost-user-input, and uses a gpiochip served by
vhost-user-gpio (sets an LED line, waits for a button interrupt from the host), and writes and
reads back an EEPROM on an I2C bus served by vhost-user-i2c, and a host program talks to a guest
program over vsock through vhost-user-vsock, and the guest mounts a host directory served by
vhost-user-fs, and it asks a SCSI disk served by vhost-user-scsi who it is (sg_inq) and writes a
checksummed block to it that the host finds in the image file, and it plays a 1 s 440 Hz tone
(aplay -D hw:0,0) on a sound card served by vhost-user-snd, whose WAV sink the host measures,
and it sets a mode and draws a test pattern on a display served by vhost-user-gpu, which the host
finds in QEMU's screendump pixel for pixel. The guest and each part's checks are suite_guest's.

Usage: demo.py BIN_DIR (the bazel-bin holding the daemons and their guest tools)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite_guest  # noqa: E402


def main():
    run = suite_guest.run(os.path.abspath(sys.argv[1]), timeout=120)
    print(run.body.rstrip())
    for name, (ok, lines) in run.verdicts.items():
        print(f"host: vhost-user-{name}: {'OK' if ok else 'FAILED'}")
        print("  " + "\n  ".join(lines))
    for name, log in run.logs.items():
        print(f"host: {name} log:")
        print("  " + "\n  ".join(log.strip().splitlines()))
    if not run.passed():
        print("host: the guest's console ended with:\n" + run.result.output[-1500:])
    print(f"host: guest finished in {run.result.wall_seconds:.1f} s: "
          f"{'OK' if run.passed() else 'FAILED'}")
    return 0 if run.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
