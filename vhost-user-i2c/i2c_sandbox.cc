#include "vhost-user-i2c/i2c_sandbox.h"

#include "vhost-user-i2c/host_adapter.h"

namespace vhost {

// Host adapters' ioctls (transfers, the client address, SMBus, functionality).
SandboxPolicy I2cSandboxPolicy() {
  SandboxPolicy policy;
  policy.Allow("memfd_create").Allow("fallocate");  // the inflight region (GET_INFLIGHT_FD)
  for (unsigned long request : HostAdapterIoctls()) policy.AllowIoctl(request);
  return policy;
}

}  // namespace vhost
