"""Our vhost-user-blk serves a Linux guest on each memory layout QEMU users run (issue 21): a file
in /dev/shm, 2 MiB huge pages on hugetlbfs, memory-backend-shm, two NUMA nodes (one table of
several regions, some above 4 GiB at an offset into their file) and memory hot-added while the
guest runs.

In each case the guest tool (blk_guest_tool placed) writes a pattern to the disk with O_DIRECT
from pages it has found, through /proc/self/pagemap, at the guest-physical range the case is
about, reads it back into them and compares; the host then finds the same pattern in the image
file. While the guest runs, the host looks at the daemon's own mappings (/proc/PID/smaps) to see
that it mapped the memory the case is about.

Usage: memory_e2e_test.py PATH_TO_vhost-user-blk PATH_TO_blk_guest_tool (Bazel passes them).
"""
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
TOOL = None
MODULES = ["virtio_blk"]
DISK_MB = 8
OFFSET = 1 << 20  # where the tool writes its blocks on the disk
BLOCKS = 256      # blk_guest_tool's kPlacedPages
GIB = 1 << 30
RAM_MB = 512
HOT_MB = 256

# The guest lets the host look at the daemon (E2E-MAPS, answered with a line) and then does I/O
# from pages at guest-physical [LO, HI) (NUMA node NODE, or -1 for any).
IO_SCRIPT = r"""
set -e
echo "E2E-RESULT nodes=$(ls -d /sys/devices/system/node/node[0-9]* | wc -l)"
echo "E2E-MAPS"
read -r go
blk_guest_tool placed /dev/vda {offset} {lo} {hi} {node} {seed}
"""

# The host hot-adds a DIMM when asked (E2E-HOTPLUG?) and answers with its address and size; the
# guest waits for its memory blocks to come online (or onlines them), then does I/O from pages
# in the DIMM.
HOTPLUG_SCRIPT = r"""
set -e
kb() { awk '/^MemTotal/ {print $2}' /proc/meminfo; }
before=$(kb)
echo "E2E-RESULT auto_online=$(cat /sys/devices/system/memory/auto_online_blocks)"
echo "E2E-HOTPLUG?"
read -r lo size
bs=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
i=$((lo / bs))
while [ $i -lt $(((lo + size) / bs)) ]; do
  d=/sys/devices/system/memory/memory$i
  n=0
  # ACPI hotplug is handled by a kernel worker: the block appears a moment after the host's
  # device_add returns.
  until [ -e $d/state ] && [ "$(cat $d/state)" = online ]; do
    [ $n -lt 200 ] || { echo "E2E-RESULT block=$d $(cat $d/state 2>&1)"; exit 1; }
    if [ -e $d/state ] && [ "$(cat $d/state)" = offline ]; then echo online > $d/state; fi
    n=$((n + 1)); sleep 0.05
  done
  echo "E2E-RESULT zone_$i=$(cat $d/valid_zones)"
  i=$((i + 1))
done
echo "E2E-RESULT added_kb=$(($(kb) - before))"
blk_guest_tool placed /dev/vda {offset} $lo $((lo + size)) -1 {seed}
"""


def pattern(seed):
    """The blocks blk_guest_tool's `placed` writes (its PatternWord)."""
    mask = (1 << 64) - 1
    out = bytearray()
    for block in range(BLOCKS):
        for word in range(512):
            z = (seed * 0x9e3779b97f4a7c15 + (block << 9 | word)) & mask
            z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & mask
            z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & mask
            out += (z ^ (z >> 31)).to_bytes(8, "little")
    return bytes(out)


def daemon_mappings(pgid):
    """The shared file mappings of the daemon's processes: (path, bytes, kernel page KiB)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.getpgid(int(pid)) != pgid:
                continue
            with open(f"/proc/{pid}/smaps") as f:
                current = None
                for line in f:
                    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
                    if m:
                        current = None
                        if "s" in m.group(3) and m.group(4).startswith("/"):
                            current = [m.group(4), int(m.group(2), 16) - int(m.group(1), 16), 0]
                            found.append(current)
                    elif current and line.startswith("KernelPageSize:"):
                        current[2] = int(line.split()[1])
    return [tuple(m) for m in found]


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


@contextlib.contextmanager
def huge_pages(count):
    """A hugetlbfs mount of 2 MiB pages with at least `count` pages free: reserves more (and
    gives them back afterwards) and mounts one in a temporary directory if needed."""
    path = "/proc/sys/vm/nr_hugepages"
    with open(path) as f:
        old = int(f.read())
    short = count - meminfo("HugePages_Free")
    if short > 0:
        with open(path, "w") as f:
            f.write(str(old + short))
    mount = None
    try:
        if meminfo("HugePages_Free") < count:
            raise AssertionError(f"the kernel gave {meminfo('HugePages_Free')} free 2 MiB pages "
                                 f"of the {count} the guest needs (nr_hugepages was {old})")
        with open("/proc/mounts") as f:
            mounted = [line.split()[1] for line in f if line.split()[2] == "hugetlbfs" and
                       re.search(r"pagesize=2M|^((?!pagesize).)*$", line.split()[3])]
        if not mounted:
            mount = tempfile.mkdtemp(prefix="hugetlbfs-", dir="/tmp")
            subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", mount],
                           check=True)
        yield mounted[0] if mounted else mount
    finally:
        if mount:
            subprocess.run(["umount", mount], check=False)
            os.rmdir(mount)
        if short > 0:
            with open(path, "w") as f:
                f.write(str(old))


class MemoryLayoutTest(unittest.TestCase):

    def run_case(self, memory_args, script, hotplug=None):
        """Boots the guest with `memory_args` and `script` (its placeholders filled) against the
        daemon. `hotplug(qmp)` adds memory when the guest asks and returns (addr, size). Returns
        the boot's results, what the host saw while the guest ran ("maps": the daemon's
        mappings; with `hotplug`, "maps_before" too) and a context for failure messages."""
        seed = int.from_bytes(os.urandom(4), "little") | 1
        script = script.replace("{offset}", str(OFFSET)).replace("{seed}", str(seed))
        seen = {}
        with qemu_guest.work_dir("mem") as work:
            image = os.path.join(work, "disk.img")
            with open(image, "wb") as f:
                f.truncate(DISK_MB << 20)
            sock = os.path.join(work, "blk.sock")
            ours, theirs, monitor = qemu_guest.qmp_socketpair()
            qmp = []
            devices = ["-chardev", f"socket,id=blk0,path={sock}",
                       "-device", "vhost-user-blk-pci,chardev=blk0"] + monitor
            with open(TOOL, "rb") as f:
                tool = [("bin/blk_guest_tool", "file", (f.read(), 0o755))]
            with qemu_guest.Daemon([DAEMON, f"--socket-path={sock}", f"--blk-file={image}"],
                                   sock) as daemon:

                def on_line(line):
                    try:
                        if "E2E-MAPS" in line:
                            seen["maps"] = daemon_mappings(daemon.proc.pid)
                            return "go\n"
                        if "E2E-HOTPLUG?" in line:
                            if not qmp:
                                qmp.append(qemu_guest.Qmp(sock=ours))
                            seen["maps_before"] = daemon_mappings(daemon.proc.pid)
                            addr, size = hotplug(qmp[0])
                            # QEMU sent the region before device_add returned (REPLY_ACK).
                            seen["maps"] = daemon_mappings(daemon.proc.pid)
                            return f"{addr} {size}\n"
                    except Exception as e:  # reported below; the guest must still go on
                        seen["error"] = repr(e)
                        return "0 0\n"
                    return None

                try:
                    result = qemu_guest.run_guest(
                        script, devices, MODULES, memory_args=memory_args, work=work,
                        extra_entries=tool, on_line=on_line, console_input=True, timeout=60,
                        pass_fds=[theirs.fileno()])
                finally:
                    theirs.close()
                    ours.close()
                log = daemon.read_log()
                self.assertTrue(daemon.alive(), log[-3000:])
            with open(image, "rb") as f:
                f.seek(OFFSET)
                on_disk = f.read(BLOCKS * 4096)
        context = result.output[-4000:] + "\n--- daemon log:\n" + log[-3000:]
        self.assertNotIn("error", seen, context)
        self.assertFalse(result.timed_out, context)
        self.assertEqual(result.script_status, 0, context)
        self.assertEqual(result["placed"].split()[-3:], [f"ok={BLOCKS}", "bad=0", "moved=0"],
                         context)
        # What the guest wrote from those pages is in the host's file, byte for byte.
        self.assertTrue(on_disk == pattern(seed), "the image does not hold the guest's pattern")
        seen["tables"] = re.findall(r"guest memory: (\d+ regions, \d+ MiB)", log)
        return result, seen, context

    def io_case(self, memory_args, lo=0, hi=RAM_MB << 20, node=-1):
        script = (IO_SCRIPT.replace("{lo}", str(lo)).replace("{hi}", str(hi))
                  .replace("{node}", str(node)))
        return self.run_case(memory_args, script)

    def placed_range(self, result):
        first, last = (int(v, 16) for v in
                       re.search(r"first=(\S+) last=(\S+)", result["placed"]).groups())
        return first, last

    def file_case(self, directory):
        """The I/O case on a memory-backend-file in `directory`: (its path, what the host saw,
        the failure context)."""
        path = os.path.join(directory, f"vhost-user-memory-e2e-{os.getpid()}")
        try:
            _, seen, context = self.io_case([
                "-m", f"{RAM_MB}M", "-object",
                f"memory-backend-file,id=mem,size={RAM_MB}M,share=on,mem-path={path}",
                "-numa", "node,memdev=mem"])
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return path, seen, context

    def test_file_in_dev_shm(self):
        path, seen, context = self.file_case("/dev/shm")
        self.assertIn((path, RAM_MB << 20, 4), seen["maps"], context)

    def test_hugetlbfs_2m_pages(self):
        with huge_pages(RAM_MB // 2) as mount:
            path, seen, context = self.file_case(mount)
        # QEMU rounds each section of RAM out to whole huge pages and merges what then
        # overlaps (the firmware's ROM windows below 1 MiB): the table is one region, all of
        # the file from offset 0, which the daemon maps with 2 MiB pages.
        self.assertEqual([m for m in seen["maps"] if m[0] == path], [(path, RAM_MB << 20, 2048)],
                         context)

    def test_memory_backend_shm(self):
        _, seen, context = self.io_case([
            "-m", f"{RAM_MB}M", "-object", f"memory-backend-shm,id=mem,size={RAM_MB}M,share=on",
            "-numa", "node,memdev=mem"])
        # A POSIX shared memory object, which QEMU unlinks at once.
        self.assertTrue([m for m in seen["maps"] if m[1] == RAM_MB << 20 and
                         re.match(r"/dev/shm/qemu-\d+-shm-\d+ \(deleted\)$", m[0])], context)

    def test_two_numa_nodes_and_memory_above_4g(self):
        # 3 GiB on q35: 2 GiB below the PCI hole, 1 GiB from 4 GiB. Node 0 is the first GiB,
        # node 1 the second and the one above 4 GiB, at offset 1 GiB of node 1's memfd. The
        # kernel gives user pages from the highest zone first, so node 1's pages come from
        # above 4 GiB. The memfds are allocated only where touched.
        result, seen, context = self.io_case([
            "-m", "3G",
            "-object", "memory-backend-memfd,id=m0,size=1G,share=on",
            "-object", "memory-backend-memfd,id=m1,size=2G,share=on",
            "-numa", "node,nodeid=0,memdev=m0", "-numa", "node,nodeid=1,memdev=m1"],
            lo=4 * GIB, hi=5 * GIB, node=1)
        self.assertEqual(result["nodes"], "2", context)
        first, last = self.placed_range(result)
        self.assertTrue(4 * GIB <= first <= last < 5 * GIB, context)
        # Three regions, each mapped from offset 0 of its file: node 0's, node 1's below 4 GiB,
        # and node 1's above, which starts 1 GiB into the file (mmap_offset) so its mapping is
        # 2 GiB long.
        self.assertEqual(sorted(m[1] for m in seen["maps"] if "memory-backend-memfd" in m[0]),
                         [GIB, GIB, 2 * GIB], context)

    def test_hot_added_memory(self):
        def hotplug(qmp):
            qmp.command("object-add", **{"qom-type": "memory-backend-memfd", "id": "hot0",
                                         "size": HOT_MB << 20, "share": True})
            qmp.command("device_add", driver="pc-dimm", id="dimm0", memdev="hot0")
            [dimm] = [d["data"] for d in qmp.command("query-memory-devices")]
            return dimm["addr"], dimm["size"]

        result, seen, context = self.run_case([
            "-m", f"{RAM_MB}M,slots=2,maxmem=2G",
            "-object", f"memory-backend-memfd,id=mem,size={RAM_MB}M,share=on",
            "-numa", "node,memdev=mem",
            # QEMU's trace of the messages it sends: ADD_MEM_REG is request 37.
            "-trace", "vhost_user_write"], HOTPLUG_SCRIPT, hotplug=hotplug)
        self.assertEqual(int(result["added_kb"]), HOT_MB << 10, context)
        first, last = self.placed_range(result)
        self.assertGreaterEqual(first, 4 * GIB, context)
        # The daemon mapped the DIMM's memfd, a region of its own, when QEMU added it: with
        # CONFIGURE_MEM_SLOTS (which our daemon offers, with 509 slots), one ADD_MEM_REG each
        # for the boot memory and the DIMM and no SET_MEM_TABLE.
        memfds = lambda maps: sorted(m[1] for m in maps if "memory-backend-memfd" in m[0])
        self.assertEqual(memfds(seen["maps_before"]), [RAM_MB << 20], context)
        self.assertEqual(memfds(seen["maps"]), [HOT_MB << 20, RAM_MB << 20], context)
        before, _, after = result.output.partition("E2E-HOTPLUG?")
        requests = lambda text: re.findall(r"vhost_user_write req:(\d+)", text)
        self.assertEqual(requests(before).count("37"), 1, context)
        self.assertEqual(requests(after).count("37"), 1, context)
        self.assertNotIn("5", requests(result.output), context)
        # The daemon's log says so too: its last table holds both.
        self.assertEqual(seen["tables"][-1], f"2 regions, {RAM_MB + HOT_MB} MiB", context)


if __name__ == "__main__":
    TOOL = os.path.abspath(sys.argv.pop(2))
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
