#include "vhost-user-snd/snd_config.h"

#include <sound/tlv.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"

namespace vhost::snd {
namespace {

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--streams: ", what));
}

// "2ch" or "1-2ch".
absl::Status ParseChannels(absl::string_view text, PcmCaps* caps) {
  absl::string_view range = text;
  if (!absl::ConsumeSuffix(&range, "ch")) return Bad(absl::StrCat("'", text, "' is not Nch"));
  std::pair<absl::string_view, absl::string_view> ends =
      absl::StrSplit(range, absl::MaxSplits('-', 1));
  uint32_t min = 0, max = 0;
  if (!absl::SimpleAtoi(ends.first, &min)) return Bad(absl::StrCat("'", text, "' is not Nch"));
  max = min;
  if (!ends.second.empty() && !absl::SimpleAtoi(ends.second, &max)) {
    return Bad(absl::StrCat("'", text, "' is not N-Mch"));
  }
  if (min < 1 || max > VIRTIO_SND_CHMAP_MAX_SIZE || min > max) {
    return Bad(absl::StrCat("channels '", text, "' not within 1-", VIRTIO_SND_CHMAP_MAX_SIZE));
  }
  caps->channels_min = static_cast<uint8_t>(min);
  caps->channels_max = static_cast<uint8_t>(max);
  return absl::OkStatus();
}

absl::Status ParseRates(absl::string_view text, PcmCaps* caps) {
  caps->rates = 0;
  for (absl::string_view hz_text : absl::StrSplit(text, ',')) {
    uint32_t hz = 0;
    const int rate = absl::SimpleAtoi(hz_text, &hz) ? RateFromHz(hz) : -1;
    if (rate < 0) return Bad(absl::StrCat("'", hz_text, "' is not a virtio-snd rate"));
    caps->rates |= uint64_t{1} << rate;
  }
  return absl::OkStatus();
}

absl::Status ParseFormats(absl::string_view text, PcmCaps* caps) {
  caps->formats = 0;
  for (absl::string_view name : absl::StrSplit(text, ',')) {
    const int format = FormatFromName(name);
    // IMA ADPCM's 4-bit samples make no whole-byte frames; nothing plays them anyway.
    if (format < 0 || format == VIRTIO_SND_PCM_FMT_IMA_ADPCM) {
      return Bad(absl::StrCat("'", name, "' is not a supported format"));
    }
    caps->formats |= uint64_t{1} << format;
  }
  return absl::OkStatus();
}

absl::StatusOr<PcmCaps> ParseStream(absl::string_view text) {
  std::vector<absl::string_view> fields = absl::StrSplit(text, ':');
  if (fields.size() > 4) return Bad(absl::StrCat("'", text, "' has more than 4 fields"));
  PcmCaps caps;  // 2ch, 48000, s16
  if (fields[0] == "playback") {
    caps.direction = VIRTIO_SND_D_OUTPUT;
  } else if (fields[0] == "capture") {
    caps.direction = VIRTIO_SND_D_INPUT;
  } else {
    return Bad(absl::StrCat("'", fields[0], "' is not playback or capture"));
  }
  if (fields.size() > 1) {
    if (absl::Status s = ParseChannels(fields[1], &caps); !s.ok()) return s;
  }
  if (fields.size() > 2) {
    if (absl::Status s = ParseRates(fields[2], &caps); !s.ok()) return s;
  }
  if (fields.size() > 3) {
    if (absl::Status s = ParseFormats(fields[3], &caps); !s.ok()) return s;
  }
  return caps;
}

// The item structure of an info request code and how many items there are.
struct InfoKind {
  size_t item_size;
  uint32_t total;
};

template <typename T>
void Append(std::vector<uint8_t>* out, const T& item, size_t size) {
  const size_t at = out->size();
  out->resize(at + size, 0);
  std::memcpy(out->data() + at, &item, sizeof(T));
}

}  // namespace

absl::StatusOr<std::vector<PcmCaps>> ParseStreams(absl::string_view text) {
  std::vector<PcmCaps> streams;
  for (absl::string_view part : absl::StrSplit(text, ';')) {
    if (part.empty()) return Bad("an empty stream");
    absl::StatusOr<PcmCaps> caps = ParseStream(part);
    if (!caps.ok()) return caps.status();
    streams.push_back(*caps);
  }
  if (streams.size() > kMaxStreams) return Bad(absl::StrCat("more than ", kMaxStreams, " streams"));
  return streams;
}

uint32_t JackDefconf(const Jack& jack) {
  const bool out = jack.direction == VIRTIO_SND_D_OUTPUT;
  constexpr uint32_t kPortJack = 0;         // connectivity: a jack
  constexpr uint32_t kLocationRear = 0x01;  // external, on the primary chassis, rear
  const uint32_t device = out ? 0x0 : 0x8;  // line out / line in
  constexpr uint32_t kConnection18 = 0x1;   // 1/8" stereo/mono
  const uint32_t color = out ? 0x4 : 0x3;   // green / blue
  return kPortJack << 30 | kLocationRear << 24 | device << 20 | kConnection18 << 16 | color << 12 |
         uint32_t{jack.association & 0xfu} << 4 | (jack.sequence & 0xfu);
}

uint32_t JackPinCaps(const Jack& jack) {
  constexpr uint32_t kPresenceDetect = 1u << 2;
  constexpr uint32_t kOutput = 1u << 4;
  constexpr uint32_t kInput = 1u << 5;
  return kPresenceDetect | (jack.direction == VIRTIO_SND_D_OUTPUT ? kOutput : kInput);
}

void StandardPositions(uint8_t channels, uint8_t positions[VIRTIO_SND_CHMAP_MAX_SIZE]) {
  static constexpr uint8_t kWaveOrder[VIRTIO_SND_CHMAP_MAX_SIZE] = {
      VIRTIO_SND_CHMAP_FL,  VIRTIO_SND_CHMAP_FR,  VIRTIO_SND_CHMAP_FC,  VIRTIO_SND_CHMAP_LFE,
      VIRTIO_SND_CHMAP_RL,  VIRTIO_SND_CHMAP_RR,  VIRTIO_SND_CHMAP_FLC, VIRTIO_SND_CHMAP_FRC,
      VIRTIO_SND_CHMAP_RC,  VIRTIO_SND_CHMAP_SL,  VIRTIO_SND_CHMAP_SR,  VIRTIO_SND_CHMAP_TC,
      VIRTIO_SND_CHMAP_TFL, VIRTIO_SND_CHMAP_TFC, VIRTIO_SND_CHMAP_TFR, VIRTIO_SND_CHMAP_TRL,
      VIRTIO_SND_CHMAP_TRC, VIRTIO_SND_CHMAP_TRR};
  std::memset(positions, VIRTIO_SND_CHMAP_NONE, VIRTIO_SND_CHMAP_MAX_SIZE);
  if (channels == 1) {
    positions[0] = VIRTIO_SND_CHMAP_MONO;
    return;
  }
  for (unsigned i = 0; i < channels && i < VIRTIO_SND_CHMAP_MAX_SIZE; ++i) {
    positions[i] = kWaveOrder[i];
  }
}

DbLinearTlv VolumeDbTlv() {
  return {SNDRV_CTL_TLVT_DB_LINEAR, 2 * sizeof(int32_t), SNDRV_CTL_TLVD_DB_GAIN_MUTE, 0};
}

SndConfig::SndConfig(std::vector<PcmCaps> streams, bool controls) : streams_(std::move(streams)) {
  uint32_t next_nid[2] = {0, 0};  // per direction
  for (uint32_t id = 0; id < streams_.size(); ++id) {
    const PcmCaps& caps = streams_[id];
    const uint32_t nid = next_nid[caps.direction == VIRTIO_SND_D_OUTPUT ? 0 : 1]++;
    nids_.push_back(nid);
    Jack jack;
    jack.direction = caps.direction;
    jack.hda_fn_nid = nid;
    jack.association = static_cast<uint8_t>(id % 15 + 1);  // 0 is reserved, 15 is "none"
    jacks_.push_back(jack);
    for (unsigned c = caps.channels_min; c <= caps.channels_max; ++c) {
      chmaps_.push_back({id, static_cast<uint8_t>(c)});
    }
    if (controls) {
      controls_.push_back({id, false, kVolumeMax});
      controls_.push_back({id, true, 1});
    }
  }
}

SndConfigCtls SndConfig::config() const {
  SndConfigCtls config = {};
  config.jacks = static_cast<uint32_t>(jacks_.size());
  config.streams = static_cast<uint32_t>(streams_.size());
  config.chmaps = chmap_count();
  config.controls = control_count();
  return config;
}

SndCtlInfo SndConfig::CtlInfo(uint32_t id) const {
  const Control& control = controls_[id];
  const bool playback = streams_[control.stream].direction == VIRTIO_SND_D_OUTPUT;
  SndCtlInfo info = {};
  info.hdr.hda_fn_nid = nids_[control.stream];
  info.role = control.is_switch ? kSndCtlRoleMute : kSndCtlRoleVolume;
  info.type = control.is_switch ? kSndCtlTypeBoolean : kSndCtlTypeInteger;
  info.access = (1u << kSndCtlAccessRead) | (1u << kSndCtlAccessWrite);
  if (!control.is_switch) info.access |= 1u << kSndCtlAccessTlvRead;
  info.count = 1;
  info.index = nids_[control.stream];
  const std::string name = absl::StrCat("PCM ", playback ? "Playback " : "Capture ",
                                        control.is_switch ? "Switch" : "Volume");
  std::memcpy(info.name, name.data(), std::min(name.size(), sizeof(info.name) - 1));
  if (!control.is_switch) info.value.integer = {0, kVolumeMax, 1};
  return info;
}

std::vector<uint8_t> SndConfig::ControlReply(absl::Span<const uint8_t> request,
                                             size_t reply_capacity) {
  SndCtlHdr hdr;
  if (request.size() < sizeof(hdr)) {
    LOG_EVERY_N(WARNING, 100) << "snd: control element request of " << request.size() << " bytes";
    return StatusReply(VIRTIO_SND_S_BAD_MSG);
  }
  std::memcpy(&hdr, request.data(), sizeof(hdr));
  const uint32_t code = hdr.hdr.code;
  if (code == kSndRCtlTlvWrite || code == kSndRCtlTlvCommand || code == kSndRCtlEnumItems) {
    // No control offers TLV write access or is enumerated (a driver that asks anyway is told so).
    return StatusReply(VIRTIO_SND_S_NOT_SUPP);
  }
  const size_t expected = sizeof(hdr) + (code == kSndRCtlWrite ? sizeof(SndCtlValue) : size_t{0});
  if ((code != kSndRCtlRead && code != kSndRCtlWrite && code != kSndRCtlTlvRead) ||
      request.size() != expected || hdr.control_id >= controls_.size()) {
    LOG_EVERY_N(WARNING, 100) << "snd: bad control element request 0x" << std::hex << code
                              << std::dec << " of " << request.size() << " bytes for control "
                              << hdr.control_id << " of " << controls_.size();
    return StatusReply(VIRTIO_SND_S_BAD_MSG);
  }
  Control& control = controls_[hdr.control_id];
  if (code == kSndRCtlTlvRead) {
    if (control.is_switch) return StatusReply(VIRTIO_SND_S_NOT_SUPP);  // no TLV access
    const DbLinearTlv tlv = VolumeDbTlv();
    if (reply_capacity < sizeof(virtio_snd_hdr) + sizeof(tlv)) {
      LOG_EVERY_N(WARNING, 100) << "snd: control TLV read with " << reply_capacity
                                << " bytes for its reply";
      return StatusReply(VIRTIO_SND_S_BAD_MSG);
    }
    std::vector<uint8_t> reply = StatusReply(VIRTIO_SND_S_OK);
    Append(&reply, tlv, sizeof(tlv));
    return reply;
  }
  if (code == kSndRCtlRead) {
    if (reply_capacity < sizeof(virtio_snd_hdr) + sizeof(SndCtlValue)) {
      LOG_EVERY_N(WARNING, 100) << "snd: control read with " << reply_capacity
                                << " bytes for its reply";
      return StatusReply(VIRTIO_SND_S_BAD_MSG);
    }
    SndCtlValue value = {};
    value.value.integer[0] = control.value;
    std::vector<uint8_t> reply = StatusReply(VIRTIO_SND_S_OK);
    Append(&reply, value, sizeof(value));
    return reply;
  }
  SndCtlValue value;
  std::memcpy(&value, request.data() + sizeof(hdr), sizeof(value));
  const uint32_t v = value.value.integer[0];
  if (v > (control.is_switch ? 1 : kVolumeMax)) {
    LOG_EVERY_N(WARNING, 100) << "snd: control " << hdr.control_id << " written " << v
                              << ", out of its range";
    return StatusReply(VIRTIO_SND_S_BAD_MSG);
  }
  control.value = v;
  return StatusReply(VIRTIO_SND_S_OK);
}

absl::Status SndConfig::SetControlValue(uint32_t id, uint32_t value) {
  Control& control = controls_[id];
  const uint32_t max = control.is_switch ? 1 : kVolumeMax;
  if (value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("control ", id, ": ", value, " is not within 0-", max));
  }
  control.value = value;
  return absl::OkStatus();
}

uint32_t SndConfig::Gain(uint32_t id) const {
  // Controls are in stream order, volume then switch: 2*id and 2*id+1.
  if (2 * uint64_t{id} + 1 >= controls_.size()) return kVolumeMax;
  return controls_[2 * id + 1].value == 0 ? 0 : controls_[2 * id].value;
}

void SndConfig::ResetControls() {
  for (Control& control : controls_) control.value = control.is_switch ? 1 : kVolumeMax;
}

virtio_snd_pcm_info SndConfig::PcmInfo(uint32_t id) const {
  const PcmCaps& caps = streams_[id];
  virtio_snd_pcm_info info = {};
  info.hdr.hda_fn_nid = nids_[id];
  info.features = caps.features;
  info.formats = caps.formats;
  info.rates = caps.rates;
  info.direction = caps.direction;
  info.channels_min = caps.channels_min;
  info.channels_max = caps.channels_max;
  return info;
}

virtio_snd_jack_info SndConfig::JackInfo(uint32_t id) const {
  const Jack& jack = jacks_[id];
  virtio_snd_jack_info info = {};
  info.hdr.hda_fn_nid = jack.hda_fn_nid;
  info.features = jack.features;
  info.hda_reg_defconf = JackDefconf(jack);
  info.hda_reg_caps = JackPinCaps(jack);
  info.connected = jack.connected ? 1 : 0;
  return info;
}

virtio_snd_chmap_info SndConfig::ChmapInfo(uint32_t id) const {
  const Chmap& chmap = chmaps_[id];
  virtio_snd_chmap_info info = {};
  info.hdr.hda_fn_nid = nids_[chmap.stream];
  info.direction = streams_[chmap.stream].direction;
  info.channels = chmap.channels;
  StandardPositions(chmap.channels, info.positions);
  return info;
}

std::vector<uint8_t> StatusReply(SndStatus status) {
  std::vector<uint8_t> reply(sizeof(virtio_snd_hdr));
  const virtio_snd_hdr hdr = {status};
  std::memcpy(reply.data(), &hdr, sizeof(hdr));
  return reply;
}

std::vector<uint8_t> SndConfig::InfoReply(absl::Span<const uint8_t> request,
                                          size_t reply_capacity) const {
  virtio_snd_query_info query;
  if (request.size() != sizeof(query)) {
    LOG_EVERY_N(WARNING, 100) << "snd: info request of " << request.size() << " bytes";
    return StatusReply(VIRTIO_SND_S_BAD_MSG);
  }
  std::memcpy(&query, request.data(), sizeof(query));
  InfoKind kind;
  switch (query.hdr.code) {
    case VIRTIO_SND_R_PCM_INFO:
      kind = {sizeof(virtio_snd_pcm_info), static_cast<uint32_t>(streams_.size())};
      break;
    case VIRTIO_SND_R_JACK_INFO:
      kind = {sizeof(virtio_snd_jack_info), static_cast<uint32_t>(jacks_.size())};
      break;
    case VIRTIO_SND_R_CHMAP_INFO:
      kind = {sizeof(virtio_snd_chmap_info), chmap_count()};
      break;
    case kSndRCtlInfo:
      kind = {sizeof(SndCtlInfo), control_count()};
      break;
    default:
      LOG_EVERY_N(WARNING, 100) << "snd: 0x" << std::hex << query.hdr.code
                                << " is not an info request";
      return StatusReply(VIRTIO_SND_S_BAD_MSG);
  }
  const uint64_t end = uint64_t{query.start_id} + query.count;
  const uint64_t reply_size = sizeof(virtio_snd_hdr) + uint64_t{query.count} * query.size;
  if (end > kind.total || query.size < kind.item_size || reply_size > reply_capacity) {
    LOG_EVERY_N(WARNING, 100) << "snd: info request 0x" << std::hex << query.hdr.code << std::dec
                              << " for items " << query.start_id << "+" << query.count << " of "
                              << kind.total << ", " << query.size << " bytes each, in "
                              << reply_capacity << " bytes";
    return StatusReply(VIRTIO_SND_S_BAD_MSG);
  }
  std::vector<uint8_t> reply = StatusReply(VIRTIO_SND_S_OK);
  reply.reserve(reply_size);
  for (uint32_t id = query.start_id; id < end; ++id) {
    switch (query.hdr.code) {
      case VIRTIO_SND_R_PCM_INFO:
        Append(&reply, PcmInfo(id), query.size);
        break;
      case VIRTIO_SND_R_JACK_INFO:
        Append(&reply, JackInfo(id), query.size);
        break;
      case VIRTIO_SND_R_CHMAP_INFO:
        Append(&reply, ChmapInfo(id), query.size);
        break;
      case kSndRCtlInfo:
        Append(&reply, CtlInfo(id), query.size);
        break;
    }
  }
  return reply;
}

SndStatus SndConfig::RemapJack(absl::Span<const uint8_t> request) {
  virtio_snd_jack_remap remap;
  if (request.size() != sizeof(remap)) {
    LOG_EVERY_N(WARNING, 100) << "snd: jack remap request of " << request.size() << " bytes";
    return VIRTIO_SND_S_BAD_MSG;
  }
  std::memcpy(&remap, request.data(), sizeof(remap));
  if (remap.hdr.hdr.code != VIRTIO_SND_R_JACK_REMAP || remap.hdr.jack_id >= jacks_.size() ||
      remap.association > 0xf || remap.sequence > 0xf) {
    LOG_EVERY_N(WARNING, 100) << "snd: bad jack remap: jack " << remap.hdr.jack_id << " of "
                              << jacks_.size() << ", association " << remap.association
                              << ", sequence " << remap.sequence;
    return VIRTIO_SND_S_BAD_MSG;
  }
  Jack& jack = jacks_[remap.hdr.jack_id];
  if ((jack.features & (1u << VIRTIO_SND_JACK_F_REMAP)) == 0) return VIRTIO_SND_S_NOT_SUPP;
  jack.association = static_cast<uint8_t>(remap.association);
  jack.sequence = static_cast<uint8_t>(remap.sequence);
  return VIRTIO_SND_S_OK;
}

}  // namespace vhost::snd
