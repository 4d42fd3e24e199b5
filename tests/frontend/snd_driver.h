// A guest-side virtio-snd driver on our front end (virtio 1.2 §5.14), for tests and benchmarks of
// vhost-user-snd: control requests (item queries, PCM stream commands, JACK_REMAP) and their
// replies, PCM transfer buffers for the tx and rx queues, event buffers, and SndDriver, which
// connects, posts the event buffers and runs control requests one at a time. Also tone helpers:
// a sine of a given frequency in a PCM format, and the dominant frequency of captured samples.
//
// Queues: 0 control, 1 event, 2 tx (playback), 3 rx (capture). Wire structures come from
// <linux/virtio_snd.h> (little-endian fields; this driver runs on little-endian hosts only).
#ifndef TESTS_FRONTEND_SND_DRIVER_H_
#define TESTS_FRONTEND_SND_DRIVER_H_

#include <linux/virtio_snd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "common/testing/driver_ring.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"

namespace vhost::frontend {

// VIRTIO_SND_F_CTLS (virtio 1.3 §5.14.3), which <linux/virtio_snd.h> of Linux 6.1 lacks.
inline constexpr uint32_t kSndFeatureCtls = 0;

// Bytes per sample of a VIRTIO_SND_PCM_FMT_* (its physical width), 0 for IMA_ADPCM and unknown
// formats.
uint32_t SndSampleBytes(uint8_t format);
// Frames per second of a VIRTIO_SND_PCM_RATE_*, 0 if unknown.
uint32_t SndRateHz(uint8_t rate);

// ---- Control requests (virtio 1.2 §5.14.6): the request readable, then one writable buffer
// holding the response header (virtio_snd_hdr) and, for queries, the items that follow it.

// Request structures, filled as the spec says.
virtio_snd_query_info SndQueryInfo(uint32_t code, uint32_t start_id, uint32_t count, uint32_t size);
// PREPARE, START, STOP, RELEASE (and any other code, for hostile tests).
virtio_snd_pcm_hdr SndPcmHdr(uint32_t code, uint32_t stream_id);
virtio_snd_pcm_set_params SndSetParams(uint32_t stream_id, uint32_t buffer_bytes,
                                       uint32_t period_bytes, uint8_t channels, uint8_t format,
                                       uint8_t rate, uint32_t features = 0);
virtio_snd_jack_remap SndJackRemap(uint32_t jack_id, uint32_t association, uint32_t sequence);

// One control request in guest memory. The response is poisoned (0xff) until the device writes
// it, so a request never answered is visible.
struct SndControl {
  uint64_t req_gpa = 0;
  uint8_t* req = nullptr;
  uint32_t req_len = 0;  // what AddSndControl places (hostile tests may change it)
  uint64_t resp_gpa = 0;
  uint8_t* resp = nullptr;
  uint32_t resp_len = 0;  // header + payload
  uint32_t capacity = 0;  // bytes allocated for each of req and resp

  // The response code (VIRTIO_SND_S_*), 0xffffffff if the device wrote nothing.
  uint32_t status() const;
  // The bytes after the response header.
  const uint8_t* payload() const { return resp + sizeof(virtio_snd_hdr); }
};

// Allocates room for a request and a response of up to `capacity` bytes each.
absl::StatusOr<SndControl> AllocateSndControl(GuestRam* ram, uint32_t capacity = 4096);

// Writes `req` (len bytes) and poisons a response of header + `payload_len` bytes.
absl::Status WriteSndControl(SndControl* control, const void* req, uint32_t len,
                             uint32_t payload_len = 0);
template <typename Request>
absl::Status WriteSndControl(SndControl* control, const Request& req, uint32_t payload_len = 0) {
  return WriteSndControl(control, &req, sizeof(req), payload_len);
}

absl::StatusOr<uint16_t> AddSndControl(testing::DriverRing* ring, const SndControl& control);

// ---- PCM transfers (virtio 1.2 §5.14.6.8): playback is header + PCM data readable, status
// writable; capture is header readable, PCM data + status writable.
struct SndPcmBuffer {
  bool capture = false;
  uint64_t xfer_gpa = 0;
  virtio_snd_pcm_xfer* xfer = nullptr;
  uint64_t data_gpa = 0;
  uint8_t* data = nullptr;
  uint32_t data_len = 0;  // may be lowered to reuse a larger buffer, never raised
  uint64_t status_gpa = 0;
  virtio_snd_pcm_status* status = nullptr;
  // The lengths AddSndPcmBuffer places; hostile tests shrink them (0: no such descriptor).
  uint32_t xfer_len = sizeof(virtio_snd_pcm_xfer);
  uint32_t status_len = sizeof(virtio_snd_pcm_status);
};

// Allocates the parts (data 64-byte aligned), writes the header, poisons the status (0xff) and,
// for capture, the data (0xa5) so what the device wrote is visible.
absl::StatusOr<SndPcmBuffer> AllocateSndPcmBuffer(GuestRam* ram, uint32_t stream_id,
                                                  uint32_t data_len, bool capture);
// Poisons the status (and capture data) again before a buffer is reused.
void ResetSndPcmBuffer(SndPcmBuffer* buffer);
absl::StatusOr<uint16_t> AddSndPcmBuffer(testing::DriverRing* ring, const SndPcmBuffer& buffer);
// The PCM bytes a capture completion carries: the used length minus the status (the spec has
// the device count both), capped at data_len.
uint32_t SndCapturedBytes(const SndPcmBuffer& buffer, uint32_t used_len);

// ---- Events (virtio 1.2 §5.14.6.4): one writable virtio_snd_event.
absl::StatusOr<uint16_t> AddSndEventBuffer(testing::DriverRing* ring, uint64_t gpa);

// ---- The driver.

// A control request's outcome.
struct SndReply {
  uint32_t used_len = 0;  // what the used element says the device wrote
  uint32_t status = 0xffffffff;
  std::vector<uint8_t> payload;  // the payload bytes asked for (whatever the device wrote there)
};

class SndDriver {
 public:
  static constexpr uint64_t kWantedFeatures =
      Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(kFeatureIndirectDesc);

  struct Options {
    uint32_t queue_size = 64;
    uint64_t features = kWantedFeatures;  // add Bit(kSndFeatureCtls) for controls
    uint64_t ram_size = 16 << 20;
    uint32_t event_buffers = 8;
    bool busy_poll = false;  // waits spin on the used ring instead of sleeping
    absl::Duration timeout = absl::Seconds(10);
  };

  // Connects, negotiates, starts the four queues and posts the event buffers.
  static absl::StatusOr<std::unique_ptr<SndDriver>> Start(const std::string& socket,
                                                          const Options& options);

  absl::StatusOr<virtio_snd_config> Config();

  // Runs one control request and waits for its completion: `req` sent, room for the response
  // header and `payload_len` bytes.
  absl::StatusOr<SndReply> Control(const void* req, uint32_t len, uint32_t payload_len = 0);
  template <typename Request>
  absl::StatusOr<SndReply> Control(const Request& req, uint32_t payload_len = 0) {
    return Control(&req, sizeof(req), payload_len);
  }
  // Runs a control request the caller laid out (any lengths) and waits for it.
  absl::StatusOr<SndReply> Control(const SndControl& control);

  // Item queries: `count` items from `start_id`. An error unless the device answers S_OK.
  absl::StatusOr<std::vector<virtio_snd_pcm_info>> PcmInfo(uint32_t start_id, uint32_t count);
  absl::StatusOr<std::vector<virtio_snd_jack_info>> JackInfo(uint32_t start_id, uint32_t count);
  absl::StatusOr<std::vector<virtio_snd_chmap_info>> ChmapInfo(uint32_t start_id, uint32_t count);
  // Stream commands; return the device's status code (VIRTIO_SND_S_*).
  absl::StatusOr<uint32_t> SetParams(const virtio_snd_pcm_set_params& params);
  absl::StatusOr<uint32_t> PcmCommand(uint32_t code, uint32_t stream_id);
  absl::StatusOr<uint32_t> JackRemap(uint32_t jack_id, uint32_t association, uint32_t sequence);
  // SET_PARAMS, PREPARE, START; an error unless each answers S_OK.
  absl::Status SetUpAndStart(const virtio_snd_pcm_set_params& params);

  // PCM buffers in this driver's RAM (never freed: reuse them for long runs).
  absl::StatusOr<SndPcmBuffer> AllocatePcmBuffer(uint32_t stream_id, uint32_t data_len,
                                                 bool capture) {
    return AllocateSndPcmBuffer(ram(), stream_id, data_len, capture);
  }
  // Queues a buffer on tx (playback) or rx (capture) and kicks if the device wants it. Several
  // may be in flight.
  absl::StatusOr<uint16_t> QueuePcm(const SndPcmBuffer& buffer);
  // The next completion on tx or rx (a used element: id and length).
  absl::StatusOr<testing::UsedElement> WaitForPcm(bool capture);
  // Queues one buffer and waits for it (an error if another completes first); returns its status.
  absl::StatusOr<virtio_snd_pcm_status> Transfer(const SndPcmBuffer& buffer);

  // The next event the device posted (its buffer goes back to the queue), nullopt if none yet.
  absl::StatusOr<absl::optional<virtio_snd_event>> PollEvent();
  absl::StatusOr<virtio_snd_event> WaitForEvent(absl::Duration timeout);

  // Waits for chain `id` on `queue`: an error if another completes first.
  absl::StatusOr<uint32_t> WaitFor(FrontendQueue* queue, uint16_t id);

  DeviceConnection* device() { return device_.get(); }
  Frontend* frontend() { return device_->frontend(); }
  GuestRam* ram() { return device_->ram(); }
  FrontendQueue* control_queue() { return device_->queue(VIRTIO_SND_VQ_CONTROL); }
  FrontendQueue* event_queue() { return device_->queue(VIRTIO_SND_VQ_EVENT); }
  FrontendQueue* tx_queue() { return device_->queue(VIRTIO_SND_VQ_TX); }
  FrontendQueue* rx_queue() { return device_->queue(VIRTIO_SND_VQ_RX); }
  const Options& options() const { return options_; }

 private:
  explicit SndDriver(const Options& options) : options_(options) {}
  template <typename Info>
  absl::StatusOr<std::vector<Info>> Query(uint32_t code, uint32_t start_id, uint32_t count);
  absl::Status PostEvent(uint64_t gpa, virtio_snd_event* event);
  absl::StatusOr<virtio_snd_event> TakeEvent(const testing::UsedElement& used);

  Options options_;
  std::unique_ptr<DeviceConnection> device_;
  SndControl scratch_;                                                 // for Control()
  std::map<uint16_t, std::pair<uint64_t, virtio_snd_event*>> events_;  // posted, by chain id
};

// ---- Tones.

// `frames` interleaved frames of amplitude * sin(2π f t + phase) on every channel, in `format`:
// S16, S32 or FLOAT (full scale 1.0); InvalidArgument for other formats.
absl::StatusOr<std::vector<uint8_t>> SndSineTone(uint8_t format, uint32_t channels,
                                                 uint32_t rate_hz, double frequency,
                                                 double amplitude, size_t frames, double phase = 0);
// Channel `channel` of interleaved `bytes` in `format` (S16, S32, FLOAT) as values in [-1, 1].
// A trailing partial frame is ignored.
absl::StatusOr<std::vector<double>> SndDecodeChannel(uint8_t format, uint32_t channels,
                                                     uint32_t channel,
                                                     absl::Span<const uint8_t> bytes);
// The dominant frequency of `samples`, from rising zero crossings (with hysteresis at 5% of the
// peak, positions interpolated between samples): crossings - 1 periods over the time between the
// first and the last. 0 if fewer than two crossings (silence).
double SndMeasureFrequency(absl::Span<const double> samples, uint32_t rate_hz);
// The power of `samples` at `frequency` (Goertzel), normalised so a full-scale sine at that
// frequency gives about 0.25; to tell whether a tone is present among others.
double SndGoertzelPower(absl::Span<const double> samples, uint32_t rate_hz, double frequency);

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_SND_DRIVER_H_
