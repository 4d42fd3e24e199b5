// The 32-bit formats a virtio-gpu 2D resource may have (the ones Linux's driver uses), and their
// conversion, a row at a time, into what the display takes: x8r8g8b8, in memory B, G, R, X (see
// display_sink.h), and into the ARGB words of a cursor image.
#ifndef VHOST_USER_GPU_PIXEL_FORMAT_H_
#define VHOST_USER_GPU_PIXEL_FORMAT_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace vhost::gpu {

inline constexpr uint32_t kBytesPerPixel = 4;  // every supported format

// Whether `format` (a VIRTIO_GPU_FORMAT_*) is one of the eight 2D formats this device takes.
bool IsSupportedFormat(uint32_t format);

// Converts the pixels of `src` (in `format`) into x8r8g8b8 bytes in `dst`: B, G, R, then 0xff
// (the X byte is set, not copied, so that the display never sees the guest's padding bytes).
// Converts min(src.size(), dst.size()) / 4 pixels and returns that count; 0 for an unsupported
// format.
size_t ConvertToXrgb(uint32_t format, absl::Span<const uint8_t> src, absl::Span<uint8_t> dst);

// The same into ARGB words (alpha in bits 31..24, then R, G, B) keeping the alpha of formats
// that have one; formats without alpha get 0xff (opaque).
size_t ConvertToArgb(uint32_t format, absl::Span<const uint8_t> src, absl::Span<uint32_t> dst);

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_PIXEL_FORMAT_H_
