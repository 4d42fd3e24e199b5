// Sibling VMs served by one daemon: a guest's packet for another guest's CID goes straight to
// that guest's device if the two VMs share a group (rust-vmm's --groups), and stays in the
// daemon (no host socket in between). Forwarding is stateless: each guest's own vsock stack
// keeps the connection state and the end-to-end credit.
#ifndef VHOST_USER_VSOCK_VSOCK_HUB_H_
#define VHOST_USER_VSOCK_VSOCK_HUB_H_

#include <map>

#include "vhost-user-vsock/vsock_packet.h"

namespace vhost {

class VsockDevice;

class VsockHub {
 public:
  // All VMs are added before any serves a front end.
  void Add(VsockDevice* device);
  // Whether `from` may reach `cid`.
  bool Reaches(const VsockDevice& from, uint64_t cid) const;
  // Delivers to the guest of packet.header.dst_cid; false if unreachable or its queue is full.
  bool Forward(const VsockDevice& from, VsockPacket packet);

 private:
  std::map<uint64_t, VsockDevice*> by_cid_;
};

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_VSOCK_HUB_H_
