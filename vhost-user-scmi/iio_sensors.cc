#include "vhost-user-scmi/iio_sensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "vhost-user-scmi/scmi_spec.h"

namespace vhost::scmi {
namespace {

namespace fs = std::filesystem;

struct ChannelType {
  const char* prefix;  // in_<prefix>[N]_...
  uint8_t unit;
  int8_t scale;   // SCMI exponent of the reported value
  double factor;  // IIO's processed unit to 10^scale units
  bool axes;      // one sensor with _x, _y, _z
};

constexpr ChannelType kTypes[] = {
    {"temp", kUnitCelsius, -3, 1, false},
    {"voltage", kUnitVolts, -3, 1, false},
    {"current", kUnitAmps, -3, 1, false},
    {"accel", kUnitMetersPerSecondSquared, -6, 1e6, true},
    {"anglvel", kUnitRadiansPerSecond, -6, 1e6, true},
};

std::string ReadSmall(const fs::path& path) {
  std::ifstream f(path);
  std::string text;
  std::getline(f, text);
  return std::string(absl::StripAsciiWhitespace(text));
}

double ReadNumber(const fs::path& path, double fallback) {
  double v;
  if (fs::exists(path) && absl::SimpleAtod(ReadSmall(path), &v)) return v;
  return fallback;
}

// A channel "in_<stem>_raw" or "in_<stem>_input", with its scale and offset (the channel's own,
// else the type's shared one).
absl::StatusOr<HostChannel> OpenChannel(const fs::path& dir, const std::string& stem,
                                        const std::string& type, double factor) {
  HostChannel channel;
  fs::path value = dir / ("in_" + stem + "_input");
  const bool processed = fs::exists(value);
  if (!processed) value = dir / ("in_" + stem + "_raw");
  const int fd = open(value.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", value.string()));
  channel.fd = std::make_shared<UniqueFd>(fd);
  if (!processed) {
    channel.scale =
        ReadNumber(dir / ("in_" + stem + "_scale"), ReadNumber(dir / ("in_" + type + "_scale"), 1));
    channel.offset = ReadNumber(dir / ("in_" + stem + "_offset"),
                                ReadNumber(dir / ("in_" + type + "_offset"), 0));
  }
  channel.factor = factor;
  return channel;
}

}  // namespace

absl::StatusOr<std::vector<Sensor>> ScanIioSensors(const std::string& root) {
  std::error_code error;
  fs::directory_iterator it(root, error);
  if (error) return absl::NotFoundError(absl::StrCat("cannot read ", root, ": ", error.message()));
  std::vector<fs::path> devices;
  for (const fs::directory_entry& entry : it) {
    if (absl::StartsWith(entry.path().filename().string(), "iio:device")) {
      devices.push_back(entry.path());
    }
  }
  std::sort(devices.begin(), devices.end());
  std::vector<Sensor> sensors;
  for (const fs::path& dir : devices) {
    std::string device = ReadSmall(dir / "name");
    if (device.empty()) device = dir.filename().string();
    for (char& c : device) {
      if (!(absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-')) c = '_';
    }
    // The channels present: stems such as "temp", "voltage0", "accel_x".
    std::map<std::string, bool> stems;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
      const std::string name = entry.path().filename().string();
      absl::string_view file = name;
      if (!absl::ConsumePrefix(&file, "in_")) continue;
      if (absl::ConsumeSuffix(&file, "_raw") || absl::ConsumeSuffix(&file, "_input")) {
        stems[std::string(file)] = true;
      }
    }
    for (const ChannelType& type : kTypes) {
      auto make = [&](const std::string& name) {
        Sensor s;
        s.name = name.substr(0, kMaxNameLength);
        s.unit = type.unit;
        s.scale = type.scale;
        return s;
      };
      if (type.axes) {
        const std::string base = type.prefix;
        if (!stems.count(base + "_x") || !stems.count(base + "_y") || !stems.count(base + "_z")) {
          continue;
        }
        Sensor s = make(device + "_" + base);
        for (const char* axis : {"x", "y", "z"}) {
          absl::StatusOr<HostChannel> channel =
              OpenChannel(dir, base + "_" + axis, base, type.factor);
          if (!channel.ok()) return channel.status();
          s.host.push_back(*std::move(channel));
          std::string upper = axis;
          s.axes.push_back(s.name.substr(0, kMaxNameLength - 2) + "_" +
                           absl::AsciiStrToUpper(upper));
        }
        s.values.assign(3, 0);
        sensors.push_back(std::move(s));
        continue;
      }
      for (const auto& [stem, unused] : stems) {
        // "temp", "temp0", "voltage3": the type and digits only (not "voltage0_supply" etc).
        absl::string_view rest = stem;
        if (!absl::ConsumePrefix(&rest, type.prefix)) continue;
        if (!std::all_of(rest.begin(), rest.end(), absl::ascii_isdigit)) continue;
        absl::StatusOr<HostChannel> channel = OpenChannel(dir, stem, type.prefix, type.factor);
        if (!channel.ok()) return channel.status();
        Sensor s = make(device + "_" + stem);
        s.host.push_back(*std::move(channel));
        s.values.assign(1, 0);
        sensors.push_back(std::move(s));
      }
    }
  }
  return sensors;
}

absl::StatusOr<std::vector<Sensor>> ScanHwmonSensors(const std::string& root) {
  struct HwmonType {
    const char* prefix;
    uint8_t unit;
    int8_t scale;
  };
  static constexpr HwmonType kHwmonTypes[] = {
      {"temp", kUnitCelsius, -3}, {"in", kUnitVolts, -3},      {"curr", kUnitAmps, -3},
      {"power", kUnitWatts, -6},  {"energy", kUnitJoules, -6},
  };
  std::error_code error;
  fs::directory_iterator it(root, error);
  if (error) return absl::NotFoundError(absl::StrCat("cannot read ", root, ": ", error.message()));
  std::vector<fs::path> devices;
  for (const fs::directory_entry& entry : it) {
    if (absl::StartsWith(entry.path().filename().string(), "hwmon"))
      devices.push_back(entry.path());
  }
  std::sort(devices.begin(), devices.end());
  auto clean = [](std::string name) {
    for (char& c : name) {
      if (!(absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-')) c = '_';
    }
    return name;
  };
  std::vector<Sensor> sensors;
  for (const fs::path& dir : devices) {
    std::string device = clean(ReadSmall(dir / "name"));
    if (device.empty()) device = dir.filename().string();
    std::vector<std::string> inputs;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
      const std::string file = entry.path().filename().string();
      if (absl::EndsWith(file, "_input")) inputs.push_back(file.substr(0, file.size() - 6));
    }
    std::sort(inputs.begin(), inputs.end());
    for (const HwmonType& type : kHwmonTypes) {
      for (const std::string& channel : inputs) {
        absl::string_view rest = channel;
        if (!absl::ConsumePrefix(&rest, type.prefix) || rest.empty() ||
            !std::all_of(rest.begin(), rest.end(), absl::ascii_isdigit)) {
          continue;
        }
        const fs::path value = dir / (channel + "_input");
        const int fd = open(value.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return absl::NotFoundError(absl::StrCat("cannot open ", value.string()));
        Sensor s;
        const std::string label = clean(ReadSmall(dir / (channel + "_label")));
        s.name = (device + "_" + (label.empty() ? channel : label)).substr(0, kMaxNameLength);
        s.unit = type.unit;
        s.scale = type.scale;
        HostChannel host;
        host.fd = std::make_shared<UniqueFd>(fd);
        s.host.push_back(std::move(host));
        s.values.assign(1, 0);
        sensors.push_back(std::move(s));
      }
    }
  }
  return sensors;
}

}  // namespace vhost::scmi
