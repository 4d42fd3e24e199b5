// The host side of one PCM stream: where a playback stream's frames go and a capture stream's
// frames come from (null, a WAV file; later ALSA and PipeWire). The stream (pcm_stream.*) owns
// one, drives it from its queue's thread (so no locking here) and paces it with SampleClock:
// a backend never blocks for the sample clock, it takes or gives one period when asked.
//
// Lifecycle, following the virtio-snd stream states:
//   Open(params)  on PREPARE (after SET_PARAMS): the host side exists with these parameters.
//                 Open while open with the same parameters keeps the host side as it is (a
//                 PREPARE after an XRUN goes on where it was); other parameters reopen it,
//                 and so does any Open after the host side was lost (see below).
//   Start/Stop    on START/STOP; Write/Read only in between.
//   Write/Read    one period (any whole number of frames) of interleaved little-endian frames.
//   Close         on RELEASE (and on destruction).
//
// Errors are absl::Status. UnavailableError from Write/Read means the host side went away (a
// file that cannot be written, an audio server gone): the stream logs it once and carries on
// silent, pacing as before, without calling the backend again until the next Open, which tries
// the host side afresh (a file recreated, an audio server reconnected). Nothing a
// backend meets at run time crashes the daemon.
#ifndef VHOST_USER_SND_AUDIO_BACKEND_H_
#define VHOST_USER_SND_AUDIO_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace vhost::snd {

// The sample formats the host sides handle (a subset of virtio-snd's, which snd_spec.h maps).
enum class AudioFormat : uint8_t {
  kU8,
  kS16,    // little-endian
  kS24_3,  // little-endian, packed in 3 bytes
  kS32,    // little-endian
  kFloat,  // IEEE 754 binary32, little-endian
};
inline constexpr AudioFormat kAllFormats[] = {AudioFormat::kU8, AudioFormat::kS16,
                                              AudioFormat::kS24_3, AudioFormat::kS32,
                                              AudioFormat::kFloat};

constexpr uint32_t BytesPerSample(AudioFormat format) {
  switch (format) {
    case AudioFormat::kU8:
      return 1;
    case AudioFormat::kS16:
      return 2;
    case AudioFormat::kS24_3:
      return 3;
    case AudioFormat::kS32:
    case AudioFormat::kFloat:
      return 4;
  }
  return 0;
}

constexpr const char* AudioFormatName(AudioFormat format) {
  switch (format) {
    case AudioFormat::kU8:
      return "U8";
    case AudioFormat::kS16:
      return "S16_LE";
    case AudioFormat::kS24_3:
      return "S24_3LE";
    case AudioFormat::kS32:
      return "S32_LE";
    case AudioFormat::kFloat:
      return "FLOAT_LE";
  }
  return "?";
}

// The frame rates virtio-snd can name (VIRTIO_SND_PCM_RATE_*), in Hz.
inline constexpr uint32_t kVirtioRates[] = {5512,  8000,  11025, 16000, 22050,  32000,  44100,
                                            48000, 64000, 88200, 96000, 176400, 192000, 384000};
// virtio-snd carries channel counts in a byte.
inline constexpr uint32_t kMaxChannels = 255;

struct StreamParams {
  AudioFormat format = AudioFormat::kS16;
  uint32_t rate = 48000;         // frames per second
  uint32_t channels = 2;         // interleaved
  uint32_t period_frames = 480;  // frames per Write/Read the stream paces

  size_t frame_bytes() const { return size_t{channels} * BytesPerSample(format); }
  size_t period_bytes() const { return frame_bytes() * period_frames; }
  bool operator==(const StreamParams& o) const {
    return format == o.format && rate == o.rate && channels == o.channels &&
           period_frames == o.period_frames;
  }
  bool operator!=(const StreamParams& o) const { return !(*this == o); }
  std::string ToString() const {
    return absl::StrCat(AudioFormatName(format), " ", rate, " Hz ", channels, " ch, ",
                        period_frames, " frames/period");
  }
};

// What a backend can open: PCM_INFO advertises the intersection with the stream's configuration.
struct Capabilities {
  std::vector<AudioFormat> formats;
  std::vector<uint32_t> rates;
  uint32_t channels_min = 1;
  uint32_t channels_max = kMaxChannels;

  bool Allows(const StreamParams& p) const {
    bool format_ok = false, rate_ok = false;
    for (AudioFormat f : formats) format_ok |= f == p.format;
    for (uint32_t r : rates) rate_ok |= r == p.rate;
    return format_ok && rate_ok && p.channels >= channels_min && p.channels <= channels_max;
  }
};

// Everything open to every backend: any format, any virtio-snd rate, 1..255 channels.
inline Capabilities AnyCapabilities() {
  return Capabilities{{std::begin(kAllFormats), std::end(kAllFormats)},
                      {std::begin(kVirtioRates), std::end(kVirtioRates)},
                      1,
                      kMaxChannels};
}

// Checks what every backend needs of its parameters: allowed by `caps`, a non-empty period.
inline absl::Status CheckParams(const Capabilities& caps, const StreamParams& p) {
  if (p.period_frames == 0 || !caps.Allows(p)) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported stream parameters ", p.ToString()));
  }
  return absl::OkStatus();
}

// Fills `frames` with silence: U8 is unsigned (0x80 is its zero), the others are zero bytes.
inline void FillSilence(AudioFormat format, absl::Span<uint8_t> frames) {
  memset(frames.data(), format == AudioFormat::kU8 ? 0x80 : 0, frames.size());
}

// Scales every sample of `frames` by gain/100 (a stream's volume control): 100 leaves them as
// they are, 0 is silence. Integers are truncated toward their zero.
inline void ApplyGain(AudioFormat format, uint32_t gain, absl::Span<uint8_t> frames) {
  if (gain >= 100) return;
  if (gain == 0) return FillSilence(format, frames);
  const auto scale = [gain](int64_t v) { return v * gain / 100; };
  uint8_t* p = frames.data();
  const size_t n = frames.size();
  switch (format) {
    case AudioFormat::kU8:
      for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(scale(p[i] - 128) + 128);
      break;
    case AudioFormat::kS16:
      for (size_t i = 0; i + 2 <= n; i += 2) {
        int16_t v;
        memcpy(&v, p + i, 2);
        v = static_cast<int16_t>(scale(v));
        memcpy(p + i, &v, 2);
      }
      break;
    case AudioFormat::kS24_3:
      for (size_t i = 0; i + 3 <= n; i += 3) {
        // Sign-extended from the third byte (no shift of a negative value).
        int32_t v = p[i] + 256 * p[i + 1] + 65536 * static_cast<int8_t>(p[i + 2]);
        v = static_cast<int32_t>(scale(v));
        p[i] = static_cast<uint8_t>(v);
        p[i + 1] = static_cast<uint8_t>(v >> 8);
        p[i + 2] = static_cast<uint8_t>(v >> 16);
      }
      break;
    case AudioFormat::kS32:
      for (size_t i = 0; i + 4 <= n; i += 4) {
        int32_t v;
        memcpy(&v, p + i, 4);
        v = static_cast<int32_t>(scale(v));
        memcpy(p + i, &v, 4);
      }
      break;
    case AudioFormat::kFloat:
      for (size_t i = 0; i + 4 <= n; i += 4) {
        float v;
        memcpy(&v, p + i, 4);
        v = v * static_cast<float>(gain) / 100.0f;
        memcpy(p + i, &v, 4);
      }
      break;
  }
}

class AudioBackend {
 public:
  virtual ~AudioBackend() = default;

  virtual Capabilities capabilities() const = 0;

  // InvalidArgumentError for parameters outside capabilities(); UnavailableError when the host
  // side cannot be had right now (the stream then runs silent).
  virtual absl::Status Open(const StreamParams& params) = 0;
  virtual absl::Status Start() = 0;
  virtual absl::Status Stop() = 0;
  // Playback: consumes `frames` (a whole number of frames). FailedPreconditionError unless
  // started; InvalidArgumentError for a partial frame; UnavailableError: see above.
  virtual absl::Status Write(absl::Span<const uint8_t> frames) = 0;
  // Capture: fills all of `frames` (a whole number of frames). Errors as for Write.
  virtual absl::Status Read(absl::Span<uint8_t> frames) = 0;
  // Releases the host side (finishing a file); a no-op when not open.
  virtual absl::Status Close() = 0;
};

// The state checks the backends share: whether a Write/Read of `bytes` may go ahead.
inline absl::Status CheckTransfer(bool open, bool started, const StreamParams& p, size_t bytes) {
  if (!open || !started) return absl::FailedPreconditionError("stream not started");
  if (bytes % p.frame_bytes() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(bytes, " bytes is not a whole number of ", p.frame_bytes(), "-byte frames"));
  }
  return absl::OkStatus();
}

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_AUDIO_BACKEND_H_
