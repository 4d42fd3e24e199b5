#include "vhost-user-snd/pcm_stream.h"

#include <cstring>

#include "glog/logging.h"

namespace vhost::snd {
namespace {

template <typename T>
T Load(absl::Span<const uint8_t> bytes) {
  T value;
  std::memcpy(&value, bytes.data(), sizeof(T));
  return value;
}

}  // namespace

PcmParams PcmParams::FromWire(const virtio_snd_pcm_set_params& wire) {
  PcmParams params;
  params.buffer_bytes = wire.buffer_bytes;
  params.period_bytes = wire.period_bytes;
  params.features = wire.features;
  params.channels = wire.channels;
  params.format = wire.format;
  params.rate = wire.rate;
  return params;
}

virtio_snd_pcm_set_params PcmParams::ToWire(uint32_t stream_id) const {
  virtio_snd_pcm_set_params wire = {};
  wire.hdr.hdr.code = VIRTIO_SND_R_PCM_SET_PARAMS;
  wire.hdr.stream_id = stream_id;
  wire.buffer_bytes = buffer_bytes;
  wire.period_bytes = period_bytes;
  wire.features = features;
  wire.channels = channels;
  wire.format = format;
  wire.rate = rate;
  return wire;
}

uint32_t PcmParams::frame_bytes() const { return BytesPerFrame(format, channels); }

uint64_t PcmParams::bytes_per_second() const { return BytesPerSecond(format, rate, channels); }

absl::Duration PcmParams::period() const { return FramesDuration(period_frames(), rate_hz()); }

uint32_t BytesPerFrame(uint8_t format, uint8_t channels) {
  const unsigned bits = FormatPhysicalBits(format);
  if (bits % 8 != 0) return 0;  // undefined (0 bits) or 4-bit ADPCM
  return bits / 8 * channels;
}

uint64_t BytesPerSecond(uint8_t format, uint8_t rate, uint8_t channels) {
  return uint64_t{BytesPerFrame(format, channels)} * RateHz(rate);
}

absl::Duration FramesDuration(uint64_t frames, uint32_t hz) {
  if (hz == 0) return absl::ZeroDuration();
  // Whole seconds first so that frames * 1e9 cannot overflow for long streams.
  const uint64_t seconds = frames / hz;
  const uint64_t rest = frames % hz;
  return absl::Seconds(static_cast<int64_t>(seconds)) +
         absl::Nanoseconds(static_cast<int64_t>(rest * 1000000000) / hz);
}

SndStatus ValidateParams(const PcmCaps& caps, const PcmParams& params) {
  if (params.format >= kFormatCount || params.rate >= kRateCount || params.channels == 0 ||
      params.buffer_bytes == 0 || params.period_bytes == 0) {
    return VIRTIO_SND_S_BAD_MSG;
  }
  if ((params.features & ~caps.features) != 0 || (caps.formats >> params.format & 1) == 0 ||
      (caps.rates >> params.rate & 1) == 0 || params.channels < caps.channels_min ||
      params.channels > caps.channels_max) {
    return VIRTIO_SND_S_NOT_SUPP;
  }
  const uint32_t frame = params.frame_bytes();
  if (frame == 0) return VIRTIO_SND_S_NOT_SUPP;  // a caps bit for a format we cannot frame
  if (params.period_bytes % frame != 0 || params.buffer_bytes % params.period_bytes != 0) {
    return VIRTIO_SND_S_BAD_MSG;
  }
  if (params.buffer_bytes > kMaxBufferBytes && params.buffer_bytes > params.bytes_per_second()) {
    return VIRTIO_SND_S_NOT_SUPP;
  }
  return VIRTIO_SND_S_OK;
}

absl::string_view StateName(PcmState state) {
  switch (state) {
    case PcmState::kNone:
      return "none";
    case PcmState::kParamsSet:
      return "params-set";
    case PcmState::kPrepared:
      return "prepared";
    case PcmState::kStarted:
      return "started";
    case PcmState::kStopped:
      return "stopped";
    case PcmState::kReleased:
      return "released";
  }
  return "?";
}

SndStatus ParsePcmRequest(absl::Span<const uint8_t> request, PcmRequest* out) {
  if (request.size() < sizeof(virtio_snd_hdr)) return VIRTIO_SND_S_BAD_MSG;
  const uint32_t code = Load<virtio_snd_hdr>(request).code;
  switch (code) {
    case VIRTIO_SND_R_PCM_SET_PARAMS: {
      if (request.size() != sizeof(virtio_snd_pcm_set_params)) return VIRTIO_SND_S_BAD_MSG;
      const auto wire = Load<virtio_snd_pcm_set_params>(request);
      *out = {code, wire.hdr.stream_id, PcmParams::FromWire(wire)};
      return VIRTIO_SND_S_OK;
    }
    case VIRTIO_SND_R_PCM_PREPARE:
    case VIRTIO_SND_R_PCM_RELEASE:
    case VIRTIO_SND_R_PCM_START:
    case VIRTIO_SND_R_PCM_STOP:
      if (request.size() != sizeof(virtio_snd_pcm_hdr)) return VIRTIO_SND_S_BAD_MSG;
      *out = {code, Load<virtio_snd_pcm_hdr>(request).stream_id, {}};
      return VIRTIO_SND_S_OK;
    default:
      return VIRTIO_SND_S_BAD_MSG;
  }
}

// §5.14.6.6.1: after SET PARAMETERS: SET PARAMETERS, PREPARE; after PREPARE: SET PARAMETERS,
// PREPARE, START, RELEASE; after START: STOP; after STOP: START, RELEASE; after RELEASE: SET
// PARAMETERS, PREPARE. The lifecycle begins with SET PARAMETERS.
bool PcmStream::Allowed(PcmState state, uint32_t code) {
  switch (code) {
    case VIRTIO_SND_R_PCM_SET_PARAMS:
      return state == PcmState::kNone || state == PcmState::kParamsSet ||
             state == PcmState::kPrepared || state == PcmState::kReleased;
    case VIRTIO_SND_R_PCM_PREPARE:
      return state == PcmState::kParamsSet || state == PcmState::kPrepared ||
             state == PcmState::kReleased;
    case VIRTIO_SND_R_PCM_START:
      return state == PcmState::kPrepared || state == PcmState::kStopped;
    case VIRTIO_SND_R_PCM_STOP:
      return state == PcmState::kStarted;
    case VIRTIO_SND_R_PCM_RELEASE:
      return state == PcmState::kPrepared || state == PcmState::kStopped;
    default:
      return false;
  }
}

SndStatus PcmStream::Handle(const PcmRequest& request) {
  return Handle(request, [](const PcmRequest&) { return absl::OkStatus(); });
}

SndStatus PcmStream::Handle(const PcmRequest& request, Act act) {
  if (!Allowed(state_, request.code)) return VIRTIO_SND_S_BAD_MSG;
  if (request.code == VIRTIO_SND_R_PCM_SET_PARAMS) {
    const SndStatus status = ValidateParams(caps_, request.params);
    if (status != VIRTIO_SND_S_OK) return status;
  }
  const absl::Status done = act(request);
  if (!done.ok()) {
    LOG_EVERY_N(WARNING, 100) << "snd: stream " << id_ << ": command 0x" << std::hex << request.code
                              << std::dec << " failed on the host: " << done;
    return VIRTIO_SND_S_IO_ERR;
  }
  switch (request.code) {
    case VIRTIO_SND_R_PCM_SET_PARAMS:
      params_ = request.params;
      state_ = PcmState::kParamsSet;
      break;
    case VIRTIO_SND_R_PCM_PREPARE:
      state_ = PcmState::kPrepared;
      break;
    case VIRTIO_SND_R_PCM_START:
      state_ = PcmState::kStarted;
      break;
    case VIRTIO_SND_R_PCM_STOP:
      state_ = PcmState::kStopped;
      break;
    case VIRTIO_SND_R_PCM_RELEASE:
      state_ = PcmState::kReleased;
      break;
  }
  return VIRTIO_SND_S_OK;
}

void PcmStream::Reset() {
  state_ = PcmState::kNone;
  params_ = PcmParams();
}

SndStatus HandlePcmRequest(absl::Span<PcmStream> streams, absl::Span<const uint8_t> request,
                           PcmStream::Act act) {
  PcmRequest parsed;
  SndStatus status = ParsePcmRequest(request, &parsed);
  if (status != VIRTIO_SND_S_OK) {
    LOG_EVERY_N(WARNING, 100) << "snd: malformed PCM request of " << request.size() << " bytes";
    return status;
  }
  if (parsed.stream_id >= streams.size()) {
    LOG_EVERY_N(WARNING, 100) << "snd: PCM request for stream " << parsed.stream_id << " of "
                              << streams.size();
    return VIRTIO_SND_S_BAD_MSG;
  }
  PcmStream& stream = streams[parsed.stream_id];
  const PcmState before = stream.state();
  status = stream.Handle(parsed, act);
  if (status == VIRTIO_SND_S_BAD_MSG) {
    LOG_EVERY_N(WARNING, 100) << "snd: stream " << parsed.stream_id << ": command 0x" << std::hex
                              << parsed.code << std::dec << " refused in state "
                              << StateName(before);
  }
  return status;
}

}  // namespace vhost::snd
