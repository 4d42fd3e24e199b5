#include "vhost-user-gpu/display/display_protocol.h"

#include <cstring>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vhost::gpu::display {
namespace {

using ::testing::ElementsAreArray;
using ::testing::SizeIs;
using ::vhost::testing::StatusIs;

uint32_t U32At(const std::vector<uint8_t>& bytes, size_t offset) {
  uint32_t value;
  memcpy(&value, bytes.data() + offset, 4);
  return value;
}

std::vector<uint8_t> Words(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> bytes(words.size() * 4);
  memcpy(bytes.data(), std::data(words), bytes.size());
  return bytes;
}

TEST(DisplayProtocolTest, RequestNumbersAreQemus) {
  EXPECT_EQ(static_cast<uint32_t>(Request::kGetProtocolFeatures), 1u);
  EXPECT_EQ(static_cast<uint32_t>(Request::kGetDisplayInfo), 3u);
  EXPECT_EQ(static_cast<uint32_t>(Request::kCursorUpdate), 6u);
  EXPECT_EQ(static_cast<uint32_t>(Request::kUpdate), 8u);
  EXPECT_EQ(static_cast<uint32_t>(Request::kGetEdid), 11u);
  EXPECT_EQ(static_cast<uint32_t>(Request::kDmabufScanout2), 12u);
  EXPECT_EQ(kFlagReply, 4u);
  EXPECT_EQ(kFeatureEdid, 1u);
  EXPECT_EQ(kFeatureDmabuf2, 2u);
}

TEST(DisplayProtocolTest, PayloadSizes) {
  EXPECT_EQ(RequestPayloadSize(Request::kGetProtocolFeatures), 0u);
  EXPECT_EQ(RequestPayloadSize(Request::kSetProtocolFeatures), 8u);
  EXPECT_EQ(RequestPayloadSize(Request::kCursorPos), 12u);
  EXPECT_EQ(RequestPayloadSize(Request::kCursorUpdate), 16404u);
  EXPECT_EQ(RequestPayloadSize(Request::kScanout), 12u);
  EXPECT_EQ(RequestPayloadSize(Request::kUpdate), 20u);
  EXPECT_EQ(RequestPayloadSize(Request::kDmabufScanout), 40u);
  EXPECT_EQ(RequestPayloadSize(Request::kDmabufScanout2), 48u);
  EXPECT_EQ(RequestPayloadSize(Request::kGetEdid), 4u);
  EXPECT_EQ(RequestPayloadSize(static_cast<Request>(13)), 0u);
  EXPECT_EQ(ReplyPayloadSize(Request::kGetProtocolFeatures), 8u);
  EXPECT_EQ(ReplyPayloadSize(Request::kGetDisplayInfo), 408u);
  EXPECT_EQ(ReplyPayloadSize(Request::kGetEdid), 1056u);
  EXPECT_EQ(ReplyPayloadSize(Request::kUpdate), 0u);
}

TEST(DisplayProtocolTest, UpdatePrefixCarriesThePixelSize) {
  ASSERT_OK_AND_ASSIGN(const UpdatePrefix prefix, EncodeUpdatePrefix(2, Rect{1, 2, 3, 4}));
  EXPECT_THAT(prefix, ElementsAreArray(Words({8, 0, 20 + 3 * 4 * 4, 2, 1, 2, 3, 4})));
  // 16384 x 16384 still fits the u32 size; twice that does not.
  EXPECT_OK(EncodeUpdatePrefix(0, Rect{0, 0, kMaxScanoutSide, kMaxScanoutSide}));
  EXPECT_THAT(EncodeUpdatePrefix(0, Rect{0, 0, 2 * kMaxScanoutSide, 2 * kMaxScanoutSide}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DisplayProtocolTest, DisplayInfoReplyLayout) {
  const std::vector<uint8_t> reply =
      EncodeDisplayInfoReply(std::vector<ScanoutInfo>{{true, 1024, 768}, {false, 5, 6}});
  ASSERT_THAT(reply, SizeIs(12 + 408));
  EXPECT_EQ(U32At(reply, 0), 3u);
  EXPECT_EQ(U32At(reply, 4), kFlagReply);
  EXPECT_EQ(U32At(reply, 8), 408u);
  EXPECT_EQ(U32At(reply, 12), kRespOkDisplayInfo);  // hdr.type
  // pmodes[i] at 24 + 24 i of the payload: x, y, width, height, enabled, flags.
  EXPECT_EQ(U32At(reply, 12 + 24 + 8), 1024u);
  EXPECT_EQ(U32At(reply, 12 + 24 + 12), 768u);
  EXPECT_EQ(U32At(reply, 12 + 24 + 16), 1u);
  EXPECT_EQ(U32At(reply, 12 + 48 + 8), 5u);
  EXPECT_EQ(U32At(reply, 12 + 48 + 16), 0u);

  Header header;
  memcpy(&header, reply.data(), sizeof(header));
  ASSERT_OK(CheckReplyHeader(header, Request::kGetDisplayInfo));
  ASSERT_OK_AND_ASSIGN(const std::vector<ScanoutInfo> info,
                       DecodeDisplayInfo(absl::MakeConstSpan(reply).subspan(12)));
  ASSERT_THAT(info, SizeIs(kMaxScanouts));
  EXPECT_TRUE(info[0].enabled);
  EXPECT_EQ(info[0].width, 1024u);
  EXPECT_FALSE(info[1].enabled);
  EXPECT_EQ(info[1].width, 0u);  // a disabled entry's size is not passed on
}

TEST(DisplayProtocolTest, EdidReplyLayout) {
  std::vector<uint8_t> blob(200);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i + 1);
  const std::vector<uint8_t> reply = EncodeEdidReply(blob);
  ASSERT_THAT(reply, SizeIs(12 + 1056));
  EXPECT_EQ(U32At(reply, 0), 11u);
  EXPECT_EQ(U32At(reply, 8), 1056u);
  EXPECT_EQ(U32At(reply, 12), kRespOkEdid);
  EXPECT_EQ(U32At(reply, 12 + 24), 200u);  // size, then padding, then the blob
  EXPECT_EQ(reply[12 + 32], 1);
  EXPECT_EQ(reply[12 + 32 + 199], 200);
  ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> decoded,
                       DecodeEdid(absl::MakeConstSpan(reply).subspan(12)));
  EXPECT_EQ(decoded, blob);
  // Too large a blob is cut to what the reply holds.
  EXPECT_EQ(U32At(EncodeEdidReply(std::vector<uint8_t>(5000, 1)), 12 + 24), kEdidBlobSize);
}

TEST(DisplayProtocolTest, ReplyHeaderChecks) {
  EXPECT_OK(CheckReplyHeader(Header{1, kFlagReply, 8}, Request::kGetProtocolFeatures));
  EXPECT_OK(CheckReplyHeader(Header{1, kFlagReply | 1, 8}, Request::kGetProtocolFeatures));
  EXPECT_THAT(CheckReplyHeader(Header{1, 0, 8}, Request::kGetProtocolFeatures),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckReplyHeader(Header{2, kFlagReply, 8}, Request::kGetProtocolFeatures),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckReplyHeader(Header{1, kFlagReply, 16}, Request::kGetProtocolFeatures),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckReplyHeader(Header{11, kFlagReply, 1024}, Request::kGetEdid),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DisplayProtocolTest, DecodersTakeOnlyTheirExactSize) {
  EXPECT_THAT(DecodeProtocolFeatures(std::vector<uint8_t>(7)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(const uint64_t features,
                       DecodeProtocolFeatures(Words({kFeatureEdid | kFeatureDmabuf2, 0})));
  EXPECT_EQ(features, 3u);
  EXPECT_THAT(DecodeDisplayInfo(std::vector<uint8_t>(407)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeEdid(std::vector<uint8_t>(1057)), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(DisplayProtocolTest, CursorUpdateNeedsAWholeImage) {
  std::vector<uint32_t> image(kCursorSize * kCursorSize, 0xff00ff00u);
  ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> message,
                       EncodeCursorUpdate(1, 2, 3, 4, 5, image));
  ASSERT_THAT(message, SizeIs(12 + 16404));
  EXPECT_EQ(U32At(message, 8), 16404u);
  EXPECT_EQ(U32At(message, 12 + 16), 5u);  // hot_y
  EXPECT_EQ(U32At(message, 12 + 20), 0xff00ff00u);
  image.pop_back();
  EXPECT_THAT(EncodeCursorUpdate(1, 2, 3, 4, 5, image),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost::gpu::display
