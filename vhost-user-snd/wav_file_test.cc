#include "vhost-user-snd/wav_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vhost::snd {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::vhost::testing::IsOk;
using ::vhost::testing::StatusIs;

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name);
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

uint32_t Le32(const std::vector<uint8_t>& b, size_t at) {
  return b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (uint32_t{b[at + 3]} << 24);
}

// Frames whose every byte differs, so a misplaced byte shows.
std::vector<uint8_t> Pattern(size_t bytes, uint8_t seed = 1) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i < bytes; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
  return v;
}

// --- building WAV files by hand ---

void Put(std::vector<uint8_t>& b, const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
void Put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(v & 0xFF);
  b.push_back(v >> 8);
}
void Put32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back((v >> (8 * i)) & 0xFF);
}
void Chunk(std::vector<uint8_t>& b, const std::string& id, const std::vector<uint8_t>& body,
           uint32_t claimed_size) {
  Put(b, id);
  Put32(b, claimed_size);
  b.insert(b.end(), body.begin(), body.end());
}
void Chunk(std::vector<uint8_t>& b, const std::string& id, const std::vector<uint8_t>& body) {
  Chunk(b, id, body, body.size());
  if (body.size() % 2) b.push_back(0);
}
std::vector<uint8_t> FmtBody(uint16_t tag, uint16_t channels, uint32_t rate, uint16_t align,
                             uint16_t bits) {
  std::vector<uint8_t> f;
  Put16(f, tag);
  Put16(f, channels);
  Put32(f, rate);
  Put32(f, rate * align);
  Put16(f, align);
  Put16(f, bits);
  return f;
}
std::vector<uint8_t> Riff(const std::vector<uint8_t>& chunks, uint32_t claimed = 0) {
  std::vector<uint8_t> b;
  Put(b, "RIFF");
  Put32(b, claimed ? claimed : 4 + chunks.size());
  Put(b, "WAVE");
  b.insert(b.end(), chunks.begin(), chunks.end());
  return b;
}

absl::StatusOr<WavReader> OpenBytes(const std::vector<uint8_t>& bytes) {
  static int n = 0;
  std::string path = TempPath(absl::StrCat("hostile_", n++, ".wav"));
  WriteAll(path, bytes);
  return WavReader::Open(path);
}

std::vector<uint8_t> ReadFrames(WavReader& reader, size_t frames) {
  std::vector<uint8_t> out(frames * reader.format().frame_bytes());
  absl::StatusOr<size_t> got = reader.Read(absl::MakeSpan(out));
  EXPECT_THAT(got, IsOk());
  out.resize(got.value_or(0) * reader.format().frame_bytes());
  return out;
}

// --- round trips ---

class WavRoundTrip : public ::testing::TestWithParam<AudioFormat> {};

TEST_P(WavRoundTrip, WhatIsWrittenReadsBackWithItsFormat) {
  const WavFormat format{GetParam(), 44100, 3};
  const std::string path = TempPath(absl::StrCat("round_", AudioFormatName(GetParam()), ".wav"));
  // 1001 frames in three writes: with S24_3 x 3 channels the data is odd-sized and padded.
  const std::vector<uint8_t> frames = Pattern(1001 * format.frame_bytes());
  {
    ASSERT_OK_AND_ASSIGN(WavWriter writer, WavWriter::Create(path, format));
    const size_t a = 100 * format.frame_bytes(), b = 900 * format.frame_bytes();
    ASSERT_THAT(writer.Write(absl::MakeConstSpan(frames).subspan(0, a)), IsOk());
    ASSERT_THAT(writer.Write(absl::MakeConstSpan(frames).subspan(a, b - a)), IsOk());
    ASSERT_THAT(writer.Write(absl::MakeConstSpan(frames).subspan(b)), IsOk());
    EXPECT_EQ(writer.data_bytes(), frames.size());
    ASSERT_THAT(writer.Close(), IsOk());
  }
  const std::vector<uint8_t> file = ReadAll(path);
  EXPECT_EQ(file.size() % 2, 0u) << "the data chunk is padded to even";
  EXPECT_EQ(Le32(file, 4), file.size() - 8) << "RIFF size";

  ASSERT_OK_AND_ASSIGN(WavReader reader, WavReader::Open(path));
  EXPECT_EQ(reader.format(), format);
  EXPECT_EQ(reader.frames(), 1001u);
  EXPECT_EQ(ReadFrames(reader, 2000), frames);
  EXPECT_EQ(reader.position(), 1001u);
  EXPECT_THAT(ReadFrames(reader, 10), SizeIs(0)) << "the end of the data";
  reader.Rewind();
  EXPECT_EQ(ReadFrames(reader, 1),
            std::vector<uint8_t>(frames.begin(), frames.begin() + format.frame_bytes()));
}

INSTANTIATE_TEST_SUITE_P(AllFormats, WavRoundTrip, ::testing::ValuesIn(kAllFormats),
                         [](const auto& info) { return std::string(AudioFormatName(info.param)); });

TEST(WavWriterTest, HeaderIsTheStandardOneForPcmAndFloat) {
  const std::string pcm = TempPath("std_pcm.wav");
  ASSERT_THAT(WavWriter::Create(pcm, {AudioFormat::kS16, 48000, 2}).status(), IsOk());
  std::vector<uint8_t> b = ReadAll(pcm);
  ASSERT_EQ(b.size(), 44u) << "the canonical 44-byte header";
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "RIFF");
  EXPECT_EQ(std::string(b.begin() + 36, b.begin() + 40), "data");
  EXPECT_EQ(b[20], 1) << "format tag PCM";
  EXPECT_EQ(Le32(b, 28), 48000u * 4) << "byte rate";

  const std::string flt = TempPath("std_float.wav");
  ASSERT_THAT(WavWriter::Create(flt, {AudioFormat::kFloat, 48000, 1}).status(), IsOk());
  b = ReadAll(flt);
  EXPECT_EQ(b[20], 3) << "format tag IEEE float";
  EXPECT_EQ(std::string(b.begin() + 38, b.begin() + 42), "fact");
}

TEST(WavWriterTest, AKilledWriterLeavesAReadableFile) {
  // The header is fixed up after every write: read the file while the writer still has it
  // open, as after a SIGKILL (no Close ever runs).
  const std::string path = TempPath("killed.wav");
  const WavFormat format{AudioFormat::kFloat, 48000, 2};
  ASSERT_OK_AND_ASSIGN(WavWriter writer, WavWriter::Create(path, format));
  const std::vector<uint8_t> frames = Pattern(480 * format.frame_bytes());
  for (int period = 1; period <= 3; ++period) {
    ASSERT_THAT(writer.Write(frames), IsOk());
    ASSERT_OK_AND_ASSIGN(WavReader reader, WavReader::Open(path));
    EXPECT_EQ(reader.frames(), 480u * period);
    const std::vector<uint8_t> file = ReadAll(path);
    EXPECT_EQ(Le32(file, 4), file.size() - 8) << "RIFF size after period " << period;
    EXPECT_EQ(Le32(file, 46), 480u * period) << "fact frame count";
  }
}

TEST(WavWriterTest, AFullFileRefusesMoreAndStaysValid) {
  const std::string path = TempPath("full.wav");
  const WavFormat format{AudioFormat::kS16, 8000, 1};
  // Room for 10 frames and a half: only whole frames are kept.
  ASSERT_OK_AND_ASSIGN(WavWriter writer, WavWriter::Create(path, format, 21));
  EXPECT_THAT(writer.Write(Pattern(8 * 2)), IsOk());
  EXPECT_THAT(writer.Write(Pattern(8 * 2)), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(writer.data_bytes(), 20u) << "the frames that fit were written";
  EXPECT_THAT(writer.Write(Pattern(2)), StatusIs(absl::StatusCode::kOutOfRange));
  ASSERT_THAT(writer.Close(), IsOk());
  ASSERT_OK_AND_ASSIGN(WavReader reader, WavReader::Open(path));
  EXPECT_EQ(reader.frames(), 10u);
}

TEST(WavWriterTest, RefusesPartialFramesAndWritesAfterClose) {
  const std::string path = TempPath("partial.wav");
  ASSERT_OK_AND_ASSIGN(WavWriter writer, WavWriter::Create(path, {AudioFormat::kS24_3, 8000, 2}));
  EXPECT_THAT(writer.Write(Pattern(7)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(writer.data_bytes(), 0u);
  ASSERT_THAT(writer.Close(), IsOk());
  EXPECT_THAT(writer.Write(Pattern(6)), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(WavWriterTest, ReportsAFileItCannotCreateOrWrite) {
  EXPECT_THAT(WavWriter::Create("/nonexistent/dir/x.wav", {}).status(),
              StatusIs(absl::StatusCode::kNotFound));
  // /dev/full takes the open but no byte: the header's write fails.
  EXPECT_THAT(WavWriter::Create("/dev/full", {}).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(WavWriter::Create(TempPath("zero.wav"), {AudioFormat::kS16, 48000, 0}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// --- the reader: files from elsewhere ---

TEST(WavReaderTest, ReadsExtensibleAndChunksAroundTheData) {
  // WAVE_FORMAT_EXTENSIBLE (as sox and most tools write above 16 bits or 2 channels), a LIST
  // chunk of odd size before fmt, and a trailing chunk after the data.
  std::vector<uint8_t> fmt = FmtBody(0xFFFE, 4, 96000, 4 * 4, 32);
  Put16(fmt, 22);    // cbSize
  Put16(fmt, 24);    // valid bits: 24 in a 32-bit container
  Put32(fmt, 0x33);  // channel mask
  Put16(fmt, 1);     // subformat: PCM
  const uint8_t tail[14] = {0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71};
  fmt.insert(fmt.end(), tail, tail + 14);
  std::vector<uint8_t> chunks;
  Chunk(chunks, "LIST", Pattern(11));
  Chunk(chunks, "fmt ", fmt);
  const std::vector<uint8_t> data = Pattern(5 * 16, 9);
  Chunk(chunks, "data", data);
  Chunk(chunks, "id3 ", Pattern(30));
  ASSERT_OK_AND_ASSIGN(WavReader reader, OpenBytes(Riff(chunks)));
  EXPECT_EQ(reader.format(), (WavFormat{AudioFormat::kS32, 96000, 4}));
  EXPECT_EQ(ReadFrames(reader, 100), data);
}

TEST(WavReaderTest, FmtAfterDataIsFound) {
  std::vector<uint8_t> chunks;
  const std::vector<uint8_t> data = Pattern(6);
  Chunk(chunks, "data", data);
  Chunk(chunks, "fmt ", FmtBody(1, 1, 8000, 2, 16));
  ASSERT_OK_AND_ASSIGN(WavReader reader, OpenBytes(Riff(chunks)));
  EXPECT_EQ(reader.frames(), 3u);
  EXPECT_EQ(ReadFrames(reader, 3), data);
}

TEST(WavReaderTest, ClampsADataSizePastTheEndToWholeFramesPresent) {
  // A truncated file, or a streaming writer's 0xFFFFFFFF: what is there is read, no further,
  // and the frame cut in the middle is dropped.
  for (uint32_t claimed : {0xFFFFFFFFu, 4000u}) {
    std::vector<uint8_t> chunks;
    Chunk(chunks, "fmt ", FmtBody(1, 2, 8000, 4, 16));
    const std::vector<uint8_t> data = Pattern(4 * 10 + 3);
    Chunk(chunks, "data", data, claimed);
    ASSERT_OK_AND_ASSIGN(WavReader reader, OpenBytes(Riff(chunks, 0xFFFFFFFF)));
    EXPECT_EQ(reader.frames(), 10u) << claimed;
    EXPECT_EQ(ReadFrames(reader, 20), std::vector<uint8_t>(data.begin(), data.begin() + 40));
  }
}

TEST(WavReaderTest, AFileCutShorterWhileOpenEndsEarly) {
  const std::string path = TempPath("shrinks.wav");
  {
    ASSERT_OK_AND_ASSIGN(WavWriter writer, WavWriter::Create(path, {AudioFormat::kU8, 8000, 1}));
    ASSERT_THAT(writer.Write(Pattern(1000)), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(WavReader reader, WavReader::Open(path));
  ASSERT_EQ(reader.frames(), 1000u);
  ASSERT_EQ(truncate(path.c_str(), 44 + 300), 0);
  EXPECT_THAT(ReadFrames(reader, 1000), SizeIs(300));
  EXPECT_EQ(reader.frames(), 300u);
  EXPECT_THAT(ReadFrames(reader, 1000), SizeIs(0));
}

TEST(WavReaderTest, RefusesWhatItCannotPlay) {
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string why;
  };
  std::vector<Case> cases;
  auto with_fmt = [](const std::vector<uint8_t>& fmt) {
    std::vector<uint8_t> chunks;
    Chunk(chunks, "fmt ", fmt);
    Chunk(chunks, "data", Pattern(64));
    return Riff(chunks);
  };
  cases.push_back({"empty", {}, "not a RIFF/WAVE"});
  cases.push_back({"header cut", {'R', 'I', 'F', 'F', 4, 0, 0, 0, 'W', 'A'}, "not a RIFF/WAVE"});
  std::vector<uint8_t> rifx = with_fmt(FmtBody(1, 2, 8000, 4, 16));
  rifx[3] = 'X';
  cases.push_back({"big-endian RIFX", rifx, "not a RIFF/WAVE"});
  std::vector<uint8_t> avi = with_fmt(FmtBody(1, 2, 8000, 4, 16));
  memcpy(avi.data() + 8, "AVI ", 4);
  cases.push_back({"not WAVE", avi, "not a RIFF/WAVE"});
  {
    std::vector<uint8_t> chunks;
    Chunk(chunks, "data", Pattern(64));
    cases.push_back({"no fmt", Riff(chunks), "no fmt chunk"});
  }
  {
    std::vector<uint8_t> chunks;
    Chunk(chunks, "fmt ", FmtBody(1, 2, 8000, 4, 16));
    cases.push_back({"no data", Riff(chunks), "no data chunk"});
  }
  {
    std::vector<uint8_t> chunks;
    std::vector<uint8_t> fmt = FmtBody(1, 2, 8000, 4, 16);
    fmt.resize(14);
    Chunk(chunks, "fmt ", fmt);
    Chunk(chunks, "data", Pattern(64));
    cases.push_back({"short fmt", Riff(chunks), "fmt chunk of 14 bytes"});
  }
  {
    std::vector<uint8_t> chunks;
    Chunk(chunks, "fmt ", FmtBody(1, 2, 8000, 4, 16), 1000);  // claims more than the file has
    cases.push_back({"fmt past the end", Riff(chunks), "fmt chunk cut short"});
  }
  {
    // A chunk claiming 4 GiB hides everything after it: there is no data chunk in the file.
    std::vector<uint8_t> chunks;
    Chunk(chunks, "fmt ", FmtBody(1, 2, 8000, 4, 16));
    Chunk(chunks, "junk", Pattern(8), 0xFFFFFFFF);
    Chunk(chunks, "data", Pattern(64));
    cases.push_back({"huge chunk", Riff(chunks), "no data chunk"});
  }
  {
    std::vector<uint8_t> chunks;
    for (int i = 0; i < 2000; ++i) Chunk(chunks, "junk", {});
    Chunk(chunks, "fmt ", FmtBody(1, 2, 8000, 4, 16));
    Chunk(chunks, "data", Pattern(64));
    cases.push_back({"chunk flood", Riff(chunks), "too many chunks"});
  }
  cases.push_back({"mu-law", with_fmt(FmtBody(7, 1, 8000, 1, 8)), "format tag 7"});
  cases.push_back({"float64", with_fmt(FmtBody(3, 1, 8000, 8, 64)), "format tag 3 with 64"});
  cases.push_back({"12-bit", with_fmt(FmtBody(1, 1, 8000, 2, 12)), "format tag 1 with 12"});
  cases.push_back({"0 channels", with_fmt(FmtBody(1, 0, 8000, 0, 16)), "0 channels"});
  cases.push_back({"300 channels", with_fmt(FmtBody(1, 300, 8000, 600, 16)), "300 channels"});
  cases.push_back({"0 Hz", with_fmt(FmtBody(1, 2, 0, 4, 16)), "0 Hz"});
  cases.push_back({"block align", with_fmt(FmtBody(1, 2, 8000, 3, 16)), "block align 3"});
  cases.push_back(
      {"S24 in 4 bytes, not extensible", with_fmt(FmtBody(1, 1, 8000, 4, 24)), "block align 4"});
  {
    std::vector<uint8_t> fmt = FmtBody(0xFFFE, 2, 8000, 4, 16);
    Put16(fmt, 22);
    Put16(fmt, 16);
    Put32(fmt, 3);
    Put16(fmt, 1);
    fmt.resize(40, 0x42);  // not the standard GUID
    cases.push_back({"unknown subformat", with_fmt(fmt), "unknown subformat"});
    fmt.resize(30);
    cases.push_back({"extensible cut", with_fmt(fmt), "extensible fmt chunk cut short"});
  }
  for (const Case& c : cases) {
    absl::StatusOr<WavReader> reader = OpenBytes(c.bytes);
    EXPECT_THAT(reader, StatusIs(absl::StatusCode::kInvalidArgument)) << c.name;
    EXPECT_THAT(std::string(reader.status().message()), HasSubstr(c.why)) << c.name;
  }
}

TEST(WavReaderTest, RefusesWhatIsNoFile) {
  EXPECT_THAT(WavReader::Open("/nonexistent.wav"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(WavReader::Open("/dev/null"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(WavReader::Open(::testing::TempDir()), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(WavReaderTest, AnEmptyDataChunkHasNoFrames) {
  std::vector<uint8_t> chunks;
  Chunk(chunks, "fmt ", FmtBody(1, 2, 8000, 4, 16));
  Chunk(chunks, "data", {});
  ASSERT_OK_AND_ASSIGN(WavReader reader, OpenBytes(Riff(chunks)));
  EXPECT_EQ(reader.frames(), 0u);
  EXPECT_THAT(ReadFrames(reader, 10), SizeIs(0));
  std::vector<uint8_t> odd(5);
  EXPECT_THAT(reader.Read(absl::MakeSpan(odd)), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost::snd
