#include "vhost-user-scsi/scsi_device.h"

#include <scsi/scsi.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/block/file_disk.h"
#include "common/block/null_disk.h"
#include "common/virtio/chain_cursor.h"
#include "common/virtio/features.h"
#include "glog/logging.h"
#include "vhost-user-scsi/cdb.h"

namespace vhost::scsi {
namespace {

// Transport-level conditions (SPC-5 Annex D) the command set does not raise itself.
constexpr Sense kLunNotSupported{ILLEGAL_REQUEST, 0x25, 0x00};
constexpr Sense kBusDeviceReset{UNIT_ATTENTION, 0x29, 0x03};
constexpr Sense kItNexusLoss{UNIT_ATTENTION, 0x29, 0x07};
constexpr Sense kLunsChanged{UNIT_ATTENTION, 0x3f, 0x0e};  // REPORTED LUNS DATA HAS CHANGED

constexpr uint8_t kReportLuns = 0xa0;
// VIRTIO_SCSI_S_FUNCTION_COMPLETE (virtio 1.2 §5.6.6.2.1), absent from <linux/virtio_scsi.h>.
constexpr uint8_t kFunctionComplete = 0;
// At most this much of a command's data-out is copied for the command set (parameter lists,
// COMPARE AND WRITE's blocks); READ/WRITE data is never copied.
constexpr size_t kMaxDataOutCopy = 1 << 20;
// Events waiting for the guest's event buffers; beyond it they are dropped and the next one
// delivered says VIRTIO_SCSI_T_EVENTS_MISSED (the guest then rescans).
constexpr size_t kMaxPendingEvents = 64;

ScsiResponse CheckCondition(const Sense& sense) {
  ScsiResponse response;
  response.status = kStatusCheckCondition;
  response.sense = EncodeSense(sense, SenseFormat::kFixed);
  return response;
}

void WriteTmfResponse(QueueContext& context, ChainToken token, uint8_t response) {
  CopyToSegments(context.chain(token).writable, 0, &response, 1);
  context.Complete(token, 1);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ScsiDevice>> ScsiDevice::Create(std::vector<UnitToServe> units,
                                                               ScsiOptions options) {
  // One ring per request queue, made now: the seccomp filter forbids new rings later. Units
  // (now or hot-added) only make views of them.
  std::vector<std::unique_ptr<IoRing>> rings;
  for (uint32_t q = 0; q < options.num_queues; ++q) {
    rings.push_back(IoRing::Create(options.max_queue_size, options.io_uring));
  }
  std::unique_ptr<ScsiDevice> device(new ScsiDevice(std::move(rings), options));
  for (UnitToServe& unit : units) {
    if (absl::Status s = device->Insert(std::move(unit), /*announce=*/false); !s.ok()) return s;
  }
  return device;
}

ScsiDevice::ScsiDevice(std::vector<std::unique_ptr<IoRing>> rings, ScsiOptions options)
    : options_(options), table_(std::make_shared<UnitTable>()) {
  for (auto& ring : rings) {
    request_queues_.push_back(std::make_unique<RequestQueue>());
    request_queues_.back()->ring = std::move(ring);
    request_queues_.back()->commands = std::make_unique<Command[]>(options_.max_queue_size);
  }
}

absl::StatusOr<std::shared_ptr<ScsiDevice::Unit>> ScsiDevice::MakeUnit(UnitToServe to_serve) {
  auto unit = std::make_shared<Unit>();
  for (auto& queue : request_queues_) unit->io.push_back(to_serve.disk->NewQueue(*queue->ring));
  absl::StatusOr<std::unique_ptr<LogicalUnit>> logical = LogicalUnit::Create(
      to_serve.spec, std::move(to_serve.disk), std::move(to_serve.reservations));
  if (!logical.ok()) return logical.status();
  unit->unit = *std::move(logical);
  return unit;
}

std::shared_ptr<const ScsiDevice::UnitTable> ScsiDevice::Table() {
  absl::MutexLock lock(&table_mu_);
  return table_;
}

absl::Status ScsiDevice::AddUnit(UnitToServe unit) {
  return Insert(std::move(unit), /*announce=*/true);
}

absl::Status ScsiDevice::Insert(UnitToServe to_serve, bool announce) {
  const uint32_t target = to_serve.spec.target, lun = to_serve.spec.lun;
  if (target > kMaxTarget || lun > kMaxLun) {
    return absl::InvalidArgumentError(absl::StrCat("no target ", target, " LUN ", lun));
  }
  absl::StatusOr<std::shared_ptr<Unit>> unit = MakeUnit(std::move(to_serve));
  if (!unit.ok()) return unit.status();
  {
    absl::MutexLock lock(&table_mu_);
    if (table_->by_address.contains(Key(target, lun))) {
      return absl::AlreadyExistsError(absl::StrCat("target ", target, " LUN ", lun, " exists"));
    }
    auto table = std::make_shared<UnitTable>(*table_);
    for (auto& [key, other] : table->by_address) {
      if (announce && other->unit->spec().target == target) {
        other->unit->SetUnitAttention(kLunsChanged);
      }
    }
    table->by_address[Key(target, lun)] = *std::move(unit);
    ++table->units_per_target[target];
    table_ = std::move(table);
    table_generation_.fetch_add(1, std::memory_order_release);
  }
  if (announce && (features_ & Bit(VIRTIO_SCSI_F_HOTPLUG))) {
    QueueEvent(VIRTIO_SCSI_T_TRANSPORT_RESET, target, lun, VIRTIO_SCSI_EVT_RESET_RESCAN);
  }
  return absl::OkStatus();
}

absl::Status ScsiDevice::RemoveUnit(uint32_t target, uint32_t lun) {
  {
    absl::MutexLock lock(&table_mu_);
    if (target > kMaxTarget || !table_->by_address.contains(Key(target, lun))) {
      return absl::NotFoundError(absl::StrCat("no target ", target, " LUN ", lun));
    }
    auto table = std::make_shared<UnitTable>(*table_);
    table->by_address.erase(Key(target, lun));
    --table->units_per_target[target];
    for (auto& [key, other] : table->by_address) {
      if (other->unit->spec().target == target) other->unit->SetUnitAttention(kLunsChanged);
    }
    // Commands in flight keep the unit (and its disk) until they complete.
    table_ = std::move(table);
    table_generation_.fetch_add(1, std::memory_order_release);
  }
  if (features_ & Bit(VIRTIO_SCSI_F_HOTPLUG)) {
    QueueEvent(VIRTIO_SCSI_T_TRANSPORT_RESET, target, lun, VIRTIO_SCSI_EVT_RESET_REMOVED);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ScsiDevice::Control(absl::string_view line,
                                                std::vector<UniqueFd>& fds) {
  std::pair<absl::string_view, absl::string_view> command =
      absl::StrSplit(line, absl::MaxSplits(' ', 1));
  if (command.first == "add") {
    std::vector<LunSpec> taken;
    for (const auto& [key, unit] : Table()->by_address) taken.push_back(unit->unit->spec());
    absl::StatusOr<LunSpec> spec = ParseLunSpec(command.second, taken);
    if (!spec.ok()) return spec.status();
    if (!spec->pr_state.empty()) {
      return absl::InvalidArgumentError("add: pr-state= needs a file the daemon opens at start");
    }
    UnitToServe unit;
    unit.spec = *spec;
    if (spec->null_size > 0) {
      unit.disk = MakeNullDisk(spec->null_size);
    } else {
      if (fds.empty() || fds.size() > 2) {
        return absl::InvalidArgumentError(
            "add: send the image's descriptor (and optionally an O_DIRECT one) with the line");
      }
      FileDiskOptions options;
      options.read_only = spec->read_only;
      options.alignment = spec->block_size;
      options.io_uring = options_.io_uring;
      UniqueFd direct = fds.size() == 2 ? std::move(fds[1]) : UniqueFd();
      absl::StatusOr<std::unique_ptr<Disk>> disk =
          FileDiskFromFds(std::move(fds[0]), std::move(direct), spec->file, options);
      if (!disk.ok()) return disk.status();
      unit.disk = *std::move(disk);
    }
    if (absl::Status s = AddUnit(std::move(unit)); !s.ok()) return s;
    LOG(INFO) << "added target " << spec->target << " LUN " << spec->lun;
    return absl::StrCat("target=", spec->target, " lun=", spec->lun);
  }
  if (command.first == "remove") {
    LunSpec address;
    bool target_given = false, lun_given = false;
    for (absl::string_view field : absl::StrSplit(command.second, ',')) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(field, absl::MaxSplits('=', 1));
      if (kv.first == "target" && absl::SimpleAtoi(kv.second, &address.target)) {
        target_given = true;
      } else if (kv.first == "lun" && absl::SimpleAtoi(kv.second, &address.lun)) {
        lun_given = true;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("remove: bad field '", field, "'"));
      }
    }
    if (!target_given || !lun_given) {
      return absl::InvalidArgumentError("remove: target=T,lun=L");
    }
    if (absl::Status s = RemoveUnit(address.target, address.lun); !s.ok()) return s;
    LOG(INFO) << "removed target " << address.target << " LUN " << address.lun;
    return std::string();
  }
  if (command.first == "list") {
    std::vector<std::string> entries;
    for (const auto& [key, unit] : Table()->by_address) {
      entries.push_back(absl::StrCat(unit->unit->spec().target, ":", unit->unit->spec().lun));
    }
    std::sort(entries.begin(), entries.end());
    return absl::StrJoin(entries, " ");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command '", command.first, "' (add, remove, list)"));
}

DeviceInfo ScsiDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdScsi;
  info.num_queues = kFirstRequestQueue + options_.num_queues;
  info.max_queue_size = options_.max_queue_size;
  info.config_size = sizeof(virtio_scsi_config);
  info.features = Bit(kFeatureVersion1) | Bit(VIRTIO_SCSI_F_HOTPLUG) | Bit(VIRTIO_SCSI_F_CHANGE);
  // Commands can run again after a crash (a READ, a WRITE of the same data); task management
  // and event buffers cannot, and restart from the used index.
  info.resubmit_queues = ~uint64_t{0} << kFirstRequestQueue;
  // Guest memory is written only through completions, which report what they wrote.
  info.logs_dirty_pages = true;
  return info;
}

absl::Status ScsiDevice::SetFeatures(uint64_t features) {
  features_ = features;
  return absl::OkStatus();
}

absl::Status ScsiDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  virtio_scsi_config c{};
  c.num_queues = options_.num_queues;
  c.seg_max = 254;  // as blk: a 256-entry ring less the header and response descriptors
  c.max_sectors = 0xffff;
  c.cmd_per_lun = std::min<uint32_t>(options_.max_queue_size, 128);
  c.event_info_size = sizeof(virtio_scsi_event);
  c.sense_size = VIRTIO_SCSI_SENSE_SIZE;
  c.cdb_size = VIRTIO_SCSI_CDB_SIZE;
  c.max_channel = 0;
  c.max_target = kMaxTarget;
  c.max_lun = kMaxLun;
  return ReadConfigBytes(c, offset, data);
}

const std::shared_ptr<ScsiDevice::Unit>* ScsiDevice::Find(const UnitTable& table,
                                                          const uint8_t lun[8],
                                                          bool* target_exists) {
  *target_exists = lun[0] == 1 && table.units_per_target[lun[1]] > 0;
  if (!*target_exists) return nullptr;
  // Single-level LUNs only: peripheral (00b) or flat (01b) addressing, nothing below.
  if ((lun[2] >> 6) > 1 || lun[4] || lun[5] || lun[6] || lun[7]) return nullptr;
  const uint32_t l = ((uint32_t{lun[2]} << 8) | lun[3]) & 0x3fff;
  auto it = table.by_address.find(Key(lun[1], l));
  return it == table.by_address.end() ? nullptr : &it->second;
}

absl::Status ScsiDevice::QueueStarted(QueueContext& context) {
  const uint32_t index = context.index();
  if (index == kControlQueue || index == kEventQueue) {
    absl::MutexLock lock(&contexts_mu_);
    (index == kControlQueue ? control_context_ : event_context_) = &context;
    return absl::OkStatus();
  }
  const uint32_t q = index - kFirstRequestQueue;
  RequestQueue& queue = *request_queues_[q];
  if (context.queue().size() > options_.max_queue_size) {
    return absl::InvalidArgumentError("ring larger than the device offers");  // engine-checked
  }
  for (uint32_t i = 0; i < options_.max_queue_size; ++i) queue.commands[i].unit.reset();
  const int fd = queue.ring->event_fd();
  // Edge-triggered, as blk: each completion's signal wakes the worker once.
  return fd >= 0 ? context.Watch(fd, EPOLLIN | EPOLLET) : absl::OkStatus();
}

QueueResult ScsiDevice::ProcessQueue(QueueContext& context) {
  const uint32_t index = context.index();
  if (index == kControlQueue) {
    ServeControl(context);
    return QueueResult::Drained();
  }
  if (index == kEventQueue) return DeliverEvents(context);
  const uint32_t q = index - kFirstRequestQueue;
  RequestQueue& queue = *request_queues_[q];
  Reap(queue, context, /*drain=*/false);
  // LUNs added or removed since the last turn: one atomic load when nothing changed.
  const uint64_t generation = table_generation_.load(std::memory_order_acquire);
  if (generation != queue.table_generation) {
    queue.table = Table();
    queue.table_generation = generation;
  }
  const size_t slots = context.queue().size();
  while (context.in_flight() < slots) {
    const absl::optional<ChainToken> token = context.Take();
    if (!token) break;
    StartCommand(queue, context, *token, q);
  }
  if (queue.submitted) {
    queue.ring->Commit();
    queue.submitted = false;
  }
  Reap(queue, context, /*drain=*/false);
  // Every slot busy with I/O: take more when some complete (the watched eventfds).
  if (context.in_flight() == slots && context.queue().HasAvailable()) {
    return QueueResult::Blocked();
  }
  return QueueResult::Drained();
}

bool ScsiDevice::HasCompletions(QueueContext& context) {
  if (context.index() < static_cast<int>(kFirstRequestQueue)) return false;
  return request_queues_[context.index() - kFirstRequestQueue]->ring->HasCompletions();
}

void ScsiDevice::Reap(RequestQueue& queue, QueueContext& context, bool drain) {
  auto done = [&](uint64_t token, int64_t result) { OnIoDone(queue, context, token, result); };
  if (drain) {
    queue.ring->Drain(done);
  } else {
    queue.ring->Reap(done);
  }
}

void ScsiDevice::StartCommand(RequestQueue& queue, QueueContext& context, ChainToken token,
                              uint32_t q) {
  const DescriptorChain& chain = context.chain(token);
  // A header cut short in its CDB area still names its LUN and opcode: the command set answers
  // it (INVALID FIELD IN CDB when the opcode needs more), with no data-out.
  virtio_scsi_cmd_req request{};
  ChainReader reader(chain.readable);
  const size_t header = std::min<uint64_t>(chain.readable_bytes, sizeof(request));
  constexpr size_t kCdbAt = offsetof(virtio_scsi_cmd_req, cdb);
  if (chain.writable_bytes < sizeof(virtio_scsi_cmd_resp) || header <= kCdbAt ||
      !reader.ReadBytes(&request, header)) {
    // No room for the response: nothing to answer in. The chain goes back untouched.
    LOG_EVERY_N(WARNING, 1000) << "queue " << context.index()
                               << ": command without its header or room for the response";
    context.Complete(token, 0);
    return;
  }
  Command& command = queue.commands[token];
  command.unit.reset();
  command.tag = request.tag;
  command.data_in_room = chain.writable_bytes - sizeof(virtio_scsi_cmd_resp);
  command.data_out_bytes = reader.remaining();
  const uint8_t* cdb = request.cdb;

  bool target_exists = false;
  const UnitTable& table = *queue.table;
  const std::shared_ptr<Unit>* unit = Find(table, request.lun, &target_exists);
  if (!target_exists) {
    ScsiResponse response;
    response.response = VIRTIO_SCSI_S_BAD_TARGET;
    Respond(context, token, response, 0);
    return;
  }
  if (cdb[0] == kReportLuns) {
    Respond(context, token, ReportLuns(table, cdb, request.lun[1], command.data_in_room), 0);
    return;
  }
  if (unit == nullptr) {
    Respond(context, token, NoSuchLun(cdb, command.data_in_room), 0);
    return;
  }

  ScsiRequest scsi;
  scsi.cdb = absl::MakeConstSpan(request.cdb, header - kCdbAt);
  scsi.data_in_size = command.data_in_room;
  scsi.data_out_size = command.data_out_bytes;
  if (command.data_out_bytes > 0 && ScsiLun::NeedsDataOutCopy(cdb[0])) {
    const size_t n = std::min<uint64_t>(command.data_out_bytes, kMaxDataOutCopy);
    queue.parameters.resize(n);
    reader.ReadBytes(queue.parameters.data(), n);
    scsi.data_out = absl::MakeConstSpan(queue.parameters);
  }
  std::variant<ScsiResponse, BlockIo> prepared = (*unit)->unit->Prepare(scsi);
  if (ScsiResponse* response = std::get_if<ScsiResponse>(&prepared)) {
    Respond(context, token, *response, 0);
    return;
  }
  command.unit = *unit;
  command.active_tag.store(command.tag, std::memory_order_relaxed);
  command.active_unit.store(unit->get(), std::memory_order_release);
  command.io = std::get<BlockIo>(prepared);
  command.buffers.clear();
  DiskQueue& io = *(*unit)->io[q];
  bool queued = false;
  switch (command.io.kind) {
    case BlockIo::kRead:
      SliceSegments(chain.writable, sizeof(virtio_scsi_cmd_resp), command.io.length,
                    &command.buffers);
      queued = io.SubmitRead(command.buffers, command.io.offset, token);
      break;
    case BlockIo::kWrite:
      reader.Slice(command.io.length, &command.buffers);
      queued = io.SubmitWrite(command.buffers, command.io.offset, command.io.fua, token);
      break;
    case BlockIo::kFlush:
      queued = io.SubmitFlush(token);
      break;
  }
  if (!queued) {
    OnIoDone(queue, context, token, -EAGAIN);  // cannot happen: a ring slot per ring entry
    return;
  }
  queue.submitted = true;
}

void ScsiDevice::OnIoDone(RequestQueue& queue, QueueContext& context, uint64_t token,
                          int64_t result) {
  if (token >= options_.max_queue_size || queue.commands[token].unit == nullptr) return;
  Command& command = queue.commands[token];
  if (result >= 0 && static_cast<uint64_t>(result) != command.io.length &&
      command.io.kind != BlockIo::kFlush) {
    LOG_EVERY_N(ERROR, 1000) << "short I/O: " << result << " of " << command.io.length
                             << " bytes at " << command.io.offset;
    result = -EIO;
  }
  bool now_idle = false;
  command.active_unit.store(nullptr, std::memory_order_release);
  const ScsiResponse response = command.unit->unit->CompleteIo(command.io, result, &now_idle);
  command.unit.reset();
  // A read reports its data bytes even when it failed: they follow the response header, and
  // the engine logs (for migration) only the bytes reported written.
  const uint64_t read = command.io.kind == BlockIo::kRead ? command.io.length : 0;
  Respond(context, static_cast<ChainToken>(token), response, read);
  if (now_idle) WakeControl();
}

void ScsiDevice::Respond(QueueContext& context, ChainToken token, const ScsiResponse& response,
                         uint64_t io_bytes) {
  const DescriptorChain& chain = context.chain(token);
  const uint64_t room = chain.writable_bytes - sizeof(virtio_scsi_cmd_resp);
  virtio_scsi_cmd_resp header{};
  header.response = response.response;
  header.status = response.status;
  const size_t sense = std::min<size_t>(response.sense.size(), VIRTIO_SCSI_SENSE_SIZE);
  if (sense > 0) std::memcpy(header.sense, response.sense.data(), sense);
  header.sense_len = sense;
  const size_t data = CopyToSegments(chain.writable, sizeof(header), response.data_in.data(),
                                     std::min<uint64_t>(response.data_in.size(), room));
  // What the command did not transfer of the room it was given.
  const bool good = response.response == VIRTIO_SCSI_S_OK && response.status == kStatusGood;
  const uint64_t moved = data + (good ? io_bytes : 0);
  header.resid = room > moved && moved > 0 ? room - moved : 0;
  if (moved == 0 && room > 0 && !good) header.resid = room;
  CopyToSegments(chain.writable, 0, &header, sizeof(header));
  context.Complete(token, sizeof(header) + data + io_bytes);
}

ScsiResponse ScsiDevice::ReportLuns(const UnitTable& table, const uint8_t* cdb, uint32_t target,
                                    uint64_t room) {
  const uint8_t select = cdb[2];
  const uint32_t allocation = Get32(absl::MakeConstSpan(cdb, 12), 6);
  // SELECT REPORT: 00h logical units, 01h well-known LUNs, 02h both (SPC-5 6.33).
  if (select > 2 || allocation < 16) return CheckCondition(kInvalidFieldInCdb);
  std::vector<uint32_t> luns;
  if (select != 1) {
    for (const auto& [key, u] : table.by_address) {
      if (u->unit->spec().target == target) luns.push_back(u->unit->spec().lun);
    }
    std::sort(luns.begin(), luns.end());
  }
  std::vector<uint8_t> data(8, 0);
  for (uint32_t lun : luns) {
    uint8_t entry[8] = {};
    if (lun < 256) {
      entry[1] = lun;  // peripheral device addressing
    } else {
      entry[0] = 0x40 | (lun >> 8);  // flat space addressing
      entry[1] = lun & 0xff;
    }
    data.insert(data.end(), entry, entry + 8);
  }
  if (select != 0) {
    const uint8_t report_luns_wlun[8] = {0xc1, 0x01};
    data.insert(data.end(), report_luns_wlun, report_luns_wlun + 8);
  }
  Put32(data.data(), data.size() - 8);
  data.resize(std::min<uint64_t>({data.size(), allocation, room}));
  ScsiResponse response;
  response.data_in = std::move(data);
  return response;
}

ScsiResponse ScsiDevice::NoSuchLun(const uint8_t* cdb, uint64_t room) {
  if (cdb[0] == INQUIRY && !(cdb[1] & 0x01)) {
    // Peripheral qualifier 011b, device type 1Fh: no logical unit here (SPC-5 6.7.2).
    std::vector<uint8_t> data(36, 0);
    data[0] = 0x7f;
    data[2] = 0x06;  // SPC-4
    data[3] = 0x02;  // response data format
    data[4] = data.size() - 5;
    const uint16_t allocation = Get16(absl::MakeConstSpan(cdb, 6), 3);
    data.resize(std::min<uint64_t>({data.size(), allocation, room}));
    ScsiResponse response;
    response.data_in = std::move(data);
    return response;
  }
  if (cdb[0] == REQUEST_SENSE) {
    ScsiResponse response;
    response.data_in = EncodeSense(kLunNotSupported, SenseFormat::kFixed);
    response.data_in.resize(std::min<uint64_t>({response.data_in.size(), cdb[4], room}));
    return response;
  }
  LOG_EVERY_N(WARNING, 1000) << "command for a LUN that does not exist";
  return CheckCondition(kLunNotSupported);
}

// ---- the control queue

void ScsiDevice::ServeControl(QueueContext& context) {
  const std::shared_ptr<const UnitTable> table = Table();
  // Functions waiting for their unit to go idle, woken by the last completion.
  pending_tmfs_.erase(std::remove_if(pending_tmfs_.begin(), pending_tmfs_.end(),
                                     [&](const PendingTmf& tmf) {
                                       return FinishTmf(context, tmf, /*force=*/false, *table);
                                     }),
                      pending_tmfs_.end());
  while (const absl::optional<ChainToken> token = context.Take()) {
    const DescriptorChain& chain = context.chain(*token);
    uint32_t type = 0;
    if (!ChainReader(chain.readable).Read(&type)) {
      context.Complete(*token, 0);
      continue;
    }
    if (type == VIRTIO_SCSI_T_TMF) {
      virtio_scsi_ctrl_tmf_req request;
      if (!ChainReader(chain.readable).Read(&request) ||
          chain.writable_bytes < sizeof(virtio_scsi_ctrl_tmf_resp)) {
        LOG_EVERY_N(WARNING, 100) << "task management request too short";
        context.Complete(*token, 0);
        continue;
      }
      bool target_exists = false;
      const std::shared_ptr<Unit>* unit = Find(*table, request.lun, &target_exists);
      if (!target_exists) {
        WriteTmfResponse(context, *token, VIRTIO_SCSI_S_BAD_TARGET);
        continue;
      }
      if (unit == nullptr) {
        WriteTmfResponse(context, *token, VIRTIO_SCSI_S_INCORRECT_LUN);
        continue;
      }
      switch (request.subtype) {
        case VIRTIO_SCSI_T_TMF_ABORT_TASK:
        case VIRTIO_SCSI_T_TMF_ABORT_TASK_SET:
        case VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET:
        case VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET:
        case VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET: {
          // Disk I/O cannot be recalled once submitted (the ring allows no cancel): the
          // function waits for the unit's tasks to finish, then answers.
          const PendingTmf tmf{*token, *unit, request.subtype};
          if (!FinishTmf(context, tmf, /*force=*/false, *table)) pending_tmfs_.push_back(tmf);
          break;
        }
        case VIRTIO_SCSI_T_TMF_QUERY_TASK:
          WriteTmfResponse(context, *token,
                           HasTask(unit->get(), request.tag) ? VIRTIO_SCSI_S_FUNCTION_SUCCEEDED
                                                             : kFunctionComplete);
          break;
        case VIRTIO_SCSI_T_TMF_QUERY_TASK_SET:
          WriteTmfResponse(
              context, *token,
              (*unit)->unit->tasks() > 0 ? VIRTIO_SCSI_S_FUNCTION_SUCCEEDED : kFunctionComplete);
          break;
        default:  // CLEAR ACA (no NACA support), unknown functions
          WriteTmfResponse(context, *token, VIRTIO_SCSI_S_FUNCTION_REJECTED);
          break;
      }
    } else if (type == VIRTIO_SCSI_T_AN_QUERY || type == VIRTIO_SCSI_T_AN_SUBSCRIBE) {
      virtio_scsi_ctrl_an_req request;
      if (!ChainReader(chain.readable).Read(&request) ||
          chain.writable_bytes < sizeof(virtio_scsi_ctrl_an_resp)) {
        LOG_EVERY_N(WARNING, 100) << "notification request too short";
        context.Complete(*token, 0);
        continue;
      }
      bool target_exists = false;
      const std::shared_ptr<Unit>* unit = Find(*table, request.lun, &target_exists);
      virtio_scsi_ctrl_an_resp response{};
      // No asynchronous notification class is supported: none is reported or subscribed to.
      response.event_actual = 0;
      response.response = !target_exists    ? VIRTIO_SCSI_S_BAD_TARGET
                          : unit == nullptr ? VIRTIO_SCSI_S_INCORRECT_LUN
                                            : VIRTIO_SCSI_S_OK;
      CopyToSegments(chain.writable, 0, &response, sizeof(response));
      context.Complete(*token, sizeof(response));
    } else {
      LOG_EVERY_N(WARNING, 100) << "control request of unknown type " << type;
      context.Complete(*token, 0);
    }
  }
}

bool ScsiDevice::FinishTmf(QueueContext& context, const PendingTmf& tmf, bool force,
                           const UnitTable& table) {
  if (!force && !tmf.unit->unit->IdleOrNotify()) return false;
  if (tmf.subtype == VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET) {
    tmf.unit->unit->SetUnitAttention(kBusDeviceReset);
  } else if (tmf.subtype == VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET) {
    for (const auto& [key, u] : table.by_address) {
      if (u->unit->spec().target == tmf.unit->unit->spec().target) {
        u->unit->SetUnitAttention(kItNexusLoss);
      }
    }
  }
  WriteTmfResponse(context, tmf.token, kFunctionComplete);
  return true;
}

bool ScsiDevice::HasTask(const Unit* unit, uint64_t tag) const {
  for (const auto& queue : request_queues_) {
    for (uint32_t i = 0; i < options_.max_queue_size; ++i) {
      const Command& c = queue->commands[i];
      if (c.active_unit.load(std::memory_order_acquire) == unit &&
          c.active_tag.load(std::memory_order_relaxed) == tag) {
        return true;
      }
    }
  }
  return false;
}

void ScsiDevice::WakeControl() {
  absl::MutexLock lock(&contexts_mu_);
  if (control_context_ != nullptr) control_context_->Wake();
}

// ---- the event queue

void ScsiDevice::QueueEvent(uint32_t event, uint32_t target, uint32_t lun, uint32_t reason) {
  virtio_scsi_event e{};
  e.event = event;
  e.lun[0] = 1;
  e.lun[1] = target;
  // Linux reads bytes 2-3 whole as the LUN: flat addressing (40h) only where the LUN needs it,
  // as REPORT LUNS encodes it.
  e.lun[2] = lun < 256 ? 0 : 0x40 | (lun >> 8);
  e.lun[3] = lun & 0xff;
  e.reason = reason;
  {
    absl::MutexLock lock(&events_mu_);
    if (events_.size() >= kMaxPendingEvents) {
      events_missed_ = true;
    } else {
      events_.push_back(e);
    }
  }
  absl::MutexLock lock(&contexts_mu_);
  if (event_context_ != nullptr) event_context_->Wake();
}

size_t ScsiDevice::pending_events() {
  absl::MutexLock lock(&events_mu_);
  return events_.size();
}

QueueResult ScsiDevice::DeliverEvents(QueueContext& context) {
  for (;;) {
    {
      absl::MutexLock lock(&events_mu_);
      // The guest's buffers wait for events that have not happened: not work to spin on.
      if (events_.empty() && !events_missed_) return QueueResult::Blocked();
    }
    const absl::optional<ChainToken> token = context.Take();
    if (!token) return QueueResult::Drained();  // events wait for the guest's next buffers
    const DescriptorChain& chain = context.chain(*token);
    if (chain.writable_bytes < sizeof(virtio_scsi_event)) {
      LOG_EVERY_N(WARNING, 100) << "event buffer of " << chain.writable_bytes << " bytes";
      context.Complete(*token, 0);
      continue;
    }
    virtio_scsi_event e{};
    {
      absl::MutexLock lock(&events_mu_);
      if (!events_.empty()) {
        e = events_.front();
        events_.pop_front();
      }
      if (events_missed_) e.event |= VIRTIO_SCSI_T_EVENTS_MISSED;
      events_missed_ = false;
    }
    CopyToSegments(chain.writable, 0, &e, sizeof(e));
    context.Complete(*token, sizeof(e));
  }
}

// ---- life cycle

void ScsiDevice::QueueStopped(QueueContext& context) {
  const uint32_t index = context.index();
  if (index == kControlQueue || index == kEventQueue) {
    {
      absl::MutexLock lock(&contexts_mu_);
      (index == kControlQueue ? control_context_ : event_context_) = nullptr;
    }
    // A function still waiting is answered now: its unit's request queues may be stopped
    // already, and the device is going away or restarting.
    if (index == kControlQueue) {
      const std::shared_ptr<const UnitTable> table = Table();
      for (const PendingTmf& tmf : pending_tmfs_) {
        FinishTmf(context, tmf, /*force=*/true, *table);
      }
      pending_tmfs_.clear();
    }
    return;
  }
  // Every command in its data phase finishes and completes here, so the ring position the
  // engine reports is exact.
  Reap(*request_queues_[index - kFirstRequestQueue], context, /*drain=*/true);
}

void ScsiDevice::Reset() {
  features_ = 0;
  absl::MutexLock lock(&events_mu_);
  events_.clear();
  events_missed_ = false;
}

void ScsiDevice::Reload() {
  for (const auto& [key, u] : Table()->by_address) {
    const LunSpec& spec = u->unit->spec();
    absl::StatusOr<bool> grown = u->unit->Refresh();
    if (!grown.ok()) {
      LOG(ERROR) << "cannot re-read the size of target " << spec.target << " LUN " << spec.lun
                 << ": " << grown.status();
      continue;
    }
    if (*grown && (features_ & Bit(VIRTIO_SCSI_F_CHANGE))) {
      // PARAMETERS CHANGED / CAPACITY DATA HAS CHANGED (2Ah/09h): the guest rescans the LUN.
      QueueEvent(VIRTIO_SCSI_T_PARAM_CHANGE, spec.target, spec.lun, 0x2a | (0x09 << 8));
    }
  }
}

}  // namespace vhost::scsi
