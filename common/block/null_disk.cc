#include "common/block/null_disk.h"

#include <cstring>
#include <utility>
#include <vector>

namespace vhost {
namespace {

// Completes everything at submission; Reap hands the results over.
class NullQueue : public DiskQueue {
 public:
  explicit NullQueue(uint32_t depth) { done_.reserve(depth); }
  int event_fd() const override { return -1; }
  bool SubmitRead(const IovecList& buffers, uint64_t, uint64_t token) override {
    int64_t bytes = 0;
    for (const iovec& b : buffers) {
      std::memset(b.iov_base, 0, b.iov_len);
      bytes += b.iov_len;
    }
    done_.push_back({token, bytes});
    return true;
  }
  bool SubmitWrite(const IovecList& buffers, uint64_t, bool, uint64_t token) override {
    int64_t bytes = 0;
    for (const iovec& b : buffers) bytes += b.iov_len;
    done_.push_back({token, bytes});
    return true;
  }
  bool SubmitFlush(uint64_t token) override {
    done_.push_back({token, 0});
    return true;
  }
  void Commit() override {}
  bool HasCompletions() const override { return !done_.empty(); }
  void Reap(absl::FunctionRef<void(uint64_t, int64_t)> done) override {
    for (const auto& [token, result] : done_) done(token, result);
    done_.clear();
  }
  void Drain(absl::FunctionRef<void(uint64_t, int64_t)> done) override { Reap(done); }

 private:
  std::vector<std::pair<uint64_t, int64_t>> done_;
};

class NullDisk : public Disk {
 public:
  explicit NullDisk(uint64_t size) : size_(size) {}
  uint64_t size_bytes() const override { return size_; }
  absl::StatusOr<std::unique_ptr<DiskQueue>> NewQueue(uint32_t depth) override {
    return std::make_unique<NullQueue>(depth);
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
