// One PCM stream's control side (virtio 1.2 §5.14.6.6): what it offers, the parameters the driver
// picks within that (PCM_SET_PARAMS), the command lifecycle (§5.14.6.6.1) and the frame/byte/time
// arithmetic of a configuration. No I/O, no threads: the device calls in with the control queue's
// requests and does the host side (a backend) through the `act` callback.
#ifndef VHOST_USER_SND_PCM_STREAM_H_
#define VHOST_USER_SND_PCM_STREAM_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vhost-user-snd/snd_spec.h"

namespace vhost::snd {

// What a stream offers, as PCM_INFO reports it.
struct PcmCaps {
  uint8_t direction = VIRTIO_SND_D_OUTPUT;
  uint8_t channels_min = 2;
  uint8_t channels_max = 2;
  uint64_t formats = uint64_t{1} << VIRTIO_SND_PCM_FMT_S16;   // 1 << VIRTIO_SND_PCM_FMT_*
  uint64_t rates = uint64_t{1} << VIRTIO_SND_PCM_RATE_48000;  // 1 << VIRTIO_SND_PCM_RATE_*
  uint32_t features = 0;                                      // 1 << VIRTIO_SND_PCM_F_*
};

// The largest buffer_bytes a stream accepts is kMaxBufferBytes or one second of audio, whichever
// is more: a bound on what the device may hold for a stream, far above what Linux's virtio_snd
// asks for (160 ms by default, its pcm_buffer_ms) even at 384 kHz, 18 channels of FLOAT64.
inline constexpr uint32_t kMaxBufferBytes = 8u << 20;

// What PCM_SET_PARAMS chose.
struct PcmParams {
  uint32_t buffer_bytes = 0;
  uint32_t period_bytes = 0;
  uint32_t features = 0;
  uint8_t channels = 0;
  uint8_t format = 0;  // VIRTIO_SND_PCM_FMT_*
  uint8_t rate = 0;    // VIRTIO_SND_PCM_RATE_*

  static PcmParams FromWire(const virtio_snd_pcm_set_params& wire);
  virtio_snd_pcm_set_params ToWire(uint32_t stream_id) const;

  // Of valid parameters (ValidateParams said OK):
  uint32_t frame_bytes() const;
  uint32_t rate_hz() const { return RateHz(rate); }
  uint32_t period_frames() const { return period_bytes / frame_bytes(); }
  uint32_t buffer_frames() const { return buffer_bytes / frame_bytes(); }
  uint64_t bytes_per_second() const;
  absl::Duration period() const;
};

// Bytes of one frame: `channels` samples of `format`; 0 when a frame is not a whole number of
// bytes (IMA ADPCM's 4-bit samples) or the format is undefined.
uint32_t BytesPerFrame(uint8_t format, uint8_t channels);
// Bytes a stream of this format, rate (VIRTIO_SND_PCM_RATE_*) and channels moves per second.
uint64_t BytesPerSecond(uint8_t format, uint8_t rate, uint8_t channels);
// How long `frames` last at `hz`, truncated to the nanosecond and without drift: the time of
// frame N is FramesDuration(N, hz), not N times the duration of one frame.
absl::Duration FramesDuration(uint64_t frames, uint32_t hz);

// Whether `params` fit `caps`: VIRTIO_SND_S_OK; NOT_SUPP for a defined value the stream does not
// offer (format, rate, channels, features, a buffer over the limit above); BAD_MSG for values
// that are invalid whatever the stream (an undefined format or rate, no channels, an empty
// buffer or period, a period not a whole number of frames, a buffer not a whole number of
// periods): §5.14.6.1's "malformed or contains invalid parameters".
SndStatus ValidateParams(const PcmCaps& caps, const PcmParams& params);

// Where a stream is in §5.14.6.6.1's lifecycle: named after the last command that succeeded.
enum class PcmState { kNone, kParamsSet, kPrepared, kStarted, kStopped, kReleased };
absl::string_view StateName(PcmState state);

// One PCM control request (VIRTIO_SND_R_PCM_SET_PARAMS ... _STOP; PCM_INFO is snd_config's).
struct PcmRequest {
  uint32_t code = 0;
  uint32_t stream_id = 0;
  PcmParams params;  // SET_PARAMS only
};

// Decodes the device-readable part of a PCM control request: BAD_MSG if shorter or longer than
// its structure (virtio_snd_pcm_set_params, or virtio_snd_pcm_hdr for the others) or not a PCM
// command; OK otherwise (the stream id is not checked here).
SndStatus ParsePcmRequest(absl::Span<const uint8_t> request, PcmRequest* out);

class PcmStream {
 public:
  // Host-side work of a command (open the backend, start the clock...); called only for a
  // command the lifecycle allows (and, for SET_PARAMS, valid parameters), before the state
  // changes. An error fails the command with IO_ERR and leaves the stream as it was.
  using Act = absl::FunctionRef<absl::Status(const PcmRequest&)>;

  PcmStream(uint32_t id, const PcmCaps& caps) : id_(id), caps_(caps) {}

  // Runs one command on this stream (request.stream_id is not looked at): BAD_MSG if the
  // lifecycle does not allow it now, then ValidateParams' answer for SET_PARAMS, IO_ERR if `act`
  // fails, else OK and the new state.
  SndStatus Handle(const PcmRequest& request, Act act);
  SndStatus Handle(const PcmRequest& request);

  // Whether §5.14.6.6.1 allows command `code` after `state`.
  static bool Allowed(PcmState state, uint32_t code);

  // Device reset: back to no parameters.
  void Reset();

  uint32_t id() const { return id_; }
  const PcmCaps& caps() const { return caps_; }
  PcmState state() const { return state_; }
  // Valid once state() is not kNone.
  const PcmParams& params() const { return params_; }
  // Whether I/O buffers are consumed (tx) or filled (rx) at the sample clock now.
  bool running() const { return state_ == PcmState::kStarted; }

 private:
  const uint32_t id_;
  const PcmCaps caps_;
  PcmState state_ = PcmState::kNone;
  PcmParams params_;
};

// Parses a PCM control request and runs it on its stream of `streams` (indexed by stream id):
// ParsePcmRequest's BAD_MSG, BAD_MSG for a stream id out of range, else the stream's answer.
// Bad requests get a rate-limited log line.
SndStatus HandlePcmRequest(absl::Span<PcmStream> streams, absl::Span<const uint8_t> request,
                           PcmStream::Act act);

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_PCM_STREAM_H_
