// Fuzzes the virtio-scsi transport (ScsiDevice) with what a hostile guest controls: descriptor
// chains on the control, event and request queues (TestQueues over fake guest memory). Requests
// are well-formed headers with fuzzed LUN fields, tags, CDBs and data-out, or raw bytes, cut
// anywhere and split over descriptors; control requests are TMFs and AN requests for any LUN and
// tag, cut short or not. The units sit on in-memory disks that can hold their I/O, so task
// management functions meet commands in flight, and can grow (an event to deliver); units come
// and go while commands are in flight (hotplug). It must not
// crash, touch a disk outside its size or write to a read-only one, report a used length beyond
// a chain's writable size, answer CHECK CONDITION without sense data, or lose a chain.
#include <linux/virtio_scsi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/block/null_disk.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/test_queue.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_input.h"
#include "vhost-user-scsi/scsi_device.h"

namespace vhost::scsi {
namespace {

using testing::Buffer;
using testing::FakeGuestMemory;
using testing::TestQueue;

// Buffers are reused round robin (their contents are junk); the arena holds more than every
// ring's chains at their largest, so a chain in flight never shares bytes with a newer one.
constexpr uint64_t kMemory = 8 << 20;
constexpr uint64_t kArena = 7 << 20;
constexpr uint32_t kMaxWritable = 8192;  // per descriptor
constexpr uint64_t kMaxDiskBytes = 256 << 10;

// The bytes behind an in-memory disk, shared by the disk and the harness (which grows it; a
// unit removed at run time frees its disk once its last command completes). Every operation
// is checked against the size and the unit's block size and read-only flag.
struct Image {
  Image(uint64_t bytes, uint32_t block_size, bool read_only)
      : size(bytes), block_size(block_size), read_only(read_only), data(kMaxDiskBytes) {}
  void Check(uint64_t offset, uint64_t length, bool write) const {
    if (write && read_only) std::abort();
    if (offset % block_size != 0 || length % block_size != 0) std::abort();
    if (offset > size || length > size - offset) std::abort();  // outside the image
  }
  void Grow() { size = std::min(size + (32 << 10), kMaxDiskBytes); }

  uint64_t size;
  const uint32_t block_size;
  const bool read_only;
  std::vector<uint8_t> data;
};

// An operation a request queue's disk view holds until the input releases it.
struct HeldOp {
  std::shared_ptr<Image> image;
  IoRing* ring;
  uint64_t token;
  enum { kRead, kWrite, kFlush } kind;
  uint64_t offset;
  IovecList buffers;

  // Runs the operation on the image; returns its result.
  int64_t Run() const {
    int64_t bytes = 0;
    for (const iovec& v : buffers) bytes += v.iov_len;
    if (kind == kFlush) return 0;
    image->Check(offset, bytes, kind == kWrite);
    uint64_t at = offset;
    for (const iovec& v : buffers) {
      uint8_t* p = static_cast<uint8_t*>(v.iov_base);
      if (kind == kRead) {
        std::memcpy(p, &image->data[at], v.iov_len);
      } else {
        std::memcpy(&image->data[at], p, v.iov_len);
      }
      at += v.iov_len;
    }
    return bytes;
  }
};

// Views on request queues' rings may hold their operations (in flight on cue); the unit's own
// synchronous view never does (its ring is drained at once).
class MemoryDisk : public Disk {
 public:
  MemoryDisk(std::shared_ptr<Image> image, uint32_t request_queues, std::vector<HeldOp>* held,
             const bool* hold)
      : image_(std::move(image)), request_queues_(request_queues), held_(held), hold_(hold) {}

  uint64_t size_bytes() const override { return image_->size; }
  // ScsiDevice makes a unit's request-queue views first, then LogicalUnit its synchronous
  // one: only the first `request_queues` views may hold.
  std::unique_ptr<DiskQueue> NewQueue(IoRing& ring) override {
    return std::make_unique<Queue>(this, &ring, views_++ < request_queues_);
  }
  absl::Status Discard(uint64_t offset, uint64_t length) override {
    image_->Check(offset, length, /*write=*/true);
    std::memset(&image_->data[offset], 0, length);
    return absl::OkStatus();
  }
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool) override {
    return Discard(offset, length);
  }
  absl::StatusOr<uint64_t> Refresh() override { return image_->size; }

 private:
  class Queue : public DiskQueue {
   public:
    Queue(MemoryDisk* disk, IoRing* ring, bool may_hold)
        : disk_(disk), ring_(ring), may_hold_(may_hold) {}
    bool SubmitRead(const IovecList& buffers, uint64_t offset, uint64_t token) override {
      return Submit({disk_->image_, ring_, token, HeldOp::kRead, offset, buffers});
    }
    bool SubmitWrite(const IovecList& buffers, uint64_t offset, bool, uint64_t token) override {
      return Submit({disk_->image_, ring_, token, HeldOp::kWrite, offset, buffers});
    }
    bool SubmitFlush(uint64_t token) override {
      return Submit({disk_->image_, ring_, token, HeldOp::kFlush, 0, {}});
    }

   private:
    bool Submit(HeldOp op) {
      if (may_hold_ && *disk_->hold_) {
        disk_->held_->push_back(std::move(op));
      } else {
        ring_->CompleteInline(op.token, op.Run());
      }
      return true;
    }
    MemoryDisk* disk_;
    IoRing* ring_;
    bool may_hold_;
  };

  const std::shared_ptr<Image> image_;
  const uint32_t request_queues_;
  uint32_t views_ = 0;
  std::vector<HeldOp>* held_;
  const bool* hold_;
};

// Addresses units are added at and removed from at run time: the ones served from the start,
// others on their targets, new targets.
constexpr uint32_t kHotplug[][2] = {{0, 0}, {0, 1}, {0, 300}, {3, 0},
                                    {0, 5}, {1, 0}, {5, 7},   {0, 16383}};

// LUN fields a request may carry: the units', a missing LUN on a served target, a target with
// no unit, addressing levels the device does not serve, the REPORT LUNS well-known LUN; or
// (a flag) 8 bytes from the input.
constexpr uint8_t kLuns[][8] = {
    {1, 0, 0x40, 0x00},           // target 0 LUN 0
    {1, 0, 0x00, 0x01},           // target 0 LUN 1 (read-only), peripheral addressing
    {1, 0, 0x41, 0x2c},           // target 0 LUN 300, 4 KiB blocks
    {1, 3, 0x40, 0x00},           // target 3 LUN 0, a null disk
    {1, 0, 0x40, 0x05},           // no such LUN
    {1, 1, 0x40, 0x00},           // no such target
    {1, 0, 0x80, 0x00, 0, 0, 1},  // extended / second-level addressing
    {1, 0, 0xc1, 0x01},           // target 0's REPORT LUNS well-known LUN
};

// Opcodes the command set implements (and REPORT LUNS, the device's own), for inputs that pick
// one by index.
constexpr uint8_t kOpcodes[] = {0x00, 0x03, 0x08, 0x0a, 0x12, 0x15, 0x1a, 0x1b, 0x25, 0x28, 0x2a,
                                0x2f, 0x35, 0x41, 0x42, 0x55, 0x5a, 0x5e, 0x5f, 0x88, 0x89, 0x8a,
                                0x8f, 0x91, 0x93, 0x9e, 0xa0, 0xa3, 0xa8, 0xaa, 0xaf};

struct Harness {
  FakeGuestMemory ram{kMemory};
  uint64_t arena = ram.Allocate(kArena, 4096);
  uint64_t next = 0;
  std::unique_ptr<ScsiDevice> device;
  std::vector<std::unique_ptr<TestQueue>> queues;
  // By queue and descriptor id: the chain's writable size, and whether it is out with the
  // device.
  struct Outstanding {
    uint32_t writable = 0;
    bool out = false;
    uint64_t first_writable = 0;  // gpa of the first writable descriptor, if one
    uint32_t first_writable_len = 0;
  };
  std::vector<std::vector<Outstanding>> chains;

  uint64_t Allocate(uint32_t len) {
    if (next + len + 64 > kArena) next = 0;
    const uint64_t gpa = arena + next;
    next += (len + 63) & ~63u;
    return gpa;
  }

  // Adds a chain to queue q: `readable` bytes cut into up to three descriptors at points the
  // input picks, and up to three writable descriptors of the input's sizes.
  void AddChain(FuzzInput& in, int q, const std::vector<uint8_t>& readable, uint32_t max_writable) {
    std::vector<Buffer> r, w;
    const int r_parts = readable.empty() ? 0 : 1 + in.Take<uint8_t>() % 3;
    size_t at = 0;
    for (int i = 0; i < r_parts && at < readable.size(); ++i) {
      size_t len = readable.size() - at;
      if (i + 1 < r_parts) len = std::min<size_t>(len, 1 + in.Take<uint8_t>() % 64);
      const uint64_t gpa = Allocate(len);
      std::memcpy(ram.Host(gpa, len), readable.data() + at, len);
      r.push_back({gpa, static_cast<uint32_t>(len)});
      at += len;
    }
    const int w_parts = in.Take<uint8_t>() % 4;
    uint32_t total = 0;
    for (int i = 0; i < w_parts; ++i) {
      const uint32_t len = in.Take<uint16_t>() % (max_writable + 1);
      w.push_back({Allocate(len), len});
      total += len;
    }
    if (r.empty() && w.empty()) return;
    absl::StatusOr<uint16_t> id = queues[q]->Add(r, w);
    if (!id.ok()) return;  // ring full
    chains[q][*id] = {total, true, w.empty() ? 0 : w[0].gpa, w.empty() ? 0 : w[0].len};
  }

  // Reads what the device used, checking each element against its chain.
  void Reap() {
    for (size_t q = 0; q < queues.size(); ++q) {
      for (;;) {
        absl::StatusOr<absl::optional<testing::UsedElement>> used = queues[q]->driver().PollUsed();
        if (!used.ok()) std::abort();  // a chain the driver never gave, or gave back twice
        if (!used->has_value()) break;
        const testing::UsedElement e = **used;
        Outstanding& chain = chains[q][e.id];
        if (!chain.out || e.len > chain.writable) std::abort();  // wrote past the chain
        chain.out = false;
        if (q >= kFirstRequestQueue) CheckResponse(chain, e.len);
      }
    }
  }

  // A command's response header, where it lies in the first descriptor: sense data with CHECK
  // CONDITION and only then, no longer than the field; a residual within the room.
  void CheckResponse(const Outstanding& chain, uint32_t used) const {
    if (used < sizeof(virtio_scsi_cmd_resp) ||
        chain.first_writable_len < sizeof(virtio_scsi_cmd_resp)) {
      return;
    }
    virtio_scsi_cmd_resp resp;
    std::memcpy(&resp, ram.Host(chain.first_writable, sizeof(resp)), sizeof(resp));
    if (resp.sense_len > VIRTIO_SCSI_SENSE_SIZE) std::abort();
    if (resp.resid > chain.writable - sizeof(resp)) std::abort();
    if (resp.response == VIRTIO_SCSI_S_OK && resp.status == 0x02) {
      if (resp.sense_len < 8) std::abort();
      const uint8_t code = resp.sense[0] & 0x7f;
      if (code != 0x70 && code != 0x72) std::abort();
    } else if (resp.sense_len != 0) {
      std::abort();
    }
  }

  size_t Unanswered(size_t q) const {
    return std::count_if(chains[q].begin(), chains[q].end(), [](const auto& c) { return c.out; });
  }
};

std::vector<uint8_t> RequestBytes(FuzzInput& in) {
  const uint8_t f = in.Take<uint8_t>();
  std::vector<uint8_t> bytes;
  if (!(f & 0x01)) {  // raw bytes
    bytes.resize(in.Take<uint8_t>() % 96);
    in.TakeBytes(bytes.data(), bytes.size());
    return bytes;
  }
  virtio_scsi_cmd_req req{};
  if (f & 0x80) {
    in.TakeBytes(req.lun, sizeof(req.lun));
  } else {
    std::memcpy(req.lun, kLuns[(f >> 1) % 8], sizeof(req.lun));
  }
  req.tag = in.Take<uint8_t>() % 8;  // few tags: task management finds them
  req.task_attr = in.Take<uint8_t>();
  in.TakeBytes(req.cdb, in.Take<uint8_t>() % (sizeof(req.cdb) + 1));
  if (f & 0x10) req.cdb[0] = kOpcodes[req.cdb[0] % sizeof(kOpcodes)];
  size_t header = sizeof(req);
  if (f & 0x20) header = in.Take<uint8_t>() % (sizeof(req) + 1);  // cut short
  bytes.assign(reinterpret_cast<uint8_t*>(&req), reinterpret_cast<uint8_t*>(&req) + header);
  // Data-out after the header; its size may disagree with the CDB's transfer length.
  const uint16_t out = in.Take<uint16_t>();
  const size_t n = (f & 0x40) ? (out % 32) * 512 : out % 600;
  const size_t at = bytes.size();
  bytes.resize(at + n);
  in.TakeBytes(bytes.data() + at, n);
  return bytes;
}

std::vector<uint8_t> ControlBytes(FuzzInput& in) {
  const uint8_t f = in.Take<uint8_t>();
  std::vector<uint8_t> bytes;
  uint8_t lun[8] = {};
  if (f & 0x20) {
    in.TakeBytes(lun, sizeof(lun));
  } else {
    std::memcpy(lun, kLuns[(f >> 2) % 8], sizeof(lun));
  }
  switch (f % 4) {
    case 0:
    case 1: {  // a task management function
      virtio_scsi_ctrl_tmf_req req{};
      req.type = VIRTIO_SCSI_T_TMF;
      req.subtype = in.Take<uint8_t>() % 12;
      std::memcpy(req.lun, lun, sizeof(lun));
      req.tag = in.Take<uint8_t>() % 10;
      bytes.assign(reinterpret_cast<uint8_t*>(&req),
                   reinterpret_cast<uint8_t*>(&req) + sizeof(req));
      break;
    }
    case 2: {  // asynchronous notification query or subscription
      virtio_scsi_ctrl_an_req req{};
      req.type = (f & 0x80) ? VIRTIO_SCSI_T_AN_SUBSCRIBE : VIRTIO_SCSI_T_AN_QUERY;
      std::memcpy(req.lun, lun, sizeof(lun));
      req.event_requested = in.Take<uint32_t>();
      bytes.assign(reinterpret_cast<uint8_t*>(&req),
                   reinterpret_cast<uint8_t*>(&req) + sizeof(req));
      break;
    }
    default:
      bytes.resize(in.Take<uint8_t>() % 64);
      in.TakeBytes(bytes.data(), bytes.size());
      return bytes;
  }
  if (f & 0x40) bytes.resize(in.Take<uint8_t>() % (bytes.size() + 1));  // cut short
  return bytes;
}

void Fuzz(FuzzInput& in) {
  const uint8_t config = in.Take<uint8_t>();
  const uint32_t num_queues = 1 + (config & 1);
  std::vector<HeldOp> held;
  bool hold = config & 0x02;

  Harness h;
  std::vector<std::shared_ptr<Image>> images;  // every in-memory disk made, to grow
  auto memory_unit = [&](uint32_t target, uint32_t lun, uint64_t bytes, uint32_t block_size,
                         bool read_only) {
    UnitToServe u;
    u.spec.target = target;
    u.spec.lun = lun;
    u.spec.block_size = block_size;
    u.spec.read_only = read_only;
    auto image = std::make_shared<Image>(bytes, block_size, read_only);
    u.disk = std::make_unique<MemoryDisk>(image, num_queues, &held, &hold);
    images.push_back(std::move(image));
    return u;
  };
  std::vector<UnitToServe> units;
  units.push_back(memory_unit(0, 0, 64 << 10, 512, false));
  units.push_back(memory_unit(0, 1, 32 << 10, 512, true));
  units.push_back(memory_unit(0, 300, 64 << 10, 4096, false));
  {
    UnitToServe u;
    u.spec.target = 3;
    u.spec.null_size = 1 << 20;
    u.disk = MakeNullDisk(1 << 20);
    units.push_back(std::move(u));
  }
  ScsiOptions options;
  options.num_queues = num_queues;
  options.io_uring = false;  // rings without fds: the harness runs every turn itself
  absl::StatusOr<std::unique_ptr<ScsiDevice>> device =
      ScsiDevice::Create(std::move(units), options);
  if (!device.ok()) std::abort();
  h.device = *std::move(device);
  uint64_t features = Bit(kFeatureVersion1);
  if (config & 0x04) features |= Bit(VIRTIO_SCSI_F_CHANGE);
  if (config & 0x08) features |= Bit(VIRTIO_SCSI_F_HOTPLUG);
  if (!h.device->SetFeatures(features).ok()) std::abort();
  for (uint32_t i = 0; i < kFirstRequestQueue + num_queues; ++i) {
    TestQueue::Options q;
    q.index = i;
    q.size = (config & 0x10) ? 8 : 64;  // a small ring fills up
    absl::StatusOr<std::unique_ptr<TestQueue>> queue = TestQueue::Create(&h.ram, q);
    if (!queue.ok()) std::abort();
    h.queues.push_back(*std::move(queue));
    h.chains.emplace_back(q.size);
    if (!h.queues.back()->Start(*h.device).ok()) std::abort();
  }
  ScsiDevice& dev = *h.device;

  auto release = [&](uint8_t how) {
    std::vector<HeldOp> ops;
    ops.swap(held);
    for (const HeldOp& op : ops) {
      int64_t result = op.Run();
      if (how == 1) result = -5;                // EIO
      if (how == 2 && result > 0) result -= 1;  // short
      op.ring->CompleteInline(op.token, result);
    }
  };
  auto run_all = [&] {
    for (auto& q : h.queues) q->Run(dev);
    h.Reap();
  };

  while (in.remaining() > 0) {
    const uint8_t op = in.Take<uint8_t>();
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {  // a command on a request queue
        const int q = kFirstRequestQueue + (op >> 3) % num_queues;
        std::vector<uint8_t> bytes = RequestBytes(in);
        h.AddChain(in, q, bytes, kMaxWritable);
        h.queues[q]->Run(dev);
        break;
      }
      case 3: {  // a control request
        std::vector<uint8_t> bytes = ControlBytes(in);
        h.AddChain(in, kControlQueue, bytes, 16);
        h.queues[kControlQueue]->Run(dev);
        break;
      }
      case 4: {  // an event buffer
        std::vector<uint8_t> none;
        h.AddChain(in, kEventQueue, none, 32);
        h.queues[kEventQueue]->Run(dev);
        break;
      }
      case 5:  // held I/O completes: well, with an error, or short
        release((op >> 3) % 3);
        break;
      case 6:
        hold = !hold;
        break;
      case 7:  // the host: a disk grows (SIGHUP), a LUN comes or goes (the control socket)
        switch ((op >> 3) % 8) {
          case 0:
          case 1:
          case 2:
          case 3:
            images[in.Take<uint8_t>() % images.size()]->Grow();
            dev.Reload();
            break;
          case 4: {
            const auto* at = kHotplug[in.Take<uint8_t>() % 8];
            (void)dev.RemoveUnit(at[0], at[1]);
            break;
          }
          case 5: {
            const uint8_t f = in.Take<uint8_t>();
            const auto* at = kHotplug[f % 8];
            if (images.size() < 16) {
              (void)dev.AddUnit(memory_unit(at[0], at[1], 16 << 10, (f & 8) ? 4096 : 512, f & 16));
            }
            break;
          }
          case 6: {  // a control-socket line (no descriptors: a file LUN is refused)
            std::string line(in.Take<uint8_t>() % 64, '\0');
            line.resize(in.TakeBytes(line.data(), line.size()));
            std::vector<UniqueFd> fds;
            (void)dev.Control(line, fds);
            break;
          }
          default:
            dev.Reload();
            break;
        }
        break;
    }
    run_all();
  }

  // Whatever is held completes, as a real disk's I/O would; then every request and control
  // chain has its answer. (Event buffers wait for events that may never come.)
  hold = false;
  release(0);
  run_all();
  run_all();
  for (uint32_t q = 0; q < h.queues.size(); ++q) {
    if (q != kEventQueue && h.Unanswered(q) != 0) std::abort();  // a chain never answered
  }
  for (auto& q : h.queues) q->Stop(dev);
  h.Reap();
  dev.Reset();
}

}  // namespace
}  // namespace vhost::scsi

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    FLAGS_minloglevel = 3;  // the device logs every bad chain; expected here
    return true;
  }();
  (void)quiet;
  vhost::FuzzInput in(data, size);
  vhost::scsi::Fuzz(in);
  return 0;
}
