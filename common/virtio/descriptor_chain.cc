#include "common/virtio/descriptor_chain.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vhost {

absl::Status DescriptorChain::AddBuffer(const GuestMemory& memory, uint64_t gpa, uint32_t len,
                                        bool is_writable) {
  if (!is_writable && !writable.empty()) {
    return absl::InvalidArgumentError("readable descriptor after a writable one");
  }
  uint64_t& total = is_writable ? writable_bytes : readable_bytes;
  if (total + len > kMaxChainBytes) return absl::InvalidArgumentError("chain too long in bytes");
  if (len == 0) return absl::OkStatus();
  IovecList& list = is_writable ? writable : readable;
  const size_t room = kMaxChainSegments - (readable.size() + writable.size()) + list.size();
  if (!memory.AppendSegments(gpa, len, room, &list)) {
    return absl::InvalidArgumentError(
        absl::StrCat("buffer at gpa 0x", absl::Hex(gpa), " len ", len, " is outside guest memory"));
  }
  total += len;
  return absl::OkStatus();
}

namespace {

// Calls fn(segment_pointer, bytes_done, n) for each piece of [offset, offset + len) of the
// segments, in order; returns the bytes covered (less than len if the segments end first).
template <typename Fn>
size_t ForEachPiece(const IovecList& segments, size_t offset, size_t len, Fn fn) {
  size_t done = 0;
  for (const iovec& seg : segments) {
    if (done == len) break;
    if (offset >= seg.iov_len) {
      offset -= seg.iov_len;
      continue;
    }
    const size_t n = std::min(seg.iov_len - offset, len - done);
    fn(static_cast<uint8_t*>(seg.iov_base) + offset, done, n);
    done += n;
    offset = 0;
  }
  return done;
}

}  // namespace

void SliceSegments(const IovecList& segments, size_t offset, size_t len, IovecList* out) {
  ForEachPiece(segments, offset, len, [&](uint8_t* seg, size_t, size_t n) {
    out->push_back({seg, n});
  });
}

size_t CopyFromSegments(const IovecList& segments, size_t offset, void* dst, size_t len) {
  auto* out = static_cast<uint8_t*>(dst);
  return ForEachPiece(segments, offset, len, [&](uint8_t* seg, size_t done, size_t n) {
    std::memcpy(out + done, seg, n);
  });
}

size_t CopyToSegments(const IovecList& segments, size_t offset, const void* src, size_t len) {
  const auto* in = static_cast<const uint8_t*>(src);
  return ForEachPiece(segments, offset, len,
                      [&](uint8_t* seg, size_t done, size_t n) { std::memcpy(seg, in + done, n); });
}

}  // namespace vhost
