#include "vhost-user-vsock/vsock_device.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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

// epoll data of the device's own fds; connections and greetings use ids from 2 on.
constexpr uint64_t kWakeId = 0;
constexpr uint64_t kListenerId = 1;
constexpr size_t kMaxGreeting = 64;                    // "CONNECT 4294967295\n" and then some
constexpr size_t kMaxHostMessage = Credit::kBufAlloc;  // seqpacket messages from the host

bool AddToEpoll(int epoll, int fd, uint32_t events, uint64_t id) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) == 0;
}

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
    : options_(std::move(options)),
      hub_(hub),
      listener_(std::move(listener)),
      epoll_(epoll_create1(EPOLL_CLOEXEC)),
      wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      tx_resume_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  PCHECK(tx_resume_);
  PCHECK(AddToEpoll(epoll_.get(), wake_.get(), EPOLLIN, kWakeId));
  PCHECK(AddToEpoll(epoll_.get(), listener_.get(), EPOLLIN, kListenerId));
}

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

int VsockDevice::QueueEventFd(int index) {
  switch (index) {
    case kVsockRxQueue:
      return epoll_.get();
    case kVsockTxQueue:
      return tx_resume_.get();
    default:
      return -1;
  }
}

size_t VsockDevice::connection_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_.size();
}

size_t VsockDevice::queued_packet_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_.size();
}

void VsockDevice::Wake() { eventfd_write(wake_.get(), 1); }

absl::Duration VsockDevice::ProcessQueue(Virtqueue& queue) {
  switch (queue.index()) {
    case kVsockTxQueue: {
      if (tx_paused_) {  // the rx worker's resume woke us: consume it (no syscall otherwise)
        eventfd_t ignored;
        (void)eventfd_read(tx_resume_.get(), &ignored);
        tx_paused_ = false;
      }
      DescriptorChain chain;
      for (;;) {
        // Each packet makes at most one reply: checked before each.
        if (TxMustWait()) {
          tx_paused_ = true;
          return kUntilDeviceEvent;  // the rx worker resumes us
        }
        if (!queue.Pop(&chain)) return absl::InfiniteDuration();
        HandleGuestPacket(chain);
        queue.Push(chain, 0);
      }
    }
    case kVsockRxQueue: {
      std::lock_guard<std::mutex> lock(mu_);
      PollHost();
      if (SendQueued(queue) && SendCreditUpdates(queue)) SendHostData(queue);
      // Out of buffers: the guest's kick resumes; out of credit: its CREDIT_UPDATE wakes us;
      // out of host data: the epoll set does.
      return kUntilDeviceEvent;
    }
    default:
      DeliverEvents(queue);
      return kUntilDeviceEvent;
  }
}

// ---- the event queue

void VsockDevice::DeliverEvents(Virtqueue& event) {
  // Once per front end: connections the guest remembers from before it (a daemon restart, a
  // migration) are gone, and the guest's driver must drop them and re-read its CID.
  if (reset_event_sent_) return;
  DescriptorChain chain;
  if (!event.Pop(&chain)) return;
  const virtio_vsock_event reset{0};  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
  event.Push(chain, CopyToSegments(chain.writable, 0, &reset, sizeof(reset)));
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
  if (!AddToEpoll(epoll_.get(), c->fd.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, c->id)) {
    return Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
  }
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
  by_id_.erase(c.id);
  connections_.erase(c.key);  // closes the host socket, which leaves the epoll set
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
  tx_paused_ = false;
  reset_event_sent_ = false;
  eventfd_t ignored;
  (void)eventfd_read(wake_.get(), &ignored);
  (void)eventfd_read(tx_resume_.get(), &ignored);
}

// ---- the rx queue: host sockets and queued packets to the guest

void VsockDevice::PollHost() {
  epoll_event events[64];
  int n;
  do {
    n = epoll_wait(epoll_.get(), events, 64, 0);
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == kWakeId) {
        eventfd_t ignored;
        (void)eventfd_read(wake_.get(), &ignored);
      } else if (id == kListenerId) {
        AcceptHostConnections();
      } else if (greetings_.count(id)) {
        ReadGreeting(id);
      } else if (auto it = by_id_.find(id); it != by_id_.end()) {
        Connection& c = *it->second;
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          c.host_readable = true;
        }
        if (events[i].events & (EPOLLHUP | EPOLLERR)) c.host_hup = true;
        if ((events[i].events & EPOLLOUT) && c.connected) Flush(c);
      }
    }
  } while (n == 64);
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
    if (!AddToEpoll(epoll_.get(), fd.get(), EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, id)) {
      continue;
    }
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
      greetings_.erase(id);  // gone before saying where to
      return;
    }
    g.line.append(buf, n);
    if (g.line.find('\n') != std::string::npos || g.line.size() > kMaxGreeting) break;
  }
  const size_t end = g.line.find('\n');
  if (end == std::string::npos) {
    if (g.line.size() > kMaxGreeting) greetings_.erase(id);
    return;
  }
  absl::string_view line(g.line.data(), end);
  absl::ConsumeSuffix(&line, "\r");
  uint32_t port;
  if (!absl::ConsumePrefix(&line, "CONNECT ") || !absl::SimpleAtoi(line, &port) ||
      connections_.size() >= kMaxConnections) {
    LOG_EVERY_N(WARNING, 100) << "host program sent '" << absl::CHexEscape(line)
                              << "', not CONNECT <port>: closed";
    greetings_.erase(id);
    return;
  }
  auto c = std::make_unique<Connection>();
  c->id = id;
  c->guest_port = port;
  c->host_port = AllocateHostPort();
  c->key = Key{port, kHostCid, c->host_port};
  c->fd = std::move(g.fd);
  c->prefix = g.line.substr(end + 1);
  greetings_.erase(id);
  Connection& ref = *c;
  by_id_[id] = c.get();
  connections_[c->key] = std::move(c);
  QueueFor(ref, VIRTIO_VSOCK_OP_REQUEST);
}

bool VsockDevice::SendQueued(Virtqueue& rx) {
  while (!queued_.empty()) {
    DescriptorChain chain;
    if (!rx.Pop(&chain)) return false;
    if (chain.writable_bytes < kVsockHeaderSize) {
      LOG_EVERY_N(WARNING, 100) << "vsock rx buffer of " << chain.writable_bytes
                                << " bytes cannot hold a header; returned empty";
      rx.Push(chain, 0);
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
    rx.Push(chain, static_cast<uint32_t>(kVsockHeaderSize + chunk));
    queued_bytes_ -= chunk;
    if (last) {
      if (queued_.front().reply) --queued_replies_;
      queued_.pop_front();
      if (tx_waiting_ && queued_replies_ < kMaxQueuedReplies) {
        tx_waiting_ = false;
        eventfd_write(tx_resume_.get(), 1);  // the tx worker goes on
      }
    } else {
      p.payload.erase(p.payload.begin(), p.payload.begin() + chunk);
    }
  }
  return true;
}

bool VsockDevice::SendCreditUpdates(Virtqueue& rx) {
  for (auto& entry : connections_) {
    Connection& c = *entry.second;
    if (!c.credit_update_due) continue;
    DescriptorChain chain;
    if (!rx.Pop(&chain)) return false;
    if (chain.writable_bytes < kVsockHeaderSize) {
      rx.Push(chain, 0);
      return true;  // logged where other packets meet such buffers; try again next time
    }
    virtio_vsock_hdr h = MakeHeader(kHostCid, c.host_port, options_.guest_cid, c.guest_port, c.type,
                                    VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    h.buf_alloc = Credit::kBufAlloc;
    h.fwd_cnt = c.credit.fwd_cnt();
    c.credit.Reported();
    c.credit_update_due = false;
    CopyToSegments(chain.writable, 0, &h, sizeof(h));
    rx.Push(chain, kVsockHeaderSize);
  }
  return true;
}

bool VsockDevice::SendHostData(Virtqueue& rx) {
  // Round robin: a packet per connection per pass, so one busy socket cannot starve others.
  for (bool progress = true; progress;) {
    progress = false;
    for (auto it = connections_.begin(); it != connections_.end();) {
      Connection& c = *it->second;
      ++it;  // SendFromHost may close c
      const bool has_data = !c.prefix.empty() || c.host_message_sent < c.host_message.size() ||
                            (c.host_readable && !c.host_eof);
      if (!c.connected || c.guest_shut_rcv || !has_data || c.credit.PeerCredit() == 0) continue;
      if (!rx.HasAvailable()) return false;
      if (SendFromHost(rx, c)) progress = true;
    }
  }
  return true;
}

bool VsockDevice::SendFromHost(Virtqueue& rx, Connection& c) {
  DescriptorChain chain;
  if (!rx.Pop(&chain)) return false;
  if (chain.writable_bytes <= kVsockHeaderSize) {
    LOG_EVERY_N(WARNING, 100) << "vsock rx buffer of " << chain.writable_bytes
                              << " bytes has no room for data; returned empty";
    rx.Push(chain, 0);
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
    rx.Unpop(chain);
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
        rx.Unpop(chain);
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
    rx.Unpop(chain);
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
  rx.Push(chain, static_cast<uint32_t>(kVsockHeaderSize + n));
  return true;
}

bool VsockDevice::SendStreamBatch(Virtqueue& rx, Connection& c) {
  // One readv fills several rx buffers: a syscall per 64 KiB instead of per 4 KiB buffer.
  constexpr int kBatch = 16;
  DescriptorChain chains[kBatch];
  uint32_t rooms[kBatch];
  int count = 0;
  IovecList iov;
  uint32_t budget = c.credit.PeerCredit();
  while (count < kBatch && budget > 0 && rx.Pop(&chains[count])) {
    DescriptorChain& chain = chains[count];
    if (chain.writable_bytes <= kVsockHeaderSize) {
      if (count > 0) {
        // Chains not filled are given back below with Unpop, which must undo the last pops in
        // reverse order: this one too, before any of them is pushed. The next batch starts
        // with it and returns it empty.
        rx.Unpop(chain);
        break;
      }
      LOG_EVERY_N(WARNING, 100) << "vsock rx buffer of " << chain.writable_bytes
                                << " bytes has no room for data; returned empty";
      rx.Push(chain, 0);
      continue;
    }
    rooms[count] =
        static_cast<uint32_t>(std::min<uint64_t>(chain.writable_bytes - kVsockHeaderSize, budget));
    SliceSegments(chain.writable, kVsockHeaderSize, rooms[count], &iov);
    budget -= rooms[count];
    ++count;
  }
  if (count == 0) return false;
  const ssize_t n =
      readv(c.fd.get(), iov.data(), static_cast<int>(std::min<size_t>(iov.size(), IOV_MAX)));
  int used = 0;
  if (n > 0) {
    size_t remaining = static_cast<size_t>(n);
    for (; used < count && remaining > 0; ++used) {
      const uint32_t take = static_cast<uint32_t>(std::min<size_t>(rooms[used], remaining));
      virtio_vsock_hdr h = MakeHeader(kHostCid, c.host_port, options_.guest_cid, c.guest_port,
                                      c.type, VIRTIO_VSOCK_OP_RW);
      h.len = take;
      h.buf_alloc = Credit::kBufAlloc;
      h.fwd_cnt = c.credit.fwd_cnt();
      c.credit_update_due = false;  // this header carries the update
      CopyToSegments(chains[used].writable, 0, &h, sizeof(h));
      rx.Push(chains[used], kVsockHeaderSize + take);
      c.credit.Sent(take);
      remaining -= take;
    }
    c.credit.Reported();
  }
  const int saved_errno = errno;
  for (int i = count - 1; i >= used; --i) rx.Unpop(chains[i]);
  if (n > 0) return true;
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
