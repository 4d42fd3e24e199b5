// GpuDevice's 3D half (VIRTIO_GPU_F_VIRGL): see gpu_device.h. Everything the guest sends is
// checked here before the renderer sees it: context and resource ids, caps, the backing's
// place in guest memory, rects against the resource, the command stream's length.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "vhost-user-gpu/command_util.h"
#include "vhost-user-gpu/gpu_device.h"
#include "vhost-user-gpu/pixel_format.h"

namespace vhost::gpu {
namespace {

// Gallium's texture targets (RESOURCE_CREATE_3D's `target`).
constexpr uint32_t kTargetBuffer = 0;
constexpr uint32_t kTargetCubeArray = 8;
// The largest texture side a guest may ask for (GL's usual maximum); a buffer's width is bytes.
constexpr uint32_t kMaxTextureSide = 16384;
// The largest command stream one SUBMIT_3D may carry. Mesa's virgl driver flushes at 256 KiB.
constexpr uint32_t kMaxSubmitBytes = 4u << 20;
// How long a stopping queue gives the renderer to signal the fences it waits for.
constexpr int kFenceDrainMs = 2000;

absl::Status NoContext(uint32_t ctx_id) {
  return absl::NotFoundError(absl::StrCat("context ", ctx_id));
}

absl::Status NoResource(uint32_t id) { return absl::NotFoundError(absl::StrCat("resource ", id)); }

// The host memory a 3D resource may take, counted against the caps: 4 bytes a texel (the
// formats guests render and scan out; wider ones take more, which the cap on the count and
// the renderer's own limits bound), a third more for mip levels, times the samples. A buffer
// takes its width in bytes. ResourceExhausted for a size beyond any sense.
absl::StatusOr<uint64_t> EstimateBytes(const ResourceCreate3d& r) {
  if (r.target > kTargetCubeArray) {
    return absl::InvalidArgumentError(absl::StrCat("texture target ", r.target));
  }
  if (r.width == 0 || r.height == 0 || r.depth == 0 || r.array_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("a ", r.width, "x", r.height, "x", r.depth,
                                                   " resource of ", r.array_size, " layers"));
  }
  if (r.target == kTargetBuffer) {
    if (r.height != 1 || r.depth != 1 || r.array_size != 1) {
      return absl::InvalidArgumentError("a buffer is one row");
    }
    return uint64_t{r.width};
  }
  if (r.width > kMaxTextureSide || r.height > kMaxTextureSide || r.depth > kMaxTextureSide ||
      r.array_size > kMaxTextureSide || r.last_level > 31 || r.nr_samples > 32) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a ", r.width, "x", r.height, "x", r.depth, "x", r.array_size, " texture"));
  }
  // Each factor is at most 2^14 (samples 2^5, 4 bytes): the product fits in 64 bits.
  uint64_t bytes = uint64_t{r.width} * r.height * r.depth * r.array_size * 4 *
                   std::max<uint32_t>(r.nr_samples, 1);
  if (r.last_level > 0) bytes += bytes / 3;
  return bytes;
}

}  // namespace

absl::Status GpuDevice::QueueStarted(QueueContext& context) {
  if (renderer_ == nullptr || context.index() != kControlQueue) return absl::OkStatus();
  const int fd = renderer_->PollFd();
  return fd >= 0 ? context.Watch(fd) : absl::OkStatus();
}

void GpuDevice::QueueStopped(QueueContext& context) {
  if (renderer_ == nullptr || context.index() != kControlQueue) return;
  // The guest is owed these answers; give the renderer a moment to finish the work first.
  const int fd = renderer_->PollFd();
  for (int waited = 0;; waited += 10) {
    AnswerFenced(context, /*all=*/false);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (fenced_.empty() || waited >= kFenceDrainMs) break;
    }
    if (fd >= 0) {
      pollfd p{fd, POLLIN, 0};
      poll(&p, 1, 10);
    } else {
      usleep(10 * 1000);
    }
  }
  AnswerFenced(context, /*all=*/true);
}

void GpuDevice::AnswerFenced(QueueContext& context, bool all) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t signalled = renderer_->Poll();
  while (!fenced_.empty()) {
    const FencedAnswer& answer = fenced_.front();
    // Fences are numbered in order; wrap-around is compared as a difference.
    const bool done = static_cast<int32_t>(signalled - answer.fence) >= 0;
    if (!done && !all) break;
    context.Complete(answer.token, answer.written);
    fenced_.pop_front();
  }
}

absl::optional<uint32_t> GpuDevice::Control3d(const CtrlHdr& hdr, const DescriptorChain& chain,
                                              const std::shared_ptr<const GuestMemory>& memory) {
  switch (hdr.type) {
    case kCmdCtxCreate: {
      CtxCreate request;
      return ReadRequest(chain, &request) ? CreateContext(request) : ShortRequest(hdr);
    }
    case kCmdCtxDestroy:
      if (contexts_.erase(hdr.ctx_id) == 0) {
        return Refuse(kRespErrInvalidContextId, NoContext(hdr.ctx_id));
      }
      renderer_->DestroyContext(hdr.ctx_id);
      return kRespOkNodata;
    case kCmdCtxAttachResource:
    case kCmdCtxDetachResource: {
      CtxResource request;
      if (!ReadRequest(chain, &request)) return ShortRequest(hdr);
      if (contexts_.count(hdr.ctx_id) == 0) {
        return Refuse(kRespErrInvalidContextId, NoContext(hdr.ctx_id));
      }
      if (resources_3d_.count(request.resource_id) == 0) {
        return FromTable(NoResource(request.resource_id));
      }
      if (hdr.type == kCmdCtxAttachResource) {
        renderer_->AttachResource(hdr.ctx_id, request.resource_id);
      } else {
        renderer_->DetachResource(hdr.ctx_id, request.resource_id);
      }
      return kRespOkNodata;
    }
    case kCmdResourceCreate3d: {
      ResourceCreate3d request;
      return ReadRequest(chain, &request) ? CreateResource3d(request) : ShortRequest(hdr);
    }
    case kCmdTransferToHost3d:
    case kCmdTransferFromHost3d: {
      Transfer3d request;
      return ReadRequest(chain, &request) ? Transfer3dCommand(hdr, request) : ShortRequest(hdr);
    }
    case kCmdSubmit3d:
      return Submit3d(hdr, chain);
    default:
      break;
  }
  // The commands both halves know go where the resource is; a short one is the 2D half's.
  switch (hdr.type) {
    case kCmdResourceUnref:
    case kCmdResourceDetachBacking: {
      ResourceUnref request;
      if (!ReadRequest(chain, &request)) return absl::nullopt;
      auto it = resources_3d_.find(request.resource_id);
      if (it == resources_3d_.end()) return absl::nullopt;
      if (hdr.type == kCmdResourceUnref) {
        Unref3d(request.resource_id);
        return kRespOkNodata;
      }
      if (it->second.backing_memory == nullptr) {
        return FromTable(absl::FailedPreconditionError(
            absl::StrCat("resource ", request.resource_id, " has no backing")));
      }
      renderer_->DetachBacking(request.resource_id);
      it->second.backing_memory.reset();
      return kRespOkNodata;
    }
    case kCmdResourceAttachBacking: {
      ResourceAttachBacking request;
      if (!ReadRequest(chain, &request) || resources_3d_.count(request.resource_id) == 0) {
        return absl::nullopt;
      }
      return AttachBacking3d(hdr, chain, memory);
    }
    case kCmdSetScanout: {
      SetScanout request;
      if (!ReadRequest(chain, &request) || resources_3d_.count(request.resource_id) == 0) {
        return absl::nullopt;
      }
      return SetScanout3d(request);
    }
    case kCmdResourceFlush: {
      ResourceFlush request;
      if (!ReadRequest(chain, &request) || resources_3d_.count(request.resource_id) == 0) {
        return absl::nullopt;
      }
      return Flush3d(request);
    }
    case kCmdTransferToHost2d: {
      TransferToHost2d request;
      if (!ReadRequest(chain, &request) || resources_3d_.count(request.resource_id) == 0) {
        return absl::nullopt;
      }
      return FromTable(absl::InvalidArgumentError(
          absl::StrCat("TRANSFER_TO_HOST_2D of the 3D resource ", request.resource_id)));
    }
    default:
      return absl::nullopt;
  }
}

uint32_t GpuDevice::CapsetInfo(const CtrlHdr& hdr, const DescriptorChain& chain,
                               ChainWriter& writer) {
  GetCapsetInfo request;
  uint32_t type = kRespOkCapsetInfo;
  const std::vector<Renderer3d::Capset> capsets = renderer_->Capsets();
  if (!ReadRequest(chain, &request)) {
    type = ShortRequest(hdr);
  } else if (request.capset_index >= capsets.size()) {
    type = Refuse(kRespErrInvalidParameter,
                  absl::OutOfRangeError(
                      absl::StrCat("capset index ", request.capset_index, " of ", capsets.size())));
  }
  if (type != kRespOkCapsetInfo) {
    writer.Write(ResponseHeader(hdr, type));
    return type;
  }
  const Renderer3d::Capset& capset = capsets[request.capset_index];
  RespCapsetInfo response{};
  response.hdr = ResponseHeader(hdr, type);
  response.capset_id = capset.id;
  response.capset_max_version = capset.max_version;
  response.capset_max_size = capset.max_size;
  writer.Write(response);
  return type;
}

uint32_t GpuDevice::Capset(const CtrlHdr& hdr, const DescriptorChain& chain, ChainWriter& writer) {
  GetCapset request;
  if (!ReadRequest(chain, &request)) {
    writer.Write(ResponseHeader(hdr, ShortRequest(hdr)));
    return kRespErrUnspec;
  }
  const std::vector<Renderer3d::Capset> capsets = renderer_->Capsets();
  auto capset = std::find_if(capsets.begin(), capsets.end(), [&](const Renderer3d::Capset& c) {
    return c.id == request.capset_id;
  });
  uint32_t type = kRespOkCapset;
  absl::StatusOr<std::vector<uint8_t>> data = std::vector<uint8_t>();
  if (capset == capsets.end() || request.capset_version > capset->max_version) {
    type = Refuse(kRespErrInvalidParameter,
                  absl::NotFoundError(absl::StrCat("capset ", request.capset_id, " version ",
                                                   request.capset_version)));
  } else if (writer.remaining() < sizeof(CtrlHdr) + uint64_t{capset->max_size}) {
    type = Refuse(kRespErrUnspec, absl::InvalidArgumentError(absl::StrCat(
                                      "GET_CAPSET with a ", writer.remaining(),
                                      "-byte response buffer for ", capset->max_size, " bytes")));
  } else if (data = renderer_->CapsetData(request.capset_id, request.capset_version); !data.ok()) {
    type = Refuse(kRespErrUnspec, data.status());
  }
  writer.Write(ResponseHeader(hdr, type));
  if (type == kRespOkCapset) {
    // The renderer's data, at most the size announced (the room was checked for that).
    data->resize(std::min<size_t>(data->size(), capset->max_size));
    writer.WriteBytes(*data);
  }
  return type;
}

uint32_t GpuDevice::CreateContext(const CtxCreate& request) {
  const uint32_t id = request.hdr.ctx_id;
  if (id == 0 || contexts_.count(id) != 0) {
    return Refuse(kRespErrInvalidContextId,
                  absl::AlreadyExistsError(absl::StrCat("context ", id, " (0 or in use)")));
  }
  if (request.nlen > sizeof(request.debug_name)) {
    return Refuse(kRespErrInvalidParameter,
                  absl::InvalidArgumentError(absl::StrCat("a ", request.nlen, "-byte name")));
  }
  if (contexts_.size() >= max_contexts_) {
    return Refuse(kRespErrOutOfMemory, absl::ResourceExhaustedError(absl::StrCat(
                                           "already ", contexts_.size(), " contexts (the most)")));
  }
  const absl::Status status =
      renderer_->CreateContext(id, absl::string_view(request.debug_name, request.nlen));
  if (!status.ok()) return Refuse(kRespErrUnspec, status);
  contexts_.insert(id);
  return kRespOkNodata;
}

uint32_t GpuDevice::CreateResource3d(const ResourceCreate3d& request) {
  const uint32_t id = request.resource_id;
  if (id == 0 || resources_3d_.count(id) != 0 || resources_.Find(id) != nullptr) {
    return FromTable(absl::AlreadyExistsError(absl::StrCat("resource ", id, " (0 or in use)")));
  }
  absl::StatusOr<uint64_t> bytes = EstimateBytes(request);
  if (!bytes.ok()) return FromTable(bytes.status());
  const ResourceTable::Limits& limits = resources_.limits();
  if (resources_3d_.size() >= limits.max_resources) {
    return FromTable(absl::ResourceExhaustedError(
        absl::StrCat("already ", resources_3d_.size(), " 3D resources (the most)")));
  }
  if (*bytes > limits.max_host_bytes - host_bytes_3d_) {
    return FromTable(absl::ResourceExhaustedError(
        absl::StrCat("a 3D resource of ", *bytes, " bytes beyond the ", limits.max_host_bytes,
                     " bytes of all (", host_bytes_3d_, " used)")));
  }
  const absl::Status status = renderer_->CreateResource(request);
  if (!status.ok()) return FromTable(status);
  Resource3d& r = resources_3d_[id];
  r.width = request.width;
  r.height = request.height;
  r.host_bytes = *bytes;
  host_bytes_3d_ += *bytes;
  return kRespOkNodata;
}

void GpuDevice::Unref3d(uint32_t resource_id) {
  auto it = resources_3d_.find(resource_id);
  if (it == resources_3d_.end()) return;
  for (uint32_t id = 0; id < outputs_; ++id) {
    if (scanouts_[id].resource_id == resource_id) DisableScanout(id);
  }
  renderer_->UnrefResource(resource_id);
  host_bytes_3d_ -= it->second.host_bytes;
  resources_3d_.erase(it);
}

uint32_t GpuDevice::AttachBacking3d(const CtrlHdr& hdr, const DescriptorChain& chain,
                                    const std::shared_ptr<const GuestMemory>& memory) {
  ChainReader reader(chain);
  ResourceAttachBacking request;
  reader.Read(&request);  // the caller read it
  Resource3d& resource = resources_3d_[request.resource_id];
  if (resource.backing_memory != nullptr) {
    return FromTable(absl::FailedPreconditionError(
        absl::StrCat("resource ", request.resource_id, " already has backing")));
  }
  const ResourceTable::Limits& limits = resources_.limits();
  // As the 2D half answers: none is a bad parameter, too many a cap.
  if (request.nr_entries == 0)
    return FromTable(absl::InvalidArgumentError("a backing of no entries"));
  if (request.nr_entries > limits.max_backing_entries) {
    return FromTable(absl::ResourceExhaustedError(absl::StrCat(
        request.nr_entries, " backing entries (at most ", limits.max_backing_entries, ")")));
  }
  if (reader.remaining() < uint64_t{request.nr_entries} * sizeof(MemEntry)) {
    return ShortRequest(hdr);
  }
  IovecList segments;
  uint64_t total = 0;
  for (uint32_t i = 0; i < request.nr_entries; ++i) {
    MemEntry entry;
    reader.Read(&entry);    // fits: checked above
    total += entry.length;  // at most 2^14 entries of < 2^32 bytes: no overflow
    if (entry.length == 0) continue;
    // Each entry may span adjacent regions; the whole list stays within the entry cap twice.
    if (!memory->AppendSegments(entry.addr, entry.length, 2 * limits.max_backing_entries,
                                &segments)) {
      return FromTable(absl::InvalidArgumentError(absl::StrCat(
          "backing entry 0x", absl::Hex(entry.addr), "+", entry.length, " not in guest memory")));
    }
  }
  if (total > limits.max_backing_bytes) {
    return FromTable(absl::ResourceExhaustedError(
        absl::StrCat("a backing of ", total, " bytes (at most ", limits.max_backing_bytes, ")")));
  }
  const absl::Status status = renderer_->AttachBacking(
      request.resource_id, std::vector<iovec>(segments.begin(), segments.end()));
  if (!status.ok()) return FromTable(status);
  resource.backing_memory = memory;
  return kRespOkNodata;
}

uint32_t GpuDevice::Transfer3dCommand(const CtrlHdr& hdr, const Transfer3d& request) {
  // Context 0 is the renderer's own (Linux uses it for resources no context holds).
  if (hdr.ctx_id != 0 && contexts_.count(hdr.ctx_id) == 0) {
    return Refuse(kRespErrInvalidContextId, NoContext(hdr.ctx_id));
  }
  auto it = resources_3d_.find(request.resource_id);
  if (it == resources_3d_.end()) return FromTable(NoResource(request.resource_id));
  if (hdr.type == kCmdTransferFromHost3d && it->second.backing_memory == nullptr) {
    return FromTable(absl::FailedPreconditionError(absl::StrCat(
        "TRANSFER_FROM_HOST_3D into resource ", request.resource_id, " without backing")));
  }
  Transfer3d transfer = request;
  transfer.hdr.ctx_id = hdr.ctx_id;
  const absl::Status status = hdr.type == kCmdTransferToHost3d
                                  ? renderer_->TransferToHost(transfer)
                                  : renderer_->TransferFromHost(transfer);
  return FromTable(status);
}

uint32_t GpuDevice::Submit3d(const CtrlHdr& hdr, const DescriptorChain& chain) {
  ChainReader reader(chain);
  CmdSubmit request;
  if (!reader.Read(&request)) return ShortRequest(hdr);
  if (contexts_.count(hdr.ctx_id) == 0) {
    return Refuse(kRespErrInvalidContextId, NoContext(hdr.ctx_id));
  }
  if (request.size % 4 != 0 || request.size > kMaxSubmitBytes ||
      reader.remaining() < request.size) {
    return Refuse(kRespErrInvalidParameter,
                  absl::InvalidArgumentError(absl::StrCat(
                      "a ", request.size, "-byte command stream (whole words, at most ",
                      kMaxSubmitBytes, ", ", reader.remaining(), " in the request)")));
  }
  // Copied out first: the guest may rewrite its buffer while the renderer parses it.
  std::vector<uint8_t> commands(request.size);
  reader.ReadBytes(commands.data(), commands.size());
  const absl::Status status = renderer_->Submit(hdr.ctx_id, commands);
  if (!status.ok()) return Refuse(kRespErrInvalidParameter, status);
  return kRespOkNodata;
}

uint32_t GpuDevice::SetScanout3d(const SetScanout& request) {
  const uint32_t id = request.scanout_id;
  if (id >= outputs_) {
    return Refuse(kRespErrInvalidScanoutId,
                  absl::OutOfRangeError(absl::StrCat("scanout ", id, " of ", outputs_)));
  }
  const Resource3d& resource = resources_3d_[request.resource_id];
  absl::StatusOr<Renderer3d::ResourceInfo> info = renderer_->Info(request.resource_id);
  if (!info.ok()) return FromTable(info.status());
  if (!IsSupportedFormat(info->format)) {
    return FromTable(absl::InvalidArgumentError(
        absl::StrCat("scanout of resource ", request.resource_id, " in format ", info->format)));
  }
  const GpuRect& r = request.r;
  if (r.width == 0 || r.height == 0) {
    return FromTable(absl::InvalidArgumentError("an empty scanout rect"));
  }
  // A buffer's width is bytes and is capped only by the memory cap: shown, its read-back and
  // frame would take four times that each. A scanout is at most a texture's side each way.
  if (r.width > kMaxTextureSide || r.height > kMaxTextureSide) {
    return FromTable(absl::InvalidArgumentError(absl::StrCat(
        "a ", r.width, "x", r.height, " scanout (at most ", kMaxTextureSide, " each way)")));
  }
  const absl::Status inside =
      CheckRectInside("scanout rect", r, resource.width, resource.height, request.resource_id);
  if (!inside.ok()) return FromTable(inside);
  scanouts_[id].resource_id = request.resource_id;
  scanouts_[id].rect = r;
  SetScanoutSize(id, r.width, r.height);
  return kRespOkNodata;
}

uint32_t GpuDevice::Flush3d(const ResourceFlush& request) {
  const Resource3d& resource = resources_3d_[request.resource_id];
  const absl::Status inside = CheckRectInside("flush rect", request.r, resource.width,
                                              resource.height, request.resource_id);
  if (!inside.ok()) return FromTable(inside);
  for (uint32_t id = 0; id < outputs_; ++id) {
    if (scanouts_[id].resource_id != request.resource_id) continue;
    if (absl::optional<GpuRect> part = Intersect(request.r, scanouts_[id].rect)) {
      const uint32_t type = ShowRect3d(id, request.resource_id, *part);
      if (type != kRespOkNodata) return type;
    }
  }
  return kRespOkNodata;
}

uint32_t GpuDevice::ShowRect3d(uint32_t id, uint32_t resource_id, const GpuRect& rect) {
  // Nothing to show it on: no read-back (a new display end is shown everything when it comes).
  if (sink_ == nullptr) return kRespOkNodata;
  absl::StatusOr<Renderer3d::ResourceInfo> info = renderer_->Info(resource_id);
  if (!info.ok()) return FromTable(info.status());
  const size_t row_bytes = size_t{rect.width} * kBytesPerPixel;
  readback_.resize(row_bytes * rect.height);
  const absl::Status status = renderer_->ReadPixels(resource_id, rect, absl::MakeSpan(readback_));
  if (!status.ok()) return FromTable(status);
  ShowPixels(id, info->format, readback_.data(), row_bytes, rect);
  return kRespOkNodata;
}

uint32_t GpuDevice::ReadCursor3d(uint32_t resource_id, uint32_t* format) {
  const Resource3d& resource = resources_3d_[resource_id];
  if (resource.width != kCursorSize || resource.height != kCursorSize) {
    return FromTable(absl::InvalidArgumentError(absl::StrCat(
        "a ", resource.width, "x", resource.height, " cursor (", kCursorSize, " square only)")));
  }
  absl::StatusOr<Renderer3d::ResourceInfo> info = renderer_->Info(resource_id);
  if (!info.ok()) return FromTable(info.status());
  if (!IsSupportedFormat(info->format)) {
    return FromTable(absl::InvalidArgumentError(absl::StrCat("a cursor in format ", info->format)));
  }
  readback_.resize(size_t{kCursorSize} * kCursorSize * kBytesPerPixel);
  const absl::Status status = renderer_->ReadPixels(
      resource_id, GpuRect{0, 0, kCursorSize, kCursorSize}, absl::MakeSpan(readback_));
  if (!status.ok()) return FromTable(status);
  *format = info->format;
  return kRespOkNodata;
}

void GpuDevice::Reset3d() {
  if (renderer_ == nullptr) return;
  renderer_->Reset();
  contexts_.clear();
  resources_3d_.clear();
  host_bytes_3d_ = 0;
  readback_.clear();
  readback_.shrink_to_fit();
}

}  // namespace vhost::gpu
