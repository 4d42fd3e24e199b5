// RIFF/WAVE files of PCM frames: the file backend's sink (WavWriter) and source (WavReader).
//
// The writer keeps the header true as it goes: after each Write the RIFF and data sizes say what
// is on disk, so a daemon killed mid-stream leaves a file every reader opens. Integer formats
// are written with format tag 1 (PCM), float with tag 3 and a fact chunk; never
// WAVE_FORMAT_EXTENSIBLE, which older readers refuse.
//
// The reader takes a file it does not trust: chunk sizes past the end of the file, odd-sized
// chunks (padded to even, as RIFF says), fmt after data, truncation mid-frame or mid-header,
// formats it cannot map to an AudioFormat: each is either clamped to what the file really holds
// or refused with InvalidArgumentError, never read out of bounds.
#ifndef VHOST_USER_SND_WAV_FILE_H_
#define VHOST_USER_SND_WAV_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/base/unique_fd.h"
#include "vhost-user-snd/audio_backend.h"

namespace vhost::snd {

struct WavFormat {
  AudioFormat format = AudioFormat::kS16;
  uint32_t rate = 48000;
  uint32_t channels = 2;

  size_t frame_bytes() const { return size_t{channels} * BytesPerSample(format); }
  bool operator==(const WavFormat& o) const {
    return format == o.format && rate == o.rate && channels == o.channels;
  }
  std::string ToString() const;
};

class WavWriter {
 public:
  // The most data a RIFF file's 32-bit sizes can describe (less its header and a pad byte).
  static constexpr uint64_t kMaxDataBytes = 0xFFFFFFFFull - 64;

  // Creates (or truncates) `path` and writes the header of a file with no frames yet.
  // `max_data_bytes` caps the data below kMaxDataBytes (for tests).
  static absl::StatusOr<WavWriter> Create(const std::string& path, const WavFormat& format,
                                          uint64_t max_data_bytes = kMaxDataBytes);
  // The same on a file already open for writing (truncated here): how a sandboxed daemon, which
  // may not open files, starts a new sink on the file it opened at start. `name` is for errors.
  static absl::StatusOr<WavWriter> CreateOnFd(UniqueFd fd, const std::string& name,
                                              const WavFormat& format,
                                              uint64_t max_data_bytes = kMaxDataBytes);

  WavWriter(WavWriter&&) = default;
  WavWriter& operator=(WavWriter&&) = delete;  // would drop a file unfinished
  ~WavWriter();

  // Appends whole frames and updates the header's sizes. OutOfRangeError once the file is
  // full (the frames that fit are written); the errno's error when the file cannot be written.
  absl::Status Write(absl::Span<const uint8_t> frames);
  // Pads the data to an even size, fixes the header up a last time and closes the file.
  absl::Status Close();

  const WavFormat& format() const { return format_; }
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  WavWriter(UniqueFd fd, const WavFormat& format, uint64_t max_data_bytes);
  absl::Status WriteHeader();
  absl::Status UpdateSizes(bool padded);

  UniqueFd fd_;
  WavFormat format_;
  uint64_t max_data_bytes_;
  uint64_t data_offset_ = 0;     // where the frames start
  uint64_t data_size_at_ = 0;    // where the data chunk's size is
  uint64_t fact_frames_at_ = 0;  // where the fact chunk's frame count is (0: none)
  uint64_t data_bytes_ = 0;
};

class WavReader {
 public:
  static absl::StatusOr<WavReader> Open(const std::string& path);

  WavReader(WavReader&&) = default;
  WavReader& operator=(WavReader&&) = default;

  const WavFormat& format() const { return format_; }
  uint64_t frames() const { return frames_; }
  uint64_t position() const { return position_; }

  // Copies frames from the current position into `out` (a whole number of frames) and returns
  // how many: fewer than fit only at the end of the data (0 there). A file cut shorter since
  // Open ends early too.
  absl::StatusOr<size_t> Read(absl::Span<uint8_t> out);
  void Rewind() { position_ = 0; }

 private:
  WavReader() = default;
  absl::Status Parse(const std::string& path);

  UniqueFd fd_;
  WavFormat format_;
  uint64_t data_offset_ = 0;
  uint64_t frames_ = 0;
  uint64_t position_ = 0;
};

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_WAV_FILE_H_
