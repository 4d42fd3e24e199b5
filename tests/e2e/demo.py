"""The README's first command: a Linux guest reads entropy from our vhost-user-rng via QEMU.

Usage: demo.py PATH_TO_vhost-user-rng
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

SCRIPT = r"""
echo
echo "guest: kernel $(uname -r); hardware RNG: $(cat /sys/class/misc/hw_random/rng_current)"
echo "guest: 64 bytes from /dev/hwrng:"
dd if=/dev/hwrng bs=64 count=1 iflag=fullblock 2>/dev/null | od -An -tx1
dd if=/dev/hwrng of=/tmp/sample bs=4096 count=64 iflag=fullblock 2>/dev/null
echo "guest: read $(wc -c < /tmp/sample) bytes; byte histogram chi-square (255 dof, ~255 expected):"
od -An -v -tu1 /tmp/sample | awk '{ for (i = 1; i <= NF; i++) { c[$i]++; n++ } }
  END { e = n / 256; x = 0; for (v = 0; v < 256; v++) x += (c[v] - e) * (c[v] - e) / e; printf "  %.1f\n", x }'
echo
"""


def main():
    daemon = os.path.abspath(sys.argv[1])
    with qemu_guest.work_dir("demo") as work:
        sock = os.path.join(work, "rng.sock")
        print(f"host: starting {daemon} --socket-path={sock}")
        with qemu_guest.Daemon([daemon, f"--socket-path={sock}"], sock) as d:
            print("host: booting a Linux guest under QEMU (TCG) with -device vhost-user-rng-pci")
            result = qemu_guest.run_guest(
                SCRIPT, ["-chardev", f"socket,id=rng0,path={sock}",
                         "-device", "vhost-user-rng-pci,chardev=rng0"],
                modules=["virtio_rng"], work=work)
            log = d.read_log()
    body = result.output.split("E2E-BEGIN", 1)[-1].split("E2E-END", 1)[0]
    print(body.rstrip())
    print("host: daemon log:")
    print("  " + "\n  ".join(log.strip().splitlines()))
    ok = result.script_status == 0 and "virtio_rng" in body
    print(f"host: guest finished in {result.wall_seconds:.1f} s: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
