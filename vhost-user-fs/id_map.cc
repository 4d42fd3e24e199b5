#include "vhost-user-fs/id_map.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace vhost {

absl::StatusOr<IdMap> IdMap::Parse(absl::string_view text, absl::string_view flag) {
  IdMap map;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(item, ':');
    Range r;
    if (f.size() != 3 || !absl::SimpleAtoi(f[0], &r.guest) || !absl::SimpleAtoi(f[1], &r.host) ||
        !absl::SimpleAtoi(f[2], &r.count) || r.count == 0 ||
        uint64_t{r.guest} + r.count > (uint64_t{1} << 32) ||
        uint64_t{r.host} + r.count > (uint64_t{1} << 32)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": '", item, "' is not GUEST:HOST:COUNT"));
    }
    for (const Range& o : map.ranges_) {
      const bool guest_overlap = r.guest < o.guest + o.count && o.guest < r.guest + r.count;
      const bool host_overlap = r.host < o.host + o.count && o.host < r.host + r.count;
      if (guest_overlap || host_overlap) {
        return absl::InvalidArgumentError(absl::StrCat(flag, ": '", item, "' overlaps"));
      }
    }
    map.ranges_.push_back(r);
  }
  return map;
}

std::optional<uint32_t> IdMap::GuestToHost(uint32_t id) const {
  bool taken = false;  // as a host id, the image of some guest id
  for (const Range& r : ranges_) {
    if (id >= r.guest && id - r.guest < r.count) return r.host + (id - r.guest);
    taken |= id >= r.host && id - r.host < r.count;
  }
  if (taken) return std::nullopt;
  return id;
}

uint32_t IdMap::HostToGuest(uint32_t id) const {
  bool taken = false;  // as a guest id, the image of some host id
  for (const Range& r : ranges_) {
    if (id >= r.host && id - r.host < r.count) return r.guest + (id - r.host);
    taken |= id >= r.guest && id - r.guest < r.count;
  }
  return taken ? kOverflowId : id;
}

}  // namespace vhost
