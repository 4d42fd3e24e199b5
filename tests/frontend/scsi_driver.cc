#include "tests/frontend/scsi_driver.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace vhost::frontend {
namespace {

constexpr uint32_t kControlBytes = 64;  // larger than any control request or response

void WriteTmf(ScsiControl* c, uint32_t subtype, uint8_t target, uint16_t lun, uint64_t tag) {
  virtio_scsi_ctrl_tmf_req req{};
  req.type = VIRTIO_SCSI_T_TMF;
  req.subtype = subtype;
  const std::array<uint8_t, 8> field = ScsiLunField(target, lun);
  std::memcpy(req.lun, field.data(), field.size());
  req.tag = tag;
  std::memcpy(c->req, &req, sizeof(req));
  c->req_len = sizeof(req);
  c->resp_len = sizeof(virtio_scsi_ctrl_tmf_resp);
  std::memset(c->resp, 0xff, kControlBytes);
}

void WriteAn(ScsiControl* c, uint32_t type, uint8_t target, uint16_t lun, uint32_t events) {
  virtio_scsi_ctrl_an_req req{};
  req.type = type;
  const std::array<uint8_t, 8> field = ScsiLunField(target, lun);
  std::memcpy(req.lun, field.data(), field.size());
  req.event_requested = events;
  std::memcpy(c->req, &req, sizeof(req));
  c->req_len = sizeof(req);
  c->resp_len = sizeof(virtio_scsi_ctrl_an_resp);
  std::memset(c->resp, 0xff, kControlBytes);
}

absl::StatusOr<ScsiControl> AllocateControl(GuestRam* ram) {
  ScsiControl c;
  ASSIGN_OR_RETURN(c.req_gpa, ram->Allocate(kControlBytes, 16, &c.req));
  ASSIGN_OR_RETURN(c.resp_gpa, ram->Allocate(kControlBytes, 16, &c.resp));
  return c;
}

}  // namespace

std::array<uint8_t, 8> ScsiLunField(uint8_t target, uint16_t lun) {
  const uint16_t flat = 0x4000 | (lun & 0x3fff);
  return {1, target, static_cast<uint8_t>(flat >> 8), static_cast<uint8_t>(flat), 0, 0, 0, 0};
}

absl::StatusOr<ScsiCommand> AllocateScsiCommand(GuestRam* ram, uint32_t data_out_len,
                                                uint32_t data_in_len) {
  ScsiCommand c;
  uint8_t* host;
  ASSIGN_OR_RETURN(c.req_gpa, ram->Allocate(sizeof(virtio_scsi_cmd_req), 16, &host));
  c.req = reinterpret_cast<virtio_scsi_cmd_req*>(host);
  ASSIGN_OR_RETURN(c.resp_gpa, ram->Allocate(sizeof(virtio_scsi_cmd_resp), 16, &host));
  c.resp = reinterpret_cast<virtio_scsi_cmd_resp*>(host);
  if (data_out_len > 0) {
    ASSIGN_OR_RETURN(c.data_out_gpa, ram->Allocate(data_out_len, 512, &c.data_out));
    c.data_out_len = data_out_len;
  }
  if (data_in_len > 0) {
    ASSIGN_OR_RETURN(c.data_in_gpa, ram->Allocate(data_in_len, 512, &c.data_in));
    c.data_in_len = data_in_len;
  }
  ASSIGN_OR_RETURN(c.indirect_gpa, ram->Allocate(4 * 16, 16, &host));
  std::memset(c.req, 0, sizeof(*c.req));
  std::memset(c.resp, 0xff, sizeof(*c.resp));
  return c;
}

void SetScsiCdb(ScsiCommand* c, uint8_t target, uint16_t lun, absl::Span<const uint8_t> cdb,
                uint64_t tag, uint8_t task_attr) {
  virtio_scsi_cmd_req req{};
  const std::array<uint8_t, 8> field = ScsiLunField(target, lun);
  std::memcpy(req.lun, field.data(), field.size());
  req.tag = tag;
  req.task_attr = task_attr;
  std::memcpy(req.cdb, cdb.data(), std::min(cdb.size(), sizeof(req.cdb)));
  std::memcpy(c->req, &req, sizeof(req));
  std::memset(c->resp, 0xff, sizeof(*c->resp));
}

absl::StatusOr<uint16_t> AddScsiCommand(testing::DriverRing* ring, const ScsiCommand& c,
                                        bool indirect) {
  testing::Buffer readable[2], writable[2];
  size_t nr = 0, nw = 0;
  if (c.req_len > 0) readable[nr++] = {c.req_gpa, c.req_len};
  if (c.data_out_len > 0) readable[nr++] = {c.data_out_gpa, c.data_out_len};
  if (c.resp_len > 0) writable[nw++] = {c.resp_gpa, c.resp_len};
  if (c.data_in_len > 0) writable[nw++] = {c.data_in_gpa, c.data_in_len};
  return ring->AddChain(absl::MakeConstSpan(readable, nr), absl::MakeConstSpan(writable, nw),
                        indirect ? absl::make_optional(c.indirect_gpa) : absl::nullopt);
}

ScsiResult ReadScsiResult(const ScsiCommand& c, uint32_t used_len) {
  ScsiResult r;
  r.used_len = used_len;
  virtio_scsi_cmd_resp resp;
  std::memcpy(&resp, c.resp, sizeof(resp));
  r.response = resp.response;
  r.status = resp.status;
  r.status_qualifier = resp.status_qualifier;
  r.resid = resp.resid;
  r.sense.assign(resp.sense, resp.sense + std::min<uint32_t>(resp.sense_len, sizeof(resp.sense)));
  if (c.data_in_len > 0) {
    const uint32_t moved = c.data_in_len - std::min(resp.resid, c.data_in_len);
    r.data_in.assign(reinterpret_cast<const char*>(c.data_in), moved);
  }
  return r;
}

absl::StatusOr<ScsiControl> AllocateScsiTmf(GuestRam* ram, uint32_t subtype, uint8_t target,
                                            uint16_t lun, uint64_t tag) {
  ASSIGN_OR_RETURN(ScsiControl c, AllocateControl(ram));
  WriteTmf(&c, subtype, target, lun, tag);
  return c;
}

absl::StatusOr<ScsiControl> AllocateScsiAn(GuestRam* ram, uint32_t type, uint8_t target,
                                           uint16_t lun, uint32_t events_requested) {
  ASSIGN_OR_RETURN(ScsiControl c, AllocateControl(ram));
  WriteAn(&c, type, target, lun, events_requested);
  return c;
}

absl::StatusOr<uint16_t> AddScsiControl(testing::DriverRing* ring, const ScsiControl& c) {
  testing::Buffer readable[1] = {{c.req_gpa, c.req_len}};
  testing::Buffer writable[1] = {{c.resp_gpa, c.resp_len}};
  return ring->AddChain(absl::MakeConstSpan(readable, c.req_len > 0 ? 1 : 0),
                        absl::MakeConstSpan(writable, c.resp_len > 0 ? 1 : 0));
}

absl::StatusOr<std::unique_ptr<ScsiDriver>> ScsiDriver::Start(const std::string& socket,
                                                              const Options& options) {
  std::unique_ptr<ScsiDriver> d(new ScsiDriver(options));
  DeviceOptions& device = d->device_options_;
  device.features = options.features;
  device.ram_size = options.ram_size;
  device.queue_sizes.assign(2 + options.request_queues, options.queue_size);
  device.inflight = options.inflight;
  ASSIGN_OR_RETURN(d->device_, DeviceConnection::Open(socket, device));
  GuestRam* ram = d->ram();
  for (uint32_t i = 0; i < options.request_queues; ++i) {
    ASSIGN_OR_RETURN(ScsiCommand c, AllocateScsiCommand(ram, options.max_data, options.max_data));
    d->scratch_.push_back(c);
  }
  for (uint32_t i = 0; i < options.event_buffers; ++i) {
    uint8_t* host;
    ASSIGN_OR_RETURN(uint64_t gpa, ram->Allocate(sizeof(virtio_scsi_event), 16, &host));
    RETURN_IF_ERROR(d->PostEvent(gpa, reinterpret_cast<virtio_scsi_event*>(host)));
  }
  RETURN_IF_ERROR(d->event_queue()->Submit().status());
  return d;
}

absl::Status ScsiDriver::PostEvent(uint64_t gpa, virtio_scsi_event* event) {
  std::memset(event, 0xff, sizeof(*event));
  testing::Buffer writable[1] = {{gpa, sizeof(virtio_scsi_event)}};
  ASSIGN_OR_RETURN(uint16_t id, event_queue()->ring().AddChain({}, writable));
  events_[id] = {gpa, event};
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> ScsiDriver::WaitFor(FrontendQueue* queue, uint16_t id) {
  ASSIGN_OR_RETURN(UsedElement used, queue->WaitForUsed(options_.timeout, options_.busy_poll));
  if (used.id != id) {
    return absl::InternalError(absl::StrCat("chain ", used.id, " completed, waiting for ", id));
  }
  return used.len;
}

absl::StatusOr<ScsiResult> ScsiDriver::Run(uint8_t target, uint16_t lun,
                                           absl::Span<const uint8_t> cdb,
                                           absl::Span<const uint8_t> data_out, uint32_t data_in_len,
                                           size_t queue, uint64_t tag) {
  if (queue >= scratch_.size()) return absl::InvalidArgumentError("no such request queue");
  if (data_out.size() > options_.max_data || data_in_len > options_.max_data) {
    return absl::InvalidArgumentError("data larger than Options::max_data");
  }
  ScsiCommand c = scratch_[queue];
  c.data_out_len = static_cast<uint32_t>(data_out.size());
  c.data_in_len = data_in_len;
  if (!data_out.empty()) std::memcpy(c.data_out, data_out.data(), data_out.size());
  SetScsiCdb(&c, target, lun, cdb, tag);
  return Run(c, queue);
}

absl::StatusOr<ScsiResult> ScsiDriver::Run(const ScsiCommand& command, size_t queue) {
  FrontendQueue* q = request_queue(queue);
  ASSIGN_OR_RETURN(uint16_t id, AddScsiCommand(&q->ring(), command));
  RETURN_IF_ERROR(q->Submit().status());
  ASSIGN_OR_RETURN(uint32_t used_len, WaitFor(q, id));
  return ReadScsiResult(command, used_len);
}

absl::StatusOr<uint8_t> ScsiDriver::TaskManagement(uint32_t subtype, uint8_t target, uint16_t lun,
                                                   uint64_t tag) {
  ASSIGN_OR_RETURN(ScsiControl c, AllocateScsiTmf(ram(), subtype, target, lun, tag));
  ASSIGN_OR_RETURN(uint16_t id, AddScsiControl(&control_queue()->ring(), c));
  RETURN_IF_ERROR(control_queue()->Submit().status());
  RETURN_IF_ERROR(WaitFor(control_queue(), id).status());
  return c.tmf_resp().response;
}

absl::StatusOr<virtio_scsi_ctrl_an_resp> ScsiDriver::AsyncNotification(uint32_t type,
                                                                       uint8_t target, uint16_t lun,
                                                                       uint32_t events) {
  ASSIGN_OR_RETURN(ScsiControl c, AllocateScsiAn(ram(), type, target, lun, events));
  ASSIGN_OR_RETURN(uint16_t id, AddScsiControl(&control_queue()->ring(), c));
  RETURN_IF_ERROR(control_queue()->Submit().status());
  RETURN_IF_ERROR(WaitFor(control_queue(), id).status());
  virtio_scsi_ctrl_an_resp resp;
  std::memcpy(&resp, c.resp, sizeof(resp));
  return resp;
}

absl::StatusOr<virtio_scsi_event> ScsiDriver::TakeEvent(const UsedElement& used) {
  auto it = events_.find(used.id);
  if (it == events_.end()) return absl::InternalError("unknown event buffer");
  auto [gpa, buffer] = it->second;
  events_.erase(it);
  virtio_scsi_event event;
  std::memcpy(&event, buffer, sizeof(event));
  RETURN_IF_ERROR(PostEvent(gpa, buffer));
  RETURN_IF_ERROR(event_queue()->Submit().status());
  return event;
}

absl::StatusOr<absl::optional<virtio_scsi_event>> ScsiDriver::PollEvent() {
  ASSIGN_OR_RETURN(absl::optional<UsedElement> used, event_queue()->PollUsed());
  if (!used) return absl::nullopt;
  return TakeEvent(*used);
}

absl::StatusOr<virtio_scsi_event> ScsiDriver::WaitForEvent(absl::Duration timeout) {
  ASSIGN_OR_RETURN(UsedElement used, event_queue()->WaitForUsed(timeout));
  return TakeEvent(used);
}

absl::StatusOr<virtio_scsi_config> ScsiDriver::Config() {
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                   frontend()->GetConfig(0, sizeof(virtio_scsi_config)));
  if (bytes.size() < sizeof(virtio_scsi_config)) {
    return absl::DataLossError(absl::StrCat("config space of ", bytes.size(), " bytes"));
  }
  virtio_scsi_config config;
  std::memcpy(&config, bytes.data(), sizeof(config));
  return config;
}

}  // namespace vhost::frontend
