// Crash-restart under load: a block back end serving 4 KiB random reads at queue depth 32 is
// SIGKILLed and started again, over and over, while our front end keeps the same guest RAM,
// rings and inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD), as QEMU's vhost-user-blk
// with reconnect-ms does. Per cycle: from the SIGKILL to the new daemon accepting the front
// end's setup, and to every request that was outstanding at the kill being completed (serving
// again). Also the requests the region held as in flight at the kill (resubmitted) and any
// request completed twice or never. Ours (vhost-user-blk) and qemu-storage-daemon's export
// (which offers no inflight region), same null disk, daemon pinned to CPU 0 and the front end
// to CPU 1. Prints; asserts nothing.
//
//   bazel build -c opt //tests/bench:restart_bench &&
//     bazel-out/k8-opt/bin/tests/bench/restart_bench --cycles=30
#include <linux/virtio_blk.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/device/inflight.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/blk_request.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/daemon_process.h"
#include "tests/integration/runfiles.h"

DEFINE_int32(cycles, 30, "SIGKILL/restart cycles per daemon");
DEFINE_int32(serve_ms, 20, "Time each daemon serves before it is killed");
DEFINE_string(qsd, "/usr/bin/qemu-storage-daemon", "qemu-storage-daemon binary");

namespace vhost {
namespace {

using frontend::AddBlkRequest;
using frontend::AllocateBlkRequest;
using frontend::BlkRequest;
using frontend::DaemonProcess;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::FrontendQueue;
using frontend::TempDir;
using testing::UsedElement;

constexpr uint64_t kNullBytes = 1ull << 30;
constexpr int kDepth = 32;
constexpr uint16_t kQueueSize = 128;

struct Figures {
  std::vector<double> setup_ms;  // SIGKILL -> the new daemon took the front end's setup
  std::vector<double> drain_ms;  // SIGKILL -> every request outstanding at the kill completed
  uint64_t requests = 0;
  uint64_t resubmitted = 0;  // marked in flight in the region when the daemon died
  uint64_t twice = 0;        // completed although not outstanding
  uint64_t lost = 0;         // outstanding at the end of a cycle's drain and never completed
  uint64_t cycles = 0;
};

class Bench {
 public:
  Bench(bool ours, std::string socket) : ours_(ours), socket_(std::move(socket)) {}

  absl::Status Run(Figures* figures) {
    RETURN_IF_ERROR(Spawn(/*wait_for_socket=*/true));
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(kFeatureIndirectDesc) |
                       Bit(VIRTIO_BLK_F_FLUSH) | Bit(VIRTIO_BLK_F_SEG_MAX);
    options.required_features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx);
    options.ram_size = 64 << 20;
    options.queue_sizes = {kQueueSize};
    // qemu-storage-daemon does not offer the region: its requests are taken again from the
    // used index, which re-runs any completed out of order (counted as twice).
    options.inflight = ours_;
    ASSIGN_OR_RETURN(device_, DeviceConnection::Open(socket_, options));
    for (int i = 0; i < kDepth; ++i) {
      ASSIGN_OR_RETURN(BlkRequest r, AllocateBlkRequest(device_->ram(), VIRTIO_BLK_T_IN, 0, 4096));
      requests_.push_back(r);
    }
    outstanding_.assign(kDepth, false);
    index_of_.assign(kQueueSize, -1);
    for (int i = 0; i < kDepth; ++i) RETURN_IF_ERROR(SubmitSlot(i));
    RETURN_IF_ERROR(queue().Submit().status());

    for (int cycle = 0; cycle < FLAGS_cycles; ++cycle) {
      RETURN_IF_ERROR(Serve(absl::Now() + absl::Milliseconds(FLAGS_serve_ms), figures));
      const absl::Time killed = absl::Now();
      RETURN_IF_ERROR(daemon_->Signal(SIGKILL));
      RETURN_IF_ERROR(daemon_->Wait(absl::Seconds(10)).status());
      if (ours_) figures->resubmitted += MarkedInFlight();
      RETURN_IF_ERROR(Spawn(/*wait_for_socket=*/false));
      // Connecting fails until the new daemon listens: retry at once, as QEMU's reconnect timer
      // would at its finest.
      absl::Status reconnected;
      do {
        reconnected = device_->Reconnect(socket_, options);
      } while (!reconnected.ok() && absl::Now() - killed < absl::Seconds(10) && daemon_->IsAlive());
      RETURN_IF_ERROR(reconnected);
      // The dead daemon may have missed the last kick: a front end kicks after reconnecting.
      RETURN_IF_ERROR(queue().Kick());
      figures->setup_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - killed));
      // Every request outstanding at the kill completes (nothing new is submitted meanwhile).
      while (Outstanding() > 0) {
        absl::StatusOr<UsedElement> used = queue().WaitForUsed(absl::Seconds(5), true);
        if (!used.ok()) {
          figures->lost += Outstanding();
          return absl::DeadlineExceededError(
              absl::StrCat(Outstanding(), " requests never completed after a restart"));
        }
        Complete(*used, figures);
      }
      figures->drain_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - killed));
      ++figures->cycles;
      for (int i = 0; i < kDepth; ++i) RETURN_IF_ERROR(SubmitSlot(i));
      RETURN_IF_ERROR(queue().Submit().status());
    }
    return absl::OkStatus();
  }

 private:
  FrontendQueue& queue() { return *device_->queue(0); }

  absl::Status Spawn(bool wait_for_socket) {
    daemon_.reset();
    unlink(socket_.c_str());
    DaemonProcess::Options options;
    options.binary = "taskset";
    if (ours_) {
      options.args = {"-c",
                      "0",
                      RunfilePath("vhost-user-blk/vhost-user-blk"),
                      "--socket-path=" + socket_,
                      absl::StrCat("--null-size=", kNullBytes),
                      "--minloglevel=1"};
    } else {
      options.args = {
          "-c",
          "0",
          FLAGS_qsd,
          "--blockdev",
          absl::StrCat("driver=null-co,node-name=n,size=", kNullBytes, ",read-zeroes=on"),
          "--export",
          "type=vhost-user-blk,id=e,node-name=n,addr.type=unix,addr.path=" + socket_};
    }
    if (wait_for_socket) options.socket_path = socket_;
    ASSIGN_OR_RETURN(daemon_, DaemonProcess::Start(options));
    return absl::OkStatus();
  }

  absl::Status SubmitSlot(int i) {
    RewriteBlkRequest(&requests_[i], VIRTIO_BLK_T_IN, (rng_() % (kNullBytes / 4096)) * 8);
    ASSIGN_OR_RETURN(const uint16_t id, AddBlkRequest(&queue().ring(), requests_[i]));
    index_of_[id] = i;
    outstanding_[i] = true;
    return absl::OkStatus();
  }

  void Complete(const UsedElement& used, Figures* figures) {
    const int i = used.id < index_of_.size() ? index_of_[used.id] : -1;
    if (i < 0 || !outstanding_[i]) {
      ++figures->twice;
      return;
    }
    index_of_[used.id] = -1;
    outstanding_[i] = false;
    ++figures->requests;
  }

  int Outstanding() const {
    int n = 0;
    for (bool o : outstanding_) n += o;
    return n;
  }

  // Requests the dead daemon's records say it had taken and not completed.
  uint64_t MarkedInFlight() const {
    const auto* desc = reinterpret_cast<const InflightDescSplit*>(device_->inflight_region() +
                                                                  sizeof(InflightQueueHeader));
    uint64_t n = 0;
    for (uint16_t head = 0; head < kQueueSize; ++head) n += desc[head].inflight == 1;
    return n;
  }

  // Keeps kDepth requests in flight until `end`.
  absl::Status Serve(absl::Time end, Figures* figures) {
    while (absl::Now() < end) {
      ASSIGN_OR_RETURN(UsedElement used, queue().WaitForUsed(absl::Seconds(5), true));
      for (;;) {
        const int i = used.id < index_of_.size() ? index_of_[used.id] : -1;
        Complete(used, figures);
        if (i >= 0 && !outstanding_[i]) RETURN_IF_ERROR(SubmitSlot(i));
        ASSIGN_OR_RETURN(absl::optional<UsedElement> more, queue().PollUsed());
        if (!more) break;
        used = *more;
      }
      RETURN_IF_ERROR(queue().Submit().status());
    }
    return absl::OkStatus();
  }

  const bool ours_;
  const std::string socket_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<DeviceConnection> device_;
  std::vector<BlkRequest> requests_;
  std::vector<bool> outstanding_;
  std::vector<int> index_of_;  // by descriptor head
  std::mt19937_64 rng_{1};
};

void Print(const char* name, const Figures& f) {
  if (f.setup_ms.empty()) return;
  std::vector<double> setup = f.setup_ms, drain = f.drain_ms;
  std::sort(setup.begin(), setup.end());
  std::sort(drain.begin(), drain.end());
  std::printf("%-5s %7llu %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %12llu %12llu %6llu %5llu\n", name,
              static_cast<unsigned long long>(f.cycles), setup.front(), Median(setup), setup.back(),
              drain.front(), Median(drain), drain.back(),
              static_cast<unsigned long long>(f.requests),
              static_cast<unsigned long long>(f.resubmitted),
              static_cast<unsigned long long>(f.twice), static_cast<unsigned long long>(f.lost));
}

int Main() {
  PinTo(1);
  std::printf(
      "SIGKILL and restart under 4k random reads at QD32 (null disk), %d cycles, %d ms served "
      "between kills; times in ms from the SIGKILL\n",
      FLAGS_cycles, FLAGS_serve_ms);
  std::printf("%-5s %7s %9s %9s %9s %9s %9s %9s %12s %12s %6s %5s\n", "", "cycles", "setup min",
              "median", "max", "served min", "median", "max", "requests", "resubmitted", "twice",
              "lost");
  Figures figures[2];
  for (bool ours : {true, false}) {
    absl::StatusOr<std::unique_ptr<TempDir>> dir = TempDir::Create("restartbench");
    if (!dir.ok()) return 1;
    Bench bench(ours, (*dir)->File("sock"));
    Figures& f = figures[ours ? 0 : 1];
    absl::Status s = bench.Run(&f);
    Print(ours ? "ours" : "qsd", f);
    std::fflush(stdout);
    if (!s.ok()) std::printf("%s stopped: %s\n", ours ? "ours" : "qsd", s.ToString().c_str());
  }
  if (!figures[0].drain_ms.empty() && !figures[1].drain_ms.empty()) {
    std::printf("median time to serving again, qsd/ours: %.2fx\n",
                Median(figures[1].drain_ms) / Median(figures[0].drain_ms));
  }
  return 0;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return vhost::Main();
}
