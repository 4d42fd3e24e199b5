"""A Linux guest's virtio_scsi and sd drivers, and sg3_utils, use LUNs served by our
vhost-user-scsi through QEMU's vhost-user-scsi-pci: four LUNs on two targets (one read-only, one
at LUN 5 that only REPORT LUNS reveals) behind two request queues; INQUIRY and its VPD pages,
READ CAPACITY(16) with LBPME, UNMAP and WRITE SAME(16) with UNMAP punching holes in the host
file, a LOGICAL UNIT RESET answered, a persistent reservation taken (and still held after a
reboot and in a restarted QEMU); an ext4 file system with checksummed data, remounted, checked
from the host (e2fsck, debugfs), fstrim giving space back, read again after the reboot and the
restart. In another boot, LUNs change while the guest runs: one hot-added through the control
socket appears (size, serial, data written and checked from the host), is hot-removed and
disappears, and one grown on the host (SIGHUP) shows its new size without a manual rescan.

Usage: scsi_e2e_test.py PATH_TO_vhost-user-scsi (Bazel passes it).
"""
import hashlib
import os
import re
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
# sg gives /dev/sgN, through which sg_raw writes to the read-only LUN (the block device refuses
# to open for writing once sd saw the write-protect bit).
MODULES = ["virtio_scsi", "sd_mod", "sg", "crc32c_generic", "ext4"]
# sg3_utils (package sg3-utils) and e2fsprogs' mke2fs (busybox makes ext2 only), with their
# libraries, in the guest: (host path, guest directory); mke2fs in /e2fs, /bin/mke2fs being
# busybox's.
GUEST_TOOLS = [("/usr/bin/" + t, "bin") for t in (
    "sg_inq", "sg_vpd", "sg_readcap", "sg_luns", "sg_turs", "sg_unmap", "sg_write_same",
    "sg_reset", "sg_raw", "sg_persist")] + [("/sbin/mke2fs", "e2fs")]
MIB = 1 << 20

# The LUNs: (target, lun, name, size in MiB, extra --lun keys). Sizes differ so a LUN shown
# with another's size is caught.
LUNS = [
    (0, 0, "fs", 64,
     "serial=E2E-SERIAL-FS,wwn=0x5000c0de0000e2e1,vendor=VHOSTUSR,product=E2E-FS-DISK"),
    (0, 1, "ro", 4, "read-only=on,serial=E2E-SERIAL-RO"),
    (1, 0, "thin", 16, "serial=E2E-SERIAL-THIN"),
    (1, 5, "far", 24, "serial=E2E-SERIAL-FAR,product=E2E-FAR-LUN"),
]
NUM_QUEUES = 2
RO_MARK = b"HOST-WROTE-THIS!"
# The hotplug case: the LUN added (MiB, and the mark the host puts at its start) and the one
# grown (from, to MiB).
HOT_SIZE, HOT_MARK = 12, b"HOT-PLUGGED-LUN!"
GROW_FROM, GROW_TO = 8, 20


def daemon_argv(sock, images):
    luns = [f"--lun=file={images[name]},target={t},lun={l},{extra}"
            for t, l, name, _, extra in LUNS]
    return [DAEMON, f"--socket-path={sock}", f"--num-queues={NUM_QUEUES}"] + luns


def qemu_devices(sock):
    # Two vCPUs: virtio_scsi uses no more request queues than the guest has CPUs.
    return ["-chardev", f"socket,id=scsi0,path={sock}",
            "-device", f"vhost-user-scsi-pci,chardev=scsi0,num_queues={NUM_QUEUES}",
            "-smp", "2"]


# Shell functions every script starts with. lun T L prints the sd disk of target T, LUN L
# (found through sysfs: the scan is asynchronous and names follow its order); sg T L its
# /dev/sgN. run NAME CMD... prints CMD's output as "E2E-OUT NAME| line" lines and its exit
# status as E2E-RESULT NAME_rc.
HELPERS = r"""
set -e
lun() {
  for d in /sys/bus/scsi/devices/*:0:$1:$2/block/*; do
    [ -e "$d" ] && { basename "$d"; return 0; }
  done
  return 1
}
sg() { ls /sys/bus/scsi/devices/*:0:$1:$2/scsi_generic/; }
run() {
  name=$1; shift
  "$@" > /tmp/out 2>&1 && rc=0 || rc=$?
  sed "s/^/E2E-OUT $name| /" /tmp/out
  echo "E2E-RESULT ${name}_rc=$rc"
}
sha() { sha256sum | cut -d' ' -f1; }
same() { [ "$1" = "$2" ] && echo yes || echo no; }
"""

# The four LUNs of LUNS, waited for and shown.
PRELUDE = HELPERS + r"""
# The LUNs appear once virtio_scsi's scan and sd's probe are done (both asynchronous): poll.
wait_luns() {
  i=0
  while [ $i -lt 600 ]; do
    if lun 0 0 && lun 0 1 && lun 1 0 && lun 1 5; then return 0; fi > /dev/null
    sleep 0.05; i=$((i + 1))
  done
  echo "E2E-RESULT luns_missing=$(ls /sys/bus/scsi/devices | tr '\n' ' ')"
  return 1
}
show_luns() {
  echo "E2E-RESULT luns_after_seconds=$(cut -d' ' -f1 /proc/uptime)"
  echo "E2E-RESULT scsi_devices=$(ls /sys/bus/scsi/devices | grep -c '^[0-9:]*$')"
  for x in "fs 0 0" "ro 0 1" "thin 1 0" "far 1 5"; do
    set -- $x
    d=$(lun $2 $3)
    echo "E2E-RESULT sectors_$1=$(cat /sys/block/$d/size)"
    echo "E2E-RESULT queues_$1=$(ls /sys/block/$d/mq | wc -l)"
    echo "E2E-RESULT ro_$1=$(cat /sys/block/$d/ro)"
  done
}
wait_luns || exit 1
show_luns
FS=/dev/$(lun 0 0); RO=/dev/$(lun 0 1); THIN=/dev/$(lun 1 0); FAR=/dev/$(lun 1 5)
PR_KEY=0x5eed0e2e
"""

# The first boot: sg3_utils against the LUNs, the read-only LUN, holes punched in the thin LUN,
# a LUN reset, then the file system.
FIRST_SCRIPT = PRELUDE + r"""
echo "E2E-RESULT discard_max=$(cat /sys/block/${FS#/dev/}/queue/discard_max_bytes)"
run inq sg_inq $FS
run inq_far sg_inq $FAR
run vpd_sv sg_vpd --page=sv $FS
run vpd_sn sg_vpd --page=sn $FS
run vpd_di sg_vpd --page=di $FS
run vpd_bl sg_vpd --page=bl $FS
run vpd_lbpv sg_vpd --page=lbpv $FS
run vpd_bdc sg_vpd --page=bdc $FS
run readcap sg_readcap --long $FS
run luns_t1 sg_luns $THIN
run luns_t0 sg_luns $FS
run luns_all sg_luns --select=2 $FAR

# The read-only LUN: sd saw the write-protect bit; a WRITE(10) sent through /dev/sgN (which the
# block layer's read-only flag does not stop) gets DATA PROTECT from the daemon.
echo "E2E-RESULT ro_first=$(dd if=$RO bs=16 count=1 2>/dev/null)"
if dd if=/dev/zero of=$RO bs=4096 count=1 oflag=direct 2>/dev/null; then
  echo "E2E-RESULT ro_dd=succeeded"
else
  echo "E2E-RESULT ro_dd=failed"
fi
run ro_write sg_raw --send=512 --infile=/dev/zero /dev/$(sg 0 1) 2a 00 00 00 00 00 00 00 01 00

# Thin provisioning on the thin LUN: 8 MiB of data, then UNMAP of [0, 2 MiB) and WRITE SAME(16)
# with UNMAP of [4, 6 MiB). The host checks the holes; here the unmapped ranges read zeroes and
# the others what was written (O_DIRECT: sg_* bypass the page cache).
mib_sha() { dd if=$THIN bs=1M skip=$1 count=2 iflag=direct 2>/dev/null | sha; }  # [$1, $1 + 2)
bs=$(cat /sys/block/${THIN#/dev/}/queue/logical_block_size)
n=$((2 * 1048576 / bs))
dd if=/dev/urandom of=$THIN bs=1M count=8 oflag=direct 2>/dev/null
kept_before="$(mib_sha 2) $(mib_sha 6)"
run unmap sg_unmap --force --lba=0 --num=$n $THIN
run write_same sg_write_same --16 --unmap --lba=$((2 * n)) --num=$n $THIN
zeroes=$(dd if=/dev/zero bs=1M count=2 2>/dev/null | sha)
echo "E2E-RESULT unmapped_zero=$(same "$(mib_sha 0)" $zeroes)"
echo "E2E-RESULT write_same_zero=$(same "$(mib_sha 4)" $zeroes)"
echo "E2E-RESULT kept=$(same "$(mib_sha 2) $(mib_sha 6)" "$kept_before")"

# A LOGICAL UNIT RESET (virtio_scsi's device reset handler, a TMF on the control queue): the
# ioctl fails unless the daemon answers it; the first TEST UNIT READY reports the reset (a unit
# attention), the next succeeds.
run reset sg_reset --device $FS
run turs_reset_ua sg_turs $FS
run turs_after_reset sg_turs $FS
echo "E2E-RESULT read_after_reset=$(dd if=$FS bs=1M count=4 iflag=direct 2>/dev/null | wc -c)"

# Persistent reservations on the fs LUN: a key registered and a Write Exclusive - Registrants
# Only reservation taken with it (the guest, holding it, writes the file system below); a
# RESERVE with a key never registered is a RESERVATION CONFLICT (sg_persist exits with 24).
run pr_caps sg_persist --in --report-capabilities $FS
run pr_register sg_persist --out --register --param-sark=$PR_KEY $FS
run pr_reserve sg_persist --out --reserve --param-rk=$PR_KEY --prout-type=5 $FS
run pr_wrong_key sg_persist --out --reserve --param-rk=0xbad --prout-type=5 $FS
run pr_keys sg_persist --in --read-keys $FS
run pr_reservation sg_persist --in --read-reservation $FS

# The file system: ext4 (metadata checksums), a file kept for the later sessions and the host
# (its SHA-256 stored beside it), a big one read back after a remount, then deleted and trimmed.
/e2fs/mke2fs -q -F -t ext4 $FS
mkdir -p /mnt && mount -t ext4 -o noinit_itable $FS /mnt
dd if=/dev/urandom of=/mnt/keep bs=64k count=16 2>/dev/null
sha < /mnt/keep > /mnt/keep.sha
dd if=/dev/urandom of=/mnt/big bs=1M count=8 2>/dev/null
sha < /mnt/big > /tmp/big.sha
umount /mnt
mount -t ext4 -o noinit_itable $FS /mnt
echo "E2E-RESULT big_same=$(same "$(sha < /mnt/big)" "$(cat /tmp/big.sha)")"
echo "E2E-RESULT keep_sha=$(cat /mnt/keep.sha)"
rm /mnt/big
sync
fstrim -v /mnt | sed 's/^/E2E-RESULT fstrim=/'
umount /mnt
sync
echo "E2E-RESULT done=yes"
"""

# After a reboot and in a restarted QEMU: every LUN is there again, the reservation too (neither
# a reset nor the loss of the I_T nexus releases it, SPC-4 5.14.11), the file kept in the first
# boot checks, and each session reads the token the previous one wrote.
AGAIN_SCRIPT = PRELUDE + r"""
run turs sg_turs $FS
run pr_keys sg_persist --in --read-keys $FS
run pr_reservation sg_persist --in --read-reservation $FS
mkdir -p /mnt && mount -t ext4 -o noinit_itable $FS /mnt
echo "E2E-RESULT keep_same=$(same "$(sha < /mnt/keep)" "$(cat /mnt/keep.sha)")"
echo "E2E-RESULT prev=$(cat /mnt/session 2>/dev/null || echo none)"
head -c 64 /dev/urandom | sha > /mnt/session
echo "E2E-RESULT wrote=$(cat /mnt/session)"
umount /mnt
sync
echo "E2E-RESULT done=yes"
"""

# The first boot runs FIRST_SCRIPT, the reboot AGAIN_SCRIPT.
REBOOT_SCRIPT = """if [ "$E2E_BOOT" = 1 ]; then sh /first.sh; else sh /again.sh; fi"""

# Hotplug: two LUNs at start (0:0, and 0:1 to be grown); the host adds 0:2, removes it and grows
# 0:1 when the guest says "E2E-STEP NAME" (the host reacts to the console line). Nothing tells a
# shell script that a disk came or went, so the guest polls sysfs: wait_for TRIES TEST... runs
# TEST every 50 ms until it succeeds, TRIES times at most.
HOTPLUG_SCRIPT = HELPERS + r"""
wait_for() {
  tries=$1; shift; i=0
  while [ $i -lt $tries ]; do
    if "$@"; then return 0; fi
    sleep 0.05; i=$((i + 1))
  done
  return 1
}
absent() { [ ! -e "$1" ]; }
scsi_devices() { ls /sys/bus/scsi/devices | grep '^[0-9:]*$' | tr '\n' ' '; }
both() { lun 0 0 && lun 0 1; }
wait_for 600 both > /dev/null || { echo "E2E-RESULT missing=$(scsi_devices)"; exit 1; }
echo "E2E-RESULT devices_at_start=$(scsi_devices)"
for v in /sys/bus/virtio/devices/*; do
  if [ "$(cat $v/device)" = 0x0008 ]; then echo "E2E-RESULT guest_features=$(cat $v/features)"; fi
done

# 1. Hot-added: the TRANSPORT_RESET RESCAN event makes virtio_scsi add 0:2 and sd attach it.
echo "E2E-STEP add"
if wait_for 400 lun 0 2 > /dev/null; then
  HOT=$(lun 0 2); ID=$(basename /sys/bus/scsi/devices/*:0:0:2)
  echo "E2E-RESULT added=yes"
  echo "E2E-RESULT devices_after_add=$(scsi_devices)"
  echo "E2E-RESULT sectors_hot=$(cat /sys/block/$HOT/size)"
  echo "E2E-RESULT ro_hot=$(cat /sys/block/$HOT/ro)"
  run inq_hot sg_inq /dev/$HOT
  echo "E2E-RESULT hot_mark=$(dd if=/dev/$HOT bs=16 count=1 iflag=direct 2>/dev/null)"
  dd if=/dev/urandom of=/tmp/hot.data bs=64k count=16 2>/dev/null
  echo "E2E-RESULT hot_data=$(sha < /tmp/hot.data)"
  run hot_write dd if=/tmp/hot.data of=/dev/$HOT bs=1M seek=2 oflag=direct
  echo "E2E-RESULT hot_read=$(dd if=/dev/$HOT bs=1M skip=2 count=1 iflag=direct 2>/dev/null | sha)"
else
  echo "E2E-RESULT added=no"
  echo "E2E-RESULT devices_after_add=$(scsi_devices)"
  exit 1
fi

# 2. Hot-removed: the TRANSPORT_RESET REMOVED event makes virtio_scsi remove 0:2: its SCSI
# device, scsi_disk, block device and /dev node go.
gone() {
  absent /sys/bus/scsi/devices/$ID && absent /sys/class/scsi_disk/$ID && \
    absent /sys/block/$HOT && absent /dev/$HOT
}
echo "E2E-STEP remove"
if wait_for 400 gone; then echo "E2E-RESULT removed=yes"; else echo "E2E-RESULT removed=no"; fi
echo "E2E-RESULT devices_after_remove=$(scsi_devices)"
for x in /sys/bus/scsi/devices/$ID /sys/class/scsi_disk/$ID /sys/block/$HOT /dev/$HOT; do
  if [ -e $x ]; then echo "E2E-RESULT still_there=$x"; fi
done

# 3. Grown on the host: with VIRTIO_SCSI_F_CHANGE the PARAM_CHANGE event (2Ah/09h) makes
# virtio_scsi rescan the LUN, and sd reads the new capacity; no one here asks it to.
G=$(lun 0 1)
before=$(cat /sys/block/$G/size)
echo "E2E-RESULT grow_before=$before"
changed() { [ "$(cat /sys/block/$G/size)" != "$before" ]; }
echo "E2E-STEP grow"
if wait_for 160 changed; then
  echo "E2E-RESULT grown_seen=by_itself"
else
  # Not by the event: does the unit attention the next command gets make Linux rescan?
  dd if=/dev/$G of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null
  if wait_for 60 changed; then
    echo "E2E-RESULT grown_seen=after_a_read"
  else
    echo "E2E-RESULT grown_seen=no"
  fi
fi
echo "E2E-RESULT grow_after=$(cat /sys/block/$G/size)"
dmesg | grep -i "changed" | sed 's/^/E2E-OUT dmesg| /'
if changed; then
  # The new space is there: written past the old end, checked on the host.
  dd if=/dev/urandom of=/tmp/grow.data bs=64k count=16 2>/dev/null
  echo "E2E-RESULT grow_data=$(sha < /tmp/grow.data)"
  run grow_write dd if=/tmp/grow.data of=/dev/$G bs=1M seek=$((before / 2048)) oflag=direct
fi
sync
echo "E2E-RESULT done=yes"
"""


def tool_entries(tools):
    """cpio entries for host tools [(path, guest directory)] and their libraries, each
    library once."""
    seen, entries = set(), []
    for path, dest_dir in tools:
        for entry in [(dest_dir, "dir", None)] + qemu_guest.host_binary_entries(path, dest_dir):
            if entry[0] not in seen:
                seen.add(entry[0])
                entries.append(entry)
    return entries


def outputs(output):
    """The lines each `run NAME` printed: {NAME: text}."""
    out = {}
    for line in output.splitlines():
        m = re.search(r"E2E-OUT (\S+?)\| ?(.*)$", line.rstrip("\r"))
        if m:
            out[m.group(1)] = out.get(m.group(1), "") + m.group(2) + "\n"
    return out


def reported_luns(text):
    """The LUNs in sg_luns' hex listing: numbers (peripheral or flat addressing, SAM-5
    4.7.7) and "wk-XX" for well-known LUNs."""
    luns = []
    for entry in re.findall(r"(?m)^\s+([0-9a-f]{16})\s*$", text):
        b0, b1 = int(entry[:2], 16), int(entry[2:4], 16)
        method = b0 >> 6
        if method == 0:
            luns.append(b1)
        elif method == 1:
            luns.append(((b0 & 0x3f) << 8) | b1)
        elif b0 == 0xc1:  # extended: well-known logical unit
            luns.append(f"wk-{b1:02x}")
        else:
            luns.append(entry)
    return luns


def data_ranges(path):
    """The file's data (non-hole) ranges [(start, end)], from SEEK_DATA/SEEK_HOLE."""
    ranges = []
    with open(path, "rb") as f:
        fd, end, pos = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            pos = os.lseek(fd, start, os.SEEK_HOLE)
            ranges.append((start, pos))
    return ranges


def debugfs_cat(image, path):
    """A file's content read from an ext4 image on the host, without mounting it (empty if
    it is not there: the guest's results say why)."""
    return subprocess.run(["/sbin/debugfs", "-R", f"cat {path}", image],
                          capture_output=True).stdout


class ScsiGuestTest(unittest.TestCase):

    def test_luns_sg3_utils_holes_and_a_file_system_then_a_reboot_and_a_qemu_restart(self):
        with qemu_guest.work_dir("scsi") as work:
            images = {}
            for _, _, name, size, _ in LUNS:
                images[name] = os.path.join(work, name + ".img")
                with open(images[name], "wb") as f:
                    f.truncate(size * MIB)
            with open(images["ro"], "r+b") as f:
                f.write(RO_MARK)
            sock = os.path.join(work, "scsi.sock")
            devices = qemu_devices(sock)
            entries = tool_entries(GUEST_TOOLS) + [
                ("first.sh", "file", (FIRST_SCRIPT.encode(), 0o755)),
                ("again.sh", "file", (AGAIN_SCRIPT.encode(), 0o755))]
            with qemu_guest.Daemon(daemon_argv(sock, images), sock) as daemon:
                results = [qemu_guest.run_guest(REBOOT_SCRIPT, devices, modules=MODULES,
                                                work=work, boots=2, extra_entries=entries)]
                results.append(qemu_guest.run_guest_again(daemon, AGAIN_SCRIPT, devices,
                                                          modules=MODULES, work=work,
                                                          extra_entries=entries))
                log = daemon.read_log()
                self.assertTrue(daemon.alive(), log[-3000:])
            # The host's view once every guest has powered off.
            allocated = {name: os.stat(path).st_blocks * 512 for name, path in images.items()}
            thin_data = data_ranges(images["thin"])
            with open(images["ro"], "rb") as f:
                ro_content = f.read()
            fsck = subprocess.run(["/sbin/e2fsck", "-fn", images["fs"]], capture_output=True,
                                  text=True)
            keep_sha = hashlib.sha256(debugfs_cat(images["fs"], "/keep")).hexdigest()
            session = debugfs_cat(images["fs"], "/session").decode().strip()

        runs = []
        for result in results:
            self.assertFalse(result.timed_out, result.output[-3000:] + log[-2000:])
            runs += result.boots
        self.assertEqual(len(runs), 3, results[-1].output[-3000:] + log[-2000:])
        first, rebooted, restarted = runs
        for run in runs:
            self.assertEqual(run.results.get("done"), "yes",
                             "\n" + run.output[-4000:] + "\n" + log[-2000:])
        r, out = first.results, outputs(first.output)

        # Every LUN, on both targets (LUN 5 behind a gap, found through REPORT LUNS), with its
        # size, its read-only flag and both request queues; the same after the reboot and in
        # the restarted QEMU.
        for run in runs:
            rr = run.results
            self.assertEqual(rr["scsi_devices"], str(len(LUNS)), run.output[-3000:])
            for _, _, name, size, extra in LUNS:
                self.assertEqual(int(rr[f"sectors_{name}"]), size * MIB // 512, name)
                self.assertEqual(rr[f"queues_{name}"], str(NUM_QUEUES), name)
                self.assertEqual(rr[f"ro_{name}"], "1" if "read-only=on" in extra else "0", name)

        # INQUIRY: vendor, product and serial as given with --lun.
        self.assertEqual(r["inq_rc"], "0", out.get("inq"))
        self.assertRegex(out["inq"], r"Vendor identification: VHOSTUSR")
        self.assertRegex(out["inq"], r"Product identification: E2E-FS-DISK")
        self.assertRegex(out["inq"], r"Unit serial number: E2E-SERIAL-FS")
        self.assertRegex(out["inq_far"], r"Product identification: E2E-FAR-LUN")
        self.assertRegex(out["inq_far"], r"Unit serial number: E2E-SERIAL-FAR")
        # VPD pages: the supported ones include serial, device identification, block limits
        # and provisioning, and each reads back; block device characteristics reads only if
        # listed (only what is implemented is advertised).
        self.assertEqual(r["vpd_sv_rc"], "0", out.get("vpd_sv"))
        for page in ("sn", "di", "bl", "lbpv"):  # 0x80, 0x83, 0xb0, 0xb2
            self.assertIn(f"[{page}]", out["vpd_sv"])
        for page in ("sn", "di", "bl", "lbpv"):
            self.assertEqual(r[f"vpd_{page}_rc"], "0", out.get(f"vpd_{page}"))
        self.assertEqual(r["vpd_bdc_rc"] == "0", "[bdc]" in out["vpd_sv"], out.get("vpd_bdc"))
        self.assertRegex(out["vpd_sn"], r"Unit serial number: E2E-SERIAL-FS")
        self.assertRegex(out["vpd_di"], r"designator type: NAA,\s+code set: Binary\s+"
                                        r"0x5000c0de0000e2e1")
        self.assertRegex(out["vpd_bl"], r"Maximum unmap LBA count: [1-9]")
        self.assertRegex(out["vpd_bl"], r"Maximum unmap block descriptor count: [1-9]")
        self.assertRegex(out["vpd_lbpv"], r"Unmap command supported \(LBPU\): 1")
        self.assertRegex(out["vpd_lbpv"], r"Write same \(16\) with unmap bit supported "
                                          r"\(LBPWS\): 1")
        # READ CAPACITY(16): the size and LBPME.
        self.assertEqual(r["readcap_rc"], "0", out.get("readcap"))
        self.assertRegex(out["readcap"], r"lbpme=1")
        self.assertRegex(out["readcap"], rf"Device size: {64 * MIB} bytes")
        # REPORT LUNS lists the target's own LUNs, and the REPORT LUNS well-known LUN when asked
        # for all (SELECT REPORT 02h).
        for name in ("luns_t0", "luns_t1", "luns_all"):
            self.assertEqual(r[f"{name}_rc"], "0", out.get(name))
        self.assertEqual(reported_luns(out["luns_t0"]), [0, 1], out["luns_t0"])
        self.assertEqual(reported_luns(out["luns_t1"]), [0, 5], out["luns_t1"])
        self.assertEqual(sorted(map(str, reported_luns(out["luns_all"]))), ["0", "5", "wk-01"],
                         out["luns_all"])

        # The read-only LUN: reads what the host wrote, refuses writes in the guest and in the
        # daemon (DATA PROTECT), and the host file is untouched.
        self.assertEqual(r["ro_first"], RO_MARK.decode())
        self.assertEqual(r["ro_dd"], "failed")
        self.assertNotEqual(r["ro_write_rc"], "0", out.get("ro_write"))
        self.assertRegex(out["ro_write"], r"Sense key: Data Protect")
        self.assertRegex(out["ro_write"], r"(?i)write protected")
        self.assertEqual(ro_content[:len(RO_MARK)], RO_MARK)
        self.assertEqual(ro_content.count(0), len(ro_content) - len(RO_MARK))

        # UNMAP and WRITE SAME(16) with UNMAP: the guest reads zeroes there and its data
        # elsewhere; the host file has holes exactly there, 4 MiB of the 8 written left.
        self.assertEqual(r["unmap_rc"], "0", out.get("unmap"))
        self.assertEqual(r["write_same_rc"], "0", out.get("write_same"))
        self.assertEqual(r["unmapped_zero"], "yes")
        self.assertEqual(r["write_same_zero"], "yes")
        self.assertEqual(r["kept"], "yes")
        self.assertEqual(thin_data, [(2 * MIB, 4 * MIB), (6 * MIB, 8 * MIB)])
        self.assertLess(allocated["thin"], 5 * MIB)

        # Persistent reservations: registered, reserved, read back; a stranger's key conflicts.
        for name in ("pr_caps", "pr_register", "pr_reserve", "pr_keys", "pr_reservation"):
            self.assertEqual(r[f"{name}_rc"], "0", out.get(name))
        self.assertRegex(out["pr_caps"], r"Write Exclusive, registrants only: 1")
        self.assertEqual(r["pr_wrong_key_rc"], "24", out.get("pr_wrong_key"))
        self.check_reservation(out)

        # The LUN reset was answered, reported once as a unit attention (SAM-5: 29/03 BUS DEVICE
        # RESET FUNCTION OCCURRED; sg_turs exits with 6), and the LUN kept working.
        self.assertEqual(r["reset_rc"], "0", out.get("reset"))
        self.assertEqual(r["turs_reset_ua_rc"], "6", out.get("turs_reset_ua"))
        self.assertRegex(out["turs_reset_ua"], r"Sense key: Unit Attention\s+"
                                               r"Additional sense: Bus device reset function")
        self.assertEqual(r["turs_after_reset_rc"], "0", out.get("turs_after_reset"))
        self.assertEqual(r["read_after_reset"], str(4 * MIB))

        # The file system: the big file read back after a remount; deleted and trimmed, it gave
        # its space back to the host file (8 MiB of it: less than that is allocated now).
        self.assertGreater(int(r["discard_max"]), 0)
        self.assertEqual(r["big_same"], "yes")
        self.assertIn("trimmed", r["fstrim"])
        self.assertLess(allocated["fs"], 8 * MIB, f"{allocated['fs']} bytes still allocated")
        # From the host: the file system is consistent (metadata checksums included) and the
        # kept file is what the guest wrote.
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)
        self.assertEqual(keep_sha, r["keep_sha"])

        # The reboot (devices reset under the same connection) and the restarted QEMU (a new
        # front end of the same daemon): the kept file checks, each session reads the previous
        # one's token, and the last one is in the host file.
        for run in (rebooted, restarted):
            self.assertEqual(run.results["keep_same"], "yes", run.output[-3000:])
            self.assertEqual(run.results["turs_rc"], "0", run.output[-3000:])
            self.check_reservation(outputs(run.output))
        self.assertEqual(rebooted.results["prev"], "none")
        self.assertEqual(restarted.results["prev"], rebooted.results["wrote"])
        self.assertNotEqual(restarted.results["wrote"], rebooted.results["wrote"])
        self.assertEqual(session, restarted.results["wrote"])

    def check_reservation(self, out):
        """sg_persist read the registered key and the reservation held with it."""
        self.assertRegex(out["pr_keys"], r"1 registered reservation key follows:\s+0x5eed0e2e")
        self.assertRegex(out["pr_reservation"], r"Key=0x5eed0e2e\s+scope: LU_SCOPE,\s+type: "
                                                r"Write Exclusive, registrants only")

    def test_a_lun_added_removed_and_grown_while_the_guest_runs(self):
        with qemu_guest.work_dir("scsi-hp") as work:
            images = {name: os.path.join(work, name + ".img") for name in ("base", "grow", "hot")}
            for name, size in (("base", 4), ("grow", GROW_FROM), ("hot", HOT_SIZE)):
                with open(images[name], "wb") as f:
                    f.truncate(size * MIB)
            with open(images["hot"], "r+b") as f:
                f.write(HOT_MARK)
            sock, ctl = os.path.join(work, "scsi.sock"), os.path.join(work, "scsi.ctl")
            argv = [DAEMON, f"--socket-path={sock}", f"--num-queues={NUM_QUEUES}",
                    f"--control-socket={ctl}",
                    f"--lun=file={images['base']},target=0,lun=0,serial=BASE0",
                    f"--lun=file={images['grow']},target=0,lun=1,serial=GROW1"]
            done, errors = {}, []

            def hotplug(command):
                proc = subprocess.run([DAEMON, f"--control-socket={ctl}", f"--hotplug={command}"],
                                      capture_output=True, text=True, timeout=30)
                return proc.returncode, (proc.stdout + proc.stderr).strip()

            def grow():
                os.truncate(images["grow"], GROW_TO * MIB)
                os.kill(daemon.proc.pid, signal.SIGHUP)
                return hotplug("list")

            steps = {
                "add": lambda: (hotplug(f"add file={images['hot']},target=0,lun=2,serial=HOT1"),
                                hotplug("list")),
                "remove": lambda: (hotplug("remove target=0,lun=2"), hotplug("list")),
                "grow": grow,
            }

            def on_line(line):  # on the console reader's thread: the guest waits meanwhile
                m = re.search(r"E2E-STEP (\w+)", line)
                if m and m.group(1) in steps and m.group(1) not in done:
                    try:
                        done[m.group(1)] = steps[m.group(1)]()
                    except Exception as e:  # reported below, with the console
                        errors.append(f"{m.group(1)}: {e!r}")

            entries = tool_entries([("/usr/bin/sg_inq", "bin")])
            with qemu_guest.Daemon(argv, sock) as daemon:
                result = qemu_guest.run_guest(HOTPLUG_SCRIPT, qemu_devices(sock), modules=MODULES,
                                              work=work, extra_entries=entries, timeout=120,
                                              on_line=on_line)
                log = daemon.read_log()
                self.assertTrue(daemon.alive(), log[-3000:])
            with open(images["hot"], "rb") as f:
                hot = f.read()
            with open(images["grow"], "rb") as f:
                grown = f.read()

        context = "\n" + result.output[-4000:] + "\n" + log[-3000:]
        self.assertFalse(result.timed_out, context)
        self.assertEqual(errors, [], context)
        r, out = result.results, outputs(result.output)
        self.assertEqual(r.get("devices_at_start", "").split(), ["0:0:0:0", "0:0:0:1"], context)
        # QEMU's vhost-user-scsi-pci passes VIRTIO_SCSI_F_HOTPLUG (bit 1) and F_CHANGE (bit 2)
        # on to the daemon once the guest accepted them.
        features = [int(f, 16) for f in re.findall(r"features 0x([0-9a-f]+)", log)]
        self.assertTrue(features and features[-1] & 0b110 == 0b110, context)
        # A new LUN seen as 0:0:0:16386 means the event named LUN 2 in flat addressing (0x4002):
        # Linux's virtio_scsi takes the event's bytes 2-3 whole as the LUN number, so events
        # must use REPORT LUNS' encoding (peripheral, no 0x40, below 256), as QEMU's do.
        self.assertEqual(r.get("added"), "yes", context)
        self.assertEqual(r.get("done"), "yes", context)

        # Added: the client passed the image, the daemon took it and announced it; the guest
        # has a new disk of its size and serial, reads the host's mark, writes, reads back; the
        # host file has what the guest wrote.
        (add_rc, add_out), (_, listed) = done["add"]
        self.assertEqual((add_rc, add_out), (0, "ok target=0 lun=2"))
        self.assertEqual(listed, "ok 0:0 0:1 0:2")
        self.assertEqual(r["devices_after_add"].split(), ["0:0:0:0", "0:0:0:1", "0:0:0:2"])
        self.assertEqual(int(r["sectors_hot"]), HOT_SIZE * MIB // 512)
        self.assertEqual(r["ro_hot"], "0")
        self.assertEqual(r["inq_hot_rc"], "0", out.get("inq_hot"))
        self.assertRegex(out["inq_hot"], r"Unit serial number: HOT1")
        self.assertEqual(r["hot_mark"], HOT_MARK.decode())
        self.assertEqual(r["hot_write_rc"], "0", out.get("hot_write"))
        self.assertEqual(r["hot_read"], r["hot_data"])
        self.assertEqual(hashlib.sha256(hot[2 * MIB:3 * MIB]).hexdigest(), r["hot_data"])
        self.assertEqual(len(hot), HOT_SIZE * MIB)

        # Removed: gone from the daemon and, every trace of it, from the guest.
        (rm_rc, rm_out), (_, listed) = done["remove"]
        self.assertEqual((rm_rc, rm_out), (0, "ok"))
        self.assertEqual(listed, "ok 0:0 0:1")
        self.assertEqual(r["removed"], "yes", context)
        self.assertNotIn("still_there", r)
        self.assertEqual(r["devices_after_remove"].split(), ["0:0:0:0", "0:0:0:1"])

        # Grown: the guest sees the new size by itself (virtio_scsi rescans on PARAM_CHANGE),
        # and what it wrote past the old end is in the host file.
        self.assertEqual(done["grow"], (0, "ok 0:0 0:1"))
        self.assertEqual(int(r["grow_before"]), GROW_FROM * MIB // 512)
        why = f"guest saw it: {r['grown_seen']}, dmesg: {out.get('dmesg')}{context}"
        self.assertEqual(r["grown_seen"], "by_itself", why)
        self.assertEqual(int(r["grow_after"]), GROW_TO * MIB // 512, why)
        self.assertEqual(r["grow_write_rc"], "0", out.get("grow_write"))
        self.assertEqual(hashlib.sha256(grown[GROW_FROM * MIB:(GROW_FROM + 1) * MIB])
                         .hexdigest(), r["grow_data"])


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
