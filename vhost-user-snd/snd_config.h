// What a virtio-snd device is made of and tells the driver about it: its PCM streams as --streams
// describes them, a jack and channel maps per stream, the configuration space they imply, and the
// replies to the control queue's *_INFO requests and JACK_REMAP (virtio 1.2 §5.14.6).
//
// --streams: STREAM[;STREAM...], STREAM = DIRECTION[:CHANNELS[:RATES[:FORMATS]]] where
//   DIRECTION is playback or capture;
//   CHANNELS is Nch or N-Mch (1 to 18: every count has a channel map), default 2ch;
//   RATES is Hz values joined by ',' from the spec's list (5512 ... 384000), default 48000;
//   FORMATS is names joined by ',' (s16, s32, float, u8, s24_3, ...: virtio's
//     VIRTIO_SND_PCM_FMT_* in lower case, all but ima_adpcm), default s16.
// e.g. "playback:2ch:48000,44100:s16,s32;capture:1ch:48000:s16". Default: kDefaultStreams.
//
// The i-th playback and the i-th capture stream share HDA function node i, which Linux's
// virtio_snd turns into PCM device i: the default card has hw:0,0 for both aplay and arecord.
#ifndef VHOST_USER_SND_SND_CONFIG_H_
#define VHOST_USER_SND_SND_CONFIG_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "vhost-user-snd/pcm_stream.h"
#include "vhost-user-snd/snd_spec.h"

namespace vhost::snd {

inline constexpr absl::string_view kDefaultStreams = "playback:2ch:48000:s16;capture:2ch:48000:s16";
inline constexpr size_t kMaxStreams = 64;

// Parses a --streams value; errors name the flag and the part at fault.
absl::StatusOr<std::vector<PcmCaps>> ParseStreams(absl::string_view text);

// One jack per stream: a line out (green) for playback, a line in (blue) for capture, on the
// rear of the box. JACK_REMAP changes association and sequence; plug events change connected.
struct Jack {
  uint8_t direction = VIRTIO_SND_D_OUTPUT;
  uint32_t hda_fn_nid = 0;
  uint32_t features = 1u << VIRTIO_SND_JACK_F_REMAP;  // 1 << VIRTIO_SND_JACK_F_*
  bool connected = true;
  uint8_t association = 1;  // 4 bits
  uint8_t sequence = 0;     // 4 bits
};

// HDA pin configuration default (HDA spec 7.3.3.31) and pin capabilities (7.3.4.9) of a jack.
uint32_t JackDefconf(const Jack& jack);
uint32_t JackPinCaps(const Jack& jack);

// The standard positions of `channels` (1 to VIRTIO_SND_CHMAP_MAX_SIZE) channels: MONO for one,
// else the first `channels` of WAVE_FORMAT_EXTENSIBLE's order (FL FR FC LFE RL RR FLC FRC RC SL
// SR TC TFL TFC TFR TRL TRC TRR), the order a WAV file's channels are in.
void StandardPositions(uint8_t channels, uint8_t positions[VIRTIO_SND_CHMAP_MAX_SIZE]);

// With controls (VIRTIO_SND_F_CTLS, virtio 1.3 §5.14.6.10), two control elements per stream,
// named as ALSA mixers name them and indexed by the stream's PCM device (its HDA function node):
// control 2*id is "PCM Playback Volume" (or "PCM Capture Volume"), an INTEGER 0..100 step 1 (a
// linear gain in percent, default 100: unchanged samples); control 2*id+1 is "PCM Playback
// Switch" (or Capture), a BOOLEAN, 1 (default) lets sound through, 0 mutes (ALSA's "Switch"
// convention). Both are one-member values, read and write; no enumerated items. The volume also
// has TLV read access: its dB scale (VolumeDbTlv) is SNDRV_CTL_TLVT_DB_LINEAR from mute to 0 dB,
// which is what a linear gain is (ALSA then shows 50 as -6.02 dB); a dB_SCALE or MINMAX, linear
// in dB, would misstate it.
inline constexpr uint32_t kVolumeMax = 100;

// The volume's TLV as CTL_TLV_READ returns it: type, length in bytes, min and max in 0.01 dB.
struct DbLinearTlv {
  uint32_t type;
  uint32_t length;
  int32_t min;
  int32_t max;
};
DbLinearTlv VolumeDbTlv();

class SndConfig {
 public:
  explicit SndConfig(std::vector<PcmCaps> streams, bool controls = false);

  const std::vector<PcmCaps>& streams() const { return streams_; }
  std::vector<Jack>& jacks() { return jacks_; }
  const std::vector<Jack>& jacks() const { return jacks_; }
  uint32_t chmap_count() const { return static_cast<uint32_t>(chmaps_.size()); }
  // The HDA function node of stream `id`.
  uint32_t hda_fn_nid(uint32_t id) const { return nids_[id]; }

  // The configuration space: jacks, streams, chmaps, and controls (0 without them).
  SndConfigCtls config() const;
  uint32_t control_count() const { return static_cast<uint32_t>(controls_.size()); }

  // One item of each kind (ids in range).
  virtio_snd_pcm_info PcmInfo(uint32_t id) const;
  virtio_snd_jack_info JackInfo(uint32_t id) const;
  virtio_snd_chmap_info ChmapInfo(uint32_t id) const;
  SndCtlInfo CtlInfo(uint32_t id) const;

  // The reply (status header, then the items) to a VIRTIO_SND_R_{PCM,JACK,CHMAP,CTL}_INFO request
  // (its device-readable bytes) whose device-writable part holds `reply_capacity` bytes. OK with
  // `count` items of `size` bytes each (the structure, zero-filled up to a larger `size`), or a
  // lone BAD_MSG header when the request is not a virtio_snd_query_info of an info code, asks
  // for items past the last (start_id + count > the total), gives a `size` smaller than the
  // structure, or the reply would not fit in reply_capacity (the driver must provide
  // sizeof(virtio_snd_hdr) + count * size bytes). Bad requests get a rate-limited log line.
  std::vector<uint8_t> InfoReply(absl::Span<const uint8_t> request, size_t reply_capacity) const;

  // VIRTIO_SND_R_JACK_REMAP (its device-readable bytes, §5.14.6.4.2): BAD_MSG when not exactly a
  // virtio_snd_jack_remap, for an unknown jack, or an association or sequence over the 4 bits
  // the pin configuration holds them in; NOT_SUPP for a jack without VIRTIO_SND_JACK_F_REMAP;
  // else OK, and JACK_INFO reports the new values.
  SndStatus RemapJack(absl::Span<const uint8_t> request);

  // The reply to VIRTIO_SND_R_CTL_{ENUM_ITEMS,READ,WRITE,TLV_*} (its device-readable bytes; the
  // device-writable part holds `reply_capacity` bytes). BAD_MSG when the request is not exactly
  // a virtio_snd_ctl_hdr (plus a virtio_snd_ctl_value for WRITE), for an unknown control, a
  // READ or TLV_READ reply that would not fit, or a written value out of the control's range
  // (volume not 0..100, switch not 0 or 1); NOT_SUPP for ENUM_ITEMS (no control is enumerated),
  // TLV_READ of a switch (no TLV), TLV_WRITE and TLV_COMMAND. READ answers OK and the value;
  // TLV_READ of a volume OK and VolumeDbTlv(); WRITE OK. Bad requests get a rate-limited log line.
  std::vector<uint8_t> ControlReply(absl::Span<const uint8_t> request, size_t reply_capacity);

  // Control `id`'s value (id < control_count()).
  uint32_t ControlValue(uint32_t id) const { return controls_[id].value; }
  // Sets control `id` (< control_count()) from the host's side: InvalidArgumentError for a
  // value out of its range (as a CTL_WRITE's would be).
  absl::Status SetControlValue(uint32_t id, uint32_t value);

  // The gain stream `id`'s samples get: 0 (muted) to kVolumeMax (unchanged).
  uint32_t Gain(uint32_t id) const;
  // The controls back at their defaults (a device reset).
  void ResetControls();

 private:
  struct Chmap {
    uint32_t stream;
    uint8_t channels;
  };
  struct Control {
    uint32_t stream;
    bool is_switch;  // else the volume
    uint32_t value;
  };

  std::vector<PcmCaps> streams_;
  std::vector<uint32_t> nids_;
  std::vector<Jack> jacks_;
  std::vector<Chmap> chmaps_;
  std::vector<Control> controls_;
};

// A control reply that is only a status header.
std::vector<uint8_t> StatusReply(SndStatus status);

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_SND_CONFIG_H_
