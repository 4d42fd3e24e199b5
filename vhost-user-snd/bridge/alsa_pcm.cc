// HostPcm on alsa-lib: a PCM opened by name ("default", "hw:0,0", "file:'out.raw',raw", a
// name from an asoundrc), interleaved read/write, blocking I/O paced by the device's clock.
#include <alsa/asoundlib.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "vhost-user-snd/bridge/host_pcm.h"

namespace vhost::snd {
namespace {

// Periods in the host's buffer, and how many the guest fills before playback starts: two give
// the daemon's timer a period of slack without adding more latency than that.
constexpr snd_pcm_uframes_t kBufferPeriods = 4;
constexpr snd_pcm_uframes_t kStartPeriods = 2;

snd_pcm_format_t AlsaFormat(AudioFormat format) {
  switch (format) {
    case AudioFormat::kU8:
      return SND_PCM_FORMAT_U8;
    case AudioFormat::kS16:
      return SND_PCM_FORMAT_S16_LE;
    case AudioFormat::kS24_3:
      return SND_PCM_FORMAT_S24_3LE;
    case AudioFormat::kS32:
      return SND_PCM_FORMAT_S32_LE;
    case AudioFormat::kFloat:
      return SND_PCM_FORMAT_FLOAT_LE;
  }
  return SND_PCM_FORMAT_UNKNOWN;
}

absl::Status AlsaError(absl::string_view what, int err) {
  return absl::UnavailableError(absl::StrCat("ALSA ", what, ": ", snd_strerror(err)));
}

class AlsaPcm : public HostPcm {
 public:
  explicit AlsaPcm(std::string device) : device_(std::move(device)) {}
  ~AlsaPcm() override { Close(); }

  Capabilities Probe(PcmDirection direction) override {
    snd_pcm_t* pcm = nullptr;
    if (int err = snd_pcm_open(&pcm, device_.c_str(), Stream(direction), SND_PCM_NONBLOCK);
        err < 0) {
      LOG(WARNING) << "ALSA " << device_ << ": " << snd_strerror(err)
                   << "; offering every format until it can be opened";
      return AnyCapabilities();
    }
    snd_pcm_hw_params_t* hw;
    snd_pcm_hw_params_alloca(&hw);
    Capabilities caps;
    if (snd_pcm_hw_params_any(pcm, hw) >= 0) {
      for (AudioFormat f : kAllFormats) {
        if (snd_pcm_hw_params_test_format(pcm, hw, AlsaFormat(f)) == 0) caps.formats.push_back(f);
      }
      for (uint32_t r : kVirtioRates) {
        if (snd_pcm_hw_params_test_rate(pcm, hw, r, 0) == 0) caps.rates.push_back(r);
      }
      unsigned min = 0, max = 0;
      snd_pcm_hw_params_get_channels_min(hw, &min);
      snd_pcm_hw_params_get_channels_max(hw, &max);
      caps.channels_min = std::max(min, 1u);
      caps.channels_max = std::min(max, kMaxChannels);
    }
    snd_pcm_close(pcm);
    if (caps.formats.empty() || caps.rates.empty() || caps.channels_min > caps.channels_max) {
      LOG(WARNING) << "ALSA " << device_ << " offers nothing virtio-snd can name";
      return AnyCapabilities();
    }
    return caps;
  }

  absl::Status Open(PcmDirection direction, const StreamParams& params) override {
    Close();
    direction_ = direction;
    params_ = params;
    // Opened non-blocking so that a device another program holds fails now rather than
    // waiting; I/O then blocks, paced by the device.
    if (int err = snd_pcm_open(&pcm_, device_.c_str(), Stream(direction), SND_PCM_NONBLOCK);
        err < 0) {
      pcm_ = nullptr;
      return AlsaError(absl::StrCat("open ", device_), err);
    }
    absl::Status configured = Configure();
    if (!configured.ok()) Close();
    return configured;
  }

  absl::Status Start() override {
    if (pcm_ == nullptr) return absl::FailedPreconditionError("not open");
    // Playback starts by itself once kStartPeriods are written; capture starts now.
    if (direction_ == PcmDirection::kCapture) {
      if (int err = snd_pcm_start(pcm_); err < 0) return AlsaError("start", err);
    }
    return absl::OkStatus();
  }

  absl::Status Stop() override {
    if (pcm_ == nullptr) return absl::OkStatus();
    // Playback plays out its buffer (at most kBufferPeriods): the daemon already told the guest
    // these frames were played. Capture drops what was not read.
    if (direction_ == PcmDirection::kPlayback) {
      snd_pcm_drain(pcm_);
    } else {
      snd_pcm_drop(pcm_);
    }
    if (int err = snd_pcm_prepare(pcm_); err < 0) return AlsaError("prepare", err);
    return absl::OkStatus();
  }

  absl::Status Write(absl::Span<const uint8_t> frames) override {
    if (pcm_ == nullptr) return absl::FailedPreconditionError("not open");
    const uint8_t* p = frames.data();
    snd_pcm_uframes_t left = frames.size() / params_.frame_bytes();
    while (left > 0) {
      snd_pcm_sframes_t n = snd_pcm_writei(pcm_, p, left);
      if (n < 0) {
        if (absl::Status s = Recover(n, "write"); !s.ok()) return s;
        continue;
      }
      p += n * params_.frame_bytes();
      left -= n;
    }
    return absl::OkStatus();
  }

  absl::Status Read(absl::Span<uint8_t> frames) override {
    if (pcm_ == nullptr) return absl::FailedPreconditionError("not open");
    uint8_t* p = frames.data();
    snd_pcm_uframes_t left = frames.size() / params_.frame_bytes();
    while (left > 0) {
      snd_pcm_sframes_t n = snd_pcm_readi(pcm_, p, left);
      if (n < 0) {
        if (absl::Status s = Recover(n, "read"); !s.ok()) return s;
        if (int err = snd_pcm_start(pcm_); err < 0 && err != -EBADFD) {
          return AlsaError("restart", err);
        }
        continue;
      }
      p += n * params_.frame_bytes();
      left -= n;
    }
    return absl::OkStatus();
  }

  uint64_t DelayFrames() override {
    snd_pcm_sframes_t delay = 0;
    if (pcm_ == nullptr || snd_pcm_delay(pcm_, &delay) < 0 || delay < 0) return 0;
    return static_cast<uint64_t>(delay);
  }

  void Close() override {
    if (pcm_ != nullptr) snd_pcm_close(pcm_);
    pcm_ = nullptr;
  }

 private:
  static snd_pcm_stream_t Stream(PcmDirection d) {
    return d == PcmDirection::kPlayback ? SND_PCM_STREAM_PLAYBACK : SND_PCM_STREAM_CAPTURE;
  }

  // An xrun (EPIPE) or a suspend (ESTRPIPE) is recovered and counted; anything else (the
  // device unplugged, ENODEV) makes the stream unavailable.
  absl::Status Recover(snd_pcm_sframes_t n, absl::string_view what) {
    if (n == -EAGAIN || n == -EINTR) return absl::OkStatus();
    if (n == -EPIPE || n == -ESTRPIPE) {
      ++xruns_;
      LOG_EVERY_N(WARNING, 100) << "ALSA " << device_ << " " << what << ": "
                                << snd_strerror(static_cast<int>(n)) << " (xrun " << xruns_
                                << "), recovering";
      if (int err = snd_pcm_recover(pcm_, static_cast<int>(n), 1); err < 0) {
        return AlsaError(what, err);
      }
      return absl::OkStatus();
    }
    return AlsaError(what, static_cast<int>(n));
  }

  absl::Status Configure() {
    snd_pcm_hw_params_t* hw;
    snd_pcm_hw_params_alloca(&hw);
    unsigned rate = params_.rate;
    snd_pcm_uframes_t period = params_.period_frames;
    snd_pcm_uframes_t buffer = period * kBufferPeriods;
    int err;
    if ((err = snd_pcm_hw_params_any(pcm_, hw)) < 0 ||
        (err = snd_pcm_hw_params_set_access(pcm_, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0 ||
        (err = snd_pcm_hw_params_set_format(pcm_, hw, AlsaFormat(params_.format))) < 0 ||
        (err = snd_pcm_hw_params_set_channels(pcm_, hw, params_.channels)) < 0 ||
        (err = snd_pcm_hw_params_set_rate(pcm_, hw, rate, 0)) < 0 ||
        (err = snd_pcm_hw_params_set_period_size_near(pcm_, hw, &period, nullptr)) < 0 ||
        (err = snd_pcm_hw_params_set_buffer_size_near(pcm_, hw, &buffer)) < 0 ||
        (err = snd_pcm_hw_params(pcm_, hw)) < 0) {
      return AlsaError(absl::StrCat(device_, " does not take ", params_.ToString()), err);
    }
    snd_pcm_sw_params_t* sw;
    snd_pcm_sw_params_alloca(&sw);
    if ((err = snd_pcm_sw_params_current(pcm_, sw)) < 0 ||
        (err = snd_pcm_sw_params_set_start_threshold(
             pcm_, sw, std::min(buffer, kStartPeriods * period))) < 0 ||
        (err = snd_pcm_sw_params_set_avail_min(pcm_, sw, period)) < 0 ||
        (err = snd_pcm_sw_params(pcm_, sw)) < 0) {
      return AlsaError("software parameters", err);
    }
    if ((err = snd_pcm_nonblock(pcm_, 0)) < 0) return AlsaError("blocking mode", err);
    VLOG(1) << "ALSA " << device_ << ": " << params_.ToString() << ", period " << period
            << ", buffer " << buffer;
    return absl::OkStatus();
  }

  const std::string device_;
  PcmDirection direction_ = PcmDirection::kPlayback;
  StreamParams params_;
  snd_pcm_t* pcm_ = nullptr;
  uint64_t xruns_ = 0;
};

}  // namespace

std::unique_ptr<HostPcm> NewAlsaPcm(const std::string& device) {
  return std::make_unique<AlsaPcm>(device.empty() ? "default" : device);
}

}  // namespace vhost::snd
