#include "vhost-user-vsock/vsock_packet.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/virtio/chain_cursor.h"

namespace vhost {

std::string DescribeHeader(const virtio_vsock_hdr& h) {
  const uint64_t src_cid = h.src_cid, dst_cid = h.dst_cid;
  return absl::StrCat("op ", h.op, " type ", h.type, " ", src_cid, ":", h.src_port, " -> ", dst_cid,
                      ":", h.dst_port, " len ", h.len);
}

bool ReadPacketHeader(const DescriptorChain& chain, virtio_vsock_hdr* h) {
  return ChainReader(chain).Read(h);
}

void CopyPayload(const DescriptorChain& chain, uint64_t offset, void* out, size_t len) {
  CopyFromSegments(chain.readable, kVsockHeaderSize + offset, out, len);
}

void SlicePayload(const DescriptorChain& chain, uint64_t offset, uint64_t len, IovecList* iov) {
  SliceSegments(chain.readable, kVsockHeaderSize + offset, len, iov);
}

void SliceRoom(const DescriptorChain& chain, uint64_t len, IovecList* iov) {
  SliceSegments(chain.writable, kVsockHeaderSize, len, iov);
}

uint32_t WriteHeader(const DescriptorChain& chain, const virtio_vsock_hdr& h) {
  return static_cast<uint32_t>(CopyToSegments(chain.writable, 0, &h, sizeof(h)));
}

uint32_t WritePacket(const DescriptorChain& chain, virtio_vsock_hdr h, const void* payload,
                     size_t size) {
  const size_t chunk = std::min<uint64_t>(PayloadRoom(chain), size);
  h.len = static_cast<uint32_t>(chunk);
  // A message cut in pieces ends with its last piece.
  if (chunk < size) h.flags &= ~(VIRTIO_VSOCK_SEQ_EOM | VIRTIO_VSOCK_SEQ_EOR);
  WriteHeader(chain, h);
  if (chunk > 0) CopyToSegments(chain.writable, kVsockHeaderSize, payload, chunk);
  return static_cast<uint32_t>(chunk);
}

}  // namespace vhost
