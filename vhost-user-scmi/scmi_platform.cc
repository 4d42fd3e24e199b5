#include "vhost-user-scmi/scmi_platform.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "vhost-user-scmi/scmi_spec.h"

namespace vhost::scmi {
namespace {

using absl::InvalidArgumentError;

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

absl::StatusOr<uint8_t> ParseUnit(absl::string_view text) {
  static const std::map<std::string, uint8_t, std::less<>> kUnits = {
      {"celsius", kUnitCelsius},
      {"volts", kUnitVolts},
      {"amps", kUnitAmps},
      {"watts", kUnitWatts},
      {"joules", kUnitJoules},
      {"rpm", kUnitRpm},
      {"hertz", kUnitHertz},
      {"percent", kUnitPercent},
      {"rad/s", kUnitRadiansPerSecond},
      {"m/s2", kUnitMetersPerSecondSquared},
  };
  if (auto it = kUnits.find(text); it != kUnits.end()) return it->second;
  uint32_t number;
  if (absl::SimpleAtoi(text, &number) && number <= 0xff) return static_cast<uint8_t>(number);
  return InvalidArgumentError(absl::StrCat("unknown unit '", text, "'"));
}

absl::StatusOr<std::vector<int64_t>> ParseNumbers(absl::string_view text, char sep) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, sep)) {
    int64_t v;
    if (!absl::SimpleAtoi(part, &v))
      return InvalidArgumentError(absl::StrCat("bad number '", part, "'"));
    out.push_back(v);
  }
  return out;
}

// "rates=A,B,C" (ascending, deduplicated) or "range=MIN:MAX:STEP".
absl::StatusOr<RateSet> ParseRateSet(const std::map<std::string, std::string>& keys,
                                     const char* list_key, uint64_t limit) {
  RateSet set;
  auto list = keys.find(list_key);
  auto range = keys.find("range");
  if ((list == keys.end()) == (range == keys.end())) {
    return InvalidArgumentError(absl::StrCat("needs one of ", list_key, "= and range="));
  }
  if (list != keys.end()) {
    absl::StatusOr<std::vector<int64_t>> values = ParseNumbers(list->second, ',');
    if (!values.ok()) return values.status();
    for (int64_t v : *values) {
      if (v <= 0 || static_cast<uint64_t>(v) > limit) {
        return InvalidArgumentError(absl::StrCat(list_key, ": ", v, " out of range"));
      }
      set.list.push_back(v);
    }
    std::sort(set.list.begin(), set.list.end());
    set.list.erase(std::unique(set.list.begin(), set.list.end()), set.list.end());
    if (set.list.size() > kMaxRates) {
      return InvalidArgumentError(absl::StrCat(list_key, ": more than ", kMaxRates));
    }
    return set;
  }
  absl::StatusOr<std::vector<int64_t>> values = ParseNumbers(range->second, ':');
  if (!values.ok()) return values.status();
  if (values->size() != 3 || (*values)[0] <= 0 || (*values)[1] < (*values)[0] ||
      (*values)[2] <= 0 || static_cast<uint64_t>((*values)[1]) > limit) {
    return InvalidArgumentError("range= is MIN:MAX:STEP with 0 < MIN <= MAX and STEP > 0");
  }
  set.min = (*values)[0];
  set.max = (*values)[1];
  set.step = (*values)[2];
  return set;
}

}  // namespace

bool RateSet::Contains(uint64_t value) const {
  if (!list.empty()) return std::binary_search(list.begin(), list.end(), value);
  return value >= min && value <= max && (value - min) % step == 0;
}

bool RateSet::Round(uint64_t value, bool round_up, uint64_t* out) const {
  if (!list.empty()) {
    if (round_up) {
      auto it = std::lower_bound(list.begin(), list.end(), value);
      if (it == list.end()) return false;
      *out = *it;
    } else {
      auto it = std::upper_bound(list.begin(), list.end(), value);
      if (it == list.begin()) return false;
      *out = *(it - 1);
    }
    return true;
  }
  if (round_up) {
    if (value > max) return false;
    if (value <= min) {
      *out = min;
      return true;
    }
    uint64_t k = (value - min + step - 1) / step;
    *out = min + k * step;
    if (*out > max) return false;
    return true;
  }
  if (value < min) return false;
  *out = std::min(max, min + (value - min) / step * step);
  return true;
}

absl::StatusOr<std::unique_ptr<ScmiPlatform>> ScmiPlatform::Parse(absl::string_view text) {
  std::unique_ptr<ScmiPlatform> p(new ScmiPlatform());
  std::map<std::string, bool> names;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = line.substr(0, std::min(line.size(), line.find('#')));
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty()) continue;
    auto fail = [&](absl::string_view why) {
      return InvalidArgumentError(absl::StrCat("platform line ", line_number, ": ", why));
    };
    if (words.size() < 2) return fail("expected KIND NAME key=value...");
    const std::string kind(words[0]);
    const std::string name(words[1]);
    if (!ValidName(name)) return fail(absl::StrCat("bad name '", name, "'"));
    if (!names.emplace(name, true).second) return fail(absl::StrCat("name '", name, "' reused"));
    std::map<std::string, std::string> keys;
    for (size_t i = 2; i < words.size(); ++i) {
      std::pair<std::string, std::string> kv = absl::StrSplit(words[i], absl::MaxSplits('=', 1));
      if (kv.first.empty() || kv.second.empty()) return fail(absl::StrCat("bad '", words[i], "'"));
      keys[kv.first] = kv.second;
    }
    // Takes a key out of `keys`; whatever is left at the end is unknown.
    auto take = [&](const char* key, std::string* value) {
      auto it = keys.find(key);
      if (it == keys.end()) return false;
      *value = it->second;
      keys.erase(it);
      return true;
    };
    auto take_int = [&](const char* key, int64_t lo, int64_t hi, int64_t* out) -> absl::Status {
      std::string v;
      if (!take(key, &v)) return absl::OkStatus();
      if (!absl::SimpleAtoi(v, out) || *out < lo || *out > hi) {
        return InvalidArgumentError(absl::StrCat(key, "=", v, ": not in ", lo, "..", hi));
      }
      return absl::OkStatus();
    };
    auto take_bool = [&](const char* key, bool* out) -> absl::Status {
      int64_t v = *out;
      absl::Status s = take_int(key, 0, 1, &v);
      *out = v;
      return s;
    };
    absl::Status s;
    if (kind == "sensor") {
      if (p->sensors.size() >= kMaxEntities) return fail("too many sensors");
      Sensor sensor;
      sensor.name = name;
      std::string v;
      if (!take("unit", &v)) return fail("a sensor needs unit=");
      absl::StatusOr<uint8_t> unit = ParseUnit(v);
      if (!unit.ok()) return fail(unit.status().message());
      sensor.unit = *unit;
      int64_t scale = 0, interval = 1000;
      s.Update(take_int("scale", -16, 15, &scale));
      s.Update(take_int("min", -(int64_t{1} << 62), int64_t{1} << 62, &sensor.min));
      s.Update(take_int("max", -(int64_t{1} << 62), int64_t{1} << 62, &sensor.max));
      s.Update(take_int("step", 0, int64_t{1} << 40, &sensor.step));
      s.Update(take_int("interval_ms", 1, 3600000, &interval));
      if (!s.ok()) return fail(s.message());
      sensor.scale = static_cast<int8_t>(scale);
      sensor.interval_ms = static_cast<uint32_t>(interval);
      if (take("axes", &v)) {
        sensor.axes = absl::StrSplit(v, ',');
        if (sensor.axes.size() > kMaxAxes) return fail("more than 16 axes");
        for (const std::string& axis : sensor.axes) {
          if (!ValidName(axis)) return fail(absl::StrCat("bad axis name '", axis, "'"));
        }
      }
      const size_t count = std::max<size_t>(1, sensor.axes.size());
      sensor.values.assign(count, 0);
      if (take("value", &v)) {
        absl::StatusOr<std::vector<int64_t>> values = ParseNumbers(v, ',');
        if (!values.ok()) return fail(values.status().message());
        if (values->size() != count) return fail(absl::StrCat("value= needs ", count, " values"));
        sensor.values = *values;
      }
      if (sensor.min > sensor.max) return fail("min > max");
      for (int64_t value : sensor.values) {
        if (value < sensor.min || value > sensor.max) return fail("value outside min..max");
      }
      p->sensors.push_back(std::move(sensor));
    } else if (kind == "clock") {
      if (p->clocks.size() >= kMaxEntities) return fail("too many clocks");
      Clock clock;
      clock.name = name;
      absl::StatusOr<RateSet> rates = ParseRateSet(keys, "rates", ~uint64_t{0} >> 1);
      if (!rates.ok()) return fail(rates.status().message());
      keys.erase("rates");
      keys.erase("range");
      clock.rates = *rates;
      int64_t rate = clock.rates.Lowest();
      s.Update(take_int("rate", 1, INT64_MAX, &rate));
      s.Update(take_bool("enabled", &clock.enabled));
      if (!s.ok()) return fail(s.message());
      if (!clock.rates.Contains(rate)) return fail("rate= is not one of the clock's rates");
      clock.rate = rate;
      p->clocks.push_back(std::move(clock));
    } else if (kind == "power") {
      if (p->power_domains.size() >= kMaxEntities) return fail("too many power domains");
      PowerDomain domain;
      domain.name = name;
      std::string v;
      if (take("state", &v)) {
        if (v != "on" && v != "off") return fail("state= is on or off");
        domain.on = v == "on";
      }
      p->power_domains.push_back(std::move(domain));
    } else if (kind == "reset") {
      if (p->reset_domains.size() >= kMaxEntities) return fail("too many reset domains");
      p->reset_domains.push_back({name});
    } else if (kind == "voltage") {
      if (p->voltage_domains.size() >= kMaxEntities) return fail("too many voltage domains");
      VoltageDomain domain;
      domain.name = name;
      absl::StatusOr<RateSet> levels = ParseRateSet(keys, "levels", INT32_MAX);
      if (!levels.ok()) return fail(levels.status().message());
      keys.erase("levels");
      keys.erase("range");
      domain.levels = *levels;
      int64_t level = domain.levels.Lowest();
      s.Update(take_int("level", 1, INT32_MAX, &level));
      s.Update(take_bool("on", &domain.on));
      if (!s.ok()) return fail(s.message());
      if (!domain.levels.Contains(level)) return fail("level= is not one of the domain's levels");
      domain.level = static_cast<int32_t>(level);
      p->voltage_domains.push_back(std::move(domain));
    } else if (kind == "perf") {
      if (p->perf_domains.size() >= kMaxEntities) return fail("too many perf domains");
      PerfDomain domain;
      domain.name = name;
      std::string v;
      if (!take("opps", &v)) return fail("a perf domain needs opps=");
      for (absl::string_view opp_text : absl::StrSplit(v, ',')) {
        absl::StatusOr<std::vector<int64_t>> f = ParseNumbers(opp_text, ':');
        if (!f.ok() || f->size() < 2 || f->size() > 3 || (*f)[0] <= 0 || (*f)[0] > UINT32_MAX ||
            (*f)[1] < 0 || (*f)[1] > UINT32_MAX ||
            (f->size() == 3 && ((*f)[2] < 0 || (*f)[2] > 0xffff))) {
          return fail(absl::StrCat("bad OPP '", opp_text, "': KHZ:MW[:LATENCY_US]"));
        }
        domain.opps.push_back({static_cast<uint32_t>((*f)[0]), static_cast<uint32_t>((*f)[1]),
                               static_cast<uint16_t>(f->size() == 3 ? (*f)[2] : 0)});
      }
      std::sort(domain.opps.begin(), domain.opps.end(),
                [](const Opp& a, const Opp& b) { return a.khz < b.khz; });
      for (size_t i = 1; i < domain.opps.size(); ++i) {
        if (domain.opps[i].khz == domain.opps[i - 1].khz) return fail("two OPPs of one frequency");
      }
      if (domain.opps.size() > kMaxRates) return fail("too many OPPs");
      int64_t level = domain.opps.front().khz;
      s.Update(take_int("level", 1, UINT32_MAX, &level));
      if (!s.ok()) return fail(s.message());
      domain.level = static_cast<uint32_t>(level);
      bool found = false;
      for (const Opp& opp : domain.opps) found |= opp.khz == domain.level;
      if (!found) return fail("level= is not an OPP");
      domain.limit_min = domain.opps.front().khz;
      domain.limit_max = domain.opps.back().khz;
      p->perf_domains.push_back(std::move(domain));
    } else {
      return fail(absl::StrCat("unknown kind '", kind, "'"));
    }
    if (!keys.empty()) return fail(absl::StrCat("unknown key '", keys.begin()->first, "'"));
  }
  return p;
}

absl::Status ScmiPlatform::AddSensors(std::vector<Sensor> more) {
  std::lock_guard<std::mutex> lock(mu);
  for (Sensor& s : more) {
    if (!DescribeLocked(s.name).empty()) {
      return InvalidArgumentError(absl::StrCat("host sensor name '", s.name, "' is taken"));
    }
    if (sensors.size() >= kMaxEntities) return InvalidArgumentError("too many sensors");
    sensors.push_back(std::move(s));
  }
  RefreshHostLocked();
  return absl::OkStatus();
}

void ScmiPlatform::RefreshHostLocked() {
  for (Sensor& s : sensors) {
    if (s.host.empty()) continue;
    std::vector<int64_t> values = s.values;
    for (size_t i = 0; i < s.host.size() && i < values.size(); ++i) {
      const HostChannel& channel = s.host[i];
      char text[64];
      ssize_t n = -1;
      if (lseek(channel.fd->get(), 0, SEEK_SET) == 0) {
        n = read(channel.fd->get(), text, sizeof(text) - 1);
      }
      double raw;
      if (n <= 0 ||
          !absl::SimpleAtod(absl::StripAsciiWhitespace(absl::string_view(text, n)), &raw)) {
        LOG_EVERY_N(WARNING, 100) << "host sensor " << s.name << ": unreadable; keeps its value";
        continue;
      }
      const double value = (raw + channel.offset) * channel.scale * channel.factor;
      values[i] = std::llround(std::clamp(value, -9.2e18, 9.2e18));  // nearest, not toward 0
    }
    if (values != s.values) SetValuesLocked(s, values);
  }
}

absl::Time ScmiPlatform::AdvanceLocked(absl::Time now) {
  absl::Time next = absl::InfiniteFuture();
  RefreshHostLocked();
  for (Sensor& sensor : sensors) {
    if (!sensor.host.empty() && (sensor.update_notify || sensor.trip_notify)) {
      // Host sensors are polled for notifications at their interval.
      const absl::Duration interval = absl::Milliseconds(
          sensor.config_interval_ms != 0 ? sensor.config_interval_ms : sensor.interval_ms);
      if (sensor.next_step == absl::InfinitePast() || now >= sensor.next_step) {
        sensor.next_step = now + interval;
      }
      next = std::min(next, sensor.next_step);
      continue;
    }
    if (sensor.step == 0) continue;
    // The guest's SENSOR_CONFIG_SET interval, or the config's.
    const absl::Duration interval = absl::Milliseconds(
        sensor.config_interval_ms != 0 ? sensor.config_interval_ms : sensor.interval_ms);
    if (sensor.next_step == absl::InfinitePast()) sensor.next_step = now + interval;
    if (now >= sensor.next_step) {
      // One step per call however late: a reading moves smoothly, never jumps.
      std::vector<int64_t> values = sensor.values;
      for (int64_t& v : values) {
        int64_t moved = v + sensor.direction * sensor.step;
        if (moved > sensor.max || moved < sensor.min) {
          sensor.direction = -sensor.direction;
          moved = v + sensor.direction * sensor.step;
          moved = std::clamp(moved, sensor.min, sensor.max);
        }
        v = moved;
      }
      SetValuesLocked(sensor, values);
      sensor.next_step = now + interval;
    }
    next = std::min(next, sensor.next_step);
  }
  return next;
}

void ScmiPlatform::SetValuesLocked(Sensor& sensor, const std::vector<int64_t>& values) {
  const int64_t before = sensor.values[0];
  const int64_t after = values[0];
  for (size_t i = 0; i < sensor.trips.size(); ++i) {
    const TripPoint& trip = sensor.trips[i];
    if ((trip.events & 1) && before < trip.value && after >= trip.value) {
      sensor.crossed.push_back({static_cast<uint8_t>(i), true});
    }
    if ((trip.events & 2) && before > trip.value && after <= trip.value) {
      sensor.crossed.push_back({static_cast<uint8_t>(i), false});
    }
  }
  if (sensor.crossed.size() > 64) sensor.crossed.erase(sensor.crossed.begin());
  sensor.values = values;
  sensor.changed = true;
}

void ScmiPlatform::ResetGuestStateLocked() {
  for (Sensor& sensor : sensors) {
    sensor.enabled = true;
    sensor.config_interval_ms = 0;
    sensor.update_notify = false;
    sensor.trip_notify = false;
    sensor.trips = {};
    sensor.changed = false;
    sensor.crossed.clear();
  }
  for (PowerDomain& d : power_domains) d.notify = d.changed = false;
  for (PerfDomain& d : perf_domains) d.notify_level = d.changed = false;
  system_notify = false;
  host_requests.clear();
}

void ScmiPlatform::set_on_change(std::function<void()> hook) { on_change_ = std::move(hook); }

void ScmiPlatform::set_on_system_request(std::function<void(const std::string&)> hook) {
  on_system_request_ = std::move(hook);
}

void ScmiPlatform::NotifyChange() {
  if (on_change_) on_change_();
}

void ScmiPlatform::SystemRequest(const std::string& what) {
  LOG(INFO) << "the guest requests a system " << what;
  {
    std::lock_guard<std::mutex> lock(mu);
    system_request = what;
  }
  if (on_system_request_) on_system_request_(what);
}

std::string ScmiPlatform::DescribeLocked(absl::string_view name) {
  auto onoff = [](bool on) { return on ? "on" : "off"; };
  for (const Sensor& s : sensors) {
    if (s.name == name) return absl::StrCat("sensor:", s.name, "=", absl::StrJoin(s.values, ","));
  }
  for (const Clock& c : clocks) {
    if (c.name == name) return absl::StrCat("clock:", c.name, "=", c.rate, ",", onoff(c.enabled));
  }
  for (const PowerDomain& d : power_domains) {
    if (d.name == name) return absl::StrCat("power:", d.name, "=", onoff(d.on));
  }
  for (const ResetDomain& d : reset_domains) {
    if (d.name == name) {
      return absl::StrCat("reset:", d.name, "=", d.asserted ? "asserted" : "deasserted", ",",
                          d.resets);
    }
  }
  for (const VoltageDomain& d : voltage_domains) {
    if (d.name == name) return absl::StrCat("voltage:", d.name, "=", d.level, ",", onoff(d.on));
  }
  for (const PerfDomain& d : perf_domains) {
    if (d.name == name) {
      return absl::StrCat("perf:", d.name, "=", d.level, ",", d.limit_min, "-", d.limit_max);
    }
  }
  return "";
}

absl::StatusOr<std::string> ScmiPlatform::Execute(absl::string_view command) {
  std::vector<std::string> words = absl::StrSplit(command, ' ', absl::SkipWhitespace());
  if (words.empty()) return InvalidArgumentError("empty command");
  const std::string& verb = words[0];
  if (verb == "list" && words.size() == 1) {
    std::lock_guard<std::mutex> lock(mu);
    AdvanceLocked(absl::Now());
    std::vector<std::string> all;
    for (const Sensor& s : sensors) all.push_back(DescribeLocked(s.name));
    for (const Clock& c : clocks) all.push_back(DescribeLocked(c.name));
    for (const PowerDomain& d : power_domains) all.push_back(DescribeLocked(d.name));
    for (const ResetDomain& d : reset_domains) all.push_back(DescribeLocked(d.name));
    for (const VoltageDomain& d : voltage_domains) all.push_back(DescribeLocked(d.name));
    for (const PerfDomain& d : perf_domains) all.push_back(DescribeLocked(d.name));
    return absl::StrJoin(all, " ");
  }
  if (verb == "get" && words.size() == 2) {
    std::lock_guard<std::mutex> lock(mu);
    AdvanceLocked(absl::Now());
    std::string text = DescribeLocked(words[1]);
    if (text.empty()) return absl::NotFoundError(absl::StrCat("no entity '", words[1], "'"));
    return text;
  }
  if (verb == "system" && words.size() == 1) {
    std::lock_guard<std::mutex> lock(mu);
    return system_request;
  }
  if (verb == "request" && words.size() == 2) {
    if (words[1] != "shutdown" && words[1] != "reboot") {
      return InvalidArgumentError("request shutdown|reboot");
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!system_notify) {
        return absl::FailedPreconditionError(
            "the guest did not ask for system power notifications");
      }
      host_requests.push_back(words[1]);
    }
    NotifyChange();
    return std::string();
  }
  if (words.size() != 3)
    return InvalidArgumentError(absl::StrCat("unknown command '", command, "'"));
  const std::string& name = words[1];
  const std::string& arg = words[2];
  std::unique_lock<std::mutex> lock(mu);
  auto not_found = [&] { return absl::NotFoundError(absl::StrCat("no ", verb, " '", name, "'")); };
  if (verb == "sensor") {
    for (Sensor& s : sensors) {
      if (s.name != name) continue;
      absl::StatusOr<std::vector<int64_t>> values = ParseNumbers(arg, ',');
      if (!values.ok()) return values.status();
      if (values->size() != s.values.size()) {
        return InvalidArgumentError(absl::StrCat(name, " takes ", s.values.size(), " values"));
      }
      SetValuesLocked(s, *values);
      std::string text = DescribeLocked(name);
      lock.unlock();
      NotifyChange();
      return text;
    }
    return not_found();
  }
  if (verb == "clock") {
    for (Clock& c : clocks) {
      if (c.name != name) continue;
      uint64_t rate;
      if (arg == "on" || arg == "off") {
        c.enabled = arg == "on";
      } else if (absl::SimpleAtoi(arg, &rate) && c.rates.Contains(rate)) {
        c.rate = rate;
      } else {
        return InvalidArgumentError(absl::StrCat("'", arg, "' is not a rate of ", name));
      }
      return DescribeLocked(name);
    }
    return not_found();
  }
  if (verb == "power") {
    for (PowerDomain& d : power_domains) {
      if (d.name != name) continue;
      if (arg != "on" && arg != "off") return InvalidArgumentError("power NAME on|off");
      d.on = arg == "on";
      d.changed = true;
      std::string text = DescribeLocked(name);
      lock.unlock();
      NotifyChange();
      return text;
    }
    return not_found();
  }
  if (verb == "voltage") {
    for (VoltageDomain& d : voltage_domains) {
      if (d.name != name) continue;
      uint32_t level;
      if (arg == "on" || arg == "off") {
        d.on = arg == "on";
      } else if (absl::SimpleAtoi(arg, &level) && d.levels.Contains(level)) {
        d.level = static_cast<int32_t>(level);
      } else {
        return InvalidArgumentError(absl::StrCat("'", arg, "' is not a level of ", name));
      }
      return DescribeLocked(name);
    }
    return not_found();
  }
  if (verb == "perf") {
    for (PerfDomain& d : perf_domains) {
      if (d.name != name) continue;
      uint32_t level;
      bool found = false;
      if (absl::SimpleAtoi(arg, &level)) {
        for (const Opp& opp : d.opps) found |= opp.khz == level;
      }
      if (!found) return InvalidArgumentError(absl::StrCat("'", arg, "' is not an OPP of ", name));
      d.level = level;
      d.changed = true;
      std::string text = DescribeLocked(name);
      lock.unlock();
      NotifyChange();
      return text;
    }
    return not_found();
  }
  return InvalidArgumentError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace vhost::scmi
