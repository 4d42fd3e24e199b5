// The simulated platform behind vhost-user-scmi: sensors, clocks, power, reset and voltage
// domains and performance domains, described by a small text config (--platform=FILE, or
// kDefaultPlatform) and read or changed from outside through a control socket.
//
// Config: one entity per line, "KIND NAME key=value ...", '#' starts a comment. Names are unique
// across kinds, 1 to 63 characters of [A-Za-z0-9_.-] (names over 15 reach the guest as SCMI
// extended names). Kinds and keys:
//   sensor NAME unit=U [scale=E] [value=V[,V,V]] [axes=A,B,C] [min=V] [max=V] [step=S]
//          [interval_ms=N]
//       U: celsius, volts, amps, watts, joules, rpm, hertz, percent, rad/s, m/s2 or a number of
//       the spec's unit table; a reading is VALUE * 10^E units (E from -16 to 15, default 0).
//       With axes=, one value per axis. Every interval_ms (default 1000) the value moves by
//       `step` (default 0: fixed), turning back at min and max (default +-2^40).
//   clock NAME rates=HZ,HZ,... | range=MIN:MAX:STEP  [rate=HZ] [enabled=0|1]
//   power NAME [state=on|off]
//   reset NAME
//   voltage NAME levels=UV,UV,... | range=MIN:MAX:STEP  [level=UV] [on=0|1]
//   perf NAME opps=KHZ:MW[:LATENCY_US],...  [level=KHZ]
//       Performance levels are the OPPs' frequencies in kHz.
//
// Control socket commands (one line each; answers "ok ..." or "error: ..."):
//   list                       every entity, "KIND:NAME=STATE" separated by spaces
//   get NAME                   one entity, the same way
//   sensor NAME V[,V,V]        sets a sensor's reading (a notification to a guest that asked;
//                              so for power and perf below)
//   clock NAME HZ | clock NAME on|off
//   power NAME on|off
//   voltage NAME UV | voltage NAME on|off
//   perf NAME KHZ
//   system                     the guest's last system power request (shutdown, cold-reset,
//                              warm-reset) or "none"
//   request shutdown|reboot    asks the guest (SYSTEM_POWER_STATE_NOTIFIER) to shut down or
//                              reboot gracefully; an error if it did not ask for notifications
#ifndef VHOST_USER_SCMI_SCMI_PLATFORM_H_
#define VHOST_USER_SCMI_SCMI_PLATFORM_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/base/unique_fd.h"

namespace vhost::scmi {

inline constexpr absl::string_view kDefaultPlatform = R"(# vhost-user-scmi's default platform
sensor soc_temp unit=celsius scale=-3 value=45000 min=40000 max=60000 step=250
sensor board_temp unit=celsius scale=-3 value=32000
sensor vdd_cpu unit=volts scale=-3 value=900
sensor vdd_io unit=volts scale=-3 value=1800
sensor accel unit=m/s2 scale=-3 axes=accel_X,accel_Y,accel_Z value=0,0,9807 min=-20000 max=20000 interval_ms=100
clock cpu_clk rates=400000000,800000000,1200000000 rate=800000000 enabled=1
clock uart_clk range=1000000:100000000:1000000 rate=24000000 enabled=0
voltage vdd_sd range=1800000:3300000:100000 level=3300000 on=1
perf cpu_perf opps=400000:100:50,800000:250:50,1200000:500:100 level=800000
power gpu_pd state=off
reset eth_rst
)";

inline constexpr size_t kMaxNameLength = 63;
inline constexpr size_t kMaxAxes = 16;
inline constexpr size_t kMaxEntities = 256;  // per kind
inline constexpr size_t kMaxRates = 64;      // listed rates, levels or OPPs per entity

// A host sensor's channel (iio_sensors.h): an attribute file re-read at each reading, whose
// number N gives the value (N + offset) * scale * factor.
struct HostChannel {
  std::shared_ptr<UniqueFd> fd;
  double scale = 1, offset = 0, factor = 1;
};

struct TripPoint {
  uint8_t events = 0;  // bits[1:0] of trip_point_ev_ctrl: 1 rising, 2 falling, 3 both
  int64_t value = 0;
};

struct Sensor {
  std::string name;
  uint8_t unit = 0;
  int8_t scale = 0;
  std::vector<std::string> axes;  // empty: one value
  std::vector<int64_t> values;    // one per axis, or one
  int64_t min = -(int64_t{1} << 40);
  int64_t max = int64_t{1} << 40;
  int64_t step = 0;
  int64_t direction = 1;  // where the next step goes
  uint32_t interval_ms = 1000;
  std::vector<HostChannel> host;  // non-empty: read from the host, one channel per value
  absl::Time next_step = absl::InfinitePast();

  // What the guest set (back to these on a device reset).
  bool enabled = true;
  uint32_t config_interval_ms = 0;  // 0: interval_ms
  bool update_notify = false;
  bool trip_notify = false;
  std::array<TripPoint, 4> trips{};

  // Since the event queue last looked: the reading changed; trip points crossed (id, rising).
  bool changed = false;
  std::vector<std::pair<uint8_t, bool>> crossed;
};

// A rate set: a list, or a range [min, max] in steps.
struct RateSet {
  std::vector<uint64_t> list;  // empty: a range
  uint64_t min = 0, max = 0, step = 1;
  bool Contains(uint64_t value) const;
  // The nearest member at or below (round_up: at or above) `value`; false if there is none.
  bool Round(uint64_t value, bool round_up, uint64_t* out) const;
  uint64_t Lowest() const { return list.empty() ? min : list.front(); }
  uint64_t Highest() const { return list.empty() ? max : list.back(); }
};

struct Clock {
  std::string name;
  RateSet rates;
  uint64_t rate = 0;
  bool enabled = false;
};

struct PowerDomain {
  std::string name;
  bool on = false;
  bool notify = false;   // the guest asked for POWER_STATE_CHANGED
  bool changed = false;  // the host changed the state since the event queue looked
};

struct ResetDomain {
  std::string name;
  bool asserted = false;
  uint32_t resets = 0;  // autonomous resets done
};

struct VoltageDomain {
  std::string name;
  RateSet levels;  // microvolts (non-negative)
  int32_t level = 0;
  bool on = false;
};

struct Opp {
  uint32_t khz = 0;  // also the performance level
  uint32_t power_mw = 0;
  uint16_t latency_us = 0;
};

struct PerfDomain {
  std::string name;
  std::vector<Opp> opps;  // ascending
  uint32_t level = 0;
  uint32_t limit_min = 0, limit_max = 0;
  bool notify_level = false;  // the guest asked for PERFORMANCE_LEVEL_CHANGED
  bool changed = false;       // the host changed the level since the event queue looked
};

class ScmiPlatform {
 public:
  // Parses a config (see above); errors name the line.
  static absl::StatusOr<std::unique_ptr<ScmiPlatform>> Parse(absl::string_view text);

  // Everything below is guarded by mu.
  std::mutex mu;
  std::vector<Sensor> sensors;
  std::vector<Clock> clocks;
  std::vector<PowerDomain> power_domains;
  std::vector<ResetDomain> reset_domains;
  std::vector<VoltageDomain> voltage_domains;
  std::vector<PerfDomain> perf_domains;
  // System power: the guest's last request; whether it asked for notifications; requests from
  // the host ("shutdown" or "reboot") the event queue has not sent.
  std::string system_request = "none";
  bool system_notify = false;
  std::vector<std::string> host_requests;

  // Adds host sensors after the configured ones; an error if a name is taken.
  absl::Status AddSensors(std::vector<Sensor> more);
  // Re-reads the host sensors (a changed value counts as a change). Under mu.
  void RefreshHostLocked();

  // Moves stepping sensors by the intervals passed until `now`; returns when the next is due
  // (InfiniteFuture if none steps). Under mu.
  absl::Time AdvanceLocked(absl::Time now);
  // Sets a sensor's values, noting the change and any trip point crossed. Under mu.
  void SetValuesLocked(Sensor& sensor, const std::vector<int64_t>& values);
  // Forgets what the guest set (notifications, trip points, configs). Under mu.
  void ResetGuestStateLocked();

  // Called (without mu) when the host changed something a guest may be told of.
  void set_on_change(std::function<void()> hook);
  // Called (without mu) with a system power request of the guest ("shutdown", ...).
  void set_on_system_request(std::function<void(const std::string&)> hook);
  // A guest's system power request: logged, kept for "system", passed to the hook.
  void SystemRequest(const std::string& what);

  // A control socket command; returns the text after "ok".
  absl::StatusOr<std::string> Execute(absl::string_view command);

 private:
  ScmiPlatform() = default;
  std::string DescribeLocked(absl::string_view name);
  void NotifyChange();

  std::function<void()> on_change_;
  std::function<void(const std::string&)> on_system_request_;
};

}  // namespace vhost::scmi

#endif  // VHOST_USER_SCMI_SCMI_PLATFORM_H_
