// PipeWirePcm against a headless PipeWire of the test's own: pipewire and WirePlumber with
// tests/e2e/pipewire/ (the config tests/e2e/pipewire_host.py uses), in a fresh
// XDG_RUNTIME_DIR, with a 48 kHz null sink, `test-sink`, that drives the graph at the wall
// clock. What is played is recorded from the sink's monitor with pw-record; what is captured
// comes from pw-play as a source node, `test-source`. S16 at 48 kHz passes PipeWire
// bit-exact, so the samples are compared exactly.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/base/unique_fd.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_process.h"
#include "vhost-user-snd/bridge/host_pcm.h"
#include "vhost-user-snd/bridge/pipewire_server.h"
#include "vhost-user-snd/wav_file.h"

namespace vhost::snd {
namespace {

using frontend::DaemonProcess;

// Long periods (50 ms, a 200 ms ring): a test thread slowed down by the sanitizers or a busy
// machine must not underrun or overrun, which would put gaps into the compared samples.
constexpr uint32_t kPeriod = 2400;
constexpr StreamParams kParams{AudioFormat::kS16, 48000, 2, kPeriod};

std::string ConfigDir() {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"), "/tests/e2e/pipewire");
}

int ThreadCount() {
  int n = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
    closedir(dir);
  }
  return n;
}

std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool Contains(const std::vector<uint8_t>& haystack, const std::vector<uint8_t>& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

// `frames` S16 stereo frames: a `hz` sine on the left, a ramp on the right (so that a
// channel swap or a lost frame shows).
std::vector<uint8_t> Tone(size_t frames, double hz) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i < frames; ++i) {
    const auto left =
        static_cast<int16_t>(std::lround(12000 * std::sin(2 * M_PI * hz * i / 48000)));
    const auto right = static_cast<int16_t>(static_cast<int>(i % 20000) - 10000);
    for (int16_t v : {left, right}) {
      out.push_back(static_cast<uint8_t>(v & 0xff));
      out.push_back(static_cast<uint8_t>((v >> 8) & 0xff));
    }
  }
  return out;
}

// Writes `value` (in [-1, 1)) as one sample of `format` at `out`; returns the float PipeWire
// makes of that sample (audioconvert's scaling: 2^7, 2^15, 2^23, 2^31 to full scale).
float Encode(AudioFormat format, double value, uint8_t* out) {
  int64_t v = 0;
  double scale = 1;
  switch (format) {
    case AudioFormat::kU8:
      scale = 128;
      v = std::lround(value * scale) + 128;
      break;
    case AudioFormat::kS16:
      scale = 32768;
      break;
    case AudioFormat::kS24_3:
      scale = 8388608;
      break;
    case AudioFormat::kS32:
      scale = 2147483648.0;
      break;
    case AudioFormat::kFloat: {
      const auto f = static_cast<float>(value);
      memcpy(out, &f, 4);
      return f;
    }
  }
  if (format != AudioFormat::kU8) v = std::llround(value * scale);
  for (uint32_t b = 0; b < BytesPerSample(format); ++b) out[b] = static_cast<uint8_t>(v >> (8 * b));
  return static_cast<float>((format == AudioFormat::kU8 ? v - 128 : v) / scale);
}

// The samples of a WAV file of 32-bit floats: what follows its "data" chunk header.
std::vector<float> FloatData(const std::vector<uint8_t>& wav) {
  static constexpr uint8_t kData[] = {'d', 'a', 't', 'a'};
  auto at = std::search(wav.begin(), wav.end(), std::begin(kData), std::end(kData));
  if (wav.end() - at < 8) return {};
  std::vector<float> out((wav.end() - at - 8) / 4);
  memcpy(out.data(), &*(at + 8), out.size() * 4);
  return out;
}

class PipeWirePcmTest : public ::testing::Test {
 protected:
  // The PipeWirePcm under test and every tool find the server through the environment
  // Create sets, before the server runs (some tests run none).
  void SetUp() override {
    auto pw = PipeWireServer::Create(ConfigDir());
    ASSERT_TRUE(pw.ok()) << pw.status();
    pw_ = *std::move(pw);
    dir_ = pw_->dir();
    run_dir_ = pw_->run_dir();
  }

  void TearDown() override { pw_.reset(); }

  // pipewire, then WirePlumber (unless `session_manager` is false: then nothing links
  // streams), ready once it has made test-sink the default sink.
  void StartServer(bool session_manager = true) {
    const absl::Status started = pw_->Start(session_manager);
    ASSERT_TRUE(started.ok()) << started;
  }

  void KillServer() {
    const absl::Status killed = pw_->Kill();
    ASSERT_TRUE(killed.ok()) << killed;
  }

  static bool Linked(const std::string& port) { return PipeWireServer::Linked(port); }

  // A source node `test-source` playing `frames` (S16 48 kHz stereo) once linked.
  void StartSource(const std::vector<uint8_t>& frames) {
    const std::string path = dir_ + "/source.wav";
    auto wav = WavWriter::Create(path, {AudioFormat::kS16, 48000, 2});
    ASSERT_TRUE(wav.ok()) << wav.status();
    ASSERT_TRUE(wav->Write(frames).ok());
    ASSERT_TRUE(wav->Close().ok());
    auto source = pw_->StartSource(path);
    ASSERT_TRUE(source.ok()) << source.status();
  }

  // Starts pw-record on the sink's monitor into `path`, in `format` (a pw-record name), and
  // waits until it is linked.
  DaemonProcess* StartRecorder(const std::string& path, const std::string& format = "s16") {
    auto recorder = pw_->StartRecorder(path, format);
    EXPECT_TRUE(recorder.ok()) << recorder.status();
    return recorder.ok() ? *recorder : nullptr;
  }

  std::unique_ptr<PipeWireServer> pw_;
  std::string dir_;
  std::string run_dir_;
};

TEST_F(PipeWirePcmTest, OpenFailsUnavailableWithoutServer) {
  auto pcm = NewPipeWirePcm("");
  EXPECT_EQ(pcm->Open(PcmDirection::kPlayback, kParams).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(pcm->Open(PcmDirection::kCapture, kParams).code(), absl::StatusCode::kUnavailable);
  // Nothing is open: the stream calls fail cleanly.
  const std::vector<uint8_t> period(kParams.period_bytes());
  EXPECT_EQ(pcm->Start().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(pcm->Write(period).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(pcm->DelayFrames(), 0u);
}

TEST_F(PipeWirePcmTest, RejectsParametersItCannotName) {
  StreamParams params = kParams;
  params.period_frames = 0;
  EXPECT_EQ(NewPipeWirePcm("")->Open(PcmDirection::kPlayback, params).code(),
            absl::StatusCode::kInvalidArgument);
  // Every format and rate, but no more channels than a SPA stream carries (64).
  const Capabilities caps = NewPipeWirePcm("")->Probe(PcmDirection::kCapture);
  EXPECT_EQ(caps.formats.size(), std::size(kAllFormats));
  EXPECT_EQ(caps.rates.size(), std::size(kVirtioRates));
  EXPECT_EQ(caps.channels_max, 64u);
  params = kParams;
  params.channels = 65;
  EXPECT_EQ(NewPipeWirePcm("")->Open(PcmDirection::kPlayback, params).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PipeWirePcmTest, PlaybackReachesTheSinkBitExact) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string recording = dir_ + "/sink.wav";
  DaemonProcess* recorder = StartRecorder(recording);
  ASSERT_NE(recorder, nullptr);

  const int threads_before = ThreadCount();
  auto pcm = NewPipeWirePcm("test-sink");
  ASSERT_TRUE(pcm->Open(PcmDirection::kPlayback, kParams).ok());
  EXPECT_GT(ThreadCount(), threads_before);  // the stream's loop
  ASSERT_TRUE(pcm->Start().ok());
  // Half a second of a 997 Hz tone, then silence: Write blocks at the sink's pace, so once
  // the ring's worth of silence after it is written, the tone has reached the sink.
  const std::vector<uint8_t> tone = Tone(24000, 997);
  for (size_t at = 0; at < tone.size(); at += kParams.period_bytes()) {
    ASSERT_TRUE(pcm->Write({tone.data() + at, kParams.period_bytes()}).ok());
  }
  const std::vector<uint8_t> silence(kParams.period_bytes());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(pcm->Write(silence).ok());
  EXPECT_TRUE(Linked("vhost-user-snd-playback:output_FL"));
  pcm->Close();
  EXPECT_EQ(ThreadCount(), threads_before);  // Close leaves no thread behind

  // SIGINT: pw-record finishes the file.
  ASSERT_TRUE(recorder->Signal(SIGINT).ok());
  ASSERT_TRUE(recorder->Wait(absl::Seconds(10)).ok());
  EXPECT_TRUE(Contains(ReadFile(recording), tone)) << "the tone is not in the sink bit-exact";
}

// What was written before Stop is played, not cut: the daemon already told the guest it was.
TEST_F(PipeWirePcmTest, StopPlaysOutWhatWasWritten) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string recording = dir_ + "/sink.wav";
  DaemonProcess* recorder = StartRecorder(recording);
  ASSERT_NE(recorder, nullptr);
  auto pcm = NewPipeWirePcm("test-sink");
  ASSERT_TRUE(pcm->Open(PcmDirection::kPlayback, kParams).ok());
  ASSERT_TRUE(pcm->Start().ok());
  const std::vector<uint8_t> tone = Tone(3 * kPeriod, 997);
  ASSERT_TRUE(pcm->Write(tone).ok());
  ASSERT_TRUE(pcm->Stop().ok());
  EXPECT_EQ(pcm->DelayFrames() >= 3 * kPeriod, false) << "Stop returned before playing out";
  pcm->Close();
  ASSERT_TRUE(recorder->Signal(SIGINT).ok());
  ASSERT_TRUE(recorder->Wait(absl::Seconds(10)).ok());
  EXPECT_TRUE(Contains(ReadFile(recording), tone)) << "the end of the sound was cut";
}

TEST_F(PipeWirePcmTest, CaptureReadsTheSourceBitExact) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // pw-play leaves out the last few ms of a file: a second of it, the first half compared.
  const std::vector<uint8_t> file = Tone(48000, 441);
  const std::vector<uint8_t> expected(file.begin(), file.begin() + file.size() / 2);
  ASSERT_NO_FATAL_FAILURE(StartSource(file));

  auto pcm = NewPipeWirePcm("test-source");
  ASSERT_TRUE(pcm->Open(PcmDirection::kCapture, kParams).ok());
  ASSERT_TRUE(pcm->Start().ok());
  std::vector<uint8_t> captured;
  std::vector<uint8_t> period(kParams.period_bytes());
  // The source starts once linked, after some silence: a few seconds of periods at most.
  for (int i = 0; i < 100 && !Contains(captured, expected); ++i) {
    ASSERT_TRUE(pcm->Read(absl::MakeSpan(period)).ok());
    captured.insert(captured.end(), period.begin(), period.end());
  }
  EXPECT_TRUE(Contains(captured, expected)) << "the source's samples were not captured exactly";
  pcm->Close();
}

TEST_F(PipeWirePcmTest, ServerGoneMidStreamIsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(StartSource(Tone(480000, 441)));  // ten seconds: plays throughout
  auto playback = NewPipeWirePcm("test-sink");
  auto capture = NewPipeWirePcm("test-source");
  ASSERT_TRUE(playback->Open(PcmDirection::kPlayback, kParams).ok());
  ASSERT_TRUE(capture->Open(PcmDirection::kCapture, kParams).ok());
  ASSERT_TRUE(playback->Start().ok());
  ASSERT_TRUE(capture->Start().ok());
  std::vector<uint8_t> period(kParams.period_bytes());
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(playback->Write(period).ok());
    ASSERT_TRUE(capture->Read(absl::MakeSpan(period)).ok());
  }

  ASSERT_NO_FATAL_FAILURE(KillServer());
  // What is in the rings may still go through; then the loss shows, as UnavailableError.
  absl::Status played, recorded;
  for (int i = 0; i < 20 && played.ok(); ++i) played = playback->Write(period);
  for (int i = 0; i < 20 && recorded.ok(); ++i) recorded = capture->Read(absl::MakeSpan(period));
  EXPECT_EQ(played.code(), absl::StatusCode::kUnavailable) << played;
  EXPECT_EQ(recorded.code(), absl::StatusCode::kUnavailable) << recorded;
  // Seen as the server's loss, not as a stream that merely stopped moving.
  EXPECT_EQ(played.message().find("not linked"), absl::string_view::npos) << played;
  EXPECT_EQ(recorded.message().find("not linked"), absl::string_view::npos) << recorded;
  EXPECT_EQ(playback->DelayFrames(), 0u);
  playback->Close();
  capture->Close();
  // The next Open tries afresh, and there is no server now.
  EXPECT_EQ(playback->Open(PcmDirection::kPlayback, kParams).code(),
            absl::StatusCode::kUnavailable);
}

// Each format reaches the sink as the sample values it encodes (PipeWire's float, recorded as
// such): a wrong mapping to SPA formats (S24 as 4-byte S24_32, say) would show as garbage.
TEST_F(PipeWirePcmTest, EveryFormatReachesTheSinkAsItsValues) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  constexpr size_t kFrames = 4 * kPeriod;
  for (AudioFormat format : kAllFormats) {
    SCOPED_TRACE(AudioFormatName(format));
    // The left channel a sine, the right a ramp that is never 0 (it finds the first frame).
    std::vector<double> values;
    for (size_t i = 0; i < kFrames; ++i) {
      values.push_back(0.37 * std::sin(2 * M_PI * 1000 * i / 48000));
      values.push_back(-0.75 + 0.5 * static_cast<double>(i) / kFrames);
    }
    StreamParams params = kParams;
    params.format = format;
    std::vector<uint8_t> frames(values.size() * BytesPerSample(format));
    std::vector<float> expected;
    for (size_t i = 0; i < values.size(); ++i) {
      expected.push_back(Encode(format, values[i], &frames[i * BytesPerSample(format)]));
    }

    const std::string recording = absl::StrCat(dir_, "/sink-", AudioFormatName(format), ".wav");
    DaemonProcess* recorder = StartRecorder(recording, "f32");
    ASSERT_NE(recorder, nullptr);
    auto pcm = NewPipeWirePcm("test-sink");
    ASSERT_TRUE(pcm->Open(PcmDirection::kPlayback, params).ok());
    ASSERT_TRUE(pcm->Start().ok());
    for (size_t at = 0; at < frames.size(); at += params.period_bytes()) {
      ASSERT_TRUE(pcm->Write({frames.data() + at, params.period_bytes()}).ok());
    }
    std::vector<uint8_t> silence(params.period_bytes());
    FillSilence(format, absl::MakeSpan(silence));
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(pcm->Write(silence).ok());
    pcm->Close();
    ASSERT_TRUE(recorder->Signal(SIGINT).ok());
    ASSERT_TRUE(recorder->Wait(absl::Seconds(10)).ok());

    const std::vector<float> got = FloatData(ReadFile(recording));
    size_t first = 1;
    while (first < got.size() && got[first] == 0) first += 2;
    ASSERT_LE(first - 1 + expected.size(), got.size()) << "the sink got too little";
    // S32 has more bits than PipeWire's float keeps (24): within one step of those. The
    // others are exact.
    const float tolerance = format == AudioFormat::kS32 ? 1.0f / (1 << 23) : 0.0f;
    size_t wrong = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      wrong += std::fabs(got[first - 1 + i] - expected[i]) > tolerance;
    }
    EXPECT_EQ(wrong, 0u) << "of " << expected.size() << " samples";
  }
}

// A stream nothing links (no session manager runs) neither plays nor hangs: Write fills the
// ring, then gives up after a bounded wait.
TEST_F(PipeWirePcmTest, UnlinkedStreamDoesNotHang) {
  ASSERT_NO_FATAL_FAILURE(StartServer(/*session_manager=*/false));
  auto pcm = NewPipeWirePcm("test-sink");
  ASSERT_TRUE(pcm->Open(PcmDirection::kPlayback, kParams).ok());
  ASSERT_TRUE(pcm->Start().ok());
  const std::vector<uint8_t> period(kParams.period_bytes());
  absl::Status status;
  for (int i = 0; i < 10 && status.ok(); ++i) status = pcm->Write(period);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_GE(pcm->DelayFrames(), 4 * kPeriod);  // the ring is full of what was not played
  // Stop waits (bounded) for the ring to play out, then drops what did not; writing needs a
  // Start again, which finds the ring empty.
  ASSERT_TRUE(pcm->Stop().ok());
  EXPECT_EQ(pcm->DelayFrames(), 0u);
  EXPECT_EQ(pcm->Write(period).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(pcm->Start().ok());
  EXPECT_TRUE(pcm->Write(period).ok());
  EXPECT_EQ(pcm->DelayFrames(), kPeriod);
}

// Mono and more channels than the sink has (no positions: PipeWire's AUX channels) play too.
TEST_F(PipeWirePcmTest, OtherChannelCountsPlay) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (uint32_t channels : {1u, 6u}) {
    SCOPED_TRACE(channels);
    StreamParams params = kParams;
    params.channels = channels;
    auto pcm = NewPipeWirePcm("test-sink");
    ASSERT_TRUE(pcm->Open(PcmDirection::kPlayback, params).ok());
    ASSERT_TRUE(pcm->Start().ok());
    // Eight periods through a ring of four: the graph took at least four.
    const std::vector<uint8_t> period(params.period_bytes());
    for (int i = 0; i < 8; ++i) ASSERT_TRUE(pcm->Write(period).ok()) << "period " << i;
  }
}

// The guest late: the sink gets silence after what was written, never a repeat of it.
TEST_F(PipeWirePcmTest, UnderrunPlaysSilence) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // Recorded into a FIFO (".raw": bare S16 frames) that the test reads as the sink hears it.
  const std::string recording = dir_ + "/sink.raw";
  ASSERT_EQ(mkfifo(recording.c_str(), 0600), 0);
  // Opened before pw-record (without waiting for a writer), which could not open it
  // otherwise; then reads wait for data.
  UniqueFd fifo(open(recording.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(fifo.valid());
  ASSERT_EQ(fcntl(fifo.get(), F_SETFL, 0), 0);
  DaemonProcess* recorder = StartRecorder(recording);
  ASSERT_NE(recorder, nullptr);
  auto pcm = NewPipeWirePcm("test-sink");
  ASSERT_TRUE(pcm->Open(PcmDirection::kPlayback, kParams).ok());
  ASSERT_TRUE(pcm->Start().ok());
  const std::vector<uint8_t> tone = Tone(kPeriod, 997);
  ASSERT_TRUE(pcm->Write(tone).ok());
  // A period of silence after it, as the daemon writes when the guest has nothing: the graph
  // starts taking frames once two periods are in.
  ASSERT_TRUE(pcm->Write(std::vector<uint8_t>(kParams.period_bytes())).ok());
  // Nothing more is written while the sink records a second after the tone.
  std::vector<uint8_t> got;
  auto tone_at = got.end();
  while (tone_at == got.end() || got.end() - (tone_at + tone.size()) < 4 * 48000) {
    pollfd pfd{fifo.get(), POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 20000), 1) << "the sink records nothing";
    uint8_t buf[65536];
    const ssize_t n = read(fifo.get(), buf, sizeof(buf));
    ASSERT_GT(n, 0) << "pw-record ended";
    got.insert(got.end(), buf, buf + n);
    tone_at = std::search(got.begin(), got.end(), tone.begin(), tone.end());
    ASSERT_LT(got.size(), 10u * 4 * 48000) << "the tone is not in ten seconds of the sink";
  }
  pcm->Close();
  ASSERT_TRUE(recorder->Signal(SIGINT).ok());
  fifo.Reset();  // pw-record must not wait for us to read
  ASSERT_TRUE(recorder->Wait(absl::Seconds(10)).ok());

  EXPECT_TRUE(std::all_of(tone_at + tone.size(), got.end(), [](uint8_t b) { return b == 0; }))
      << "something other than silence followed the tone";
}

// A capture reader that is late loses the oldest frames, not the newest: after another reader
// of the same source has read four rings' worth, the late one reads recent frames.
TEST_F(PipeWirePcmTest, LateCaptureDropsTheOldestFrames) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  // Each frame holds its own index: the left sample its low 15 bits, the right the rest.
  std::vector<uint8_t> file;
  for (uint32_t i = 0; i < 20 * kPeriod; ++i) {
    for (uint32_t v : {i & 0x7fff, i >> 15}) {
      file.push_back(static_cast<uint8_t>(v));
      file.push_back(static_cast<uint8_t>(v >> 8));
    }
  }
  const auto index = [](const uint8_t* frame) {
    return (frame[0] | frame[1] << 8) + ((frame[2] | frame[3] << 8) << 15);
  };
  ASSERT_NO_FATAL_FAILURE(StartSource(file));
  auto late = NewPipeWirePcm("test-source");
  auto prompt = NewPipeWirePcm("test-source");
  ASSERT_TRUE(late->Open(PcmDirection::kCapture, kParams).ok());
  ASSERT_TRUE(prompt->Open(PcmDirection::kCapture, kParams).ok());
  ASSERT_TRUE(late->Start().ok());
  ASSERT_TRUE(prompt->Start().ok());
  std::vector<uint8_t> period(kParams.period_bytes());
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(prompt->Read(absl::MakeSpan(period)).ok());
  const int prompt_last = index(&period[period.size() - 4]);
  ASSERT_GT(prompt_last, static_cast<int>(8 * kPeriod)) << "the source did not play";

  ASSERT_TRUE(late->Read(absl::MakeSpan(period)).ok());
  // Its ring (four periods) holds only what came last, and in order.
  const int first = index(&period[0]);
  EXPECT_GT(first, prompt_last - static_cast<int>(5 * kPeriod));
  for (size_t f = 1; f < kPeriod; ++f) {
    ASSERT_EQ(index(&period[4 * f]), first + static_cast<int>(f)) << "frame " << f;
  }
}

// A socket that accepts connections and never answers: Open gives up after a bounded wait.
TEST_F(PipeWirePcmTest, SilentServerFailsOpenUnavailable) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = run_dir_ + "/pipewire-0";
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 8), 0);
  auto pcm = NewPipeWirePcm("");
  EXPECT_EQ(pcm->Open(PcmDirection::kPlayback, kParams).code(), absl::StatusCode::kUnavailable);
  close(fd);
}

}  // namespace
}  // namespace vhost::snd
