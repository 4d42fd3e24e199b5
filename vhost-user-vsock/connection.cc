#include "vhost-user-vsock/connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace vhost {

Connection::Connection(uint64_t id, uint64_t guest_cid, uint32_t guest_port, uint32_t host_port,
                       uint16_t type, UniqueFd fd, bool connected)
    : id_(id),
      guest_cid_(guest_cid),
      guest_port_(guest_port),
      host_port_(host_port),
      type_(type),
      fd_(std::move(fd)),
      connected_(connected) {}

bool Connection::PeerAdvertised(uint32_t buf_alloc, uint32_t fwd_cnt) {
  const bool was_blocked = credit_.PeerCredit() == 0;
  credit_.PeerAdvertised(buf_alloc, fwd_cnt);
  return was_blocked && credit_.PeerCredit() > 0;
}

Connection::Outcome Connection::Accepted() {
  connected_ = true;
  const std::string ok = absl::StrCat("OK ", host_port_, "\n");
  if (write(fd_.get(), ok.data(), ok.size()) != static_cast<ssize_t>(ok.size())) {
    return Reset("OK line not written");
  }
  host_readable_ = true;  // the host program may have written already
  Outcome out;
  out.wake = true;
  return out;
}

Connection::Outcome Connection::TakePayload(const DescriptorChain& chain, uint32_t len,
                                            uint32_t flags) {
  if (len > 0 && !sndbuf_raised_) {
    // Room in the host socket for all the credit we give: the guest's data then goes into it
    // without waiting here, and the host program finds more of it per read (the default,
    // about 200 KiB, is less than one window). Best effort: the kernel caps it at wmem_max.
    // At the first data only: connections that carry none pay no syscall.
    sndbuf_raised_ = true;
    const int size = static_cast<int>(Credit::kBufAlloc);
    setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  if (!credit_.Received(len)) {
    LOG_EVERY_N(WARNING, 100) << "guest sent past the credit it was given; connection reset";
    return Reset("credit overrun");
  }
  if (guest_shut_send_) {
    LOG_EVERY_N(WARNING, 100) << "guest sent after shutting down sending; connection reset";
    return Reset("data after shutdown");
  }
  if (type_ == VIRTIO_VSOCK_TYPE_SEQPACKET) {
    const size_t old = message_.size();
    message_.resize(old + len);
    if (len) CopyPayload(chain, 0, &message_[old], len);
    if (flags & VIRTIO_VSOCK_SEQ_EOM) {
      if (pending_messages_.size() >= kMaxPendingMessages) {
        LOG_EVERY_N(WARNING, 100) << kMaxPendingMessages << " messages of guest port "
                                  << guest_port_ << " wait for the host program: reset";
        return Reset("too many messages pending");
      }
      pending_messages_.push_back(std::move(message_));
      message_.clear();
    }
    return Flush();
  }
  if (len == 0) return Flush();
  // Straight from guest memory into the host socket, after what it has not taken yet: one
  // writev for both.
  IovecList iov;
  const size_t pending = PendingBytes();
  if (pending > 0) iov.push_back({&pending_[pending_at_], pending});
  SlicePayload(chain, 0, len, &iov);
  const ssize_t n = writev(fd_.get(), iov.data(), static_cast<int>(iov.size()));
  if (n < 0 && errno != EAGAIN) {
    VLOG(1) << "host socket of port " << host_port_ << ": " << strerror(errno);
    return Reset("host write failed");  // the host program went away
  }
  const size_t took = n > 0 ? static_cast<size_t>(n) : 0;
  const size_t from_pending = std::min(took, pending);
  PendingWritten(from_pending);
  const uint32_t written = static_cast<uint32_t>(took - from_pending);
  credit_.Forwarded(written);
  if (written < len) {
    const size_t old = pending_.size();
    pending_.resize(old + len - written);
    CopyPayload(chain, written, &pending_[old], len - written);
  }
  return Flush();
}

void Connection::PendingWritten(size_t n) {
  pending_at_ += n;
  credit_.Forwarded(static_cast<uint32_t>(n));
  if (pending_at_ == pending_.size()) {
    pending_.clear();  // the capacity stays
    pending_at_ = 0;
  } else if (pending_at_ >= pending_.size() / 2) {
    // Moves at most as many bytes as were taken since the last move.
    pending_.erase(0, pending_at_);
    pending_at_ = 0;
  }
}

Connection::Outcome Connection::Shutdown(uint32_t flags) {
  guest_shut_send_ |= flags & VIRTIO_VSOCK_SHUTDOWN_SEND;
  guest_shut_rcv_ |= flags & VIRTIO_VSOCK_SHUTDOWN_RCV;
  return Flush();  // closes or half-closes the host socket once it has everything
}

Connection::Outcome Connection::HostEvent(uint32_t events) {
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) host_readable_ = true;
  if (events & (EPOLLHUP | EPOLLERR)) host_hup_ = true;
  if ((events & EPOLLOUT) && connected_) return Flush();
  return Keep();
}

Connection::Outcome Connection::Flush() {
  while (PendingBytes() > 0) {
    const ssize_t n = write(fd_.get(), &pending_[pending_at_], PendingBytes());
    if (n < 0) {
      if (errno == EAGAIN) break;  // EPOLLOUT brings us back
      return Reset("host write failed");
    }
    PendingWritten(static_cast<size_t>(n));
  }
  while (!pending_messages_.empty()) {
    const std::string& m = pending_messages_.front();
    const ssize_t n = send(fd_.get(), m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN) break;
      return Reset("host send failed");
    }
    credit_.Forwarded(static_cast<uint32_t>(m.size()));
    pending_messages_.pop_front();
  }
  const bool drained = !WantsWritable();
  // Both ways done: the receiver of the shutdown resets.
  if (drained && guest_shut_send_ && guest_shut_rcv_) return Reset("closed both ways");
  if (drained && guest_shut_send_) shutdown(fd_.get(), SHUT_WR);
  Outcome out;
  if (credit_.UpdateDue()) {
    // One pending update per connection, sent with the counters of the moment it goes out: a
    // queue of updates would grow while the guest is slow to return rx buffers.
    credit_update_due_ = true;
    out.wake = true;
  }
  return out;
}

virtio_vsock_hdr Connection::Header(uint16_t op, uint32_t flags) {
  virtio_vsock_hdr h = MakeHeader(kHostCid, host_port_, guest_cid_, guest_port_, type_, op);
  h.flags = flags;
  h.buf_alloc = Credit::kBufAlloc;
  h.fwd_cnt = credit_.fwd_cnt();
  credit_.Reported();
  return h;
}

virtio_vsock_hdr Connection::CreditUpdate() {
  credit_update_due_ = false;
  return Header(VIRTIO_VSOCK_OP_CREDIT_UPDATE);
}

bool Connection::HasDataForGuest() const {
  const bool has_data = !prefix_.empty() || host_message_sent_ < host_message_.size() ||
                        (host_readable_ && !host_eof_);
  return connected_ && !guest_shut_rcv_ && has_data && credit_.PeerCredit() > 0;
}

Connection::HostData Connection::ReadHost(const IovecList& iov) {
  HostData out{ReadStatus::kNone};
  ssize_t n = 0;
  if (!prefix_.empty()) {
    n = static_cast<ssize_t>(CopyToSegments(iov, 0, prefix_.data(), prefix_.size()));
    prefix_.erase(0, n);
  } else if (type_ == VIRTIO_VSOCK_TYPE_STREAM) {
    n = readv(fd_.get(), iov.data(), static_cast<int>(std::min<size_t>(iov.size(), IOV_MAX)));
  } else {
    if (host_message_sent_ == host_message_.size()) {
      host_message_.resize(kMaxHostMessage);  // capacity kept: no allocation per message
      msghdr msg{};
      iovec whole{host_message_.data(), host_message_.size()};
      msg.msg_iov = &whole;
      msg.msg_iovlen = 1;
      n = recvmsg(fd_.get(), &msg, MSG_DONTWAIT);
      if (n > 0 && (msg.msg_flags & MSG_TRUNC)) {
        LOG(WARNING) << "host seqpacket message over " << kMaxHostMessage << " bytes on port "
                     << host_port_ << ": connection reset";
        host_message_.clear();
        host_message_sent_ = 0;
        out.status = ReadStatus::kTooLarge;
        return out;
      }
      host_message_.resize(n > 0 ? n : 0);
      host_message_sent_ = 0;
    }
    if (host_message_sent_ < host_message_.size()) {
      n = static_cast<ssize_t>(CopyToSegments(iov, 0, host_message_.data() + host_message_sent_,
                                              host_message_.size() - host_message_sent_));
      host_message_sent_ += n;
      if (host_message_sent_ == host_message_.size()) out.flags = VIRTIO_VSOCK_SEQ_EOM;
    }
  }
  if (n > 0) {
    out.status = ReadStatus::kData;
    out.bytes = static_cast<uint32_t>(n);
    return out;
  }
  if (n < 0 && errno == EAGAIN) {
    host_readable_ = false;  // wait for the next edge
    return out;
  }
  if (n < 0) {
    out.status = ReadStatus::kFailed;
    return out;
  }
  // End of stream: the host will send no more (and, if it hung up, take no more).
  host_eof_ = true;
  out.status = ReadStatus::kEof;
  return out;
}

virtio_vsock_hdr Connection::DataHeader(uint32_t len, uint32_t flags) {
  virtio_vsock_hdr h = Header(VIRTIO_VSOCK_OP_RW, flags);
  h.len = len;
  credit_update_due_ = false;  // this header carries the update
  credit_.Sent(len);
  return h;
}

virtio_vsock_hdr Connection::EofHeader() {
  return Header(VIRTIO_VSOCK_OP_SHUTDOWN,
                VIRTIO_VSOCK_SHUTDOWN_SEND | (host_hup_ ? VIRTIO_VSOCK_SHUTDOWN_RCV : 0));
}

}  // namespace vhost
