#include "vhost-user-snd/bridge_protocol.h"

#include <cstring>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vhost::snd {
namespace {

using ::testing::ElementsAre;
using ::vhost::testing::StatusIs;

BridgeHeader HeaderOf(const std::vector<uint8_t>& bytes) {
  BridgeHeader h;
  memcpy(&h, bytes.data(), sizeof(h));
  return h;
}

std::vector<uint8_t> WithHeader(const BridgeHeader& h, size_t payload = 0) {
  std::vector<uint8_t> bytes(sizeof(h) + payload, 7);
  memcpy(bytes.data(), &h, sizeof(h));
  return bytes;
}

TEST(BridgeProtocolTest, OpenCarriesDirectionAndParameters) {
  StreamParams p{AudioFormat::kS24_3, 44100, 6, 441};
  std::vector<uint8_t> bytes = EncodeBridgeOpen(BridgeDirection::kCapture, p);
  ASSERT_EQ(bytes.size(), sizeof(BridgeHeader));
  absl::StatusOr<BridgeMessage> m = DecodeBridgeMessage(bytes);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->op, BridgeOp::kOpen);
  EXPECT_EQ(m->direction, BridgeDirection::kCapture);
  EXPECT_EQ(m->params, p);
}

TEST(BridgeProtocolTest, CapsRoundTrip) {
  Capabilities caps{{AudioFormat::kS16, AudioFormat::kFloat}, {44100, 48000}, 1, 8};
  absl::StatusOr<BridgeMessage> m = DecodeBridgeMessage(EncodeBridgeCaps(caps));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->op, BridgeOp::kCaps);
  EXPECT_THAT(m->caps.formats, ElementsAre(AudioFormat::kS16, AudioFormat::kFloat));
  EXPECT_THAT(m->caps.rates, ElementsAre(44100, 48000));
  EXPECT_EQ(m->caps.channels_min, 1u);
  EXPECT_EQ(m->caps.channels_max, 8u);
}

TEST(BridgeProtocolTest, ErrorAndDataCarryTheirPayload) {
  const std::vector<uint8_t> error = EncodeBridgeError("gone");  // the payload points into it
  absl::StatusOr<BridgeMessage> e = DecodeBridgeMessage(error);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->op, BridgeOp::kError);
  EXPECT_EQ(std::string(e->payload.begin(), e->payload.end()), "gone");
  const std::vector<uint8_t> data = WithHeader(BridgeDataHeader(), 8);
  absl::StatusOr<BridgeMessage> d = DecodeBridgeMessage(data);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->op, BridgeOp::kData);
  EXPECT_EQ(d->payload.size(), 8u);
  EXPECT_EQ(EncodeBridgeError(std::string(kMaxBridgeChunk + 10, 'x')).size(), kMaxBridgeMessage)
      << "a long error text is cut, never an oversized message";
}

TEST(BridgeProtocolTest, ChunksAreWholeFrames) {
  EXPECT_EQ(BridgeChunkBytes(4) % 4, 0u);
  EXPECT_EQ(BridgeChunkBytes(6) % 6, 0u);
  EXPECT_LE(BridgeChunkBytes(6), kMaxBridgeChunk);
  EXPECT_GT(BridgeChunkBytes(6), kMaxBridgeChunk - 6);
  EXPECT_EQ(BridgeChunkBytes(0), 0u);
}

TEST(BridgeProtocolTest, RejectsWhatNoStreamCanBe) {
  const std::vector<uint8_t> good =
      EncodeBridgeOpen(BridgeDirection::kPlayback, StreamParams{AudioFormat::kS16, 48000, 2, 480});
  auto mutate = [&](auto change) {
    BridgeHeader h = HeaderOf(good);
    change(h);
    return DecodeBridgeMessage(WithHeader(h));
  };
  EXPECT_THAT(DecodeBridgeMessage(absl::MakeConstSpan(good).first(39)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mutate([](BridgeHeader& h) { h.op = 99; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mutate([](BridgeHeader& h) { h.direction = 2; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mutate([](BridgeHeader& h) { h.format = 5; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mutate([](BridgeHeader& h) { h.rate = 12345; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mutate([](BridgeHeader& h) { h.channels = 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mutate([](BridgeHeader& h) { h.channels = 256; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mutate([](BridgeHeader& h) { h.period_frames = 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(mutate([](BridgeHeader& h) {
                h.channels = 255;
                h.format = static_cast<uint32_t>(AudioFormat::kS32);
                h.period_frames = 48000;  // 49 MB
              }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeBridgeMessage(WithHeader(HeaderOf(good), 4)),
              StatusIs(absl::StatusCode::kInvalidArgument))
      << "kOpen has no payload";
  EXPECT_THAT(DecodeBridgeMessage(WithHeader(BridgeDataHeader(), kMaxBridgeChunk + 1)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  BridgeHeader caps = HeaderOf(EncodeBridgeCaps(AnyCapabilities()));
  caps.formats |= uint64_t{1} << 40;
  EXPECT_THAT(DecodeBridgeMessage(WithHeader(caps)), StatusIs(absl::StatusCode::kInvalidArgument));
  caps = HeaderOf(EncodeBridgeCaps(AnyCapabilities()));
  caps.period_frames = 0;  // channels_min
  EXPECT_THAT(DecodeBridgeMessage(WithHeader(caps)), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost::snd
