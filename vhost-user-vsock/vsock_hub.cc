#include "vhost-user-vsock/vsock_hub.h"

#include "vhost-user-vsock/vsock_device.h"

namespace vhost {

void VsockHub::Add(VsockDevice* device) { by_cid_[device->guest_cid()] = device; }

bool VsockHub::Reaches(const VsockDevice& from, uint64_t cid) const {
  auto it = by_cid_.find(cid);
  if (it == by_cid_.end() || it->second == &from) return false;
  for (const std::string& group : from.groups()) {
    if (it->second->groups().count(group)) return true;
  }
  return false;
}

bool VsockHub::Forward(const VsockDevice& from, VsockPacket packet) {
  if (!Reaches(from, packet.header.dst_cid)) return false;
  return by_cid_.at(packet.header.dst_cid)->DeliverFromSibling(std::move(packet));
}

}  // namespace vhost
