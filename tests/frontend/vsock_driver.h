// A guest-side virtio-vsock stack on top of our front end, for tests and benchmarks of
// vhost-user-vsock: rx buffers kept full, packets sent and received, and a minimal socket layer
// (connect, listen, write with the peer's credit, read, shutdown, reset) that plays the guest.
//
// Single-threaded: nothing happens between calls; calls that wait pump the rx queue.
#ifndef TESTS_FRONTEND_VSOCK_DRIVER_H_
#define TESTS_FRONTEND_VSOCK_DRIVER_H_

#include <linux/virtio_vsock.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"

namespace vhost::frontend {

struct VsockStream {
  uint32_t local_port = 0;
  uint64_t peer_cid = 0;
  uint32_t peer_port = 0;
  uint16_t type = VIRTIO_VSOCK_TYPE_STREAM;
  bool connected = false;
  bool reset = false;                 // RST received
  bool peer_shut_send = false;        // the peer will send no more
  std::string data;                   // received, not yet read
  std::vector<std::string> messages;  // seqpacket: complete messages received
  std::string partial;                // seqpacket: message being received
  // Credit: what we sent, and what the peer told us.
  uint32_t tx_cnt = 0, peer_buf_alloc = 0, peer_fwd_cnt = 0;
  // What we received (consumed at once: fwd_cnt), and what we last told the peer.
  uint32_t fwd_cnt = 0, reported_fwd_cnt = 0;
};

class VsockDriver {
 public:
  static constexpr uint32_t kBufAlloc = 256 * 1024;
  static constexpr uint32_t kRxBufferSize = 4096;  // payload bytes per rx buffer, as Linux

  struct Options {
    uint64_t guest_cid = 3;
    bool seqpacket = true;
    bool event_idx = true;
    uint32_t rx_buffers = 128;
  };
  static absl::StatusOr<std::unique_ptr<VsockDriver>> Start(const std::string& socket,
                                                            const Options& options);

  // ---- packets
  absl::Status Send(const virtio_vsock_hdr& header, const void* payload = nullptr, size_t len = 0,
                    uint32_t header_len = sizeof(virtio_vsock_hdr));
  // Sends `header` on a chain carrying `carried` payload bytes (up to 2^32 - 1 - header) whose
  // descriptors all alias guest memory from gpa 0: how a hostile guest claims a huge packet
  // without the memory for it.
  absl::Status SendAliased(const virtio_vsock_hdr& header, uint64_t carried);
  // The next packet from the device (its buffer goes back to the ring).
  absl::StatusOr<std::pair<virtio_vsock_hdr, std::string>> Receive(absl::Duration timeout);
  // Handles one incoming packet for the socket layer; false on timeout.
  bool Pump(absl::Duration timeout);
  // Handles every packet the device has already delivered, without waiting (credit updates for
  // a guest writing to many streams at once); returns how many.
  absl::StatusOr<int> PumpPending();
  // Stops refilling rx buffers (a guest that never returns them) or resumes.
  void set_refill(bool refill) { refill_ = refill; }
  absl::Status RefillRx();
  // TRANSPORT_RESET events received.
  int reset_events() const { return reset_events_; }
  absl::Status PollEvents();

  // ---- sockets
  absl::StatusOr<VsockStream*> Connect(uint64_t cid, uint32_t port,
                                       uint16_t type = VIRTIO_VSOCK_TYPE_STREAM,
                                       absl::Duration timeout = absl::Seconds(10));
  void Listen(uint32_t port) { listening_.insert(port); }
  // A connection accepted on a listening port (pumps until one arrives).
  absl::StatusOr<VsockStream*> Accept(uint32_t port, absl::Duration timeout = absl::Seconds(10));
  // Sends all of `data` within the peer's credit (pumping for credit updates). Seqpacket: one
  // message (EOM on its last packet).
  absl::Status Write(VsockStream* s, const std::string& data,
                     absl::Duration timeout = absl::Seconds(10), size_t packet = 65536);
  // Stream only: sends as much of `data` as the peer's credit allows now, without waiting or
  // pumping, and returns the bytes sent (0 with no credit: PumpPending or Pump, then again).
  absl::StatusOr<size_t> WriteSome(VsockStream* s, const char* data, size_t len,
                                   size_t packet = 65536);
  // Reads exactly `n` bytes (fewer if the peer shuts down).
  absl::StatusOr<std::string> Read(VsockStream* s, size_t n,
                                   absl::Duration timeout = absl::Seconds(10));
  absl::StatusOr<std::string> ReadMessage(VsockStream* s,
                                          absl::Duration timeout = absl::Seconds(10));
  absl::Status Shutdown(VsockStream* s, uint32_t flags);
  absl::Status Reset(VsockStream* s);
  // Waits until the peer shuts down sending or resets.
  bool WaitForPeerClose(VsockStream* s, absl::Duration timeout = absl::Seconds(10));

  uint64_t guest_cid() const { return options_.guest_cid; }
  Frontend& frontend() { return *frontend_; }

 private:
  using Key = std::tuple<uint32_t, uint64_t, uint32_t>;
  explicit VsockDriver(const Options& options) : options_(options) {}
  virtio_vsock_hdr HeaderFor(VsockStream* s, uint16_t op);
  // What the peer can take now: its buffer less what we sent that it has not forwarded.
  static uint32_t CreditFor(const VsockStream* s);
  // Takes the rx buffer `used` names back (to the ring if refilling) and returns its packet.
  // Hands the packet of `used` to `handle` while its buffer is still ours (no copy), then gives
  // the buffer back.
  template <typename Handler>
  absl::Status TakeRx(const UsedElement& used, Handler handle);
  // Posts the free rx buffers once half of them are free, as Linux's driver refills.
  absl::Status MaybeRefillRx();
  absl::Status MaybeCreditUpdate(VsockStream* s);
  void Dispatch(const virtio_vsock_hdr& h, absl::string_view payload);

  Options options_;
  std::unique_ptr<DeviceConnection> device_;
  Frontend* frontend_;  // device_'s
  GuestRam* ram_;
  FrontendQueue *rx_, *tx_, *event_;
  // By descriptor id (the rx ring's size): the posted buffer, its guest address.
  std::vector<uint8_t*> rx_buffers_;
  std::vector<uint64_t> rx_gpa_;
  std::vector<std::pair<uint64_t, uint8_t*>> free_rx_;   // gpa, host pointer
  std::vector<std::pair<uint64_t, uint8_t*>> tx_slots_;  // header+payload areas
  size_t next_tx_ = 0;
  bool refill_ = true;
  int reset_events_ = 0;
  std::map<Key, std::unique_ptr<VsockStream>> streams_;
  std::set<uint32_t> listening_;
  std::vector<VsockStream*> accepted_;
  uint32_t next_port_ = 50000;
};

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_VSOCK_DRIVER_H_
