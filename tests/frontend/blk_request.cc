#include "tests/frontend/blk_request.h"

#include "common/base/status_macros.h"

namespace vhost {
namespace frontend {
namespace {

bool DeviceWritesData(uint32_t type) {
  return type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
}

}  // namespace

absl::StatusOr<BlkRequest> AllocateBlkRequest(GuestRam* ram, uint32_t type, uint64_t sector,
                                              uint32_t data_len) {
  BlkRequest r;
  r.data_len = data_len;
  uint8_t* header;
  ASSIGN_OR_RETURN(r.header_gpa, ram->Allocate(sizeof(virtio_blk_outhdr), 16, &header));
  r.header = reinterpret_cast<virtio_blk_outhdr*>(header);
  if (data_len > 0) {
    ASSIGN_OR_RETURN(r.data_gpa, ram->Allocate(data_len, 512, &r.data));
  }
  ASSIGN_OR_RETURN(r.status_gpa, ram->Allocate(1, 1, &r.status));
  uint8_t* table;
  ASSIGN_OR_RETURN(r.indirect_gpa, ram->Allocate(3 * 16, 16, &table));
  RewriteBlkRequest(&r, type, sector);
  return r;
}

void RewriteBlkRequest(BlkRequest* r, uint32_t type, uint64_t sector) {
  r->type = type;
  r->header->type = type;
  r->header->ioprio = 0;
  r->header->sector = sector;
  *r->status = 0xff;
}

absl::StatusOr<uint16_t> AddBlkRequest(testing::DriverRing* ring, const BlkRequest& r,
                                       bool indirect) {
  testing::Buffer readable[2] = {{r.header_gpa, sizeof(virtio_blk_outhdr)}};
  testing::Buffer writable[2];
  size_t nr = 1, nw = 0;
  if (r.data_len > 0) {
    if (DeviceWritesData(r.type)) {
      writable[nw++] = {r.data_gpa, r.data_len};
    } else {
      readable[nr++] = {r.data_gpa, r.data_len};
    }
  }
  writable[nw++] = {r.status_gpa, 1};
  return ring->AddChain(absl::MakeConstSpan(readable, nr), absl::MakeConstSpan(writable, nw),
                        indirect ? absl::make_optional(r.indirect_gpa) : absl::nullopt);
}

}  // namespace frontend
}  // namespace vhost
