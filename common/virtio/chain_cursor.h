// Cursors over a descriptor chain: a ChainReader walks the driver-readable part and a
// ChainWriter the device-writable part, with typed reads and writes instead of offset
// arithmetic. Every access is bounds-checked against the chain, and a typed read copies the
// guest's bytes once into the caller's object (the guest may change them meanwhile; the copy
// is what gets validated and used). No allocation and no system call; the common case (the
// value lies in one segment) is inline.
#ifndef COMMON_VIRTIO_CHAIN_CURSOR_H_
#define COMMON_VIRTIO_CHAIN_CURSOR_H_

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "absl/types/span.h"
#include "common/virtio/descriptor_chain.h"
#include "common/virtio/guest_memory.h"

namespace vhost {

// The position shared by both cursors: segment index, offset in it, bytes consumed.
class SegmentCursor {
 public:
  uint64_t position() const { return position_; }
  uint64_t remaining() const { return total_ - position_; }
  uint64_t size() const { return total_; }

  // Moves forward `n` bytes; false (and no move) if fewer remain.
  bool Skip(uint64_t n) {
    if (n > remaining()) return false;
    Advance(n);
    return true;
  }

  // Appends to `out` the segments covering the next `n` bytes and moves past them (for
  // handing guest buffers to readv/writev or io_uring without a copy); false (and no move)
  // if fewer remain.
  bool Slice(uint64_t n, IovecList* out);

 protected:
  SegmentCursor(const IovecList& segments, uint64_t total) : segments_(&segments), total_(total) {
    Normalize();
  }
  static uint64_t TotalBytes(const IovecList& segments);

  // Pointer to `n` contiguous bytes at the cursor, or null when they span segments. The
  // caller has checked n <= remaining().
  uint8_t* Contiguous(size_t n) const {
    const iovec& seg = (*segments_)[index_];
    if (seg.iov_len - offset_ < n) return nullptr;
    return static_cast<uint8_t*>(seg.iov_base) + offset_;
  }
  void Bump(size_t n) {  // after Contiguous(n) succeeded
    offset_ += n;
    position_ += n;
    // A value that fills its segment exactly (blk's and FUSE's headers) moves to the next.
    if (offset_ == (*segments_)[index_].iov_len) Normalize();
  }
  // Copies `n` bytes (n <= remaining()) between the guest and `buf`, moving forward.
  void CopyOut(void* buf, size_t n);
  void CopyIn(const void* buf, size_t n);
  void Advance(uint64_t n);

  const IovecList* segments_;
  size_t index_ = 0;   // current segment; offset_ < its length unless remaining() == 0
  size_t offset_ = 0;  // within segments_[index_]
  uint64_t position_ = 0;
  uint64_t total_;

 private:
  // Skips exhausted (and empty) segments.
  void Normalize() {
    while (index_ < segments_->size() && offset_ >= (*segments_)[index_].iov_len) {
      offset_ -= (*segments_)[index_].iov_len;
      ++index_;
    }
  }
};

class ChainReader : public SegmentCursor {
 public:
  explicit ChainReader(const DescriptorChain& chain)
      : SegmentCursor(chain.readable, chain.readable_bytes) {}
  explicit ChainReader(const IovecList& segments) : SegmentCursor(segments, TotalBytes(segments)) {}

  // Copies the next sizeof(T) bytes into *out; false (nothing read, no move) if fewer remain.
  template <typename T>
  bool Read(T* out) {
    static_assert(std::is_trivially_copyable_v<T>, "Read<T> copies raw bytes");
    if (sizeof(T) > remaining()) return false;
    if (const uint8_t* p = Contiguous(sizeof(T))) {
      std::memcpy(out, p, sizeof(T));
      Bump(sizeof(T));
    } else {
      CopyOut(out, sizeof(T));
    }
    return true;
  }
  // Fills `out` from the next out.size() bytes; false (nothing read, no move) if fewer remain.
  bool ReadBytes(absl::Span<uint8_t> out) { return ReadBytes(out.data(), out.size()); }
  bool ReadBytes(void* out, size_t n) {
    if (n > remaining()) return false;
    CopyOut(out, n);
    return true;
  }
};

class ChainWriter : public SegmentCursor {
 public:
  explicit ChainWriter(const DescriptorChain& chain)
      : SegmentCursor(chain.writable, chain.writable_bytes) {}
  explicit ChainWriter(const IovecList& segments) : SegmentCursor(segments, TotalBytes(segments)) {}

  // Writes `value` at the cursor; false (nothing written, no move) if it does not fit.
  template <typename T>
  bool Write(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>, "Write<T> copies raw bytes");
    if (sizeof(T) > remaining()) return false;
    if (uint8_t* p = Contiguous(sizeof(T))) {
      std::memcpy(p, &value, sizeof(T));
      Bump(sizeof(T));
    } else {
      CopyIn(&value, sizeof(T));
    }
    Mark(position_);
    return true;
  }
  bool WriteBytes(absl::Span<const uint8_t> data) { return WriteBytes(data.data(), data.size()); }
  bool WriteBytes(const void* data, size_t n) {
    if (n > remaining()) return false;
    CopyIn(data, n);
    Mark(position_);
    return true;
  }
  // Writes `value` at `offset` from the start of the writable part without moving the cursor
  // (e.g. a status byte after the data); false if it does not fit.
  template <typename T>
  bool WriteAt(uint64_t offset, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>, "WriteAt<T> copies raw bytes");
    if (offset > total_ || sizeof(T) > total_ - offset) return false;
    CopyToSegments(*segments_, offset, &value, sizeof(T));
    Mark(offset + sizeof(T));
    return true;
  }
  // Marks bytes up to `end` as written by someone else (e.g. readv into a Slice()).
  void Mark(uint64_t end) {
    if (end > written_ && end <= total_) written_ = end;
  }
  // The end of the furthest byte written: what the device reports as used.len.
  uint32_t bytes_written() const { return static_cast<uint32_t>(written_); }

 private:
  uint64_t written_ = 0;
};

}  // namespace vhost

#endif  // COMMON_VIRTIO_CHAIN_CURSOR_H_
