#include "common/virtio/chain_cursor.h"

#include <algorithm>

namespace vhost {

uint64_t SegmentCursor::TotalBytes(const IovecList& segments) {
  uint64_t total = 0;
  for (const iovec& seg : segments) total += seg.iov_len;
  return total;
}

void SegmentCursor::Advance(uint64_t n) {
  offset_ += n;  // n <= remaining(), so this cannot wrap
  position_ += n;
  Normalize();
}

bool SegmentCursor::Slice(uint64_t n, IovecList* out) {
  if (n > remaining()) return false;
  while (n > 0) {
    const iovec& seg = (*segments_)[index_];
    const size_t take = std::min<uint64_t>(seg.iov_len - offset_, n);
    out->push_back({static_cast<uint8_t*>(seg.iov_base) + offset_, take});
    Advance(take);
    n -= take;
  }
  return true;
}

void SegmentCursor::CopyOut(void* buf, size_t n) {
  auto* dst = static_cast<uint8_t*>(buf);
  while (n > 0) {
    const iovec& seg = (*segments_)[index_];
    const size_t take = std::min(seg.iov_len - offset_, n);
    std::memcpy(dst, static_cast<const uint8_t*>(seg.iov_base) + offset_, take);
    dst += take;
    n -= take;
    Advance(take);
  }
}

void SegmentCursor::CopyIn(const void* buf, size_t n) {
  const auto* src = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    const iovec& seg = (*segments_)[index_];
    const size_t take = std::min(seg.iov_len - offset_, n);
    std::memcpy(static_cast<uint8_t*>(seg.iov_base) + offset_, src, take);
    src += take;
    n -= take;
    Advance(take);
  }
}

}  // namespace vhost
