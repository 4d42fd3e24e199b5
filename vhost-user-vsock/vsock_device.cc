#include "vhost-user-vsock/vsock_device.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/chain_cursor.h"
#include "common/message.h"
#include "common/unix_listener.h"
#include "glog/logging.h"
#include "vhost-user-vsock/vsock_hub.h"

namespace vhost {
namespace {

// The listener's id in host_events_; connections and greetings use ids from 2 on.
constexpr uint64_t kListenerId = 1;
// Host sockets are watched edge-triggered: one event per change, not one per wait while data
// waits for credit or rx buffers.
constexpr uint32_t kHostSocketEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr size_t kMaxGreeting = 64;                    // "CONNECT 4294967295\n" and then some
constexpr size_t kMaxHostMessage = Credit::kBufAlloc;  // seqpacket messages from the host

}  // namespace

struct VsockDevice::Connection {
  uint64_t id = 0;
  Key key;
  uint32_t guest_port = 0;
  uint32_t host_port = 0;
  uint16_t type = VIRTIO_VSOCK_TYPE_STREAM;
  bool connected = false;  // false: host-initiated, REQUEST sent, no RESPONSE yet
  UniqueFd fd;
  Credit credit;
  // Guest -> host.
  std::string pending;                       // stream bytes the host socket has not taken
  std::string message;                       // seqpacket: the message being assembled
  std::deque<std::string> pending_messages;  // seqpacket: complete, not yet sent
  bool guest_shut_send = false;
  bool guest_shut_rcv = false;
  // Host -> guest.
  std::string prefix;                 // bytes a host program sent right after its CONNECT line
  std::vector<uint8_t> host_message;  // seqpacket: a message read, being sent in fragments
  size_t host_message_sent = 0;
  bool host_readable = false;  // edge-triggered readiness not yet consumed
  bool host_eof = false;
  bool host_hup = false;
  bool credit_update_due = false;  // a CREDIT_UPDATE to send when an rx buffer is free
};

absl::StatusOr<std::unique_ptr<VsockDevice>> VsockDevice::Create(Options options, VsockHub* hub) {
  absl::StatusOr<UniqueFd> listener = ListenOnUnixSocket(options.uds_path, "--uds-path", 64);
  if (!listener.ok()) return listener.status();
  const int flags = fcntl(listener->get(), F_GETFL);
  fcntl(listener->get(), F_SETFL, flags | O_NONBLOCK);
  return std::unique_ptr<VsockDevice>(
      new VsockDevice(std::move(options), hub, *std::move(listener)));
}

VsockDevice::VsockDevice(Options options, VsockHub* hub, UniqueFd listener)
    : options_(std::move(options)), hub_(hub), listener_(std::move(listener)) {}

VsockDevice::~VsockDevice() = default;

DeviceInfo VsockDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdVsock;
  info.num_queues = 3;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1) | Bit(VIRTIO_VSOCK_F_SEQPACKET);
  info.config_size = sizeof(virtio_vsock_config);
  return info;
}

absl::Status VsockDevice::SetFeatures(uint64_t features) {
  seqpacket_ = features & Bit(VIRTIO_VSOCK_F_SEQPACKET);
  return absl::OkStatus();
}

absl::Status VsockDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  virtio_vsock_config config{};
  config.guest_cid = options_.guest_cid;
  return ReadConfigBytes(config, offset, data);
}

absl::Status VsockDevice::QueueStarted(QueueContext& context) {
  std::lock_guard<std::mutex> lock(mu_);
  if (context.index() == kVsockTxQueue) {
    tx_ = &context;
    return absl::OkStatus();
  }
  if (context.index() != kVsockRxQueue) return absl::OkStatus();
  rx_ = &context;
  host_events_.reserve(64);
  absl::Status status = context.Watch(listener_.get(), EPOLLIN, [this](uint32_t events) {
    host_events_.emplace_back(kListenerId, events);
  });
  if (!status.ok()) return status;
  // Sockets made or kept while the queue did not serve (the tx worker connects on its own, and
  // a stop drops every watch). Adding a socket reports its present state: no edge is lost.
  for (auto it = greetings_.begin(); it != greetings_.end();) {
    const uint64_t id = it->first;
    const int fd = it->second.fd.get();
    ++it;
    if (!WatchHost(fd, id)) greetings_.erase(id);
  }
  for (auto it = connections_.begin(); it != connections_.end();) {
    Connection& c = *it->second;
    ++it;  // Close erases c
    if (!WatchHost(c.fd.get(), c.id)) Close(c, /*rst=*/true, "cannot watch the host socket");
  }
  return absl::OkStatus();
}

void VsockDevice::QueueStopped(QueueContext& context) {
  // Every chain taken is completed within ProcessQueue: nothing is held across calls. The
  // engine drops the rx queue's watches; the sockets stay open.
  std::lock_guard<std::mutex> lock(mu_);
  if (&context == rx_) rx_ = nullptr;
  if (&context == tx_) tx_ = nullptr;
}

size_t VsockDevice::connection_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_.size();
}

size_t VsockDevice::queued_packet_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_.size();
}

void VsockDevice::Wake() {
  if (rx_ != nullptr) rx_->Wake();
}

bool VsockDevice::WatchHost(int fd, uint64_t id) {
  if (rx_ == nullptr) return true;  // watched when the rx queue starts
  return rx_
      ->Watch(fd, kHostSocketEvents,
              [this, id](uint32_t events) { host_events_.emplace_back(id, events); })
      .ok();
}

void VsockDevice::UnwatchHost(int fd) {
  // Before the socket closes: a later socket may get the same fd number.
  if (rx_ != nullptr) rx_->Unwatch(fd);
}

void VsockDevice::DropGreeting(uint64_t id) {
  auto it = greetings_.find(id);
  if (it == greetings_.end()) return;
  UnwatchHost(it->second.fd.get());
  greetings_.erase(it);
}

QueueResult VsockDevice::ProcessQueue(QueueContext& context) {
  switch (context.index()) {
    case kVsockTxQueue:
      for (;;) {
        // Each packet makes at most one reply: checked before each.
        if (TxMustWait()) return QueueResult::Blocked();  // the rx worker wakes us
        const absl::optional<ChainToken> token = context.Take();
        if (!token) return QueueResult::Drained();
        HandleGuestPacket(context.chain(*token));
        context.Complete(*token, 0);
      }
    case kVsockRxQueue: {
      std::lock_guard<std::mutex> lock(mu_);
      HandleHostEvents();
      if (SendQueued(context) && SendCreditUpdates(context)) SendHostData(context);
      // Out of buffers: the guest's kick resumes; out of credit: its CREDIT_UPDATE wakes us;
      // out of host data: the watched sockets do.
      return QueueResult::Blocked();
    }
    default:
      DeliverEvents(context);
      return QueueResult::Blocked();
  }
}

// ---- the event queue

void VsockDevice::DeliverEvents(QueueContext& event) {
  // Once per front end: connections the guest remembers from before it (a daemon restart, a
  // migration) are gone, and the guest's driver must drop them and re-read its CID.
  if (reset_event_sent_) return;
  const absl::optional<ChainToken> token = event.Take();
  if (!token) return;
  const virtio_vsock_event reset{0};  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
  event.Complete(*token, CopyToSegments(event.chain(*token).writable, 0, &reset, sizeof(reset)));
  reset_event_sent_ = true;
}

// ---- the tx queue: packets from the guest

bool VsockDevice::TxMustWait() {
  // Lock-free while under the bound (every packet asks); a stale count lets at most the packets
  // of one batch through before the locked check below sees the real one.
  if (queued_replies_.load(std::memory_order_relaxed) < kMaxQueuedReplies) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (queued_replies_ < kMaxQueuedReplies) return false;
  if (!tx_waiting_) {
    LOG_EVERY_N(WARNING, 100) << "the guest takes no replies (" << queued_replies_
                              << " wait for rx buffers): its tx queue waits";
  }
  tx_waiting_ = true;
  return true;
}

void VsockDevice::HandleGuestPacket(const DescriptorChain& chain) {
  virtio_vsock_hdr h{};
  if (!ChainReader(chain).Read(&h)) {
    LOG_EVERY_N(WARNING, 100) << "vsock packet of " << chain.readable_bytes
                              << " bytes has no header; dropped";
    return;
  }
  if (h.src_cid != options_.guest_cid) {
    LOG_EVERY_N(WARNING, 100) << "vsock packet from CID " << uint64_t{h.src_cid}
                              << ", not the guest's; dropped";
    return;
  }
  if (h.len > kMaxPacketPayload) {
    // Refused before anything is allocated or copied, whoever the packet is for.
    LOG_EVERY_N(WARNING, 100) << "vsock packet claims " << h.len << " bytes, over the "
                              << kMaxPacketPayload << " a packet carries: " << DescribeHeader(h);
    std::lock_guard<std::mutex> lock(mu_);
    if (Connection* c = Find(h)) {
      Close(*c, /*rst=*/true, "packet too large");
    } else if (h.op != VIRTIO_VSOCK_OP_RST) {
      Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
    }
    return;
  }
  if (hub_ != nullptr && h.dst_cid != kHostCid && hub_->Reaches(*this, h.dst_cid)) {
    ForwardToSibling(h, chain);  // without mu_: the sibling takes its own
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (h.len > chain.readable_bytes - kVsockHeaderSize) {
    LOG_EVERY_N(WARNING, 100) << "vsock packet claims " << h.len << " bytes and carries "
                              << chain.readable_bytes - kVsockHeaderSize << ": "
                              << DescribeHeader(h);
    if (Connection* c = Find(h)) Close(*c, /*rst=*/true, "bad length");
    return;
  }
  const bool type_ok =
      h.type == VIRTIO_VSOCK_TYPE_STREAM || (h.type == VIRTIO_VSOCK_TYPE_SEQPACKET && seqpacket_);
  if (!type_ok || h.dst_cid != kHostCid) {
    LOG_EVERY_N(WARNING, 100) << "vsock packet nobody here takes: " << DescribeHeader(h);
    if (h.op != VIRTIO_VSOCK_OP_RST) Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
    return;
  }
  HandleHostBound(h, chain);
}

void VsockDevice::ForwardToSibling(const virtio_vsock_hdr& h, const DescriptorChain& chain) {
  VsockPacket packet;
  packet.header = h;
  const uint64_t available = chain.readable_bytes - kVsockHeaderSize;
  if (h.len > available) {
    LOG_EVERY_N(WARNING, 100) << "vsock packet claims " << h.len << " bytes and carries "
                              << available << "; dropped";
    return;
  }
  packet.payload.resize(h.len);
  if (h.len > 0) CopyFromSegments(chain.readable, kVsockHeaderSize, packet.payload.data(), h.len);
  if (!hub_->Forward(*this, std::move(packet)) && h.op != VIRTIO_VSOCK_OP_RST) {
    LOG_EVERY_N(WARNING, 100) << "sibling VM CID " << uint64_t{h.dst_cid}
                              << " is not taking packets: reset";
    std::lock_guard<std::mutex> lock(mu_);
    Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
  }
}

VsockDevice::Connection* VsockDevice::Find(const virtio_vsock_hdr& h) {
  auto it = connections_.find(Key{h.src_port, h.dst_cid, h.dst_port});
  return it == connections_.end() ? nullptr : it->second.get();
}

void VsockDevice::HandleHostBound(const virtio_vsock_hdr& h, const DescriptorChain& chain) {
  Connection* c = Find(h);
  if (c != nullptr && c->type != h.type) c = nullptr;  // not this connection: treated as unknown
  if (c != nullptr) {
    // Any packet may carry the guest's new fwd_cnt: if it opens credit that was exhausted,
    // the rx worker has data to send again.
    const bool was_blocked = c->credit.PeerCredit() == 0;
    c->credit.PeerAdvertised(h.buf_alloc, h.fwd_cnt);
    if (was_blocked && c->credit.PeerCredit() > 0) Wake();
  }
  auto reset_unknown = [&] {
    if (h.op != VIRTIO_VSOCK_OP_RST) Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
  };
  switch (h.op) {
    case VIRTIO_VSOCK_OP_REQUEST:
      if (c != nullptr) {
        reset_unknown();  // a second request for a live connection
      } else {
        ConnectToHost(h);
      }
      return;
    case VIRTIO_VSOCK_OP_RESPONSE: {
      if (c == nullptr || c->connected) return reset_unknown();
      c->connected = true;
      const std::string ok = absl::StrCat("OK ", c->host_port, "\n");
      if (write(c->fd.get(), ok.data(), ok.size()) != static_cast<ssize_t>(ok.size())) {
        return Close(*c, /*rst=*/true, "OK line not written");
      }
      c->host_readable = true;  // the host program may have written already
      Wake();
      return;
    }
    case VIRTIO_VSOCK_OP_RW:
      if (c == nullptr || !c->connected) return reset_unknown();
      return TakePayload(*c, chain, h.len, h.flags);
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
      if (c == nullptr) return reset_unknown();
      Wake();  // the guest may have room again
      return;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
      if (c == nullptr) return reset_unknown();
      c->credit_update_due = true;
      Wake();
      return;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
      if (c == nullptr) return reset_unknown();
      c->guest_shut_send |= h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND;
      c->guest_shut_rcv |= h.flags & VIRTIO_VSOCK_SHUTDOWN_RCV;
      return Flush(*c);  // closes or half-closes the host socket once it has everything
    case VIRTIO_VSOCK_OP_RST:
      if (c != nullptr) Close(*c, /*rst=*/false, "guest reset");
      return;
    default:
      LOG_EVERY_N(WARNING, 100) << "vsock packet with unknown op: " << DescribeHeader(h);
      return reset_unknown();
  }
}

void VsockDevice::ConnectToHost(const virtio_vsock_hdr& h) {
  if (connections_.size() >= kMaxConnections) {
    LOG_EVERY_N(WARNING, 100) << kMaxConnections << " connections open: refusing another";
    return Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
  }
  const std::string path = absl::StrCat(options_.uds_path, "_", h.dst_port);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const int type = h.type == VIRTIO_VSOCK_TYPE_SEQPACKET ? SOCK_SEQPACKET : SOCK_STREAM;
  UniqueFd fd(socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd || path.size() >= sizeof(addr.sun_path)) {
    return Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    VLOG(1) << "guest connection to host port " << h.dst_port << ": " << path << ": "
            << strerror(errno);
    return Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));  // nobody listens: refused
  }
  auto c = std::make_unique<Connection>();
  c->id = next_id_++;
  c->key = Key{h.src_port, kHostCid, h.dst_port};
  c->guest_port = h.src_port;
  c->host_port = h.dst_port;
  c->type = h.type;
  c->connected = true;
  c->fd = std::move(fd);
  c->credit.PeerAdvertised(h.buf_alloc, h.fwd_cnt);
  if (!WatchHost(c->fd.get(), c->id)) return Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
  Connection& ref = *c;
  by_id_[c->id] = c.get();
  connections_[c->key] = std::move(c);
  QueueFor(ref, VIRTIO_VSOCK_OP_RESPONSE);
}

void VsockDevice::TakePayload(Connection& c, const DescriptorChain& chain, uint32_t len,
                              uint32_t flags) {
  if (!c.credit.Received(len)) {
    LOG_EVERY_N(WARNING, 100) << "guest sent past the credit it was given; connection reset";
    return Close(c, /*rst=*/true, "credit overrun");
  }
  if (c.guest_shut_send) {
    LOG_EVERY_N(WARNING, 100) << "guest sent after shutting down sending; connection reset";
    return Close(c, /*rst=*/true, "data after shutdown");
  }
  if (c.type == VIRTIO_VSOCK_TYPE_SEQPACKET) {
    const size_t old = c.message.size();
    c.message.resize(old + len);
    if (len) CopyFromSegments(chain.readable, kVsockHeaderSize, &c.message[old], len);
    if (flags & VIRTIO_VSOCK_SEQ_EOM) {
      if (c.pending_messages.size() >= kMaxPendingMessages) {
        LOG_EVERY_N(WARNING, 100) << kMaxPendingMessages << " messages of guest port "
                                  << c.guest_port << " wait for the host program: reset";
        return Close(c, /*rst=*/true, "too many messages pending");
      }
      c.pending_messages.push_back(std::move(c.message));
      c.message.clear();
    }
    return Flush(c);
  }
  uint32_t written = 0;
  if (c.pending.empty() && len > 0) {
    // The common case: straight from guest memory into the host socket.
    IovecList iov;
    SliceSegments(chain.readable, kVsockHeaderSize, len, &iov);
    const ssize_t n = writev(c.fd.get(), iov.data(), static_cast<int>(iov.size()));
    if (n < 0 && errno != EAGAIN) {
      VLOG(1) << "host socket of port " << c.host_port << ": " << strerror(errno);
      return Close(c, /*rst=*/true, "host write failed");  // the host program went away
    }
    written = n > 0 ? static_cast<uint32_t>(n) : 0;
    c.credit.Forwarded(written);
  }
  if (written < len) {
    const size_t old = c.pending.size();
    c.pending.resize(old + len - written);
    CopyFromSegments(chain.readable, kVsockHeaderSize + written, &c.pending[old], len - written);
  }
  Flush(c);
}

// ---- either worker

void VsockDevice::Flush(Connection& c) {
  while (!c.pending.empty()) {
    const ssize_t n = write(c.fd.get(), c.pending.data(), c.pending.size());
    if (n < 0) {
      if (errno == EAGAIN) break;  // EPOLLOUT brings us back
      return Close(c, /*rst=*/true, "host write failed");
    }
    c.pending.erase(0, n);
    c.credit.Forwarded(static_cast<uint32_t>(n));
  }
  while (!c.pending_messages.empty()) {
    const std::string& m = c.pending_messages.front();
    const ssize_t n = send(c.fd.get(), m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN) break;
      return Close(c, /*rst=*/true, "host send failed");
    }
    c.credit.Forwarded(static_cast<uint32_t>(m.size()));
    c.pending_messages.pop_front();
  }
  const bool drained = c.pending.empty() && c.pending_messages.empty();
  if (drained && c.guest_shut_send && c.guest_shut_rcv) {
    return Close(c, /*rst=*/true,
                 "closed both ways");  // both ways done: the receiver of the shutdown resets
  }
  if (drained && c.guest_shut_send) shutdown(c.fd.get(), SHUT_WR);
  if (c.credit.UpdateDue()) {
    // One pending update per connection, sent with the counters of the moment it goes out: a
    // queue of updates would grow while the guest is slow to return rx buffers.
    c.credit_update_due = true;
    Wake();
  }
}

void VsockDevice::Close(Connection& c, bool rst, const char* why) {
  VLOG(1) << "connection guest port " << c.guest_port << " <-> host port " << c.host_port
          << " closed: " << why << (errno ? absl::StrCat(" (", strerror(errno), ")") : "");
  if (rst) QueueFor(c, VIRTIO_VSOCK_OP_RST);
  UnwatchHost(c.fd.get());
  by_id_.erase(c.id);
  connections_.erase(c.key);  // closes the host socket
}

void VsockDevice::Queue(const virtio_vsock_hdr& h) {
  Outgoing out;
  out.packet.header = h;
  out.reply = true;
  queued_.push_back(std::move(out));
  ++queued_replies_;
  Wake();
}

void VsockDevice::QueueFor(Connection& c, uint16_t op, uint32_t flags) {
  virtio_vsock_hdr h =
      MakeHeader(kHostCid, c.host_port, options_.guest_cid, c.guest_port, c.type, op);
  h.flags = flags;
  h.buf_alloc = Credit::kBufAlloc;
  h.fwd_cnt = c.credit.fwd_cnt();
  c.credit.Reported();
  Queue(h);
}

bool VsockDevice::DeliverFromSibling(VsockPacket packet) {
  std::lock_guard<std::mutex> lock(mu_);
  if (queued_.size() - queued_replies_ >= kMaxQueuedPackets ||
      queued_bytes_ + packet.payload.size() > kMaxQueuedBytes) {
    return false;
  }
  queued_bytes_ += packet.payload.size();
  Outgoing out;
  out.packet = std::move(packet);
  queued_.push_back(std::move(out));
  Wake();
  return true;
}

uint32_t VsockDevice::AllocateHostPort() {
  for (;;) {
    const uint32_t port = next_host_port_++;
    if (next_host_port_ == 0) next_host_port_ = kFirstHostPort;
    bool used = false;
    for (const auto& entry : connections_) used |= entry.second->host_port == port;
    if (!used) return port;
  }
}

void VsockDevice::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  connections_.clear();  // closes every host socket: their programs see the guest go away
  by_id_.clear();
  greetings_.clear();
  queued_.clear();
  queued_bytes_ = 0;
  queued_replies_ = 0;
  tx_waiting_ = false;
  reset_event_sent_ = false;
  host_events_.clear();  // the queues are stopped: no worker adds to it
}

// ---- the rx queue: host sockets and queued packets to the guest

void VsockDevice::HandleHostEvents() {
  // An id may be gone (closed since its event came): ids are never reused, so it is skipped.
  for (const auto& [id, events] : host_events_) {
    if (id == kListenerId) {
      AcceptHostConnections();
    } else if (greetings_.count(id)) {
      ReadGreeting(id);
    } else if (auto it = by_id_.find(id); it != by_id_.end()) {
      Connection& c = *it->second;
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c.host_readable = true;
      if (events & (EPOLLHUP | EPOLLERR)) c.host_hup = true;
      if ((events & EPOLLOUT) && c.connected) Flush(c);
    }
  }
  host_events_.clear();
}

void VsockDevice::AcceptHostConnections() {
  for (;;) {
    UniqueFd fd(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) return;
    if (connections_.size() + greetings_.size() >= kMaxConnections) {
      LOG_EVERY_N(WARNING, 100) << "too many connections: a host program was turned away";
      continue;
    }
    const uint64_t id = next_id_++;
    if (!WatchHost(fd.get(), id)) continue;
    greetings_[id].fd = std::move(fd);
    ReadGreeting(id);  // the line may be there already
  }
}

void VsockDevice::ReadGreeting(uint64_t id) {
  Greeting& g = greetings_[id];
  char buf[kMaxGreeting];
  for (;;) {
    const ssize_t n = read(g.fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      DropGreeting(id);  // gone before saying where to
      return;
    }
    g.line.append(buf, n);
    if (g.line.find('\n') != std::string::npos || g.line.size() > kMaxGreeting) break;
  }
  const size_t end = g.line.find('\n');
  if (end == std::string::npos) {
    if (g.line.size() > kMaxGreeting) DropGreeting(id);
    return;
  }
  absl::string_view line(g.line.data(), end);
  absl::ConsumeSuffix(&line, "\r");
  uint32_t port;
  if (!absl::ConsumePrefix(&line, "CONNECT ") || !absl::SimpleAtoi(line, &port) ||
      connections_.size() >= kMaxConnections) {
    LOG_EVERY_N(WARNING, 100) << "host program sent '" << absl::CHexEscape(line)
                              << "', not CONNECT <port>: closed";
    DropGreeting(id);
    return;
  }
  auto c = std::make_unique<Connection>();
  c->id = id;
  c->guest_port = port;
  c->host_port = AllocateHostPort();
  c->key = Key{port, kHostCid, c->host_port};
  c->fd = std::move(g.fd);
  c->prefix = g.line.substr(end + 1);
  greetings_.erase(id);  // the socket stays watched, now as the connection's
  Connection& ref = *c;
  by_id_[id] = c.get();
  connections_[c->key] = std::move(c);
  QueueFor(ref, VIRTIO_VSOCK_OP_REQUEST);
}

bool VsockDevice::SendQueued(QueueContext& rx) {
  while (!queued_.empty()) {
    const absl::optional<ChainToken> token = rx.Take();
    if (!token) return false;
    const DescriptorChain& chain = rx.chain(*token);
    if (chain.writable_bytes < kVsockHeaderSize) {
      LOG_EVERY_N(WARNING, 100) << "vsock rx buffer of " << chain.writable_bytes
                                << " bytes cannot hold a header; returned empty";
      rx.Complete(*token, 0);
      continue;
    }
    VsockPacket& p = queued_.front().packet;
    // A sibling's packet may be larger than our guest's rx buffers: sent in pieces.
    const uint64_t room = chain.writable_bytes - kVsockHeaderSize;
    const size_t chunk = std::min<uint64_t>(room, p.payload.size());
    virtio_vsock_hdr h = p.header;
    h.len = static_cast<uint32_t>(chunk);
    const bool last = chunk == p.payload.size();
    if (!last) h.flags &= ~(VIRTIO_VSOCK_SEQ_EOM | VIRTIO_VSOCK_SEQ_EOR);
    CopyToSegments(chain.writable, 0, &h, sizeof(h));
    if (chunk) CopyToSegments(chain.writable, kVsockHeaderSize, p.payload.data(), chunk);
    rx.Complete(*token, static_cast<uint32_t>(kVsockHeaderSize + chunk));
    queued_bytes_ -= chunk;
    if (last) {
      if (queued_.front().reply) --queued_replies_;
      queued_.pop_front();
      if (tx_waiting_ && queued_replies_ < kMaxQueuedReplies) {
        tx_waiting_ = false;
        if (tx_ != nullptr) tx_->Wake();  // the tx worker goes on (it drains when it starts)
      }
    } else {
      p.payload.erase(p.payload.begin(), p.payload.begin() + chunk);
    }
  }
  return true;
}

bool VsockDevice::SendCreditUpdates(QueueContext& rx) {
  for (auto& entry : connections_) {
    Connection& c = *entry.second;
    if (!c.credit_update_due) continue;
    const absl::optional<ChainToken> token = rx.Take();
    if (!token) return false;
    const DescriptorChain& chain = rx.chain(*token);
    if (chain.writable_bytes < kVsockHeaderSize) {
      rx.Complete(*token, 0);
      return true;  // logged where other packets meet such buffers; try again next time
    }
    virtio_vsock_hdr h = MakeHeader(kHostCid, c.host_port, options_.guest_cid, c.guest_port, c.type,
                                    VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    h.buf_alloc = Credit::kBufAlloc;
    h.fwd_cnt = c.credit.fwd_cnt();
    c.credit.Reported();
    c.credit_update_due = false;
    CopyToSegments(chain.writable, 0, &h, sizeof(h));
    rx.Complete(*token, kVsockHeaderSize);
  }
  return true;
}

bool VsockDevice::SendHostData(QueueContext& rx) {
  // Round robin: a packet per connection per pass, so one busy socket cannot starve others.
  for (bool progress = true; progress;) {
    progress = false;
    for (auto it = connections_.begin(); it != connections_.end();) {
      Connection& c = *it->second;
      ++it;  // SendFromHost may close c
      const bool has_data = !c.prefix.empty() || c.host_message_sent < c.host_message.size() ||
                            (c.host_readable && !c.host_eof);
      if (!c.connected || c.guest_shut_rcv || !has_data || c.credit.PeerCredit() == 0) continue;
      if (!rx.queue().HasAvailable()) return false;
      if (SendFromHost(rx, c)) progress = true;
    }
  }
  return true;
}

bool VsockDevice::SendFromHost(QueueContext& rx, Connection& c) {
  const absl::optional<ChainToken> token = rx.Take();
  if (!token) return false;
  const DescriptorChain& chain = rx.chain(*token);
  if (chain.writable_bytes <= kVsockHeaderSize) {
    LOG_EVERY_N(WARNING, 100) << "vsock rx buffer of " << chain.writable_bytes
                              << " bytes has no room for data; returned empty";
    rx.Complete(*token, 0);
    return true;
  }
  const uint32_t room = static_cast<uint32_t>(
      std::min<uint64_t>(chain.writable_bytes - kVsockHeaderSize, c.credit.PeerCredit()));
  IovecList iov;
  SliceSegments(chain.writable, kVsockHeaderSize, room, &iov);
  uint32_t flags = 0;
  ssize_t n = 0;
  if (!c.prefix.empty()) {
    n = static_cast<ssize_t>(
        CopyToSegments(iov, 0, c.prefix.data(), std::min<size_t>(room, c.prefix.size())));
    c.prefix.erase(0, n);
  } else if (c.type == VIRTIO_VSOCK_TYPE_STREAM) {
    rx.GiveBack(*token);
    return SendStreamBatch(rx, c);
  } else {
    if (c.host_message_sent == c.host_message.size()) {
      c.host_message.resize(kMaxHostMessage);
      msghdr msg{};
      iovec whole{c.host_message.data(), c.host_message.size()};
      msg.msg_iov = &whole;
      msg.msg_iovlen = 1;
      n = recvmsg(c.fd.get(), &msg, MSG_DONTWAIT);
      if (n > 0 && (msg.msg_flags & MSG_TRUNC)) {
        LOG(WARNING) << "host seqpacket message over " << kMaxHostMessage << " bytes on port "
                     << c.host_port << ": connection reset";
        rx.GiveBack(*token);
        Close(c, /*rst=*/true, "host message too large");
        return false;
      }
      c.host_message.resize(n > 0 ? n : 0);
      c.host_message_sent = 0;
    }
    if (c.host_message_sent < c.host_message.size()) {
      n = static_cast<ssize_t>(CopyToSegments(iov, 0, c.host_message.data() + c.host_message_sent,
                                              c.host_message.size() - c.host_message_sent));
      c.host_message_sent += n;
      if (c.host_message_sent == c.host_message.size()) flags = VIRTIO_VSOCK_SEQ_EOM;
    }
  }
  if (n <= 0) {
    rx.GiveBack(*token);
    if (n < 0 && errno == EAGAIN) {
      c.host_readable = false;  // wait for the next edge
      return false;
    }
    if (n < 0) {
      Close(c, /*rst=*/true, "host read failed");
      return false;
    }
    // End of stream: the host will send no more (and, if it hung up, take no more).
    c.host_eof = true;
    QueueFor(c, VIRTIO_VSOCK_OP_SHUTDOWN,
             VIRTIO_VSOCK_SHUTDOWN_SEND | (c.host_hup ? VIRTIO_VSOCK_SHUTDOWN_RCV : 0));
    return false;
  }
  virtio_vsock_hdr h = MakeHeader(kHostCid, c.host_port, options_.guest_cid, c.guest_port, c.type,
                                  VIRTIO_VSOCK_OP_RW);
  h.len = static_cast<uint32_t>(n);
  h.flags = flags;
  h.buf_alloc = Credit::kBufAlloc;
  h.fwd_cnt = c.credit.fwd_cnt();
  c.credit.Reported();
  c.credit_update_due = false;  // this header carries the update
  c.credit.Sent(static_cast<uint32_t>(n));
  CopyToSegments(chain.writable, 0, &h, sizeof(h));
  rx.Complete(*token, static_cast<uint32_t>(kVsockHeaderSize + n));
  return true;
}

bool VsockDevice::SendStreamBatch(QueueContext& rx, Connection& c) {
  // One readv fills several rx buffers: a syscall per 64 KiB instead of per 4 KiB buffer.
  constexpr int kBatch = 16;
  ChainToken tokens[kBatch];
  uint32_t rooms[kBatch];
  int count = 0;
  IovecList iov;
  uint32_t budget = c.credit.PeerCredit();
  while (count < kBatch && budget > 0) {
    const absl::optional<ChainToken> token = rx.Take();
    if (!token) break;
    const DescriptorChain& chain = rx.chain(*token);
    if (chain.writable_bytes <= kVsockHeaderSize) {
      if (count > 0) {
        // Chains not filled are given back below, in reverse order of Take and before any of
        // them is completed: this one first. The next batch starts with it and returns it
        // empty.
        rx.GiveBack(*token);
        break;
      }
      LOG_EVERY_N(WARNING, 100) << "vsock rx buffer of " << chain.writable_bytes
                                << " bytes has no room for data; returned empty";
      rx.Complete(*token, 0);
      continue;
    }
    tokens[count] = *token;
    rooms[count] =
        static_cast<uint32_t>(std::min<uint64_t>(chain.writable_bytes - kVsockHeaderSize, budget));
    SliceSegments(chain.writable, kVsockHeaderSize, rooms[count], &iov);
    budget -= rooms[count];
    ++count;
  }
  if (count == 0) return false;
  const ssize_t n =
      readv(c.fd.get(), iov.data(), static_cast<int>(std::min<size_t>(iov.size(), IOV_MAX)));
  const int saved_errno = errno;
  // The buffers the data filled, in order; the rest go back untouched (reverse order of Take,
  // before anything is completed).
  int used = 0;
  for (size_t filled = 0; n > 0 && used < count && filled < static_cast<size_t>(n); ++used) {
    filled += rooms[used];
  }
  for (int i = count - 1; i >= used; --i) rx.GiveBack(tokens[i]);
  if (n > 0) {
    size_t remaining = static_cast<size_t>(n);
    for (int i = 0; i < used; ++i) {
      const uint32_t take = static_cast<uint32_t>(std::min<size_t>(rooms[i], remaining));
      virtio_vsock_hdr h = MakeHeader(kHostCid, c.host_port, options_.guest_cid, c.guest_port,
                                      c.type, VIRTIO_VSOCK_OP_RW);
      h.len = take;
      h.buf_alloc = Credit::kBufAlloc;
      h.fwd_cnt = c.credit.fwd_cnt();
      c.credit_update_due = false;  // this header carries the update
      CopyToSegments(rx.chain(tokens[i]).writable, 0, &h, sizeof(h));
      rx.Complete(tokens[i], kVsockHeaderSize + take);
      c.credit.Sent(take);
      remaining -= take;
    }
    c.credit.Reported();
    return true;
  }
  if (n < 0 && saved_errno == EAGAIN) {
    c.host_readable = false;  // wait for the next edge
    return false;
  }
  if (n < 0) {
    Close(c, /*rst=*/true, "host read failed");
    return false;
  }
  c.host_eof = true;  // the host will send no more (and, if it hung up, take no more)
  QueueFor(c, VIRTIO_VSOCK_OP_SHUTDOWN,
           VIRTIO_VSOCK_SHUTDOWN_SEND | (c.host_hup ? VIRTIO_VSOCK_SHUTDOWN_RCV : 0));
  return false;
}

}  // namespace vhost
