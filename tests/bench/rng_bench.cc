// Throughput of vhost-user-rng through our own front end: requests per second and MB/s for 64 B
// and 4 KiB requests at a fixed queue depth, with the daemon's CPU time per request, in two
// modes: "notify" (kick and call eventfds, both sides sleep) and "poll" (the front end spins on
// the used ring and the daemon busy-polls with --poll-us). Also the daemon's binary size and its
// resident memory when idle. Prints a table; asserts nothing.
//
//   bazel run -c opt //tests/bench:rng_bench -- --seconds=2 --repeat=3
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

DEFINE_string(daemon, "", "vhost-user-rng binary (default: the one built with this benchmark)");
DEFINE_double(seconds, 2.0, "Measured time per run");
DEFINE_int32(repeat, 3, "Runs per case; the median is reported");
DEFINE_int32(depth, 32, "Requests kept in flight");
DEFINE_int32(poll_us, 50, "--poll-us given to the daemon in poll mode");

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::FrontendQueue;
using testing::UsedElement;

long ResidentKiB(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
    std::getline(status, key);
  }
  return -1;
}

struct Result {
  double requests_per_second = 0;
  double megabytes_per_second = 0;
  double cpu_us_per_request = 0;
};

constexpr uint32_t kMaxRequest = 4096;

class Bench {
 public:
  absl::Status Start(bool poll) {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create("rngbench"));
    RETURN_IF_ERROR(session_->Start(
        FLAGS_daemon.empty() ? RunfilePath("vhost-user-rng/vhost-user-rng") : FLAGS_daemon,
        {"--socket-path=" + session_->socket(), "--minloglevel=1",
         absl::StrCat("--poll-us=", poll ? FLAGS_poll_us : 0)}));
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(kFeatureIndirectDesc);
    options.required_features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx);
    options.ram_size = 64 << 20;
    options.queue_sizes = {256};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    queue_ = device_->queue();
    buffers_.resize(FLAGS_depth);
    for (auto& gpa : buffers_) {
      ASSIGN_OR_RETURN(gpa, device_->ram()->Allocate(kMaxRequest, 64));
    }
    return absl::OkStatus();
  }

  pid_t pid() const { return session_->daemon()->pid(); }

  absl::StatusOr<Result> Run(uint32_t request_size, bool poll, absl::Duration duration) {
    if (request_size > kMaxRequest) return absl::InvalidArgumentError("request too large");
    std::vector<int> buffer_of_id(queue_->config().size, -1);
    auto add = [&](int i) -> absl::Status {
      ASSIGN_OR_RETURN(const uint16_t id,
                       queue_->ring().AddChain({}, {{buffers_[i], request_size}}));
      buffer_of_id[id] = i;
      return absl::OkStatus();
    };
    for (int i = 0; i < FLAGS_depth; ++i) RETURN_IF_ERROR(add(i));
    RETURN_IF_ERROR(queue_->Submit().status());

    uint64_t completed = 0, bytes = 0;
    const absl::Duration cpu_before = ProcessCpuTime(pid());
    const absl::Time start = absl::Now();
    const absl::Time end = start + duration;
    while (absl::Now() < end) {
      ASSIGN_OR_RETURN(UsedElement used, queue_->WaitForUsed(absl::Seconds(5), poll));
      for (;;) {
        ++completed;
        bytes += used.len;
        RETURN_IF_ERROR(add(buffer_of_id[used.id]));
        ASSIGN_OR_RETURN(absl::optional<UsedElement> more, queue_->PollUsed());
        if (!more) break;
        used = *more;
      }
      RETURN_IF_ERROR(queue_->Submit().status());
    }
    const absl::Duration elapsed = absl::Now() - start;
    const absl::Duration cpu = ProcessCpuTime(pid()) - cpu_before;
    // Let the in-flight requests finish so the next run starts from an idle ring.
    while (queue_->ring().in_flight() > 0) {
      RETURN_IF_ERROR(queue_->WaitForUsed(absl::Seconds(5), poll).status());
    }
    Result r;
    const double seconds = absl::ToDoubleSeconds(elapsed);
    r.requests_per_second = completed / seconds;
    r.megabytes_per_second = bytes / seconds / 1e6;
    r.cpu_us_per_request = absl::ToDoubleMicroseconds(cpu) / completed;
    return r;
  }

 private:
  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<DeviceConnection> device_;
  FrontendQueue* queue_ = nullptr;  // device_'s
  std::vector<uint64_t> buffers_;   // one per request in flight, in guest memory
};

// The source's own limit: getrandom(2) into a buffer in this process, no virtqueue.
double RawGetrandomPerSecond(uint32_t size, absl::Duration duration) {
  std::vector<uint8_t> buffer(size);
  uint64_t calls = 0;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < duration) {
    if (getrandom(buffer.data(), size, 0) == static_cast<ssize_t>(size)) ++calls;
  }
  return calls / absl::ToDoubleSeconds(absl::Now() - start);
}

int Main() {
  const std::string daemon =
      FLAGS_daemon.empty() ? RunfilePath("vhost-user-rng/vhost-user-rng") : FLAGS_daemon;
  struct stat st;
  if (stat(daemon.c_str(), &st) != 0) {
    std::fprintf(stderr, "no daemon at %s\n", daemon.c_str());
    return 1;
  }
  std::printf(
      "vhost-user-rng benchmark: depth %d, %.1f s x %d runs (median), split ring, "
      "EVENT_IDX\n",
      FLAGS_depth, FLAGS_seconds, FLAGS_repeat);
  std::printf("binary: %s, %.2f MB (static)\n", daemon.c_str(), st.st_size / 1e6);

  std::printf("%-8s %-7s %12s %10s %16s %14s\n", "request", "mode", "requests/s", "MB/s",
              "daemon CPU/req", "vs getrandom");
  for (bool poll : {false, true}) {
    Bench bench;
    if (absl::Status s = bench.Start(poll); !s.ok()) {
      std::fprintf(stderr, "setup failed: %s\n", s.ToString().c_str());
      return 1;
    }
    if (!poll) {
      absl::SleepFor(absl::Milliseconds(300));
      std::printf("idle resident memory (connected, queue running): %ld KiB\n",
                  ResidentKiB(bench.pid()));
    }
    for (uint32_t size : {64u, 4096u}) {
      std::vector<double> rps, mbps, cpu;
      (void)bench.Run(size, poll, absl::Milliseconds(200));  // warm-up
      for (int i = 0; i < FLAGS_repeat; ++i) {
        absl::StatusOr<Result> r = bench.Run(size, poll, absl::Seconds(FLAGS_seconds));
        if (!r.ok()) {
          std::fprintf(stderr, "run failed: %s\n", r.status().ToString().c_str());
          return 1;
        }
        rps.push_back(r->requests_per_second);
        mbps.push_back(r->megabytes_per_second);
        cpu.push_back(r->cpu_us_per_request);
      }
      const double raw = RawGetrandomPerSecond(size, absl::Seconds(FLAGS_seconds));
      std::printf("%-8s %-7s %12.0f %10.1f %13.2f us %13.2fx\n", size == 64 ? "64 B" : "4 KiB",
                  poll ? "poll" : "notify", Median(rps), Median(mbps), Median(cpu),
                  Median(rps) / raw);
    }
  }
  return 0;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return vhost::Main();
}
