#include "vhost-user-vsock/vsock_packet.h"

#include "absl/strings/str_cat.h"

namespace vhost {

std::string DescribeHeader(const virtio_vsock_hdr& h) {
  const uint64_t src_cid = h.src_cid, dst_cid = h.dst_cid;
  return absl::StrCat("op ", h.op, " type ", h.type, " ", src_cid, ":", h.src_port, " -> ", dst_cid,
                      ":", h.dst_port, " len ", h.len);
}

}  // namespace vhost
