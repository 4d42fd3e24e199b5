#include "vhost-user-snd/file_backend.h"

#include <signal.h>
#include <sys/resource.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vhost-user-snd/wav_file.h"

namespace vhost::snd {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::vhost::testing::IsOk;
using ::vhost::testing::StatusIs;

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name);
}

std::vector<uint8_t> Ramp(size_t bytes, uint8_t from = 1) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(from + i);
  return v;
}

std::vector<uint8_t> ReadWav(const std::string& path, WavFormat* format = nullptr) {
  absl::StatusOr<WavReader> reader = WavReader::Open(path);
  EXPECT_THAT(reader, IsOk());
  if (!reader.ok()) return {};
  if (format) *format = reader->format();
  std::vector<uint8_t> out(reader->frames() * reader->format().frame_bytes());
  EXPECT_THAT(reader->Read(absl::MakeSpan(out)), IsOk());
  return out;
}

void MakeSource(const std::string& path, const WavFormat& format,
                const std::vector<uint8_t>& frames) {
  absl::StatusOr<WavWriter> writer = WavWriter::Create(path, format);
  ASSERT_THAT(writer, IsOk());
  ASSERT_THAT(writer->Write(frames), IsOk());
  ASSERT_THAT(writer->Close(), IsOk());
}

// --- playback: the sink ---

TEST(FileBackendTest, PlaybackLandsInTheSinkPeriodByPeriod) {
  const std::string path = TempPath("sink.wav");
  std::unique_ptr<FileBackend> backend = FileBackend::ForPlayback(path);
  const StreamParams params{AudioFormat::kS16, 48000, 2, 4};
  ASSERT_THAT(backend->Open(params), IsOk());
  ASSERT_THAT(backend->Start(), IsOk());
  const std::vector<uint8_t> played = Ramp(3 * params.period_bytes());
  for (int i = 0; i < 3; ++i) {
    ASSERT_THAT(backend->Write(absl::MakeConstSpan(played).subspan(i * params.period_bytes(),
                                                                   params.period_bytes())),
                IsOk());
  }
  EXPECT_EQ(backend->frames_transferred(), 12u);
  // Readable while the stream still runs (a daemon killed now leaves this file).
  WavFormat format;
  EXPECT_EQ(ReadWav(path, &format), played);
  EXPECT_EQ(format, (WavFormat{AudioFormat::kS16, 48000, 2}));
  // STOP, PREPARE with the same parameters (as after an XRUN), START: the sink goes on.
  ASSERT_THAT(backend->Stop(), IsOk());
  ASSERT_THAT(backend->Open(params), IsOk());
  ASSERT_THAT(backend->Start(), IsOk());
  ASSERT_THAT(backend->Write(absl::MakeConstSpan(played).subspan(0, 4)), IsOk());
  EXPECT_EQ(ReadWav(path).size(), played.size() + 4);
  ASSERT_THAT(backend->Close(), IsOk());
  EXPECT_EQ(ReadWav(path).size(), played.size() + 4);
}

TEST(FileBackendTest, NewParametersStartANewSink) {
  const std::string path = TempPath("sink_reopen.wav");
  std::unique_ptr<FileBackend> backend = FileBackend::ForPlayback(path);
  ASSERT_THAT(backend->Open({AudioFormat::kS16, 48000, 2, 4}), IsOk());
  ASSERT_THAT(backend->Start(), IsOk());
  ASSERT_THAT(backend->Write(Ramp(16)), IsOk());
  ASSERT_THAT(backend->Open({AudioFormat::kU8, 8000, 1, 4}), IsOk());
  ASSERT_THAT(backend->Start(), IsOk());
  ASSERT_THAT(backend->Write(Ramp(3, 9)), IsOk());
  ASSERT_THAT(backend->Close(), IsOk());
  WavFormat format;
  EXPECT_THAT(ReadWav(path, &format), ElementsAre(9, 10, 11));
  EXPECT_EQ(format, (WavFormat{AudioFormat::kU8, 8000, 1}));
}

TEST(FileBackendTest, PlaybackChecksStateAndDirection) {
  std::unique_ptr<FileBackend> backend = FileBackend::ForPlayback(TempPath("sink_state.wav"));
  EXPECT_EQ(backend->capabilities().formats.size(), std::size(kAllFormats));
  EXPECT_THAT(backend->Open({AudioFormat::kS16, 48000, 0, 4}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(backend->Open({AudioFormat::kS16, 48000, 1, 4}), IsOk());
  EXPECT_THAT(backend->Write(Ramp(2)), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_THAT(backend->Start(), IsOk());
  EXPECT_THAT(backend->Write(Ramp(3)), StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<uint8_t> buffer(2);
  EXPECT_THAT(backend->Read(absl::MakeSpan(buffer)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(FileBackendTest, ASinkThatCannotBeMadeIsUnavailable) {
  std::unique_ptr<FileBackend> backend = FileBackend::ForPlayback("/nonexistent/dir/sink.wav");
  EXPECT_THAT(backend->Open({AudioFormat::kS16, 48000, 2, 4}),
              StatusIs(absl::StatusCode::kUnavailable));
}

// A file size limit (as a full disk would) makes the sink fail mid-stream. Run in a child, so
// the limit stays there: exits 0 only if the backend said Unavailable, kept saying it, and left
// a readable file with what was written before.
void PlayIntoALimitedFile(const std::string& path) {
  signal(SIGXFSZ, SIG_IGN);
  const rlimit limit{44 + 64, 44 + 64};
  if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(10);
  std::unique_ptr<FileBackend> backend = FileBackend::ForPlayback(path);
  if (!backend->Open({AudioFormat::kS16, 48000, 2, 16}).ok()) _exit(11);
  if (!backend->Start().ok()) _exit(12);
  if (!backend->Write(Ramp(64)).ok()) _exit(13);
  if (backend->Write(Ramp(64)).code() != absl::StatusCode::kUnavailable) _exit(14);
  if (backend->Write(Ramp(64)).code() != absl::StatusCode::kUnavailable) _exit(15);
  {
    absl::StatusOr<WavReader> reader = WavReader::Open(path);
    if (!reader.ok() || reader->frames() != 16) _exit(16);
  }
  // Open again, same parameters: the sink is tried afresh (a new file) and takes frames again.
  if (!backend->Open({AudioFormat::kS16, 48000, 2, 16}).ok()) _exit(17);
  if (!backend->Start().ok()) _exit(18);
  if (!backend->Write(Ramp(4)).ok()) _exit(19);
  if (!backend->Close().ok()) _exit(20);
  absl::StatusOr<WavReader> reader = WavReader::Open(path);
  _exit(reader.ok() && reader->frames() == 1 ? 0 : 21);
}

// A sink whose last fix-up fails (its pad byte past the limit) still lets the next Open make a
// new one.
void ReopenAfterAFailedClose(const std::string& path) {
  signal(SIGXFSZ, SIG_IGN);
  const rlimit limit{44 + 3, 44 + 3};
  if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(10);
  std::unique_ptr<FileBackend> backend = FileBackend::ForPlayback(path);
  if (!backend->Open({AudioFormat::kS24_3, 48000, 1, 16}).ok()) _exit(11);
  if (!backend->Start().ok()) _exit(12);
  if (!backend->Write(Ramp(3)).ok()) _exit(13);
  if (!backend->Open({AudioFormat::kS16, 48000, 1, 16}).ok()) _exit(14);
  absl::StatusOr<WavReader> reader = WavReader::Open(path);
  _exit(reader.ok() && reader->format().format == AudioFormat::kS16 ? 0 : 15);
}

TEST(FileBackendTest, ASinkThatStopsTakingWritesIsUnavailableNotACrash) {
  EXPECT_EXIT(PlayIntoALimitedFile(TempPath("sink_limited.wav")), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(ReopenAfterAFailedClose(TempPath("sink_limited_pad.wav")),
              ::testing::ExitedWithCode(0), "");
}

// --- capture: the source ---

TEST(FileBackendTest, CaptureReadsTheSourceThenSilence) {
  const std::string path = TempPath("source.wav");
  const WavFormat format{AudioFormat::kU8, 8000, 2};
  const std::vector<uint8_t> recorded = Ramp(10);  // 5 frames
  MakeSource(path, format, recorded);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileBackend> backend,
                       FileBackend::ForCapture(path, CaptureEnd::kSilence));
  const StreamParams params{AudioFormat::kU8, 8000, 2, 4};
  ASSERT_THAT(backend->Open(params), IsOk());
  ASSERT_THAT(backend->Start(), IsOk());
  std::vector<uint8_t> period(params.period_bytes());
  ASSERT_THAT(backend->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_THAT(period, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  ASSERT_THAT(backend->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_THAT(period, ElementsAre(9, 10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80));
  ASSERT_THAT(backend->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_THAT(period, Each(0x80));
  EXPECT_EQ(backend->frames_transferred(), 12u);
  // RELEASE, then a new recording starts from the first frame again.
  ASSERT_THAT(backend->Close(), IsOk());
  ASSERT_THAT(backend->Open(params), IsOk());
  ASSERT_THAT(backend->Start(), IsOk());
  ASSERT_THAT(backend->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_THAT(period, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
}

TEST(FileBackendTest, CaptureCanLoop) {
  const std::string path = TempPath("source_loop.wav");
  MakeSource(path, {AudioFormat::kS16, 8000, 1}, Ramp(6));  // 3 frames
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileBackend> backend,
                       FileBackend::ForCapture(path, CaptureEnd::kLoop));
  ASSERT_THAT(backend->Open({AudioFormat::kS16, 8000, 1, 4}), IsOk());
  ASSERT_THAT(backend->Start(), IsOk());
  std::vector<uint8_t> period(8 * 2);  // 8 frames, more than twice the file
  ASSERT_THAT(backend->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_THAT(period, ElementsAre(1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4));
}

TEST(FileBackendTest, AnEmptySourceLoopsToSilence) {
  const std::string path = TempPath("source_empty.wav");
  MakeSource(path, {AudioFormat::kS16, 8000, 1}, {});
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileBackend> backend,
                       FileBackend::ForCapture(path, CaptureEnd::kLoop));
  ASSERT_THAT(backend->Open({AudioFormat::kS16, 8000, 1, 4}), IsOk());
  ASSERT_THAT(backend->Start(), IsOk());
  std::vector<uint8_t> period(8, 1);
  ASSERT_THAT(backend->Read(absl::MakeSpan(period)), IsOk());
  EXPECT_THAT(period, Each(0));
}

TEST(FileBackendTest, CaptureOffersAndTakesOnlyTheSourcesFormat) {
  const std::string path = TempPath("source_format.wav");
  MakeSource(path, {AudioFormat::kS24_3, 44100, 2}, Ramp(60));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileBackend> backend,
                       FileBackend::ForCapture(path, CaptureEnd::kSilence));
  const Capabilities caps = backend->capabilities();
  EXPECT_THAT(caps.formats, ElementsAre(AudioFormat::kS24_3));
  EXPECT_THAT(caps.rates, ElementsAre(44100u));
  EXPECT_EQ(caps.channels_min, 2u);
  EXPECT_EQ(caps.channels_max, 2u);
  for (const StreamParams& wrong : {StreamParams{AudioFormat::kS16, 44100, 2, 4},
                                    StreamParams{AudioFormat::kS24_3, 48000, 2, 4},
                                    StreamParams{AudioFormat::kS24_3, 44100, 1, 4}}) {
    absl::Status status = backend->Open(wrong);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument)) << wrong.ToString();
    EXPECT_THAT(std::string(status.message()), HasSubstr("holds S24_3LE 44100 Hz 2 ch"));
  }
  EXPECT_THAT(backend->Open({AudioFormat::kS24_3, 44100, 2, 4}), IsOk());
}

TEST(FileBackendTest, ASourceThatIsNoWavFileIsRefusedAtTheStart) {
  EXPECT_THAT(FileBackend::ForCapture("/nonexistent.wav", CaptureEnd::kSilence),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(FileBackend::ForCapture("/dev/null", CaptureEnd::kSilence),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost::snd
