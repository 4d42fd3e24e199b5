#include "vhost-user-snd/wav_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"

namespace vhost::snd {
namespace {

constexpr uint16_t kTagPcm = 1;
constexpr uint16_t kTagFloat = 3;
constexpr uint16_t kTagExtensible = 0xFFFE;
// The 14 bytes after the format tag in an extensible fmt chunk's subformat GUID.
constexpr uint8_t kGuidTail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                   0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};
// A file with more chunks than this before its data is not one anybody wrote for audio; the cap
// keeps a file of a billion empty chunks from keeping Open busy.
constexpr int kMaxChunks = 1024;

void Put16(uint8_t* p, uint16_t v) {
  p[0] = v & 0xFF;
  p[1] = v >> 8;
}
void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (v >> (8 * i)) & 0xFF;
}
uint16_t Get16(const uint8_t* p) { return p[0] | (p[1] << 8); }
uint32_t Get32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

absl::Status ErrnoStatus(int err, const std::string& what) {
  return absl::ErrnoToStatus(err, what);
}

// pwrite of all of `data`, or the errno's error.
absl::Status PwriteAll(int fd, const uint8_t* data, size_t size, uint64_t offset) {
  while (size > 0) {
    ssize_t n = pwrite(fd, data, size, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "WAV write");
    }
    if (n == 0) return absl::DataLossError("WAV write made no progress");
    data += n;
    size -= n;
    offset += n;
  }
  return absl::OkStatus();
}

// pread of up to `size` bytes (fewer only at the end of the file).
absl::StatusOr<size_t> PreadFull(int fd, uint8_t* data, size_t size, uint64_t offset) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = pread(fd, data + done, size - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "WAV read");
    }
    if (n == 0) break;
    done += n;
  }
  return done;
}

}  // namespace

std::string WavFormat::ToString() const {
  return absl::StrCat(AudioFormatName(format), " ", rate, " Hz ", channels, " ch");
}

// --- WavWriter ---------------------------------------------------------------------------------

WavWriter::WavWriter(UniqueFd fd, const WavFormat& format, uint64_t max_data_bytes)
    : fd_(std::move(fd)), format_(format) {
  // Whole frames only, so a full file still ends on a frame.
  uint64_t cap = std::min(max_data_bytes, kMaxDataBytes);
  max_data_bytes_ = cap - cap % format.frame_bytes();
}

WavWriter::~WavWriter() {
  absl::Status status = Close();
  if (!status.ok()) LOG(WARNING) << "closing a WAV file: " << status;
}

absl::StatusOr<WavWriter> WavWriter::Create(const std::string& path, const WavFormat& format,
                                            uint64_t max_data_bytes) {
  if (format.channels == 0 || format.channels > 0xFFFF || format.rate == 0) {
    return absl::InvalidArgumentError(absl::StrCat("no WAV file can hold ", format.ToString()));
  }
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating ", path));
  return CreateOnFd(UniqueFd(fd), path, format, max_data_bytes);
}

absl::StatusOr<WavWriter> WavWriter::CreateOnFd(UniqueFd fd, const std::string& name,
                                                const WavFormat& format, uint64_t max_data_bytes) {
  if (format.channels == 0 || format.channels > 0xFFFF || format.rate == 0) {
    return absl::InvalidArgumentError(absl::StrCat("no WAV file can hold ", format.ToString()));
  }
  // Only a regular file has anything to truncate (a device such as /dev/full does not).
  struct stat st;
  if (!fd || fstat(fd.get(), &st) != 0 || (S_ISREG(st.st_mode) && ftruncate(fd.get(), 0) != 0)) {
    return ErrnoStatus(errno, absl::StrCat("truncating ", name));
  }
  WavWriter writer(std::move(fd), format, max_data_bytes);
  RETURN_IF_ERROR(writer.WriteHeader());
  return writer;
}

absl::Status WavWriter::WriteHeader() {
  const bool is_float = format_.format == AudioFormat::kFloat;
  const uint32_t bits = BytesPerSample(format_.format) * 8;
  const uint32_t block_align = format_.frame_bytes();
  uint8_t h[58] = {};
  size_t at = 0;
  memcpy(h, "RIFF", 4);  // its size at 4, filled by UpdateSizes
  memcpy(h + 8, "WAVE", 4);
  memcpy(h + 12, "fmt ", 4);
  Put32(h + 16, is_float ? 18 : 16);
  Put16(h + 20, is_float ? kTagFloat : kTagPcm);
  Put16(h + 22, format_.channels);
  Put32(h + 24, format_.rate);
  Put32(h + 28, format_.rate * block_align);
  Put16(h + 32, block_align);
  Put16(h + 34, bits);
  at = 36;
  if (is_float) {
    Put16(h + at, 0);  // cbSize: no extension
    at += 2;
    // Non-PCM formats carry a fact chunk with the frame count.
    memcpy(h + at, "fact", 4);
    Put32(h + at + 4, 4);
    fact_frames_at_ = at + 8;
    at += 12;
  }
  memcpy(h + at, "data", 4);
  data_size_at_ = at + 4;
  data_offset_ = at + 8;
  RETURN_IF_ERROR(PwriteAll(fd_.get(), h, data_offset_, 0));
  return UpdateSizes(false);
}

absl::Status WavWriter::UpdateSizes(bool padded) {
  uint8_t v[4];
  Put32(v, data_offset_ - 8 + data_bytes_ + (padded ? 1 : 0));
  RETURN_IF_ERROR(PwriteAll(fd_.get(), v, 4, 4));
  Put32(v, data_bytes_);
  RETURN_IF_ERROR(PwriteAll(fd_.get(), v, 4, data_size_at_));
  if (fact_frames_at_ != 0) {
    Put32(v, data_bytes_ / format_.frame_bytes());
    RETURN_IF_ERROR(PwriteAll(fd_.get(), v, 4, fact_frames_at_));
  }
  return absl::OkStatus();
}

absl::Status WavWriter::Write(absl::Span<const uint8_t> frames) {
  if (!fd_.valid()) return absl::FailedPreconditionError("WAV file closed");
  if (frames.size() % format_.frame_bytes() != 0) {
    return absl::InvalidArgumentError("WAV write of a partial frame");
  }
  const uint64_t room = max_data_bytes_ - data_bytes_;
  const size_t size = std::min<uint64_t>(frames.size(), room);
  // The frames first, then the sizes: the header never claims data that is not there yet.
  if (size > 0) {
    absl::Status status = PwriteAll(fd_.get(), frames.data(), size, data_offset_ + data_bytes_);
    if (!status.ok()) {
      // Whatever part of it landed stays out of the header.
      return status;
    }
    data_bytes_ += size;
    RETURN_IF_ERROR(UpdateSizes(false));
  }
  if (size < frames.size()) {
    return absl::OutOfRangeError(absl::StrCat("WAV file full at ", data_bytes_, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status WavWriter::Close() {
  if (!fd_.valid()) return absl::OkStatus();
  absl::Status status;
  // RIFF chunks are padded to an even size; the data chunk's own size stays odd.
  if (data_bytes_ % 2 == 1) {
    uint8_t zero = 0;
    status = PwriteAll(fd_.get(), &zero, 1, data_offset_ + data_bytes_);
    if (status.ok()) status = UpdateSizes(true);
  }
  if (close(fd_.Release()) != 0 && status.ok()) status = ErrnoStatus(errno, "closing WAV file");
  return status;
}

// --- WavReader ---------------------------------------------------------------------------------

absl::StatusOr<WavReader> WavReader::Open(const std::string& path) {
  WavReader reader;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("opening ", path));
  reader.fd_.Reset(fd);
  RETURN_IF_ERROR(reader.Parse(path));
  return reader;
}

absl::Status WavReader::Parse(const std::string& path) {
  auto bad = [&path](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
  };
  struct stat st;
  if (fstat(fd_.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  // pread needs a file it can seek in; a FIFO or socket is not a WAV source.
  if (!S_ISREG(st.st_mode)) return bad("not a regular file");
  // The RIFF size is not trusted (streaming writers leave 0 or ~0 there): the file's size is.
  const uint64_t end = st.st_size;

  uint8_t riff[12];
  ASSIGN_OR_RETURN(size_t got, PreadFull(fd_.get(), riff, sizeof(riff), 0));
  if (got < sizeof(riff) || memcmp(riff, "RIFF", 4) != 0 || memcmp(riff + 8, "WAVE", 4) != 0) {
    return bad("not a RIFF/WAVE file");
  }

  bool have_fmt = false, have_data = false;
  uint8_t fmt[40] = {};
  size_t fmt_size = 0;
  uint64_t data_size = 0;
  uint64_t offset = 12;
  for (int chunks = 0; !(have_fmt && have_data); ++chunks) {
    if (chunks == kMaxChunks) return bad("too many chunks");
    uint8_t head[8];
    ASSIGN_OR_RETURN(got, PreadFull(fd_.get(), head, sizeof(head), offset));
    if (got < sizeof(head)) break;  // the end of the file (or a chunk header cut short)
    const uint32_t size = Get32(head + 4);
    const uint64_t body = offset + 8;
    if (memcmp(head, "fmt ", 4) == 0 && !have_fmt) {
      if (size < 16) return bad(absl::StrCat("fmt chunk of ", size, " bytes"));
      fmt_size = std::min<size_t>(size, sizeof(fmt));
      ASSIGN_OR_RETURN(got, PreadFull(fd_.get(), fmt, fmt_size, body));
      if (got < fmt_size) return bad("fmt chunk cut short");
      have_fmt = true;
    } else if (memcmp(head, "data", 4) == 0 && !have_data) {
      data_offset_ = body;
      // A data size past the end (a truncated file, or a writer that never fixed it up) is
      // whatever the file holds.
      data_size = std::min<uint64_t>(size, end - std::min(end, body));
      have_data = true;
    }
    // Chunks are padded to an even size. 64-bit sums: a 32-bit size cannot overflow them.
    offset = body + size + (size & 1);
    if (offset >= end) break;
  }
  if (!have_fmt) return bad("no fmt chunk");
  if (!have_data) return bad("no data chunk");

  uint16_t tag = Get16(fmt);
  const uint32_t channels = Get16(fmt + 2);
  const uint32_t rate = Get32(fmt + 4);
  const uint32_t block_align = Get16(fmt + 12);
  const uint32_t bits = Get16(fmt + 14);
  if (tag == kTagExtensible) {
    // cbSize (22), valid bits, channel mask, then the subformat GUID whose first two bytes are
    // the real tag. Valid bits below the container (24 in 32) still read as the container.
    if (fmt_size < 40 || Get16(fmt + 16) < 22) return bad("extensible fmt chunk cut short");
    if (memcmp(fmt + 26, kGuidTail, sizeof(kGuidTail)) != 0) return bad("unknown subformat");
    if (Get16(fmt + 18) > bits) return bad("more valid bits than bits per sample");
    tag = Get16(fmt + 24);
  }
  AudioFormat format;
  if (tag == kTagPcm && bits == 8) {
    format = AudioFormat::kU8;
  } else if (tag == kTagPcm && bits == 16) {
    format = AudioFormat::kS16;
  } else if (tag == kTagPcm && bits == 24) {
    format = AudioFormat::kS24_3;
  } else if (tag == kTagPcm && bits == 32) {
    format = AudioFormat::kS32;
  } else if (tag == kTagFloat && bits == 32) {
    format = AudioFormat::kFloat;
  } else {
    return bad(absl::StrCat("unsupported format tag ", tag, " with ", bits, " bits"));
  }
  if (channels == 0 || channels > kMaxChannels) return bad(absl::StrCat(channels, " channels"));
  if (rate == 0) return bad("a rate of 0 Hz");
  format_ = WavFormat{format, rate, channels};
  if (block_align != format_.frame_bytes()) {
    return bad(absl::StrCat("block align ", block_align, " for ", format_.ToString()));
  }
  // A trailing partial frame (a file cut mid-frame) is not played.
  frames_ = data_size / format_.frame_bytes();
  position_ = 0;
  return absl::OkStatus();
}

absl::StatusOr<size_t> WavReader::Read(absl::Span<uint8_t> out) {
  const size_t frame = format_.frame_bytes();
  if (out.size() % frame != 0) return absl::InvalidArgumentError("WAV read of a partial frame");
  const uint64_t want = std::min<uint64_t>(out.size() / frame, frames_ - position_);
  ASSIGN_OR_RETURN(
      size_t got, PreadFull(fd_.get(), out.data(), want * frame, data_offset_ + position_ * frame));
  const size_t frames = got / frame;
  if (frames < want) {
    // The file shrank under us: its data ends here.
    LOG_EVERY_N(WARNING, 100) << "WAV source ends " << frames_ - position_ - frames
                              << " frames early (truncated while open?)";
    frames_ = position_ + frames;
  }
  position_ += frames;
  return frames;
}

}  // namespace vhost::snd
