// virtio-vsock packets (virtio 1.2 §5.10): the 44-byte header and helpers to build the ones the
// device sends.
#ifndef VHOST_USER_VSOCK_VSOCK_PACKET_H_
#define VHOST_USER_VSOCK_VSOCK_PACKET_H_

#include <linux/virtio_vsock.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vhost {

constexpr uint64_t kHostCid = 2;  // VMADDR_CID_HOST
constexpr size_t kVsockHeaderSize = sizeof(virtio_vsock_hdr);
static_assert(kVsockHeaderSize == 44, "virtio_vsock_hdr is 44 bytes on the wire");
// The largest payload a driver puts in one packet (Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE; its
// vhost-vsock drops larger ones). A guest claiming more is hostile: the chain's length proves
// nothing, since its descriptors may all alias the same few guest bytes.
constexpr uint32_t kMaxPacketPayload = 64 * 1024;

// A packet held in the daemon (control packets, packets between sibling VMs).
struct VsockPacket {
  virtio_vsock_hdr header{};
  std::vector<uint8_t> payload;
};

// Addresses of a packet as (cid, port) pairs.
inline virtio_vsock_hdr MakeHeader(uint64_t src_cid, uint32_t src_port, uint64_t dst_cid,
                                   uint32_t dst_port, uint16_t type, uint16_t op) {
  virtio_vsock_hdr h{};
  h.src_cid = src_cid;
  h.src_port = src_port;
  h.dst_cid = dst_cid;
  h.dst_port = dst_port;
  h.type = type;
  h.op = op;
  return h;
}

// The header answering `h` with `op` (addresses swapped, no payload, no credit).
inline virtio_vsock_hdr ReplyHeader(const virtio_vsock_hdr& h, uint16_t op) {
  return MakeHeader(h.dst_cid, h.dst_port, h.src_cid, h.src_port, h.type, op);
}

std::string DescribeHeader(const virtio_vsock_hdr& h);

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_VSOCK_PACKET_H_
