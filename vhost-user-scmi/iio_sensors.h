// Host sensors from Linux IIO (sysfs, /sys/bus/iio/devices/iio:deviceN), served to the guest
// as SCMI sensors beside the simulated ones. Each device's channels of the types SCMI's guest
// drivers take become sensors: temp (degrees C), voltage (V), current (A) one per channel, accel
// (m/s^2) and anglvel (rad/s) one per device with the X/Y/Z axes. A channel's value is read anew
// at each reading: (in_<chan>_raw + offset) * scale, or in_<chan>_input, in IIO's units (milli-
// for temp, voltage and current, reported with scale 10^-3; accel and anglvel with 10^-6).
//
// The attribute files are opened at start-up and re-read from offset 0 (read and lseek, which
// the sandbox allows): nothing is opened after the seccomp filter.
#ifndef VHOST_USER_SCMI_IIO_SENSORS_H_
#define VHOST_USER_SCMI_IIO_SENSORS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vhost-user-scmi/scmi_platform.h"

namespace vhost::scmi {

// The sensors of every IIO device under `root` (e.g. /sys/bus/iio/devices), named
// "<device name>_<channel>" (e.g. "lsm6dsm_accel", "bme280_temp"). An error if `root` cannot
// be read.
absl::StatusOr<std::vector<Sensor>> ScanIioSensors(const std::string& root);

// The same for hwmon devices under `root` (e.g. /sys/class/hwmon): each hwmonN's tempN (m°C),
// inN (mV), currN (mA) with scale 10^-3, and powerN (µW), energyN (µJ) with 10^-6, from their
// *_input files, named "<device name>_<label or channel>" (e.g. "k10temp_Tctl").
absl::StatusOr<std::vector<Sensor>> ScanHwmonSensors(const std::string& root);

}  // namespace vhost::scmi

#endif  // VHOST_USER_SCMI_IIO_SENSORS_H_
