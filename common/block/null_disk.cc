#include "common/block/null_disk.h"

#include <cstring>

namespace vhost {
namespace {

// Completes everything at submission; the ring's Reap hands the results over.
class NullQueue : public DiskQueue {
 public:
  explicit NullQueue(IoRing& ring) : ring_(ring) {}
  bool SubmitRead(const IovecList& buffers, uint64_t, uint64_t token) override {
    int64_t bytes = 0;
    for (const iovec& b : buffers) {
      std::memset(b.iov_base, 0, b.iov_len);
      bytes += b.iov_len;
    }
    ring_.CompleteInline(token, bytes);
    return true;
  }
  bool SubmitWrite(const IovecList& buffers, uint64_t, bool, uint64_t token) override {
    int64_t bytes = 0;
    for (const iovec& b : buffers) bytes += b.iov_len;
    ring_.CompleteInline(token, bytes);
    return true;
  }
  bool SubmitFlush(uint64_t token) override {
    ring_.CompleteInline(token, 0);
    return true;
  }

 private:
  IoRing& ring_;
};

class NullDisk : public Disk {
 public:
  explicit NullDisk(uint64_t size) : size_(size) {}
  uint64_t size_bytes() const override { return size_; }
  std::unique_ptr<DiskQueue> NewQueue(IoRing& ring) override {
    return std::make_unique<NullQueue>(ring);
  }
  absl::Status Discard(uint64_t, uint64_t) override { return absl::OkStatus(); }
  absl::Status WriteZeroes(uint64_t, uint64_t, bool) override { return absl::OkStatus(); }
  absl::StatusOr<uint64_t> Refresh() override { return size_; }

 private:
  const uint64_t size_;
};

}  // namespace

std::unique_ptr<Disk> MakeNullDisk(uint64_t size_bytes) {
  return std::make_unique<NullDisk>(size_bytes);
}

}  // namespace vhost
