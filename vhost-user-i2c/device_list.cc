#include "vhost-user-i2c/device_list.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace vhost {
namespace {

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--device-list: ", what));
}

bool ParseNumber(absl::string_view text, uint32_t* value) {
  if (absl::StartsWith(text, "0x") || absl::StartsWith(text, "0X")) {
    return text.size() > 2 && absl::SimpleHexAtoi(text.substr(2), value);
  }
  return absl::SimpleAtoi(text, value);
}

}  // namespace

absl::StatusOr<std::vector<AdapterSpec>> ParseI2cDeviceList(absl::string_view list) {
  if (list.empty()) {
    return Bad("required: BUS:ADDR[:ADDR...] (BUS is N for /dev/i2c-N or sim)");
  }
  std::vector<AdapterSpec> adapters;
  std::set<uint16_t> seen;
  for (absl::string_view entry : absl::StrSplit(list, ',')) {
    std::vector<absl::string_view> fields = absl::StrSplit(entry, ':');
    if (fields.size() < 2) return Bad(absl::StrCat("'", entry, "' lists no client address"));
    AdapterSpec adapter;
    if (fields[0] == "sim") {
      adapter.simulated = true;
    } else if (!absl::SimpleAtoi(fields[0], &adapter.number)) {
      return Bad(absl::StrCat("'", fields[0], "' is neither an adapter number nor sim"));
    }
    for (size_t i = 1; i < fields.size(); ++i) {
      uint32_t addr;
      // 0x00-0x07 and 0x78-0x7f are reserved by the I2C specification.
      if (!ParseNumber(fields[i], &addr) || addr < 0x08 || addr > 0x77) {
        return Bad(absl::StrCat("'", fields[i], "' is not a client address (0x08 to 0x77)"));
      }
      if (!seen.insert(addr).second) {
        return Bad(absl::StrCat("address ", fields[i], " is listed twice"));
      }
      adapter.addresses.push_back(static_cast<uint16_t>(addr));
    }
    adapters.push_back(std::move(adapter));
  }
  return adapters;
}

}  // namespace vhost
