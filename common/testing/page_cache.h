// What the host page cache holds of a file, for tests of durability: the page cache survives a
// daemon's crash, so reading data back cannot tell whether a FLUSH or a write-through write
// reached stable storage; the dirty state of its pages can.
#ifndef COMMON_TESTING_PAGE_CACHE_H_
#define COMMON_TESTING_PAGE_CACHE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace vhost {
namespace testing {

// How many pages of `path` in [offset, offset + len) hold data not yet on stable storage (dirty
// or under writeback), by cachestat(2) (Linux 6.5).
absl::StatusOr<uint64_t> UnsyncedPages(const std::string& path, uint64_t offset, uint64_t len);

}  // namespace testing
}  // namespace vhost

#endif  // COMMON_TESTING_PAGE_CACHE_H_
