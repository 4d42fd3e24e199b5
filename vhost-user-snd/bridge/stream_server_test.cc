// StreamServer between a socket the test holds as the daemon's end and a HostPcm fake that
// records what it is asked and answers from a script.
#include "vhost-user-snd/bridge/stream_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vhost::snd {
namespace {

using ::testing::ElementsAre;

const StreamParams kParams{AudioFormat::kS16, 48000, 1, 4};  // 8-byte periods

// What the server asked of the host, shared with the test (the server runs on other threads).
struct HostLog {
  std::mutex mu;
  std::vector<std::string> calls;
  std::vector<uint8_t> played;
  absl::Status open_result = absl::OkStatus();
  absl::Notification* open_blocks = nullptr;  // Open waits for it
  uint8_t next_sample = 0;                    // capture: each Read fills with consecutive bytes
};

class FakePcm : public HostPcm {
 public:
  explicit FakePcm(HostLog* log) : log_(log) {}
  Capabilities Probe(PcmDirection) override { return {{AudioFormat::kS16}, {48000}, 1, 2}; }
  absl::Status Open(PcmDirection d, const StreamParams& p) override {
    if (log_->open_blocks != nullptr) log_->open_blocks->WaitForNotification();
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->calls.push_back(d == PcmDirection::kPlayback ? "open playback" : "open capture");
    return log_->open_result;
  }
  absl::Status Start() override { return Log("start"); }
  absl::Status Stop() override { return Log("stop"); }
  absl::Status Write(absl::Span<const uint8_t> frames) override {
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->played.insert(log_->played.end(), frames.begin(), frames.end());
    return absl::OkStatus();
  }
  absl::Status Read(absl::Span<uint8_t> frames) override {
    std::lock_guard<std::mutex> lock(log_->mu);
    for (uint8_t& b : frames) b = log_->next_sample++;
    return absl::OkStatus();
  }
  void Close() override { (void)Log("close"); }

 private:
  absl::Status Log(const char* call) {
    std::lock_guard<std::mutex> lock(log_->mu);
    // Consecutive closes are one: the server closes whenever it must be sure.
    if (!(call == std::string("close") && !log_->calls.empty() && log_->calls.back() == "close")) {
      log_->calls.push_back(call);
    }
    return absl::OkStatus();
  }
  HostLog* log_;
};

class StreamServerTest : public ::testing::Test {
 protected:
  void Serve(PcmDirection direction) {
    int pair[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    daemon_ = UniqueFd(pair[0]);
    server_ = std::make_unique<StreamServer>(UniqueFd(pair[1]), direction,
                                             std::make_unique<FakePcm>(&log_));
    thread_ = std::thread([this] {
      server_->Run();
      finished_.Notify();
    });
    BridgeMessage caps = Receive();
    ASSERT_EQ(caps.op, BridgeOp::kCaps) << "the first message says what the host can open";
    EXPECT_THAT(caps.caps.formats, ElementsAre(AudioFormat::kS16));
    EXPECT_EQ(caps.caps.channels_max, 2u);
  }
  void TearDown() override {
    daemon_.Reset();
    if (thread_.joinable()) thread_.join();
  }

  void Send(const std::vector<uint8_t>& m) {
    ASSERT_EQ(send(daemon_.get(), m.data(), m.size(), 0), static_cast<ssize_t>(m.size()));
  }
  void SendFrames(std::vector<uint8_t> frames) {
    std::vector<uint8_t> m(sizeof(BridgeHeader));
    BridgeHeader h = BridgeDataHeader();
    memcpy(m.data(), &h, sizeof(h));
    m.insert(m.end(), frames.begin(), frames.end());
    Send(m);
  }
  BridgeMessage Receive() {  // blocks until the server sends
    buffer_.assign(kMaxBridgeMessage, 0);
    ssize_t n = recv(daemon_.get(), buffer_.data(), buffer_.size(), 0);
    EXPECT_GT(n, 0);
    absl::StatusOr<BridgeMessage> m =
        DecodeBridgeMessage(absl::MakeConstSpan(buffer_.data(), std::max<ssize_t>(n, 0)));
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : BridgeMessage{};
  }
  std::vector<std::string> Calls() {
    std::lock_guard<std::mutex> lock(log_.mu);
    return log_.calls;
  }
  // Waits until the fake has played `bytes` (the server's worker runs on its own thread).
  std::vector<uint8_t> PlayedOnce(size_t bytes) {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(log_.mu);
        if (log_.played.size() >= bytes) return log_.played;
      }
      std::this_thread::yield();
    }
  }

  HostLog log_;
  UniqueFd daemon_;
  std::unique_ptr<StreamServer> server_;
  std::thread thread_;
  absl::Notification finished_;
  std::vector<uint8_t> buffer_;
};

TEST_F(StreamServerTest, PlaybackFramesReachTheHostInOrder) {
  Serve(PcmDirection::kPlayback);
  Send(EncodeBridgeOpen(BridgeDirection::kPlayback, kParams));
  Send(EncodeBridgeCommand(BridgeOp::kStart));
  SendFrames({1, 2, 3, 4, 5, 6, 7, 8});
  SendFrames({9, 10});
  EXPECT_THAT(PlayedOnce(10), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
  Send(EncodeBridgeCommand(BridgeOp::kStop));
  Send(EncodeBridgeCommand(BridgeOp::kClose));
  daemon_.Reset();
  thread_.join();
  EXPECT_THAT(Calls(), ElementsAre("close", "open playback", "start", "stop", "close"));
}

TEST_F(StreamServerTest, FramesBeforeStartOrPartialFramesAreNotPlayed) {
  Serve(PcmDirection::kPlayback);
  Send(EncodeBridgeOpen(BridgeDirection::kPlayback, kParams));
  SendFrames({1, 2});  // not started
  Send(EncodeBridgeCommand(BridgeOp::kStart));
  SendFrames({3});  // half a frame
  SendFrames({4, 5});
  EXPECT_THAT(PlayedOnce(2), ElementsAre(4, 5));
}

TEST_F(StreamServerTest, CapturePeriodsGoToTheDaemonAsRecorded) {
  Serve(PcmDirection::kCapture);
  Send(EncodeBridgeOpen(BridgeDirection::kCapture, kParams));
  Send(EncodeBridgeCommand(BridgeOp::kStart));
  BridgeMessage first = Receive();
  ASSERT_EQ(first.op, BridgeOp::kData);
  EXPECT_THAT(std::vector<uint8_t>(first.payload.begin(), first.payload.end()),
              ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  BridgeMessage second = Receive();
  ASSERT_EQ(second.op, BridgeOp::kData);
  EXPECT_EQ(second.payload[0], 8);
}

TEST_F(StreamServerTest, AHostErrorIsReportedAndTheStreamWaitsForTheNextOpen) {
  log_.open_result = absl::UnavailableError("no such device");
  Serve(PcmDirection::kPlayback);
  Send(EncodeBridgeOpen(BridgeDirection::kPlayback, kParams));
  BridgeMessage error = Receive();
  ASSERT_EQ(error.op, BridgeOp::kError);
  EXPECT_EQ(std::string(error.payload.begin(), error.payload.end()), "no such device");
  {
    std::lock_guard<std::mutex> lock(log_.mu);
    log_.open_result = absl::OkStatus();
  }
  Send(EncodeBridgeCommand(BridgeOp::kStart));  // ignored: the stream failed
  Send(EncodeBridgeOpen(BridgeDirection::kPlayback, kParams));
  Send(EncodeBridgeCommand(BridgeOp::kStart));
  SendFrames({7, 7});
  EXPECT_THAT(PlayedOnce(2), ElementsAre(7, 7));
  const std::vector<std::string> calls = Calls();
  EXPECT_EQ(std::count(calls.begin(), calls.end(), "start"), 1);
}

TEST_F(StreamServerTest, AMessageThatDoesNotParseEndsTheStream) {
  Serve(PcmDirection::kPlayback);
  Send(std::vector<uint8_t>(5, 0xff));
  finished_.WaitForNotification();
  char c;
  EXPECT_EQ(recv(daemon_.get(), &c, 1, 0), 0) << "the bridge closed its end";
}

TEST_F(StreamServerTest, AnOpenForTheOtherDirectionEndsTheStream) {
  Serve(PcmDirection::kPlayback);
  Send(EncodeBridgeOpen(BridgeDirection::kCapture, kParams));
  finished_.WaitForNotification();
  EXPECT_THAT(Calls(), ::testing::Not(::testing::Contains("open capture")));
}

// A host that blocks (here in Open) while the daemon sends command after command: past a few
// dozen waiting, the bridge ends the stream rather than queue them all.
TEST_F(StreamServerTest, CommandsPilingUpBehindABlockedHostEndTheStream) {
  absl::Notification release;
  log_.open_blocks = &release;
  Serve(PcmDirection::kPlayback);
  Send(EncodeBridgeOpen(BridgeDirection::kPlayback, kParams));
  for (int i = 0; i < 1000; ++i) {
    const std::vector<uint8_t> stop = EncodeBridgeCommand(BridgeOp::kStop);
    // Without waiting: once the bridge stops reading, the socket fills.
    if (send(daemon_.get(), stop.data(), stop.size(), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) break;
  }
  release.Notify();
  pollfd pfd{daemon_.get(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 10000), 1) << "the bridge still reads";
  char c;
  // Closed with our commands unread: a reset rather than an orderly end.
  const ssize_t r = recv(daemon_.get(), &c, 1, 0);
  EXPECT_TRUE(r == 0 || (r < 0 && errno == ECONNRESET)) << "the bridge closed its end";
  finished_.WaitForNotification();
}

TEST_F(StreamServerTest, TheDaemonGoingAwayEndsTheStream) {
  Serve(PcmDirection::kCapture);
  Send(EncodeBridgeOpen(BridgeDirection::kCapture, kParams));
  Send(EncodeBridgeCommand(BridgeOp::kStart));
  daemon_.Reset();
  finished_.WaitForNotification();
  EXPECT_EQ(Calls().back(), "close");
}

}  // namespace
}  // namespace vhost::snd
