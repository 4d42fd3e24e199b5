// Where the rng daemon's entropy comes from: the kernel's getrandom(2), or a file or character
// device (e.g. /dev/hwrng). Reads go straight into the guest's buffers.
#ifndef VHOST_USER_RNG_ENTROPY_SOURCE_H_
#define VHOST_USER_RNG_ENTROPY_SOURCE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/virtio/guest_memory.h"

namespace vhost {

class EntropySource {
 public:
  virtual ~EntropySource() = default;
  // Fills up to `max_bytes` of `buffers` (in order). Returns the bytes written, which may be
  // fewer (0 when a file is exhausted), or UnavailableError when a non-blocking device has
  // nothing right now.
  virtual absl::StatusOr<size_t> Fill(const IovecList& buffers, size_t max_bytes) = 0;
};

std::unique_ptr<EntropySource> MakeGetrandomSource();
// Opens `path` non-blocking, so a slow device never stalls the queue's worker thread.
absl::StatusOr<std::unique_ptr<EntropySource>> MakeFileSource(const std::string& path);

}  // namespace vhost

#endif  // VHOST_USER_RNG_ENTROPY_SOURCE_H_
