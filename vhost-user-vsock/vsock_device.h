// virtio-vsock (virtio 1.2 §5.10) over vhost-user, with the guest's sockets mapped to host Unix
// sockets in the "hybrid vsock" convention of Firecracker and Cloud Hypervisor:
//   - a guest connecting to the host (CID 2) port P reaches the listener at UDS_PATH_P;
//   - a host program connects to UDS_PATH and writes "CONNECT P\n" to reach guest port P; it
//     reads "OK <host port>\n" once the guest accepted (the socket is closed if it refused).
// Guests of sibling VMs in one process reach each other by CID (VsockHub).
//
// The device moves packets between the queues and the rest: the packet codec (vsock_packet.h),
// the connections with their credit (connection.h) and the host side (host_muxer.h).
//
// Threads: one thread serves the three queues (DeviceInfo::one_worker), as Linux's vhost-vsock
// does: the tx queue's turn parses the guest's packets, writes to host sockets and queues
// replies; the rx queue's turn does all host socket reads (its context watches the listener and
// every host socket, edge-triggered) and fills the guest's rx buffers. A reply wakes the rx
// queue with a flag (QueueContext::Wake on the serving thread), so it goes out in the same
// round, without a second thread or an eventfd. mu_ still guards the state, for the hub's
// sibling devices (other threads) and for a queue being stopped. A guest that takes no replies
// (posts no rx buffers) stops its own tx queue: past kMaxQueuedReplies the tx queue waits for
// the rx queue to deliver some (as Linux's vhost-vsock does) and to wake it, so replies never
// pile up and none is dropped.
#ifndef VHOST_USER_VSOCK_VSOCK_DEVICE_H_
#define VHOST_USER_VSOCK_VSOCK_DEVICE_H_

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/device/device.h"
#include "vhost-user-vsock/connection.h"
#include "vhost-user-vsock/host_muxer.h"
#include "vhost-user-vsock/vsock_packet.h"

namespace vhost {

constexpr uint32_t kVirtioIdVsock = 19;
constexpr int kVsockRxQueue = 0;
constexpr int kVsockTxQueue = 1;
constexpr int kVsockEventQueue = 2;

class VsockHub;

class VsockDevice : public VirtioDevice, private HostMuxer::Delegate {
 public:
  struct Options {
    uint64_t guest_cid = 3;
    std::string uds_path;  // host side: the listener here, guest-initiated targets UDS_PATH_P
    std::set<std::string> groups = {"default"};  // sibling VMs reachable through the hub
  };
  // Limits that keep a hostile guest or host program from growing the daemon without bound.
  static constexpr size_t kMaxConnections = HostMuxer::kMaxConnections;
  static constexpr size_t kMaxQueuedPackets = 4096;  // sibling packets
  static constexpr size_t kMaxQueuedReplies = 1024;  // past it the tx queue waits
  static constexpr size_t kMaxPendingMessages = Connection::kMaxPendingMessages;
  static constexpr size_t kMaxQueuedBytes = 8 << 20;  // sibling payload waiting for rx buffers
  static constexpr uint32_t kFirstHostPort = HostMuxer::kFirstHostPort;

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
  // A packet for the guest: a reply of ours, or a sibling's packet.
  struct Outgoing {
    VsockPacket packet;
    bool reply = false;
  };

  VsockDevice(Options options, VsockHub* hub, std::unique_ptr<HostMuxer> host);

  // tx worker
  // Whether too many replies wait for the guest to take them: then the tx queue waits too.
  bool TxMustWait();
  void HandleGuestPacket(const DescriptorChain& chain);
  void HandleHostBound(const virtio_vsock_hdr& h, const DescriptorChain& chain);
  void ForwardToSibling(const virtio_vsock_hdr& h, const DescriptorChain& chain);

  // rx worker
  void HostConnected(Connection& c) override;
  void HostEvent(Connection& c, uint32_t events) override;
  bool SendQueued(QueueContext& rx);
  bool SendCreditUpdates(QueueContext& rx);
  bool SendHostData(QueueContext& rx);
  // Fills one rx buffer from the host socket of `c`; returns false when it cannot (no data,
  // no credit, no buffer).
  bool SendFromHost(QueueContext& rx, Connection& c);
  // The same for a stream socket, filling up to 64 rx buffers with one readv.
  bool SendStreamBatch(QueueContext& rx, Connection& c);
  // What a read that brought no data means for `c`.
  void HostReadEnded(Connection& c, Connection::ReadStatus status);
  void DeliverEvents(QueueContext& event);

  // Either worker, under mu_.
  // Queues a reply (a header without payload). Never dropped: the tx queue waiting bounds them.
  void Queue(const virtio_vsock_hdr& h);
  // Acts on what a connection said: closes it (`c` is gone then) or wakes the rx worker.
  void Apply(Connection& c, const Connection::Outcome& outcome);
  // `why` goes to the log (-v=1).
  void Close(Connection& c, bool rst, const char* why);
  Connection* Find(const virtio_vsock_hdr& h);
  // Runs the rx queue's turn soon.
  void Wake();

  const Options options_;
  VsockHub* const hub_;
  bool seqpacket_ = false;

  std::mutex mu_;
  const std::unique_ptr<HostMuxer> host_;
  // The contexts of the rx and tx queues while they serve: the tx worker registers the host
  // sockets it connects on the rx context (through host_) and wakes it; the rx worker wakes
  // the tx queue.
  QueueContext* rx_ = nullptr;
  QueueContext* tx_ = nullptr;
  std::deque<Outgoing> queued_;  // replies, and packets from siblings, for the guest
  size_t queued_bytes_ = 0;
  // Changed under mu_; read without it by the tx worker's fast path.
  std::atomic<size_t> queued_replies_{0};
  bool tx_waiting_ = false;  // the tx queue stopped for kMaxQueuedReplies
  bool reset_event_sent_ = false;
  // The rx worker's rx buffer segments for one read: a batch of 16 buffers outgrows the inline
  // storage, and the capacity kept here saves an allocation per batch.
  IovecList rx_iov_;
};

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_VSOCK_DEVICE_H_
