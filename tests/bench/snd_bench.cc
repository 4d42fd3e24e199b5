// Timing of vhost-user-snd through our own front end: for each host side (null; file: a WAV
// sink for playback, a WAV source for capture; alsa: through vhost-user-snd-bridge to alsa-lib's
// file plugin, writing to a FIFO this benchmark reads, and reading a raw source; pipewire:
// through the bridge to a headless PipeWire of the benchmark's own, whose null sink pw-record
// copies into a FIFO this benchmark reads, and a pw-play source node for capture) and each
// direction, one stream at 48 kHz S16 stereo with `--periods` periods of `--period_ms` kept queued,
// run for `--seconds`. Prints, per run: the drift (frames the device completed against the wall
// time elapsed × the rate, on CLOCK_MONOTONIC; a period the device went through without a guest
// buffer counts as drift), the jitter of each interval between completions against one period, the
// time from queueing a buffer to its completion (for playback: to the host sink, which the device
// writes when it completes the buffer), for alsa and pipewire playback the time from queueing a
// buffer to its frames coming out of the host side (each buffer carries its number), the
// latency_bytes the device
// reports, and the daemon's (and the bridge's) CPU time per second of audio. Figures only; asserts
// nothing.
//
//   bazel build -c opt //tests/bench:snd_bench
//   bazel-out/k8-opt/bin/tests/bench/snd_bench --seconds=60
#include <fcntl.h>
#include <linux/virtio_snd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/snd_driver.h"
#include "tests/integration/runfiles.h"
#include "vhost-user-snd/bridge/pipewire_server.h"
#include "vhost-user-snd/wav_file.h"

DEFINE_string(daemon, "", "vhost-user-snd binary (default: the one built with this benchmark)");
DEFINE_double(seconds, 10.0, "Measured time per run (60 for the drift figure)");
DEFINE_int32(period_ms, 10, "Period length");
DEFINE_int32(periods, 4, "Periods kept queued on the data queue (the stream's buffer_bytes)");
DEFINE_string(backends, "null,file,alsa,pipewire", "Host sides to run, comma-separated");
DEFINE_bool(event_idx, true, "Negotiate VIRTIO_F_EVENT_IDX (notification suppression)");
DEFINE_string(directions, "playback,capture", "Directions to run, comma-separated");

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::SndDriver;
using frontend::SndPcmBuffer;

constexpr uint32_t kRate = 48000;
constexpr uint32_t kFrameBytes = 4;  // S16 stereo

// CLOCK_MONOTONIC, the clock the daemon's timerfds run on, in seconds.
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

struct Figures {
  uint64_t completions = 0;
  double drift_ppm = 0;  // > 0: the device completes fewer frames than the wall clock asks
  double drift_ms = 0;   // how far behind the schedule the last completion came
  double jitter_p50_us = 0, jitter_p99_us = 0, jitter_max_us = 0;
  double queued_to_done_p50_ms = 0, queued_to_done_max_ms = 0;
  double latency_bytes_p50 = 0;
  uint32_t latency_bytes_min = 0, latency_bytes_max = 0;
  uint64_t errors = 0;  // completions whose status was not S_OK
  double cpu_ms_per_audio_s = 0;
  double bridge_cpu_ms_per_audio_s = 0;
  // alsa and pipewire playback: queued to out of alsa-lib, or to the null sink's monitor.
  double to_host_p50_ms = -1, to_host_max_ms = -1;
};

// Reads what alsa-lib's file plugin or pw-record writes into a FIFO and notes when each
// buffer's number (the value of all its samples) first comes out. The plugin opens the FIFO on
// every open of the PCM (the bridge's probe too), so the reader opens it again after each end.
class FifoSink {
 public:
  explicit FifoSink(std::string path) : path_(std::move(path)) {
    mkfifo(path_.c_str(), 0600);
    thread_ = std::thread([this] { Read(); });
  }
  ~FifoSink() {
    stop_ = true;
    // A writer of our own lets a reader blocked in open() go; closed at once, so it reads
    // the end.
    int fd = open(path_.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) close(fd);
    thread_.join();
  }
  std::map<int, double> arrivals() {
    std::lock_guard<std::mutex> lock(mu_);
    return arrivals_;
  }

 private:
  void Read() {
    std::vector<int16_t> frames(4096 * 2);
    while (!stop_) {
      int fd = open(path_.c_str(), O_RDONLY);
      if (fd < 0) return;
      ssize_t n;
      size_t carry = 0;  // bytes of a partial frame
      auto* bytes = reinterpret_cast<uint8_t*>(frames.data());
      while ((n = read(fd, bytes + carry, frames.size() * 2 - carry)) > 0) {
        const double now = Now();
        const size_t total = carry + n;
        const size_t whole = total / kFrameBytes;
        std::lock_guard<std::mutex> lock(mu_);
        for (size_t i = 0; i < whole; ++i) {
          const int number = frames[2 * i];
          if (number != 0 && number != last_) arrivals_.emplace(number, now);
          if (number != 0) last_ = number;
        }
        carry = total - whole * kFrameBytes;
        memmove(bytes, bytes + whole * kFrameBytes, carry);
      }
      close(fd);
    }
  }

  const std::string path_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<int, double> arrivals_;
  int last_ = 0;
};

// The bridge process the daemon started (its only child), 0 if none.
pid_t ChildOf(pid_t pid) {
  std::ifstream children(absl::StrCat("/proc/", pid, "/task/", pid, "/children"));
  int child = 0;
  children >> child;
  return child;
}

absl::StatusOr<Figures> Run(const std::string& backend, bool capture) {
  const uint32_t period_frames = kRate * FLAGS_period_ms / 1000;
  const uint32_t period_bytes = period_frames * kFrameBytes;
  const double period_s = static_cast<double>(period_frames) / kRate;
  ASSIGN_OR_RETURN(std::unique_ptr<DaemonSession> session, DaemonSession::Create("sndbench"));
  std::vector<std::string> args = {"--socket-path=" + session->socket(), "--minloglevel=1",
                                   "--backend=" + backend};
  if (backend == "file") {
    // The source lasts the whole run (then the device would read silence, a cheaper path).
    const std::string source = session->File("source.wav");
    ASSIGN_OR_RETURN(snd::WavWriter writer, snd::WavWriter::Create(source, snd::WavFormat()));
    ASSIGN_OR_RETURN(std::vector<uint8_t> tone,
                     frontend::SndSineTone(VIRTIO_SND_PCM_FMT_S16, 2, kRate, 1000, 0.5, kRate));
    for (int s = 0; s < FLAGS_seconds + 2; ++s) RETURN_IF_ERROR(writer.Write(tone));
    RETURN_IF_ERROR(writer.Close());
    args.push_back("--playback-file=" + session->File("sink.wav"));
    args.push_back("--capture-file=" + source);
  }
  std::unique_ptr<FifoSink> fifo;
  if (backend == "alsa") {
    // Playback: alsa-lib's file plugin into a FIFO we read; capture: from a raw source file
    // longer than the run (same path as the guest test's stand-in for a sound card).
    const std::string source = session->File("source.raw");
    {
      ASSIGN_OR_RETURN(std::vector<uint8_t> tone,
                       frontend::SndSineTone(VIRTIO_SND_PCM_FMT_S16, 2, kRate, 1000, 0.5, kRate));
      std::ofstream out(source, std::ios::binary);
      for (int s = 0; s < FLAGS_seconds + 2; ++s) {
        out.write(reinterpret_cast<const char*>(tone.data()), tone.size());
      }
    }
    fifo = std::make_unique<FifoSink>(session->File("sink.fifo"));
    std::ofstream(session->File(".asoundrc"))
        << "pcm.bench_sink { type file; slave.pcm null; file \"" << session->File("sink.fifo")
        << "\"; format raw }\n"
        << "pcm.bench_source { type file; slave.pcm null; file \"/dev/null\"; infile \"" << source
        << "\"; format raw }\n"
        << "pcm.bench { type asym; playback.pcm \"bench_sink\"; capture.pcm \"bench_source\" }\n";
    setenv("HOME", session->dir().c_str(), 1);  // the bridge's alsa-lib reads $HOME/.asoundrc
    args.push_back("--audio-device=bench");
    args.push_back("--bridge=" + RunfilePath("vhost-user-snd/vhost-user-snd-bridge"));
  }
  // Declared after the FIFO reader: the server and its pw-record go first, so that the reader
  // sees the FIFO's end.
  std::unique_ptr<snd::PipeWireServer> pw;
  if (backend == "pipewire") {
    // Sets the environment the daemon (and so the bridge) inherits; the bridge's streams go
    // to the default sink and source, test-sink and test-source.
    ASSIGN_OR_RETURN(pw, snd::PipeWireServer::Create(RunfilePath("tests/e2e/pipewire")));
    RETURN_IF_ERROR(pw->Start());
    if (capture) {
      // pw-play as a source node, playing (once linked) a tone longer than the run.
      const std::string source = pw->dir() + "/source.wav";
      ASSIGN_OR_RETURN(snd::WavWriter writer, snd::WavWriter::Create(source, snd::WavFormat()));
      ASSIGN_OR_RETURN(std::vector<uint8_t> tone,
                       frontend::SndSineTone(VIRTIO_SND_PCM_FMT_S16, 2, kRate, 1000, 0.5, kRate));
      for (int s = 0; s < FLAGS_seconds + 4; ++s) RETURN_IF_ERROR(writer.Write(tone));
      RETURN_IF_ERROR(writer.Close());
      RETURN_IF_ERROR(pw->StartSource(source).status());
    } else {
      // pw-record of the sink's monitor, raw S16 (pw-record goes by the .raw name), written
      // into the FIFO in the graph cycle the sink consumes it: the frames' arrival at the sink.
      // The FIFO is in the session's directory, which outlives the reader (the server's goes
      // with the server).
      const std::string sink = session->File("sink.raw");
      fifo = std::make_unique<FifoSink>(sink);
      RETURN_IF_ERROR(pw->StartRecorder(sink, "s16", "bench-recorder").status());
    }
    args.push_back("--bridge=" + RunfilePath("vhost-user-snd/vhost-user-snd-bridge"));
  }
  RETURN_IF_ERROR(session->Start(
      FLAGS_daemon.empty() ? RunfilePath("vhost-user-snd/vhost-user-snd") : FLAGS_daemon, args));
  const pid_t pid = session->daemon()->pid();
  const pid_t bridge = ChildOf(pid);
  SndDriver::Options options;
  options.ram_size = 8 << 20;
  if (!FLAGS_event_idx) options.features &= ~Bit(kFeatureEventIdx);
  ASSIGN_OR_RETURN(std::unique_ptr<SndDriver> driver, SndDriver::Start(session->socket(), options));

  // The default streams: 0 playback, 1 capture. Buffers queued between PREPARE and START, as a
  // driver does, so no period goes by empty.
  const uint32_t stream = capture ? 1 : 0;
  ASSIGN_OR_RETURN(uint32_t set, driver->SetParams(frontend::SndSetParams(
                                     stream, FLAGS_periods * period_bytes, period_bytes, 2,
                                     VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_RATE_48000)));
  if (set != VIRTIO_SND_S_OK) return absl::InternalError(absl::StrCat("SET_PARAMS: ", set));
  ASSIGN_OR_RETURN(uint32_t prepared, driver->PcmCommand(VIRTIO_SND_R_PCM_PREPARE, stream));
  if (prepared != VIRTIO_SND_S_OK) return absl::InternalError("PREPARE failed");
  if (pw) {
    // The bridge opened its stream at PREPARE: measure once WirePlumber has linked it.
    const std::string port =
        capture ? "vhost-user-snd-capture:input_FL" : "vhost-user-snd-playback:output_FL";
    RETURN_IF_ERROR(snd::PipeWireServer::WaitLinked(port));
  }
  std::vector<SndPcmBuffer> buffers(FLAGS_periods);
  std::vector<int> buffer_of_id(options.queue_size, -1);
  std::vector<double> queued_at(FLAGS_periods);
  // Playback buffers are numbered (every sample holds the number) so the FIFO reader can tell
  // when each comes out of the host side; numbers wrap below 32768.
  std::map<int, double> numbered_at;
  int next_number = 1;
  ASSIGN_OR_RETURN(
      std::vector<uint8_t> tone,
      frontend::SndSineTone(VIRTIO_SND_PCM_FMT_S16, 2, kRate, 440, 0.5, period_frames));
  auto queue = [&](int i) -> absl::Status {
    frontend::ResetSndPcmBuffer(&buffers[i]);
    if (fifo && !capture) {
      std::fill_n(reinterpret_cast<int16_t*>(buffers[i].data), period_frames * 2,
                  static_cast<int16_t>(next_number));
    }
    ASSIGN_OR_RETURN(uint16_t id, driver->QueuePcm(buffers[i]));
    buffer_of_id[id] = i;
    queued_at[i] = Now();
    if (fifo && !capture) {
      numbered_at[next_number] = queued_at[i];
      next_number = next_number % 32000 + 1;
    }
    return absl::OkStatus();
  };
  for (int i = 0; i < FLAGS_periods; ++i) {
    ASSIGN_OR_RETURN(buffers[i], driver->AllocatePcmBuffer(stream, period_bytes, capture));
    if (!capture) std::copy(tone.begin(), tone.end(), buffers[i].data);
    RETURN_IF_ERROR(queue(i));
  }

  const absl::Duration cpu_before = ProcessCpuTime(pid);
  const absl::Duration bridge_cpu_before = bridge ? ProcessCpuTime(bridge) : absl::ZeroDuration();
  ASSIGN_OR_RETURN(uint32_t started, driver->PcmCommand(VIRTIO_SND_R_PCM_START, stream));
  if (started != VIRTIO_SND_S_OK) return absl::InternalError("START failed");
  const double start = Now();
  std::vector<double> done;  // each completion's arrival
  std::vector<double> queued_to_done;
  std::vector<double> latency_bytes;
  Figures f;
  f.latency_bytes_min = ~0u;
  while (Now() - start < FLAGS_seconds) {
    ASSIGN_OR_RETURN(testing::UsedElement used, driver->WaitForPcm(capture));
    const double now = Now();
    if (used.id >= buffer_of_id.size() || buffer_of_id[used.id] < 0) {
      return absl::InternalError(absl::StrCat("unknown chain ", used.id));
    }
    const int i = buffer_of_id[used.id];
    buffer_of_id[used.id] = -1;
    done.push_back(now);
    queued_to_done.push_back(now - queued_at[i]);
    if (buffers[i].status->status != VIRTIO_SND_S_OK) ++f.errors;
    latency_bytes.push_back(buffers[i].status->latency_bytes);
    f.latency_bytes_min = std::min(f.latency_bytes_min, buffers[i].status->latency_bytes);
    f.latency_bytes_max = std::max(f.latency_bytes_max, buffers[i].status->latency_bytes);
    RETURN_IF_ERROR(queue(i));
  }
  const absl::Duration cpu = ProcessCpuTime(pid) - cpu_before;
  const absl::Duration bridge_cpu =
      bridge ? ProcessCpuTime(bridge) - bridge_cpu_before : absl::ZeroDuration();
  for (uint32_t code : {VIRTIO_SND_R_PCM_STOP, VIRTIO_SND_R_PCM_RELEASE}) {
    RETURN_IF_ERROR(driver->PcmCommand(code, stream).status());
  }
  // The daemon (and its bridge) go before a PipeWire server would, so the bridge does not see
  // the server vanish.
  driver.reset();
  session->Stop();
  if (done.size() < 2) return absl::InternalError("fewer than two completions");

  f.completions = done.size();
  // Drift: from the first completion to the last, (n - 1) periods completed.
  const double span = done.back() - done.front();
  const double expected = (done.size() - 1) * period_s;
  f.drift_ppm = (span / expected - 1) * 1e6;
  f.drift_ms = (span - expected) * 1e3;
  // Jitter per period: how far each interval between two completions is from one period (a
  // period the device went through without a guest buffer shows as an interval of two).
  // Includes this process's wake-up.
  std::vector<double> deviation;
  for (size_t n = 1; n < done.size(); ++n) {
    deviation.push_back(std::abs(done[n] - done[n - 1] - period_s) * 1e6);
  }
  f.jitter_p50_us = Percentile(deviation, 0.5);
  f.jitter_p99_us = Percentile(deviation, 0.99);
  f.jitter_max_us = *std::max_element(deviation.begin(), deviation.end());
  f.latency_bytes_p50 = Percentile(latency_bytes, 0.5);
  f.queued_to_done_p50_ms = Percentile(queued_to_done, 0.5) * 1e3;
  f.queued_to_done_max_ms = *std::max_element(queued_to_done.begin(), queued_to_done.end()) * 1e3;
  f.cpu_ms_per_audio_s = absl::ToDoubleMilliseconds(cpu) / (done.back() - start);
  f.bridge_cpu_ms_per_audio_s = absl::ToDoubleMilliseconds(bridge_cpu) / (done.back() - start);
  if (fifo && !capture) {
    std::vector<double> to_host;
    for (const auto& [number, arrived] : fifo->arrivals()) {
      auto queued = numbered_at.find(number);
      // Numbers wrap: only a queueing before the arrival counts.
      if (queued != numbered_at.end() && arrived >= queued->second) {
        to_host.push_back(arrived - queued->second);
      }
    }
    if (!to_host.empty()) {
      f.to_host_p50_ms = Percentile(to_host, 0.5) * 1e3;
      f.to_host_max_ms = *std::max_element(to_host.begin(), to_host.end()) * 1e3;
    }
  }
  return f;
}

int Main() {
  const std::string daemon =
      FLAGS_daemon.empty() ? RunfilePath("vhost-user-snd/vhost-user-snd") : FLAGS_daemon;
  struct stat st;
  if (stat(daemon.c_str(), &st) != 0) {
    std::fprintf(stderr, "no daemon at %s\n", daemon.c_str());
    return 1;
  }
  const double bytes_per_ms = kRate * kFrameBytes / 1000.0;
  std::printf(
      "vhost-user-snd timing: 48000 Hz S16 stereo, %d ms periods, %d queued, %.0f s per run; "
      "load average %s\n",
      FLAGS_period_ms, FLAGS_periods, FLAGS_seconds, LoadAverage().c_str());
  std::printf("%-8s %-8s %6s %9s %8s %23s %17s %27s %9s %6s %15s %17s\n", "host", "dir", "done",
              "drift ppm", "drift ms", "jitter p50/p99/max us", "queued->done ms",
              "latency_bytes p50 (min-max)", "CPU ms/s", "errors", "bridge CPU ms/s",
              "queued->host ms");
  const std::vector<std::string> backends = absl::StrSplit(FLAGS_backends, ',', absl::SkipEmpty());
  const std::vector<std::string> directions =
      absl::StrSplit(FLAGS_directions, ',', absl::SkipEmpty());
  for (const std::string& backend : backends) {
    for (const std::string& direction : directions) {
      absl::StatusOr<Figures> f = Run(backend, direction == "capture");
      if (!f.ok()) {
        std::fprintf(stderr, "%s %s failed: %s\n", backend.c_str(), direction.c_str(),
                     f.status().ToString().c_str());
        return 1;
      }
      std::printf(
          "%-8s %-8s %6lu %9.1f %8.3f %7.0f /%6.0f /%7.0f %8.1f /%7.1f %6.0f (%u-%u) = %.0f ms "
          "%9.3f %6lu %15.3f %8.1f /%7.1f\n",
          backend.c_str(), direction.c_str(), static_cast<unsigned long>(f->completions),
          f->drift_ppm, f->drift_ms, f->jitter_p50_us, f->jitter_p99_us, f->jitter_max_us,
          f->queued_to_done_p50_ms, f->queued_to_done_max_ms, f->latency_bytes_p50,
          f->latency_bytes_min, f->latency_bytes_max, f->latency_bytes_p50 / bytes_per_ms,
          f->cpu_ms_per_audio_s, static_cast<unsigned long>(f->errors),
          f->bridge_cpu_ms_per_audio_s, f->to_host_p50_ms, f->to_host_max_ms);
      std::fflush(stdout);
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
