// virtio-vsock packets (virtio 1.2 §5.10): the 44-byte header, the headers the device sends, and
// reading and writing packets in descriptor chains (the guest's tx and rx buffers).
#ifndef VHOST_USER_VSOCK_VSOCK_PACKET_H_
#define VHOST_USER_VSOCK_VSOCK_PACKET_H_

#include <linux/virtio_vsock.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/virtio/descriptor_chain.h"

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

// ---- tx: a packet from the guest (header and payload in the chain's readable part)

// Reads the header; false if the chain is shorter than one.
bool ReadPacketHeader(const DescriptorChain& chain, virtio_vsock_hdr* h);
// The payload bytes the chain carries after the header (h.len may claim more).
inline uint64_t PayloadCarried(const DescriptorChain& chain) {
  return chain.readable_bytes < kVsockHeaderSize ? 0 : chain.readable_bytes - kVsockHeaderSize;
}
// Copies `len` payload bytes from `offset` into the payload into `out` (the caller checked
// them against PayloadCarried).
void CopyPayload(const DescriptorChain& chain, uint64_t offset, void* out, size_t len);
// Appends the segments of payload bytes [offset, offset + len) to `iov` (for writev).
void SlicePayload(const DescriptorChain& chain, uint64_t offset, uint64_t len, IovecList* iov);

// ---- rx: a packet for the guest (the chain's writable part)

// Whether the buffer can take a header, and a header with at least one payload byte.
inline bool HoldsHeader(const DescriptorChain& chain) {
  return chain.writable_bytes >= kVsockHeaderSize;
}
inline bool HoldsData(const DescriptorChain& chain) {
  return chain.writable_bytes > kVsockHeaderSize;
}
// Payload room of the buffer (0 if it cannot hold a header).
inline uint64_t PayloadRoom(const DescriptorChain& chain) {
  return HoldsHeader(chain) ? chain.writable_bytes - kVsockHeaderSize : 0;
}
// Appends the segments of the first `len` payload bytes of the buffer to `iov` (for readv).
void SliceRoom(const DescriptorChain& chain, uint64_t len, IovecList* iov);
// Writes the header (the caller checked HoldsHeader); returns the bytes written.
uint32_t WriteHeader(const DescriptorChain& chain, const virtio_vsock_hdr& h);
// Writes `h` and as much of `payload` (`size` bytes) as the buffer holds, with h.len set to
// that and, if the payload is cut, its end-of-message flags cleared (the caller checked
// HoldsHeader). Returns the payload bytes written.
uint32_t WritePacket(const DescriptorChain& chain, virtio_vsock_hdr h, const void* payload,
                     size_t size);

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_VSOCK_PACKET_H_
