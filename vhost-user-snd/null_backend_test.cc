#include "vhost-user-snd/null_backend.h"

#include <cstring>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vhost::snd {
namespace {

using ::testing::Each;
using ::vhost::testing::IsOk;
using ::vhost::testing::StatusIs;

TEST(AudioBackendTest, SilenceIsTheFormatsZero) {
  std::vector<uint8_t> u8(6, 1), s16(6, 1), flt(8, 1);
  FillSilence(AudioFormat::kU8, absl::MakeSpan(u8));
  FillSilence(AudioFormat::kS16, absl::MakeSpan(s16));
  FillSilence(AudioFormat::kFloat, absl::MakeSpan(flt));
  EXPECT_THAT(u8, Each(0x80)) << "U8's zero is mid-scale";
  EXPECT_THAT(s16, Each(0));
  EXPECT_THAT(flt, Each(0)) << "+0.0f is all zero bytes";
}

template <typename T>
std::vector<uint8_t> AsBytes(std::vector<T> samples) {
  std::vector<uint8_t> bytes(samples.size() * sizeof(T));
  std::memcpy(bytes.data(), samples.data(), bytes.size());
  return bytes;
}

TEST(AudioBackendTest, GainScalesEachFormatTowardItsZero) {
  std::vector<uint8_t> s16 = AsBytes<int16_t>({1000, -1000, 32767, -32768, 3});
  ApplyGain(AudioFormat::kS16, 50, absl::MakeSpan(s16));
  EXPECT_EQ(s16, AsBytes<int16_t>({500, -500, 16383, -16384, 1}));
  std::vector<uint8_t> s32 = AsBytes<int32_t>({2000000000, -2000000000, 7});
  ApplyGain(AudioFormat::kS32, 25, absl::MakeSpan(s32));
  EXPECT_EQ(s32, AsBytes<int32_t>({500000000, -500000000, 1}));
  std::vector<uint8_t> flt = AsBytes<float>({1.0f, -0.5f});
  ApplyGain(AudioFormat::kFloat, 50, absl::MakeSpan(flt));
  EXPECT_EQ(flt, AsBytes<float>({0.5f, -0.25f}));
  std::vector<uint8_t> u8 = {0x80 + 100, 0x80 - 100, 0x80};
  ApplyGain(AudioFormat::kU8, 50, absl::MakeSpan(u8));
  EXPECT_EQ(u8, (std::vector<uint8_t>{0x80 + 50, 0x80 - 50, 0x80}));
  // S24_3: 0x100000 and -0x100000 (sign in the third byte) halve.
  std::vector<uint8_t> s24 = {0x00, 0x00, 0x10, 0x00, 0x00, 0xf0};
  ApplyGain(AudioFormat::kS24_3, 50, absl::MakeSpan(s24));
  EXPECT_EQ(s24, (std::vector<uint8_t>{0x00, 0x00, 0x08, 0x00, 0x00, 0xf8}));
}

TEST(AudioBackendTest, FullGainKeepsSamplesAndZeroGainIsSilence) {
  const std::vector<uint8_t> s16 = AsBytes<int16_t>({1234, -4321});
  std::vector<uint8_t> full = s16;
  ApplyGain(AudioFormat::kS16, 100, absl::MakeSpan(full));
  EXPECT_EQ(full, s16);
  std::vector<uint8_t> none = s16;
  ApplyGain(AudioFormat::kS16, 0, absl::MakeSpan(none));
  EXPECT_THAT(none, Each(0));
  std::vector<uint8_t> u8 = {1, 200};
  ApplyGain(AudioFormat::kU8, 0, absl::MakeSpan(u8));
  EXPECT_THAT(u8, Each(0x80));
}

TEST(AudioBackendTest, CapabilitiesAllowOnlyWhatTheyList) {
  const Capabilities caps{{AudioFormat::kS16}, {44100, 48000}, 1, 2};
  EXPECT_TRUE(caps.Allows({AudioFormat::kS16, 48000, 2, 480}));
  EXPECT_FALSE(caps.Allows({AudioFormat::kS32, 48000, 2, 480}));
  EXPECT_FALSE(caps.Allows({AudioFormat::kS16, 32000, 2, 480}));
  EXPECT_FALSE(caps.Allows({AudioFormat::kS16, 48000, 3, 480}));
  EXPECT_FALSE(caps.Allows({AudioFormat::kS16, 48000, 0, 480}));
  EXPECT_THAT(CheckParams(caps, {AudioFormat::kS16, 48000, 2, 0}),
              StatusIs(absl::StatusCode::kInvalidArgument))
      << "an empty period";
  EXPECT_EQ((StreamParams{AudioFormat::kS24_3, 48000, 2, 480}.period_bytes()), 480u * 6);
}

TEST(NullBackendTest, DiscardsPlaybackAndCapturesSilence) {
  NullBackend backend;
  const StreamParams params{AudioFormat::kU8, 8000, 2, 4};
  ASSERT_THAT(backend.Open(params), IsOk());
  ASSERT_THAT(backend.Start(), IsOk());
  std::vector<uint8_t> period(params.period_bytes(), 7);
  EXPECT_THAT(backend.Write(period), IsOk());
  EXPECT_THAT(backend.Read(absl::MakeSpan(period)), IsOk());
  EXPECT_THAT(period, Each(0x80));
  EXPECT_EQ(backend.frames_transferred(), 8u);
}

TEST(NullBackendTest, FollowsTheLifecycle) {
  NullBackend backend;
  std::vector<uint8_t> frame(4);
  EXPECT_THAT(backend.Start(), StatusIs(absl::StatusCode::kFailedPrecondition)) << "not open";
  EXPECT_THAT(backend.Open({AudioFormat::kS16, 12345, 2, 480}),
              StatusIs(absl::StatusCode::kInvalidArgument))
      << "no virtio-snd rate";
  const StreamParams params{AudioFormat::kS16, 48000, 2, 480};
  ASSERT_THAT(backend.Open(params), IsOk());
  EXPECT_THAT(backend.Write(frame), StatusIs(absl::StatusCode::kFailedPrecondition))
      << "prepared, not started";
  ASSERT_THAT(backend.Start(), IsOk());
  EXPECT_THAT(backend.Write(absl::MakeConstSpan(frame).subspan(1)),
              StatusIs(absl::StatusCode::kInvalidArgument))
      << "a partial frame";
  EXPECT_THAT(backend.Write(frame), IsOk());
  ASSERT_THAT(backend.Stop(), IsOk());
  EXPECT_THAT(backend.Read(absl::MakeSpan(frame)), StatusIs(absl::StatusCode::kFailedPrecondition));
  // A PREPARE again with the same parameters keeps the stream as it was.
  ASSERT_THAT(backend.Open(params), IsOk());
  EXPECT_EQ(backend.frames_transferred(), 1u);
  ASSERT_THAT(backend.Close(), IsOk());
  EXPECT_THAT(backend.Start(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace vhost::snd
