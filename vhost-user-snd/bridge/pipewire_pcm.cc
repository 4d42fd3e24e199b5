// HostPcm on libpipewire: one pw_stream per Open, on a pw_thread_loop of its own, with the
// stream's exact format, rate and channels (PipeWire converts to its graph's format itself).
// Write and Read go through a ring of a few periods that the stream's process callback empties
// (playback) or fills (capture) at the graph's clock.
#include <pipewire/pipewire.h>
#include <spa/param/audio/format-utils.h>
#include <spa/utils/result.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "vhost-user-snd/bridge/host_pcm.h"

namespace vhost::snd {
namespace {

// Periods the ring holds: like ALSA's buffer, enough for the bridge's thread to be a period or
// two late without an underrun, no more latency than that.
constexpr size_t kRingPeriods = 4;
// Periods in the ring before the graph starts taking them (see OnProcess).
constexpr size_t kStartPeriods = 2;
// How much longer than the ring's duration Stop waits for the graph to play it out.
constexpr auto kDrainSlack = std::chrono::milliseconds(200);
// Graph cycles after the ring ran dry before Stop returns (the frames' way to the sink).
constexpr uint64_t kDrainCycles = 3;
// How long Open waits for the server to accept the stream, and Write/Read for the graph to
// take or give anything. Far longer than a period: a stream that makes no progress for this
// long is not linked or its server hangs, and the bridge must not hang with it.
constexpr auto kConnectTimeout = std::chrono::seconds(3);
constexpr auto kStallTimeout = std::chrono::seconds(2);

spa_audio_format SpaFormat(AudioFormat format) {
  switch (format) {
    case AudioFormat::kU8:
      return SPA_AUDIO_FORMAT_U8;
    case AudioFormat::kS16:
      return SPA_AUDIO_FORMAT_S16_LE;
    case AudioFormat::kS24_3:
      return SPA_AUDIO_FORMAT_S24_LE;  // SPA's S24 is packed in 3 bytes (S24_32 is not)
    case AudioFormat::kS32:
      return SPA_AUDIO_FORMAT_S32_LE;
    case AudioFormat::kFloat:
      return SPA_AUDIO_FORMAT_F32_LE;
  }
  return SPA_AUDIO_FORMAT_UNKNOWN;
}

// PipeWire converts any format and resamples any rate to its graph's, but a stream has at
// most SPA_AUDIO_MAX_CHANNELS channels.
Capabilities PipeWireCapabilities() {
  Capabilities caps = AnyCapabilities();
  caps.channels_max = SPA_AUDIO_MAX_CHANNELS;
  return caps;
}

class PipeWirePcm : public HostPcm {
 public:
  explicit PipeWirePcm(std::string target) : target_(std::move(target)) {
    // Once per process, and never pw_deinit: in this libpipewire (0.3.65) it is not
    // reference-counted and would pull the library's state from under the bridge's other
    // streams.
    static const bool initialized = [] {
      pw_init(nullptr, nullptr);
      return true;
    }();
    (void)initialized;
  }
  ~PipeWirePcm() override { Close(); }

  Capabilities Probe(PcmDirection direction) override { return PipeWireCapabilities(); }
  absl::Status Open(PcmDirection direction, const StreamParams& params) override;
  absl::Status Start() override;
  absl::Status Stop() override;
  absl::Status Write(absl::Span<const uint8_t> frames) override;
  absl::Status Read(absl::Span<uint8_t> frames) override;
  uint64_t DelayFrames() override;
  void Close() override;

  // pw_stream and pw_core callbacks (kStreamEvents, kCoreEvents), on the loop's thread with
  // its lock held: the stream is not PW_STREAM_FLAG_RT_PROCESS, so even process runs there,
  // which lets Close stop them all by stopping the loop.
  static void OnStateChanged(void* self, pw_stream_state old, pw_stream_state state,
                             const char* error);
  static void OnProcess(void* self);
  static void OnCoreError(void* self, uint32_t id, int seq, int res, const char* message);

 private:
  void Fail(std::string why);

  // Copies up to `bytes` between the ring and `data`; returns how many. Needs mu_.
  size_t RingPush(const uint8_t* data, size_t bytes);
  size_t RingPop(uint8_t* data, size_t bytes);
  absl::Status Unavailable() const {
    return absl::UnavailableError(absl::StrCat("PipeWire: ", error_));
  }

  const std::string target_;
  PcmDirection direction_ = PcmDirection::kPlayback;
  StreamParams params_;

  pw_thread_loop* loop_ = nullptr;
  pw_context* context_ = nullptr;
  pw_core* core_ = nullptr;
  pw_stream* stream_ = nullptr;
  spa_hook core_listener_{};
  spa_hook stream_listener_{};
  // Set by the callbacks (under the loop's lock); Open waits for one of them.
  bool connected_ = false;

  // The ring and the stream's state as Write/Read see them.
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint8_t> ring_;
  size_t ring_head_ = 0;  // oldest byte
  size_t ring_fill_ = 0;
  bool open_ = false;
  bool started_ = false;
  bool primed_ = false;    // guarded by mu_: the graph takes frames from the ring
  bool draining_ = false;  // guarded by mu_: Stop waits for the ring to play out
  uint64_t cycles_ = 0;    // guarded by mu_: process callbacks so far
  bool failed_ = false;    // the server or the stream went away: Write/Read are Unavailable
  std::string error_;
  uint64_t underruns_ = 0;
  uint64_t overruns_ = 0;
};

const pw_stream_events kStreamEvents = [] {
  pw_stream_events events{};
  events.version = PW_VERSION_STREAM_EVENTS;
  events.state_changed = &PipeWirePcm::OnStateChanged;
  events.process = &PipeWirePcm::OnProcess;
  return events;
}();

const pw_core_events kCoreEvents = [] {
  pw_core_events events{};
  events.version = PW_VERSION_CORE_EVENTS;
  events.error = &PipeWirePcm::OnCoreError;
  return events;
}();

absl::Status PipeWirePcm::Open(PcmDirection direction, const StreamParams& params) {
  Close();
  if (absl::Status s = CheckParams(PipeWireCapabilities(), params); !s.ok()) return s;
  direction_ = direction;
  params_ = params;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ring_.assign(kRingPeriods * params.period_bytes(), 0);
    ring_head_ = ring_fill_ = 0;
    failed_ = false;
    error_.clear();
    started_ = false;
    underruns_ = overruns_ = 0;
  }

  loop_ = pw_thread_loop_new("pw-snd", nullptr);
  if (loop_ == nullptr) return absl::UnavailableError("PipeWire: cannot create a thread loop");
  context_ = pw_context_new(pw_thread_loop_get_loop(loop_), nullptr, 0);
  if (context_ == nullptr || pw_thread_loop_start(loop_) < 0) {
    Close();
    return absl::UnavailableError("PipeWire: cannot create a context");
  }

  pw_thread_loop_lock(loop_);
  // Connecting to the local socket happens here: no server, no core (at once, no waiting).
  core_ = pw_context_connect(context_, nullptr, 0);
  if (core_ == nullptr) {
    const int err = errno;
    pw_thread_loop_unlock(loop_);
    Close();
    return absl::UnavailableError(absl::StrCat("PipeWire: no server: ", strerror(err)));
  }
  pw_core_add_listener(core_, &core_listener_, &kCoreEvents, this);

  const bool playback = direction == PcmDirection::kPlayback;
  pw_properties* props = pw_properties_new(
      PW_KEY_MEDIA_TYPE, "Audio", PW_KEY_MEDIA_CATEGORY, playback ? "Playback" : "Capture",
      PW_KEY_APP_NAME, "vhost-user-snd", PW_KEY_NODE_NAME,
      playback ? "vhost-user-snd-playback" : "vhost-user-snd-capture", nullptr);
  // About one period per graph cycle, and the stream's own rate asked of the graph, which
  // then runs at it if its allowed rates include it instead of resampling.
  pw_properties_setf(props, PW_KEY_NODE_LATENCY, "%u/%u", params.period_frames, params.rate);
  pw_properties_setf(props, PW_KEY_NODE_RATE, "1/%u", params.rate);
  if (!target_.empty()) pw_properties_set(props, PW_KEY_TARGET_OBJECT, target_.c_str());
  stream_ = pw_stream_new(core_, "vhost-user-snd", props);  // takes props
  if (stream_ == nullptr) {
    pw_thread_loop_unlock(loop_);
    Close();
    return absl::UnavailableError("PipeWire: cannot create a stream");
  }
  pw_stream_add_listener(stream_, &stream_listener_, &kStreamEvents, this);

  spa_audio_info_raw info{};
  info.format = SpaFormat(params.format);
  info.rate = params.rate;
  info.channels = params.channels;
  if (params.channels == 1) {
    info.position[0] = SPA_AUDIO_CHANNEL_MONO;
  } else if (params.channels == 2) {
    info.position[0] = SPA_AUDIO_CHANNEL_FL;
    info.position[1] = SPA_AUDIO_CHANNEL_FR;
  } else {
    // No layout virtio-snd's default channel map would name: PipeWire numbers them AUX0...
    info.flags = SPA_AUDIO_FLAG_UNPOSITIONED;
  }
  uint8_t pod_buffer[1024];
  spa_pod_builder builder = SPA_POD_BUILDER_INIT(pod_buffer, sizeof(pod_buffer));
  const spa_pod* format = spa_format_audio_raw_build(&builder, SPA_PARAM_EnumFormat, &info);
  const int res = pw_stream_connect(
      stream_, playback ? PW_DIRECTION_OUTPUT : PW_DIRECTION_INPUT, PW_ID_ANY,
      static_cast<pw_stream_flags>(PW_STREAM_FLAG_AUTOCONNECT | PW_STREAM_FLAG_MAP_BUFFERS),
      &format, 1);
  if (res < 0) {
    pw_thread_loop_unlock(loop_);
    Close();
    return absl::UnavailableError(
        absl::StrCat("PipeWire: cannot connect a stream: ", spa_strerror(res)));
  }

  // Wait (bounded) until the server has the stream (paused until linked) or refuses it.
  timespec deadline;
  pw_thread_loop_get_time(
      loop_, &deadline,
      std::chrono::duration_cast<std::chrono::nanoseconds>(kConnectTimeout).count());
  bool failed = false;
  while (!connected_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      failed = failed_;
    }
    if (failed || pw_thread_loop_timed_wait_full(loop_, &deadline) < 0) break;
  }
  const bool connected = connected_;
  pw_thread_loop_unlock(loop_);
  if (!connected) {
    absl::Status status =
        failed ? Unavailable() : absl::UnavailableError("PipeWire: the server does not answer");
    Close();
    return status;
  }
  std::lock_guard<std::mutex> lock(mu_);
  open_ = true;
  return absl::OkStatus();
}

// The stream always runs once open (silence until started): Start and Stop only say whether
// the ring's frames count, so they take effect at once, without a round trip to the server.
absl::Status PipeWirePcm::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!open_) return absl::FailedPreconditionError("PipeWire stream not open");
  if (failed_) return Unavailable();
  ring_head_ = ring_fill_ = 0;
  started_ = true;
  primed_ = false;
  return absl::OkStatus();
}

absl::Status PipeWirePcm::Stop() {
  std::unique_lock<std::mutex> lock(mu_);
  if (started_ && direction_ == PcmDirection::kPlayback && !failed_) {
    // The daemon completed these frames as played: let the graph play them out (bounded, in
    // case it stalls) rather than cut the end of every sound.
    draining_ = true;
    const auto deadline =
        std::chrono::steady_clock::now() +
        std::chrono::milliseconds(1000 * kRingPeriods * params_.period_frames / params_.rate) +
        kDrainSlack;
    cv_.wait_until(lock, deadline, [this] { return ring_fill_ == 0 || failed_; });
    // The last frames taken are in the graph still: a few more cycles carry them through.
    const uint64_t emptied_at = cycles_;
    cv_.wait_until(lock, deadline, [&] { return cycles_ >= emptied_at + kDrainCycles || failed_; });
    draining_ = false;
  }
  started_ = false;
  primed_ = false;
  ring_head_ = ring_fill_ = 0;  // drops what was not read (or, past the deadline, played) yet
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status PipeWirePcm::Write(absl::Span<const uint8_t> frames) {
  std::unique_lock<std::mutex> lock(mu_);
  if (absl::Status s = CheckTransfer(open_, started_, params_, frames.size()); !s.ok()) return s;
  if (direction_ != PcmDirection::kPlayback) {
    return absl::FailedPreconditionError("Write on a capture stream");
  }
  // The graph must move something within kStallTimeout: a deadline reset on progress, not
  // per wakeup, so that a process callback that runs but moves nothing cannot keep us here.
  auto deadline = std::chrono::steady_clock::now() + kStallTimeout;
  size_t done = 0;
  while (done < frames.size()) {
    if (failed_) return Unavailable();
    if (!started_) return absl::FailedPreconditionError("stream stopped");
    const size_t n = RingPush(frames.data() + done, frames.size() - done);
    done += n;
    if (n > 0) {
      deadline = std::chrono::steady_clock::now() + kStallTimeout;
    } else if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return absl::UnavailableError("PipeWire: the stream does not play (not linked?)");
    }
  }
  return absl::OkStatus();
}

absl::Status PipeWirePcm::Read(absl::Span<uint8_t> frames) {
  std::unique_lock<std::mutex> lock(mu_);
  if (absl::Status s = CheckTransfer(open_, started_, params_, frames.size()); !s.ok()) return s;
  if (direction_ != PcmDirection::kCapture) {
    return absl::FailedPreconditionError("Read on a playback stream");
  }
  // As in Write.
  auto deadline = std::chrono::steady_clock::now() + kStallTimeout;
  size_t done = 0;
  while (done < frames.size()) {
    if (failed_) return Unavailable();
    if (!started_) return absl::FailedPreconditionError("stream stopped");
    const size_t n = RingPop(frames.data() + done, frames.size() - done);
    done += n;
    if (n > 0) {
      deadline = std::chrono::steady_clock::now() + kStallTimeout;
    } else if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      return absl::UnavailableError("PipeWire: the stream does not record (not linked?)");
    }
  }
  return absl::OkStatus();
}

uint64_t PipeWirePcm::DelayFrames() {
  uint64_t frames;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_ || failed_) return 0;
    frames = ring_fill_ / params_.frame_bytes();
  }
  // pw_stream_get_time_n reads a snapshot the data thread keeps: no lock, no round trip.
  // Its delay is in ticks of the graph's clock, converted to the stream's frames.
  pw_time time{};
  if (pw_stream_get_time_n(stream_, &time, sizeof(time)) == 0 && time.rate.denom != 0 &&
      time.delay > 0) {
    frames += static_cast<uint64_t>(time.delay) * time.rate.num * params_.rate / time.rate.denom;
  }
  return frames;
}

void PipeWirePcm::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = started_ = false;
    cv_.notify_all();
  }
  if (loop_ != nullptr) {
    // With the loop's thread stopped no callback runs any more: the rest needs no lock.
    pw_thread_loop_stop(loop_);
  }
  if (stream_ != nullptr) {
    if (underruns_ != 0 || overruns_ != 0) {
      LOG(INFO) << "PipeWire stream closed after " << underruns_ << " underruns, " << overruns_
                << " overruns";
    }
    // Unhooked first: destroying a stream reports it unconnected, which is no loss here.
    spa_hook_remove(&stream_listener_);
    pw_stream_destroy(stream_);
    stream_ = nullptr;
  }
  if (core_ != nullptr) {
    spa_hook_remove(&core_listener_);
    pw_core_disconnect(core_);
    core_ = nullptr;
  }
  if (context_ != nullptr) {
    pw_context_destroy(context_);
    context_ = nullptr;
  }
  if (loop_ != nullptr) {
    pw_thread_loop_destroy(loop_);
    loop_ = nullptr;
  }
  connected_ = false;
}

void PipeWirePcm::Fail(std::string why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failed_) {
    LOG(WARNING) << "PipeWire stream lost: " << why;
    failed_ = true;
    error_ = std::move(why);
  }
  cv_.notify_all();
}

void PipeWirePcm::OnStateChanged(void* data, pw_stream_state old, pw_stream_state state,
                                 const char* error) {
  auto* self = static_cast<PipeWirePcm*>(data);
  if (state == PW_STREAM_STATE_PAUSED || state == PW_STREAM_STATE_STREAMING) {
    self->connected_ = true;
  } else if (state == PW_STREAM_STATE_ERROR) {
    self->Fail(error != nullptr ? error : "stream error");
  } else if (state == PW_STREAM_STATE_UNCONNECTED && old != PW_STREAM_STATE_UNCONNECTED) {
    self->Fail("stream disconnected");
  }
  pw_thread_loop_signal(self->loop_, false);
}

void PipeWirePcm::OnCoreError(void* data, uint32_t id, int seq, int res, const char* message) {
  auto* self = static_cast<PipeWirePcm*>(data);
  // Errors about the core itself are fatal (-EPIPE: the server went away); others concern
  // one object and come back to the stream as its own state.
  if (id == PW_ID_CORE) {
    self->Fail(absl::StrCat("server: ", message != nullptr ? message : spa_strerror(res)));
    pw_thread_loop_signal(self->loop_, false);
  }
}

void PipeWirePcm::OnProcess(void* data) {
  auto* self = static_cast<PipeWirePcm*>(data);
  pw_buffer* buffer = pw_stream_dequeue_buffer(self->stream_);
  if (buffer == nullptr) return;
  spa_data& d = buffer->buffer->datas[0];
  if (d.data == nullptr) {
    pw_stream_queue_buffer(self->stream_, buffer);
    return;
  }
  const size_t frame_bytes = self->params_.frame_bytes();
  auto* bytes = static_cast<uint8_t*>(d.data);
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    ++self->cycles_;
    if (self->direction_ == PcmDirection::kPlayback) {
      size_t want = d.maxsize / frame_bytes;
      if (buffer->requested != 0) want = std::min<size_t>(want, buffer->requested);
      want *= frame_bytes;
      // Like ALSA's start threshold: play once kStartPeriods are in (after Start and after
      // an underrun), so a period written a little late by the bridge is not an underrun.
      const size_t threshold =
          std::min(kStartPeriods * self->params_.period_bytes(), self->ring_.size());
      if (self->started_ && (self->ring_fill_ >= threshold || self->draining_)) {
        self->primed_ = true;
      }
      const size_t got = self->primed_ ? self->RingPop(bytes, want) : 0;
      // The guest is late (or not started): the graph gets silence, never stale data.
      if (got < want) {
        if (self->primed_ && !self->draining_) {
          ++self->underruns_;
          self->primed_ = false;
        }
        FillSilence(self->params_.format, absl::MakeSpan(bytes + got, want - got));
      }
      d.chunk->offset = 0;
      d.chunk->stride = static_cast<int32_t>(frame_bytes);
      d.chunk->size = static_cast<uint32_t>(want);
    } else if (self->started_) {
      const uint32_t offset = std::min(d.chunk->offset, d.maxsize);
      size_t size = std::min<size_t>(d.chunk->size, d.maxsize - offset);
      size -= size % frame_bytes;  // whole frames only, so the ring stays frame-aligned
      const uint8_t* in = bytes + offset;
      // The reader is late: the oldest frames go, so what it reads next is recent.
      const size_t total = self->ring_fill_ + size;
      const size_t excess = total > self->ring_.size() ? total - self->ring_.size() : 0;
      if (excess > 0) {
        const size_t drop = std::min(excess, self->ring_fill_);
        self->ring_head_ = (self->ring_head_ + drop) % self->ring_.size();
        self->ring_fill_ -= drop;
        ++self->overruns_;
        LOG_EVERY_N(WARNING, 100) << "PipeWire capture overrun: the reader is late";
      }
      // More than the whole ring in one buffer: only its newest part fits.
      const size_t keep = std::min(size, self->ring_.size());
      self->RingPush(in + size - keep, keep);
    }
    self->cv_.notify_all();
  }
  pw_stream_queue_buffer(self->stream_, buffer);
}

size_t PipeWirePcm::RingPush(const uint8_t* data, size_t bytes) {
  const size_t n = std::min(bytes, ring_.size() - ring_fill_);
  const size_t tail = (ring_head_ + ring_fill_) % ring_.size();
  const size_t first = std::min(n, ring_.size() - tail);
  memcpy(ring_.data() + tail, data, first);
  memcpy(ring_.data(), data + first, n - first);
  ring_fill_ += n;
  return n;
}

size_t PipeWirePcm::RingPop(uint8_t* data, size_t bytes) {
  const size_t n = std::min(bytes, ring_fill_);
  const size_t first = std::min(n, ring_.size() - ring_head_);
  memcpy(data, ring_.data() + ring_head_, first);
  memcpy(data + first, ring_.data(), n - first);
  ring_head_ = (ring_head_ + n) % ring_.size();
  ring_fill_ -= n;
  return n;
}

}  // namespace

std::unique_ptr<HostPcm> NewPipeWirePcm(const std::string& target) {
  return std::make_unique<PipeWirePcm>(target);
}

}  // namespace vhost::snd
