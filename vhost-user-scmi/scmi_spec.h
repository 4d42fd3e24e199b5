// Wire facts of SCMI (Arm DEN0056, v3.x) as carried by virtio-scmi (virtio 1.2 §5.17): the
// message header, status codes, protocol and message ids, and the sensor unit types this
// daemon uses. Every field on the wire is little-endian; the daemon runs on little-endian hosts.
#ifndef VHOST_USER_SCMI_SCMI_SPEC_H_
#define VHOST_USER_SCMI_SCMI_SPEC_H_

#include <cstdint>

namespace vhost::scmi {

// ---- virtio-scmi
inline constexpr uint32_t kVirtioIdScmi = 32;
inline constexpr int kCommandQueue = 0;              // cmdq: agent commands and their responses
inline constexpr int kEventQueue = 1;                // eventq: notifications and delayed responses
inline constexpr uint32_t kFeatureP2aChannels = 0;   // VIRTIO_SCMI_F_P2A_CHANNELS: the eventq
inline constexpr uint32_t kFeatureSharedMemory = 1;  // VIRTIO_SCMI_F_SHARED_MEMORY (not offered)

// ---- message header: message id bits[7:0], type bits[9:8], protocol bits[17:10], token [27:18]
enum MessageType : uint8_t {
  kCommand = 0,
  kDelayedResponse = 2,
  kNotification = 3,
};

struct Header {
  uint8_t message_id = 0;
  uint8_t type = 0;
  uint8_t protocol = 0;
  uint16_t token = 0;  // 10 bits

  static Header Unpack(uint32_t word) {
    Header h;
    h.message_id = word & 0xff;
    h.type = (word >> 8) & 0x3;
    h.protocol = (word >> 10) & 0xff;
    h.token = (word >> 18) & 0x3ff;
    return h;
  }
  uint32_t Pack() const {
    return uint32_t{message_id} | (uint32_t{type} & 0x3) << 8 | uint32_t{protocol} << 10 |
           (uint32_t{token} & 0x3ff) << 18;
  }
};

// ---- status codes (int32)
enum Status : int32_t {
  kSuccess = 0,
  kNotSupported = -1,
  kInvalidParameters = -2,
  kDenied = -3,
  kNotFound = -4,
  kOutOfRange = -5,
  kBusy = -6,
  kCommsError = -7,
  kGenericError = -8,
  kHardwareError = -9,
  kProtocolError = -10,
  kInUse = -11,
};

// ---- protocols
enum Protocol : uint8_t {
  kBase = 0x10,
  kPowerDomain = 0x11,
  kSystemPower = 0x12,
  kPerformance = 0x13,
  kClock = 0x14,
  kSensor = 0x15,
  kResetDomain = 0x16,
  kVoltage = 0x17,
};

// Messages every protocol has.
inline constexpr uint8_t kProtocolVersion = 0x0;
inline constexpr uint8_t kProtocolAttributes = 0x1;
inline constexpr uint8_t kProtocolMessageAttributes = 0x2;

// The versions implemented (major in bits[31:16], minor in bits[15:0]).
inline constexpr uint32_t kBaseVersion = 0x20000;
inline constexpr uint32_t kPowerVersion = 0x30000;
inline constexpr uint32_t kSystemPowerVersion = 0x20000;
inline constexpr uint32_t kPerfVersion = 0x40000;
inline constexpr uint32_t kClockVersion = 0x20000;
inline constexpr uint32_t kSensorVersion = 0x30000;
inline constexpr uint32_t kResetVersion = 0x30000;
inline constexpr uint32_t kVoltageVersion = 0x20000;

// Base (0x10).
inline constexpr uint8_t kBaseDiscoverVendor = 0x3;
inline constexpr uint8_t kBaseDiscoverSubVendor = 0x4;
inline constexpr uint8_t kBaseDiscoverImplementationVersion = 0x5;
inline constexpr uint8_t kBaseDiscoverListProtocols = 0x6;
inline constexpr uint8_t kBaseDiscoverAgent = 0x7;
inline constexpr uint8_t kBaseNotifyErrors = 0x8;

// Power domain (0x11).
inline constexpr uint8_t kPowerDomainAttributes = 0x3;
inline constexpr uint8_t kPowerStateSet = 0x4;
inline constexpr uint8_t kPowerStateGet = 0x5;
inline constexpr uint8_t kPowerStateNotify = 0x6;
inline constexpr uint8_t kPowerDomainNameGet = 0x8;
inline constexpr uint8_t kPowerStateChanged = 0x0;  // notification
inline constexpr uint32_t kPowerStateOn = 0;
inline constexpr uint32_t kPowerStateOff = 1u << 30;

// System power (0x12).
inline constexpr uint8_t kSystemPowerStateSet = 0x3;
inline constexpr uint8_t kSystemPowerStateNotify = 0x5;
inline constexpr uint8_t kSystemPowerStateNotifier = 0x0;  // notification
enum SystemState : uint32_t {
  kSystemShutdown = 0,
  kSystemColdReset = 1,
  kSystemWarmReset = 2,
  kSystemPowerUp = 3,
  kSystemSuspend = 4,
};

// Performance (0x13).
inline constexpr uint8_t kPerfDomainAttributes = 0x3;
inline constexpr uint8_t kPerfDescribeLevels = 0x4;
inline constexpr uint8_t kPerfLimitsSet = 0x5;
inline constexpr uint8_t kPerfLimitsGet = 0x6;
inline constexpr uint8_t kPerfLevelSet = 0x7;
inline constexpr uint8_t kPerfLevelGet = 0x8;
inline constexpr uint8_t kPerfNotifyLevel = 0xa;
inline constexpr uint8_t kPerfDomainNameGet = 0xc;
inline constexpr uint8_t kPerfLevelChanged = 0x1;  // notification

// Clock (0x14).
inline constexpr uint8_t kClockAttributes = 0x3;
inline constexpr uint8_t kClockDescribeRates = 0x4;
inline constexpr uint8_t kClockRateSet = 0x5;  // also CLOCK_RATE_SET_COMPLETE (delayed)
inline constexpr uint8_t kClockRateGet = 0x6;
inline constexpr uint8_t kClockConfigSet = 0x7;
inline constexpr uint8_t kClockNameGet = 0x8;

// Sensor (0x15).
inline constexpr uint8_t kSensorDescriptionGet = 0x3;
inline constexpr uint8_t kSensorTripPointNotify = 0x4;
inline constexpr uint8_t kSensorTripPointConfig = 0x5;
inline constexpr uint8_t kSensorReadingGet = 0x6;  // also SENSOR_READING_COMPLETE (delayed)
inline constexpr uint8_t kSensorAxisDescriptionGet = 0x7;
inline constexpr uint8_t kSensorListUpdateIntervals = 0x8;
inline constexpr uint8_t kSensorConfigGet = 0x9;
inline constexpr uint8_t kSensorConfigSet = 0xa;
inline constexpr uint8_t kSensorContinuousUpdateNotify = 0xb;
inline constexpr uint8_t kSensorNameGet = 0xc;
inline constexpr uint8_t kSensorAxisNameGet = 0xd;
inline constexpr uint8_t kSensorTripPointEvent = 0x0;  // notification
inline constexpr uint8_t kSensorUpdate = 0x1;          // notification
inline constexpr uint32_t kSensorTripPoints = 4;       // per sensor

// Sensor unit types (the spec's table; the ones Linux's hwmon and IIO drivers take).
enum SensorType : uint8_t {
  kUnitNone = 0,
  kUnitUnspecified = 1,
  kUnitCelsius = 2,
  kUnitVolts = 5,
  kUnitAmps = 6,
  kUnitWatts = 7,
  kUnitJoules = 8,
  kUnitRpm = 19,
  kUnitHertz = 20,
  kUnitPercent = 65,
  kUnitRadiansPerSecond = 87,
  kUnitMetersPerSecondSquared = 89,
};

// Reset domain (0x16).
inline constexpr uint8_t kResetDomainAttributes = 0x3;
inline constexpr uint8_t kReset = 0x4;  // also RESET_COMPLETE (delayed)
inline constexpr uint8_t kResetDomainNameGet = 0x6;

// Voltage (0x17).
inline constexpr uint8_t kVoltageDomainAttributes = 0x3;
inline constexpr uint8_t kVoltageDescribeLevels = 0x4;
inline constexpr uint8_t kVoltageConfigSet = 0x5;
inline constexpr uint8_t kVoltageConfigGet = 0x6;
inline constexpr uint8_t kVoltageLevelSet = 0x7;
inline constexpr uint8_t kVoltageLevelGet = 0x8;
inline constexpr uint8_t kVoltageDomainNameGet = 0x9;
inline constexpr uint32_t kVoltageOff = 0x0;
inline constexpr uint32_t kVoltageOn = 0x7;

// Names: 16 bytes with their NUL in *_ATTRIBUTES, 64 in the *_NAME_GET of extended names.
inline constexpr uint32_t kShortName = 16;
inline constexpr uint32_t kLongName = 64;

// Reply bytes virtio-scmi puts before the return values: the header and the status.
inline constexpr uint32_t kReplyPrefix = 8;

}  // namespace vhost::scmi

#endif  // VHOST_USER_SCMI_SCMI_SPEC_H_
