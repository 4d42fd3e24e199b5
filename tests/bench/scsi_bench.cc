// vhost-user-scsi against vhost-user-blk, both ours, on the same backing and driven the same way
// through our front end: what the SCSI layer costs over blk's I/O path (issue 15 wants it within
// 10%). A null backing and the same file in /tmp (page-cached, buffered I/O for both); 4 KiB
// random reads at queue depth 1 and 32, 1 MiB sequential reads and writes; IOPS, MB/s, the
// daemon's CPU time per request and the ratio scsi/blk. Each daemon is pinned to CPU 0, the front
// end (one busy-polling thread) to CPU 1. Prints a table; asserts nothing.
//
//   bazel build -c opt //tests/bench:scsi_bench && bazel-bin/tests/bench/scsi_bench --repeat=3
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_scsi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/blk_request.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/scsi_driver.h"
#include "tests/integration/runfiles.h"

DEFINE_double(seconds, 2.0, "Measured time per case and run");
DEFINE_int32(repeat, 1, "Runs per case; the median is reported");
DEFINE_string(file, "/tmp/vhost-user-scsi-bench.img", "Backing file (created, 512 MiB)");
DEFINE_string(only, "", "Run only the cases whose name contains this");

namespace vhost {
namespace {

using frontend::AddBlkRequest;
using frontend::AddScsiCommand;
using frontend::AllocateBlkRequest;
using frontend::AllocateScsiCommand;
using frontend::BlkRequest;
using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::FrontendQueue;
using frontend::ScsiCommand;
using frontend::ScsiDriver;
using testing::UsedElement;

constexpr uint64_t kFileBytes = 512 << 20;
constexpr uint64_t kNullBytes = 1ull << 30;
constexpr uint32_t kQueueSize = 128;

struct Case {
  const char* name;
  bool write;
  bool random;
  uint32_t block;
  int depth;
};

using Result = IoResult;

// One in-flight slot of either device: (re)writes its request for a byte offset and adds it to
// the ring; checks its answer once used.
struct Slot {
  std::function<absl::StatusOr<uint16_t>(uint64_t offset)> add;
  std::function<bool()> ok;
};

class Session {
 public:
  absl::Status Start(bool scsi, bool null) {
    scsi_ = scsi;
    ASSIGN_OR_RETURN(session_, DaemonSession::Create("scsibench"));
    const std::string& sock = session_->socket();
    std::vector<std::string> args = {"-c", "0"};
    if (scsi) {
      args.push_back(RunfilePath("vhost-user-scsi/vhost-user-scsi"));
      args.push_back(null ? absl::StrCat("--lun=null=", kNullBytes) : "--lun=file=" + FLAGS_file);
    } else {
      args.push_back(RunfilePath("vhost-user-blk/vhost-user-blk"));
      args.push_back(null ? absl::StrCat("--null-size=", kNullBytes) : "--blk-file=" + FLAGS_file);
    }
    args.push_back("--socket-path=" + sock);
    args.push_back("--minloglevel=1");
    RETURN_IF_ERROR(session_->Start("taskset", args));
    if (scsi) {
      ScsiDriver::Options options;
      options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(kFeatureIndirectDesc);
      options.queue_size = kQueueSize;
      options.ram_size = 256 << 20;
      options.max_data = 4096;  // Run() is not used; the cases allocate their own
      ASSIGN_OR_RETURN(scsi_driver_, ScsiDriver::Start(sock, options));
      return absl::OkStatus();
    }
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(kFeatureIndirectDesc) |
                       Bit(VIRTIO_BLK_F_FLUSH) | Bit(VIRTIO_BLK_F_SEG_MAX);
    options.required_features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx);
    options.ram_size = 256 << 20;
    options.queue_sizes = {kQueueSize};
    ASSIGN_OR_RETURN(blk_device_, session_->Open(options));
    return absl::OkStatus();
  }

  absl::StatusOr<Result> Run(const Case& c, uint64_t disk_bytes, absl::Duration duration) {
    FrontendQueue* queue = scsi_ ? scsi_driver_->request_queue(0) : blk_device_->queue(0);
    std::vector<Slot> slots;
    for (int i = 0; i < c.depth; ++i) {
      ASSIGN_OR_RETURN(Slot slot, MakeSlot(c, queue));
      slots.push_back(std::move(slot));
    }
    uint64_t done = 0;
    const absl::Duration cpu_before = ProcessCpuTime(session_->daemon()->pid());
    const absl::Time start = absl::Now();
    RETURN_IF_ERROR(Drive(*queue, slots, c, disk_bytes, start + duration, &done));
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    const absl::Duration cpu = ProcessCpuTime(session_->daemon()->pid()) - cpu_before;
    Result r;
    r.ops_per_second = done / seconds;
    r.megabytes_per_second = done * static_cast<double>(c.block) / seconds / 1e6;
    r.cpu_us_per_op = absl::ToDoubleMicroseconds(cpu) / std::max<uint64_t>(done, 1);
    return r;
  }

 private:
  absl::StatusOr<Slot> MakeSlot(const Case& c, FrontendQueue* queue) {
    Slot slot;
    if (scsi_) {
      ASSIGN_OR_RETURN(
          ScsiCommand command,
          AllocateScsiCommand(scsi_driver_->ram(), c.write ? c.block : 0, c.write ? 0 : c.block));
      slot.add = [command, queue, c](uint64_t offset) mutable {
        // READ/WRITE(10), as Linux's sd issues them for a disk this size.
        const uint32_t lba = static_cast<uint32_t>(offset / 512);
        const uint16_t blocks = static_cast<uint16_t>(c.block / 512);
        const uint8_t cdb[10] = {static_cast<uint8_t>(c.write ? 0x2a : 0x28),
                                 0,
                                 static_cast<uint8_t>(lba >> 24),
                                 static_cast<uint8_t>(lba >> 16),
                                 static_cast<uint8_t>(lba >> 8),
                                 static_cast<uint8_t>(lba),
                                 0,
                                 static_cast<uint8_t>(blocks >> 8),
                                 static_cast<uint8_t>(blocks),
                                 0};
        frontend::SetScsiCdb(&command, 0, 0, cdb);
        return AddScsiCommand(&queue->ring(), command);
      };
      slot.ok = [resp = command.resp] {
        return resp->response == VIRTIO_SCSI_S_OK && resp->status == 0;
      };
      return slot;
    }
    const uint32_t type = c.write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
    ASSIGN_OR_RETURN(BlkRequest request, AllocateBlkRequest(blk_device_->ram(), type, 0, c.block));
    slot.add = [request, queue, type](uint64_t offset) mutable {
      frontend::RewriteBlkRequest(&request, type, offset / 512);
      return AddBlkRequest(&queue->ring(), request);
    };
    slot.ok = [status = request.status] { return *status == VIRTIO_BLK_S_OK; };
    return slot;
  }

  static absl::Status Drive(FrontendQueue& queue, std::vector<Slot>& slots, const Case& c,
                            uint64_t disk_bytes, absl::Time end, uint64_t* done) {
    std::mt19937_64 rng(1);
    const uint64_t blocks = disk_bytes / c.block;
    uint64_t next_block = 0;
    std::vector<int> index_of(queue.config().size, -1);
    auto submit = [&](int i) -> absl::Status {
      const uint64_t block = c.random ? rng() % blocks : next_block++ % blocks;
      ASSIGN_OR_RETURN(const uint16_t id, slots[i].add(block * c.block));
      index_of[id] = i;
      return absl::OkStatus();
    };
    for (size_t i = 0; i < slots.size(); ++i) RETURN_IF_ERROR(submit(i));
    RETURN_IF_ERROR(queue.Submit().status());
    while (absl::Now() < end) {
      ASSIGN_OR_RETURN(UsedElement used, queue.WaitForUsed(absl::Seconds(10), /*busy_poll=*/true));
      for (;;) {
        const int i = index_of[used.id];
        if (!slots[i].ok()) return absl::InternalError("request failed");
        ++*done;
        RETURN_IF_ERROR(submit(i));
        ASSIGN_OR_RETURN(absl::optional<UsedElement> more, queue.PollUsed());
        if (!more) break;
        used = *more;
      }
      RETURN_IF_ERROR(queue.Submit().status());
    }
    while (queue.ring().in_flight() > 0) {
      RETURN_IF_ERROR(queue.WaitForUsed(absl::Seconds(10), true).status());
    }
    return absl::OkStatus();
  }

  bool scsi_ = false;
  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<ScsiDriver> scsi_driver_;
  std::unique_ptr<DeviceConnection> blk_device_;
};

int Main() {
  if (absl::Status s = MakeFilledFile(FLAGS_file, kFileBytes); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  PinTo(1);
  const Case cases[] = {
      {"4k randread qd1", false, true, 4096, 1},
      {"4k randread qd32", false, true, 4096, 32},
      {"1M seqread qd8", false, false, 1 << 20, 8},
      {"1M seqwrite qd8", true, false, 1 << 20, 8},
  };
  std::printf(
      "vhost-user-scsi vs vhost-user-blk through our front end; daemon on CPU 0, front end on "
      "CPU 1; %.1f s x %d runs (median)\n",
      FLAGS_seconds, FLAGS_repeat);
  std::printf("%-6s %-18s %12s %10s %10s %12s %10s %10s %8s\n", "disk", "case", "scsi IOPS", "MB/s",
              "CPU/op", "blk IOPS", "MB/s", "CPU/op", "ratio");
  for (bool null : {true, false}) {
    for (const Case& c : cases) {
      if (!absl::StrContains(c.name, FLAGS_only)) continue;
      Result results[2];
      for (bool scsi : {true, false}) {
        absl::StatusOr<Result> r = MedianOfRuns(FLAGS_repeat, [&]() -> absl::StatusOr<Result> {
          Session session;
          if (absl::Status s = session.Start(scsi, null); !s.ok()) return s;
          return session.Run(c, null ? kNullBytes : kFileBytes, absl::Seconds(FLAGS_seconds));
        });
        if (!r.ok()) {
          std::fprintf(stderr, "%s %s: %s\n", scsi ? "scsi" : "blk", c.name,
                       r.status().ToString().c_str());
          return 1;
        }
        results[scsi ? 0 : 1] = *r;
      }
      PrintComparison(null ? "null" : "file", 18, c.name, results[0], results[1]);
    }
  }
  unlink(FLAGS_file.c_str());
  return 0;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return vhost::Main();
}
