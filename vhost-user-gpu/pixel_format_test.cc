// Each 2D format's channels land where x8r8g8b8 (B, G, R, X) and ARGB words want them.
#include "vhost-user-gpu/pixel_format.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {
namespace {

struct Case {
  uint32_t format;
  uint8_t bytes[4];  // one pixel in memory with R = 0x11, G = 0x22, B = 0x33, A (or X) = 0x44
  bool has_alpha;
};

constexpr Case kCases[] = {
    {kFormatB8G8R8A8, {0x33, 0x22, 0x11, 0x44}, true},
    {kFormatB8G8R8X8, {0x33, 0x22, 0x11, 0x44}, false},
    {kFormatA8R8G8B8, {0x44, 0x11, 0x22, 0x33}, true},
    {kFormatX8R8G8B8, {0x44, 0x11, 0x22, 0x33}, false},
    {kFormatR8G8B8A8, {0x11, 0x22, 0x33, 0x44}, true},
    {kFormatX8B8G8R8, {0x44, 0x33, 0x22, 0x11}, false},
    {kFormatA8B8G8R8, {0x44, 0x33, 0x22, 0x11}, true},
    {kFormatR8G8B8X8, {0x11, 0x22, 0x33, 0x44}, false},
};

TEST(PixelFormatTest, EveryFormatToXrgb) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(FormatName(c.format));
    EXPECT_TRUE(IsSupportedFormat(c.format));
    // Two pixels: the second differs, so that a converter stuck on the first is caught.
    std::vector<uint8_t> src(c.bytes, c.bytes + 4);
    for (uint8_t b : c.bytes) src.push_back(static_cast<uint8_t>(b + 1));
    std::vector<uint8_t> dst(8, 0);
    EXPECT_EQ(ConvertToXrgb(c.format, src, absl::MakeSpan(dst)), 2u);
    EXPECT_EQ(dst, (std::vector<uint8_t>{0x33, 0x22, 0x11, 0xff, 0x34, 0x23, 0x12, 0xff}));
  }
}

TEST(PixelFormatTest, EveryFormatToArgbKeepsAlpha) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(FormatName(c.format));
    std::vector<uint32_t> dst(1, 0);
    EXPECT_EQ(ConvertToArgb(c.format, absl::MakeConstSpan(c.bytes, 4), absl::MakeSpan(dst)), 1u);
    EXPECT_EQ(dst[0], (c.has_alpha ? 0x44000000u : 0xff000000u) | 0x112233u);
  }
}

TEST(PixelFormatTest, UnsupportedFormatsConvertNothing) {
  for (uint32_t format : {0u, 5u, 66u, 200u}) {
    EXPECT_FALSE(IsSupportedFormat(format));
    std::vector<uint8_t> src(8, 1), dst(8, 0);
    EXPECT_EQ(ConvertToXrgb(format, src, absl::MakeSpan(dst)), 0u);
    EXPECT_EQ(dst, std::vector<uint8_t>(8, 0));
    std::vector<uint32_t> argb(2, 0);
    EXPECT_EQ(ConvertToArgb(format, src, absl::MakeSpan(argb)), 0u);
  }
}

TEST(PixelFormatTest, ConvertsNoMoreThanBothBuffersHold) {
  std::vector<uint8_t> src(12, 0x10), dst(9, 0);  // 3 pixels in, room for 2 (and a byte)
  EXPECT_EQ(ConvertToXrgb(kFormatB8G8R8X8, src, absl::MakeSpan(dst)), 2u);
  EXPECT_EQ(dst[8], 0);  // the odd byte is not touched
  std::vector<uint32_t> argb(4, 0);
  EXPECT_EQ(
      ConvertToArgb(kFormatB8G8R8A8, absl::MakeConstSpan(src.data(), 6), absl::MakeSpan(argb)), 1u);
  EXPECT_EQ(argb[1], 0u);
}

}  // namespace
}  // namespace vhost::gpu
