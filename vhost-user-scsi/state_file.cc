#include "vhost-user-scsi/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vhost::scsi {
namespace {

constexpr uint64_t kMagic = 0x3154535250534856;  // "VHSPRST1"
constexpr size_t kSlotSize = 64 * 1024;

struct SlotHeader {
  uint64_t magic;
  uint64_t sequence;
  uint32_t length;
  uint32_t checksum;  // FNV-1a of the state bytes
};
static_assert(sizeof(SlotHeader) + StateFile::kMaxState <= kSlotSize);

uint32_t Checksum(const uint8_t* data, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) h = (h ^ data[i]) * 16777619u;
  return h;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StateFile>> StateFile::Open(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return absl::InvalidArgumentError(absl::StrCat(path, ": ", strerror(errno)));
  return std::make_unique<StateFile>(std::move(fd));
}

absl::StatusOr<std::vector<uint8_t>> StateFile::Load() {
  std::vector<uint8_t> best;
  latest_slot_ = -1;
  sequence_ = 0;
  std::vector<uint8_t> slot(kSlotSize);
  for (int i = 0; i < 2; ++i) {
    const ssize_t n = pread(fd_.get(), slot.data(), slot.size(), i * kSlotSize);
    if (n < static_cast<ssize_t>(sizeof(SlotHeader))) continue;
    SlotHeader header;
    std::memcpy(&header, slot.data(), sizeof(header));
    // The file is not trusted: a slot counts only if whole and intact.
    if (header.magic != kMagic || header.length > kMaxState ||
        sizeof(header) + header.length > static_cast<size_t>(n) ||
        Checksum(slot.data() + sizeof(header), header.length) != header.checksum) {
      continue;
    }
    if (latest_slot_ >= 0 && header.sequence <= sequence_) continue;
    latest_slot_ = i;
    sequence_ = header.sequence;
    best.assign(slot.data() + sizeof(header), slot.data() + sizeof(header) + header.length);
  }
  return best;
}

absl::Status StateFile::Save(absl::Span<const uint8_t> bytes) {
  if (bytes.size() > kMaxState) {
    return absl::ResourceExhaustedError("reservation state larger than its slot");
  }
  std::vector<uint8_t> slot(sizeof(SlotHeader) + bytes.size());
  SlotHeader header{kMagic, sequence_ + 1, static_cast<uint32_t>(bytes.size()),
                    Checksum(bytes.data(), bytes.size())};
  std::memcpy(slot.data(), &header, sizeof(header));
  if (!bytes.empty()) std::memcpy(slot.data() + sizeof(header), bytes.data(), bytes.size());
  const int target = latest_slot_ == 0 ? 1 : 0;
  if (pwrite(fd_.get(), slot.data(), slot.size(), target * kSlotSize) !=
          static_cast<ssize_t>(slot.size()) ||
      fdatasync(fd_.get()) != 0) {
    return absl::ErrnoToStatus(errno, "saving the reservation state");
  }
  latest_slot_ = target;
  sequence_ = header.sequence;
  return absl::OkStatus();
}

}  // namespace vhost::scsi
