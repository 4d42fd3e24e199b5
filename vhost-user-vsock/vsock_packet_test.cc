// The packet codec on descriptor chains made of plain buffers (no rings needed).
#include "vhost-user-vsock/vsock_packet.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace vhost {
namespace {

// A chain whose readable or writable part is `bytes`, cut into segments of the given sizes.
DescriptorChain Chain(std::string& bytes, const std::vector<size_t>& cuts, bool writable) {
  DescriptorChain chain;
  IovecList& segments = writable ? chain.writable : chain.readable;
  size_t at = 0;
  for (size_t cut : cuts) {
    segments.push_back({&bytes[at], cut});
    at += cut;
  }
  if (at < bytes.size()) segments.push_back({&bytes[at], bytes.size() - at});
  (writable ? chain.writable_bytes : chain.readable_bytes) = bytes.size();
  return chain;
}

std::string Packet(const virtio_vsock_hdr& h, const std::string& payload) {
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h)) + payload;
}

TEST(VsockPacketTest, ReadsAHeaderSplitOverSegmentsAndRefusesAShortOne) {
  virtio_vsock_hdr sent =
      MakeHeader(3, 1000, kHostCid, 80, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_RW);
  sent.len = 5;
  std::string bytes = Packet(sent, "hello");
  DescriptorChain chain = Chain(bytes, {10, 20}, /*writable=*/false);
  virtio_vsock_hdr h{};
  ASSERT_TRUE(ReadPacketHeader(chain, &h));
  EXPECT_EQ(std::memcmp(&h, &sent, sizeof(h)), 0);
  EXPECT_EQ(PayloadCarried(chain), 5u);

  std::string short_bytes = bytes.substr(0, kVsockHeaderSize - 1);
  DescriptorChain short_chain = Chain(short_bytes, {}, /*writable=*/false);
  EXPECT_FALSE(ReadPacketHeader(short_chain, &h));
  EXPECT_EQ(PayloadCarried(short_chain), 0u);
}

TEST(VsockPacketTest, PayloadIsCopiedOrSlicedFromAnOffset) {
  virtio_vsock_hdr h = MakeHeader(3, 1, kHostCid, 2, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_RW);
  std::string bytes = Packet(h, "0123456789");
  DescriptorChain chain = Chain(bytes, {kVsockHeaderSize + 3, 4}, /*writable=*/false);
  char out[6] = {};
  CopyPayload(chain, 2, out, 5);
  EXPECT_STREQ(out, "23456");
  IovecList iov;
  SlicePayload(chain, 1, 8, &iov);
  std::string sliced;
  for (const iovec& v : iov) sliced.append(static_cast<const char*>(v.iov_base), v.iov_len);
  EXPECT_EQ(sliced, "12345678");
  EXPECT_EQ(iov.size(), 3u) << "the slice follows the guest's segments, no copy";
}

TEST(VsockPacketTest, BufferRoomBoundaries) {
  std::string header_only(kVsockHeaderSize, '\0');
  DescriptorChain a = Chain(header_only, {}, /*writable=*/true);
  EXPECT_TRUE(HoldsHeader(a));
  EXPECT_FALSE(HoldsData(a));
  EXPECT_EQ(PayloadRoom(a), 0u);
  std::string too_small(kVsockHeaderSize - 1, '\0');
  DescriptorChain b = Chain(too_small, {}, /*writable=*/true);
  EXPECT_FALSE(HoldsHeader(b));
  EXPECT_EQ(PayloadRoom(b), 0u);
  std::string roomy(kVsockHeaderSize + 7, '\0');
  DescriptorChain c = Chain(roomy, {}, /*writable=*/true);
  EXPECT_TRUE(HoldsData(c));
  EXPECT_EQ(PayloadRoom(c), 7u);
  IovecList iov;
  SliceRoom(c, 7, &iov);
  ASSERT_EQ(iov.size(), 1u);
  EXPECT_EQ(iov[0].iov_base, &roomy[kVsockHeaderSize]);
  EXPECT_EQ(iov[0].iov_len, 7u);
}

TEST(VsockPacketTest, WritePacketCutsWhatDoesNotFitAndEndsTheMessageOnlyWithItsLastPiece) {
  virtio_vsock_hdr h = MakeHeader(4, 7, 3, 1000, VIRTIO_VSOCK_TYPE_SEQPACKET, VIRTIO_VSOCK_OP_RW);
  h.flags = VIRTIO_VSOCK_SEQ_EOM | VIRTIO_VSOCK_SEQ_EOR;
  const std::string payload = "abcdefghijklmnopqrstuvwxy";
  std::string buffer(kVsockHeaderSize + 10, '\0');
  DescriptorChain chain = Chain(buffer, {20}, /*writable=*/true);
  EXPECT_EQ(WritePacket(chain, h, payload.data(), payload.size()), 10u);
  virtio_vsock_hdr written;
  std::memcpy(&written, buffer.data(), sizeof(written));
  EXPECT_EQ(written.len, 10u);
  EXPECT_EQ(written.flags, 0u) << "a cut message's first piece does not end it";
  EXPECT_EQ(written.dst_port, 1000u);
  EXPECT_EQ(buffer.substr(kVsockHeaderSize), "abcdefghij");

  std::string big(kVsockHeaderSize + 100, '\0');
  DescriptorChain whole = Chain(big, {}, /*writable=*/true);
  EXPECT_EQ(WritePacket(whole, h, payload.data(), payload.size()), payload.size());
  std::memcpy(&written, big.data(), sizeof(written));
  EXPECT_EQ(written.len, payload.size());
  EXPECT_EQ(written.flags, VIRTIO_VSOCK_SEQ_EOM | VIRTIO_VSOCK_SEQ_EOR);
  EXPECT_EQ(big.substr(kVsockHeaderSize, payload.size()), payload);
}

TEST(VsockPacketTest, WriteHeaderWritesTheHeaderOnly) {
  virtio_vsock_hdr h =
      MakeHeader(kHostCid, 5, 3, 6, VIRTIO_VSOCK_TYPE_STREAM, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
  h.fwd_cnt = 1234;
  std::string buffer(kVsockHeaderSize + 8, 'x');
  DescriptorChain chain = Chain(buffer, {3}, /*writable=*/true);
  EXPECT_EQ(WriteHeader(chain, h), kVsockHeaderSize);
  EXPECT_EQ(std::memcmp(buffer.data(), &h, sizeof(h)), 0);
  EXPECT_EQ(buffer.substr(kVsockHeaderSize), "xxxxxxxx");
}

TEST(VsockPacketTest, ReplySwapsTheAddressesAndCarriesNoCredit) {
  virtio_vsock_hdr h =
      MakeHeader(3, 1000, kHostCid, 80, VIRTIO_VSOCK_TYPE_SEQPACKET, VIRTIO_VSOCK_OP_REQUEST);
  h.buf_alloc = 4096;
  h.len = 9;
  const virtio_vsock_hdr r = ReplyHeader(h, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(uint64_t{r.src_cid}, kHostCid);
  EXPECT_EQ(r.src_port, 80u);
  EXPECT_EQ(uint64_t{r.dst_cid}, 3u);
  EXPECT_EQ(r.dst_port, 1000u);
  EXPECT_EQ(r.type, VIRTIO_VSOCK_TYPE_SEQPACKET);
  EXPECT_EQ(r.op, VIRTIO_VSOCK_OP_RST);
  EXPECT_EQ(r.buf_alloc, 0u);
  EXPECT_EQ(r.len, 0u);
  EXPECT_EQ(DescribeHeader(h), "op 1 type 2 3:1000 -> 2:80 len 9");
}

}  // namespace
}  // namespace vhost
