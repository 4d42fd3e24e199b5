// virtio-vsock (virtio 1.2 §5.10) over vhost-user, with the guest's sockets mapped to host Unix
// sockets in the "hybrid vsock" convention of Firecracker and Cloud Hypervisor:
//   - a guest connecting to the host (CID 2) port P reaches the listener at UDS_PATH_P;
//   - a host program connects to UDS_PATH and writes "CONNECT P\n" to reach guest port P; it
//     reads "OK <host port>\n" once the guest accepted (the socket is closed if it refused).
// Guests of sibling VMs in one process reach each other by CID (VsockHub).
//
// Threads: the rx queue's worker does all host socket reads (its context watches the listener
// and every host socket, edge-triggered) and fills the guest's rx buffers; the tx queue's worker
// parses the guest's packets, writes to host sockets and queues replies for the rx worker, which
// it wakes. Both work under mu_. A guest that takes no replies (posts no rx buffers) stops its
// own tx queue: past kMaxQueuedReplies the tx worker waits for the rx worker to deliver some (as
// Linux's vhost-vsock does) and to wake it, so replies never pile up and none is dropped.
#ifndef VHOST_USER_VSOCK_VSOCK_DEVICE_H_
#define VHOST_USER_VSOCK_VSOCK_DEVICE_H_

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/device.h"
#include "common/unique_fd.h"
#include "vhost-user-vsock/credit.h"
#include "vhost-user-vsock/vsock_packet.h"

namespace vhost {

constexpr uint32_t kVirtioIdVsock = 19;
constexpr int kVsockRxQueue = 0;
constexpr int kVsockTxQueue = 1;
constexpr int kVsockEventQueue = 2;

class VsockHub;

class VsockDevice : public VirtioDevice {
 public:
  struct Options {
    uint64_t guest_cid = 3;
    std::string uds_path;  // host side: the listener here, guest-initiated targets UDS_PATH_P
    std::set<std::string> groups = {"default"};  // sibling VMs reachable through the hub
  };
  // Limits that keep a hostile guest or host program from growing the daemon without bound.
  static constexpr size_t kMaxConnections = 4096;
  static constexpr size_t kMaxQueuedPackets = 4096;  // sibling packets
  static constexpr size_t kMaxQueuedReplies = 1024;  // past it the tx queue waits
  // Seqpacket messages from the guest the host program has not taken, per connection (empty
  // ones cost no credit).
  static constexpr size_t kMaxPendingMessages = 4096;
  static constexpr size_t kMaxQueuedBytes = 8 << 20;    // sibling payload waiting for rx buffers
  static constexpr uint32_t kFirstHostPort = 1u << 30;  // ports given to host-initiated sockets

  // Binds the listener at options.uds_path (InvalidArgument naming --uds-path on failure).
  static absl::StatusOr<std::unique_ptr<VsockDevice>> Create(Options options,
                                                             VsockHub* hub = nullptr);
  ~VsockDevice() override;

  DeviceInfo Info() const override;
  absl::Status SetFeatures(uint64_t features) override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  absl::Status QueueStarted(QueueContext& context) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  void QueueStopped(QueueContext& context) override;
  void Reset() override;

  uint64_t guest_cid() const { return options_.guest_cid; }
  const std::set<std::string>& groups() const { return options_.groups; }
  // A packet from a sibling VM's guest for ours; false if too much is queued already.
  bool DeliverFromSibling(VsockPacket packet);
  // Open connections, and packets (replies and sibling packets) waiting for rx buffers (for
  // tests).
  size_t connection_count();
  size_t queued_packet_count();

 private:
  struct Connection;
  using Key = std::tuple<uint32_t, uint64_t, uint32_t>;  // guest port, peer cid, peer port
  // A packet for the guest: a reply of ours, or a sibling's packet.
  struct Outgoing {
    VsockPacket packet;
    bool reply = false;
  };
  // A host program that connected to uds_path and has not finished its CONNECT line.
  struct Greeting {
    UniqueFd fd;
    std::string line;
  };

  VsockDevice(Options options, VsockHub* hub, UniqueFd listener);

  // tx worker
  // Whether too many replies wait for the guest to take them: then the tx queue waits too.
  bool TxMustWait();
  void HandleGuestPacket(const DescriptorChain& chain);
  void HandleHostBound(const virtio_vsock_hdr& h, const DescriptorChain& chain);
  void ConnectToHost(const virtio_vsock_hdr& h);
  void TakePayload(Connection& c, const DescriptorChain& chain, uint32_t len, uint32_t flags);
  void ForwardToSibling(const virtio_vsock_hdr& h, const DescriptorChain& chain);

  // rx worker
  // Handles what the rx context's watches reported (host_events_).
  void HandleHostEvents();
  void AcceptHostConnections();
  void ReadGreeting(uint64_t id);
  bool SendQueued(QueueContext& rx);
  bool SendCreditUpdates(QueueContext& rx);
  bool SendHostData(QueueContext& rx);
  // Fills one rx buffer from the host socket of `c`; returns false when it cannot (no data,
  // no credit, no buffer).
  bool SendFromHost(QueueContext& rx, Connection& c);
  // The same for a stream socket, filling up to 16 rx buffers with one readv.
  bool SendStreamBatch(QueueContext& rx, Connection& c);
  void DeliverEvents(QueueContext& event);

  // Either worker, under mu_.
  // Queues a reply (a header without payload). Never dropped: the tx queue waiting bounds them.
  void Queue(const virtio_vsock_hdr& h);
  void QueueFor(Connection& c, uint16_t op, uint32_t flags = 0);
  void Flush(Connection& c);  // pending guest data to the host socket
  // `why` goes to the log (-v=1).
  void Close(Connection& c, bool rst, const char* why);
  Connection* Find(const virtio_vsock_hdr& h);
  // Watches a host socket (or greeting) `id` on the rx queue's context, if it serves; false if
  // that failed. When it does not serve, QueueStarted watches every socket.
  bool WatchHost(int fd, uint64_t id);
  void UnwatchHost(int fd);
  void DropGreeting(uint64_t id);
  // Runs the rx worker soon.
  void Wake();
  uint32_t AllocateHostPort();

  const Options options_;
  VsockHub* const hub_;
  UniqueFd listener_;
  bool seqpacket_ = false;

  // What the rx context's watches reported, (id, epoll events), for ProcessQueue to handle
  // under mu_. The rx serving thread only; its capacity is kept (no allocation per event).
  std::vector<std::pair<uint64_t, uint32_t>> host_events_;

  std::mutex mu_;
  // The contexts of the rx and tx queues while they serve: the tx worker registers the host
  // sockets it connects on the rx context and wakes it; the rx worker wakes the tx queue.
  QueueContext* rx_ = nullptr;
  QueueContext* tx_ = nullptr;
  std::map<Key, std::unique_ptr<Connection>> connections_;
  std::map<uint64_t, Connection*> by_id_;  // epoll data -> connection
  std::map<uint64_t, Greeting> greetings_;
  std::deque<Outgoing> queued_;  // replies, and packets from siblings, for the guest
  size_t queued_bytes_ = 0;
  // Changed under mu_; read without it by the tx worker's fast path.
  std::atomic<size_t> queued_replies_{0};
  bool tx_waiting_ = false;  // the tx queue stopped for kMaxQueuedReplies
  uint64_t next_id_ = 2;     // 1 is the listener's id in host_events_
  uint32_t next_host_port_ = kFirstHostPort;
  bool reset_event_sent_ = false;
};

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_VSOCK_DEVICE_H_
