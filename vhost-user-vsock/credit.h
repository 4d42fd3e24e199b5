// Credit-based flow control of one virtio-vsock connection (virtio 1.2 §5.10.6.3), both ways.
//
// Guest -> host: we advertise `kBufAlloc` bytes of buffer; `fwd_cnt` counts the bytes that left
// it (written to the host socket). The guest may have at most kBufAlloc - (received - fwd_cnt)
// bytes in flight, so what we buffer for a slow host socket stays below kBufAlloc.
// Host -> guest: the guest advertises buf_alloc and fwd_cnt in every header; we send only
// while peer_buf_alloc - (sent - peer_fwd_cnt) is positive.
#ifndef VHOST_USER_VSOCK_CREDIT_H_
#define VHOST_USER_VSOCK_CREDIT_H_

#include <cstdint>

namespace vhost {

class Credit {
 public:
  static constexpr uint32_t kBufAlloc = 256 * 1024;

  // ---- guest -> host
  // Bytes arrived from the guest; false (and nothing counted) if they overrun the credit it was
  // given. In 64 bits: a claim near 2^32 must not wrap around to look small.
  bool Received(uint32_t bytes) {
    if (uint64_t{Buffered()} + bytes > kBufAlloc) return false;
    received_ += bytes;
    return true;
  }
  // Bytes forwarded to the host socket (our buffer freed).
  void Forwarded(uint32_t bytes) { fwd_cnt_ += bytes; }
  uint32_t Buffered() const { return received_ - fwd_cnt_; }
  uint32_t fwd_cnt() const { return fwd_cnt_; }
  // Whether to tell the guest about freed buffer: when its view of our free space (from the last
  // fwd_cnt it was told) is under half the buffer and a quarter has been freed since, or when
  // everything is forwarded and its view is below half (a sender waiting for credit must not
  // wait for the quarter). Not after every packet: the guest would get one update per write.
  bool UpdateDue() const {
    const uint32_t unreported = fwd_cnt_ - reported_fwd_cnt_;
    if (unreported == 0) return false;
    const uint32_t guest_view_free = kBufAlloc - (received_ - reported_fwd_cnt_);
    if (guest_view_free >= kBufAlloc / 2) return false;
    return unreported >= kBufAlloc / 4 || Buffered() == 0;
  }
  void Reported() { reported_fwd_cnt_ = fwd_cnt_; }

  // ---- host -> guest
  void PeerAdvertised(uint32_t buf_alloc, uint32_t fwd_cnt) {
    peer_buf_alloc_ = buf_alloc;
    peer_fwd_cnt_ = fwd_cnt;
  }
  // How much more the guest can take now.
  uint32_t PeerCredit() const {
    const uint32_t in_flight = sent_ - peer_fwd_cnt_;
    return in_flight >= peer_buf_alloc_ ? 0 : peer_buf_alloc_ - in_flight;
  }
  void Sent(uint32_t bytes) { sent_ += bytes; }

 private:
  uint32_t received_ = 0;
  uint32_t fwd_cnt_ = 0;
  uint32_t reported_fwd_cnt_ = 0;
  uint32_t peer_buf_alloc_ = 0;
  uint32_t peer_fwd_cnt_ = 0;
  uint32_t sent_ = 0;
};

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_CREDIT_H_
