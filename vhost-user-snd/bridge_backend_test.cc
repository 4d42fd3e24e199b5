// BridgeBackend against a socket the test holds as the bridge's end.
#include "vhost-user-snd/bridge_backend.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

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

const StreamParams kParams{AudioFormat::kS16, 48000, 2, 480};  // 1920-byte periods

class BridgeBackendTest : public ::testing::Test {
 protected:
  void Make(BridgeDirection direction) {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    ASSERT_EQ(fcntl(pair[0], F_SETFL, O_NONBLOCK), 0);
    bridge_ = UniqueFd(pair[1]);
    backend_ = std::make_unique<BridgeBackend>(UniqueFd(pair[0]), direction, AnyCapabilities());
  }

  // The next message the daemon sent (the test's end blocks: it was sent already).
  BridgeMessage Next() {
    buffer_.assign(kMaxBridgeMessage, 0);
    ssize_t n = recv(bridge_.get(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    EXPECT_GT(n, 0) << "no message from the daemon";
    absl::StatusOr<BridgeMessage> m =
        DecodeBridgeMessage(absl::MakeConstSpan(buffer_.data(), std::max<ssize_t>(n, 0)));
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : BridgeMessage{};
  }
  bool NothingSent() {
    char c;
    return recv(bridge_.get(), &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
  }
  void BridgeSends(const std::vector<uint8_t>& message) {
    ASSERT_EQ(send(bridge_.get(), message.data(), message.size(), 0),
              static_cast<ssize_t>(message.size()));
  }
  void BridgeSendsFrames(const std::vector<uint8_t>& frames) {
    std::vector<uint8_t> m(sizeof(BridgeHeader) + frames.size());
    BridgeHeader h = BridgeDataHeader();
    memcpy(m.data(), &h, sizeof(h));
    memcpy(m.data() + sizeof(h), frames.data(), frames.size());
    BridgeSends(m);
  }

  UniqueFd bridge_;
  std::unique_ptr<BridgeBackend> backend_;
  std::vector<uint8_t> buffer_;
};

TEST_F(BridgeBackendTest, PlaybackSendsCommandsAndWholeFrameChunks) {
  Make(BridgeDirection::kPlayback);
  ASSERT_THAT(backend_->Open(kParams), IsOk());
  BridgeMessage open = Next();
  EXPECT_EQ(open.op, BridgeOp::kOpen);
  EXPECT_EQ(open.direction, BridgeDirection::kPlayback);
  EXPECT_EQ(open.params, kParams);
  EXPECT_THAT(backend_->Write(std::vector<uint8_t>(4, 0)),
              StatusIs(absl::StatusCode::kFailedPrecondition))
      << "not started";
  ASSERT_THAT(backend_->Start(), IsOk());
  EXPECT_EQ(Next().op, BridgeOp::kStart);

  // A period bigger than a chunk goes in several messages, each whole frames, in order.
  std::vector<uint8_t> period(kMaxBridgeChunk * 2 + 400);
  for (size_t i = 0; i < period.size(); ++i) period[i] = static_cast<uint8_t>(i * 7);
  ASSERT_THAT(backend_->Write(period), IsOk());
  std::vector<uint8_t> got;
  while (!NothingSent()) {
    BridgeMessage m = Next();
    ASSERT_EQ(m.op, BridgeOp::kData);
    EXPECT_EQ(m.payload.size() % kParams.frame_bytes(), 0u);
    got.insert(got.end(), m.payload.begin(), m.payload.end());
  }
  EXPECT_EQ(got, period);
  ASSERT_THAT(backend_->Stop(), IsOk());
  EXPECT_EQ(Next().op, BridgeOp::kStop);
  ASSERT_THAT(backend_->Close(), IsOk());
  EXPECT_EQ(Next().op, BridgeOp::kClose);
}

TEST_F(BridgeBackendTest, APlaybackBridgeThatIsBehindLosesFramesNotTheDaemon) {
  Make(BridgeDirection::kPlayback);
  ASSERT_THAT(backend_->Open(kParams), IsOk());
  ASSERT_THAT(backend_->Start(), IsOk());
  std::vector<uint8_t> period(kParams.period_bytes(), 1);
  // The test's end never reads: the socket fills, and Write goes on without waiting.
  for (int i = 0; i < 2000 && backend_->frames_lost() == 0; ++i) {
    ASSERT_THAT(backend_->Write(period), IsOk());
  }
  EXPECT_GT(backend_->frames_lost(), 0u);
}

TEST_F(BridgeBackendTest, ABridgeErrorMakesTheStreamUnavailableUntilTheNextOpen) {
  Make(BridgeDirection::kPlayback);
  ASSERT_THAT(backend_->Open(kParams), IsOk());
  ASSERT_THAT(backend_->Start(), IsOk());
  BridgeSends(EncodeBridgeError("ALSA open default: No such device"));
  absl::Status written = backend_->Write(std::vector<uint8_t>(kParams.period_bytes()));
  EXPECT_THAT(written, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(written.message()), ::testing::HasSubstr("No such device"));
  EXPECT_THAT(backend_->Open(kParams), IsOk()) << "the next Open asks the bridge afresh";
}

TEST_F(BridgeBackendTest, ABridgeThatExitedOrSpeaksNonsenseIsUnavailable) {
  Make(BridgeDirection::kCapture);
  ASSERT_THAT(backend_->Open(kParams), IsOk());
  ASSERT_THAT(backend_->Start(), IsOk());
  BridgeSends(std::vector<uint8_t>(3, 0));
  std::vector<uint8_t> period(kParams.period_bytes());
  EXPECT_THAT(backend_->Read(absl::MakeSpan(period)), StatusIs(absl::StatusCode::kUnavailable));
  bridge_.Reset();
  EXPECT_THAT(backend_->Read(absl::MakeSpan(period)), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(backend_->Open(kParams), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(BridgeBackendTest, CaptureTakesRecordedFramesInOrderAndSilenceWhenShort) {
  Make(BridgeDirection::kCapture);
  ASSERT_THAT(backend_->Open(kParams), IsOk());
  BridgeSendsFrames(std::vector<uint8_t>(400, 9));  // recorded before Start: stale
  ASSERT_THAT(backend_->Start(), IsOk());
  std::vector<uint8_t> period(kParams.period_bytes());
  // Nothing recorded yet: a period of silence, before the stream's start.
  ASSERT_THAT(backend_->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_THAT(period, Each(0));
  EXPECT_EQ(backend_->frames_lost(), kParams.period_frames);
  EXPECT_EQ(backend_->gap_frames(), 0u);
  // One and a half periods arrive in three messages.
  std::vector<uint8_t> recorded(kParams.period_bytes() * 3 / 2);
  for (size_t i = 0; i < recorded.size(); ++i) recorded[i] = static_cast<uint8_t>(i % 251);
  const size_t third = recorded.size() / 3;
  BridgeSendsFrames({recorded.begin(), recorded.begin() + third});
  BridgeSendsFrames({recorded.begin() + third, recorded.begin() + 2 * third});
  BridgeSendsFrames({recorded.begin() + 2 * third, recorded.end()});

  ASSERT_THAT(backend_->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_EQ(period, std::vector<uint8_t>(recorded.begin(), recorded.begin() + period.size()));
  EXPECT_EQ(backend_->frames_lost(), kParams.period_frames);
  ASSERT_THAT(backend_->Read(absl::MakeSpan(period)), IsOk());
  const size_t half = recorded.size() - period.size();
  EXPECT_EQ(std::vector<uint8_t>(period.begin(), period.begin() + half),
            std::vector<uint8_t>(recorded.begin() + period.size(), recorded.end()));
  EXPECT_THAT(std::vector<uint8_t>(period.begin() + half, period.end()), Each(0));
  EXPECT_EQ(backend_->frames_lost(), kParams.period_frames * 3 / 2);
  EXPECT_EQ(backend_->gap_frames(), kParams.period_frames / 2) << "a gap after the first frames";
  ASSERT_THAT(backend_->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_EQ(backend_->gap_frames(), kParams.period_frames * 3 / 2);
  // After a restart, silence before the first frames is the start again, not a gap.
  ASSERT_THAT(backend_->Stop(), IsOk());
  ASSERT_THAT(backend_->Start(), IsOk());
  ASSERT_THAT(backend_->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_EQ(backend_->frames_lost(), kParams.period_frames * 7 / 2);
  EXPECT_EQ(backend_->gap_frames(), kParams.period_frames * 3 / 2);
  // The counts are per Open.
  ASSERT_THAT(backend_->Stop(), IsOk());
  ASSERT_THAT(backend_->Open(kParams), IsOk());
  EXPECT_EQ(backend_->frames_lost(), 0u);
  EXPECT_EQ(backend_->gap_frames(), 0u);
}

TEST_F(BridgeBackendTest, OpenChecksParametersAgainstWhatTheBridgeOffered) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
  bridge_ = UniqueFd(pair[1]);
  BridgeBackend only_s16(UniqueFd(pair[0]), BridgeDirection::kPlayback,
                         Capabilities{{AudioFormat::kS16}, {48000}, 2, 2});
  EXPECT_THAT(only_s16.Open(StreamParams{AudioFormat::kS32, 48000, 2, 480}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(only_s16.Open(kParams), IsOk());
  EXPECT_EQ(Next().op, BridgeOp::kOpen);
}

}  // namespace
}  // namespace vhost::snd
