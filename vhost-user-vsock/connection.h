// One virtio-vsock connection between a guest socket and a host Unix socket: its state (who
// opened it, whether the guest accepted, who shut down what), its credit both ways (Credit),
// the guest's bytes the host socket has not taken yet, and what to send the guest next (the
// headers, with their credit fields, and the host's data).
//
// The device decides when: it hands a connection the guest's packets and the host socket's
// epoll events, asks it for host data when rx buffers and credit allow, and acts on the
// Outcome (close the connection, with or without a RST to the guest; wake the rx worker). Not
// thread-safe: the device calls it under its lock.
#ifndef VHOST_USER_VSOCK_CONNECTION_H_
#define VHOST_USER_VSOCK_CONNECTION_H_

#include <cstdint>
#include <deque>
#include <string>
#include <tuple>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/virtio/descriptor_chain.h"
#include "vhost-user-vsock/credit.h"
#include "vhost-user-vsock/vsock_packet.h"

namespace vhost {

class Connection {
 public:
  using Key = std::tuple<uint32_t, uint64_t, uint32_t>;  // guest port, peer cid, peer port
  // Seqpacket messages from the guest the host program has not taken (empty ones cost no
  // credit, so credit alone does not bound them).
  static constexpr size_t kMaxPendingMessages = 4096;
  static constexpr size_t kMaxHostMessage = Credit::kBufAlloc;  // seqpacket, host -> guest

  // What the device does after a call.
  struct Outcome {
    bool close = false;    // forget the connection (its host socket closes)
    bool rst = false;      // and tell the guest with a RST
    bool wake = false;     // the rx worker has something new to send
    const char* why = "";  // for the log, when closing
  };

  // `connected`: false for a host program's connection the guest has not accepted yet.
  Connection(uint64_t id, uint64_t guest_cid, uint32_t guest_port, uint32_t host_port,
             uint16_t type, UniqueFd fd, bool connected);

  uint64_t id() const { return id_; }
  Key key() const { return Key{guest_port_, kHostCid, host_port_}; }
  uint32_t guest_port() const { return guest_port_; }
  uint32_t host_port() const { return host_port_; }
  uint16_t type() const { return type_; }
  int fd() const { return fd_.get(); }
  bool connected() const { return connected_; }
  const Credit& credit() const { return credit_; }

  // ---- packets from the guest
  // The credit fields every guest packet carries; true if they reopen credit that was used up.
  bool PeerAdvertised(uint32_t buf_alloc, uint32_t fwd_cnt);
  // The guest accepted a host program's connection: the program reads "OK <host port>\n".
  Outcome Accepted();
  // RW: `len` payload bytes of `chain` (the caller checked the chain carries them).
  Outcome TakePayload(const DescriptorChain& chain, uint32_t len, uint32_t flags);
  // SHUTDOWN with VIRTIO_VSOCK_SHUTDOWN_* `flags`.
  Outcome Shutdown(uint32_t flags);
  // CREDIT_REQUEST.
  void CreditRequested() { credit_update_due_ = true; }

  // ---- the host socket
  // The socket's epoll events (edge-triggered).
  Outcome HostEvent(uint32_t events);
  // Writes what the guest sent and the host socket has not taken; half-closes or closes the
  // socket once the guest's shutdown allows.
  Outcome Flush();
  // Whether guest data waits for the host socket to take it: only then is the socket watched
  // for EPOLLOUT (a watch always on would wake the rx worker each time the host program reads).
  bool WantsWritable() const { return PendingBytes() > 0 || !pending_messages_.empty(); }
  // Whether the socket is watched for EPOLLOUT now (kept by the host muxer).
  bool writable_watched() const { return writable_watched_; }
  void set_writable_watched(bool on) { writable_watched_ = on; }

  // ---- to the guest
  // A header from our side of the connection with `op`, carrying our credit (now reported).
  virtio_vsock_hdr Header(uint16_t op, uint32_t flags = 0);
  // A CREDIT_UPDATE is due (one at a time, with the counters of when it goes out).
  bool credit_update_due() const { return credit_update_due_; }
  // The CREDIT_UPDATE that was due.
  virtio_vsock_hdr CreditUpdate();
  // Whether host data may go to the guest now: accepted, the guest still reads, data or an
  // unread edge, and credit.
  bool HasDataForGuest() const;
  // Whether ReadHost reads the socket straight into several rx buffers (a stream, nothing
  // held back): the device may then give it many buffers at once.
  bool ReadsInBatches() const { return type_ == VIRTIO_VSOCK_TYPE_STREAM && prefix_.empty(); }
  uint32_t PeerCredit() const { return credit_.PeerCredit(); }

  enum class ReadStatus {
    kData,      // `bytes` bytes (with `flags`) are in the buffers
    kNone,      // nothing now: wait for the socket's next edge
    kEof,       // the host program sends no more: send the guest EofHeader()
    kFailed,    // the socket failed: reset
    kTooLarge,  // a seqpacket message over kMaxHostMessage: reset
  };
  struct HostData {
    ReadStatus status;
    uint32_t bytes = 0;
    uint32_t flags = 0;
  };
  // Reads host data for the guest into `iov` (at most PeerCredit() bytes, which the caller
  // sized it to): what a host program wrote after its CONNECT line first, then the socket (a
  // stream with one readv; a seqpacket message whole, then handed out in pieces).
  HostData ReadHost(const IovecList& iov);
  // The header of `len` data bytes going to the guest (counted as sent); it carries our credit,
  // so a pending CREDIT_UPDATE is no longer due.
  virtio_vsock_hdr DataHeader(uint32_t len, uint32_t flags = 0);
  // The SHUTDOWN to send once the host program sent everything (and, if it hung up, takes no
  // more).
  virtio_vsock_hdr EofHeader();

  // Bytes a host program wrote right after its CONNECT line (read with the line).
  void set_prefix(std::string prefix) { prefix_ = std::move(prefix); }

 private:
  static Outcome Keep() { return Outcome(); }
  static Outcome Reset(const char* why) { return Outcome{true, true, false, why}; }

  const uint64_t id_;
  const uint64_t guest_cid_;
  const uint32_t guest_port_;
  const uint32_t host_port_;
  const uint16_t type_;
  UniqueFd fd_;
  bool connected_;
  Credit credit_;
  // Guest -> host.
  // Stream bytes the host socket has not taken: pending_[pending_at_, end). Taken from the
  // front by moving pending_at_, not by erasing (which would move the rest each time).
  std::string pending_;
  size_t pending_at_ = 0;
  std::string message_;                       // seqpacket: the message being assembled
  std::deque<std::string> pending_messages_;  // seqpacket: complete, not yet sent
  bool guest_shut_send_ = false;
  bool guest_shut_rcv_ = false;
  // Host -> guest.
  std::string prefix_;
  std::vector<uint8_t> host_message_;  // seqpacket: a message read, being sent in pieces
  size_t host_message_sent_ = 0;
  bool host_readable_ = false;  // edge-triggered readiness not yet consumed
  bool host_eof_ = false;
  bool host_hup_ = false;
  bool credit_update_due_ = false;
  bool writable_watched_ = false;
  bool sndbuf_raised_ = false;

  size_t PendingBytes() const { return pending_.size() - pending_at_; }
  // The host socket took `n` pending bytes.
  void PendingWritten(size_t n);
};

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_CONNECTION_H_
