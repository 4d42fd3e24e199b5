#include "vhost-user-snd/snd_spec.h"

namespace vhost::snd {
namespace {

constexpr uint32_t kRatesHz[kRateCount] = {5512,  8000,  11025, 16000, 22050,  32000,  44100,
                                           48000, 64000, 88200, 96000, 176400, 192000, 384000};

struct FormatRow {
  absl::string_view name;
  unsigned physical_bits;
};

// In VIRTIO_SND_PCM_FMT_* order; the physical widths <linux/virtio_snd.h> lists with each.
constexpr FormatRow kFormats[kFormatCount] = {
    {"ima_adpcm", 4}, {"mu_law", 8}, {"a_law", 8},    {"s8", 8},       {"u8", 8},
    {"s16", 16},      {"u16", 16},   {"s18_3", 24},   {"u18_3", 24},   {"s20_3", 24},
    {"u20_3", 24},    {"s24_3", 24}, {"u24_3", 24},   {"s20", 32},     {"u20", 32},
    {"s24", 32},      {"u24", 32},   {"s32", 32},     {"u32", 32},     {"float", 32},
    {"float64", 64},  {"dsd_u8", 8}, {"dsd_u16", 16}, {"dsd_u32", 32}, {"iec958_subframe", 32},
};

}  // namespace

absl::string_view StatusName(SndStatus status) {
  switch (status) {
    case VIRTIO_SND_S_OK:
      return "OK";
    case VIRTIO_SND_S_BAD_MSG:
      return "BAD_MSG";
    case VIRTIO_SND_S_NOT_SUPP:
      return "NOT_SUPP";
    case VIRTIO_SND_S_IO_ERR:
      return "IO_ERR";
    default:
      return "?";
  }
}

uint32_t RateHz(uint8_t rate) { return rate < kRateCount ? kRatesHz[rate] : 0; }

int RateFromHz(uint32_t hz) {
  for (unsigned i = 0; i < kRateCount; ++i) {
    if (kRatesHz[i] == hz) return static_cast<int>(i);
  }
  return -1;
}

unsigned FormatPhysicalBits(uint8_t format) {
  return format < kFormatCount ? kFormats[format].physical_bits : 0;
}

absl::string_view FormatName(uint8_t format) {
  return format < kFormatCount ? kFormats[format].name : absl::string_view();
}

int FormatFromName(absl::string_view name) {
  for (unsigned i = 0; i < kFormatCount; ++i) {
    if (kFormats[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace vhost::snd
