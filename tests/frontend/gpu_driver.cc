#include "tests/frontend/gpu_driver.h"

#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace vhost::frontend {
namespace {

constexpr uint32_t kPoison = 0xffffffff;

}  // namespace

virtio_gpu_ctrl_hdr GpuHdr(uint32_t type) {
  virtio_gpu_ctrl_hdr hdr{};
  hdr.type = type;
  return hdr;
}

virtio_gpu_rect GpuRect(uint32_t x, uint32_t y, uint32_t width, uint32_t height) {
  virtio_gpu_rect r{};
  r.x = x;
  r.y = y;
  r.width = width;
  r.height = height;
  return r;
}

absl::StatusOr<std::unique_ptr<GpuDriver>> GpuDriver::Start(const std::string& socket,
                                                            const Options& options) {
  std::unique_ptr<GpuDriver> d(new GpuDriver(options));
  DeviceOptions device;
  device.features = options.features;
  device.ram_size = options.ram_size;
  device.queue_sizes.assign(2, options.queue_size);
  ASSIGN_OR_RETURN(d->device_, DeviceConnection::Open(socket, device));
  ASSIGN_OR_RETURN(d->req_gpa_, d->ram()->Allocate(kScratch, 64, &d->req_));
  ASSIGN_OR_RETURN(d->resp_gpa_, d->ram()->Allocate(kScratch, 64, &d->resp_));
  ASSIGN_OR_RETURN(d->cursor_gpa_,
                   d->ram()->Allocate(sizeof(virtio_gpu_update_cursor), 64, &d->cursor_));
  return d;
}

absl::Status GpuDriver::SetDisplaySocket(int fd) {
  Message m = MakeRequest(static_cast<uint32_t>(FrontendRequest::kGpuSetSocket));
  m.fds.emplace_back(dup(fd));
  if (!m.fds.back()) return absl::ErrnoToStatus(errno, "dup(display socket)");
  return frontend()->Send(std::move(m));
}

absl::StatusOr<virtio_gpu_config> GpuDriver::Config() {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, frontend()->GetConfig(0, sizeof(virtio_gpu_config)));
  if (bytes.size() < sizeof(virtio_gpu_config)) {
    return absl::DataLossError(absl::StrCat("config space of ", bytes.size(), " bytes"));
  }
  virtio_gpu_config config;
  std::memcpy(&config, bytes.data(), sizeof(config));
  return config;
}

absl::StatusOr<uint32_t> GpuDriver::WaitFor(FrontendQueue* queue, uint16_t id) {
  ASSIGN_OR_RETURN(testing::UsedElement used, queue->WaitForUsed(options_.timeout));
  if (used.id != id) {
    return absl::InternalError(absl::StrCat("chain ", used.id, " completed, waiting for ", id));
  }
  return used.len;
}

absl::StatusOr<GpuReply> GpuDriver::CommandParts(absl::Span<const std::vector<uint8_t>> parts,
                                                 uint32_t resp_len) {
  uint64_t total = 0;
  for (const std::vector<uint8_t>& part : parts) total += part.size();
  if (total > kScratch || resp_len > kScratch) {
    return absl::InvalidArgumentError("command larger than the driver's scratch area");
  }
  std::vector<testing::Buffer> readable;
  uint64_t offset = 0;
  for (const std::vector<uint8_t>& part : parts) {
    if (part.empty()) continue;
    std::memcpy(req_ + offset, part.data(), part.size());
    readable.push_back({req_gpa_ + offset, static_cast<uint32_t>(part.size())});
    offset += part.size();
  }
  std::memset(resp_, 0xff, resp_len);
  testing::Buffer writable[1] = {{resp_gpa_, resp_len}};
  ASSIGN_OR_RETURN(uint16_t id, control_queue()->ring().AddChain(
                                    readable, absl::MakeConstSpan(writable, resp_len > 0)));
  RETURN_IF_ERROR(control_queue()->Submit().status());
  GpuReply reply;
  ASSIGN_OR_RETURN(reply.used_len, WaitFor(control_queue(), id));
  reply.hdr.type = kPoison;
  if (resp_len >= sizeof(virtio_gpu_ctrl_hdr)) {
    std::memcpy(&reply.hdr, resp_, sizeof(reply.hdr));
    reply.payload.assign(resp_ + sizeof(virtio_gpu_ctrl_hdr), resp_ + resp_len);
  }
  return reply;
}

absl::StatusOr<GpuReply> GpuDriver::Command(const void* req, uint32_t len, uint32_t resp_len) {
  const uint8_t* bytes = static_cast<const uint8_t*>(req);
  const std::vector<uint8_t> parts[1] = {std::vector<uint8_t>(bytes, bytes + len)};
  return CommandParts(parts, resp_len);
}

absl::StatusOr<uint32_t> GpuDriver::Simple(const void* req, uint32_t len) {
  ASSIGN_OR_RETURN(GpuReply reply, Command(req, len, sizeof(virtio_gpu_ctrl_hdr)));
  return reply.hdr.type;
}

absl::StatusOr<virtio_gpu_resp_display_info> GpuDriver::GetDisplayInfo() {
  const virtio_gpu_ctrl_hdr req = GpuHdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
  ASSIGN_OR_RETURN(GpuReply reply, Command(req, sizeof(virtio_gpu_resp_display_info)));
  if (reply.hdr.type != VIRTIO_GPU_RESP_OK_DISPLAY_INFO) {
    return absl::FailedPreconditionError(
        absl::StrCat("GET_DISPLAY_INFO answered 0x", absl::Hex(reply.hdr.type)));
  }
  virtio_gpu_resp_display_info info;
  std::memcpy(&info.hdr, &reply.hdr, sizeof(reply.hdr));
  std::memcpy(info.pmodes, reply.payload.data(), sizeof(info.pmodes));
  return info;
}

absl::StatusOr<std::vector<uint8_t>> GpuDriver::GetEdid(uint32_t scanout) {
  virtio_gpu_cmd_get_edid req{};
  req.hdr = GpuHdr(VIRTIO_GPU_CMD_GET_EDID);
  req.scanout = scanout;
  ASSIGN_OR_RETURN(GpuReply reply, Command(req, sizeof(virtio_gpu_resp_edid)));
  if (reply.hdr.type != VIRTIO_GPU_RESP_OK_EDID) {
    return absl::FailedPreconditionError(
        absl::StrCat("GET_EDID answered 0x", absl::Hex(reply.hdr.type)));
  }
  virtio_gpu_resp_edid edid;
  std::memcpy(&edid.hdr, &reply.hdr, sizeof(reply.hdr));
  std::memcpy(reinterpret_cast<uint8_t*>(&edid) + sizeof(edid.hdr), reply.payload.data(),
              sizeof(edid) - sizeof(edid.hdr));
  if (edid.size > sizeof(edid.edid)) {
    return absl::DataLossError(absl::StrCat("EDID size ", edid.size));
  }
  return std::vector<uint8_t>(edid.edid, edid.edid + edid.size);
}

absl::StatusOr<uint32_t> GpuDriver::CreateResource(uint32_t id, uint32_t format, uint32_t width,
                                                   uint32_t height) {
  virtio_gpu_resource_create_2d req{};
  req.hdr = GpuHdr(VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
  req.resource_id = id;
  req.format = format;
  req.width = width;
  req.height = height;
  return Simple(&req, sizeof(req));
}

absl::StatusOr<uint32_t> GpuDriver::AttachBacking(uint32_t id,
                                                  absl::Span<const virtio_gpu_mem_entry> entries) {
  virtio_gpu_resource_attach_backing req{};
  req.hdr = GpuHdr(VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
  req.resource_id = id;
  req.nr_entries = entries.size();
  // As Linux sends it: the request, then the entries in a buffer of their own.
  const uint8_t* r = reinterpret_cast<const uint8_t*>(&req);
  const uint8_t* e = reinterpret_cast<const uint8_t*>(entries.data());
  const std::vector<uint8_t> parts[2] = {
      std::vector<uint8_t>(r, r + sizeof(req)),
      std::vector<uint8_t>(e, e + entries.size() * sizeof(virtio_gpu_mem_entry))};
  ASSIGN_OR_RETURN(GpuReply reply, CommandParts(parts, sizeof(virtio_gpu_ctrl_hdr)));
  return reply.hdr.type;
}

absl::StatusOr<uint32_t> GpuDriver::DetachBacking(uint32_t id) {
  virtio_gpu_resource_detach_backing req{};
  req.hdr = GpuHdr(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING);
  req.resource_id = id;
  return Simple(&req, sizeof(req));
}

absl::StatusOr<uint32_t> GpuDriver::Unref(uint32_t id) {
  virtio_gpu_resource_unref req{};
  req.hdr = GpuHdr(VIRTIO_GPU_CMD_RESOURCE_UNREF);
  req.resource_id = id;
  return Simple(&req, sizeof(req));
}

absl::StatusOr<uint32_t> GpuDriver::SetScanout(uint32_t scanout, uint32_t resource,
                                               const virtio_gpu_rect& rect) {
  virtio_gpu_set_scanout req{};
  req.hdr = GpuHdr(VIRTIO_GPU_CMD_SET_SCANOUT);
  req.r = rect;
  req.scanout_id = scanout;
  req.resource_id = resource;
  return Simple(&req, sizeof(req));
}

absl::StatusOr<uint32_t> GpuDriver::TransferToHost(uint32_t resource, const virtio_gpu_rect& rect,
                                                   uint64_t offset) {
  virtio_gpu_transfer_to_host_2d req{};
  req.hdr = GpuHdr(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D);
  req.r = rect;
  req.offset = offset;
  req.resource_id = resource;
  return Simple(&req, sizeof(req));
}

absl::StatusOr<uint32_t> GpuDriver::Flush(uint32_t resource, const virtio_gpu_rect& rect) {
  virtio_gpu_resource_flush req{};
  req.hdr = GpuHdr(VIRTIO_GPU_CMD_RESOURCE_FLUSH);
  req.r = rect;
  req.resource_id = resource;
  return Simple(&req, sizeof(req));
}

absl::Status GpuDriver::Cursor(const virtio_gpu_update_cursor& cmd) {
  std::memcpy(cursor_, &cmd, sizeof(cmd));
  testing::Buffer readable[1] = {{cursor_gpa_, sizeof(cmd)}};
  ASSIGN_OR_RETURN(uint16_t id, cursor_queue()->ring().AddChain(readable, {}));
  RETURN_IF_ERROR(cursor_queue()->Submit().status());
  return WaitFor(cursor_queue(), id).status();
}

absl::Status GpuDriver::UpdateCursor(uint32_t scanout, uint32_t resource, uint32_t x, uint32_t y,
                                     uint32_t hot_x, uint32_t hot_y) {
  virtio_gpu_update_cursor cmd{};
  cmd.hdr = GpuHdr(VIRTIO_GPU_CMD_UPDATE_CURSOR);
  cmd.pos.scanout_id = scanout;
  cmd.pos.x = x;
  cmd.pos.y = y;
  cmd.resource_id = resource;
  cmd.hot_x = hot_x;
  cmd.hot_y = hot_y;
  return Cursor(cmd);
}

absl::Status GpuDriver::MoveCursor(uint32_t scanout, uint32_t x, uint32_t y) {
  virtio_gpu_update_cursor cmd{};
  cmd.hdr = GpuHdr(VIRTIO_GPU_CMD_MOVE_CURSOR);
  cmd.pos.scanout_id = scanout;
  cmd.pos.x = x;
  cmd.pos.y = y;
  return Cursor(cmd);
}

absl::StatusOr<GpuFramebuffer> GpuDriver::AllocateFramebuffer(uint32_t width, uint32_t height,
                                                              uint32_t stride) {
  GpuFramebuffer fb;
  fb.width = width;
  fb.height = height;
  fb.stride = stride ? stride : width * 4;
  ASSIGN_OR_RETURN(fb.gpa, ram()->Allocate(fb.bytes(), 64, &fb.host));
  std::memset(fb.host, 0, fb.bytes());
  return fb;
}

absl::StatusOr<uint32_t> GpuDriver::AttachFramebuffer(uint32_t id, const GpuFramebuffer& fb) {
  virtio_gpu_mem_entry entry{};
  entry.addr = fb.gpa;
  entry.length = static_cast<uint32_t>(fb.bytes());
  return AttachBacking(id, absl::MakeConstSpan(&entry, 1));
}

absl::Status GpuDriver::ShowFramebuffer(uint32_t id, uint32_t format, uint32_t scanout,
                                        const GpuFramebuffer& fb) {
  const auto expect_ok = [](absl::StatusOr<uint32_t> type, const char* what) -> absl::Status {
    if (!type.ok()) return type.status();
    if (*type != VIRTIO_GPU_RESP_OK_NODATA) {
      return absl::FailedPreconditionError(absl::StrCat(what, " answered 0x", absl::Hex(*type)));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(expect_ok(CreateResource(id, format, fb.width, fb.height), "RESOURCE_CREATE_2D"));
  RETURN_IF_ERROR(expect_ok(AttachFramebuffer(id, fb), "ATTACH_BACKING"));
  return expect_ok(SetScanout(scanout, id, GpuRect(0, 0, fb.width, fb.height)), "SET_SCANOUT");
}

}  // namespace vhost::frontend
