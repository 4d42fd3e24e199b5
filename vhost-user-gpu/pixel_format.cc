#include "vhost-user-gpu/pixel_format.h"

#include <algorithm>
#include <cstring>

#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {
namespace {

// Where each channel lies within a pixel's four bytes in memory; alpha -1: none (X padding).
struct Layout {
  int r, g, b, a;
};

bool LayoutOf(uint32_t format, Layout* layout) {
  switch (format) {
    case kFormatB8G8R8A8:
      *layout = {2, 1, 0, 3};
      return true;
    case kFormatB8G8R8X8:
      *layout = {2, 1, 0, -1};
      return true;
    case kFormatA8R8G8B8:
      *layout = {1, 2, 3, 0};
      return true;
    case kFormatX8R8G8B8:
      *layout = {1, 2, 3, -1};
      return true;
    case kFormatR8G8B8A8:
      *layout = {0, 1, 2, 3};
      return true;
    case kFormatX8B8G8R8:
      *layout = {3, 2, 1, -1};
      return true;
    case kFormatA8B8G8R8:
      *layout = {3, 2, 1, 0};
      return true;
    case kFormatR8G8B8X8:
      *layout = {0, 1, 2, -1};
      return true;
  }
  return false;
}

}  // namespace

bool IsSupportedFormat(uint32_t format) {
  Layout layout;
  return LayoutOf(format, &layout);
}

// One format's conversion: each pixel read as a little-endian word, its channels (at these bit
// offsets) moved to B, G, R and X = 0xff. The offsets are constants, so the compiler turns the
// loop into a few vector shifts and masks per 16 bytes (a byte-by-byte loop with the layout
// looked up at run time took a fifth of a full-screen frame's time in gpu_bench).
template <int kR, int kG, int kB>
void ConvertRows(const uint8_t* s, uint8_t* d, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i) {
    uint32_t v;
    std::memcpy(&v, s + i * kBytesPerPixel, sizeof(v));
    const uint32_t out =
        ((v >> kB) & 0xff) | ((v >> kG) & 0xff) << 8 | ((v >> kR) & 0xff) << 16 | 0xff000000u;
    std::memcpy(d + i * kBytesPerPixel, &out, sizeof(out));
  }
}

size_t ConvertToXrgb(uint32_t format, absl::Span<const uint8_t> src, absl::Span<uint8_t> dst) {
  const size_t pixels = std::min(src.size(), dst.size()) / kBytesPerPixel;
  const uint8_t* s = src.data();
  uint8_t* d = dst.data();
  // The bit offsets of R, G and B in the little-endian word (LayoutOf's bytes times 8).
  switch (format) {
    case kFormatB8G8R8A8:
    case kFormatB8G8R8X8:
      ConvertRows<16, 8, 0>(s, d, pixels);
      return pixels;
    case kFormatA8R8G8B8:
    case kFormatX8R8G8B8:
      ConvertRows<8, 16, 24>(s, d, pixels);
      return pixels;
    case kFormatR8G8B8A8:
    case kFormatR8G8B8X8:
      ConvertRows<0, 8, 16>(s, d, pixels);
      return pixels;
    case kFormatX8B8G8R8:
    case kFormatA8B8G8R8:
      ConvertRows<24, 16, 8>(s, d, pixels);
      return pixels;
  }
  return 0;
}

size_t ConvertToArgb(uint32_t format, absl::Span<const uint8_t> src, absl::Span<uint32_t> dst) {
  Layout l;
  if (!LayoutOf(format, &l)) return 0;
  const size_t pixels = std::min(src.size() / kBytesPerPixel, dst.size());
  const uint8_t* s = src.data();
  for (size_t i = 0; i < pixels; ++i, s += kBytesPerPixel) {
    const uint32_t a = l.a < 0 ? 0xff : s[l.a];
    dst[i] = a << 24 | uint32_t{s[l.r]} << 16 | uint32_t{s[l.g]} << 8 | s[l.b];
  }
  return pixels;
}

}  // namespace vhost::gpu
