// Event code names (KEY_A, BTN_LEFT, REL_X, ...) for the virtual device's commands.
#ifndef VHOST_USER_INPUT_EVENT_CODES_H_
#define VHOST_USER_INPUT_EVENT_CODES_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace vhost {

absl::optional<uint16_t> EventCodeByName(absl::string_view name);

}  // namespace vhost

#endif  // VHOST_USER_INPUT_EVENT_CODES_H_
