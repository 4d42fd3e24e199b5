// Block back ends driven the same way through our own front end: vhost-user-blk (ours) and
// qemu-storage-daemon's vhost-user-blk export, each on a null backing and on the same file in
// /tmp (page-cached, buffered I/O for both). 4 KiB random reads at queue depth 1 and 32 with one
// and two queues, 1 MiB sequential reads and writes; IOPS or MB/s, the daemon's CPU time per
// request, and the ratio ours/theirs. Same CPU budget: each daemon is pinned to CPU 0, the front
// end (one busy-polling thread per queue) to CPU 1. Prints a table; asserts nothing.
//
// --mode=limit: the kernel's limit for 4 KiB random reads on the daemon's CPU, fio's io_uring
// engine in-process (no virtqueue) on the same warmed file (buffered, --invalidate=0) and with
// O_DIRECT on a loop device over it, against ours on the same file and the same loop device
// (--direct=on): ours / fio. --mode=curves: CSV of IOPS and daemon CPU per request over queue
// depth (one queue) and queue count, ours and qemu-storage-daemon, null and file
// (tests/bench/blk_curves.py plots it).
//
//   bazel build //tests/bench:blk_bench && bazel-bin/tests/bench/blk_bench --seconds=3 --repeat=3
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <sched.h>
#include <stdio.h>
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
DEFINE_string(mode, "table",
              "table (ours against qemu-storage-daemon), limit (against fio), curves");
DEFINE_string(daemon_cpus, "0", "CPU list of the daemons and of fio (taskset -c syntax)");
DEFINE_string(frontend_cpus, "1",
              "CPUs of the front-end threads, comma-separated: queue i on the "
              "i-th modulo their count");
DEFINE_string(depths, "1,2,4,8,16,32,64,128", "--mode=curves: queue depths on one queue");
DEFINE_string(queue_counts, "1,2", "--mode=curves: queue counts, each queue at --queue_depth");
DEFINE_int32(queue_depth, 32, "--mode=curves: depth of each queue on the queue-count curve");
DEFINE_string(fio, "/usr/bin/fio", "fio binary (--mode=limit)");
DEFINE_bool(loop, true, "--mode=limit: also the O_DIRECT rows on a loop device (losetup)");

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

// The CPU of queue `q`'s front-end thread, from --frontend_cpus.
int FrontendCpu(int q) {
  std::vector<int> cpus;
  for (absl::string_view c : absl::StrSplit(FLAGS_frontend_cpus, ',', absl::SkipEmpty())) {
    cpus.push_back(std::atoi(std::string(c).c_str()));
  }
  return cpus.empty() ? 1 : cpus[q % cpus.size()];
}

// Ring entries for `depth` requests of 3 descriptors each: 128, or the next power of two.
int RingSizeFor(int depth) {
  int size = 128;
  while (size < 3 * depth) size *= 2;
  return size;
}

std::vector<int> IntList(const std::string& list) {
  std::vector<int> v;
  for (absl::string_view x : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    v.push_back(std::atoi(std::string(x).c_str()));
  }
  return v;
}

class Session {
 public:
  // `ours`: our daemon, else qemu-storage-daemon; `null`: null backing, else `path` (the file by
  // default), with O_DIRECT if `direct`. `queue_size`: entries of each split ring.
  absl::Status Start(bool ours, bool null, int queues, const std::string& path = FLAGS_file,
                     bool direct = false, int queue_size = 128) {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create("blkbench"));
    const std::string& sock = session_->socket();
    std::vector<std::string> args;
    if (ours) {
      args = {"-c",
              FLAGS_daemon_cpus,
              RunfilePath("vhost-user-blk/vhost-user-blk"),
              "--socket-path=" + sock,
              absl::StrCat("--num-queues=", queues),
              "--minloglevel=1"};
      args.push_back(null ? absl::StrCat("--null-size=", kNullBytes) : "--blk-file=" + path);
      if (!null && direct) args.push_back("--direct=on");
      for (absl::string_view flag : absl::StrSplit(FLAGS_ours_extra, ',', absl::SkipEmpty())) {
        args.emplace_back(flag);
      }
    } else {
      const std::string blockdev =
          null
              ? absl::StrCat("driver=null-co,node-name=n,size=", kNullBytes, ",read-zeroes=on")
              : absl::StrCat(absl::StartsWith(path, "/dev/") ? "driver=host_device" : "driver=file",
                             ",node-name=n,filename=", path,
                             ",cache.direct=", direct ? "on" : "off", ",aio=io_uring");
      args = {"-c",
              FLAGS_daemon_cpus,
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
    options.queue_sizes.assign(queues, queue_size);
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
        PinTo(FrontendCpu(q));
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

int TableMain() {
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
  return 0;
}

// Median of --repeat runs of case `c` on a fresh daemon each.
absl::StatusOr<Result> Measure(bool ours, bool null, const Case& c,
                               const std::string& path = FLAGS_file, bool direct = false) {
  return MedianOfRuns(FLAGS_repeat, [&]() -> absl::StatusOr<Result> {
    Session session;
    RETURN_IF_ERROR(session.Start(ours, null, c.queues, path, direct, RingSizeFor(c.depth)));
    return session.Run(c, null ? kNullBytes : kFileBytes, absl::Seconds(FLAGS_seconds));
  });
}

// Reads the whole file once so that every block is in the page cache before fio or a daemon
// reads it (fio's --invalidate=0 then keeps it there).
absl::Status WarmFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "open " + path);
  std::vector<char> chunk(1 << 20);
  while (read(fd, chunk.data(), chunk.size()) > 0) {
  }
  close(fd);
  return absl::OkStatus();
}

// Runs `command` through the shell; its standard output, trimmed of the last newline.
absl::StatusOr<std::string> Output(const std::string& command) {
  FILE* f = popen(command.c_str(), "r");
  if (f == nullptr) return absl::ErrnoToStatus(errno, "popen");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  if (int rc = pclose(f); rc != 0) return absl::InternalError(absl::StrCat(command, ": exit ", rc));
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// The number after `"key" : ` from `from` on in fio's JSON output, or -1.
double JsonNumber(const std::string& json, const std::string& key, size_t from) {
  const size_t at = json.find("\"" + key + "\" : ", from);
  return at == std::string::npos ? -1 : std::atof(json.c_str() + at + key.size() + 5);
}

// fio's io_uring engine, 4 KiB random reads at `depth` on `path`, pinned to the daemon's CPUs:
// IOPS and fio's own CPU time per request (user + system).
absl::StatusOr<Result> RunFio(const std::string& path, int depth, bool direct) {
  const std::string command = absl::StrCat(
      FLAGS_fio, " --name=limit --ioengine=io_uring --rw=randread --bs=4k --iodepth=", depth,
      " --direct=", direct ? 1 : 0, " --invalidate=0 --filename=", path,
      " --time_based --runtime=", static_cast<int>(FLAGS_seconds * 1000),
      "ms --cpus_allowed=", FLAGS_daemon_cpus, " --output-format=json");
  std::vector<double> ops, cpu;
  for (int i = 0; i < FLAGS_repeat; ++i) {
    ASSIGN_OR_RETURN(const std::string json, Output(command));
    const size_t read = json.find("\"read\" : {");
    const double iops = JsonNumber(json, "iops", read);
    const double usr = JsonNumber(json, "usr_cpu", 0), sys = JsonNumber(json, "sys_cpu", 0);
    if (read == std::string::npos || iops <= 0 || usr < 0 || sys < 0) {
      return absl::InternalError("no figures in fio's output: " + json.substr(0, 300));
    }
    ops.push_back(iops);
    cpu.push_back((usr + sys) / 100 / iops * 1e6);
  }
  return Result{Median(ops), Median(ops) * 4096 / 1e6, Median(cpu)};
}

int LimitMain() {
  if (absl::Status s = WarmFile(FLAGS_file); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::string loop;
  if (FLAGS_loop) {
    absl::StatusOr<std::string> dev = Output("losetup -f --show --direct-io=on " + FLAGS_file);
    if (!dev.ok()) {
      std::fprintf(stderr, "no loop device (%s): O_DIRECT rows left out\n",
                   dev.status().ToString().c_str());
    } else {
      loop = *dev;
    }
  }
  // Whether the loop driver really does direct I/O on the backing file (not on every file
  // system): /sys/block/loopN/loop/dio.
  std::string dio = "?";
  if (!loop.empty()) {
    std::ifstream f("/sys/block/" + loop.substr(loop.rfind('/') + 1) + "/loop/dio");
    std::getline(f, dio);
  }
  std::printf(
      "4 KiB random reads, ours (front end + virtqueue + daemon on CPUs %s) against fio's io_uring "
      "engine in-process on the same CPUs (no virtqueue: the kernel's limit); %.1f s x %d runs "
      "(median)%s\n",
      FLAGS_daemon_cpus.c_str(), FLAGS_seconds, FLAGS_repeat,
      loop.empty() ? "" : absl::StrCat("; loop device ", loop, ", dio=", dio).c_str());
  std::printf("%-6s %-22s %12s %10s %10s %12s %10s %10s %8s\n", "disk", "case", "ours IOPS", "MB/s",
              "CPU/op", "fio IOPS", "MB/s", "CPU/op", "ratio");
  int rc = 0;
  for (bool direct : {false, true}) {
    if (direct && loop.empty()) continue;
    const std::string path = direct ? loop : FLAGS_file;
    for (int depth : {1, 32}) {
      const std::string name = absl::StrCat("4k randread qd", depth, direct ? " direct" : "");
      if (!absl::StrContains(name, FLAGS_only)) continue;
      const Case c = {name.c_str(), false, true, 4096, depth, 1};
      absl::StatusOr<Result> ours = Measure(true, false, c, path, direct);
      absl::StatusOr<Result> fio = RunFio(path, depth, direct);
      if (!ours.ok() || !fio.ok()) {
        std::fprintf(stderr, "%s: ours %s, fio %s\n", name.c_str(),
                     ours.status().ToString().c_str(), fio.status().ToString().c_str());
        rc = 1;
        break;
      }
      PrintComparison(direct ? "loop" : "file", 22, name.c_str(), *ours, *fio);
    }
  }
  if (!loop.empty()) (void)Output("losetup -d " + loop);
  return rc;
}

// One CSV row per point: disk,daemon,queues,depth,iops,cpu_us_per_op. The queue-count curve at
// --queue_depth per queue; its one-queue point is on the depth curve already.
int CurvesMain() {
  std::printf("disk,daemon,queues,depth,iops,cpu_us_per_op\n");
  std::vector<std::pair<int, int>> points;  // queues, depth per queue
  for (int d : IntList(FLAGS_depths)) points.push_back({1, d});
  for (int q : IntList(FLAGS_queue_counts)) {
    if (std::find(points.begin(), points.end(), std::make_pair(q, FLAGS_queue_depth)) ==
        points.end()) {
      points.push_back({q, FLAGS_queue_depth});
    }
  }
  for (bool null : {true, false}) {
    for (bool ours : {true, false}) {
      for (const auto& [queues, depth] : points) {
        const std::string name = absl::StrCat("4k randread qd", depth, " ", queues, "q");
        const Case c = {name.c_str(), false, true, 4096, depth, queues};
        absl::StatusOr<Result> r = Measure(ours, null, c);
        if (!r.ok()) {
          std::fprintf(stderr, "%s: %s\n", name.c_str(), r.status().ToString().c_str());
          return 1;
        }
        std::printf("%s,%s,%d,%d,%.0f,%.3f\n", null ? "null" : "file", ours ? "ours" : "qsd",
                    queues, depth, r->ops_per_second, r->cpu_us_per_op);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

int Main() {
  if (absl::Status s = MakeFilledFile(FLAGS_file, kFileBytes); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  PinTo(FrontendCpu(0));
  const int rc = FLAGS_mode == "limit"    ? LimitMain()
                 : FLAGS_mode == "curves" ? CurvesMain()
                                          : TableMain();
  unlink(FLAGS_file.c_str());
  return rc;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return vhost::Main();
}
