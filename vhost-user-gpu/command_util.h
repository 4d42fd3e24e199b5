// What every control and cursor command handler shares: reading a request's fixed part,
// answering with the right header, and turning a refusal into a logged response type.
#ifndef VHOST_USER_GPU_COMMAND_UTIL_H_
#define VHOST_USER_GPU_COMMAND_UTIL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/virtio/chain_cursor.h"
#include "common/virtio/descriptor_chain.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {

// The answer's header: its type, and for a fenced request the fence and the timeline it is on.
CtrlHdr ResponseHeader(const CtrlHdr& request, uint32_t type);

// The request's whole fixed part (header included); false if the chain holds less.
template <typename T>
bool ReadRequest(const DescriptorChain& chain, T* out) {
  ChainReader reader(chain);
  return reader.Read(out);
}

// Logs why a request fails (rate-limited: the guest decides how often) and returns `response`.
uint32_t Refuse(uint32_t response, const absl::Status& why);
uint32_t ShortRequest(const CtrlHdr& hdr);

// An error status as a response, by its code (see resource_table.h):
//   NotFound, AlreadyExists -> ERR_INVALID_RESOURCE_ID   InvalidArgument -> ERR_INVALID_PARAMETER
//   ResourceExhausted       -> ERR_OUT_OF_MEMORY         anything else   -> ERR_UNSPEC
uint32_t FromTable(const absl::Status& status);

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_COMMAND_UTIL_H_
