// A connection on its own: a socketpair plays the host program, plain buffers the guest's
// packets and rx buffers.
#include "vhost-user-vsock/connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace vhost {
namespace {

constexpr uint64_t kGuestCid = 3;
constexpr uint32_t kGuestPort = 1000;
constexpr uint32_t kHostPort = 80;

class ConnectionTest : public ::testing::Test {
 protected:
  // A connection whose host program holds `host_` (`type`: SOCK_STREAM or SOCK_SEQPACKET).
  void Make(int type = SOCK_STREAM, bool connected = true) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    host_.Reset(fds[1]);
    c_ = std::make_unique<Connection>(
        7, kGuestCid, kGuestPort, kHostPort,
        type == SOCK_STREAM ? VIRTIO_VSOCK_TYPE_STREAM : VIRTIO_VSOCK_TYPE_SEQPACKET,
        UniqueFd(fds[0]), connected);
    c_->PeerAdvertised(64 * 1024, 0);
  }
  // Makes the host socket small, after the first guest data (which raises its size) went
  // through and the guest was told (fwd_cnt 1).
  void MakeHostSocketSmall() {
    ASSERT_FALSE(Send("<").close);
    ASSERT_EQ(HostReads(), "<");
    c_->Header(VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    const int small = 4096;
    ASSERT_EQ(setsockopt(c_->fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  }
  // The guest's RW packet with `payload` (kept alive in packet_).
  const DescriptorChain& Rw(const std::string& payload) {
    virtio_vsock_hdr h{};
    h.len = static_cast<uint32_t>(payload.size());
    packet_ = std::string(reinterpret_cast<const char*>(&h), sizeof(h)) + payload;
    chain_.Clear();
    chain_.head = 0;
    chain_.readable.push_back({packet_.data(), packet_.size()});
    chain_.readable_bytes = packet_.size();
    return chain_;
  }
  Connection::Outcome Send(const std::string& payload, uint32_t flags = 0) {
    return c_->TakePayload(Rw(payload), static_cast<uint32_t>(payload.size()), flags);
  }
  std::string HostReads() {
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = read(host_.get(), buf, sizeof(buf))) > 0;) out.append(buf, n);
    return out;
  }
  // Host data into a buffer of `room` bytes.
  Connection::HostData Read(size_t room, std::string* out) {
    out->assign(room, '\0');
    IovecList iov;
    iov.push_back({out->data(), room});
    Connection::HostData data = c_->ReadHost(iov);
    out->resize(data.status == Connection::ReadStatus::kData ? data.bytes : 0);
    return data;
  }

  std::unique_ptr<Connection> c_;
  UniqueFd host_;
  std::string packet_;
  DescriptorChain chain_;
};

TEST_F(ConnectionTest, AddressesAndCreditGoInEveryHeader) {
  Make();
  EXPECT_EQ(c_->key(), (Connection::Key{kGuestPort, kHostCid, kHostPort}));
  ASSERT_FALSE(Send("abc").close);
  const virtio_vsock_hdr h = c_->Header(VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_RCV);
  EXPECT_EQ(uint64_t{h.src_cid}, kHostCid);
  EXPECT_EQ(h.src_port, kHostPort);
  EXPECT_EQ(uint64_t{h.dst_cid}, kGuestCid);
  EXPECT_EQ(h.dst_port, kGuestPort);
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
  EXPECT_EQ(h.flags, VIRTIO_VSOCK_SHUTDOWN_RCV);
  EXPECT_EQ(h.buf_alloc, Credit::kBufAlloc);
  EXPECT_EQ(h.fwd_cnt, 3u) << "the bytes the host socket took";
}

TEST_F(ConnectionTest, GuestDataGoesStraightToTheHostSocket) {
  Make();
  const Connection::Outcome out = Send("hello");
  EXPECT_FALSE(out.close);
  EXPECT_EQ(HostReads(), "hello");
  EXPECT_EQ(c_->credit().fwd_cnt(), 5u);
  EXPECT_EQ(c_->credit().Buffered(), 0u);
}

TEST_F(ConnectionTest, GuestPastItsCreditOrAfterShutdownIsReset) {
  Make();
  Connection::Outcome out = Send(std::string(Credit::kBufAlloc + 1, 'x'));
  EXPECT_TRUE(out.close && out.rst) << out.why;
  EXPECT_EQ(HostReads(), "") << "nothing of an overrun reaches the host";

  Make();
  EXPECT_FALSE(c_->Shutdown(VIRTIO_VSOCK_SHUTDOWN_SEND).close);
  out = Send("late");
  EXPECT_TRUE(out.close && out.rst) << out.why;
}

TEST_F(ConnectionTest, ASlowHostSocketIsFlushedWhenWritableAndCreditIsReturned) {
  Make();
  MakeHostSocketSmall();
  const std::string data(Credit::kBufAlloc, 'd');
  std::string sent;
  for (size_t at = 0; at < data.size(); at += kMaxPacketPayload) {
    ASSERT_FALSE(Send(data.substr(at, kMaxPacketPayload)).close);
  }
  EXPECT_GT(c_->credit().Buffered(), 0u) << "the socket took everything: test nothing";
  EXPECT_FALSE(c_->credit_update_due());
  std::string received;
  for (int i = 0; i < 1000 && received.size() < data.size(); ++i) {
    received += HostReads();
    const Connection::Outcome out = c_->HostEvent(EPOLLOUT);
    ASSERT_FALSE(out.close);
    if (c_->credit_update_due()) {
      EXPECT_TRUE(out.wake) << "the rx worker must send the update";
    }
  }
  received += HostReads();
  EXPECT_EQ(received, data);
  EXPECT_EQ(c_->credit().Buffered(), 0u);
  EXPECT_TRUE(c_->credit_update_due());
  const virtio_vsock_hdr update = c_->CreditUpdate();
  EXPECT_EQ(update.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  EXPECT_EQ(update.fwd_cnt, Credit::kBufAlloc + 1) << "with the first byte";
  EXPECT_FALSE(c_->credit_update_due());
}

TEST_F(ConnectionTest, GuestDataForAFullSocketKeepsItsOrderAndAsksForWritability) {
  Make();
  MakeHostSocketSmall();
  EXPECT_FALSE(c_->WantsWritable());
  // Distinct bytes, so that a packet written ahead of what waits would show.
  std::string data;
  for (size_t i = 0; i < 3 * kMaxPacketPayload; ++i) data += static_cast<char>('a' + i % 23);
  for (size_t at = 0; at < data.size(); at += kMaxPacketPayload) {
    ASSERT_FALSE(Send(data.substr(at, kMaxPacketPayload)).close);
  }
  ASSERT_GT(c_->credit().Buffered(), 0u) << "the socket took everything: test nothing";
  EXPECT_TRUE(c_->WantsWritable());
  std::string received;
  for (int i = 0; i < 1000 && received.size() < data.size(); ++i) {
    received += HostReads();
    if (i % 2) {
      ASSERT_FALSE(c_->HostEvent(EPOLLOUT).close);
    } else if (i < 20) {  // more guest data while some waits
      const std::string more(100, static_cast<char>('A' + i));
      data += more;
      ASSERT_FALSE(Send(more).close);
    }
  }
  received += HostReads();
  EXPECT_EQ(received, data);
  EXPECT_EQ(c_->credit().Buffered(), 0u);
  EXPECT_FALSE(c_->WantsWritable());
}

TEST_F(ConnectionTest, TheHostSocketHoldsAWholeWindowOnceDataFlows) {
  Make();
  int size = 0;
  socklen_t len = sizeof(size);
  ASSERT_EQ(getsockopt(c_->fd(), SOL_SOCKET, SO_SNDBUF, &size, &len), 0);
  const int before = size;
  ASSERT_FALSE(Send("x").close);
  ASSERT_EQ(getsockopt(c_->fd(), SOL_SOCKET, SO_SNDBUF, &size, &len), 0);
  // The kernel doubles what is asked, and caps it at wmem_max (small on some hosts).
  EXPECT_TRUE(size >= static_cast<int>(Credit::kBufAlloc) || size > before)
      << before << " -> " << size;
}

TEST_F(ConnectionTest, ShutdownHalfClosesThenResetsOnceBothWaysAreDone) {
  Make();
  ASSERT_FALSE(Send("last").close);
  EXPECT_FALSE(c_->Shutdown(VIRTIO_VSOCK_SHUTDOWN_SEND).close);
  char buf[16];
  EXPECT_EQ(read(host_.get(), buf, sizeof(buf)), 4);
  EXPECT_EQ(read(host_.get(), buf, sizeof(buf)), 0) << "the host program sees end of stream";
  const Connection::Outcome out = c_->Shutdown(VIRTIO_VSOCK_SHUTDOWN_RCV);
  EXPECT_TRUE(out.close && out.rst) << "the receiver of the shutdown resets";
}

TEST_F(ConnectionTest, SeqpacketMessagesAreAssembledUntilTheirEnd) {
  Make(SOCK_SEQPACKET);
  ASSERT_FALSE(Send("first ").close);
  char buf[64];
  EXPECT_LT(recv(host_.get(), buf, sizeof(buf), MSG_DONTWAIT), 0) << "sent before its end";
  ASSERT_FALSE(Send("half", VIRTIO_VSOCK_SEQ_EOM).close);
  ASSERT_FALSE(Send("", VIRTIO_VSOCK_SEQ_EOM).close);  // an empty message
  ASSERT_EQ(recv(host_.get(), buf, sizeof(buf), MSG_DONTWAIT), 10);
  EXPECT_EQ(std::string(buf, 10), "first half");
  EXPECT_EQ(recv(host_.get(), buf, sizeof(buf), MSG_DONTWAIT), 0);
}

TEST_F(ConnectionTest, MessagesAHostProgramDoesNotTakeAreBounded) {
  Make(SOCK_SEQPACKET);
  Connection::Outcome out;
  size_t sent = 0;
  for (; sent < 2 * Connection::kMaxPendingMessages && !out.close; ++sent) {
    out = Send("", VIRTIO_VSOCK_SEQ_EOM);
  }
  EXPECT_TRUE(out.close && out.rst) << "empty messages piled up without bound";
}

TEST_F(ConnectionTest, HostStreamDataCountsAgainstTheGuestsCredit) {
  Make();
  std::string got;
  EXPECT_FALSE(c_->HasDataForGuest()) << "no edge yet";
  ASSERT_EQ(write(host_.get(), "0123456789", 10), 10);
  EXPECT_FALSE(c_->HostEvent(EPOLLIN).close);
  EXPECT_TRUE(c_->HasDataForGuest());
  EXPECT_TRUE(c_->ReadsInBatches());
  Connection::HostData data = Read(4, &got);
  EXPECT_EQ(data.status, Connection::ReadStatus::kData);
  EXPECT_EQ(got, "0123");
  const virtio_vsock_hdr h = c_->DataHeader(data.bytes);
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_RW);
  EXPECT_EQ(h.len, 4u);
  EXPECT_EQ(c_->PeerCredit(), 64 * 1024 - 4u);
  EXPECT_EQ(Read(100, &got).status, Connection::ReadStatus::kData);
  EXPECT_EQ(got, "456789");
  c_->DataHeader(6);
  // Drained: the next read says so and waits for the next edge.
  EXPECT_EQ(Read(100, &got).status, Connection::ReadStatus::kNone);
  EXPECT_FALSE(c_->HasDataForGuest());
  // The guest used up its credit: nothing goes until it returns some.
  c_->PeerAdvertised(10, 0);
  ASSERT_EQ(write(host_.get(), "x", 1), 1);
  c_->HostEvent(EPOLLIN);
  EXPECT_FALSE(c_->HasDataForGuest());
  EXPECT_TRUE(c_->PeerAdvertised(10, 10)) << "credit reopened";
  EXPECT_TRUE(c_->HasDataForGuest());
}

TEST_F(ConnectionTest, HostEndOfStreamBecomesAShutdown) {
  Make();
  host_.Reset();
  EXPECT_FALSE(c_->HostEvent(EPOLLIN | EPOLLRDHUP | EPOLLHUP).close);
  std::string got;
  EXPECT_EQ(Read(100, &got).status, Connection::ReadStatus::kEof);
  const virtio_vsock_hdr h = c_->EofHeader();
  EXPECT_EQ(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
  EXPECT_EQ(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV)
      << "it hung up: it takes nothing more either";
  EXPECT_FALSE(c_->HasDataForGuest());
}

TEST_F(ConnectionTest, HostSeqpacketMessageGoesInPiecesEndingWithEom) {
  Make(SOCK_SEQPACKET);
  ASSERT_EQ(send(host_.get(), "abcdefgh", 8, 0), 8);
  c_->HostEvent(EPOLLIN);
  EXPECT_FALSE(c_->ReadsInBatches());
  std::string got;
  Connection::HostData data = Read(5, &got);
  EXPECT_EQ(got, "abcde");
  EXPECT_EQ(data.flags, 0u);
  data = Read(5, &got);
  EXPECT_EQ(got, "fgh");
  EXPECT_EQ(data.flags, VIRTIO_VSOCK_SEQ_EOM);
}

TEST_F(ConnectionTest, HostProgramGetsOkWhenTheGuestAcceptsAndItsEarlyBytesGoFirst) {
  Make(SOCK_STREAM, /*connected=*/false);
  c_->set_prefix("early");
  EXPECT_FALSE(c_->HasDataForGuest()) << "the guest has not accepted yet";
  ASSERT_EQ(write(host_.get(), "later", 5), 5);
  const Connection::Outcome out = c_->Accepted();
  EXPECT_FALSE(out.close);
  EXPECT_TRUE(out.wake);
  EXPECT_TRUE(c_->connected());
  EXPECT_EQ(HostReads(), "OK 80\n");
  EXPECT_FALSE(c_->ReadsInBatches()) << "the early bytes come first";
  std::string got;
  EXPECT_EQ(Read(100, &got).status, Connection::ReadStatus::kData);
  EXPECT_EQ(got, "early");
  EXPECT_TRUE(c_->ReadsInBatches());
  EXPECT_EQ(Read(100, &got).status, Connection::ReadStatus::kData);
  EXPECT_EQ(got, "later");
}

}  // namespace
}  // namespace vhost
