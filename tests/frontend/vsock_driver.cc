#include "tests/frontend/vsock_driver.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace vhost::frontend {
namespace {
constexpr uint32_t kHeader = sizeof(virtio_vsock_hdr);
constexpr uint32_t kTxSlot = kHeader + 65536;
constexpr uint32_t kCreditUpdateEvery = 64 * 1024;
constexpr uint16_t kRxQueueSize = 256;
// One more slot than chains the tx ring holds (one descriptor each at most): a slot is reused
// only once the device, which completes tx chains in order, is done with it.
constexpr int kTxSlots = 257;
}  // namespace

absl::StatusOr<std::unique_ptr<VsockDriver>> VsockDriver::Start(const std::string& socket,
                                                                const Options& options) {
  std::unique_ptr<VsockDriver> d(new VsockDriver(options));
  DeviceOptions device;
  device.features = Bit(kFeatureVersion1);
  if (options.event_idx) device.features |= Bit(kFeatureEventIdx);
  if (options.seqpacket) device.features |= Bit(VIRTIO_VSOCK_F_SEQPACKET);
  device.ram_size = 64 << 20;
  device.queue_sizes = {kRxQueueSize, 256, 16};  // rx, tx, event
  ASSIGN_OR_RETURN(d->device_, DeviceConnection::Open(socket, device));
  d->frontend_ = d->device_->frontend();
  d->ram_ = d->device_->ram();
  d->rx_ = d->device_->queue(0);
  d->tx_ = d->device_->queue(1);
  d->event_ = d->device_->queue(2);
  d->rx_buffers_.assign(kRxQueueSize, nullptr);
  d->rx_gpa_.assign(kRxQueueSize, 0);
  for (uint32_t i = 0; i < options.rx_buffers; ++i) {
    uint8_t* host;
    ASSIGN_OR_RETURN(uint64_t gpa, d->ram_->Allocate(kHeader + kRxBufferSize, 64, &host));
    d->free_rx_.push_back({gpa, host});
  }
  RETURN_IF_ERROR(d->RefillRx());
  for (int i = 0; i < 4; ++i) {
    uint8_t* host;
    ASSIGN_OR_RETURN(uint64_t gpa, d->ram_->Allocate(4, 8, &host));
    RETURN_IF_ERROR(d->event_->ring().AddChain({}, {{gpa, 4}}).status());
  }
  RETURN_IF_ERROR(d->event_->Submit().status());
  for (int i = 0; i < kTxSlots; ++i) {
    uint8_t* host;
    ASSIGN_OR_RETURN(uint64_t gpa, d->ram_->Allocate(kTxSlot, 64, &host));
    d->tx_slots_.push_back({gpa, host});
  }
  return d;
}

absl::Status VsockDriver::RefillRx() {
  for (const auto& [gpa, host] : free_rx_) {
    ASSIGN_OR_RETURN(uint16_t id, rx_->ring().AddChain({}, {{gpa, kHeader + kRxBufferSize}}));
    rx_buffers_[id] = host;
    rx_gpa_[id] = gpa;
  }
  free_rx_.clear();
  return rx_->Submit().status();
}

absl::Status VsockDriver::PollEvents() {
  for (;;) {
    ASSIGN_OR_RETURN(absl::optional<UsedElement> used, event_->PollUsed());
    if (!used) return absl::OkStatus();
    ++reset_events_;
  }
}

absl::Status VsockDriver::Send(const virtio_vsock_hdr& header, const void* payload, size_t len,
                               uint32_t header_len) {
  if (len > kTxSlot - kHeader) return absl::InvalidArgumentError("payload too large");
  for (;;) {  // reclaim what the device is done with
    ASSIGN_OR_RETURN(absl::optional<UsedElement> used, tx_->PollUsed());
    if (!used) break;
  }
  auto [gpa, host] = tx_slots_[next_tx_++ % tx_slots_.size()];
  std::memcpy(host, &header, kHeader);
  if (len) std::memcpy(host + kHeader, payload, len);
  std::vector<Buffer> readable;
  if (header_len >= kHeader) {
    readable.push_back({gpa, header_len});
    if (len) readable.push_back({gpa + kHeader, static_cast<uint32_t>(len)});
  } else {  // the header split across two descriptors, the second carrying the payload too
    readable.push_back({gpa, header_len});
    readable.push_back({gpa + header_len, static_cast<uint32_t>(kHeader - header_len + len)});
  }
  for (;;) {
    absl::StatusOr<uint16_t> id = tx_->ring().AddChain(readable, {});
    if (id.ok()) break;
    if (!absl::IsResourceExhausted(id.status())) return id.status();
    RETURN_IF_ERROR(tx_->WaitForUsed(absl::Seconds(10)).status());
  }
  return tx_->Submit().status();
}

absl::Status VsockDriver::SendAliased(const virtio_vsock_hdr& header, uint64_t carried) {
  for (;;) {  // reclaim what the device is done with
    ASSIGN_OR_RETURN(absl::optional<UsedElement> used, tx_->PollUsed());
    if (!used) break;
  }
  auto [gpa, host] = tx_slots_[next_tx_++ % tx_slots_.size()];
  std::memcpy(host, &header, kHeader);
  const uint64_t ram = ram_->region(0).size;
  std::vector<Buffer> readable = {{gpa, kHeader}};
  for (uint64_t left = carried; left > 0;) {
    const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(left, ram));
    readable.push_back({ram_->region(0).gpa, len});
    left -= len;
  }
  RETURN_IF_ERROR(tx_->ring().AddChain(readable, {}).status());
  return tx_->Submit().status();
}

template <typename Handler>
absl::Status VsockDriver::TakeRx(const UsedElement& used, Handler handle) {
  uint8_t* const buffer = used.id < rx_buffers_.size() ? rx_buffers_[used.id] : nullptr;
  if (buffer == nullptr) return absl::InternalError("unknown rx buffer");
  rx_buffers_[used.id] = nullptr;
  free_rx_.push_back({rx_gpa_[used.id], buffer});
  if (used.len < kHeader) return absl::DataLossError(absl::StrCat("rx packet of ", used.len));
  virtio_vsock_hdr h;
  std::memcpy(&h, buffer, kHeader);
  if (h.len > used.len - kHeader) return absl::DataLossError("rx packet shorter than its len");
  handle(h, absl::string_view(reinterpret_cast<const char*>(buffer) + kHeader, h.len));
  return MaybeRefillRx();
}

absl::Status VsockDriver::MaybeRefillRx() {
  if (!refill_ || free_rx_.size() < options_.rx_buffers / 2) return absl::OkStatus();
  return RefillRx();
}

absl::StatusOr<std::pair<virtio_vsock_hdr, std::string>> VsockDriver::Receive(
    absl::Duration timeout) {
  ASSIGN_OR_RETURN(UsedElement used, rx_->WaitForUsed(timeout));
  std::pair<virtio_vsock_hdr, std::string> packet;
  RETURN_IF_ERROR(TakeRx(used, [&](const virtio_vsock_hdr& h, absl::string_view payload) {
    packet = {h, std::string(payload)};
  }));
  return packet;
}

bool VsockDriver::Pump(absl::Duration timeout) {
  absl::StatusOr<UsedElement> used = rx_->WaitForUsed(timeout);
  if (!used.ok()) return false;
  return TakeRx(*used,
                [&](const virtio_vsock_hdr& h, absl::string_view payload) { Dispatch(h, payload); })
      .ok();
}

absl::StatusOr<int> VsockDriver::PumpPending() {
  for (int handled = 0;; ++handled) {
    ASSIGN_OR_RETURN(absl::optional<UsedElement> used, rx_->PollUsed());
    if (!used) return handled;
    RETURN_IF_ERROR(TakeRx(*used, [&](const virtio_vsock_hdr& h, absl::string_view payload) {
      Dispatch(h, payload);
    }));
  }
}

virtio_vsock_hdr VsockDriver::HeaderFor(VsockStream* s, uint16_t op) {
  virtio_vsock_hdr h{};
  h.src_cid = options_.guest_cid;
  h.src_port = s->local_port;
  h.dst_cid = s->peer_cid;
  h.dst_port = s->peer_port;
  h.type = s->type;
  h.op = op;
  h.buf_alloc = kBufAlloc;
  h.fwd_cnt = s->fwd_cnt;
  s->reported_fwd_cnt = s->fwd_cnt;
  return h;
}

absl::Status VsockDriver::MaybeCreditUpdate(VsockStream* s) {
  if (s->fwd_cnt - s->reported_fwd_cnt < kCreditUpdateEvery) return absl::OkStatus();
  return Send(HeaderFor(s, VIRTIO_VSOCK_OP_CREDIT_UPDATE));
}

void VsockDriver::Dispatch(const virtio_vsock_hdr& h, absl::string_view payload) {
  const Key key{h.dst_port, h.src_cid, h.src_port};
  auto it = streams_.find(key);
  VsockStream* s = it == streams_.end() ? nullptr : it->second.get();
  if (s != nullptr) {
    s->peer_buf_alloc = h.buf_alloc;
    s->peer_fwd_cnt = h.fwd_cnt;
  }
  switch (h.op) {
    case VIRTIO_VSOCK_OP_REQUEST: {
      if (s != nullptr || !listening_.count(h.dst_port)) {
        virtio_vsock_hdr rst{};
        rst.src_cid = h.dst_cid;
        rst.src_port = h.dst_port;
        rst.dst_cid = h.src_cid;
        rst.dst_port = h.src_port;
        rst.type = h.type;
        rst.op = VIRTIO_VSOCK_OP_RST;
        (void)Send(rst);
        return;
      }
      auto stream = std::make_unique<VsockStream>();
      stream->local_port = h.dst_port;
      stream->peer_cid = h.src_cid;
      stream->peer_port = h.src_port;
      stream->type = h.type;
      stream->connected = true;
      stream->peer_buf_alloc = h.buf_alloc;
      stream->peer_fwd_cnt = h.fwd_cnt;
      VsockStream* raw = stream.get();
      streams_[key] = std::move(stream);
      accepted_.push_back(raw);
      (void)Send(HeaderFor(raw, VIRTIO_VSOCK_OP_RESPONSE));
      return;
    }
    case VIRTIO_VSOCK_OP_RESPONSE:
      if (s) s->connected = true;
      return;
    case VIRTIO_VSOCK_OP_RST:
      if (s) s->reset = true;
      return;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
      if (!s) return;
      if (h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND) s->peer_shut_send = true;
      if ((h.flags & 3) == 3) {  // both ways: the receiver resets, as Linux does
        (void)Send(HeaderFor(s, VIRTIO_VSOCK_OP_RST));
        s->reset = true;
      }
      return;
    case VIRTIO_VSOCK_OP_RW:
      if (!s) return;
      s->fwd_cnt += h.len;
      if (s->type == VIRTIO_VSOCK_TYPE_SEQPACKET) {
        s->partial.append(payload.data(), payload.size());
        if (h.flags & VIRTIO_VSOCK_SEQ_EOM) {
          s->messages.push_back(std::move(s->partial));
          s->partial.clear();
        }
      } else {
        s->data.append(payload.data(), payload.size());
      }
      (void)MaybeCreditUpdate(s);
      return;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
      if (s) (void)Send(HeaderFor(s, VIRTIO_VSOCK_OP_CREDIT_UPDATE));
      return;
    default:
      return;
  }
}

absl::StatusOr<VsockStream*> VsockDriver::Connect(uint64_t cid, uint32_t port, uint16_t type,
                                                  absl::Duration timeout) {
  auto stream = std::make_unique<VsockStream>();
  stream->local_port = next_port_++;
  stream->peer_cid = cid;
  stream->peer_port = port;
  stream->type = type;
  VsockStream* s = stream.get();
  streams_[Key{s->local_port, cid, port}] = std::move(stream);
  RETURN_IF_ERROR(Send(HeaderFor(s, VIRTIO_VSOCK_OP_REQUEST)));
  const absl::Time deadline = absl::Now() + timeout;
  while (!s->connected && !s->reset) {
    if (!Pump(deadline - absl::Now())) return absl::DeadlineExceededError("no response");
  }
  if (s->reset) return absl::UnavailableError("connection refused (RST)");
  return s;
}

absl::StatusOr<VsockStream*> VsockDriver::Accept(uint32_t port, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    for (auto it = accepted_.begin(); it != accepted_.end(); ++it) {
      if ((*it)->local_port == port) {
        VsockStream* s = *it;
        accepted_.erase(it);
        return s;
      }
    }
    if (!Pump(deadline - absl::Now())) return absl::DeadlineExceededError("nothing to accept");
  }
}

absl::Status VsockDriver::Write(VsockStream* s, const std::string& data, absl::Duration timeout,
                                size_t packet) {
  const absl::Time deadline = absl::Now() + timeout;
  size_t offset = 0;
  while (offset < data.size() || (data.empty() && offset == 0)) {
    if (s->reset) return absl::UnavailableError("connection reset");
    const uint32_t credit = CreditFor(s);
    if (credit == 0 && !data.empty()) {
      if (!Pump(deadline - absl::Now())) return absl::DeadlineExceededError("no credit");
      continue;
    }
    const size_t chunk = std::min<size_t>({packet, credit, data.size() - offset});
    virtio_vsock_hdr h = HeaderFor(s, VIRTIO_VSOCK_OP_RW);
    h.len = static_cast<uint32_t>(chunk);
    if (s->type == VIRTIO_VSOCK_TYPE_SEQPACKET && offset + chunk == data.size()) {
      h.flags = VIRTIO_VSOCK_SEQ_EOM;
    }
    RETURN_IF_ERROR(Send(h, data.data() + offset, chunk));
    s->tx_cnt += chunk;
    offset += chunk;
    if (data.empty()) break;
  }
  return absl::OkStatus();
}

uint32_t VsockDriver::CreditFor(const VsockStream* s) {
  const uint32_t in_flight = s->tx_cnt - s->peer_fwd_cnt;
  return in_flight >= s->peer_buf_alloc ? 0 : s->peer_buf_alloc - in_flight;
}

absl::StatusOr<size_t> VsockDriver::WriteSome(VsockStream* s, const char* data, size_t len,
                                              size_t packet) {
  // A seqpacket message cut at the credit would need its EOM later: Write's business.
  if (s->type != VIRTIO_VSOCK_TYPE_STREAM) return absl::InvalidArgumentError("stream only");
  if (s->reset) return absl::UnavailableError("connection reset");
  size_t sent = 0;
  while (sent < len) {
    const size_t chunk = std::min<size_t>({packet, CreditFor(s), len - sent});
    if (chunk == 0) break;
    virtio_vsock_hdr h = HeaderFor(s, VIRTIO_VSOCK_OP_RW);
    h.len = static_cast<uint32_t>(chunk);
    RETURN_IF_ERROR(Send(h, data + sent, chunk));
    s->tx_cnt += chunk;
    sent += chunk;
  }
  return sent;
}

absl::StatusOr<std::string> VsockDriver::Read(VsockStream* s, size_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (s->data.size() < n && !s->peer_shut_send && !s->reset) {
    if (!Pump(deadline - absl::Now())) return absl::DeadlineExceededError("read timed out");
  }
  const size_t take = std::min(n, s->data.size());
  std::string out = s->data.substr(0, take);
  s->data.erase(0, take);
  return out;
}

absl::StatusOr<std::string> VsockDriver::ReadMessage(VsockStream* s, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (s->messages.empty() && !s->reset) {
    if (!Pump(deadline - absl::Now())) return absl::DeadlineExceededError("no message");
  }
  if (s->messages.empty()) return absl::UnavailableError("connection reset");
  std::string m = std::move(s->messages.front());
  s->messages.erase(s->messages.begin());
  return m;
}

absl::Status VsockDriver::Shutdown(VsockStream* s, uint32_t flags) {
  virtio_vsock_hdr h = HeaderFor(s, VIRTIO_VSOCK_OP_SHUTDOWN);
  h.flags = flags;
  return Send(h);
}

absl::Status VsockDriver::Reset(VsockStream* s) {
  s->reset = true;
  return Send(HeaderFor(s, VIRTIO_VSOCK_OP_RST));
}

bool VsockDriver::WaitForPeerClose(VsockStream* s, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!s->peer_shut_send && !s->reset) {
    if (!Pump(deadline - absl::Now())) return false;
  }
  return true;
}

}  // namespace vhost::frontend
