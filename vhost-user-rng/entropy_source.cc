#include "vhost-user-rng/entropy_source.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/unique_fd.h"

namespace vhost {
namespace {

class GetrandomSource : public EntropySource {
 public:
  absl::StatusOr<size_t> Fill(const IovecList& buffers, size_t max_bytes) override {
    size_t total = 0;
    for (const iovec& buffer : buffers) {
      size_t want = std::min(buffer.iov_len, max_bytes - total);
      auto* out = static_cast<uint8_t*>(buffer.iov_base);
      while (want > 0) {
        const ssize_t n = getrandom(out, want, 0);
        if (n < 0) {
          if (errno == EINTR) continue;
          return absl::ErrnoToStatus(errno, "getrandom");
        }
        out += n;
        want -= n;
        total += n;
      }
      if (total == max_bytes) break;
    }
    return total;
  }
};

class FileSource : public EntropySource {
 public:
  explicit FileSource(UniqueFd fd) : fd_(std::move(fd)) {}

  absl::StatusOr<size_t> Fill(const IovecList& buffers, size_t max_bytes) override {
    // Trim the list to max_bytes, then one readv straight into guest memory.
    IovecList trimmed;
    size_t room = max_bytes;
    for (const iovec& buffer : buffers) {
      if (room == 0) break;
      trimmed.push_back({buffer.iov_base, std::min(buffer.iov_len, room)});
      room -= trimmed.back().iov_len;
    }
    for (;;) {
      const ssize_t n = readv(fd_.get(), trimmed.data(), trimmed.size());
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return absl::UnavailableError("source has no data right now");
      return absl::ErrnoToStatus(errno, "read from --source");
    }
  }

 private:
  UniqueFd fd_;
};

}  // namespace

std::unique_ptr<EntropySource> MakeGetrandomSource() { return std::make_unique<GetrandomSource>(); }

absl::StatusOr<std::unique_ptr<EntropySource>> MakeFileSource(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    return absl::InvalidArgumentError(
        absl::StrCat("--source: cannot open ", path, ": ", strerror(errno)));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0 || S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("--source: ", path, " is not readable data"));
  }
  return std::make_unique<FileSource>(std::move(fd));
}

}  // namespace vhost
