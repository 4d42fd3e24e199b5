#include "vhost-user-gpio/gpio_sandbox.h"

#include "vhost-user-gpio/host_chip.h"

namespace vhost {

// Host chips' character-device ioctls; line events are read() from line fds the event loop
// watches (both in the base).
SandboxPolicy GpioSandboxPolicy() {
  SandboxPolicy policy;
  policy.Allow("memfd_create").Allow("fallocate");  // the inflight region (GET_INFLIGHT_FD)
  for (unsigned long request : HostChipIoctls()) policy.AllowIoctl(request);
  return policy;
}

}  // namespace vhost
