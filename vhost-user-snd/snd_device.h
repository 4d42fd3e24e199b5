// virtio-snd (virtio 1.2 §5.14, device id 25) on the engine: the control queue answers the info
// requests (snd_config) and drives the PCM streams' lifecycle (pcm_stream) and their host sides
// (audio_backend); the tx and rx queues hold the guest's buffers per stream and move them one
// period at a time at each stream's sample clock (sample_clock), woken by a timerfd per data
// queue. Every stream offers VIRTIO_SND_PCM_F_EVT_XRUNS: a stream whose SET_PARAMS asked for it
// gets an XRUN event when the guest let a whole buffer's worth of periods go by without a
// buffer; the event queue's buffers are held for that (period-elapsed events, optional, are not
// sent). With controls (VIRTIO_SND_F_CTLS) each stream's volume and switch (SndConfig) scale
// or silence every period on its way to or from the host side.
//
// The host's side (HostCommand, served on --control-socket) plugs and unplugs the jacks: JACK_INFO
// reports the state and the guest gets VIRTIO_SND_EVT_JACK_CONNECTED or _DISCONNECTED; it also
// sets control values, and the guest gets VIRTIO_SND_EVT_CTL_NOTIFY. Unlike an XRUN (stale once
// late), such an event waits for an event buffer when the guest gave none.
//
// Threads: each queue has its worker; the streams and the buffers they hold are shared by the
// control, tx and rx workers under one mutex. A buffer held for a stream is completed at the
// clock, on RELEASE, when its queue stops, or on reset: never left behind.
#ifndef VHOST_USER_SND_SND_DEVICE_H_
#define VHOST_USER_SND_SND_DEVICE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/device/device.h"
#include "vhost-user-snd/audio_backend.h"
#include "vhost-user-snd/pcm_stream.h"
#include "vhost-user-snd/sample_clock.h"
#include "vhost-user-snd/snd_config.h"

namespace vhost::snd {

inline constexpr uint32_t kVirtioIdSound = 25;
inline constexpr int kControlQueue = 0;
inline constexpr int kEventQueue = 1;
inline constexpr int kTxQueue = 2;
inline constexpr int kRxQueue = 3;

class SndDevice : public VirtioDevice {
 public:
  // One backend per stream (same order). Each stream offers what --streams asked for and its
  // backend can open (PCM_INFO says so): InvalidArgumentError when that is nothing. `clock`
  // outlives the device; the timerfds are armed on CLOCK_MONOTONIC at its times, so outside
  // tests it is a MonotonicClock.
  // With `controls`, VIRTIO_SND_F_CTLS is offered: a volume and a switch per stream (see
  // SndConfig) scale or mute its samples on their way to (playback) or from (capture) the host.
  static absl::StatusOr<std::unique_ptr<SndDevice>> Create(
      std::vector<PcmCaps> streams, std::vector<std::unique_ptr<AudioBackend>> backends,
      const Clock* clock, bool controls = false);
  ~SndDevice() override;

  DeviceInfo Info() const override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  absl::Status QueueStarted(QueueContext& context) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  void QueueStopped(QueueContext& context) override;
  void Reset() override;

  // One line of the control socket (the manual's "Control socket"): "list", "jack ID plug",
  // "jack ID unplug", "control ID VALUE". Returns the answer's text, or InvalidArgumentError for
  // a bad line (which changes nothing).
  absl::StatusOr<std::string> HostCommand(absl::string_view line);

 private:
  // A data buffer held for a stream.
  struct Held {
    QueueContext* context;
    ChainToken token;
    uint32_t bytes;     // PCM bytes it carries (tx) or has room for (rx)
    uint32_t done = 0;  // of those, played or filled so far
  };
  struct Stream {
    Stream(uint32_t id, const PcmCaps& caps, std::unique_ptr<AudioBackend> backend)
        : pcm(id, caps), backend(std::move(backend)) {}
    PcmStream pcm;
    std::unique_ptr<AudioBackend> backend;
    std::unique_ptr<SampleClock> clock;  // from PREPARE
    std::deque<Held> held;
    bool lost = false;  // the host side went away: silent until the next Open
    uint64_t held_bytes() const;
  };

  SndDevice(SndConfig config, std::vector<std::unique_ptr<AudioBackend>> backends,
            const Clock* clock, UniqueFd tx_timer, UniqueFd rx_timer);

  void ProcessControl(QueueContext& context);
  void ProcessData(QueueContext& context, uint8_t direction);
  SndStatus ControlRequest(absl::Span<const uint8_t> request, size_t writable,
                           std::vector<uint8_t>* reply);
  absl::Status Act(const PcmRequest& request);
  // Takes one data chain; it is held or answered at once.
  void AcceptBuffer(QueueContext& context, ChainToken token, uint8_t direction);
  // Moves the periods due on `stream`.
  void RunClock(Stream& stream);
  void Finish(Stream& stream, const Held& held, SndStatus status);
  void FinishAll(Stream& stream, SndStatus status);
  void Answer(QueueContext& context, ChainToken token, uint8_t direction, SndStatus status,
              uint32_t latency);
  void ArmTimer(uint8_t direction);
  // Sends `event` in a held event buffer. When the guest gave none it is dropped (logged), or,
  // with `keep`, sent when one comes (at most kMaxPendingEvents wait; a reset drops them).
  void SendEvent(const virtio_snd_event& event, bool keep = false);
  // Writes `event` into the next usable event buffer; false when there is none.
  bool DeliverEvent(const virtio_snd_event& event);
  absl::StatusOr<std::string> JackCommand(absl::string_view id, absl::string_view action);
  absl::StatusOr<std::string> ControlCommand(absl::string_view id, absl::string_view value);
  int timer(uint8_t direction) const {
    return direction == VIRTIO_SND_D_OUTPUT ? tx_timer_.get() : rx_timer_.get();
  }
  QueueContext*& data_context(uint8_t direction) {
    return direction == VIRTIO_SND_D_OUTPUT ? tx_context_ : rx_context_;
  }

  SndConfig config_;                       // guarded by mu_ (jacks and control values change)
  const std::vector<Jack> initial_jacks_;  // as JACK_REMAP finds them after a reset
  const Clock* const clock_;
  const UniqueFd tx_timer_;
  const UniqueFd rx_timer_;

  std::mutex mu_;
  std::vector<Stream> streams_;
  QueueContext* tx_context_ = nullptr;
  QueueContext* rx_context_ = nullptr;
  QueueContext* event_context_ = nullptr;
  std::deque<ChainToken> event_buffers_;         // of event_context_
  std::deque<virtio_snd_event> pending_events_;  // kept for the next event buffers
  std::vector<uint8_t> period_;                  // scratch for one period
};

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_SND_DEVICE_H_
