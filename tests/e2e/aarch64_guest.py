"""Boots a small aarch64 Linux guest under QEMU (TCG) against vhost-user daemons, for the SCMI
end-to-end tests: virtio-scmi front ends exist only in qemu-system-aarch64, and Linux's SCMI
drivers only on Arm.

The guest is Debian's arm64 build of the same 6.12 kernel the x86 guests run, never installed:
scripts/setup.sh downloads its .debs (image, headers, busybox-static) into ARM64_DEBS and this
module unpacks them once (dpkg-deb -x, depmod -b) into the e2e cache. Debian's arm64 kernel lacks
the SCMI virtio transport and the drivers on top of it, so they are cross-built out of tree from
linux-source-6.12 (gcc-12-aarch64-linux-gnu; the arm64 headers package sets CROSS_COMPILE) and
cached per kernel version. The transport binds only to a device-tree node, which QEMU's virt
machine never makes: the machine's own tree is dumped (-machine dumpdtb), the node added with dtc
and the guest booted with -dtb.

Everything else (busybox initramfs, module closure, shared memory, the E2E-RESULT protocol,
Daemon) is qemu_guest's.
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile

import qemu_guest
from qemu_guest import GuestError

QEMU = "qemu-system-aarch64"
ARM64_DEBS = os.environ.get("VHOST_USER_ARM64_DEBS", "/var/cache/vhost-user-arm64")
SETUP_HINT = ("run scripts/setup.sh (installs qemu-system-arm, gcc-12-aarch64-linux-gnu, "
              "device-tree-compiler and downloads the arm64 kernel)")
MACHINE = ["-machine", "virt", "-cpu", "max,pauth-impdef=on", "-accel", "tcg", "-smp", "1"]

# Out-of-tree modules: name -> source under drivers/ of linux-source-6.12, loaded in this order
# (after SCMI_MODULES from the kernel's own modules). The transport includes ../common.h, so the
# arm_scmi headers travel with it.
SCMI_SOURCES = {
    "scmi_transport_virtio": "firmware/arm_scmi/transports/virtio.c",
    "scmi-hwmon": "hwmon/scmi-hwmon.c",
    "scmi_iio": "iio/common/scmi_sensors/scmi_iio.c",
    "scmi-regulator": "regulator/scmi-regulator.c",
    "scmi-cpufreq": "cpufreq/scmi-cpufreq.c",
    # A consumer whose sysfs files set a regulator's voltage (min/max_microvolts).
    "reg-virt-consumer": "regulator/virtual.c",
}
# Our own modules, from this folder: a clock consumer whose sysfs files set a clock's rate.
LOCAL_SOURCES = {"scmi-clock-consumer": "scmi_clock_consumer.c"}
SCMI_HEADERS = ["firmware/arm_scmi/common.h", "firmware/arm_scmi/protocols.h",
                "firmware/arm_scmi/notify.h"]
# Kconfig defaults of the transport's options (VERSION1_COMPLIANCE defaults to y).
SCMI_CFLAGS = "-DCONFIG_ARM_SCMI_TRANSPORT_VIRTIO_VERSION1_COMPLIANCE=1"
# Modules of Debian's arm64 kernel that scmi_iio needs, and cpufreq's userspace governor (to set
# a performance level from the guest).
SCMI_MODULES = ["industrialio", "kfifo_buf", "cpufreq_userspace"]

# Kernel arguments that make the SCMI core log what it negotiates ("Initialized protocol: 0x15"
# for each protocol the platform lists and the device tree names) in dmesg.
SCMI_DEBUG = 'dyndbg="file drivers/firmware/arm_scmi/* +p"'

# Protocol subnodes (Documentation/devicetree/bindings/firmware/arm,scmi.yaml); Base (0x10) is
# implicit. Perf (0x13) as a power-domain provider (scmi_perf_domain, built in), or with
# scmi_dt_source(cpu_perf_domain=ID) as the CPU's clock for scmi-cpufreq.
PROTOCOL_PROPERTIES = {
    0x11: "#power-domain-cells = <1>;",
    0x12: "",
    0x13: "#power-domain-cells = <1>;",
    0x14: "#clock-cells = <1>;",
    0x15: "#thermal-sensor-cells = <1>;",
    0x16: "#reset-cells = <1>;",
    0x17: "",
}


@contextlib.contextmanager
def _cache_lock():
    """One preparation at a time (tests may run in parallel)."""
    os.makedirs(qemu_guest.CACHE_DIR, exist_ok=True)
    with open(os.path.join(qemu_guest.CACHE_DIR, "arm64.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _versions():
    """(arm64 kernel release, Debian package version): the x86 guest kernel's, so that
    linux-source-6.12 (checked to be that version) is this kernel's source too."""
    _, x86_release = qemu_guest.find_kernel()
    if not x86_release.endswith("-amd64"):
        raise GuestError(f"guest kernel {x86_release} is not Debian's amd64 flavour")
    package_version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", f"linux-image-{x86_release}"],
        capture_output=True, text=True).stdout
    if not package_version:
        raise GuestError(f"linux-image-{x86_release} is not a package: {SETUP_HINT}")
    return x86_release[:-len("-amd64")] + "-arm64", package_version


def _debs(release, package_version):
    debs = [f"linux-image-{release}-unsigned_{package_version}_arm64.deb",
            f"linux-headers-{release}_{package_version}_arm64.deb"]
    paths = [os.path.join(ARM64_DEBS, d) for d in debs]
    busybox = sorted(p for p in os.listdir(ARM64_DEBS) if p.startswith("busybox-static_")) \
        if os.path.isdir(ARM64_DEBS) else []
    missing = [p for p in paths if not os.path.exists(p)] + ([] if busybox else ["busybox-static"])
    if missing:
        raise GuestError(f"missing in {ARM64_DEBS}: {', '.join(missing)}: {SETUP_HINT}")
    return paths + [os.path.join(ARM64_DEBS, busybox[-1])]


def kernel_root():
    """(root, release): the arm64 kernel's packages unpacked under ROOT (boot/vmlinuz-RELEASE,
    lib/modules/RELEASE with modules.dep, usr/src/linux-headers-RELEASE, bin/busybox), once."""
    release, package_version = _versions()
    root = os.path.join(qemu_guest.CACHE_DIR, f"arm64-{release}-{package_version}")
    if os.path.exists(os.path.join(root, ".complete")):
        return root, release
    with _cache_lock():
        if os.path.exists(os.path.join(root, ".complete")):
            return root, release
        shutil.rmtree(root, ignore_errors=True)
        for deb in _debs(release, package_version):
            subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        # The image package has no modules.dep.
        subprocess.run(["depmod", "-b", root, release], check=True)
        # The headers' scripts/ is a relative link to linux-kbuild, whose programs run on the
        # build machine: point it at the host's (installed with the amd64 headers).
        kbuild = "linux-kbuild-" + release[:-len("-arm64")]
        if not os.path.isdir(f"/usr/lib/{kbuild}"):
            raise GuestError(f"/usr/lib/{kbuild} missing: {SETUP_HINT}")
        os.makedirs(os.path.join(root, "usr/lib"), exist_ok=True)
        os.symlink(f"/usr/lib/{kbuild}", os.path.join(root, "usr/lib", kbuild))
        open(os.path.join(root, ".complete"), "w").close()
    return root, release


def scmi_modules():
    """Paths of the cross-built SCMI_SOURCES and LOCAL_SOURCES modules, in load order, built
    once per kernel and version of the sources."""
    root, release = kernel_root()
    here = os.path.dirname(os.path.abspath(__file__))
    local = {name: os.path.join(here, source) for name, source in LOCAL_SOURCES.items()}
    key = hashlib.sha256(repr((SCMI_SOURCES, SCMI_CFLAGS)).encode())
    for path in local.values():
        with open(path, "rb") as f:
            key.update(f.read())
    out = os.path.join(qemu_guest.CACHE_DIR,
                       f"scmi-modules-{os.path.basename(root)[6:]}-{key.hexdigest()[:12]}")
    paths = [os.path.join(out, f"{name}.ko") for name in list(SCMI_SOURCES) + list(local)]
    if all(os.path.exists(p) for p in paths):
        return paths
    if shutil.which("aarch64-linux-gnu-gcc-12") is None:
        raise GuestError(f"aarch64-linux-gnu-gcc-12 missing: {SETUP_HINT}")
    source_version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "linux-source-6.12"],
                                    capture_output=True, text=True).stdout
    _, package_version = _versions()
    if source_version != package_version or not os.path.exists(
            qemu_guest.KERNEL_SOURCE_TARBALL):
        raise GuestError(f"{qemu_guest.KERNEL_SOURCE_TARBALL} must be linux-source-6.12 "
                         f"{package_version}, the kernel's version: {SETUP_HINT}")
    with _cache_lock():
        if all(os.path.exists(p) for p in paths):
            return paths
        with tempfile.TemporaryDirectory(prefix="kmod-arm64-") as build:
            members = [f"linux-source-6.12/drivers/{s}"
                       for s in list(SCMI_SOURCES.values()) + SCMI_HEADERS]
            subprocess.run(["tar", "-xJf", qemu_guest.KERNEL_SOURCE_TARBALL, "-C", build,
                            "--strip-components=2"] + members, check=True)
            sources = dict(SCMI_SOURCES)
            for name, path in local.items():
                shutil.copy(path, os.path.join(build, "local-" + os.path.basename(path)))
                sources[name] = "local-" + os.path.basename(path)
            with open(os.path.join(build, "Kbuild"), "w") as f:
                f.write(f"ccflags-y += {SCMI_CFLAGS}\n")
                for name, source in sources.items():
                    f.write(f"obj-m += {name}.o\n{name}-y := {source[:-2]}.o\n")
            made = subprocess.run(["make", "-C", f"{root}/usr/src/linux-headers-{release}",
                                   f"M={build}", "modules"], capture_output=True, text=True)
            if made.returncode != 0:
                raise GuestError(f"building the SCMI modules failed:\n{made.stdout}\n{made.stderr}")
            os.makedirs(out, exist_ok=True)
            for name in sources:
                tmp = os.path.join(out, f"{name}.ko.{os.getpid()}.tmp")
                shutil.copy(os.path.join(build, f"{name}.ko"), tmp)
                os.replace(tmp, os.path.join(out, f"{name}.ko"))
    return paths


def scmi_dt_source(protocols=tuple(PROTOCOL_PROPERTIES), regulators=(), clocks=(),
                   cpu_perf_domain=None):
    """Device-tree source adding /firmware/scmi (compatible "arm,scmi-virtio") with a subnode
    per protocol in `protocols`. Consumers, for a guest script to drive through sysfs
    (/sys/devices/platform/NODE/...):
    `regulators` (voltage domain ids; needs 0x17), or {id: (min_uV, max_uV) or None}:
    regulators/regulator@ID named scmi-regID, each with a virtual consumer
    scmi-regulator-consumer-ID (min_microvolts, max_microvolts: set both to set the voltage).
    Linux lets a consumer change a voltage only within the regulator's constraints
    (regulator-min/max-microvolt), so give ranges for regulators the guest sets;
    `clocks` (clock ids; needs 0x14): a scmi-clock-consumer-ID each (scmi_clock_consumer.c:
    rate, enabled);
    `cpu_perf_domain` (a performance domain id; needs 0x13): the CPU's clock, so scmi-cpufreq
    drives it (/sys/devices/system/cpu/cpufreq/policy0: scaling_available_frequencies, and
    with the userspace governor scaling_setspeed)."""
    nodes = []
    for protocol in protocols:
        body = PROTOCOL_PROPERTIES[protocol]
        if protocol == 0x17 and regulators:
            ranges = regulators if isinstance(regulators, dict) else {}
            body += " regulators { #address-cells = <1>; #size-cells = <0>;" + "".join(
                f" scmi_reg{r}: regulator@{r:x} {{ reg = <{r}>; "
                f"regulator-name = \"scmi-reg{r}\";" + (
                    f" regulator-min-microvolt = <{ranges[r][0]}>;"
                    f" regulator-max-microvolt = <{ranges[r][1]}>;" if ranges.get(r) else "") +
                " };" for r in regulators) + " };"
        if protocol == 0x13 and cpu_perf_domain is not None:
            body = "#clock-cells = <1>;"  # the binding allows one of the two
        label = {0x13: "scmi_dvfs: ", 0x14: "scmi_clk: "}.get(protocol, "")
        nodes.append(f"\t\t\t{label}protocol@{protocol:x} {{ reg = <0x{protocol:x}>; {body} }};\n")
    consumers = "".join(
        f"\tscmi-regulator-consumer-{r} {{ compatible = \"regulator-virtual-consumer\"; "
        f"default-supply = <&scmi_reg{r}>; }};\n" for r in regulators)
    consumers += "".join(
        f"\tscmi-clock-consumer-{c} {{ compatible = \"vhost-user-test,clock-consumer\"; "
        f"clocks = <&scmi_clk {c}>; }};\n" for c in clocks)
    cpu = ("" if cpu_perf_domain is None else
           f"&{{/cpus/cpu@0}} {{ clocks = <&scmi_dvfs {cpu_perf_domain}>; }};\n")
    return ("/ {\n\tfirmware {\n\t\tscmi {\n\t\t\tcompatible = \"arm,scmi-virtio\";\n"
            "\t\t\t#address-cells = <1>;\n\t\t\t#size-cells = <0>;\n" + "".join(nodes) +
            "\t\t};\n\t};\n" + consumers + "};\n" + cpu)


def machine_dtb(path, machine_args, extra_source):
    """Writes to `path` QEMU's own device tree for `machine_args` with `extra_source` (device-tree
    source: root nodes to add or merge) compiled in."""
    if shutil.which("dtc") is None:
        raise GuestError(f"dtc missing: {SETUP_HINT}")
    base = path + ".base"
    argv = list(machine_args)
    i = argv.index("-machine") + 1
    argv[i] += f",dumpdtb={base}"
    dumped = subprocess.run([QEMU] + argv + ["-nodefaults", "-display", "none"],
                            capture_output=True, text=True)
    if dumped.returncode != 0 or not os.path.exists(base):
        raise GuestError(f"{QEMU} -machine dumpdtb failed: {dumped.stdout}{dumped.stderr}")
    source = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", base], check=True,
                            capture_output=True, text=True).stdout
    compiled = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", path, "-"],
                              input=source + extra_source, capture_output=True, text=True)
    if compiled.returncode != 0:
        raise GuestError(f"dtc: {compiled.stderr}\n{extra_source}")
    os.unlink(base)
    return path


def scmi_device_args(socket_path, chardev_id="scmi0"):
    """QEMU arguments for a vhost-user-scmi-pci front end on the daemon's socket (it has no
    MSI-X: both queues share one interrupt line)."""
    return ["-chardev", f"socket,id={chardev_id},path={socket_path}",
            "-device", f"vhost-user-scmi-pci,chardev={chardev_id}"]


def run_aarch64_guest(script, devices, modules=(), memory="memfd", extra_entries=(),
                      timeout=180, memory_mb=512, work=None, on_line=None, built_modules=None,
                      boots=1, pass_fds=(), dt_source=None, append=""):
    """run_guest for the aarch64 guest: boots it with `devices` (e.g. a vhost-user-scmi-pci),
    loads SCMI_MODULES + `modules` (names in the arm64 kernel) then `built_modules` (default:
    the SCMI modules, scmi_modules()), runs `script`; same result (GuestResult) and arguments.
    dt_source: device-tree source merged into the machine's tree (default scmi_dt_source()).
    append: more kernel arguments (e.g. SCMI_DEBUG)."""
    if shutil.which(QEMU) is None:
        raise GuestError(f"{QEMU} not found: {SETUP_HINT}")
    root, release = kernel_root()
    if built_modules is None:
        built_modules = scmi_modules()
    base = qemu_guest.base_initramfs(SCMI_MODULES + list(modules), built_modules, version=release,
                                     root=root, busybox=os.path.join(root, "bin/busybox"))
    with contextlib.ExitStack() as stack:
        if work is None:
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="guest-arm64-"))
        initrd = qemu_guest.guest_initrd(base, script, extra_entries, boots, work)
        memory_args, mem_path = qemu_guest.guest_memory(memory, memory_mb)
        machine = MACHINE + ["-m", f"{memory_mb}M"] + memory_args
        dtb = machine_dtb(os.path.join(work, "virt.dtb"), machine,
                          scmi_dt_source() if dt_source is None else dt_source)
        argv = [QEMU] + machine + [
            "-nodefaults", "-display", "none", "-serial", "stdio",
            "-kernel", os.path.join(root, f"boot/vmlinuz-{release}"), "-initrd", initrd,
            "-dtb", dtb, "-append", f"console=ttyAMA0 panic=-1 quiet loglevel=4 {append}"
        ] + list(devices)
        return qemu_guest.run_qemu(argv, boots, timeout, on_line, pass_fds, mem_path)
