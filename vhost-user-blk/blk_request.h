// A virtio-blk request (virtio 1.2 §5.2.6) as found in a descriptor chain: the 16-byte header in
// the readable part, the data, and the status byte at the very end of the writable part.
#ifndef VHOST_USER_BLK_BLK_REQUEST_H_
#define VHOST_USER_BLK_BLK_REQUEST_H_

#include <linux/virtio_blk.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/virtio/descriptor_chain.h"

namespace vhost {

constexpr uint32_t kSectorSize = 512;

struct BlkRequest {
  uint32_t type = 0;
  uint64_t sector = 0;
  // IN / GET_ID: the writable part before the status byte. OUT / DISCARD / WRITE_ZEROES: the
  // readable part after the header.
  IovecList data;
  uint64_t data_bytes = 0;
  uint8_t* status = nullptr;  // host address of the status byte (guest memory)
};

// Fills `request` from `chain` (copying the header once out of guest memory). Fails when the
// chain cannot be a request at all: no room for the header or no writable status byte; the
// request then cannot be answered with a status (the caller completes it with 0 bytes).
absl::Status ParseBlkRequest(const DescriptorChain& chain, BlkRequest* request);

}  // namespace vhost

#endif  // VHOST_USER_BLK_BLK_REQUEST_H_
