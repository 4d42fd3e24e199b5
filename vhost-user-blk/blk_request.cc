#include "vhost-user-blk/blk_request.h"

#include "absl/strings/str_cat.h"
#include "common/virtio/chain_cursor.h"

namespace vhost {

absl::Status ParseBlkRequest(const DescriptorChain& chain, BlkRequest* request) {
  virtio_blk_outhdr header;
  ChainReader reader(chain);
  if (!reader.Read(&header)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request of ", chain.readable_bytes, " readable bytes has no header"));
  }
  if (chain.writable_bytes == 0) {
    return absl::InvalidArgumentError("request has no writable status byte");
  }
  request->type = header.type;
  request->sector = header.sector;
  request->data.clear();
  const iovec& last = chain.writable.back();
  request->status = static_cast<uint8_t*>(last.iov_base) + last.iov_len - 1;
  if (request->type == VIRTIO_BLK_T_IN || request->type == VIRTIO_BLK_T_GET_ID) {
    request->data_bytes = chain.writable_bytes - 1;
    ChainWriter(chain).Slice(request->data_bytes, &request->data);
  } else {
    request->data_bytes = reader.remaining();
    reader.Slice(request->data_bytes, &request->data);
  }
  return absl::OkStatus();
}

}  // namespace vhost
