#include "vhost-user-gpu/pixel_format.h"

#include <algorithm>

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

size_t ConvertToXrgb(uint32_t format, absl::Span<const uint8_t> src, absl::Span<uint8_t> dst) {
  Layout l;
  if (!LayoutOf(format, &l)) return 0;
  const size_t pixels = std::min(src.size(), dst.size()) / kBytesPerPixel;
  const uint8_t* s = src.data();
  uint8_t* d = dst.data();
  for (size_t i = 0; i < pixels; ++i, s += kBytesPerPixel, d += kBytesPerPixel) {
    d[0] = s[l.b];
    d[1] = s[l.g];
    d[2] = s[l.r];
    d[3] = 0xff;
  }
  return pixels;
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
