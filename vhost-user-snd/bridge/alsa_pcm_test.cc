// AlsaPcm on alsa-lib's own plugins (no sound card here): "null", and "file" over null, which
// writes what is played to a file and reads what is recorded from one.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vhost-user-snd/bridge/host_pcm.h"

namespace vhost::snd {
namespace {

using ::testing::Contains;
using ::vhost::testing::IsOk;
using ::vhost::testing::StatusIs;

const StreamParams kParams{AudioFormat::kS16, 48000, 2, 480};

std::string TempPath(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::vector<uint8_t> Pattern(size_t bytes, uint8_t seed) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(i * 13 + seed);
  return v;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// An asoundrc in a private HOME, written before alsa-lib first reads its configuration:
// "vhost_source" records from `source`.
std::string SourcePath() {
  static const std::string path = [] {
    const std::string source = TempPath("source.raw");
    std::ofstream(source, std::ios::binary)
        .write(reinterpret_cast<const char*>(Pattern(96000, 5).data()), 96000);
    const std::string home = TempPath("home");
    mkdir(home.c_str(), 0700);
    std::ofstream(home + "/.asoundrc")
        << "pcm.vhost_source {\n  type file\n  slave.pcm null\n"
        << "  file \"/dev/null\"\n  infile \"" << source << "\"\n  format raw\n}\n";
    setenv("HOME", home.c_str(), 1);
    return source;
  }();
  return path;
}

class AlsaPcmTest : public ::testing::Test {
 protected:
  void SetUp() override { SourcePath(); }
};

TEST_F(AlsaPcmTest, ProbeReportsWhatTheDeviceTakes) {
  Capabilities caps = NewAlsaPcm("null")->Probe(PcmDirection::kPlayback);
  EXPECT_THAT(caps.formats, Contains(AudioFormat::kS16));
  EXPECT_THAT(caps.formats, Contains(AudioFormat::kS24_3));
  EXPECT_THAT(caps.rates, Contains(48000u));
  EXPECT_GE(caps.channels_max, 2u);
}

TEST_F(AlsaPcmTest, ADeviceThatDoesNotExistIsUnavailable) {
  std::unique_ptr<HostPcm> pcm = NewAlsaPcm("hw:97,0");
  EXPECT_THAT(pcm->Open(PcmDirection::kPlayback, kParams),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(pcm->Write(std::vector<uint8_t>(kParams.period_bytes())),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // Probe of a missing device offers everything rather than failing the daemon's start.
  EXPECT_THAT(pcm->Probe(PcmDirection::kPlayback).formats, Contains(AudioFormat::kFloat));
}

TEST_F(AlsaPcmTest, PlayedFramesReachTheDeviceExactly) {
  const std::string sink = TempPath("sink.raw");
  std::unique_ptr<HostPcm> pcm = NewAlsaPcm("file:'" + sink + "',raw");
  ASSERT_THAT(pcm->Open(PcmDirection::kPlayback, kParams), IsOk());
  ASSERT_THAT(pcm->Start(), IsOk());
  const std::vector<uint8_t> played = Pattern(kParams.period_bytes() * 10, 1);
  for (size_t i = 0; i < 10; ++i) {
    ASSERT_THAT(pcm->Write(absl::MakeConstSpan(played).subspan(i * kParams.period_bytes(),
                                                               kParams.period_bytes())),
                IsOk());
  }
  pcm->Close();
  EXPECT_EQ(ReadFile(sink), played);
}

TEST_F(AlsaPcmTest, ReopeningWithOtherParametersWorks) {
  const std::string sink = TempPath("sink2.raw");
  std::unique_ptr<HostPcm> pcm = NewAlsaPcm("file:'" + sink + "',raw");
  ASSERT_THAT(pcm->Open(PcmDirection::kPlayback, kParams), IsOk());
  const StreamParams mono{AudioFormat::kS32, 44100, 1, 441};
  ASSERT_THAT(pcm->Open(PcmDirection::kPlayback, mono), IsOk());
  ASSERT_THAT(pcm->Start(), IsOk());
  const std::vector<uint8_t> played = Pattern(mono.period_bytes() * 3, 2);
  ASSERT_THAT(pcm->Write(played), IsOk());
  ASSERT_THAT(pcm->Stop(), IsOk());
  pcm->Close();
  EXPECT_EQ(ReadFile(sink), played) << "the reopened device took the new format";
}

TEST_F(AlsaPcmTest, RecordedFramesComeFromTheDevice) {
  std::unique_ptr<HostPcm> pcm = NewAlsaPcm("vhost_source");
  ASSERT_THAT(pcm->Open(PcmDirection::kCapture, kParams), IsOk());
  ASSERT_THAT(pcm->Start(), IsOk());
  std::vector<uint8_t> recorded(kParams.period_bytes() * 4);
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_THAT(pcm->Read(absl::MakeSpan(recorded).subspan(i * kParams.period_bytes(),
                                                           kParams.period_bytes())),
                IsOk());
  }
  const std::vector<uint8_t> source = ReadFile(SourcePath());
  EXPECT_EQ(recorded, std::vector<uint8_t>(source.begin(), source.begin() + recorded.size()));
}

}  // namespace
}  // namespace vhost::snd
