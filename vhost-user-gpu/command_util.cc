#include "vhost-user-gpu/command_util.h"

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace vhost::gpu {

CtrlHdr ResponseHeader(const CtrlHdr& request, uint32_t type) {
  CtrlHdr response{};
  response.type = type;
  if (request.flags & kFlagFence) {
    response.flags = kFlagFence;
    response.fence_id = request.fence_id;
    response.ctx_id = request.ctx_id;
    if (request.flags & kFlagInfoRingIdx) {
      response.flags |= kFlagInfoRingIdx;
      response.ring_idx = request.ring_idx;
    }
  }
  return response;
}

uint32_t Refuse(uint32_t response, const absl::Status& why) {
  LOG_EVERY_N(WARNING, 100) << "virtio-gpu: " << CtrlTypeName(response) << ": " << why.message();
  return response;
}

uint32_t ShortRequest(const CtrlHdr& hdr) {
  return Refuse(kRespErrUnspec,
                absl::InvalidArgumentError(absl::StrCat(CtrlTypeName(hdr.type), " too short")));
}

uint32_t FromTable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kRespOkNodata;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
      return Refuse(kRespErrInvalidResourceId, status);
    case absl::StatusCode::kInvalidArgument:
      return Refuse(kRespErrInvalidParameter, status);
    case absl::StatusCode::kResourceExhausted:
      return Refuse(kRespErrOutOfMemory, status);
    default:
      return Refuse(kRespErrUnspec, status);
  }
}

}  // namespace vhost::gpu
