#include "vhost-user-snd/snd_device.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"

namespace vhost::snd {
namespace {

// The largest control request is CTL_WRITE: a virtio_snd_ctl_hdr and a 512-byte value.
constexpr size_t kMaxControlRequest = sizeof(SndCtlHdr) + sizeof(SndCtlValue);
// Events kept for want of an event buffer: a guest that posts none is not worth more memory.
constexpr size_t kMaxPendingEvents = 64;

absl::StatusOr<AudioFormat> ToAudioFormat(uint8_t format) {
  switch (format) {
    case VIRTIO_SND_PCM_FMT_U8:
      return AudioFormat::kU8;
    case VIRTIO_SND_PCM_FMT_S16:
      return AudioFormat::kS16;
    case VIRTIO_SND_PCM_FMT_S24_3:
      return AudioFormat::kS24_3;
    case VIRTIO_SND_PCM_FMT_S32:
      return AudioFormat::kS32;
    case VIRTIO_SND_PCM_FMT_FLOAT:
      return AudioFormat::kFloat;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("format ", FormatName(format), " has no host side"));
}

absl::StatusOr<UniqueFd> MakeTimer() {
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "timerfd_create");
  return UniqueFd(fd);
}

// What `caps` offers that `host` can open; an error when nothing is left.
absl::StatusOr<PcmCaps> FitToHost(uint32_t id, PcmCaps caps, const Capabilities& host) {
  uint64_t formats = 0, rates = 0;
  for (uint8_t f = 0; f < kFormatCount; ++f) {
    absl::StatusOr<AudioFormat> format = ToAudioFormat(f);
    if (!((caps.formats >> f) & 1) || !format.ok()) continue;
    if (std::find(host.formats.begin(), host.formats.end(), *format) != host.formats.end()) {
      formats |= uint64_t{1} << f;
    }
  }
  for (uint8_t r = 0; r < kRateCount; ++r) {
    if (((caps.rates >> r) & 1) &&
        std::find(host.rates.begin(), host.rates.end(), RateHz(r)) != host.rates.end()) {
      rates |= uint64_t{1} << r;
    }
  }
  caps.formats = formats;
  caps.rates = rates;
  caps.channels_min =
      static_cast<uint8_t>(std::max<uint32_t>(caps.channels_min, host.channels_min));
  caps.channels_max =
      static_cast<uint8_t>(std::min<uint32_t>(caps.channels_max, host.channels_max));
  if (formats == 0 || rates == 0 || caps.channels_min > caps.channels_max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--streams: stream ", id, " (",
        caps.direction == VIRTIO_SND_D_OUTPUT ? "playback" : "capture",
        ") asks for no format, rate or channel count its host side can open (",
        host.formats.size() == 1 ? AudioFormatName(host.formats[0]) : "several formats", ", ",
        host.rates.size() == 1 ? absl::StrCat(host.rates[0], " Hz") : "several rates", ", ",
        host.channels_min, "-", host.channels_max, " ch)"));
  }
  return caps;
}

}  // namespace

uint64_t SndDevice::Stream::held_bytes() const {
  uint64_t total = 0;
  for (const Held& h : held) total += h.bytes - h.done;
  return total;
}

absl::StatusOr<std::unique_ptr<SndDevice>> SndDevice::Create(
    std::vector<PcmCaps> streams, std::vector<std::unique_ptr<AudioBackend>> backends,
    const Clock* clock, bool controls) {
  if (backends.size() != streams.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(backends.size(), " backends for ", streams.size(), " streams"));
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    absl::StatusOr<PcmCaps> fit =
        FitToHost(static_cast<uint32_t>(i), streams[i], backends[i]->capabilities());
    if (!fit.ok()) return fit.status();
    streams[i] = *fit;
  }
  for (PcmCaps& caps : streams) caps.features |= 1u << VIRTIO_SND_PCM_F_EVT_XRUNS;
  SndConfig config(std::move(streams), controls);
  absl::StatusOr<UniqueFd> tx = MakeTimer();
  if (!tx.ok()) return tx.status();
  absl::StatusOr<UniqueFd> rx = MakeTimer();
  if (!rx.ok()) return rx.status();
  return std::unique_ptr<SndDevice>(
      new SndDevice(std::move(config), std::move(backends), clock, *std::move(tx), *std::move(rx)));
}

SndDevice::SndDevice(SndConfig config, std::vector<std::unique_ptr<AudioBackend>> backends,
                     const Clock* clock, UniqueFd tx_timer, UniqueFd rx_timer)
    : config_(std::move(config)),
      initial_jacks_(config_.jacks()),
      clock_(clock),
      tx_timer_(std::move(tx_timer)),
      rx_timer_(std::move(rx_timer)) {
  streams_.reserve(backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    streams_.emplace_back(static_cast<uint32_t>(i), config_.streams()[i], std::move(backends[i]));
  }
}

SndDevice::~SndDevice() {
  for (Stream& s : streams_) (void)s.backend->Close();
}

DeviceInfo SndDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdSound;
  info.num_queues = 4;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1);
  // Without controls the configuration space ends before `controls` (virtio 1.2's layout).
  if (config_.control_count() > 0) info.features |= Bit(kSndFCtls);
  info.config_size =
      config_.control_count() > 0 ? sizeof(SndConfigCtls) : sizeof(virtio_snd_config);
  return info;
}

absl::Status SndDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  std::lock_guard<std::mutex> lock(mu_);
  const SndConfigCtls config = config_.config();
  if (config_.control_count() == 0) {
    virtio_snd_config plain;
    std::memcpy(&plain, &config, sizeof(plain));
    return ReadConfigBytes(plain, offset, data);
  }
  return ReadConfigBytes(config, offset, data);
}

absl::Status SndDevice::QueueStarted(QueueContext& context) {
  const int index = context.index();
  if (index == kEventQueue) {
    std::lock_guard<std::mutex> lock(mu_);
    event_context_ = &context;
    return absl::OkStatus();
  }
  if (index != kTxQueue && index != kRxQueue) return absl::OkStatus();
  const uint8_t direction = index == kTxQueue ? VIRTIO_SND_D_OUTPUT : VIRTIO_SND_D_INPUT;
  {
    std::lock_guard<std::mutex> lock(mu_);
    data_context(direction) = &context;
  }
  return context.Watch(timer(direction));
}

QueueResult SndDevice::ProcessQueue(QueueContext& context) {
  switch (context.index()) {
    case kControlQueue:
      ProcessControl(context);
      return QueueResult::Drained();
    case kTxQueue:
      ProcessData(context, VIRTIO_SND_D_OUTPUT);
      return QueueResult::Drained();
    case kRxQueue:
      ProcessData(context, VIRTIO_SND_D_INPUT);
      return QueueResult::Drained();
    case kEventQueue: {
      // Held until an event happens; the ring bounds how many.
      std::lock_guard<std::mutex> lock(mu_);
      while (absl::optional<ChainToken> token = context.Take()) {
        event_buffers_.push_back(*token);
      }
      while (!pending_events_.empty() && DeliverEvent(pending_events_.front())) {
        pending_events_.pop_front();
      }
      return QueueResult::Drained();
    }
    default:
      return QueueResult::Blocked();
  }
}

void SndDevice::QueueStopped(QueueContext& context) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Stream& s : streams_) {
    while (!s.held.empty() && s.held.front().context == &context) {
      const Held h = s.held.front();
      s.held.pop_front();
      Finish(s, h, VIRTIO_SND_S_OK);
    }
  }
  if (event_context_ == &context) {
    for (ChainToken token : event_buffers_) context.Complete(token, 0);
    event_buffers_.clear();
    event_context_ = nullptr;
  }
  if (tx_context_ == &context) tx_context_ = nullptr;
  if (rx_context_ == &context) rx_context_ = nullptr;
}

void SndDevice::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Stream& s : streams_) {
    FinishAll(s, VIRTIO_SND_S_OK);  // none after QueueStopped; kept for a direct caller
    (void)s.backend->Close();
    s.clock.reset();
    s.lost = false;
    s.pcm.Reset();
  }
  // A reset forgets remaps; what is plugged in stays as the host left it.
  std::vector<Jack> jacks = initial_jacks_;
  for (size_t i = 0; i < jacks.size(); ++i) jacks[i].connected = config_.jacks()[i].connected;
  config_.jacks() = std::move(jacks);
  config_.ResetControls();
  pending_events_.clear();  // the driver reads JACK_INFO afresh
}

// ---- the host's side

absl::StatusOr<std::string> SndDevice::HostCommand(absl::string_view line) {
  const std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  std::lock_guard<std::mutex> lock(mu_);
  if (words.size() == 1 && words[0] == "list") {
    std::vector<std::string> items;
    for (size_t id = 0; id < config_.jacks().size(); ++id) {
      const Jack& jack = config_.jacks()[id];
      items.push_back(absl::StrCat("jack ", id,
                                   jack.direction == VIRTIO_SND_D_OUTPUT ? " out " : " in ",
                                   jack.connected ? "plugged" : "unplugged"));
    }
    for (uint32_t id = 0; id < config_.control_count(); ++id) {
      items.push_back(absl::StrCat("control ", id, " ", config_.ControlValue(id)));
    }
    return absl::StrJoin(items, "; ");
  }
  if (words.size() == 3 && words[0] == "jack") return JackCommand(words[1], words[2]);
  if (words.size() == 3 && words[0] == "control") return ControlCommand(words[1], words[2]);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command '", line, "' (list, jack ID plug|unplug, control ID VALUE)"));
}

absl::StatusOr<std::string> SndDevice::ControlCommand(absl::string_view id_text,
                                                      absl::string_view value_text) {
  if (config_.control_count() == 0) {
    return absl::InvalidArgumentError("control: the device has no controls (--controls)");
  }
  uint32_t id = 0, value = 0;
  if (!absl::SimpleAtoi(id_text, &id) || id >= config_.control_count()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control: '", id_text, "' is not a control id (0-", config_.control_count() - 1, ")"));
  }
  if (!absl::SimpleAtoi(value_text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat("control: '", value_text, "' is not a value"));
  }
  const uint32_t before = config_.ControlValue(id);
  if (absl::Status set = config_.SetControlValue(id, value); !set.ok()) return set;
  if (value != before) {
    LOG(INFO) << "snd: control " << id << " set to " << value;
    const SndCtlEvent notify{{kSndEvtCtlNotify},
                             static_cast<uint16_t>(id),
                             static_cast<uint16_t>(1u << kSndCtlEvtMaskValue)};
    virtio_snd_event event;
    static_assert(sizeof(event) == sizeof(notify));
    std::memcpy(&event, &notify, sizeof(event));
    SendEvent(event, /*keep=*/true);
  }
  return absl::StrCat("control ", id, " ", value);
}

absl::StatusOr<std::string> SndDevice::JackCommand(absl::string_view id_text,
                                                   absl::string_view action) {
  uint32_t id = 0;
  if (!absl::SimpleAtoi(id_text, &id) || id >= config_.jacks().size()) {
    return absl::InvalidArgumentError(absl::StrCat("jack: '", id_text, "' is not a jack id (0-",
                                                   config_.jacks().size() - 1, ")"));
  }
  if (action != "plug" && action != "unplug") {
    return absl::InvalidArgumentError(absl::StrCat("jack: '", action, "' is not plug or unplug"));
  }
  Jack& jack = config_.jacks()[id];
  const bool plug = action == "plug";
  if (jack.connected != plug) {
    jack.connected = plug;
    LOG(INFO) << "snd: jack " << id << (plug ? " plugged" : " unplugged");
    SendEvent(
        virtio_snd_event{{plug ? VIRTIO_SND_EVT_JACK_CONNECTED : VIRTIO_SND_EVT_JACK_DISCONNECTED},
                         id},
        /*keep=*/true);
  }
  return absl::StrCat("jack ", id, plug ? " plugged" : " unplugged");
}

// ---- control queue

void SndDevice::ProcessControl(QueueContext& context) {
  while (absl::optional<ChainToken> token = context.Take()) {
    const DescriptorChain& chain = context.chain(*token);
    if (chain.writable_bytes < sizeof(virtio_snd_hdr)) {
      LOG_EVERY_N(WARNING, 100) << "snd: control request with no room for its status";
      context.Complete(*token, 0);
      continue;
    }
    std::vector<uint8_t> reply;
    if (chain.readable_bytes > kMaxControlRequest) {
      LOG_EVERY_N(WARNING, 100) << "snd: control request of " << chain.readable_bytes << " bytes";
      reply = StatusReply(VIRTIO_SND_S_BAD_MSG);
    } else {
      std::vector<uint8_t> request(chain.readable_bytes);
      CopyFromSegments(chain.readable, 0, request.data(), request.size());
      std::lock_guard<std::mutex> lock(mu_);
      const SndStatus status = ControlRequest(request, chain.writable_bytes, &reply);
      if (reply.empty()) reply = StatusReply(status);
    }
    const size_t n = std::min<size_t>(reply.size(), chain.writable_bytes);
    context.Complete(*token, CopyToSegments(chain.writable, 0, reply.data(), n));
  }
}

SndStatus SndDevice::ControlRequest(absl::Span<const uint8_t> request, size_t writable,
                                    std::vector<uint8_t>* reply) {
  virtio_snd_hdr hdr;
  if (request.size() < sizeof(hdr)) {
    LOG_EVERY_N(WARNING, 100) << "snd: control request of " << request.size() << " bytes";
    return VIRTIO_SND_S_BAD_MSG;
  }
  std::memcpy(&hdr, request.data(), sizeof(hdr));
  switch (hdr.code) {
    case VIRTIO_SND_R_PCM_INFO:
    case VIRTIO_SND_R_JACK_INFO:
    case VIRTIO_SND_R_CHMAP_INFO:
      *reply = config_.InfoReply(request, writable);
      return VIRTIO_SND_S_OK;
    case kSndRCtlInfo:
    case kSndRCtlEnumItems:
    case kSndRCtlRead:
    case kSndRCtlWrite:
    case kSndRCtlTlvRead:
    case kSndRCtlTlvWrite:
    case kSndRCtlTlvCommand:
      if (config_.control_count() == 0) {
        LOG_EVERY_N(WARNING, 100) << "snd: control element request 0x" << std::hex << hdr.code
                                  << " without VIRTIO_SND_F_CTLS";
        return VIRTIO_SND_S_NOT_SUPP;
      }
      *reply = hdr.code == kSndRCtlInfo ? config_.InfoReply(request, writable)
                                        : config_.ControlReply(request, writable);
      return VIRTIO_SND_S_OK;
    case VIRTIO_SND_R_JACK_REMAP:
      return config_.RemapJack(request);
    case VIRTIO_SND_R_PCM_SET_PARAMS:
    case VIRTIO_SND_R_PCM_PREPARE:
    case VIRTIO_SND_R_PCM_RELEASE:
    case VIRTIO_SND_R_PCM_START:
    case VIRTIO_SND_R_PCM_STOP: {
      // As HandlePcmRequest does, on the PcmStream inside each Stream.
      PcmRequest parsed;
      SndStatus status = ParsePcmRequest(request, &parsed);
      if (status != VIRTIO_SND_S_OK) {
        LOG_EVERY_N(WARNING, 100) << "snd: malformed PCM request of " << request.size() << " bytes";
        return status;
      }
      if (parsed.stream_id >= streams_.size()) {
        LOG_EVERY_N(WARNING, 100) << "snd: PCM request for stream " << parsed.stream_id << " of "
                                  << streams_.size();
        return VIRTIO_SND_S_BAD_MSG;
      }
      PcmStream& pcm = streams_[parsed.stream_id].pcm;
      const PcmState before = pcm.state();
      status = pcm.Handle(parsed, [this](const PcmRequest& r) { return Act(r); });
      if (status == VIRTIO_SND_S_BAD_MSG) {
        LOG_EVERY_N(WARNING, 100) << "snd: stream " << parsed.stream_id << ": command 0x"
                                  << std::hex << parsed.code << std::dec << " refused in state "
                                  << StateName(before);
      }
      return status;
    }
    default:
      LOG_EVERY_N(WARNING, 100) << "snd: unsupported control request 0x" << std::hex << hdr.code;
      return VIRTIO_SND_S_NOT_SUPP;
  }
}

// The host side of a command the stream's lifecycle allows (mu_ held).
absl::Status SndDevice::Act(const PcmRequest& request) {
  Stream& s = streams_[request.stream_id];
  const PcmParams& params =
      request.code == VIRTIO_SND_R_PCM_SET_PARAMS ? request.params : s.pcm.params();
  auto open = [&]() -> absl::Status {
    absl::StatusOr<AudioFormat> format = ToAudioFormat(params.format);
    if (!format.ok()) return format.status();
    StreamParams host;
    host.format = *format;
    host.rate = params.rate_hz();
    host.channels = params.channels;
    host.period_frames = params.period_frames();
    absl::Status opened = s.backend->Open(host);
    if (absl::IsUnavailable(opened)) {
      LOG(WARNING) << "snd: stream " << request.stream_id << " runs silent: " << opened;
      s.lost = true;
      return absl::OkStatus();
    }
    if (opened.ok()) s.lost = false;
    return opened;
  };
  switch (request.code) {
    case VIRTIO_SND_R_PCM_SET_PARAMS: {
      // Buffers queued under the old parameters are not played with the new ones.
      FinishAll(s, VIRTIO_SND_S_OK);
      return open();
    }
    case VIRTIO_SND_R_PCM_PREPARE: {
      absl::Status opened = open();
      if (!opened.ok()) return opened;
      SampleClock::Config clock;
      clock.rate = params.rate_hz();
      clock.period_frames = params.period_frames();
      clock.xrun_periods = params.buffer_bytes / params.period_bytes;
      s.clock = std::make_unique<SampleClock>(clock_, clock);
      return absl::OkStatus();
    }
    case VIRTIO_SND_R_PCM_START: {
      if (!s.lost) {
        absl::Status started = s.backend->Start();
        if (!started.ok()) return started;
      }
      s.clock->Start();
      if (QueueContext* ctx = data_context(s.pcm.caps().direction)) ctx->Wake();
      return absl::OkStatus();
    }
    case VIRTIO_SND_R_PCM_STOP:
      s.clock->Stop();
      if (!s.lost) return s.backend->Stop();
      return absl::OkStatus();
    case VIRTIO_SND_R_PCM_RELEASE:
      // §5.14.6.6.5.1: every pending I/O message of the stream is completed.
      FinishAll(s, VIRTIO_SND_S_OK);
      s.clock.reset();
      return s.backend->Close();
  }
  return absl::OkStatus();
}

// ---- tx and rx queues

void SndDevice::ProcessData(QueueContext& context, uint8_t direction) {
  uint64_t expirations;
  while (read(timer(direction), &expirations, sizeof(expirations)) > 0) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  while (absl::optional<ChainToken> token = context.Take()) {
    AcceptBuffer(context, *token, direction);
  }
  for (Stream& s : streams_) {
    if (s.pcm.caps().direction == direction && s.clock && s.clock->running()) RunClock(s);
  }
  ArmTimer(direction);
}

void SndDevice::AcceptBuffer(QueueContext& context, ChainToken token, uint8_t direction) {
  const DescriptorChain& chain = context.chain(token);
  auto refuse = [&](const char* why) {
    LOG_EVERY_N(WARNING, 100) << "snd: " << (direction == VIRTIO_SND_D_OUTPUT ? "tx" : "rx")
                              << " buffer refused: " << why;
    Answer(context, token, direction, VIRTIO_SND_S_BAD_MSG, 0);
  };
  virtio_snd_pcm_xfer xfer;
  if (chain.readable_bytes < sizeof(xfer) || chain.writable_bytes < sizeof(virtio_snd_pcm_status)) {
    return refuse("no room for its header or status");
  }
  CopyFromSegments(chain.readable, 0, &xfer, sizeof(xfer));
  const uint64_t bytes = direction == VIRTIO_SND_D_OUTPUT
                             ? chain.readable_bytes - sizeof(xfer)
                             : chain.writable_bytes - sizeof(virtio_snd_pcm_status);
  if (direction == VIRTIO_SND_D_INPUT && chain.readable_bytes != sizeof(xfer)) {
    return refuse("capture buffer with data to play");
  }
  if (xfer.stream_id >= streams_.size()) return refuse("unknown stream");
  Stream& s = streams_[xfer.stream_id];
  if (s.pcm.caps().direction != direction) return refuse("stream of the other direction");
  const PcmState state = s.pcm.state();
  if (state != PcmState::kPrepared && state != PcmState::kStarted && state != PcmState::kStopped) {
    return refuse("stream not prepared");
  }
  const PcmParams& params = s.pcm.params();
  if (bytes == 0 || bytes > params.buffer_bytes || bytes % params.frame_bytes() != 0) {
    return refuse("not a whole number of frames within the stream's buffer");
  }
  s.held.push_back(Held{&context, token, static_cast<uint32_t>(bytes)});
}

void SndDevice::RunClock(Stream& s) {
  const PcmParams& params = s.pcm.params();
  const bool playback = s.pcm.caps().direction == VIRTIO_SND_D_OUTPUT;
  const AudioFormat format = *ToAudioFormat(params.format);
  // After a long stall (the queues stopped while the VM paused, the daemon not scheduled) the
  // periods missed are dropped, not burst through: at most a buffer's worth is caught up.
  s.clock->SkipBacklog(s.clock->config().xrun_periods);
  while (std::optional<SampleClock::Period> period = s.clock->Take(!s.held.empty())) {
    if (period->xrun && (params.features >> VIRTIO_SND_PCM_F_EVT_XRUNS & 1)) {
      SendEvent(virtio_snd_event{{VIRTIO_SND_EVT_PCM_XRUN}, s.pcm.id()});
    }
    period_.resize(params.period_bytes);
    size_t filled = 0;
    if (!playback) {
      absl::Status read = s.lost ? absl::OkStatus() : s.backend->Read(absl::MakeSpan(period_));
      if (s.lost || !read.ok()) FillSilence(format, absl::MakeSpan(period_));
      ApplyGain(format, config_.Gain(s.pcm.id()), absl::MakeSpan(period_));
      if (absl::IsUnavailable(read)) {
        LOG(WARNING) << "snd: stream " << s.pcm.id() << " capture lost, silent: " << read;
        s.lost = true;
      }
    }
    while (filled < period_.size() && !s.held.empty()) {
      Held& h = s.held.front();
      const DescriptorChain& chain = h.context->chain(h.token);
      const size_t n = std::min<size_t>(h.bytes - h.done, period_.size() - filled);
      if (playback) {
        CopyFromSegments(chain.readable, sizeof(virtio_snd_pcm_xfer) + h.done,
                         period_.data() + filled, n);
      } else {
        CopyToSegments(chain.writable, h.done, period_.data() + filled, n);
      }
      h.done += n;
      filled += n;
      if (h.done == h.bytes) {
        const Held done = h;
        s.held.pop_front();
        Finish(s, done, VIRTIO_SND_S_OK);
      }
    }
    if (playback) {
      // The guest was late for (part of) this period: silence plays in its place.
      FillSilence(format, absl::MakeSpan(period_).subspan(filled));
      ApplyGain(format, config_.Gain(s.pcm.id()), absl::MakeSpan(period_));
      if (!s.lost) {
        absl::Status written = s.backend->Write(period_);
        if (absl::IsUnavailable(written)) {
          LOG(WARNING) << "snd: stream " << s.pcm.id() << " playback lost, silent: " << written;
          s.lost = true;
        } else if (!written.ok()) {
          LOG_EVERY_N(WARNING, 100) << "snd: stream " << s.pcm.id() << ": " << written;
        }
      }
    }
  }
}

void SndDevice::Finish(Stream& s, const Held& held, SndStatus status) {
  const uint64_t latency = std::min<uint64_t>(s.held_bytes(), UINT32_MAX);
  Answer(*held.context, held.token, s.pcm.caps().direction, status, static_cast<uint32_t>(latency));
}

void SndDevice::FinishAll(Stream& s, SndStatus status) {
  while (!s.held.empty()) {
    const Held h = s.held.front();
    s.held.pop_front();
    Finish(s, h, status);
  }
}

// tx: the status is the writable part; rx: it follows the frames, and the whole writable part
// counts as written (a buffer completed early keeps what the guest had past the captured frames).
void SndDevice::Answer(QueueContext& context, ChainToken token, uint8_t direction, SndStatus status,
                       uint32_t latency) {
  const DescriptorChain& chain = context.chain(token);
  if (chain.writable_bytes < sizeof(virtio_snd_pcm_status)) {
    context.Complete(token, 0);
    return;
  }
  const virtio_snd_pcm_status wire{status, latency};
  const uint64_t at = direction == VIRTIO_SND_D_OUTPUT ? 0 : chain.writable_bytes - sizeof(wire);
  CopyToSegments(chain.writable, at, &wire, sizeof(wire));
  context.Complete(token, static_cast<uint32_t>(at + sizeof(wire)));
}

void SndDevice::SendEvent(const virtio_snd_event& event, bool keep) {
  if (DeliverEvent(event)) return;
  if (keep && pending_events_.size() < kMaxPendingEvents) {
    pending_events_.push_back(event);
    return;
  }
  LOG_EVERY_N(WARNING, 100) << "snd: event 0x" << std::hex << event.hdr.code
                            << " dropped: the guest gave no event buffer";
}

bool SndDevice::DeliverEvent(const virtio_snd_event& event) {
  while (event_context_ != nullptr && !event_buffers_.empty()) {
    const ChainToken token = event_buffers_.front();
    event_buffers_.pop_front();
    const DescriptorChain& chain = event_context_->chain(token);
    if (chain.writable_bytes < sizeof(event)) {
      LOG_EVERY_N(WARNING, 100) << "snd: event buffer of " << chain.writable_bytes << " bytes";
      event_context_->Complete(token, 0);
      continue;
    }
    event_context_->Complete(token, CopyToSegments(chain.writable, 0, &event, sizeof(event)));
    return true;
  }
  return false;
}

void SndDevice::ArmTimer(uint8_t direction) {
  absl::Duration next = absl::InfiniteDuration();
  for (const Stream& s : streams_) {
    if (s.pcm.caps().direction == direction && s.clock && s.clock->running()) {
      next = std::min(next, s.clock->NextDue());
    }
  }
  itimerspec spec{};
  if (next != absl::InfiniteDuration()) {
    spec.it_value = absl::ToTimespec(std::max(next, absl::Nanoseconds(1)));
  }
  if (timerfd_settime(timer(direction), TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    PLOG_EVERY_N(ERROR, 100) << "snd: timerfd_settime";
  }
}

}  // namespace vhost::snd
