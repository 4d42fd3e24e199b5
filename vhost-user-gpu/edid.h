// The EDID (VESA E-EDID 1.4 base block, 128 bytes) of the virtual monitor behind a scanout, for
// GET_EDID when the display end has none of its own: the preferred mode is the scanout's size,
// given in a detailed timing descriptor with reduced blanking at (up to) 60 Hz.
#ifndef VHOST_USER_GPU_EDID_H_
#define VHOST_USER_GPU_EDID_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vhost::gpu {

inline constexpr size_t kEdidBlockSize = 128;
// A detailed timing descriptor holds 12-bit active sizes.
inline constexpr uint32_t kEdidMaxDimension = 4095;
// The monitor name descriptor holds 13 characters.
inline constexpr size_t kEdidMaxNameLength = 13;

using EdidBlock = std::array<uint8_t, kEdidBlockSize>;

// A base block whose preferred (and only detailed) mode is `width` x `height` pixels, named
// `monitor_name` (cut to 13 characters; bytes outside printable ASCII become '?'). The refresh
// rate is 60 Hz unless the pixel clock would not fit the descriptor's 16 bits, then the highest
// that fits. InvalidArgumentError for a size of 0 or beyond kEdidMaxDimension.
absl::StatusOr<EdidBlock> MakeEdid(uint32_t width, uint32_t height, absl::string_view monitor_name);

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_EDID_H_
