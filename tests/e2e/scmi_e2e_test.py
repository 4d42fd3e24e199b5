"""An aarch64 Linux guest's own SCMI stack against vhost-user-scmi's simulated platform.

The guest is Debian's arm64 6.12 kernel with the SCMI virtio transport, scmi-hwmon, scmi_iio,
scmi-regulator and scmi-cpufreq cross-built (aarch64_guest.py), the arm,scmi-virtio node in its
device tree, and consumers for two clocks and a regulator. The guest checks, and the host checks
through the daemon's control socket:
- the SCMI core negotiates the Base, power, performance, clock, sensor, reset and voltage
  protocols (its debug log) with the versions the daemon implements;
- hwmon shows the platform's temperature and voltage sensors with the host's values, and a value
  the host changes is read anew;
- IIO shows the 3-axis accelerometer, and a reading the host sets arrives in the IIO buffer
  through a sensor update notification;
- a clock's rate and enable, a regulator's voltage and performance levels set from the guest
  reach the simulated platform.
All of it in a first boot, again after a reboot (the device reset under the same connection) and
in a restarted QEMU (a new front end of the same daemon process). The guest waits for the host
at each step through the device itself: the host acknowledges by setting a sensor the guest
polls (e2e_ack).

Usage: scmi_e2e_test.py PATH_TO_vhost-user-scmi (Bazel passes it).
"""
import os
import re
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aarch64_guest  # noqa: E402
import qemu_guest  # noqa: E402

DAEMON = None

# The platform: the default's entities, plus e2e_ack, a voltage sensor the host sets to N to tell
# the guest it has looked at what the guest did before its N-th "E2E-READY" line.
PLATFORM = """
sensor soc_temp unit=celsius scale=-3 value=45000 min=40000 max=60000 step=250
sensor board_temp unit=celsius scale=-3 value=32000
sensor vdd_cpu unit=volts scale=-3 value=900
sensor e2e_ack unit=volts scale=-3 value=0
sensor accel unit=m/s2 scale=-3 axes=accel_X,accel_Y,accel_Z value=0,0,9807
clock cpu_clk rates=400000000,800000000,1200000000 rate=800000000 enabled=1
clock uart_clk range=1000000:100000000:1000000 rate=24000000 enabled=0
voltage vdd_sd range=1800000:3300000:100000 level=3300000 on=1
perf cpu_perf opps=400000:100:50,800000:250:50,1200000:500:100 level=800000
power gpu_pd state=off
reset eth_rst
"""

# Clock 0 is cpu_clk, clock 1 uart_clk (off at start); voltage domain 0 is vdd_sd; perf domain 0
# is cpu_perf. The clock rate and the voltage set here are the ones the platform does not have
# yet, so every session changes them.
GUEST_SCRIPT = r"""
echo "E2E-RESULT protocols=$(dmesg | sed -n 's/.*Initialized protocol: 0x\([0-9A-F]*\).*/\1/p' | sort -u | tr '\n' ' ')"
echo "E2E-RESULT versions=$(dmesg | sed -n 's/.*arm-scmi.* \([A-Za-z]* Version [0-9.]*\)$/\1/p' | sort | tr '\n' ',')"
echo "E2E-RESULT base=$(dmesg | sed -n "s/.*SCMI Protocol \(v[0-9.]* '[^']*'\).*/\1/p")"

for h in /sys/class/hwmon/hwmon*; do [ "$(cat $h/name)" = scmi_sensors ] && hw=$h; done
[ -n "$hw" ] || { echo "E2E-RESULT hwmon=none: $(ls /sys/class/hwmon)"; exit 1; }
for l in $hw/*_label; do echo "E2E-RESULT hwmon_$(cat $l)=$(cat ${l%_label}_input)"; done
input() { l=$(grep -l "^$1\$" $hw/*_label); echo ${l%_label}_input; }
ack=$(input e2e_ack)
acks=0
# Tells the host it may look, and waits (polling, bounded) until it has.
ready() {
  acks=$((acks + 1))
  echo "E2E-READY $1"
  for i in $(seq 600); do [ "$(cat $ack)" = $acks ] && return 0; sleep 0.05; done
  echo "E2E-RESULT no_ack=$1"; exit 1
}

ready sensor  # the host changes board_temp
echo "E2E-RESULT board_temp_after=$(cat $(input board_temp))"

iio=$(grep -l '^accel$' /sys/bus/iio/devices/iio:device*/name); iio=${iio%/name}
echo "E2E-RESULT iio_raw=$(cat $iio/in_accel_x_raw) $(cat $iio/in_accel_y_raw) $(cat $iio/in_accel_z_raw)"
for e in $iio/scan_elements/*_en; do echo 1 > $e; done
echo 1 > $iio/buffer/enable
ready iio  # the host sets a new reading
# x, y, z (s64 each) and the timestamp: the host's new reading, sent as a notification.
echo "E2E-RESULT iio_sample=$(timeout 30 dd if=/dev/${iio##*/} bs=32 count=1 2>/dev/null | od -An -td8 -w32 | awk '{print $1, $2, $3}')"
echo 0 > $iio/buffer/enable

c=/sys/devices/platform/scmi-clock-consumer-0
rate=1200000000; [ "$(cat $c/rate)" = $rate ] && rate=400000000
echo "E2E-RESULT clock_target=$rate"
echo $rate > $c/rate
echo "E2E-RESULT clock_rate=$(cat $c/rate)"
echo 1 > /sys/devices/platform/scmi-clock-consumer-1/enabled
ready clock-on
echo 0 > /sys/devices/platform/scmi-clock-consumer-1/enabled
ready clock-off

for r in /sys/class/regulator/regulator.*; do [ "$(cat $r/name)" = scmi-reg0 ] && reg=$r; done
uv=1800000; [ "$(cat $reg/microvolts)" = $uv ] && uv=2500000
echo "E2E-RESULT voltage_target=$uv"
echo $uv > /sys/devices/platform/scmi-regulator-consumer-0/min_microvolts
echo $uv > /sys/devices/platform/scmi-regulator-consumer-0/max_microvolts
echo "E2E-RESULT voltage=$(cat $reg/microvolts)"
ready voltage

p=/sys/devices/system/cpu/cpufreq/policy0
echo "E2E-RESULT perf_levels=$(cat $p/scaling_available_frequencies)"
echo userspace > $p/scaling_governor
echo 1200000 > $p/scaling_setspeed
echo "E2E-RESULT perf_high=$(cat $p/cpuinfo_cur_freq)"
ready perf-high
echo 400000 > $p/scaling_setspeed
echo "E2E-RESULT perf_low=$(cat $p/cpuinfo_cur_freq)"
ready perf-low
"""


def control(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data.decode().strip()
            data += chunk


class ScmiGuestTest(unittest.TestCase):

    def test_guest_scmi_stack_against_the_platform_across_a_reboot_and_restart(self):
        seen = []  # per session: what the host saw and did
        with qemu_guest.work_dir("scmi") as work:
            sock = os.path.join(work, "scmi.sock")
            ctl = os.path.join(work, "scmi.ctl")
            argv = [DAEMON, f"--socket-path={sock}", f"--control-socket={ctl}"]

            platform = os.path.join(work, "platform.conf")
            with open(platform, "w") as f:
                f.write(PLATFORM)
            argv.append(f"--platform={platform}")
            # What the host does at each of the guest's E2E-READY lines (then it acks).
            checks = {
                "sensor": lambda host: host.update(
                    board_before=control(ctl, "get board_temp"),
                    board=control(ctl, f"sensor board_temp {41500 + 1000 * len(seen)}")),
                "iio": lambda host: host.update(
                    accel=control(ctl, f"sensor accel {len(seen)},-2000,9807")),
                "clock-on": lambda host: host.update(cpu_clk=control(ctl, "get cpu_clk"),
                                                     uart_clk_on=control(ctl, "get uart_clk")),
                "clock-off": lambda host: host.update(uart_clk_off=control(ctl, "get uart_clk")),
                "voltage": lambda host: host.update(vdd_sd=control(ctl, "get vdd_sd")),
                "perf-high": lambda host: host.update(perf_high=control(ctl, "get cpu_perf")),
                "perf-low": lambda host: host.update(perf_low=control(ctl, "get cpu_perf")),
            }

            def on_line(line):
                if "E2E-BEGIN" in line:
                    seen.append({"acks": 0})
                elif "E2E-READY " in line:
                    host = seen[-1]
                    checks[line.split("E2E-READY ")[1].strip()](host)
                    host["acks"] += 1
                    control(ctl, f"sensor e2e_ack {host['acks']}")

            run = dict(script=GUEST_SCRIPT, modules=[], work=work, timeout=240, on_line=on_line,
                       devices=aarch64_guest.scmi_device_args(sock),
                       append=aarch64_guest.SCMI_DEBUG,
                       dt_source=aarch64_guest.scmi_dt_source(
                           regulators={0: (1800000, 3300000)}, clocks=(0, 1), cpu_perf_domain=0))
            guest = aarch64_guest.run_aarch64_guest
            with qemu_guest.Daemon(argv, sock) as daemon:
                results = [guest(boots=2, **run),
                           qemu_guest.run_guest_again(daemon, runner=guest, **run)]
                self.assertTrue(daemon.alive(), daemon.read_log())
        boots = []
        for result in results:
            self.assertFalse(result.timed_out, result.output[-3000:])
            boots += result.boots
        self.assertEqual(len(boots), 3, results[-1].output[-3000:])
        self.assertEqual(len(seen), 3, seen)
        self.assertEqual([host["acks"] for host in seen], [7, 7, 7], seen)
        for session, (boot, host) in enumerate(zip(boots, seen), 1):
            r = boot.results
            out = boot.output[-4000:]
            self.assertNotIn("insmod_failed", r, out)
            self.assertEqual(boot.script_status, 0, out)
            # The protocols the device tree names and the platform lists (0x12 has no driver
            # in this guest, so the core never initializes it).
            self.assertEqual(r["protocols"].split(),
                             ["10", "11", "13", "14", "15", "16", "17"], out)
            self.assertEqual(r["base"], "v2.0 'vhost-user:simulated'", out)
            for version in ("Power Version 3.0", "Performance Version 4.0", "Clock Version 2.0",
                            "Sensor Version 3.0", "Reset Version 3.0", "Voltage Version 2.0"):
                self.assertIn(version, r["versions"], out)
            # hwmon: millivolts and millidegrees, as the platform gives them.
            self.assertEqual(r["hwmon_vdd_cpu"], "900", out)
            self.assertTrue(40000 <= int(r["hwmon_soc_temp"]) <= 60000, out)
            self.assertEqual(r["hwmon_board_temp"],
                             re.sub(r".*=", "", host["board_before"]), (host, out))
            self.assertEqual(host["board"], f"ok sensor:board_temp={41500 + 1000 * session}", host)
            self.assertEqual(r["board_temp_after"], str(41500 + 1000 * session), out)
            # IIO: the raw reading, then the host's new one through a notification.
            self.assertEqual(r["iio_raw"], "0 0 9807" if session == 1 else
                             f"{session - 1} -2000 9807", out)  # the host's last reading
            self.assertTrue(host["accel"].startswith("ok sensor:accel="), host)
            self.assertEqual(r["iio_sample"], host["accel"].split("=")[1].replace(",", " "), out)
            # Clock, voltage and perf set from the guest reach the platform.
            self.assertEqual(r["clock_rate"], r["clock_target"], out)
            self.assertEqual(host["cpu_clk"], f"ok clock:cpu_clk={r['clock_target']},on", host)
            self.assertEqual(host["uart_clk_on"], "ok clock:uart_clk=24000000,on", host)
            self.assertEqual(host["uart_clk_off"], "ok clock:uart_clk=24000000,off", host)
            self.assertEqual(r["voltage"], r["voltage_target"], out)
            self.assertEqual(host["vdd_sd"], f"ok voltage:vdd_sd={r['voltage_target']},on", host)
            self.assertEqual(r["perf_levels"], "400000 800000 1200000", out)
            self.assertEqual(r["perf_high"], "1200000", out)
            self.assertTrue(host["perf_high"].startswith("ok perf:cpu_perf=1200000,"), host)
            self.assertEqual(r["perf_low"], "400000", out)
            self.assertTrue(host["perf_low"].startswith("ok perf:cpu_perf=400000,"), host)
        # Each session set what the previous one had not: the platform kept the guest's values
        # across the reset and the restart.
        self.assertNotEqual(boots[0].results["clock_target"], boots[1].results["clock_target"])
        self.assertNotEqual(boots[1].results["voltage_target"],
                            boots[2].results["voltage_target"])


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
