#include "vhost-user-vsock/vsock_device.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/virtio/features.h"
#include "glog/logging.h"
#include "vhost-user-vsock/vsock_hub.h"

namespace vhost {

absl::StatusOr<std::unique_ptr<VsockDevice>> VsockDevice::Create(Options options, VsockHub* hub) {
  absl::StatusOr<std::unique_ptr<HostMuxer>> host =
      HostMuxer::Create(options.uds_path, options.guest_cid);
  if (!host.ok()) return host.status();
  return std::unique_ptr<VsockDevice>(new VsockDevice(std::move(options), hub, *std::move(host)));
}

VsockDevice::VsockDevice(Options options, VsockHub* hub, std::unique_ptr<HostMuxer> host)
    : options_(std::move(options)), hub_(hub), host_(std::move(host)) {}

VsockDevice::~VsockDevice() = default;

DeviceInfo VsockDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdVsock;
  info.num_queues = 3;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1) | Bit(VIRTIO_VSOCK_F_SEQPACKET);
  info.config_size = sizeof(virtio_vsock_config);
  info.one_worker = true;  // replies cross from the tx queue to the rx queue on every packet
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
  switch (context.index()) {
    case kVsockRxQueue:
      rx_ = &context;
      return host_->Serve(&context);
    case kVsockTxQueue:
      tx_ = &context;
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

void VsockDevice::QueueStopped(QueueContext& context) {
  // Every chain taken is completed within ProcessQueue: nothing is held across calls. The
  // engine drops the rx queue's watches; the sockets stay open.
  std::lock_guard<std::mutex> lock(mu_);
  if (&context == rx_) {
    rx_ = nullptr;
    (void)host_->Serve(nullptr);
  }
  if (&context == tx_) tx_ = nullptr;
}

size_t VsockDevice::connection_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return host_->size();
}

size_t VsockDevice::queued_packet_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_.size();
}

void VsockDevice::Wake() {
  // From either queue's turn (one thread serves both) this is a flag the engine acts on once
  // the call returns, so the rx queue's own pass needs no loop of its; from a sibling device's
  // thread it is the context's eventfd.
  if (rx_ != nullptr) rx_->Wake();
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
      host_->HandleEvents(*this);
      // Each stops when the guest's rx buffers run out.
      (void)(SendQueued(context) && SendCreditUpdates(context) && SendHostData(context));
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
  if (!ReadPacketHeader(chain, &h)) {
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
  if (h.len > PayloadCarried(chain)) {
    LOG_EVERY_N(WARNING, 100) << "vsock packet claims " << h.len << " bytes and carries "
                              << PayloadCarried(chain) << ": " << DescribeHeader(h);
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
  if (h.len > PayloadCarried(chain)) {
    LOG_EVERY_N(WARNING, 100) << "vsock packet claims " << h.len << " bytes and carries "
                              << PayloadCarried(chain) << "; dropped";
    return;
  }
  packet.payload.resize(h.len);
  if (h.len > 0) CopyPayload(chain, 0, packet.payload.data(), h.len);
  if (!hub_->Forward(*this, std::move(packet)) && h.op != VIRTIO_VSOCK_OP_RST) {
    LOG_EVERY_N(WARNING, 100) << "sibling VM CID " << uint64_t{h.dst_cid}
                              << " is not taking packets: reset";
    std::lock_guard<std::mutex> lock(mu_);
    Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
  }
}

Connection* VsockDevice::Find(const virtio_vsock_hdr& h) {
  return host_->Find(Connection::Key{h.src_port, h.dst_cid, h.dst_port});
}

void VsockDevice::HandleHostBound(const virtio_vsock_hdr& h, const DescriptorChain& chain) {
  Connection* c = Find(h);
  if (c != nullptr && c->type() != h.type) c = nullptr;  // not this connection: as unknown
  // Any packet may carry the guest's new fwd_cnt: if it opens credit that was exhausted, the
  // rx worker has data to send again.
  if (c != nullptr && c->PeerAdvertised(h.buf_alloc, h.fwd_cnt)) Wake();
  auto reset_unknown = [&] {
    if (h.op != VIRTIO_VSOCK_OP_RST) Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));
  };
  switch (h.op) {
    case VIRTIO_VSOCK_OP_REQUEST:
      if (c != nullptr) return reset_unknown();  // a second request for a live connection
      c = host_->ConnectToHost(h);
      if (c == nullptr) return Queue(ReplyHeader(h, VIRTIO_VSOCK_OP_RST));  // refused
      c->PeerAdvertised(h.buf_alloc, h.fwd_cnt);
      return Queue(c->Header(VIRTIO_VSOCK_OP_RESPONSE));
    case VIRTIO_VSOCK_OP_RESPONSE:
      if (c == nullptr || c->connected()) return reset_unknown();
      return Apply(*c, c->Accepted());
    case VIRTIO_VSOCK_OP_RW:
      if (c == nullptr || !c->connected()) return reset_unknown();
      return Apply(*c, c->TakePayload(chain, h.len, h.flags));
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
      if (c == nullptr) return reset_unknown();
      Wake();  // the guest may have room again
      return;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
      if (c == nullptr) return reset_unknown();
      c->CreditRequested();
      Wake();
      return;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
      if (c == nullptr) return reset_unknown();
      return Apply(*c, c->Shutdown(h.flags));
    case VIRTIO_VSOCK_OP_RST:
      if (c != nullptr) Close(*c, /*rst=*/false, "guest reset");
      return;
    default:
      LOG_EVERY_N(WARNING, 100) << "vsock packet with unknown op: " << DescribeHeader(h);
      return reset_unknown();
  }
}

// ---- either worker

void VsockDevice::Apply(Connection& c, const Connection::Outcome& outcome) {
  if (outcome.close) return Close(c, outcome.rst, outcome.why);
  if (!host_->WatchWritable(c, c.WantsWritable())) {
    return Close(c, /*rst=*/true, "host socket cannot be watched");
  }
  if (outcome.wake) Wake();
}

void VsockDevice::Close(Connection& c, bool rst, const char* why) {
  VLOG(1) << "connection guest port " << c.guest_port() << " <-> host port " << c.host_port()
          << " closed: " << why << (errno ? absl::StrCat(" (", strerror(errno), ")") : "");
  if (rst) Queue(c.Header(VIRTIO_VSOCK_OP_RST));
  host_->Remove(c);
}

void VsockDevice::Queue(const virtio_vsock_hdr& h) {
  Outgoing out;
  out.packet.header = h;
  out.reply = true;
  queued_.push_back(std::move(out));
  ++queued_replies_;
  Wake();
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

void VsockDevice::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  host_->Clear();  // the queues are stopped: no worker is in it
  queued_.clear();
  queued_bytes_ = 0;
  queued_replies_ = 0;
  tx_waiting_ = false;
  reset_event_sent_ = false;
}

// ---- the rx queue: host sockets and queued packets to the guest

void VsockDevice::HostConnected(Connection& c) { Queue(c.Header(VIRTIO_VSOCK_OP_REQUEST)); }

void VsockDevice::HostEvent(Connection& c, uint32_t events) { Apply(c, c.HostEvent(events)); }

bool VsockDevice::SendQueued(QueueContext& rx) {
  while (!queued_.empty()) {
    const absl::optional<ChainToken> token = rx.Take();
    if (!token) return false;
    const DescriptorChain& chain = rx.chain(*token);
    if (!HoldsHeader(chain)) {
      LOG_EVERY_N(WARNING, 100) << "vsock rx buffer of " << chain.writable_bytes
                                << " bytes cannot hold a header; returned empty";
      rx.Complete(*token, 0);
      continue;
    }
    // A sibling's packet may be larger than our guest's rx buffers: sent in pieces.
    VsockPacket& p = queued_.front().packet;
    const uint32_t chunk = WritePacket(chain, p.header, p.payload.data(), p.payload.size());
    rx.Complete(*token, static_cast<uint32_t>(kVsockHeaderSize + chunk));
    queued_bytes_ -= chunk;
    if (chunk < p.payload.size()) {
      p.payload.erase(p.payload.begin(), p.payload.begin() + chunk);
      continue;
    }
    if (queued_.front().reply) --queued_replies_;
    queued_.pop_front();
    if (tx_waiting_ && queued_replies_ < kMaxQueuedReplies) {
      tx_waiting_ = false;
      if (tx_ != nullptr) tx_->Wake();  // the tx worker goes on (it drains when it starts)
    }
  }
  return true;
}

bool VsockDevice::SendCreditUpdates(QueueContext& rx) {
  for (auto& entry : host_->connections()) {
    Connection& c = *entry.second;
    if (!c.credit_update_due()) continue;
    const absl::optional<ChainToken> token = rx.Take();
    if (!token) return false;
    const DescriptorChain& chain = rx.chain(*token);
    if (!HoldsHeader(chain)) {
      rx.Complete(*token, 0);
      return true;  // logged where other packets meet such buffers; try again next time
    }
    rx.Complete(*token, WriteHeader(chain, c.CreditUpdate()));
  }
  return true;
}

bool VsockDevice::SendHostData(QueueContext& rx) {
  // Round robin: a packet per connection per pass, so one busy socket cannot starve others.
  for (bool progress = true; progress;) {
    progress = false;
    for (auto it = host_->connections().begin(); it != host_->connections().end();) {
      Connection& c = *it->second;
      ++it;  // SendFromHost may close c
      if (!c.HasDataForGuest()) continue;
      if (!rx.queue().HasAvailable()) return false;
      if (SendFromHost(rx, c)) progress = true;
    }
  }
  return true;
}

bool VsockDevice::SendFromHost(QueueContext& rx, Connection& c) {
  if (c.ReadsInBatches()) return SendStreamBatch(rx, c);
  const absl::optional<ChainToken> token = rx.Take();
  if (!token) return false;
  const DescriptorChain& chain = rx.chain(*token);
  if (!HoldsData(chain)) {
    LOG_EVERY_N(WARNING, 100) << "vsock rx buffer of " << chain.writable_bytes
                              << " bytes has no room for data; returned empty";
    rx.Complete(*token, 0);
    return true;
  }
  IovecList& iov = rx_iov_;
  iov.resize(0);  // not clear(): that frees the capacity
  SliceRoom(chain, std::min<uint64_t>(PayloadRoom(chain), c.PeerCredit()), &iov);
  const Connection::HostData data = c.ReadHost(iov);
  if (data.status != Connection::ReadStatus::kData) {
    rx.GiveBack(*token);
    HostReadEnded(c, data.status);
    return false;
  }
  WriteHeader(chain, c.DataHeader(data.bytes, data.flags));
  rx.Complete(*token, static_cast<uint32_t>(kVsockHeaderSize + data.bytes));
  return true;
}

bool VsockDevice::SendStreamBatch(QueueContext& rx, Connection& c) {
  // One readv fills several rx buffers: a syscall per 256 KiB (Linux's rx buffers are 4 KiB)
  // instead of per buffer.
  constexpr int kBatch = 64;
  ChainToken tokens[kBatch];
  uint32_t rooms[kBatch];
  int count = 0;
  IovecList& iov = rx_iov_;
  iov.resize(0);  // not clear(): that frees the capacity
  uint32_t budget = c.PeerCredit();
  while (count < kBatch && budget > 0) {
    const absl::optional<ChainToken> token = rx.Take();
    if (!token) break;
    const DescriptorChain& chain = rx.chain(*token);
    if (!HoldsData(chain)) {
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
    rooms[count] = static_cast<uint32_t>(std::min<uint64_t>(PayloadRoom(chain), budget));
    SliceRoom(chain, rooms[count], &iov);
    budget -= rooms[count];
    ++count;
  }
  if (count == 0) return false;
  const Connection::HostData data = c.ReadHost(iov);
  const uint32_t n = data.status == Connection::ReadStatus::kData ? data.bytes : 0;
  // The buffers the data filled, in order; the rest go back untouched (reverse order of Take,
  // before anything is completed).
  int used = 0;
  for (uint64_t filled = 0; used < count && filled < n; ++used) filled += rooms[used];
  for (int i = count - 1; i >= used; --i) rx.GiveBack(tokens[i]);
  if (n == 0) {
    HostReadEnded(c, data.status);
    return false;
  }
  uint32_t remaining = n;
  for (int i = 0; i < used; ++i) {
    const uint32_t take = std::min(rooms[i], remaining);
    WriteHeader(rx.chain(tokens[i]), c.DataHeader(take));
    rx.Complete(tokens[i], static_cast<uint32_t>(kVsockHeaderSize + take));
    remaining -= take;
  }
  return true;
}

void VsockDevice::HostReadEnded(Connection& c, Connection::ReadStatus status) {
  switch (status) {
    case Connection::ReadStatus::kData:
    case Connection::ReadStatus::kNone:
      return;  // the socket's next edge brings us back
    case Connection::ReadStatus::kEof:
      return Queue(c.EofHeader());
    case Connection::ReadStatus::kFailed:
      return Close(c, /*rst=*/true, "host read failed");
    case Connection::ReadStatus::kTooLarge:
      return Close(c, /*rst=*/true, "host message too large");
  }
}

}  // namespace vhost
