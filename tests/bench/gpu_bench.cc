// 2D frame rate of vhost-user-gpu against QEMU's contrib daemon (/usr/lib/qemu/vhost-user-gpu,
// from qemu-system-gui), both driven the same way through our own front end: GpuDriver plays the
// guest's virtio-gpu driver, FakeDisplayEnd plays QEMU's display end on the socket handed over
// with VHOST_USER_GPU_SET_SOCKET. For each daemon: a 1920x1080 B8G8R8X8 resource backed by guest
// RAM is scanout 0 of a 1920x1080 display; then, frame after frame, the guest changes its
// framebuffer, sends TRANSFER_TO_HOST_2D and RESOURCE_FLUSH of the damaged rect (the whole
// screen, or a 256x256 rect moving over it) and waits until the display end has received the
// rect's pixels: a frame counts once its pixels reached the display. Prints frames/s, MB/s of
// pixels delivered, the latency of a frame (TRANSFER submitted to its UPDATE received) and the
// daemon's CPU time per frame (user + system, all threads, /proc/PID/stat), and ours/contrib.
// After each run the display's whole framebuffer is compared with the guest's: a run whose
// pixels did not arrive intact aborts the benchmark, so no figure comes from a broken run.
// Figures only; asserts nothing about speed.
//
//   bazel build -c opt //tests/bench:gpu_bench
//   bazel-out/k8-opt/bin/tests/bench/gpu_bench --frames=300 --repeat=3
#include <linux/virtio_gpu.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/base/status_macros.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/gpu_driver.h"
#include "tests/integration/runfiles.h"
#include "vhost-user-gpu/display/fake_display_end.h"

DEFINE_int32(frames, 300, "Measured frames of the full-screen case per run");
DEFINE_int32(partial_frames, 3000,
             "Measured frames of the partial case per run (more: its frames are short, and the "
             "CPU time is counted in clock ticks)");
DEFINE_double(seconds, 0, "If > 0: run each case this long instead of --frames");
DEFINE_int32(warmup, 10, "Frames sent before measuring (first-touch page faults, caches)");
DEFINE_int32(repeat, 1, "Runs per case and daemon (a fresh daemon each); medians are reported");
DEFINE_string(daemons, "ours,contrib", "Daemons to run, comma-separated: ours, contrib");
DEFINE_string(ours, "", "vhost-user-gpu binary (default: the one built with this benchmark)");
DEFINE_string(contrib, "/usr/lib/qemu/vhost-user-gpu", "QEMU's contrib vhost-user-gpu");
DEFINE_string(cases, "full,partial", "Cases to run, comma-separated: full, partial");
DEFINE_int32(rect, 256, "Side of the partial case's damage rect, in pixels");
DEFINE_string(ours_extra, "", "Extra flags for our daemon, comma-separated (experiments)");
DEFINE_bool(pin, true, "Daemon on CPU 0, this benchmark (driver and display end) on CPU 1");

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::GpuDriver;
using frontend::GpuFramebuffer;
using frontend::GpuRect;
using gpu::display::FakeDisplayEnd;

constexpr uint32_t kWidth = 1920;
constexpr uint32_t kHeight = 1080;
constexpr uint32_t kResource = 1;
constexpr absl::Duration kTimeout = absl::Seconds(10);

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Minor page faults of a whole process so far (/proc/PID/stat field 10).
uint64_t MinorFaults(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string skip;
  for (int i = 3; i < 10; ++i) fields >> skip;  // fields 3..9
  uint64_t minflt = 0;
  fields >> minflt;
  return minflt;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

// The guest's picture before the first frame: every pixel different, so that a misplaced row
// or column shows in the final comparison.
uint32_t Background(uint32_t x, uint32_t y) {
  return (((x * 7) & 0xff) << 16) | (((y * 5) & 0xff) << 8) | ((x ^ y) & 0xff);
}

struct Figures {
  uint64_t frames = 0;
  double fps = 0;
  double megabytes_per_second = 0;  // pixel bytes the display end received, 10^6 B/s
  double updates_per_frame = 0;
  double latency_p50_ms = 0, latency_p99_ms = 0;
  double cpu_ms_per_frame = 0;  // daemon user + system time
  double faults_per_frame = 0;  // daemon minor page faults
};

Figures MedianFigures(const std::vector<Figures>& runs) {
  auto median = [&runs](double Figures::*field) {
    std::vector<double> v;
    for (const Figures& f : runs) v.push_back(f.*field);
    return Median(v);
  };
  Figures m;
  std::vector<double> frames;
  for (const Figures& f : runs) frames.push_back(static_cast<double>(f.frames));
  m.frames = static_cast<uint64_t>(Median(frames));
  m.fps = median(&Figures::fps);
  m.megabytes_per_second = median(&Figures::megabytes_per_second);
  m.updates_per_frame = median(&Figures::updates_per_frame);
  m.latency_p50_ms = median(&Figures::latency_p50_ms);
  m.latency_p99_ms = median(&Figures::latency_p99_ms);
  m.cpu_ms_per_frame = median(&Figures::cpu_ms_per_frame);
  m.faults_per_frame = median(&Figures::faults_per_frame);
  return m;
}

// One daemon with a guest and a display end: the whole set-up of a run.
class Bench {
 public:
  absl::Status Start(const std::string& binary, const std::vector<std::string>& extra) {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create("gpubench"));
    std::vector<std::string> args;
    if (FLAGS_pin) args = {"-c", "0", binary};
    args.push_back("--socket-path=" + session_->socket());
    args.insert(args.end(), extra.begin(), extra.end());
    RETURN_IF_ERROR(session_->Start(FLAGS_pin ? "taskset" : binary, args));
    GpuDriver::Options options;
    // The 8 MB framebuffer, the driver's scratch areas and the rings.
    options.ram_size = 64 << 20;
    options.timeout = kTimeout;
    ASSIGN_OR_RETURN(driver_, GpuDriver::Start(session_->socket(), options));

    FakeDisplayEnd::Options display;
    display.displays = {{true, kWidth, kHeight}};
    ASSIGN_OR_RETURN(display_, FakeDisplayEnd::Create(display));
    {
      // The daemon gets its own descriptor with the message; ours is closed at once.
      UniqueFd daemon_end = display_->TakeDaemonEnd();
      RETURN_IF_ERROR(driver_->SetDisplaySocket(daemon_end.get()));
    }
    // As Linux's driver does at probe. It also makes both daemons finish the display end's
    // protocol-feature handshake (contrib does it on SET_SOCKET and holds the control queue
    // until answered; ours on the first display call) before anything is timed.
    ASSIGN_OR_RETURN(virtio_gpu_resp_display_info info, driver_->GetDisplayInfo());
    if (info.pmodes[0].r.width != kWidth || info.pmodes[0].r.height != kHeight ||
        !info.pmodes[0].enabled) {
      return absl::InternalError(absl::StrCat("GET_DISPLAY_INFO says scanout 0 is ",
                                              info.pmodes[0].r.width, "x", info.pmodes[0].r.height,
                                              ", not the display's"));
    }

    ASSIGN_OR_RETURN(fb_, driver_->AllocateFramebuffer(kWidth, kHeight));
    for (uint32_t y = 0; y < kHeight; ++y) {
      for (uint32_t x = 0; x < kWidth; ++x) *fb_.pixel(x, y) = Background(x, y);
    }
    RETURN_IF_ERROR(driver_->ShowFramebuffer(kResource, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, fb_));
    // The first whole frame, so that the display holds the guest's picture before the partial
    // case sends only rects.
    return Frame(GpuRect(0, 0, kWidth, kHeight), 0).status();
  }

  pid_t pid() { return session_->daemon()->pid(); }

  // Changes the guest's pixels in `rect` (a value per row, at both ends of the row: a few
  // stores, so that the guest's drawing does not weigh in the figures), transfers and flushes
  // `rect` and waits until the display end has its pixels. Returns the time from the transfer
  // being submitted to the pixels received, in seconds.
  absl::StatusOr<double> Frame(const virtio_gpu_rect& rect, uint32_t number) {
    for (uint32_t y = rect.y; y < rect.y + rect.height; ++y) {
      const uint32_t value = (number * 2654435761u + y) & 0xffffff;
      *fb_.pixel(rect.x, y) = value;
      *fb_.pixel(rect.x + rect.width - 1, y) = value ^ 0xffffff;
    }
    expected_bytes_ += uint64_t{rect.width} * rect.height * 4;
    const double start = Now();
    const uint64_t offset = uint64_t{rect.y} * fb_.stride + uint64_t{rect.x} * 4;
    ASSIGN_OR_RETURN(const uint32_t transfer, driver_->TransferToHost(kResource, rect, offset));
    if (transfer != VIRTIO_GPU_RESP_OK_NODATA) {
      return absl::InternalError(absl::StrCat("TRANSFER_TO_HOST_2D answered 0x",
                                              absl::Hex(transfer), " at frame ", number));
    }
    ASSIGN_OR_RETURN(const uint32_t flush, driver_->Flush(kResource, rect));
    if (flush != VIRTIO_GPU_RESP_OK_NODATA) {
      return absl::InternalError(
          absl::StrCat("RESOURCE_FLUSH answered 0x", absl::Hex(flush), " at frame ", number));
    }
    // By bytes rather than by UPDATE count: a daemon may split a rect into several UPDATEs.
    const uint64_t want = expected_bytes_;
    if (!display_->WaitFor(
            [want](const FakeDisplayEnd::Stats& s) { return s.update_bytes >= want || s.closed; },
            kTimeout)) {
      // A daemon using dma-buf messages (contrib does when /dev/udmabuf or a GBM render node
      // exists) waits for replies the fake display end does not give: say so.
      return absl::DeadlineExceededError(
          absl::StrCat("frame ", number, "'s pixels did not reach the display end in ",
                       absl::FormatDuration(kTimeout),
                       "; messages it does not take (dma-buf?): ", display_->stats().bad_messages));
    }
    const FakeDisplayEnd::Stats stats = display_->stats();
    if (stats.update_bytes < want) {
      return absl::UnavailableError(
          absl::StrCat("the daemon closed the display socket at frame ", number));
    }
    return Now() - start;
  }

  // The run's sanity check: the display end saw no bad message, exactly the flushed bytes, and
  // holds the guest's whole picture pixel for pixel.
  absl::Status Check() {
    const FakeDisplayEnd::Stats stats = display_->stats();
    if (stats.bad_messages != 0) {
      return absl::DataLossError(
          absl::StrCat("the display end counted ", stats.bad_messages, " bad messages"));
    }
    if (stats.update_bytes != expected_bytes_) {
      return absl::DataLossError(absl::StrCat("the display end received ", stats.update_bytes,
                                              " pixel bytes, ", expected_bytes_, " were flushed"));
    }
    std::optional<FakeDisplayEnd::Framebuffer> shown = display_->framebuffer(0);
    if (!shown.has_value() || shown->width != kWidth || shown->height != kHeight) {
      return absl::DataLossError("scanout 0 is not shown at 1920x1080 on the display end");
    }
    for (uint32_t y = 0; y < kHeight; ++y) {
      for (uint32_t x = 0; x < kWidth; ++x) {
        // The X byte is padding: neither daemon promises what it carries.
        const uint32_t want = *fb_.pixel(x, y) & 0xffffff;
        const uint32_t got = shown->at(x, y) & 0xffffff;
        if (got != want) {
          return absl::DataLossError(absl::StrCat("the display shows 0x", absl::Hex(got), " at (",
                                                  x, ",", y, "), the guest drew 0x",
                                                  absl::Hex(want)));
        }
      }
    }
    return absl::OkStatus();
  }

  FakeDisplayEnd::Stats stats() const { return display_->stats(); }

 private:
  std::unique_ptr<DaemonSession> session_;
  // Destroyed after the driver: a daemon resetting on the front end's departure may still
  // write to the display end (ours disables its scanout there).
  std::unique_ptr<FakeDisplayEnd> display_;
  std::unique_ptr<GpuDriver> driver_;
  GpuFramebuffer fb_;
  uint64_t expected_bytes_ = 0;
};

// Frame i's damage: the whole screen, or a rect moving over it (a different place each frame,
// so that the final comparison checks the rects landed where they were drawn).
virtio_gpu_rect Damage(bool partial, uint32_t i) {
  if (!partial) return GpuRect(0, 0, kWidth, kHeight);
  const uint32_t side = static_cast<uint32_t>(FLAGS_rect);
  return GpuRect((i * 97) % (kWidth - side + 1), (i * 61) % (kHeight - side + 1), side, side);
}

// A daemon to measure: its name in the table, its binary and extra flags.
struct Daemon {
  std::string name;
  std::string binary;
  std::vector<std::string> extra;
};

absl::StatusOr<Figures> RunOnce(const Daemon& daemon, bool partial) {
  Bench bench;
  RETURN_IF_ERROR(bench.Start(daemon.binary, daemon.extra));
  uint32_t number = 1;
  for (int i = 0; i < FLAGS_warmup; ++i, ++number) {
    RETURN_IF_ERROR(bench.Frame(Damage(partial, number), number).status());
  }
  const FakeDisplayEnd::Stats before = bench.stats();
  const absl::Duration cpu_before = ProcessCpuTime(bench.pid());
  const uint64_t faults_before = MinorFaults(bench.pid());
  std::vector<double> latencies;
  const double start = Now();
  const double until = FLAGS_seconds > 0 ? start + FLAGS_seconds : 0;
  const size_t frames = static_cast<size_t>(partial ? FLAGS_partial_frames : FLAGS_frames);
  while (FLAGS_seconds > 0 ? Now() < until : latencies.size() < frames) {
    ASSIGN_OR_RETURN(const double latency, bench.Frame(Damage(partial, number), number));
    latencies.push_back(latency);
    ++number;
  }
  const double elapsed = Now() - start;
  const absl::Duration cpu = ProcessCpuTime(bench.pid()) - cpu_before;
  const uint64_t faults = MinorFaults(bench.pid()) - faults_before;
  const FakeDisplayEnd::Stats after = bench.stats();
  RETURN_IF_ERROR(bench.Check());
  if (latencies.empty()) return absl::InvalidArgumentError("no frame fit in --seconds");

  Figures f;
  f.frames = latencies.size();
  f.fps = f.frames / elapsed;
  f.megabytes_per_second = (after.update_bytes - before.update_bytes) / elapsed / 1e6;
  f.updates_per_frame = static_cast<double>(after.updates - before.updates) / f.frames;
  f.latency_p50_ms = Percentile(latencies, 0.50) * 1e3;
  f.latency_p99_ms = Percentile(latencies, 0.99) * 1e3;
  f.cpu_ms_per_frame = absl::ToDoubleMilliseconds(cpu) / f.frames;
  f.faults_per_frame = static_cast<double>(faults) / f.frames;
  return f;
}

void PrintRow(const std::string& name, const char* daemon, const Figures& f) {
  std::printf("%-22s %-8s %7llu %9.1f %9.1f %6.2f %9.3f %9.3f %10.3f %9.1f\n", name.c_str(), daemon,
              static_cast<unsigned long long>(f.frames), f.fps, f.megabytes_per_second,
              f.updates_per_frame, f.latency_p50_ms, f.latency_p99_ms, f.cpu_ms_per_frame,
              f.faults_per_frame);
  std::fflush(stdout);
}

int Main() {
  const std::string ours =
      FLAGS_ours.empty() ? RunfilePath("vhost-user-gpu/vhost-user-gpu") : FLAGS_ours;
  std::vector<Daemon> daemons;
  for (absl::string_view d : absl::StrSplit(FLAGS_daemons, ',', absl::SkipEmpty())) {
    if (d == "ours") {
      if (access(ours.c_str(), X_OK) != 0) {
        std::fprintf(stderr, "no vhost-user-gpu at %s\n", ours.c_str());
        return 1;
      }
      daemons.push_back({"ours", ours, absl::StrSplit(FLAGS_ours_extra, ',', absl::SkipEmpty())});
    } else if (d == "contrib") {
      if (access(FLAGS_contrib.c_str(), X_OK) != 0) {
        std::printf(
            "contrib: no executable %s (Debian: qemu-system-gui from bookworm-backports); "
            "ours only\n",
            FLAGS_contrib.c_str());
        continue;
      }
      daemons.push_back({"contrib", FLAGS_contrib, {}});
    } else {
      std::fprintf(stderr, "unknown daemon %s\n", std::string(d).c_str());
      return 1;
    }
  }
  if (FLAGS_frames < 1 || FLAGS_partial_frames < 1 || FLAGS_rect < 2 ||
      static_cast<uint32_t>(FLAGS_rect) > kHeight) {
    std::fprintf(stderr, "--frames and --partial_frames must be >= 1, --rect within 2..%u\n",
                 kHeight);
    return 1;
  }
  if (FLAGS_pin) PinTo(1);  // before the display end's reader thread exists: it inherits this

  std::printf("vhost-user-gpu 2D frames, %ux%u B8G8R8X8 scanout, through our front end; %s; ",
              kWidth, kHeight,
              FLAGS_pin ? "daemon on CPU 0, driver and display end on CPU 1" : "not pinned");
  if (FLAGS_seconds > 0) {
    std::printf("%.1f s", FLAGS_seconds);
  } else {
    std::printf("%d frames (partial: %d)", FLAGS_frames, FLAGS_partial_frames);
  }
  std::printf(" x %d runs (median), %d warm-up frames\nload average before: %s\n", FLAGS_repeat,
              FLAGS_warmup, LoadAverage().c_str());
  std::printf("%-22s %-8s %7s %9s %9s %6s %9s %9s %10s %9s\n", "case", "daemon", "frames", "fps",
              "MB/s", "upd/fr", "p50 ms", "p99 ms", "CPU ms/fr", "faults/fr");

  for (absl::string_view c : absl::StrSplit(FLAGS_cases, ',', absl::SkipEmpty())) {
    if (c != "full" && c != "partial") {
      std::fprintf(stderr, "unknown case %s\n", std::string(c).c_str());
      return 1;
    }
    const bool partial = c == "partial";
    const std::string name = partial ? absl::StrCat("rect ", FLAGS_rect, "x", FLAGS_rect)
                                     : absl::StrCat("full ", kWidth, "x", kHeight);
    // Runs alternate between the daemons, so that a change in the machine's load (it is
    // shared) falls on both columns alike.
    std::vector<std::vector<Figures>> runs(daemons.size());
    for (int run = 0; run < FLAGS_repeat; ++run) {
      for (size_t d = 0; d < daemons.size(); ++d) {
        absl::StatusOr<Figures> f = RunOnce(daemons[d], partial);
        if (!f.ok()) {
          // A broken run (wrong pixels, an error answer, a dead daemon) ends the benchmark: no
          // figure is printed for it. On stdout, with the table, apart from the daemons' logs.
          std::printf("%s, %s, run %d: %s\nstopped: no figures from a broken run\n", name.c_str(),
                      daemons[d].name.c_str(), run + 1, f.status().ToString().c_str());
          return 1;
        }
        runs[d].push_back(*f);
      }
    }
    std::optional<Figures> ours_figures, contrib_figures;
    for (size_t d = 0; d < daemons.size(); ++d) {
      const Figures m = MedianFigures(runs[d]);
      PrintRow(name, daemons[d].name.c_str(), m);
      (daemons[d].name == "ours" ? ours_figures : contrib_figures) = m;
    }
    if (ours_figures && contrib_figures && contrib_figures->fps > 0 &&
        contrib_figures->cpu_ms_per_frame > 0) {
      std::printf("%-22s %-8s fps %.2fx, CPU/frame %.2fx (lower is cheaper)\n", name.c_str(),
                  "ours/contrib", ours_figures->fps / contrib_figures->fps,
                  ours_figures->cpu_ms_per_frame / contrib_figures->cpu_ms_per_frame);
    }
  }
  std::printf("load average after: %s\n", LoadAverage().c_str());
  return 0;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return vhost::Main();
}
