#include "common/testing/page_cache.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace vhost {
namespace testing {

absl::StatusOr<uint64_t> UnsyncedPages(const std::string& path, uint64_t offset, uint64_t len) {
  struct {
    uint64_t off, len;
  } range = {offset, len};
  struct {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
  } stat = {};
  constexpr long kSysCachestat = 451;  // the same number on every architecture
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, path);
  const long rc = syscall(kSysCachestat, fd, &range, &stat, 0);
  const int error = errno;
  close(fd);
  if (rc != 0) return absl::ErrnoToStatus(error, "cachestat");
  return stat.nr_dirty + stat.nr_writeback;
}

}  // namespace testing
}  // namespace vhost
