#include "vhost-user-gpu/edid.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace vhost::gpu {
namespace {

// Blanking after CVT's reduced-blanking idea: a short fixed horizontal blank and a vertical
// blank of at least 460 us (at 60 Hz), which any display end can show.
constexpr uint32_t kHFront = 48, kHSync = 32, kHBack = 80;
constexpr uint32_t kHBlank = kHFront + kHSync + kHBack;
constexpr uint32_t kVFront = 3, kVSync = 6, kVBackMin = 6;
constexpr uint32_t kRefreshHz = 60;
constexpr uint64_t kMaxClock10kHz = 0xffff;  // the descriptor's 16-bit pixel clock
// Image size from pixels at 96 dpi: mm = px * 25.4 / 96.
constexpr uint32_t kMmPer960Px = 254;

// Manufacturer "VHU" (three letters, 'A' = 1, five bits each, big-endian), product 1.
constexpr char kManufacturer[] = "VHU";
constexpr uint16_t kProductCode = 1;
constexpr uint8_t kYear = 2024 - 1990;

// sRGB primaries and D65 white point, x and y times 1024 (10 bits each): R, G, B, W.
constexpr uint16_t kChromaticity[8] = {655, 338, 307, 614, 154, 61, 320, 337};

void PutDetailedTiming(uint8_t* d, uint32_t width, uint32_t height) {
  const uint32_t v_blank_min =
      (27600 * uint64_t{height} + 972400 - 1) / 972400;  // 460us of 1/60 s, over all lines
  const uint32_t v_blank = std::max(kVFront + kVSync + kVBackMin, v_blank_min);
  const uint64_t h_total = width + kHBlank;
  const uint64_t v_total = height + v_blank;
  const uint64_t total = h_total * v_total;
  const uint64_t refresh = std::min<uint64_t>(kRefreshHz, kMaxClock10kHz * 10000 / total);
  const uint64_t clock = std::max<uint64_t>(1, (total * refresh + 5000) / 10000);
  const uint32_t width_mm = std::min<uint32_t>(0xfff, (width * kMmPer960Px + 480) / 960);
  const uint32_t height_mm = std::min<uint32_t>(0xfff, (height * kMmPer960Px + 480) / 960);

  d[0] = clock & 0xff;
  d[1] = clock >> 8;
  d[2] = width & 0xff;
  d[3] = kHBlank & 0xff;
  d[4] = (width >> 8) << 4 | (kHBlank >> 8);
  d[5] = height & 0xff;
  d[6] = v_blank & 0xff;
  d[7] = (height >> 8) << 4 | (v_blank >> 8);
  d[8] = kHFront & 0xff;
  d[9] = kHSync & 0xff;
  d[10] = (kVFront & 0xf) << 4 | (kVSync & 0xf);
  d[11] = (kHFront >> 8) << 6 | (kHSync >> 8) << 4 | (kVFront >> 4) << 2 | (kVSync >> 4);
  d[12] = width_mm & 0xff;
  d[13] = height_mm & 0xff;
  d[14] = (width_mm >> 8) << 4 | (height_mm >> 8);
  d[15] = 0;  // no borders
  d[16] = 0;
  d[17] = 0x1a;  // non-interlaced, digital separate sync, -vsync, +hsync (as reduced blanking)
}

// A display range limits descriptor wide enough for any mode of a virtual monitor.
void PutRangeLimits(uint8_t* d) {
  d[3] = 0xfd;
  d[5] = 1;    // min vertical rate, Hz
  d[6] = 120;  // max vertical rate, Hz
  d[7] = 1;    // min horizontal rate, kHz
  d[8] = 255;  // max horizontal rate, kHz
  d[9] = 66;   // max pixel clock, 10 MHz units: above any 16-bit detailed timing
  d[10] = 1;   // range limits only, no secondary timing formula
  d[11] = 0x0a;
  std::fill(d + 12, d + 18, 0x20);
}

void PutName(uint8_t* d, absl::string_view name) {
  d[3] = 0xfc;
  const size_t n = std::min(name.size(), kEdidMaxNameLength);
  for (size_t i = 0; i < n; ++i) {
    const char c = name[i];
    d[5 + i] = c >= 0x20 && c < 0x7f ? static_cast<uint8_t>(c) : '?';
  }
  // Ended by a line feed, padded with spaces.
  if (n < kEdidMaxNameLength) {
    d[5 + n] = 0x0a;
    std::fill(d + 5 + n + 1, d + 18, 0x20);
  }
}

}  // namespace

absl::StatusOr<EdidBlock> MakeEdid(uint32_t width, uint32_t height,
                                   absl::string_view monitor_name) {
  if (width == 0 || height == 0 || width > kEdidMaxDimension || height > kEdidMaxDimension) {
    return absl::InvalidArgumentError(absl::StrCat("an EDID cannot describe a ", width, "x", height,
                                                   " mode (1 to ", kEdidMaxDimension,
                                                   " pixels each way)"));
  }
  EdidBlock e{};
  // Header.
  e[0] = e[7] = 0x00;
  std::fill(e.begin() + 1, e.begin() + 7, 0xff);
  // Vendor and product.
  const uint16_t vendor = (kManufacturer[0] - 'A' + 1) << 10 | (kManufacturer[1] - 'A' + 1) << 5 |
                          (kManufacturer[2] - 'A' + 1);
  e[8] = vendor >> 8;
  e[9] = vendor & 0xff;
  e[10] = kProductCode & 0xff;
  e[11] = kProductCode >> 8;
  // 12..15: no serial number; 16: no week.
  e[17] = kYear;
  e[18] = 1;  // EDID 1.4
  e[19] = 4;
  // Basic display parameters.
  e[20] = 0xa0;  // digital input, 8 bits per color, interface not given
  const uint32_t width_cm = (width * kMmPer960Px + 4800) / 9600;
  const uint32_t height_cm = (height * kMmPer960Px + 4800) / 9600;
  e[21] = static_cast<uint8_t>(std::clamp<uint32_t>(width_cm, 1, 255));
  e[22] = static_cast<uint8_t>(std::clamp<uint32_t>(height_cm, 1, 255));
  e[23] = 120;   // gamma 2.2
  e[24] = 0x06;  // RGB 4:4:4, sRGB default color space, preferred timing is the native mode
  // Chromaticity: the two low bits of each value packed first, then the eight high bits.
  const uint16_t* c = kChromaticity;
  e[25] = (c[0] & 3) << 6 | (c[1] & 3) << 4 | (c[2] & 3) << 2 | (c[3] & 3);
  e[26] = (c[4] & 3) << 6 | (c[5] & 3) << 4 | (c[6] & 3) << 2 | (c[7] & 3);
  for (int i = 0; i < 8; ++i) e[27 + i] = c[i] >> 2;
  // 35..37: no established timings. 38..53: no standard timings (0x01 0x01 each).
  std::fill(e.begin() + 38, e.begin() + 54, 0x01);
  // Four 18-byte descriptors: the preferred mode, range limits, the name, a dummy.
  PutDetailedTiming(&e[54], width, height);
  PutRangeLimits(&e[72]);
  PutName(&e[90], monitor_name);
  e[108 + 3] = 0x10;  // dummy descriptor
  // 126: no extension blocks. 127: all 128 bytes sum to 0 mod 256.
  uint8_t sum = 0;
  for (size_t i = 0; i < kEdidBlockSize - 1; ++i) sum += e[i];
  e[127] = static_cast<uint8_t>(0x100 - sum);
  return e;
}

}  // namespace vhost::gpu
