// Block back ends driven the same way through our own front end: vhost-user-blk (ours) and
// qemu-storage-daemon's vhost-user-blk export, each on a null backing and on the same file in
// /tmp (page-cached, buffered I/O for both). 4 KiB random reads at queue depth 1 and 32 with one
// and two queues, 1 MiB sequential reads and writes; IOPS or MB/s, the daemon's CPU time per
// request, and the ratio ours/theirs. Same CPU budget: each daemon is pinned to CPU 0, the front
// end (one busy-polling thread per queue) to CPU 1. Prints a table; asserts nothing.
//
//   bazel build //tests/bench:blk_bench && bazel-bin/tests/bench/blk_bench --seconds=3 --repeat=3
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/blk_request.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

DEFINE_double(seconds, 2.0, "Measured time per case and run");
DEFINE_int32(repeat, 1, "Runs per case; the median is reported");
DEFINE_string(file, "/tmp/vhost-user-blk-bench.img", "Backing file (created, 512 MiB)");
DEFINE_string(qsd, "/usr/bin/qemu-storage-daemon", "qemu-storage-daemon binary");
DEFINE_string(ours_extra, "", "Extra flags for our daemon, comma-separated (experiments)");
DEFINE_string(only, "", "Run only the cases whose name contains this");

namespace vhost {
namespace {

using frontend::AddBlkRequest;
using frontend::AllocateBlkRequest;
using frontend::BlkRequest;
using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::FrontendQueue;
using testing::UsedElement;

constexpr uint64_t kFileBytes = 512 << 20;
constexpr uint64_t kNullBytes = 1ull << 30;

struct Case {
  const char* name;
  bool write;
  bool random;
  uint32_t block;
  int depth;
  int queues;
};

using Result = IoResult;

class Session {
 public:
  // `ours`: our daemon, else qemu-storage-daemon; `null`: null backing, else the file.
  absl::Status Start(bool ours, bool null, int queues) {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create("blkbench"));
    const std::string& sock = session_->socket();
    std::vector<std::string> args;
    if (ours) {
      args = {"-c",
              "0",
              RunfilePath("vhost-user-blk/vhost-user-blk"),
              "--socket-path=" + sock,
              absl::StrCat("--num-queues=", queues),
              "--minloglevel=1"};
      args.push_back(null ? absl::StrCat("--null-size=", kNullBytes) : "--blk-file=" + FLAGS_file);
      for (absl::string_view flag : absl::StrSplit(FLAGS_ours_extra, ',', absl::SkipEmpty())) {
        args.emplace_back(flag);
      }
    } else {
      const std::string blockdev =
          null
              ? absl::StrCat("driver=null-co,node-name=n,size=", kNullBytes, ",read-zeroes=on")
              : "driver=file,node-name=n,filename=" + FLAGS_file + ",cache.direct=off,aio=io_uring";
      args = {"-c",
              "0",
              FLAGS_qsd,
              "--blockdev",
              blockdev,
              "--export",
              absl::StrCat("type=vhost-user-blk,id=e,node-name=n,addr.type=unix,addr.path=", sock,
                           ",writable=on,num-queues=", queues)};
    }
    RETURN_IF_ERROR(session_->Start("taskset", args));
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(kFeatureIndirectDesc) |
                       Bit(VIRTIO_BLK_F_MQ) | Bit(VIRTIO_BLK_F_FLUSH) | Bit(VIRTIO_BLK_F_SEG_MAX);
    options.required_features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx);
    options.ram_size = 256 << 20;
    options.queue_sizes.assign(queues, 128);
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    return absl::OkStatus();
  }

  absl::StatusOr<Result> Run(const Case& c, uint64_t disk_bytes, absl::Duration duration) {
    // Requests allocated once per case.
    std::vector<std::vector<BlkRequest>> requests(c.queues);
    for (int q = 0; q < c.queues; ++q) {
      for (int i = 0; i < c.depth; ++i) {
        ASSIGN_OR_RETURN(
            BlkRequest r,
            AllocateBlkRequest(device_->ram(), c.write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 0,
                               c.block));
        requests[q].push_back(r);
      }
    }
    std::vector<uint64_t> done(c.queues, 0);
    std::vector<absl::Status> status(c.queues);
    const absl::Duration cpu_before = ProcessCpuTime(session_->daemon()->pid());
    const absl::Time start = absl::Now();
    std::vector<std::thread> threads;
    for (int q = 0; q < c.queues; ++q) {
      threads.emplace_back([&, q] {
        status[q] =
            Drive(*device_->queue(q), requests[q], c, disk_bytes, start + duration, q, &done[q]);
      });
    }
    for (auto& t : threads) t.join();
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    const absl::Duration cpu = ProcessCpuTime(session_->daemon()->pid()) - cpu_before;
    for (const absl::Status& s : status) RETURN_IF_ERROR(s);
    uint64_t total = 0;
    for (uint64_t d : done) total += d;
    Result r;
    r.ops_per_second = total / seconds;
    r.megabytes_per_second = total * static_cast<double>(c.block) / seconds / 1e6;
    r.cpu_us_per_op = absl::ToDoubleMicroseconds(cpu) / std::max<uint64_t>(total, 1);
    return r;
  }

 private:
  static absl::Status Drive(FrontendQueue& queue, std::vector<BlkRequest>& requests, const Case& c,
                            uint64_t disk_bytes, absl::Time end, int seed, uint64_t* done) {
    std::mt19937_64 rng(seed + 1);
    const uint64_t blocks = disk_bytes / c.block;
    uint64_t next_block = (disk_bytes / 2 / c.block) * seed;  // sequential streams apart
    std::vector<int> index_of(queue.config().size, -1);
    auto submit = [&](int i) -> absl::Status {
      const uint64_t block = c.random ? rng() % blocks : next_block++ % blocks;
      frontend::RewriteBlkRequest(&requests[i], c.write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
                                  block * (c.block / 512));
      ASSIGN_OR_RETURN(const uint16_t id, AddBlkRequest(&queue.ring(), requests[i]));
      index_of[id] = i;
      return absl::OkStatus();
    };
    for (size_t i = 0; i < requests.size(); ++i) RETURN_IF_ERROR(submit(i));
    RETURN_IF_ERROR(queue.Submit().status());
    while (absl::Now() < end) {
      ASSIGN_OR_RETURN(UsedElement used, queue.WaitForUsed(absl::Seconds(10), /*busy_poll=*/true));
      for (;;) {
        const int i = index_of[used.id];
        if (*requests[i].status != VIRTIO_BLK_S_OK) return absl::InternalError("request failed");
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

  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<DeviceConnection> device_;
};

int Main() {
  if (absl::Status s = MakeFilledFile(FLAGS_file, kFileBytes); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  PinTo(1);
  const Case cases[] = {
      {"4k randread qd1 1q", false, true, 4096, 1, 1},
      {"4k randread qd32 1q", false, true, 4096, 32, 1},
      {"4k randread qd32 2q", false, true, 4096, 16, 2},
      {"1M seqread qd8", false, false, 1 << 20, 8, 1},
      {"1M seqwrite qd8", true, false, 1 << 20, 8, 1},
  };
  std::printf(
      "block back ends through our front end; daemon on CPU 0, front end on CPU 1; "
      "%.1f s x %d runs (median)\n",
      FLAGS_seconds, FLAGS_repeat);
  std::printf("%-6s %-22s %12s %10s %10s %12s %10s %10s %8s\n", "disk", "case", "ours IOPS", "MB/s",
              "CPU/op", "qsd IOPS", "MB/s", "CPU/op", "ratio");
  for (bool null : {true, false}) {
    for (const Case& c : cases) {
      if (!absl::StrContains(c.name, FLAGS_only)) continue;
      Result results[2];
      for (bool ours : {true, false}) {
        absl::StatusOr<Result> r = MedianOfRuns(FLAGS_repeat, [&]() -> absl::StatusOr<Result> {
          Session session;
          if (absl::Status s = session.Start(ours, null, c.queues); !s.ok()) return s;
          return session.Run(c, null ? kNullBytes : kFileBytes, absl::Seconds(FLAGS_seconds));
        });
        if (!r.ok()) {
          std::fprintf(stderr, "%s %s: %s\n", ours ? "ours" : "qsd", c.name,
                       r.status().ToString().c_str());
          return 1;
        }
        results[ours ? 0 : 1] = *r;
      }
      PrintComparison(null ? "null" : "file", 22, c.name, results[0], results[1]);
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
