#include "vhost-user-vsock/vsock_sandbox.h"

#include <linux/capability.h>
#include <sys/socket.h>

namespace vhost {

SandboxPolicy VsockSandboxPolicy() {
  // Host-side connections only: Unix stream or seqpacket sockets (a guest's SOCK_SEQPACKET).
  return SandboxPolicy()
      .AllowIf({"socket", {Arg(0) == AF_UNIX, (Arg(1) & kSocketTypeMask) == SOCK_STREAM}})
      .AllowIf({"socket", {Arg(0) == AF_UNIX, (Arg(1) & kSocketTypeMask) == SOCK_SEQPACKET}})
      .Allow("connect")
      // Started as root, it still connects to host sockets whatever their owner and mode.
      .KeepCapability(CAP_DAC_OVERRIDE);
}

}  // namespace vhost
