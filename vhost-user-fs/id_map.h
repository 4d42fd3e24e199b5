// --translate-uid / --translate-gid: ranges of guest ids shown as other host ids, as users of
// virtiofsd map a guest's users onto the host's ("GUEST:HOST:COUNT[,GUEST:HOST:COUNT...]").
//
// Every id round-trips, so no two ids alias: a guest id in a range is its host image and back.
// An id outside every range passes unchanged unless that would alias: a guest id that is, as a
// host id, the image of a range (guest 1000 with 0:1000:1) has no host id (requests creating
// files as it, or chowning to it, are refused); a host id that is, as a guest id, inside a
// range (host 0 with 0:1000:1) shows as the overflow id 65534.
#ifndef VHOST_USER_FS_ID_MAP_H_
#define VHOST_USER_FS_ID_MAP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vhost {

class IdMap {
 public:
  static constexpr uint32_t kOverflowId = 65534;  // "nobody", as the kernel's overflowuid
  // `flag` names the option in errors.
  static absl::StatusOr<IdMap> Parse(absl::string_view text, absl::string_view flag);

  // The host id for a guest id; none when it has no host id of its own.
  std::optional<uint32_t> GuestToHost(uint32_t id) const;
  // The guest id for a host id; kOverflowId when it has none of its own.
  uint32_t HostToGuest(uint32_t id) const;
  bool empty() const { return ranges_.empty(); }

 private:
  struct Range {
    uint32_t guest, host, count;
  };
  std::vector<Range> ranges_;
};

}  // namespace vhost

#endif  // VHOST_USER_FS_ID_MAP_H_
