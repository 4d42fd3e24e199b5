// virtio-blk requests in guest memory (virtio 1.2 §5.2.6): a readable header, the data, and a
// writable status byte, for tests and benchmarks of block back ends.
#ifndef TESTS_FRONTEND_BLK_REQUEST_H_
#define TESTS_FRONTEND_BLK_REQUEST_H_

#include <linux/virtio_blk.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "common/testing/driver_ring.h"
#include "tests/frontend/guest_ram.h"

namespace vhost {
namespace frontend {

struct BlkRequest {
  uint32_t type = VIRTIO_BLK_T_IN;
  uint64_t header_gpa = 0;
  uint64_t data_gpa = 0;
  uint32_t data_len = 0;
  uint64_t status_gpa = 0;
  uint64_t indirect_gpa = 0;  // room for a 3-entry indirect table
  virtio_blk_outhdr* header = nullptr;
  uint8_t* data = nullptr;
  uint8_t* status = nullptr;
};

// Allocates the parts in `ram` and writes the header. The status byte is set to 0xff so a
// request the device never completed is visible.
absl::StatusOr<BlkRequest> AllocateBlkRequest(GuestRam* ram, uint32_t type, uint64_t sector,
                                              uint32_t data_len);

// Rewrites the header of an allocated request (to reuse it) and resets its status byte.
void RewriteBlkRequest(BlkRequest* request, uint32_t type, uint64_t sector);

// Adds the request to `ring`: header readable; data readable for OUT (and other writes to the
// device), writable for IN and GET_ID; status writable. Optionally through its indirect table.
absl::StatusOr<uint16_t> AddBlkRequest(testing::DriverRing* ring, const BlkRequest& request,
                                       bool indirect = false);

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_BLK_REQUEST_H_
