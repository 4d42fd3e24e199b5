#include "vhost-user-scmi/scmi_device.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "common/virtio/chain_cursor.h"
#include "common/virtio/features.h"
#include "glog/logging.h"

namespace vhost::scmi {
namespace {

constexpr uint32_t kAgents = 1;     // the guest; agent 0 is the platform
constexpr uint32_t kMaxAsync = 16;  // pending asynchronous commands announced
constexpr uint8_t kProtocols[] = {kPowerDomain, kSystemPower, kPerformance, kClock,
                                  kSensor,      kResetDomain, kVoltage};

// The messages each protocol implements (PROTOCOL_MESSAGE_ATTRIBUTES answers NOT_FOUND for the
// others, and they are answered NOT_SUPPORTED).
bool Implements(uint8_t protocol, uint32_t message) {
  if (message <= kProtocolMessageAttributes) return true;
  switch (protocol) {
    case kBase:
      return message <= kBaseNotifyErrors;
    case kPowerDomain:
      return message == kPowerDomainAttributes || message == kPowerStateSet ||
             message == kPowerStateGet || message == kPowerStateNotify ||
             message == kPowerDomainNameGet;
    case kSystemPower:
      return message == kSystemPowerStateSet || message == kSystemPowerStateNotify;
    case kPerformance:
      return message <= kPerfLevelGet || message == kPerfNotifyLevel ||
             message == kPerfDomainNameGet;
    case kClock:
      return message <= kClockNameGet;
    case kSensor:
      return message <= kSensorAxisNameGet;
    case kResetDomain:
      return message == kResetDomainAttributes || message == kReset ||
             message == kResetDomainNameGet;
    case kVoltage:
      return message <= kVoltageDomainNameGet;
  }
  return false;
}

uint32_t VersionOf(uint8_t protocol) {
  switch (protocol) {
    case kBase:
      return kBaseVersion;
    case kPowerDomain:
      return kPowerVersion;
    case kSystemPower:
      return kSystemPowerVersion;
    case kPerformance:
      return kPerfVersion;
    case kClock:
      return kClockVersion;
    case kSensor:
      return kSensorVersion;
    case kResetDomain:
      return kResetVersion;
    case kVoltage:
      return kVoltageVersion;
  }
  return 0;
}

// Return values under construction.
struct Reply {
  int32_t status = kSuccess;
  std::vector<uint8_t> data;

  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) data.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void U64(uint64_t v) {
    U32(static_cast<uint32_t>(v));
    U32(static_cast<uint32_t>(v >> 32));
  }
  // A NUL-terminated name in a field of `size` bytes (cut to fit).
  void Name(absl::string_view name, size_t size) {
    const size_t n = std::min(name.size(), size - 1);
    data.insert(data.end(), name.begin(), name.begin() + n);
    data.insert(data.end(), size - n, 0);
  }
};

Reply Error(int32_t status) {
  Reply r;
  r.status = status;
  return r;
}

// The parameters of a command, as 32-bit words.
class Params {
 public:
  explicit Params(absl::Span<const uint8_t> bytes) : bytes_(bytes) {}
  // Whether the parameters are exactly `words` words long.
  bool Is(size_t words) const { return bytes_.size() == 4 * words; }
  uint32_t U32(size_t i) const {
    uint32_t v;
    std::memcpy(&v, bytes_.data() + 4 * i, 4);
    return v;
  }

 private:
  absl::Span<const uint8_t> bytes_;
};

bool Extended(absl::string_view name) { return name.size() >= kShortName; }

// How many entries of `entry` bytes fit after `fixed` bytes of return values in `room`.
size_t Fit(size_t room, size_t fixed, size_t entry) {
  return room < fixed ? 0 : (room - fixed) / entry;
}

// A duration of `ms` milliseconds as MANTISSA * 10^EXP seconds, MANTISSA below 2^bits and EXP
// a signed 5-bit power of ten (SCMI's update intervals).
std::pair<uint32_t, int> EncodeMs(uint64_t ms, int bits) {
  uint64_t m = ms;
  int e = -3;
  while (m != 0 && m % 10 == 0 && e < 15) {
    m /= 10;
    ++e;
  }
  while (m >= (uint64_t{1} << bits) && e < 15) {
    m = (m + 5) / 10;
    ++e;
  }
  return {static_cast<uint32_t>(m), e};
}

int SignExtend5(uint32_t v) {
  int e = static_cast<int>(v & 0x1f);
  return (e & 0x10) ? e - 32 : e;
}

// MANTISSA * 10^EXP seconds in milliseconds; above `cap` (or overflowing) gives cap + 1.
uint64_t DecodeMs(uint64_t mantissa, int exp, uint64_t cap) {
  int e = exp + 3;
  uint64_t v = mantissa;
  for (; e > 0; --e) {
    if (v > cap) return cap + 1;
    v *= 10;
  }
  for (; e < 0; ++e) v /= 10;
  return std::min(v, cap + 1);
}

// Encodes a message: header, then `words`.
Message Build(Header h, const std::vector<uint8_t>& body) {
  Message m(4);
  const uint32_t word = h.Pack();
  std::memcpy(m.data(), &word, 4);
  m.insert(m.end(), body.begin(), body.end());
  return m;
}

Header Notification(uint8_t protocol, uint8_t id) {
  Header h;
  h.type = kNotification;
  h.protocol = protocol;
  h.message_id = id;
  return h;
}

void Readings(Reply& r, const Sensor& s) {
  for (int64_t v : s.values) {
    r.U64(static_cast<uint64_t>(v));
    r.U64(0);  // timestamp: not supported
  }
}

// ---- The protocols. Each handler runs with the platform's lock held.

struct Command {
  Header header;
  Params in;
  size_t room;  // bytes of return values the reply may hold
  bool p2a;     // the event queue was negotiated
  std::vector<Message>* delayed;
  std::string* system_request;  // System power: what the guest asks for

  // A delayed response to this command (status SUCCESS, then `r`'s values).
  void Delay(const Reply& r) const {
    Header h = header;
    h.type = kDelayedResponse;
    Reply body;
    body.U32(static_cast<uint32_t>(kSuccess));
    body.data.insert(body.data.end(), r.data.begin(), r.data.end());
    delayed->push_back(Build(h, body.data));
  }
};

template <typename T>
const T* Find(const std::vector<T>& items, uint32_t id) {
  return id < items.size() ? &items[id] : nullptr;
}
template <typename T>
T* Find(std::vector<T>& items, uint32_t id) {
  return id < items.size() ? &items[id] : nullptr;
}

// *_NAME_GET of every protocol: flags (0) and the 64-byte name.
template <typename T>
Reply NameGet(const Command& c, std::vector<T>& items) {
  if (!c.in.Is(1)) return Error(kProtocolError);
  const T* item = Find(items, c.in.U32(0));
  if (item == nullptr) return Error(kNotFound);
  Reply r;
  r.U32(0);
  r.Name(item->name, kLongName);
  return r;
}

// A list (discrete) or range (triplet) description: bits[11:0] returned, bit 12 triplet,
// bits[31:16] remaining; `wide`: 64-bit entries (clock rates) instead of 32-bit (voltages).
Reply DescribeRateSet(const Command& c, const RateSet& set, uint32_t index, bool wide) {
  Reply r;
  auto value = [&](uint64_t v) { wide ? r.U64(v) : r.U32(static_cast<uint32_t>(v)); };
  if (set.list.empty()) {
    if (index != 0) return Error(kInvalidParameters);
    if (c.room < 4 + 3 * (wide ? 8 : 4)) return Error(kProtocolError);
    r.U32(3 | 1u << 12);
    value(set.min);
    value(set.max);
    value(set.step);
    return r;
  }
  if (index >= set.list.size()) return Error(kInvalidParameters);
  const size_t left = set.list.size() - index;
  const size_t n = std::min({left, Fit(c.room, 4, wide ? 8 : 4), size_t{0xfff}});
  if (n == 0) return Error(kProtocolError);
  r.U32(static_cast<uint32_t>(n | (left - n) << 16));
  for (size_t i = 0; i < n; ++i) value(set.list[index + i]);
  return r;
}

Reply Base(const Command& c) {
  Reply r;
  switch (c.header.message_id) {
    case kProtocolAttributes:
      r.U32(kAgents << 8 | sizeof(kProtocols));
      return r;
    case kBaseDiscoverVendor:
      r.Name("vhost-user", kShortName);
      return r;
    case kBaseDiscoverSubVendor:
      r.Name("simulated", kShortName);
      return r;
    case kBaseDiscoverImplementationVersion:
      r.U32(0x00010000);
      return r;
    case kBaseDiscoverListProtocols: {
      if (!c.in.Is(1)) return Error(kProtocolError);
      const uint32_t skip = c.in.U32(0);
      if (skip > sizeof(kProtocols)) return Error(kInvalidParameters);
      const size_t left = sizeof(kProtocols) - skip;
      // The count, then one byte per protocol padded to a word.
      size_t n = std::min(left, c.room < 4 ? 0 : (c.room - 4) / 4 * 4);
      if (n == 0 && left != 0) return Error(kProtocolError);
      r.U32(static_cast<uint32_t>(n));
      for (size_t i = 0; i < (n + 3) / 4 * 4; ++i) {
        r.data.push_back(i < n ? kProtocols[skip + i] : 0);
      }
      return r;
    }
    case kBaseDiscoverAgent: {
      if (!c.in.Is(1)) return Error(kProtocolError);
      const uint32_t id = c.in.U32(0);
      if (id == 0) {
        r.U32(0);
        r.Name("platform", kShortName);
      } else if (id == 1 || id == 0xffffffff) {  // 0xffffffff: the caller itself
        r.U32(1);
        r.Name("guest", kShortName);
      } else {
        return Error(kNotFound);
      }
      return r;
    }
    case kBaseNotifyErrors:
      if (!c.in.Is(1)) return Error(kProtocolError);
      // The platform never reports errors of other agents: there are none.
      if (c.in.U32(0) & ~1u) return Error(kInvalidParameters);
      return r;
  }
  return Error(kNotSupported);
}

Reply Power(const Command& c, ScmiPlatform& p) {
  Reply r;
  switch (c.header.message_id) {
    case kProtocolAttributes:
      r.U32(static_cast<uint32_t>(p.power_domains.size()));
      r.U32(0);  // no statistics shared memory
      r.U32(0);
      r.U32(0);
      return r;
    case kPowerDomainAttributes: {
      if (!c.in.Is(1)) return Error(kProtocolError);
      const PowerDomain* d = Find(p.power_domains, c.in.U32(0));
      if (d == nullptr) return Error(kNotFound);
      // Synchronous state changes; notifications of the host's with the event queue.
      r.U32((c.p2a ? 1u << 31 : 0) | 1u << 29 | (Extended(d->name) ? 1u << 27 : 0));
      r.Name(d->name, kShortName);
      return r;
    }
    case kPowerStateSet: {
      if (!c.in.Is(3)) return Error(kProtocolError);
      const uint32_t flags = c.in.U32(0);
      PowerDomain* d = Find(p.power_domains, c.in.U32(1));
      const uint32_t state = c.in.U32(2);
      if (d == nullptr) return Error(kNotFound);
      if (flags & ~1u) return Error(kInvalidParameters);
      if (flags & 1) return Error(kNotSupported);  // asynchronous: not offered
      if (state != kPowerStateOn && state != kPowerStateOff) return Error(kInvalidParameters);
      d->on = state == kPowerStateOn;
      return r;
    }
    case kPowerStateGet: {
      if (!c.in.Is(1)) return Error(kProtocolError);
      const PowerDomain* d = Find(p.power_domains, c.in.U32(0));
      if (d == nullptr) return Error(kNotFound);
      r.U32(d->on ? kPowerStateOn : kPowerStateOff);
      return r;
    }
    case kPowerStateNotify: {
      if (!c.in.Is(2)) return Error(kProtocolError);
      PowerDomain* d = Find(p.power_domains, c.in.U32(0));
      if (d == nullptr) return Error(kNotFound);
      if (c.in.U32(1) & ~1u) return Error(kInvalidParameters);
      if (!c.p2a) return Error(kNotSupported);
      d->notify = c.in.U32(1) & 1;
      return r;
    }
    case kPowerDomainNameGet:
      return NameGet(c, p.power_domains);
  }
  return Error(kNotSupported);
}

Reply SystemPower(const Command& c, ScmiPlatform& p) {
  Reply r;
  switch (c.header.message_id) {
    case kProtocolAttributes:
      r.U32(1u << 31);  // warm reset supported; suspend not
      return r;
    case kSystemPowerStateSet: {
      if (!c.in.Is(2)) return Error(kProtocolError);
      const uint32_t flags = c.in.U32(0);
      const uint32_t state = c.in.U32(1);
      if (flags & ~1u) return Error(kInvalidParameters);
      switch (state) {
        case kSystemShutdown:
          *c.system_request = "shutdown";
          return r;
        case kSystemColdReset:
          *c.system_request = "cold-reset";
          return r;
        case kSystemWarmReset:
          *c.system_request = "warm-reset";
          return r;
        case kSystemSuspend:
          return Error(kNotSupported);
      }
      return Error(kInvalidParameters);  // power up (the guest runs) or undefined
    }
    case kSystemPowerStateNotify:
      if (!c.in.Is(1)) return Error(kProtocolError);
      if (c.in.U32(0) & ~1u) return Error(kInvalidParameters);
      if (!c.p2a) return Error(kNotSupported);
      p.system_notify = c.in.U32(0) & 1;
      return r;
  }
  return Error(kNotSupported);
}

Reply Perf(const Command& c, ScmiPlatform& p) {
  Reply r;
  const uint8_t id = c.header.message_id;
  if (id == kProtocolAttributes) {
    r.U32(1u << 16 | static_cast<uint32_t>(p.perf_domains.size()));  // power in mW
    r.U32(0);                                                        // no statistics shared memory
    r.U32(0);
    r.U32(0);
    return r;
  }
  if (id == kPerfDomainNameGet) return NameGet(c, p.perf_domains);
  if (id > kPerfLevelGet && id != kPerfNotifyLevel) return Error(kNotSupported);
  const bool two = id == kPerfDescribeLevels || id == kPerfLevelSet || id == kPerfNotifyLevel;
  const size_t words = id == kPerfLimitsSet ? 3 : two ? 2 : 1;
  if (!c.in.Is(words)) return Error(kProtocolError);
  PerfDomain* d = Find(p.perf_domains, c.in.U32(0));
  if (d == nullptr) return Error(kNotFound);
  auto is_opp = [&](uint32_t level) {
    for (const Opp& opp : d->opps) {
      if (opp.khz == level) return true;
    }
    return false;
  };
  switch (id) {
    case kPerfDomainAttributes:
      // Limits and levels can be set (the levels are frequencies in kHz); the host's level
      // changes are notified with the event queue.
      r.U32(1u << 31 | 1u << 30 | (c.p2a ? 1u << 28 : 0) | (Extended(d->name) ? 1u << 26 : 0));
      r.U32(0);                   // rate limit
      r.U32(d->opps.back().khz);  // sustained frequency (kHz)
      r.U32(d->opps.back().khz);  // sustained performance level
      r.Name(d->name, kShortName);
      return r;
    case kPerfDescribeLevels: {
      const uint32_t index = c.in.U32(1);
      if (index >= d->opps.size()) return Error(kInvalidParameters);
      const size_t left = d->opps.size() - index;
      const size_t n = std::min(left, Fit(c.room, 4, 20));
      if (n == 0) return Error(kProtocolError);
      r.U32(static_cast<uint32_t>(n | (left - n) << 16));
      for (size_t i = 0; i < n; ++i) {
        const Opp& opp = d->opps[index + i];
        r.U32(opp.khz);
        r.U32(opp.power_mw);
        r.U32(opp.latency_us);
        r.U32(opp.khz);  // indicative frequency
        r.U32(static_cast<uint32_t>(index + i));
      }
      return r;
    }
    case kPerfLimitsSet: {
      const uint32_t max = c.in.U32(1);
      const uint32_t min = c.in.U32(2);
      if (min > max) return Error(kInvalidParameters);
      if (min < d->opps.front().khz || max > d->opps.back().khz) return Error(kOutOfRange);
      // The level moves into the new limits: to the highest OPP under a lowered maximum, the
      // lowest over a raised minimum.
      uint32_t level = d->level;
      if (level > max || level < min) {
        bool found = false;
        for (const Opp& opp : d->opps) {
          if (opp.khz < min || opp.khz > max) continue;
          if (!found || d->level > max) level = opp.khz;
          found = true;
        }
        if (!found) return Error(kOutOfRange);
      }
      d->limit_min = min;
      d->limit_max = max;
      d->level = level;
      return r;
    }
    case kPerfLimitsGet:
      r.U32(d->limit_max);
      r.U32(d->limit_min);
      return r;
    case kPerfLevelSet: {
      const uint32_t level = c.in.U32(1);
      if (!is_opp(level)) return Error(kInvalidParameters);
      if (level < d->limit_min || level > d->limit_max) return Error(kOutOfRange);
      d->level = level;
      return r;
    }
    case kPerfLevelGet:
      r.U32(d->level);
      return r;
    case kPerfNotifyLevel:
      if (c.in.U32(1) & ~1u) return Error(kInvalidParameters);
      if (!c.p2a) return Error(kNotSupported);
      d->notify_level = c.in.U32(1) & 1;
      return r;
  }
  return Error(kNotSupported);
}

Reply ClockProtocol(const Command& c, ScmiPlatform& p) {
  Reply r;
  const uint8_t id = c.header.message_id;
  if (id == kProtocolAttributes) {
    r.U32((c.p2a ? kMaxAsync << 16 : 0) | static_cast<uint32_t>(p.clocks.size()));
    return r;
  }
  if (id == kClockNameGet) return NameGet(c, p.clocks);
  if (id == kClockRateSet) {
    if (!c.in.Is(4)) return Error(kProtocolError);
    const uint32_t flags = c.in.U32(0);
    Clock* clock = Find(p.clocks, c.in.U32(1));
    const uint64_t rate = c.in.U32(2) | uint64_t{c.in.U32(3)} << 32;
    if (clock == nullptr) return Error(kNotFound);
    const uint32_t round = (flags >> 2) & 3;
    if ((flags & ~0xfu) || round == 3) return Error(kInvalidParameters);
    if ((flags & 1) && !c.p2a) return Error(kNotSupported);  // no channel for the delayed reply
    uint64_t down = 0, up = 0;
    const bool has_down = clock->rates.Round(rate, false, &down);
    const bool has_up = clock->rates.Round(rate, true, &up);
    uint64_t chosen;
    if (round == 0) {  // round down
      if (!has_down) return Error(kOutOfRange);
      chosen = down;
    } else if (round == 1) {  // round up
      if (!has_up) return Error(kOutOfRange);
      chosen = up;
    } else {  // the platform's choice: the nearest
      if (!has_down && !has_up) return Error(kOutOfRange);
      chosen = !has_up ? down : !has_down ? up : (rate - down <= up - rate ? down : up);
    }
    clock->rate = chosen;
    if ((flags & 1) && !(flags & 2)) {  // asynchronous, with CLOCK_RATE_SET_COMPLETE
      Reply done;
      done.U32(c.in.U32(1));
      done.U64(chosen);
      c.Delay(done);
    }
    return r;
  }
  if (id > kClockConfigSet) return Error(kNotSupported);
  const size_t words = id == kClockDescribeRates || id == kClockConfigSet ? 2 : 1;
  if (!c.in.Is(words)) return Error(kProtocolError);
  Clock* clock = Find(p.clocks, c.in.U32(0));
  if (clock == nullptr) return Error(kNotFound);
  switch (id) {
    case kClockAttributes:
      r.U32((clock->enabled ? 1u : 0) | (Extended(clock->name) ? 1u << 29 : 0));
      r.Name(clock->name, kShortName);
      r.U32(0);  // enable latency
      return r;
    case kClockDescribeRates:
      return DescribeRateSet(c, clock->rates, c.in.U32(1), /*wide=*/true);
    case kClockRateGet:
      r.U64(clock->rate);
      return r;
    case kClockConfigSet: {
      const uint32_t attributes = c.in.U32(1);
      if (attributes & ~1u) return Error(kInvalidParameters);
      clock->enabled = attributes & 1;
      return r;
    }
  }
  return Error(kNotSupported);
}

// attributes_high's and axes' bits[15:11]: the scale as a signed 5-bit power of ten.
uint32_t ScaleBits(int8_t scale) { return (static_cast<uint32_t>(scale) & 0x1f) << 11; }

uint32_t IntervalMs(const Sensor& s) {
  return s.config_interval_ms != 0 ? s.config_interval_ms : s.interval_ms;
}

Reply SensorProtocol(const Command& c, ScmiPlatform& p) {
  Reply r;
  const uint8_t id = c.header.message_id;
  if (id == kProtocolAttributes) {
    r.U32((c.p2a ? kMaxAsync << 16 : 0) | static_cast<uint32_t>(p.sensors.size()));
    r.U32(0);  // no sensor register shared memory
    r.U32(0);
    r.U32(0);
    return r;
  }
  if (id == kSensorDescriptionGet) {
    if (!c.in.Is(1)) return Error(kProtocolError);
    const uint32_t index = c.in.U32(0);
    if (index >= p.sensors.size()) return Error(kInvalidParameters);
    const size_t left = p.sensors.size() - index;
    constexpr size_t kDescriptor = 52;  // with the extended attributes
    const size_t n = std::min(left, Fit(c.room, 4, kDescriptor));
    if (n == 0) return Error(kProtocolError);
    r.U32(static_cast<uint32_t>(n | (left - n) << 16));
    for (size_t i = 0; i < n; ++i) {
      const Sensor& s = p.sensors[index + i];
      r.U32(static_cast<uint32_t>(index + i));
      // Asynchronous reads and update notifications need the event queue; extended
      // attributes always; four trip points.
      r.U32((c.p2a ? 1u << 31 | 1u << 30 : 0) | (Extended(s.name) ? 1u << 29 : 0) | 1u << 8 |
            kSensorTripPoints);
      const auto [mantissa, exp] = EncodeMs(IntervalMs(s), 5);
      r.U32(mantissa << 27 | (static_cast<uint32_t>(exp) & 0x1f) << 22 |
            static_cast<uint32_t>(s.axes.size()) << 16 | ScaleBits(s.scale) |
            (s.axes.empty() ? 0 : 1u << 8) | s.unit);
      r.Name(s.name, kShortName);
      r.U32(0);  // power: unknown
      r.U32(1);  // resolution: 1 (exponent 0)
      r.U64(static_cast<uint64_t>(s.min));
      r.U64(static_cast<uint64_t>(s.max));
    }
    return r;
  }
  if (id > kSensorAxisNameGet) return Error(kNotSupported);
  const size_t words = id == kSensorTripPointConfig                     ? 4
                       : id == kSensorConfigGet || id == kSensorNameGet ? 1
                                                                        : 2;
  if (!c.in.Is(words)) return Error(kProtocolError);
  const uint32_t sensor_id = c.in.U32(0);
  Sensor* s = Find(p.sensors, sensor_id);
  if (s == nullptr) return Error(kNotFound);
  switch (id) {
    case kSensorTripPointNotify:
      if (c.in.U32(1) & ~1u) return Error(kInvalidParameters);
      if (!c.p2a) return Error(kNotSupported);
      s->trip_notify = c.in.U32(1) & 1;
      return r;
    case kSensorTripPointConfig: {
      const uint32_t control = c.in.U32(1);
      const uint32_t trip = (control >> 4) & 0xff;
      if ((control & ~0xff3u) || trip >= kSensorTripPoints) return Error(kInvalidParameters);
      s->trips[trip].events = control & 3;
      s->trips[trip].value = static_cast<int64_t>(c.in.U32(2) | uint64_t{c.in.U32(3)} << 32);
      return r;
    }
    case kSensorReadingGet: {
      const uint32_t flags = c.in.U32(1);
      if (flags & ~1u) return Error(kInvalidParameters);
      if ((flags & 1) && !c.p2a) return Error(kNotSupported);
      if (flags & 1) {  // SENSOR_READING_COMPLETE on the event queue
        Reply done;
        done.U32(sensor_id);
        Readings(done, *s);
        c.Delay(done);
        return r;
      }
      Readings(r, *s);
      return r;
    }
    case kSensorAxisDescriptionGet:
    case kSensorAxisNameGet: {
      if (s->axes.empty()) return Error(kNotSupported);
      const uint32_t index = c.in.U32(1);
      if (index >= s->axes.size()) return Error(kInvalidParameters);
      const size_t left = s->axes.size() - index;
      const bool names = id == kSensorAxisNameGet;
      const size_t n = std::min(left, Fit(c.room, 4, names ? 4 + kLongName : 48));
      if (n == 0) return Error(kProtocolError);
      // bits[5:0] returned, bits[31:26] remaining
      r.U32(static_cast<uint32_t>(n | (left - n) << 26));
      for (size_t i = 0; i < n; ++i) {
        const std::string& axis = s->axes[index + i];
        r.U32(static_cast<uint32_t>(index + i));
        if (names) {
          r.Name(axis, kLongName);
          continue;
        }
        r.U32(1u << 8 | (Extended(axis) ? 1u << 9 : 0));  // extended attributes
        r.U32(ScaleBits(s->scale) | s->unit);
        r.Name(axis, kShortName);
        r.U32(1);  // resolution
        r.U64(static_cast<uint64_t>(s->min));
        r.U64(static_cast<uint64_t>(s->max));
      }
      return r;
    }
    case kSensorListUpdateIntervals: {
      if (c.in.U32(1) != 0) return Error(kInvalidParameters);  // one triplet: index 0 only
      // 1 ms to 3600 s in steps of 1 ms; each SECS bits[20:5], EXP bits[4:0].
      r.U32(3 | 1u << 12);
      for (uint64_t ms : {uint64_t{1}, uint64_t{3600000}, uint64_t{1}}) {
        const auto [mantissa, exp] = EncodeMs(ms, 16);
        r.U32(mantissa << 5 | (static_cast<uint32_t>(exp) & 0x1f));
      }
      return r;
    }
    case kSensorConfigGet: {
      const auto [mantissa, exp] = EncodeMs(IntervalMs(*s), 16);
      r.U32(mantissa << 16 | (static_cast<uint32_t>(exp) & 0x1f) << 11 | (s->enabled ? 1 : 0));
      return r;
    }
    case kSensorConfigSet: {
      const uint32_t config = c.in.U32(1);
      // bits[10:9] rounding (3 is reserved), bits[8:2] reserved; bit 1 (timestamps) is
      // accepted and stays off: readings carry none.
      if (((config >> 9) & 3) == 3 || (config & 0x1fc)) return Error(kInvalidParameters);
      const uint32_t mantissa = config >> 16;
      if (mantissa != 0) {
        const uint64_t ms = DecodeMs(mantissa, SignExtend5(config >> 11), 3600000);
        if (ms < 1 || ms > 3600000) return Error(kOutOfRange);
        s->config_interval_ms = static_cast<uint32_t>(ms);
        s->next_step = absl::InfinitePast();
      }
      s->enabled = config & 1;
      return r;
    }
    case kSensorContinuousUpdateNotify:
      if (c.in.U32(1) & ~1u) return Error(kInvalidParameters);
      if (!c.p2a) return Error(kNotSupported);
      s->update_notify = c.in.U32(1) & 1;
      return r;
    case kSensorNameGet:
      r.U32(0);
      r.Name(s->name, kLongName);
      return r;
  }
  return Error(kNotSupported);
}

Reply ResetProtocol(const Command& c, ScmiPlatform& p) {
  Reply r;
  switch (c.header.message_id) {
    case kProtocolAttributes:
      r.U32(static_cast<uint32_t>(p.reset_domains.size()));
      return r;
    case kResetDomainAttributes: {
      if (!c.in.Is(1)) return Error(kProtocolError);
      const ResetDomain* d = Find(p.reset_domains, c.in.U32(0));
      if (d == nullptr) return Error(kNotFound);
      r.U32((c.p2a ? 1u << 31 : 0) | (Extended(d->name) ? 1u << 29 : 0));  // async resets
      r.U32(0);                                                            // latency (us)
      r.Name(d->name, kShortName);
      return r;
    }
    case kReset: {
      if (!c.in.Is(3)) return Error(kProtocolError);
      const uint32_t domain_id = c.in.U32(0);
      ResetDomain* d = Find(p.reset_domains, domain_id);
      const uint32_t flags = c.in.U32(1);
      const uint32_t state = c.in.U32(2);
      if (d == nullptr) return Error(kNotFound);
      if (flags & ~7u) return Error(kInvalidParameters);
      // Architectural states: only 0, the cold reset. Implementation-defined states (bit 31)
      // are all taken as a cold reset.
      if (!(state & 1u << 31) && state != 0) return Error(kInvalidParameters);
      if ((flags & 4) && !c.p2a) return Error(kNotSupported);
      if (flags & 1) {  // autonomous: asserted and released
        d->asserted = false;
        ++d->resets;
      } else {
        d->asserted = flags & 2;
      }
      if (flags & 4) {  // RESET_COMPLETE on the event queue
        Reply done;
        done.U32(domain_id);
        c.Delay(done);
      }
      return r;
    }
    case kResetDomainNameGet:
      return NameGet(c, p.reset_domains);
  }
  return Error(kNotSupported);
}

Reply VoltageProtocol(const Command& c, ScmiPlatform& p) {
  Reply r;
  const uint8_t id = c.header.message_id;
  if (id == kProtocolAttributes) {
    r.U32(static_cast<uint32_t>(p.voltage_domains.size()));
    return r;
  }
  if (id == kVoltageDomainNameGet) return NameGet(c, p.voltage_domains);
  if (id > kVoltageLevelGet) return Error(kNotSupported);
  const size_t words = id == kVoltageLevelSet                                    ? 3
                       : id == kVoltageDescribeLevels || id == kVoltageConfigSet ? 2
                                                                                 : 1;
  if (!c.in.Is(words)) return Error(kProtocolError);
  VoltageDomain* d = Find(p.voltage_domains, c.in.U32(0));
  if (d == nullptr) return Error(kNotFound);
  switch (id) {
    case kVoltageDomainAttributes:
      r.U32(Extended(d->name) ? 1u << 30 : 0);  // no asynchronous level changes
      r.Name(d->name, kShortName);
      return r;
    case kVoltageDescribeLevels:
      return DescribeRateSet(c, d->levels, c.in.U32(1), /*wide=*/false);
    case kVoltageConfigSet: {
      const uint32_t config = c.in.U32(1);
      if (config != kVoltageOff && config != kVoltageOn) return Error(kInvalidParameters);
      d->on = config == kVoltageOn;
      return r;
    }
    case kVoltageConfigGet:
      r.U32(d->on ? kVoltageOn : kVoltageOff);
      return r;
    case kVoltageLevelSet: {
      const uint32_t flags = c.in.U32(1);
      const int32_t level = static_cast<int32_t>(c.in.U32(2));
      if (flags & ~1u) return Error(kInvalidParameters);
      if (flags & 1) return Error(kNotSupported);  // asynchronous: not offered
      if (level < 0 || static_cast<uint64_t>(level) < d->levels.Lowest() ||
          static_cast<uint64_t>(level) > d->levels.Highest()) {
        return Error(kOutOfRange);
      }
      if (!d->levels.Contains(static_cast<uint64_t>(level))) return Error(kInvalidParameters);
      d->level = level;
      return r;
    }
    case kVoltageLevelGet:
      r.U32(static_cast<uint32_t>(d->level));
      return r;
  }
  return Error(kNotSupported);
}

}  // namespace

ScmiDevice::ScmiDevice(std::unique_ptr<ScmiPlatform> platform) : platform_(std::move(platform)) {
  platform_->set_on_change([this] { WakeEvents(); });
}

ScmiDevice::~ScmiDevice() { platform_->set_on_change(nullptr); }

DeviceInfo ScmiDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdScmi;
  info.num_queues = 2;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1) | Bit(kFeatureP2aChannels);
  return info;
}

absl::Status ScmiDevice::SetFeatures(uint64_t features) {
  p2a_ = features & Bit(kFeatureP2aChannels);
  return absl::OkStatus();
}

Message ScmiDevice::HandleCommand(absl::Span<const uint8_t> request, size_t room,
                                  std::vector<Message>* delayed) {
  if (room < kReplyPrefix) {
    LOG_EVERY_N(WARNING, 100) << "SCMI command with a " << room
                              << "-byte reply buffer: returned empty";
    return {};
  }
  Header header;
  int32_t status = kSuccess;
  Reply reply;
  if (request.size() < 4) {
    // No header to answer to: an all-zero one, with the status.
    LOG_EVERY_N(WARNING, 100) << "SCMI command of " << request.size() << " bytes: PROTOCOL_ERROR";
    status = kProtocolError;
  } else {
    uint32_t word;
    std::memcpy(&word, request.data(), 4);
    header = Header::Unpack(word);
    std::string system_request;
    std::vector<Message> later;
    const Command c{
        header,         Params(request.subspan(4)), room - kReplyPrefix, p2a_.load(), &later,
        &system_request};
    const bool known = VersionOf(header.protocol) != 0;
    if (header.type != kCommand) {
      LOG_EVERY_N(WARNING, 100) << "SCMI message of type " << int{header.type}
                                << " from the agent: PROTOCOL_ERROR";
      reply = Error(kProtocolError);
    } else if (!known || !Implements(header.protocol, header.message_id)) {
      LOG_EVERY_N(WARNING, 100) << "SCMI protocol 0x" << std::hex << int{header.protocol}
                                << " message 0x" << int{header.message_id} << ": NOT_SUPPORTED";
      reply = Error(kNotSupported);
    } else if (header.message_id == kProtocolVersion) {
      reply = c.in.Is(0) ? Reply() : Error(kProtocolError);
      if (reply.status == kSuccess) reply.U32(VersionOf(header.protocol));
    } else if (header.message_id == kProtocolMessageAttributes) {
      if (!c.in.Is(1)) {
        reply = Error(kProtocolError);
      } else if (!Implements(header.protocol, c.in.U32(0))) {
        reply = Error(kNotFound);
      } else {
        reply.U32(0);  // no fast channels, no notifications of its own
      }
    } else if (header.message_id == kProtocolAttributes && !c.in.Is(0)) {
      reply = Error(kProtocolError);
    } else {
      ScmiPlatform& p = *platform_;
      std::lock_guard<std::mutex> lock(p.mu);
      p.AdvanceLocked(absl::Now());  // readings are as of now
      switch (header.protocol) {
        case kBase:
          reply = Base(c);
          break;
        case kPowerDomain:
          reply = Power(c, p);
          break;
        case kSystemPower:
          reply = SystemPower(c, p);
          break;
        case kPerformance:
          reply = Perf(c, p);
          break;
        case kClock:
          reply = ClockProtocol(c, p);
          break;
        case kSensor:
          reply = SensorProtocol(c, p);
          break;
        case kResetDomain:
          reply = ResetProtocol(c, p);
          break;
        case kVoltage:
          reply = VoltageProtocol(c, p);
          break;
      }
    }
    if (reply.status == kProtocolError) {
      LOG_EVERY_N(WARNING, 100) << "SCMI protocol 0x" << std::hex << int{header.protocol}
                                << " message 0x" << int{header.message_id} << std::dec << " with "
                                << request.size() - 4 << " parameter bytes and " << c.room
                                << " bytes of reply room: PROTOCOL_ERROR";
    }
    if (reply.data.size() > c.room) {
      LOG_EVERY_N(WARNING, 100) << "SCMI reply of " << reply.data.size() << " bytes for " << c.room
                                << " bytes of room: PROTOCOL_ERROR";
      reply = Error(kProtocolError);
      later.clear();
    }
    status = reply.status;
    if (status != kSuccess) reply.data.clear();
    if (delayed != nullptr && status == kSuccess) {
      for (Message& m : later) delayed->push_back(std::move(m));
    }
    if (status == kSuccess && !system_request.empty()) platform_->SystemRequest(system_request);
  }
  Reply out;
  out.U32(header.Pack());
  out.U32(static_cast<uint32_t>(status));
  out.data.insert(out.data.end(), reply.data.begin(), reply.data.end());
  return out.data;
}

absl::Status ScmiDevice::QueueStarted(QueueContext& context) {
  if (context.index() != kEventQueue) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  event_queue_ = &context;
  return absl::OkStatus();
}

QueueResult ScmiDevice::ProcessQueue(QueueContext& context) {
  if (context.index() == kEventQueue) {
    ServeEventQueue(context);
    std::vector<Message> notes;
    const absl::Time next = CollectNotifications(&notes);
    if (!notes.empty()) {
      PostEvents(std::move(notes));
      ServeEventQueue(context);
    }
    if (next == absl::InfiniteFuture()) return QueueResult::Drained();
    return QueueResult::RetryAfter(std::max(absl::ZeroDuration(), next - absl::Now()));
  }
  std::vector<Message> delayed;
  while (absl::optional<ChainToken> token = context.Take()) {
    const DescriptorChain& chain = context.chain(*token);
    // SCMI messages are small: anything beyond 4 KiB is not a command of ours.
    // (A longer one is cut, and its parameters' length then answers PROTOCOL_ERROR.)
    std::vector<uint8_t> request(std::min<uint64_t>(chain.readable_bytes, 4 + 4096));
    ChainReader reader(chain);
    if (!request.empty()) reader.ReadBytes(request.data(), request.size());
    const Message reply = HandleCommand(request, chain.writable_bytes, &delayed);
    ChainWriter writer(chain);
    writer.WriteBytes(reply.data(), reply.size());
    context.Complete(*token, writer.bytes_written());
  }
  // After their commands' responses.
  if (!delayed.empty()) PostEvents(std::move(delayed));
  return QueueResult::Drained();
}

absl::Time ScmiDevice::CollectNotifications(std::vector<Message>* out) {
  ScmiPlatform& p = *platform_;
  std::lock_guard<std::mutex> lock(p.mu);
  const absl::Time now = absl::Now();
  p.AdvanceLocked(now);
  absl::Time next = absl::InfiniteFuture();
  for (size_t i = 0; i < p.sensors.size(); ++i) {
    Sensor& s = p.sensors[i];
    if (s.changed && s.update_notify && s.enabled) {
      Reply r;
      r.U32(0);  // agent: the platform
      r.U32(static_cast<uint32_t>(i));
      Readings(r, s);
      out->push_back(Build(Notification(kSensor, kSensorUpdate), r.data));
    }
    s.changed = false;
    for (const auto& [trip, rising] : s.crossed) {
      if (!s.trip_notify) break;
      Reply r;
      r.U32(0);
      r.U32(static_cast<uint32_t>(i));
      r.U32(trip | (rising ? 1u << 16 : 0));  // bits[7:0] the trip point, bit 16 ascending
      out->push_back(Build(Notification(kSensor, kSensorTripPointEvent), r.data));
    }
    s.crossed.clear();
    // The event queue runs again when a notifying sensor steps or a host sensor is polled.
    if ((s.step != 0 || !s.host.empty()) && (s.update_notify || s.trip_notify)) {
      next = std::min(next, s.next_step == absl::InfinitePast() ? now : s.next_step);
    }
  }
  for (size_t i = 0; i < p.power_domains.size(); ++i) {
    PowerDomain& d = p.power_domains[i];
    if (d.changed && d.notify) {
      Reply r;
      r.U32(0);  // agent: the platform
      r.U32(static_cast<uint32_t>(i));
      r.U32(d.on ? kPowerStateOn : kPowerStateOff);
      out->push_back(Build(Notification(kPowerDomain, kPowerStateChanged), r.data));
    }
    d.changed = false;
  }
  for (size_t i = 0; i < p.perf_domains.size(); ++i) {
    PerfDomain& d = p.perf_domains[i];
    if (d.changed && d.notify_level) {
      Reply r;
      r.U32(0);
      r.U32(static_cast<uint32_t>(i));
      r.U32(d.level);
      out->push_back(Build(Notification(kPerformance, kPerfLevelChanged), r.data));
    }
    d.changed = false;
  }
  for (const std::string& request : p.host_requests) {
    if (!p.system_notify) break;
    Reply r;
    r.U32(0);  // agent: the platform
    r.U32(1);  // graceful
    r.U32(request == "shutdown" ? kSystemShutdown : kSystemColdReset);
    r.U32(0);  // timeout: none
    out->push_back(Build(Notification(kSystemPower, kSystemPowerStateNotifier), r.data));
  }
  p.host_requests.clear();
  return next;
}

void ScmiDevice::PostEvents(std::vector<Message> messages) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Message& m : messages) {
    if (events_.size() >= kMaxPendingEvents) {
      LOG_EVERY_N(WARNING, 100) << "SCMI event queue full: the guest posts no buffers; dropped "
                                   "the oldest message";
      events_.pop_front();
    }
    events_.push_back(std::move(m));
  }
  if (event_queue_ != nullptr) event_queue_->Wake();
}

void ScmiDevice::WakeEvents() {
  std::lock_guard<std::mutex> lock(mu_);
  if (event_queue_ != nullptr) event_queue_->Wake();
}

size_t ScmiDevice::pending_events() {
  std::lock_guard<std::mutex> lock(mu_);
  return events_.size();
}

void ScmiDevice::ServeEventQueue(QueueContext& context) {
  while (absl::optional<ChainToken> token = context.Take()) held_.push_back(*token);
  while (!held_.empty()) {
    Message m;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (events_.empty()) return;
      m = std::move(events_.front());
      events_.pop_front();
    }
    const ChainToken token = held_.front();
    held_.pop_front();
    const DescriptorChain& chain = context.chain(token);
    ChainWriter writer(chain);
    if (!writer.WriteBytes(m.data(), m.size())) {
      LOG_EVERY_N(WARNING, 100) << "SCMI event buffer of " << chain.writable_bytes
                                << " bytes for a " << m.size()
                                << "-byte message: returned empty, message dropped";
    }
    context.Complete(token, writer.bytes_written());
  }
}

void ScmiDevice::QueueStopped(QueueContext& context) {
  if (context.index() != kEventQueue) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    event_queue_ = nullptr;
  }
  // The ring position reported to the front end is past the held buffers: they go back empty
  // rather than being lost with the position.
  for (ChainToken token : held_) context.Complete(token, 0);
  held_.clear();
}

void ScmiDevice::Reset() {
  {
    std::lock_guard<std::mutex> lock(platform_->mu);
    platform_->ResetGuestStateLocked();
  }
  std::lock_guard<std::mutex> lock(mu_);
  events_.clear();
}

}  // namespace vhost::scmi
