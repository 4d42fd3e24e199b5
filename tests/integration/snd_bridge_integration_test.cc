// vhost-user-snd --backend=alsa, daemon and bridge as users run them, driven by our front end:
// ALSA's own file plugin stands in for a sound card (this machine has none), so what the guest
// plays is compared with what reaches the "device" byte for byte, and a capture stream records
// a known source. The bridge killed under a running stream leaves the daemon serving, silent.
#include <linux/virtio_snd.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/base/unique_fd.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/snd_driver.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::SndDriver;
using frontend::SndPcmBuffer;
using frontend::SndSetParams;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr uint32_t kPeriodBytes = 1920;  // 10 ms of 48 kHz stereo S16

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Watches `path` for being closed after writing (inotify): the bridge's alsa-lib writes the
// file on its own thread and closes it when the stream is released.
class CloseWatch {
 public:
  explicit CloseWatch(const std::string& path) : fd_(inotify_init1(IN_CLOEXEC)) {
    if (fd_.valid()) inotify_add_watch(fd_.get(), path.c_str(), IN_CLOSE_WRITE);
  }
  // Whether the file was closed after writing within kTimeout.
  bool Wait() {
    pollfd pfd{fd_.get(), POLLIN, 0};
    return fd_.valid() && poll(&pfd, 1, absl::ToInt64Milliseconds(kTimeout)) == 1;
  }

 private:
  UniqueFd fd_;
};

// The bridge process the daemon started (its only child).
pid_t BridgePid(pid_t daemon) {
  std::ifstream children("/proc/" + std::to_string(daemon) + "/task/" + std::to_string(daemon) +
                         "/children");
  int pid = 0;
  children >> pid;
  return pid;
}

class SndBridgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("sndbr"));
    // A private asoundrc: "vhost_source" records from a file of known frames.
    source_ = session_->File("source.raw");
    source_frames_.resize(kPeriodBytes * 8);
    for (size_t i = 0; i < source_frames_.size(); ++i) {
      source_frames_[i] = static_cast<uint8_t>(i * 7 + 1);
    }
    std::ofstream(source_, std::ios::binary)
        .write(reinterpret_cast<const char*>(source_frames_.data()), source_frames_.size());
    std::ofstream(session_->File(".asoundrc"))
        << "pcm.vhost_source {\n  type file\n  slave.pcm null\n  file \"/dev/null\"\n"
        << "  infile \"" << source_ << "\"\n  format raw\n}\n";
    setenv("HOME", session_->dir().c_str(), 1);  // the bridge inherits it
  }

  absl::Status StartDaemon(const std::string& streams, const std::string& device) {
    return session_->Start(RunfilePath("vhost-user-snd/vhost-user-snd"),
                           {"--socket-path=" + session_->socket(), "--backend=alsa",
                            "--streams=" + streams, "--audio-device=" + device});
  }

  absl::StatusOr<std::unique_ptr<SndDriver>> Driver() {
    SndDriver::Options options;
    options.timeout = kTimeout;
    return SndDriver::Start(session_->socket(), options);
  }

  std::unique_ptr<DaemonSession> session_;
  std::string source_;
  std::vector<uint8_t> source_frames_;
};

TEST_F(SndBridgeTest, PlaybackReachesTheAlsaDeviceExactly) {
  const std::string sink = session_->File("sink.raw");
  ASSERT_OK(StartDaemon("playback:2ch:48000:s16", "file:'" + sink + "',raw"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SndDriver> driver, Driver());
  ASSERT_OK(driver->SetUpAndStart(SndSetParams(0, 4 * kPeriodBytes, kPeriodBytes, 2,
                                               VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_RATE_48000)));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> tone,
                       frontend::SndSineTone(VIRTIO_SND_PCM_FMT_S16, 2, 48000, 440, 0.5, 4800));
  std::vector<SndPcmBuffer> buffers;
  for (size_t i = 0; i < 10; ++i) {
    ASSERT_OK_AND_ASSIGN(SndPcmBuffer b, driver->AllocatePcmBuffer(0, kPeriodBytes, false));
    memcpy(b.data, tone.data() + i * kPeriodBytes, kPeriodBytes);
    buffers.push_back(b);
  }
  for (const SndPcmBuffer& b : buffers) {
    ASSERT_OK_AND_ASSIGN(virtio_snd_pcm_status status, driver->Transfer(b));
    EXPECT_EQ(status.status, VIRTIO_SND_S_OK);
  }
  ASSERT_OK_AND_ASSIGN(uint32_t code, driver->PcmCommand(VIRTIO_SND_R_PCM_STOP, 0));
  EXPECT_EQ(code, VIRTIO_SND_S_OK);
  // RELEASE closes the ALSA device, which finishes the file.
  CloseWatch closed(sink);
  ASSERT_OK_AND_ASSIGN(code, driver->PcmCommand(VIRTIO_SND_R_PCM_RELEASE, 0));
  EXPECT_EQ(code, VIRTIO_SND_S_OK);
  ASSERT_TRUE(closed.Wait()) << "the bridge did not close the ALSA device";
  EXPECT_EQ(ReadFile(sink), tone);
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(SndBridgeTest, CaptureRecordsTheAlsaDevice) {
  ASSERT_OK(StartDaemon("capture:2ch:48000:s16", "vhost_source"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SndDriver> driver, Driver());
  ASSERT_OK(driver->SetUpAndStart(SndSetParams(0, 4 * kPeriodBytes, kPeriodBytes, 2,
                                               VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_RATE_48000)));
  std::vector<uint8_t> recorded;
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(SndPcmBuffer b, driver->AllocatePcmBuffer(0, kPeriodBytes, true));
    ASSERT_OK_AND_ASSIGN(virtio_snd_pcm_status status, driver->Transfer(b));
    EXPECT_EQ(status.status, VIRTIO_SND_S_OK);
    recorded.insert(recorded.end(), b.data, b.data + kPeriodBytes);
  }
  // The first period may be silence (the bridge had not recorded it yet by the daemon's
  // clock); after that the source follows frame for frame.
  size_t lead = 0;
  while (lead < kPeriodBytes && recorded[lead] == 0) ++lead;
  lead -= lead % 4;
  ASSERT_LT(lead, kPeriodBytes) << "nothing recorded in the first two periods";
  const size_t n = recorded.size() - lead;
  EXPECT_EQ(std::vector<uint8_t>(recorded.begin() + lead, recorded.end()),
            std::vector<uint8_t>(source_frames_.begin(), source_frames_.begin() + n));
}

TEST_F(SndBridgeTest, TheDaemonOutlivesItsBridge) {
  const std::string sink = session_->File("sink.raw");
  ASSERT_OK(StartDaemon("playback:2ch:48000:s16", "file:'" + sink + "',raw"));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<SndDriver> driver, Driver());
  ASSERT_OK(driver->SetUpAndStart(SndSetParams(0, 4 * kPeriodBytes, kPeriodBytes, 2,
                                               VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_RATE_48000)));
  ASSERT_OK_AND_ASSIGN(SndPcmBuffer b, driver->AllocatePcmBuffer(0, kPeriodBytes, false));
  ASSERT_OK_AND_ASSIGN(virtio_snd_pcm_status status, driver->Transfer(b));
  const pid_t bridge = BridgePid(session_->daemon()->pid());
  ASSERT_GT(bridge, 0) << "the daemon started no bridge";
  ASSERT_EQ(kill(bridge, SIGKILL), 0);
  // Playback goes on at the sample clock, silent; the daemon serves on.
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(status, driver->Transfer(b));
    EXPECT_EQ(status.status, VIRTIO_SND_S_OK);
  }
  ASSERT_OK_AND_ASSIGN(uint32_t code, driver->PcmCommand(VIRTIO_SND_R_PCM_STOP, 0));
  EXPECT_EQ(code, VIRTIO_SND_S_OK);
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(SndBridgeTest, AMissingBridgeFailsTheStart) {
  absl::Status started = session_->Start(RunfilePath("vhost-user-snd/vhost-user-snd"),
                                         {"--socket-path=" + session_->socket(), "--backend=alsa",
                                          "--bridge=/nonexistent/vhost-user-snd-bridge"});
  EXPECT_FALSE(started.ok());
}

}  // namespace
}  // namespace vhost
