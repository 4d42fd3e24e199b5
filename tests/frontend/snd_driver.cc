#include "tests/frontend/snd_driver.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace vhost::frontend {
namespace {

constexpr uint32_t kPoisonStatus = 0xffffffff;

bool ToneFormat(uint8_t format) {
  return format == VIRTIO_SND_PCM_FMT_S16 || format == VIRTIO_SND_PCM_FMT_S32 ||
         format == VIRTIO_SND_PCM_FMT_FLOAT;
}

}  // namespace

uint32_t SndSampleBytes(uint8_t format) {
  switch (format) {
    case VIRTIO_SND_PCM_FMT_MU_LAW:
    case VIRTIO_SND_PCM_FMT_A_LAW:
    case VIRTIO_SND_PCM_FMT_S8:
    case VIRTIO_SND_PCM_FMT_U8:
    case VIRTIO_SND_PCM_FMT_DSD_U8:
      return 1;
    case VIRTIO_SND_PCM_FMT_S16:
    case VIRTIO_SND_PCM_FMT_U16:
    case VIRTIO_SND_PCM_FMT_DSD_U16:
      return 2;
    case VIRTIO_SND_PCM_FMT_S18_3:
    case VIRTIO_SND_PCM_FMT_U18_3:
    case VIRTIO_SND_PCM_FMT_S20_3:
    case VIRTIO_SND_PCM_FMT_U20_3:
    case VIRTIO_SND_PCM_FMT_S24_3:
    case VIRTIO_SND_PCM_FMT_U24_3:
      return 3;
    case VIRTIO_SND_PCM_FMT_S20:
    case VIRTIO_SND_PCM_FMT_U20:
    case VIRTIO_SND_PCM_FMT_S24:
    case VIRTIO_SND_PCM_FMT_U24:
    case VIRTIO_SND_PCM_FMT_S32:
    case VIRTIO_SND_PCM_FMT_U32:
    case VIRTIO_SND_PCM_FMT_FLOAT:
    case VIRTIO_SND_PCM_FMT_DSD_U32:
    case VIRTIO_SND_PCM_FMT_IEC958_SUBFRAME:
      return 4;
    case VIRTIO_SND_PCM_FMT_FLOAT64:
      return 8;
    default:
      return 0;
  }
}

uint32_t SndRateHz(uint8_t rate) {
  static constexpr uint32_t kRates[] = {5512,  8000,  11025, 16000, 22050,  32000,  44100,
                                        48000, 64000, 88200, 96000, 176400, 192000, 384000};
  return rate < sizeof(kRates) / sizeof(kRates[0]) ? kRates[rate] : 0;
}

virtio_snd_query_info SndQueryInfo(uint32_t code, uint32_t start_id, uint32_t count,
                                   uint32_t size) {
  virtio_snd_query_info q{};
  q.hdr.code = code;
  q.start_id = start_id;
  q.count = count;
  q.size = size;
  return q;
}

virtio_snd_pcm_hdr SndPcmHdr(uint32_t code, uint32_t stream_id) {
  virtio_snd_pcm_hdr h{};
  h.hdr.code = code;
  h.stream_id = stream_id;
  return h;
}

virtio_snd_pcm_set_params SndSetParams(uint32_t stream_id, uint32_t buffer_bytes,
                                       uint32_t period_bytes, uint8_t channels, uint8_t format,
                                       uint8_t rate, uint32_t features) {
  virtio_snd_pcm_set_params p{};
  p.hdr = SndPcmHdr(VIRTIO_SND_R_PCM_SET_PARAMS, stream_id);
  p.buffer_bytes = buffer_bytes;
  p.period_bytes = period_bytes;
  p.features = features;
  p.channels = channels;
  p.format = format;
  p.rate = rate;
  return p;
}

virtio_snd_jack_remap SndJackRemap(uint32_t jack_id, uint32_t association, uint32_t sequence) {
  virtio_snd_jack_remap r{};
  r.hdr.hdr.code = VIRTIO_SND_R_JACK_REMAP;
  r.hdr.jack_id = jack_id;
  r.association = association;
  r.sequence = sequence;
  return r;
}

uint32_t SndControl::status() const {
  virtio_snd_hdr hdr;
  std::memcpy(&hdr, resp, sizeof(hdr));
  return hdr.code;
}

absl::StatusOr<SndControl> AllocateSndControl(GuestRam* ram, uint32_t capacity) {
  if (capacity < sizeof(virtio_snd_hdr)) return absl::InvalidArgumentError("capacity too small");
  SndControl c;
  c.capacity = capacity;
  ASSIGN_OR_RETURN(c.req_gpa, ram->Allocate(capacity, 16, &c.req));
  ASSIGN_OR_RETURN(c.resp_gpa, ram->Allocate(capacity, 16, &c.resp));
  std::memset(c.req, 0, capacity);
  std::memset(c.resp, 0xff, capacity);
  return c;
}

absl::Status WriteSndControl(SndControl* c, const void* req, uint32_t len, uint32_t payload_len) {
  if (len > c->capacity || payload_len > c->capacity - sizeof(virtio_snd_hdr)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request of ", len, " or payload of ", payload_len, " bytes too large"));
  }
  std::memcpy(c->req, req, len);
  c->req_len = len;
  c->resp_len = sizeof(virtio_snd_hdr) + payload_len;
  std::memset(c->resp, 0xff, c->capacity);
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> AddSndControl(testing::DriverRing* ring, const SndControl& c) {
  testing::Buffer readable[1] = {{c.req_gpa, c.req_len}};
  testing::Buffer writable[1] = {{c.resp_gpa, c.resp_len}};
  return ring->AddChain(absl::MakeConstSpan(readable, c.req_len > 0 ? 1 : 0),
                        absl::MakeConstSpan(writable, c.resp_len > 0 ? 1 : 0));
}

absl::StatusOr<SndPcmBuffer> AllocateSndPcmBuffer(GuestRam* ram, uint32_t stream_id,
                                                  uint32_t data_len, bool capture) {
  SndPcmBuffer b;
  b.capture = capture;
  uint8_t* host;
  ASSIGN_OR_RETURN(b.xfer_gpa, ram->Allocate(sizeof(virtio_snd_pcm_xfer), 16, &host));
  b.xfer = reinterpret_cast<virtio_snd_pcm_xfer*>(host);
  b.xfer->stream_id = stream_id;
  if (data_len > 0) {
    ASSIGN_OR_RETURN(b.data_gpa, ram->Allocate(data_len, 64, &b.data));
    b.data_len = data_len;
    if (!capture) std::memset(b.data, 0, data_len);
  }
  ASSIGN_OR_RETURN(b.status_gpa, ram->Allocate(sizeof(virtio_snd_pcm_status), 16, &host));
  b.status = reinterpret_cast<virtio_snd_pcm_status*>(host);
  ResetSndPcmBuffer(&b);
  return b;
}

void ResetSndPcmBuffer(SndPcmBuffer* b) {
  std::memset(b->status, 0xff, sizeof(*b->status));
  if (b->capture && b->data_len > 0) std::memset(b->data, 0xa5, b->data_len);
}

absl::StatusOr<uint16_t> AddSndPcmBuffer(testing::DriverRing* ring, const SndPcmBuffer& b) {
  testing::Buffer readable[2], writable[2];
  size_t nr = 0, nw = 0;
  if (b.xfer_len > 0) readable[nr++] = {b.xfer_gpa, b.xfer_len};
  if (b.data_len > 0) {
    (b.capture ? writable[nw++] : readable[nr++]) = {b.data_gpa, b.data_len};
  }
  if (b.status_len > 0) writable[nw++] = {b.status_gpa, b.status_len};
  return ring->AddChain(absl::MakeConstSpan(readable, nr), absl::MakeConstSpan(writable, nw));
}

uint32_t SndCapturedBytes(const SndPcmBuffer& b, uint32_t used_len) {
  const uint32_t data = used_len > b.status_len ? used_len - b.status_len : 0;
  return std::min(data, b.data_len);
}

absl::StatusOr<uint16_t> AddSndEventBuffer(testing::DriverRing* ring, uint64_t gpa) {
  testing::Buffer writable[1] = {{gpa, sizeof(virtio_snd_event)}};
  return ring->AddChain({}, writable);
}

// ---- SndDriver.

absl::StatusOr<std::unique_ptr<SndDriver>> SndDriver::Start(const std::string& socket,
                                                            const Options& options) {
  std::unique_ptr<SndDriver> d(new SndDriver(options));
  DeviceOptions device;
  device.features = options.features;
  device.ram_size = options.ram_size;
  device.queue_sizes.assign(VIRTIO_SND_VQ_MAX, options.queue_size);
  ASSIGN_OR_RETURN(d->device_, DeviceConnection::Open(socket, device));
  ASSIGN_OR_RETURN(d->scratch_, AllocateSndControl(d->ram()));
  for (uint32_t i = 0; i < options.event_buffers; ++i) {
    uint8_t* host;
    ASSIGN_OR_RETURN(uint64_t gpa, d->ram()->Allocate(sizeof(virtio_snd_event), 16, &host));
    RETURN_IF_ERROR(d->PostEvent(gpa, reinterpret_cast<virtio_snd_event*>(host)));
  }
  RETURN_IF_ERROR(d->event_queue()->Submit().status());
  return d;
}

absl::StatusOr<virtio_snd_config> SndDriver::Config() {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, frontend()->GetConfig(0, sizeof(virtio_snd_config)));
  if (bytes.size() < sizeof(virtio_snd_config)) {
    return absl::DataLossError(absl::StrCat("config space of ", bytes.size(), " bytes"));
  }
  virtio_snd_config config;
  std::memcpy(&config, bytes.data(), sizeof(config));
  return config;
}

absl::StatusOr<uint32_t> SndDriver::WaitFor(FrontendQueue* queue, uint16_t id) {
  ASSIGN_OR_RETURN(testing::UsedElement used,
                   queue->WaitForUsed(options_.timeout, options_.busy_poll));
  if (used.id != id) {
    return absl::InternalError(absl::StrCat("chain ", used.id, " completed, waiting for ", id));
  }
  return used.len;
}

absl::StatusOr<SndReply> SndDriver::Control(const void* req, uint32_t len, uint32_t payload_len) {
  RETURN_IF_ERROR(WriteSndControl(&scratch_, req, len, payload_len));
  return Control(scratch_);
}

absl::StatusOr<SndReply> SndDriver::Control(const SndControl& c) {
  ASSIGN_OR_RETURN(uint16_t id, AddSndControl(&control_queue()->ring(), c));
  RETURN_IF_ERROR(control_queue()->Submit().status());
  SndReply reply;
  ASSIGN_OR_RETURN(reply.used_len, WaitFor(control_queue(), id));
  if (c.resp_len >= sizeof(virtio_snd_hdr)) {
    reply.status = c.status();
    reply.payload.assign(c.payload(), c.payload() + (c.resp_len - sizeof(virtio_snd_hdr)));
  }
  return reply;
}

template <typename Info>
absl::StatusOr<std::vector<Info>> SndDriver::Query(uint32_t code, uint32_t start_id,
                                                   uint32_t count) {
  ASSIGN_OR_RETURN(SndReply reply, Control(SndQueryInfo(code, start_id, count, sizeof(Info)),
                                           count * sizeof(Info)));
  if (reply.status != VIRTIO_SND_S_OK) {
    return absl::FailedPreconditionError(
        absl::StrCat("query 0x", absl::Hex(code), " answered 0x", absl::Hex(reply.status)));
  }
  std::vector<Info> items(count);
  if (count > 0) std::memcpy(items.data(), reply.payload.data(), count * sizeof(Info));
  return items;
}

absl::StatusOr<std::vector<virtio_snd_pcm_info>> SndDriver::PcmInfo(uint32_t start_id,
                                                                    uint32_t count) {
  return Query<virtio_snd_pcm_info>(VIRTIO_SND_R_PCM_INFO, start_id, count);
}

absl::StatusOr<std::vector<virtio_snd_jack_info>> SndDriver::JackInfo(uint32_t start_id,
                                                                      uint32_t count) {
  return Query<virtio_snd_jack_info>(VIRTIO_SND_R_JACK_INFO, start_id, count);
}

absl::StatusOr<std::vector<virtio_snd_chmap_info>> SndDriver::ChmapInfo(uint32_t start_id,
                                                                        uint32_t count) {
  return Query<virtio_snd_chmap_info>(VIRTIO_SND_R_CHMAP_INFO, start_id, count);
}

absl::StatusOr<uint32_t> SndDriver::SetParams(const virtio_snd_pcm_set_params& params) {
  ASSIGN_OR_RETURN(SndReply reply, Control(params));
  return reply.status;
}

absl::StatusOr<uint32_t> SndDriver::PcmCommand(uint32_t code, uint32_t stream_id) {
  ASSIGN_OR_RETURN(SndReply reply, Control(SndPcmHdr(code, stream_id)));
  return reply.status;
}

absl::StatusOr<uint32_t> SndDriver::JackRemap(uint32_t jack_id, uint32_t association,
                                              uint32_t sequence) {
  ASSIGN_OR_RETURN(SndReply reply, Control(SndJackRemap(jack_id, association, sequence)));
  return reply.status;
}

absl::Status SndDriver::SetUpAndStart(const virtio_snd_pcm_set_params& params) {
  const uint32_t stream = params.hdr.stream_id;
  ASSIGN_OR_RETURN(uint32_t set, SetParams(params));
  if (set != VIRTIO_SND_S_OK) {
    return absl::FailedPreconditionError(
        absl::StrCat("stream ", stream, " SET_PARAMS answered 0x", absl::Hex(set)));
  }
  for (uint32_t code : {VIRTIO_SND_R_PCM_PREPARE, VIRTIO_SND_R_PCM_START}) {
    ASSIGN_OR_RETURN(uint32_t status, PcmCommand(code, stream));
    if (status != VIRTIO_SND_S_OK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "stream ", stream, " command 0x", absl::Hex(code), " answered 0x", absl::Hex(status)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> SndDriver::QueuePcm(const SndPcmBuffer& buffer) {
  FrontendQueue* q = buffer.capture ? rx_queue() : tx_queue();
  ASSIGN_OR_RETURN(uint16_t id, AddSndPcmBuffer(&q->ring(), buffer));
  RETURN_IF_ERROR(q->Submit().status());
  return id;
}

absl::StatusOr<testing::UsedElement> SndDriver::WaitForPcm(bool capture) {
  return (capture ? rx_queue() : tx_queue())->WaitForUsed(options_.timeout, options_.busy_poll);
}

absl::StatusOr<virtio_snd_pcm_status> SndDriver::Transfer(const SndPcmBuffer& buffer) {
  ASSIGN_OR_RETURN(uint16_t id, QueuePcm(buffer));
  RETURN_IF_ERROR(WaitFor(buffer.capture ? rx_queue() : tx_queue(), id).status());
  virtio_snd_pcm_status status;
  std::memcpy(&status, buffer.status, sizeof(status));
  return status;
}

absl::Status SndDriver::PostEvent(uint64_t gpa, virtio_snd_event* event) {
  std::memset(event, 0xff, sizeof(*event));
  ASSIGN_OR_RETURN(uint16_t id, AddSndEventBuffer(&event_queue()->ring(), gpa));
  events_[id] = {gpa, event};
  return absl::OkStatus();
}

absl::StatusOr<virtio_snd_event> SndDriver::TakeEvent(const testing::UsedElement& used) {
  auto it = events_.find(used.id);
  if (it == events_.end()) return absl::InternalError("unknown event buffer");
  auto [gpa, buffer] = it->second;
  events_.erase(it);
  virtio_snd_event event;
  std::memcpy(&event, buffer, sizeof(event));
  RETURN_IF_ERROR(PostEvent(gpa, buffer));
  RETURN_IF_ERROR(event_queue()->Submit().status());
  return event;
}

absl::StatusOr<absl::optional<virtio_snd_event>> SndDriver::PollEvent() {
  ASSIGN_OR_RETURN(absl::optional<testing::UsedElement> used, event_queue()->PollUsed());
  if (!used) return absl::nullopt;
  return TakeEvent(*used);
}

absl::StatusOr<virtio_snd_event> SndDriver::WaitForEvent(absl::Duration timeout) {
  ASSIGN_OR_RETURN(testing::UsedElement used, event_queue()->WaitForUsed(timeout));
  return TakeEvent(used);
}

// ---- Tones.

absl::StatusOr<std::vector<uint8_t>> SndSineTone(uint8_t format, uint32_t channels,
                                                 uint32_t rate_hz, double frequency,
                                                 double amplitude, size_t frames, double phase) {
  if (!ToneFormat(format)) return absl::InvalidArgumentError("tones are S16, S32 or FLOAT");
  if (channels == 0 || rate_hz == 0) return absl::InvalidArgumentError("no channels or rate");
  const uint32_t width = SndSampleBytes(format);
  std::vector<uint8_t> out(frames * channels * width);
  uint8_t* p = out.data();
  for (size_t i = 0; i < frames; ++i) {
    const double v = amplitude * std::sin(2 * M_PI * frequency * i / rate_hz + phase);
    for (uint32_t c = 0; c < channels; ++c, p += width) {
      if (format == VIRTIO_SND_PCM_FMT_FLOAT) {
        const float f = static_cast<float>(v);
        std::memcpy(p, &f, sizeof(f));
      } else if (format == VIRTIO_SND_PCM_FMT_S16) {
        const int16_t s =
            static_cast<int16_t>(std::clamp<long>(std::lround(v * 32767), -32768, 32767));
        std::memcpy(p, &s, sizeof(s));
      } else {
        const int32_t s = static_cast<int32_t>(
            std::clamp<long long>(std::llround(v * 2147483647.0), -2147483648LL, 2147483647LL));
        std::memcpy(p, &s, sizeof(s));
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<double>> SndDecodeChannel(uint8_t format, uint32_t channels,
                                                     uint32_t channel,
                                                     absl::Span<const uint8_t> bytes) {
  if (!ToneFormat(format)) return absl::InvalidArgumentError("decoding is S16, S32 or FLOAT");
  if (channel >= channels) return absl::InvalidArgumentError("no such channel");
  const uint32_t width = SndSampleBytes(format);
  const size_t frame = width * channels;
  std::vector<double> out(bytes.size() / frame);
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t* p = bytes.data() + i * frame + channel * width;
    if (format == VIRTIO_SND_PCM_FMT_FLOAT) {
      float f;
      std::memcpy(&f, p, sizeof(f));
      out[i] = f;
    } else if (format == VIRTIO_SND_PCM_FMT_S16) {
      int16_t s;
      std::memcpy(&s, p, sizeof(s));
      out[i] = s / 32768.0;
    } else {
      int32_t s;
      std::memcpy(&s, p, sizeof(s));
      out[i] = s / 2147483648.0;
    }
  }
  return out;
}

double SndMeasureFrequency(absl::Span<const double> samples, uint32_t rate_hz) {
  double peak = 0;
  for (double s : samples) peak = std::max(peak, std::abs(s));
  if (peak == 0 || rate_hz == 0) return 0;
  // Hysteresis: a crossing counts only after the signal went clearly negative, so noise around
  // zero does not add crossings.
  const double threshold = 0.05 * peak;
  bool armed = false;
  double first = -1, last = -1;
  size_t crossings = 0;
  for (size_t i = 1; i < samples.size(); ++i) {
    if (samples[i - 1] < -threshold) armed = true;
    if (armed && samples[i - 1] < 0 && samples[i] >= 0) {
      const double at = (i - 1) + (-samples[i - 1]) / (samples[i] - samples[i - 1]);
      if (crossings == 0) first = at;
      last = at;
      ++crossings;
      armed = false;
    }
  }
  if (crossings < 2) return 0;
  return (crossings - 1) * static_cast<double>(rate_hz) / (last - first);
}

double SndGoertzelPower(absl::Span<const double> samples, uint32_t rate_hz, double frequency) {
  if (samples.empty() || rate_hz == 0) return 0;
  const double w = 2 * M_PI * frequency / rate_hz;
  const double coeff = 2 * std::cos(w);
  double s1 = 0, s2 = 0;
  for (double x : samples) {
    const double s0 = x + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const double power = s1 * s1 + s2 * s2 - coeff * s1 * s2;  // |X(f)|^2
  const double n = static_cast<double>(samples.size());
  return power / (n * n);
}

}  // namespace vhost::frontend
