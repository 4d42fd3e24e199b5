#include "vhost-user-gpu/gpu_device.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/virtio/chain_cursor.h"
#include "common/virtio/features.h"
#include "glog/logging.h"
#include "vhost-user-gpu/command_util.h"
#include "vhost-user-gpu/edid.h"
#include "vhost-user-gpu/pixel_format.h"

namespace vhost::gpu {
namespace {

// Bytes the control queue's answer to `type` takes when it succeeds.
size_t ResponseSize(uint32_t type) {
  switch (type) {
    case kCmdGetDisplayInfo:
      return sizeof(RespDisplayInfo);
    case kCmdGetEdid:
      return sizeof(RespEdid);
    case kCmdGetCapsetInfo:
      return sizeof(RespCapsetInfo);
    default:
      return sizeof(CtrlHdr);
  }
}

// 3D commands that name a rendering context (hdr.ctx_id): none exists on a 2D device.
bool NamesContext(uint32_t type) {
  switch (type) {
    case kCmdCtxDestroy:
    case kCmdCtxAttachResource:
    case kCmdCtxDetachResource:
    case kCmdTransferToHost3d:
    case kCmdTransferFromHost3d:
    case kCmdSubmit3d:
      return true;
    default:
      return false;
  }
}

absl::Status InvalidScanout(uint32_t id, uint32_t outputs) {
  return absl::OutOfRangeError(absl::StrCat("scanout ", id, " of ", outputs));
}

}  // namespace

absl::StatusOr<std::unique_ptr<GpuDevice>> GpuDevice::Create(const GpuOptions& options,
                                                             DisplaySink* sink) {
  if (options.outputs < 1 || options.outputs > kMaxScanouts) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.outputs, " outputs (1 to ", kMaxScanouts, ")"));
  }
  // The default size is what the EDID falls back on: it must fit one.
  absl::StatusOr<EdidBlock> edid = MakeEdid(options.width, options.height, options.monitor_name);
  if (!edid.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("default resolution: ", edid.status().message()));
  }
  return std::unique_ptr<GpuDevice>(new GpuDevice(options, sink));
}

GpuDevice::GpuDevice(const GpuOptions& options, DisplaySink* sink)
    : outputs_(options.outputs),
      default_width_(options.width),
      default_height_(options.height),
      monitor_name_(options.monitor_name),
      sink_(sink),
      resources_(options.limits),
      scanouts_(outputs_),
      cursors_(outputs_),
      preferred_(outputs_, Preferred{true, default_width_, default_height_}),
      renderer_(options.renderer),
      max_contexts_(options.max_contexts) {}

DeviceInfo GpuDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdGpu;
  info.num_queues = 2;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1) | Bit(kFeatureEdid);
  if (renderer_ != nullptr) info.features |= Bit(kFeatureVirgl);
  info.config_size = sizeof(GpuConfig);
  return info;
}

absl::Status GpuDevice::SetFeatures(uint64_t features) {
  std::lock_guard<std::mutex> lock(mu_);
  features_ = features;
  return absl::OkStatus();
}

absl::Status GpuDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  std::lock_guard<std::mutex> lock(mu_);
  GpuConfig config{};
  config.events_read = events_read_;
  config.events_clear = 0;
  config.num_scanouts = outputs_;
  config.num_capsets =
      renderer_ != nullptr ? static_cast<uint32_t>(renderer_->Capsets().size()) : 0;
  return ReadConfigBytes(config, offset, data);
}

absl::Status GpuDevice::WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) {
  constexpr uint32_t kClear = offsetof(GpuConfig, events_clear);
  constexpr uint32_t kClearEnd = kClear + sizeof(uint32_t);
  if (offset < kClear || offset > kClearEnd || data.size() > kClearEnd - offset) {
    return absl::PermissionDeniedError(
        absl::StrCat("config bytes ", offset, "+", data.size(), ": only events_clear is written"));
  }
  // Write-to-clear: the bytes written, in place within the field.
  uint32_t clear = 0;
  if (!data.empty()) {
    std::memcpy(reinterpret_cast<uint8_t*>(&clear) + (offset - kClear), data.data(), data.size());
  }
  std::lock_guard<std::mutex> lock(mu_);
  events_read_ &= ~clear;
  return absl::OkStatus();
}

absl::Status GpuDevice::SetDisplaySocket(UniqueFd socket) {
  if (!display_socket_handler_) return VirtioDevice::SetDisplaySocket(std::move(socket));
  return display_socket_handler_(std::move(socket));
}

QueueResult GpuDevice::ProcessQueue(QueueContext& context) {
  const int index = context.index();
  if (index != kControlQueue && index != kCursorQueue) return QueueResult::Blocked();
  const bool fences = renderer_ != nullptr && index == kControlQueue;
  const std::shared_ptr<const GuestMemory> memory = context.queue().shared_memory();
  while (absl::optional<ChainToken> token = context.Take()) {
    const Served served = Serve(context.chain(*token), memory, index == kCursorQueue);
    if (!served.wait_for_fence) {
      context.Complete(*token, served.written);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    const uint32_t fence = ++last_fence_;
    const absl::Status status = renderer_->CreateFence(fence);
    if (!status.ok()) {
      LOG_EVERY_N(WARNING, 100) << "virtio-gpu: fence: " << status;
      context.Complete(*token, served.written);  // answered now: nothing will signal it
      continue;
    }
    fenced_.push_back(FencedAnswer{*token, served.written, fence});
  }
  if (fences) {
    // Once per pass, after the new commands: what their fences and earlier ones signalled.
    AnswerFenced(context, /*all=*/false);
    std::lock_guard<std::mutex> lock(mu_);
    // Without a descriptor to wait on, the renderer is asked again shortly while fences wait.
    if (!fenced_.empty() && renderer_->PollFd() < 0) {
      return QueueResult::RetryAfter(absl::Milliseconds(1));
    }
  }
  return QueueResult::Drained();
}

GpuDevice::Served GpuDevice::Serve(const DescriptorChain& chain,
                                   const std::shared_ptr<const GuestMemory>& memory,
                                   bool cursor_queue) {
  Served served;
  ChainWriter writer(chain);
  CtrlHdr hdr{};
  if (!ReadRequest(chain, &hdr)) {
    Refuse(kRespErrUnspec,
           absl::InvalidArgumentError(
               absl::StrCat("a ", chain.readable_bytes, "-byte request, shorter than a header")));
    writer.Write(ResponseHeader(CtrlHdr{}, kRespErrUnspec));
    served.written = writer.bytes_written();
    return served;
  }
  // Linux's driver gives cursor commands no response buffer: they answer when there is room.
  // A control command runs only if its answer fits, so that none succeeds unannounced.
  if (!cursor_queue && writer.remaining() < ResponseSize(hdr.type)) {
    Refuse(kRespErrUnspec,
           absl::InvalidArgumentError(absl::StrCat(CtrlTypeName(hdr.type), " with a ",
                                                   writer.remaining(), "-byte response buffer")));
    writer.Write(ResponseHeader(hdr, kRespErrUnspec));
    served.written = writer.bytes_written();
    return served;
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (replay_pending_) ReplayToSink();
  if (cursor_queue) {
    writer.Write(ResponseHeader(hdr, CursorCommand(hdr, chain)));
    served.written = writer.bytes_written();
    return served;
  }
  const uint32_t type = ServeControl(hdr, chain, memory, writer);
  served.written = writer.bytes_written();
  // A fenced 3D device answers a command that succeeded (RESP_OK_*) once the work before it
  // is done.
  served.wait_for_fence = renderer_ != nullptr && (hdr.flags & kFlagFence) != 0 &&
                          type >= kRespOkNodata && type < kRespErrUnspec;
  return served;
}

uint32_t GpuDevice::ServeControl(const CtrlHdr& hdr, const DescriptorChain& chain,
                                 const std::shared_ptr<const GuestMemory>& memory,
                                 ChainWriter& writer) {
  if (hdr.type == kCmdGetDisplayInfo) {
    RespDisplayInfo response{};
    FillDisplayInfo(&response);
    response.hdr = ResponseHeader(hdr, kRespOkDisplayInfo);
    writer.Write(response);
    return kRespOkDisplayInfo;
  }
  if (renderer_ != nullptr && hdr.type == kCmdGetCapsetInfo) return CapsetInfo(hdr, chain, writer);
  if (renderer_ != nullptr && hdr.type == kCmdGetCapset) return Capset(hdr, chain, writer);
  if (hdr.type == kCmdGetEdid) {
    GetEdid request;
    RespEdid response{};
    const uint32_t type =
        ReadRequest(chain, &request) ? FillEdid(request, &response) : ShortRequest(hdr);
    if (type == kRespOkEdid) {
      response.hdr = ResponseHeader(hdr, type);
      writer.Write(response);
    } else {
      writer.Write(ResponseHeader(hdr, type));
    }
    return type;
  }
  const uint32_t type = Control(hdr, chain, memory);
  writer.Write(ResponseHeader(hdr, type));
  return type;
}

uint32_t GpuDevice::Control(const CtrlHdr& hdr, const DescriptorChain& chain,
                            const std::shared_ptr<const GuestMemory>& memory) {
  if (renderer_ != nullptr) {
    if (absl::optional<uint32_t> type = Control3d(hdr, chain, memory)) return *type;
  }
  switch (hdr.type) {
    case kCmdResourceCreate2d: {
      ResourceCreate2d request;
      return ReadRequest(chain, &request) ? CreateResource(request) : ShortRequest(hdr);
    }
    case kCmdResourceUnref: {
      ResourceUnref request;
      return ReadRequest(chain, &request) ? UnrefResource(request) : ShortRequest(hdr);
    }
    case kCmdResourceAttachBacking:
      return AttachBacking(hdr, chain, *memory);
    case kCmdResourceDetachBacking: {
      ResourceDetachBacking request;
      if (!ReadRequest(chain, &request)) return ShortRequest(hdr);
      return FromTable(resources_.DetachBacking(request.resource_id));
    }
    case kCmdSetScanout: {
      SetScanout request;
      return ReadRequest(chain, &request) ? SetScanoutCommand(request) : ShortRequest(hdr);
    }
    case kCmdResourceFlush: {
      ResourceFlush request;
      return ReadRequest(chain, &request) ? Flush(request) : ShortRequest(hdr);
    }
    case kCmdTransferToHost2d: {
      TransferToHost2d request;
      if (!ReadRequest(chain, &request)) return ShortRequest(hdr);
      return FromTable(
          resources_.TransferToHost(request.resource_id, request.r, request.offset, *memory));
    }
    default:
      break;
  }
  if (NamesContext(hdr.type)) {
    return Refuse(kRespErrInvalidContextId,
                  absl::NotFoundError(absl::StrCat(CtrlTypeName(hdr.type), " of context ",
                                                   hdr.ctx_id, ": a 2D device has none")));
  }
  return Refuse(kRespErrUnspec, absl::UnimplementedError(absl::StrCat(
                                    "command 0x", absl::Hex(hdr.type), " (", CtrlTypeName(hdr.type),
                                    ") on the control queue")));
}

uint32_t GpuDevice::CreateResource(const ResourceCreate2d& request) {
  // An id is one half's or the other's: the commands both know are routed by it.
  if (resources_3d_.count(request.resource_id) != 0) {
    return FromTable(absl::AlreadyExistsError(
        absl::StrCat("resource ", request.resource_id, " (a 3D resource's id)")));
  }
  return FromTable(
      resources_.Create(request.resource_id, request.format, request.width, request.height));
}

uint32_t GpuDevice::UnrefResource(const ResourceUnref& request) {
  if (resources_.Find(request.resource_id) == nullptr) {
    return FromTable(absl::NotFoundError(absl::StrCat("resource ", request.resource_id)));
  }
  // A scanout never shows a resource that is gone.
  for (uint32_t id = 0; id < outputs_; ++id) {
    if (scanouts_[id].resource_id == request.resource_id) DisableScanout(id);
  }
  return FromTable(resources_.Unref(request.resource_id));
}

uint32_t GpuDevice::AttachBacking(const CtrlHdr& hdr, const DescriptorChain& chain,
                                  const GuestMemory& memory) {
  ChainReader reader(chain);
  ResourceAttachBacking request;
  if (!reader.Read(&request)) return ShortRequest(hdr);
  if (resources_.Find(request.resource_id) == nullptr) {
    return FromTable(absl::NotFoundError(absl::StrCat("resource ", request.resource_id)));
  }
  // Bounded before anything is allocated for the entries.
  if (request.nr_entries > resources_.limits().max_backing_entries) {
    return FromTable(
        absl::ResourceExhaustedError(absl::StrCat(request.nr_entries, " backing entries (at most ",
                                                  resources_.limits().max_backing_entries, ")")));
  }
  if (reader.remaining() < uint64_t{request.nr_entries} * sizeof(MemEntry)) {
    return ShortRequest(hdr);
  }
  std::vector<BackingEntry> entries(request.nr_entries);
  for (BackingEntry& entry : entries) {
    MemEntry wire;
    reader.Read(&wire);  // fits: checked above
    entry.addr = wire.addr;
    entry.length = wire.length;
  }
  return FromTable(resources_.AttachBacking(request.resource_id, entries, memory));
}

uint32_t GpuDevice::SetScanoutCommand(const SetScanout& request) {
  const uint32_t id = request.scanout_id;
  if (id >= outputs_) return Refuse(kRespErrInvalidScanoutId, InvalidScanout(id, outputs_));
  if (request.resource_id == 0) {
    DisableScanout(id);
    return kRespOkNodata;
  }
  const Resource2d* resource = resources_.Find(request.resource_id);
  if (resource == nullptr) {
    return FromTable(absl::NotFoundError(absl::StrCat("resource ", request.resource_id)));
  }
  const GpuRect& r = request.r;
  if (r.width == 0 || r.height == 0) {
    return FromTable(absl::InvalidArgumentError("an empty scanout rect"));
  }
  const absl::Status inside =
      CheckRectInside("scanout rect", r, resource->width, resource->height, request.resource_id);
  if (!inside.ok()) return FromTable(inside);
  scanouts_[id].resource_id = request.resource_id;
  scanouts_[id].rect = r;
  SetScanoutSize(id, r.width, r.height);
  return kRespOkNodata;
}

uint32_t GpuDevice::Flush(const ResourceFlush& request) {
  const Resource2d* resource = resources_.Find(request.resource_id);
  if (resource == nullptr) {
    return FromTable(absl::NotFoundError(absl::StrCat("resource ", request.resource_id)));
  }
  const absl::Status inside = CheckRectInside("flush rect", request.r, resource->width,
                                              resource->height, request.resource_id);
  if (!inside.ok()) return FromTable(inside);
  for (uint32_t id = 0; id < outputs_; ++id) {
    if (scanouts_[id].resource_id != request.resource_id) continue;
    if (absl::optional<GpuRect> part = Intersect(request.r, scanouts_[id].rect)) {
      ShowRect(id, *resource, *part);
    }
  }
  return kRespOkNodata;
}

void GpuDevice::ShowRect(uint32_t id, const Resource2d& resource, const GpuRect& rect) {
  const uint8_t* src =
      resource.pixels.data() + size_t{rect.y} * resource.stride() + size_t{rect.x} * kBytesPerPixel;
  ShowPixels(id, resource.format, src, resource.stride(), rect);
}

void GpuDevice::ShowPixels(uint32_t id, uint32_t format, const uint8_t* src, size_t src_stride,
                           const GpuRect& rect) {
  if (sink_ == nullptr) return;
  const Scanout& s = scanouts_[id];
  const size_t row_bytes = size_t{rect.width} * kBytesPerPixel;
  frame_.resize(row_bytes * rect.height);
  for (uint32_t row = 0; row < rect.height; ++row) {
    ConvertToXrgb(format, absl::MakeConstSpan(src + row * src_stride, row_bytes),
                  absl::MakeSpan(frame_.data() + row * row_bytes, row_bytes));
  }
  // The sink takes the rect in the scanout's coordinates.
  const Rect shown{rect.x - s.rect.x, rect.y - s.rect.y, rect.width, rect.height};
  SinkError(sink_->Update(id, shown, frame_, static_cast<uint32_t>(row_bytes)), "Update");
}

void GpuDevice::SetScanoutSize(uint32_t id, uint32_t width, uint32_t height) {
  Scanout& s = scanouts_[id];
  if (s.width == width && s.height == height) return;
  s.width = width;
  s.height = height;
  if (sink_ != nullptr) SinkError(sink_->Scanout(id, width, height), "Scanout");
}

void GpuDevice::DisableScanout(uint32_t id) {
  scanouts_[id].resource_id = 0;
  scanouts_[id].rect = GpuRect{};
  SetScanoutSize(id, 0, 0);
}

uint32_t GpuDevice::CursorCommand(const CtrlHdr& hdr, const DescriptorChain& chain) {
  if (hdr.type != kCmdUpdateCursor && hdr.type != kCmdMoveCursor) {
    return Refuse(kRespErrUnspec, absl::UnimplementedError(absl::StrCat(
                                      "command 0x", absl::Hex(hdr.type), " (",
                                      CtrlTypeName(hdr.type), ") on the cursor queue")));
  }
  UpdateCursor request;
  if (!ReadRequest(chain, &request)) return ShortRequest(hdr);
  if (hdr.type == kCmdUpdateCursor) return UpdateCursorCommand(request);
  const uint32_t id = request.pos.scanout_id;
  if (id >= outputs_) return Refuse(kRespErrInvalidScanoutId, InvalidScanout(id, outputs_));
  Cursor& c = cursors_[id];
  c.x = request.pos.x;
  c.y = request.pos.y;
  if (sink_ != nullptr) SinkError(sink_->CursorMove(id, c.x, c.y), "CursorMove");
  return kRespOkNodata;
}

uint32_t GpuDevice::UpdateCursorCommand(const UpdateCursor& request) {
  const uint32_t id = request.pos.scanout_id;
  if (id >= outputs_) return Refuse(kRespErrInvalidScanoutId, InvalidScanout(id, outputs_));
  Cursor& c = cursors_[id];
  if (request.resource_id == 0) {
    c.visible = false;
    c.argb.clear();
    c.x = request.pos.x;
    c.y = request.pos.y;
    if (sink_ != nullptr) SinkError(sink_->CursorHide(id), "CursorHide");
    return kRespOkNodata;
  }
  // The image: a 2D resource's host copy, or a 3D one's pixels read back from the renderer.
  uint32_t format = 0;
  absl::Span<const uint8_t> pixels;
  if (const Resource2d* resource = resources_.Find(request.resource_id)) {
    if (resource->width != kCursorSize || resource->height != kCursorSize) {
      return FromTable(absl::InvalidArgumentError(
          absl::StrCat("a ", resource->width, "x", resource->height, " cursor (", kCursorSize, "x",
                       kCursorSize, " only)")));
    }
    format = resource->format;
    pixels = resource->pixels;
  } else if (renderer_ != nullptr && resources_3d_.count(request.resource_id) != 0) {
    const uint32_t type = ReadCursor3d(request.resource_id, &format);
    if (type != kRespOkNodata) return type;
    pixels = readback_;
  } else {
    return FromTable(absl::NotFoundError(absl::StrCat("resource ", request.resource_id)));
  }
  c.argb.resize(size_t{kCursorSize} * kCursorSize);
  ConvertToArgb(format, pixels, absl::MakeSpan(c.argb));
  c.visible = true;
  c.x = request.pos.x;
  c.y = request.pos.y;
  // The hot spot lies in the image (a guest's value beyond it is not passed on).
  c.hot_x = std::min(request.hot_x, kCursorSize - 1);
  c.hot_y = std::min(request.hot_y, kCursorSize - 1);
  if (sink_ != nullptr) {
    SinkError(sink_->CursorUpdate(id, c.x, c.y, c.hot_x, c.hot_y, c.argb), "CursorUpdate");
  }
  return kRespOkNodata;
}

void GpuDevice::FillDisplayInfo(RespDisplayInfo* response) {
  std::vector<ScanoutInfo> shown;
  if (sink_ != nullptr) {
    absl::StatusOr<std::vector<ScanoutInfo>> info = sink_->DisplayInfo();
    if (info.ok()) {
      shown = *std::move(info);
    } else {
      SinkError(info.status(), "DisplayInfo");
    }
  }
  for (uint32_t id = 0; id < outputs_; ++id) {
    Preferred p{true, default_width_, default_height_};
    if (id < shown.size()) {
      p.enabled = shown[id].enabled;
      if (shown[id].width != 0 && shown[id].height != 0) {
        p.width = shown[id].width;
        p.height = shown[id].height;
      }
    }
    preferred_[id] = p;
    DisplayOne& mode = response->pmodes[id];
    mode.r = GpuRect{0, 0, p.width, p.height};
    mode.enabled = p.enabled ? 1 : 0;
    mode.flags = 0;
  }
}

uint32_t GpuDevice::FillEdid(const GetEdid& request, RespEdid* response) {
  if (!(features_ & Bit(kFeatureEdid))) {
    return Refuse(kRespErrUnspec,
                  absl::FailedPreconditionError("GET_EDID without VIRTIO_GPU_F_EDID"));
  }
  const uint32_t id = request.scanout;
  if (id >= outputs_) return Refuse(kRespErrInvalidScanoutId, InvalidScanout(id, outputs_));
  if (sink_ != nullptr) {
    absl::StatusOr<std::vector<uint8_t>> edid = sink_->Edid(id);
    if (edid.ok() && !edid->empty() && edid->size() <= kMaxEdidSize) {
      std::memcpy(response->edid, edid->data(), edid->size());
      response->size = static_cast<uint32_t>(edid->size());
      return kRespOkEdid;
    }
    if (edid.ok()) {
      SinkError(absl::OutOfRangeError(absl::StrCat("a ", edid->size(), "-byte EDID")), "Edid");
    }
  }
  // Our own, for the size GET_DISPLAY_INFO reported; the default size when that is beyond
  // what an EDID describes.
  const Preferred& p = preferred_[id];
  absl::StatusOr<EdidBlock> own = MakeEdid(p.width, p.height, monitor_name_);
  if (!own.ok()) own = MakeEdid(default_width_, default_height_, monitor_name_);
  if (!own.ok()) return Refuse(kRespErrUnspec, own.status());  // checked at Create
  std::memcpy(response->edid, own->data(), own->size());
  response->size = static_cast<uint32_t>(own->size());
  return kRespOkEdid;
}

void GpuDevice::SinkError(const absl::Status& status, const char* what) {
  // The guest's command still succeeded: a display end that failed is replaced by the
  // connection thread (SetSink), not reported to the guest.
  // Only a call the sink refused is news here: a display channel that breaks says why itself,
  // once, and fails every later call.
  if (absl::IsInvalidArgument(status)) {
    LOG_EVERY_N(WARNING, 100) << "display " << what << ": " << status;
  }
}

void GpuDevice::SetSink(DisplaySink* sink) {
  std::lock_guard<std::mutex> lock(mu_);
  sink_ = sink;
  // The new display end knows nothing yet; it is told on a queue's thread, before the next
  // command: this runs on the connection thread, in the middle of QEMU's start sequence, while
  // QEMU answers nothing on the display socket (a display channel's first call waits for its
  // handshake) until the daemon has answered it.
  replay_pending_ = sink_ != nullptr;
}

void GpuDevice::ReplayToSink() {
  replay_pending_ = false;
  for (uint32_t id = 0; id < outputs_; ++id) {
    const Scanout& s = scanouts_[id];
    if (s.resource_id == 0) continue;
    SinkError(sink_->Scanout(id, s.width, s.height), "Scanout");
    if (const Resource2d* resource = resources_.Find(s.resource_id)) {
      ShowRect(id, *resource, s.rect);
    } else if (resources_3d_.count(s.resource_id) != 0) {
      // This scanout only: the others showing the resource are told their size later.
      ShowRect3d(id, s.resource_id, s.rect);
    }
  }
  for (uint32_t id = 0; id < outputs_; ++id) {
    const Cursor& c = cursors_[id];
    if (!c.visible) continue;
    SinkError(sink_->CursorUpdate(id, c.x, c.y, c.hot_x, c.hot_y, c.argb), "CursorUpdate");
  }
}

void GpuDevice::DisplayChanged() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_read_ |= kEventDisplay;
  }
  if (notify_config_change_) {
    absl::Status status = notify_config_change_();
    if (!status.ok()) LOG(WARNING) << "virtio-gpu: config change notice: " << status;
  }
}

void GpuDevice::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint32_t id = 0; id < outputs_; ++id) {
    DisableScanout(id);
    if (cursors_[id].visible && sink_ != nullptr) {
      SinkError(sink_->CursorHide(id), "CursorHide");
    }
    cursors_[id] = Cursor();
    preferred_[id] = Preferred{true, default_width_, default_height_};
  }
  resources_.Clear();
  Reset3d();
  features_ = 0;
  events_read_ = 0;
  frame_.clear();
  frame_.shrink_to_fit();
}

size_t GpuDevice::resource_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resources_.size() + resources_3d_.size();
}

uint64_t GpuDevice::host_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return resources_.host_bytes() + host_bytes_3d_;
}

size_t GpuDevice::context_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return contexts_.size();
}

}  // namespace vhost::gpu
