// --translate-uid / --translate-gid: ranges of guest ids shown as other host ids, as users of
// virtiofsd map a guest's users onto the host's ("GUEST:HOST:COUNT[,GUEST:HOST:COUNT...]").
// Ids outside every range pass unchanged.
#ifndef VHOST_USER_FS_ID_MAP_H_
#define VHOST_USER_FS_ID_MAP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vhost {

class IdMap {
 public:
  // `flag` names the option in errors.
  static absl::StatusOr<IdMap> Parse(absl::string_view text, absl::string_view flag);

  uint32_t GuestToHost(uint32_t id) const;
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
