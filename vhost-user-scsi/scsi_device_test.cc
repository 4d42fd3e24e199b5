// The virtio-scsi transport around the command set, on TestQueues with no worker threads: what
// the integration test through a real socket cannot make happen on cue (a task management
// function arriving while its unit's I/O is held, a disk growing under a subscribed guest).
#include "vhost-user-scsi/scsi_device.h"

#include <fcntl.h>
#include <linux/virtio_scsi.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/block/file_disk.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"
#include "vhost-user-scsi/state_file.h"

namespace vhost::scsi {
namespace {

using ::vhost::testing::Buffer;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;

constexpr uint64_t kDiskBytes = 1 << 20;

// A disk whose operations complete only when the test releases them: I/O in flight on cue.
class HeldDisk : public Disk {
 public:
  struct Op {
    IoRing* ring;
    uint64_t token;
    int64_t result;
  };
  uint64_t size_bytes() const override { return kDiskBytes; }
  std::unique_ptr<DiskQueue> NewQueue(IoRing& ring) override {
    return std::make_unique<Queue>(this, &ring);
  }
  absl::Status Discard(uint64_t, uint64_t) override { return absl::OkStatus(); }
  absl::Status WriteZeroes(uint64_t, uint64_t, bool) override { return absl::OkStatus(); }
  absl::StatusOr<uint64_t> Refresh() override { return kDiskBytes; }

  // Completes every held operation (the ring reports them at its next Reap).
  void Release() {
    for (const Op& op : held_) op.ring->CompleteInline(op.token, op.result);
    held_.clear();
  }
  size_t held() const { return held_.size(); }

 private:
  class Queue : public DiskQueue {
   public:
    Queue(HeldDisk* disk, IoRing* ring) : disk_(disk), ring_(ring) {}
    bool SubmitRead(const IovecList& buffers, uint64_t, uint64_t token) override {
      return Hold(token, Bytes(buffers));
    }
    bool SubmitWrite(const IovecList& buffers, uint64_t, bool, uint64_t token) override {
      return Hold(token, Bytes(buffers));
    }
    bool SubmitFlush(uint64_t token) override { return Hold(token, 0); }

   private:
    static int64_t Bytes(const IovecList& buffers) {
      int64_t n = 0;
      for (const iovec& v : buffers) n += v.iov_len;
      return n;
    }
    bool Hold(uint64_t token, int64_t result) {
      disk_->held_.push_back({ring_, token, result});
      return true;
    }
    HeldDisk* disk_;
    IoRing* ring_;
  };
  std::vector<Op> held_;
};

class ScsiDeviceTest : public ::testing::Test {
 protected:
  void MakeDevice(std::vector<UnitToServe> units) {
    ScsiOptions options;
    options.io_uring = false;  // a ring without fds: the test runs every turn itself
    absl::StatusOr<std::unique_ptr<ScsiDevice>> device =
        ScsiDevice::Create(std::move(units), options);
    ASSERT_OK(device);
    device_ = *std::move(device);
    for (int index : {0, 1, 2}) {
      TestQueue::Options q;
      q.index = index;
      queues_.push_back(*TestQueue::Create(&ram_, q));
      ASSERT_OK(queues_.back()->Start(*device_));
    }
  }
  void TearDown() override {
    for (auto& queue : queues_) queue->Stop(*device_);
  }
  TestQueue& control() { return *queues_[0]; }
  TestQueue& events() { return *queues_[1]; }
  TestQueue& requests() { return *queues_[2]; }

  // Adds a command for target 0 LUN `lun`; returns the gpa of its response.
  uint64_t AddCommand(std::vector<uint8_t> cdb, uint32_t data_in, uint64_t tag = 1,
                      uint32_t lun = 0, std::vector<uint8_t> data_out = {}) {
    virtio_scsi_cmd_req req{};
    req.lun[0] = 1;
    req.lun[2] = 0x40 | (lun >> 8);
    req.lun[3] = lun & 0xff;
    req.tag = tag;
    std::memcpy(req.cdb, cdb.data(), cdb.size());
    const uint64_t req_gpa = ram_.Allocate(sizeof(req));
    std::memcpy(ram_.Host(req_gpa, sizeof(req)), &req, sizeof(req));
    const uint64_t resp_gpa = ram_.Allocate(sizeof(virtio_scsi_cmd_resp) + data_in);
    std::memset(ram_.Host(resp_gpa), 0xee, sizeof(virtio_scsi_cmd_resp));
    std::vector<Buffer> readable = {{req_gpa, sizeof(req)}};
    if (!data_out.empty()) {
      const uint64_t out_gpa = ram_.Allocate(data_out.size());
      std::memcpy(ram_.Host(out_gpa, data_out.size()), data_out.data(), data_out.size());
      readable.push_back({out_gpa, static_cast<uint32_t>(data_out.size())});
    }
    EXPECT_OK(
        requests().Add(readable, {{resp_gpa, uint32_t(sizeof(virtio_scsi_cmd_resp) + data_in)}}));
    return resp_gpa;
  }
  const virtio_scsi_cmd_resp& Response(uint64_t gpa) {
    return *reinterpret_cast<const virtio_scsi_cmd_resp*>(
        ram_.Host(gpa, sizeof(virtio_scsi_cmd_resp)));
  }
  // Adds a TMF on the control queue; returns the gpa of its response byte.
  uint64_t AddTmf(uint32_t subtype, uint64_t tag = 0) {
    virtio_scsi_ctrl_tmf_req req{};
    req.type = VIRTIO_SCSI_T_TMF;
    req.subtype = subtype;
    req.lun[0] = 1;
    req.lun[2] = 0x40;
    req.tag = tag;
    const uint64_t req_gpa = ram_.Allocate(sizeof(req));
    std::memcpy(ram_.Host(req_gpa, sizeof(req)), &req, sizeof(req));
    const uint64_t resp_gpa = ram_.Allocate(8);
    *ram_.Host(resp_gpa) = 0xee;
    EXPECT_OK(control().Add({{req_gpa, sizeof(req)}}, {{resp_gpa, 1}}));
    return resp_gpa;
  }

  FakeGuestMemory ram_;
  std::unique_ptr<ScsiDevice> device_;
  std::vector<std::unique_ptr<TestQueue>> queues_;
};

std::vector<UnitToServe> OneUnit(std::unique_ptr<Disk> disk) {
  std::vector<UnitToServe> units(1);
  units[0].disk = std::move(disk);
  return units;
}

TEST_F(ScsiDeviceTest, LunResetWaitsForTheUnitsIoThenRaisesAUnitAttention) {
  auto owned = std::make_unique<HeldDisk>();
  HeldDisk* disk = owned.get();
  MakeDevice(OneUnit(std::move(owned)));
  const uint64_t read = AddCommand({READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512, /*tag=*/77);
  requests().Run(*device_);
  ASSERT_EQ(disk->held(), 1u);

  // QUERY TASK sees the task; the reset waits for it.
  const uint64_t query = AddTmf(VIRTIO_SCSI_T_TMF_QUERY_TASK, 77);
  const uint64_t reset = AddTmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET);
  control().Run(*device_);
  std::vector<UsedElement> used = control().Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(*ram_.Host(query), VIRTIO_SCSI_S_FUNCTION_SUCCEEDED);
  EXPECT_EQ(*ram_.Host(reset), 0xee);  // not answered while the read is held

  disk->Release();
  requests().Run(*device_);
  ASSERT_EQ(requests().Used().size(), 1u);
  EXPECT_EQ(Response(read).status, 0);
  // The last completion woke the control queue, which answers the reset now.
  ASSERT_TRUE(control().RunWhenReady(*device_, absl::Seconds(10)).has_value());
  ASSERT_EQ(control().Used().size(), 1u);
  EXPECT_EQ(*ram_.Host(reset), 0);  // FUNCTION COMPLETE

  // The next command reports the reset: UNIT ATTENTION 29/03, then the unit serves again.
  uint64_t tur = AddCommand({TEST_UNIT_READY, 0, 0, 0, 0, 0}, 0);
  requests().Run(*device_);
  EXPECT_EQ(Response(tur).status, 0x02);
  EXPECT_EQ(Response(tur).sense[2] & 0x0f, UNIT_ATTENTION);
  EXPECT_EQ(Response(tur).sense[12], 0x29);
  EXPECT_EQ(Response(tur).sense[13], 0x03);
  tur = AddCommand({TEST_UNIT_READY, 0, 0, 0, 0, 0}, 0);
  requests().Run(*device_);
  EXPECT_EQ(Response(tur).status, 0);
}

TEST_F(ScsiDeviceTest, IdleUnitAnswersTmfsAtOnce) {
  MakeDevice(OneUnit(std::make_unique<HeldDisk>()));
  const uint64_t abort = AddTmf(VIRTIO_SCSI_T_TMF_ABORT_TASK, 1234);  // a tag never seen
  const uint64_t query = AddTmf(VIRTIO_SCSI_T_TMF_QUERY_TASK_SET);
  const uint64_t aca = AddTmf(VIRTIO_SCSI_T_TMF_CLEAR_ACA);
  control().Run(*device_);
  EXPECT_EQ(control().Used().size(), 3u);
  EXPECT_EQ(*ram_.Host(abort), 0);
  EXPECT_EQ(*ram_.Host(query), 0);
  EXPECT_EQ(*ram_.Host(aca), VIRTIO_SCSI_S_FUNCTION_REJECTED);
}

TEST_F(ScsiDeviceTest, GrownDiskSendsAParameterChangeEvent) {
  std::string path =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/scsi_grow_XXXXXX";
  const int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kDiskBytes), 0);
  FileDiskOptions file;
  file.io_uring = false;
  absl::StatusOr<std::unique_ptr<Disk>> disk = OpenFileDisk(path, file);
  ASSERT_OK(disk);
  MakeDevice(OneUnit(*std::move(disk)));
  ASSERT_OK(device_->SetFeatures(Bit(kFeatureVersion1) | Bit(VIRTIO_SCSI_F_CHANGE)));

  // An event buffer waits; nothing to deliver yet.
  const uint64_t event_gpa = ram_.Allocate(sizeof(virtio_scsi_event));
  ASSERT_OK(events().Add({}, {{event_gpa, sizeof(virtio_scsi_event)}}));
  events().Run(*device_);
  EXPECT_TRUE(events().Used().empty());

  ASSERT_EQ(ftruncate(fd, 2 * kDiskBytes), 0);
  device_->Reload();
  ASSERT_TRUE(events().RunWhenReady(*device_, absl::Seconds(10)).has_value());
  std::vector<UsedElement> used = events().Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, sizeof(virtio_scsi_event));
  virtio_scsi_event e;
  std::memcpy(&e, ram_.Host(event_gpa, sizeof(e)), sizeof(e));
  EXPECT_EQ(e.event, VIRTIO_SCSI_T_PARAM_CHANGE);
  EXPECT_EQ(e.reason, 0x2au | 0x09u << 8);  // CAPACITY DATA HAS CHANGED
  EXPECT_EQ(e.lun[0], 1);
  EXPECT_EQ(e.lun[1], 0);
  EXPECT_EQ(e.lun[2], 0);

  // And the unit reports it to the next command, then serves the new capacity.
  uint64_t tur = AddCommand({TEST_UNIT_READY, 0, 0, 0, 0, 0}, 0);
  requests().Run(*device_);
  EXPECT_EQ(Response(tur).sense[12], 0x2a);
  EXPECT_EQ(Response(tur).sense[13], 0x09);
  const uint64_t cap = AddCommand({READ_CAPACITY, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8);
  requests().Run(*device_);
  const uint8_t* data = ram_.Host(cap + sizeof(virtio_scsi_cmd_resp), 8);
  const uint32_t last = uint32_t{data[0]} << 24 | data[1] << 16 | data[2] << 8 | data[3];
  EXPECT_EQ(last, 2 * kDiskBytes / 512 - 1);
  close(fd);
  unlink(path.c_str());
}

// Reads the event the device delivered into a fresh buffer.
virtio_scsi_event NextEvent(TestQueue& events, FakeGuestMemory& ram, ScsiDevice& device) {
  const uint64_t gpa = ram.Allocate(sizeof(virtio_scsi_event));
  EXPECT_OK(events.Add({}, {{gpa, sizeof(virtio_scsi_event)}}));
  events.Run(device);
  virtio_scsi_event e{};
  std::vector<UsedElement> used = events.Used();
  EXPECT_EQ(used.size(), 1u);
  if (!used.empty()) std::memcpy(&e, ram.Host(gpa, sizeof(e)), sizeof(e));
  return e;
}

TEST_F(ScsiDeviceTest, HotplugAddsAndRemovesLunsWithEvents) {
  MakeDevice(OneUnit(std::make_unique<HeldDisk>()));
  ASSERT_OK(device_->SetFeatures(Bit(kFeatureVersion1) | Bit(VIRTIO_SCSI_F_HOTPLUG)));
  std::vector<UniqueFd> no_fds;
  absl::StatusOr<std::string> added = device_->Control("add null=2M,lun=3", no_fds);
  ASSERT_OK(added);
  EXPECT_EQ(*added, "target=0 lun=3");
  virtio_scsi_event e = NextEvent(events(), ram_, *device_);
  EXPECT_EQ(e.event, VIRTIO_SCSI_T_TRANSPORT_RESET);
  EXPECT_EQ(e.reason, VIRTIO_SCSI_EVT_RESET_RESCAN);
  EXPECT_EQ(e.lun[1], 0);
  EXPECT_EQ(e.lun[2], 0);  // peripheral addressing: Linux reads bytes 2-3 as the LUN
  EXPECT_EQ(e.lun[3], 3);
  EXPECT_EQ(*device_->Control("list", no_fds), "0:0 0:3");

  // The LUN already there reports the change once; the new one serves at once.
  uint64_t tur = AddCommand({TEST_UNIT_READY, 0, 0, 0, 0, 0}, 0);
  requests().Run(*device_);
  EXPECT_EQ(Response(tur).sense[12], 0x3f);
  EXPECT_EQ(Response(tur).sense[13], 0x0e);
  const uint64_t cap = AddCommand({READ_CAPACITY, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 8, 2, /*lun=*/3);
  requests().Run(*device_);
  EXPECT_EQ(Response(cap).status, 0);
  EXPECT_EQ(ram_.Host(cap + sizeof(virtio_scsi_cmd_resp))[2], 0x0f);  // 4096 blocks - 1

  // Addresses in use, bad specs, a file LUN without its descriptor: refused, nothing changes.
  EXPECT_FALSE(device_->Control("add null=1M,lun=3", no_fds).ok());
  EXPECT_FALSE(device_->Control("add file=x.img", no_fds).ok());
  EXPECT_FALSE(device_->Control("add colour=blue", no_fds).ok());
  EXPECT_FALSE(device_->Control("remove target=0,lun=9", no_fds).ok());
  EXPECT_FALSE(device_->Control("frobnicate", no_fds).ok());
  EXPECT_EQ(device_->pending_events(), 0u);

  ASSERT_OK(device_->Control("remove target=0,lun=3", no_fds));
  e = NextEvent(events(), ram_, *device_);
  EXPECT_EQ(e.event, VIRTIO_SCSI_T_TRANSPORT_RESET);
  EXPECT_EQ(e.reason, VIRTIO_SCSI_EVT_RESET_REMOVED);
  EXPECT_EQ(e.lun[3], 3);
  const uint64_t gone = AddCommand({TEST_UNIT_READY, 0, 0, 0, 0, 0}, 0, 3, /*lun=*/3);
  requests().Run(*device_);
  EXPECT_EQ(Response(gone).sense[12], 0x25);  // LOGICAL UNIT NOT SUPPORTED
}

TEST_F(ScsiDeviceTest, EventsWaitingForBuffersAreBounded) {
  MakeDevice(OneUnit(std::make_unique<HeldDisk>()));
  ASSERT_OK(device_->SetFeatures(Bit(kFeatureVersion1) | Bit(VIRTIO_SCSI_F_HOTPLUG)));
  std::vector<UniqueFd> no_fds;
  for (int lun = 1; lun <= 70; ++lun) {
    ASSERT_OK(device_->Control(absl::StrCat("add null=1M,lun=", lun), no_fds));
  }
  EXPECT_EQ(device_->pending_events(), 64u);  // the rest dropped, and said to be
  virtio_scsi_event e = NextEvent(events(), ram_, *device_);
  EXPECT_EQ(e.event, VIRTIO_SCSI_T_TRANSPORT_RESET | VIRTIO_SCSI_T_EVENTS_MISSED);
  e = NextEvent(events(), ram_, *device_);
  EXPECT_EQ(e.event, VIRTIO_SCSI_T_TRANSPORT_RESET);  // reported once
}

TEST_F(ScsiDeviceTest, RemovedLunFinishesItsIoInFlight) {
  auto owned = std::make_unique<HeldDisk>();
  HeldDisk* disk = owned.get();
  std::vector<UnitToServe> units = OneUnit(std::make_unique<HeldDisk>());
  units.emplace_back();
  units.back().spec.lun = 1;
  units.back().disk = std::move(owned);
  MakeDevice(std::move(units));
  const uint64_t read = AddCommand({READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512, 5, /*lun=*/1);
  requests().Run(*device_);
  ASSERT_EQ(disk->held(), 1u);
  ASSERT_OK(device_->RemoveUnit(0, 1));
  // A turn: the queue drops the old table. The command keeps its unit (and disk) until it
  // completes (under ASan, a freed disk would fail Release below).
  requests().Run(*device_);
  EXPECT_TRUE(requests().Used().empty());
  disk->Release();
  requests().Run(*device_);
  ASSERT_EQ(requests().Used().size(), 1u);
  EXPECT_EQ(Response(read).status, 0);
  EXPECT_EQ(Response(read).response, VIRTIO_SCSI_S_OK);
}

TEST_F(ScsiDeviceTest, ReservationsWithAptplSurviveARestart) {
  const std::string state = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") +
                            "/pr_state_" + std::to_string(getpid());
  unlink(state.c_str());
  auto unit_with_state = [&] {
    std::vector<UnitToServe> units = OneUnit(std::make_unique<HeldDisk>());
    units[0].spec.pr_state = state;
    absl::StatusOr<std::unique_ptr<StateFile>> file = StateFile::Open(state);
    EXPECT_OK(file);
    units[0].reservations = *std::move(file);
    return units;
  };
  MakeDevice(unit_with_state());
  // PERSISTENT RESERVE OUT, REGISTER key 0x1122334455667788 with APTPL.
  std::vector<uint8_t> parameters(24, 0);
  for (int i = 0; i < 8; ++i) parameters[8 + i] = 0x11 * (i + 1);
  parameters[20] = 0x01;  // APTPL
  const uint64_t reg = AddCommand({0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0}, 0, 1, 0, parameters);
  requests().Run(*device_);
  ASSERT_EQ(Response(reg).status, 0) << int(Response(reg).sense[12]);

  // A new daemon on the same state file: the key is registered there.
  for (auto& queue : queues_) queue->Stop(*device_);
  queues_.clear();
  MakeDevice(unit_with_state());
  const uint64_t keys = AddCommand({0x5e, 0x00, 0, 0, 0, 0, 0, 0, 64, 0}, 64);
  requests().Run(*device_);
  ASSERT_EQ(Response(keys).status, 0);
  const uint8_t* data = ram_.Host(keys + sizeof(virtio_scsi_cmd_resp), 16);
  EXPECT_EQ(data[7], 8);  // one key
  EXPECT_EQ(data[8], 0x11);
  EXPECT_EQ(data[15], 0x88);
  unlink(state.c_str());
}

}  // namespace
}  // namespace vhost::scsi
