// The event devices through our own front end, each against the cost of its host trigger alone:
//   gpio:  interrupts per second and the latency from a host edge (a `set LINE 0|1` on the
//          simulated chip's control socket) to the event queue's used entry, the front end
//          queueing the line's buffer again after each one (the guest's unmask);
//   input: events per second and the latency from a control-socket command of the virtual
//          keyboard to the used entry carrying the report's SYN;
//   i2c:   transactions per second on a simulated EEPROM bus, 1 and 32 byte writes and random
//          reads, at queue depth 1 and 16.
// The daemon runs on CPU 0, the front end (and the host-side client) on CPU 1. Prints figures;
// asserts nothing.
//
//   bazel build -c opt //tests/bench:event_bench
//   bazel-out/k8-opt/bin/tests/bench/event_bench --seconds=2 --repeat=3   # --only=gpio --summary
#include <linux/input.h>
#include <linux/virtio_gpio.h>
#include <linux/virtio_i2c.h>
#include <linux/virtio_input.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

DEFINE_double(seconds, 2.0, "Measured time per rate case and run");
DEFINE_int32(repeat, 3, "Runs per rate case; the median is reported");
DEFINE_int32(samples, 2000, "Latency samples per device (edges, key reports)");
DEFINE_int32(lines, 8, "gpio lines given an edge per round in the interrupt-rate case");
DEFINE_bool(poll, true, "The front end spins on the used ring (false: sleeps on the call eventfd)");
DEFINE_string(only, "", "Run only the devices whose name contains this (gpio, input, i2c)");
DEFINE_bool(summary, false,
            "Also print one tab-separated SUMMARY line per figure: device, figure, ours, "
            "peer or limit, ratio (for tests/bench/run_all)");

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::FrontendQueue;
using frontend::GuestRam;
using testing::Buffer;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(5);

// ---- output -------------------------------------------------------------------------------

struct Row {
  std::string device, figure, ours, limit, ratio, cpu, limit_is;
};
std::vector<Row> rows;

std::string Rate(double per_second) {
  if (per_second >= 1e6) return absl::StrFormat("%.2f M/s", per_second / 1e6);
  if (per_second >= 1e4) return absl::StrFormat("%.1f k/s", per_second / 1e3);
  return absl::StrFormat("%.0f /s", per_second);
}
std::string Micros(double us) { return absl::StrFormat("%.1f us", us); }
std::string Ratio(double a, double b) { return b > 0 ? absl::StrFormat("%.2fx", a / b) : "-"; }

void Print(const Row& r) {
  std::printf("%-6s %-34s %12s %12s %7s %12s  %s\n", r.device.c_str(), r.figure.c_str(),
              r.ours.c_str(), r.limit.c_str(), r.ratio.c_str(), r.cpu.c_str(), r.limit_is.c_str());
  std::fflush(stdout);
  rows.push_back(r);
}

// p50 and p99 rows of a latency (`samples`, us) against the host trigger's own (`trigger`).
void PrintLatency(const char* device, const char* figure, const std::vector<double>& samples,
                  const std::vector<double>& trigger, const char* trigger_is) {
  for (double p : {0.5, 0.99}) {
    const double e = Percentile(samples, p), t = Percentile(trigger, p);
    Print({device, absl::StrFormat("%s p%d", figure, static_cast<int>(p * 100)), Micros(e),
           Micros(t), Ratio(e, t), "-", trigger_is});
  }
}

// ---- the host side: one connection to a daemon's control socket -----------------------------

class Control {
 public:
  absl::Status Connect(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) return absl::InvalidArgumentError("path too long");
    std::memcpy(addr.sun_path, path.data(), path.size());
    // The daemon makes its control socket before its vhost-user socket, which the session
    // waited for: it listens already.
    fd_ = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd_ || connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return absl::ErrnoToStatus(errno, "connect " + path);
    }
    return absl::OkStatus();
  }
  absl::Status Send(const std::string& lines) {
    for (size_t done = 0; done < lines.size();) {
      const ssize_t n = write(fd_.get(), lines.data() + done, lines.size() - done);
      if (n <= 0) return absl::ErrnoToStatus(errno, "control write");
      done += n;
    }
    return absl::OkStatus();
  }
  // Waits for `count` more answers; any "error: ..." fails.
  absl::Status Replies(int count) {
    while (answers_ < count) RETURN_IF_ERROR(Read(true));
    answers_ -= count;
    return absl::OkStatus();
  }
  // Takes what answers have arrived, without waiting; returns how many.
  absl::StatusOr<int> TakeReplies() {
    RETURN_IF_ERROR(Read(false));
    const int n = answers_;
    answers_ = 0;
    return n;
  }

 private:
  // With --poll the answer is spun for too, as the used ring is: the limit then pays no more
  // wake-ups than the figure it bounds.
  absl::Status Read(bool wait) {
    char buf[4096];
    ssize_t n;
    do {
      n = recv(fd_.get(), buf, sizeof(buf), wait && !FLAGS_poll ? 0 : MSG_DONTWAIT);
    } while (n < 0 && wait && (errno == EAGAIN || errno == EWOULDBLOCK));
    if (n < 0 && !wait && (errno == EAGAIN || errno == EWOULDBLOCK)) return absl::OkStatus();
    if (n <= 0) return absl::ErrnoToStatus(n == 0 ? EPIPE : errno, "control read");
    pending_.append(buf, n);
    for (size_t end; (end = pending_.find('\n')) != std::string::npos;) {
      if (pending_.compare(0, 2, "ok") != 0) {
        return absl::InternalError("control answered: " + pending_.substr(0, end));
      }
      ++answers_;
      pending_.erase(0, end + 1);
    }
    return absl::OkStatus();
  }

  UniqueFd fd_;
  std::string pending_;
  int answers_ = 0;
};

// Daemon on CPU 0 (taskset execs it: the pid is the daemon's).
absl::Status StartPinned(DaemonSession* session, const std::string& binary,
                         std::vector<std::string> args) {
  args.insert(args.begin(), {"-c", "0", RunfilePath(binary), "--minloglevel=1"});
  return session->Start("taskset", args);
}

// Waits for one used element, as the guest's driver would see it.
absl::StatusOr<UsedElement> NextUsed(FrontendQueue* queue) {
  return queue->WaitForUsed(kTimeout, FLAGS_poll);
}

// ---- gpio ---------------------------------------------------------------------------------

class GpioBench {
 public:
  absl::Status Start() {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create("gpiobench"));
    control_path_ = session_->File("ctl");
    RETURN_IF_ERROR(
        StartPinned(session_.get(), "vhost-user-gpio/vhost-user-gpio",
                    {"--socket-path=" + session_->socket(), "--control-socket=" + control_path_,
                     absl::StrCat("--device-list=s", FLAGS_lines)}));
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(VIRTIO_GPIO_F_IRQ) | Bit(kFeatureEventIdx);
    options.required_features = options.features;
    options.ram_size = 2 << 20;
    options.queue_sizes = {64, 64};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    RETURN_IF_ERROR(control_.Connect(control_path_));
    ram_ = device_->ram();
    for (int line = 0; line < FLAGS_lines; ++line) {
      // Both edges interrupt: every `set` that changes the level is one interrupt.
      ASSIGN_OR_RETURN(uint8_t status,
                       Request(VIRTIO_GPIO_MSG_IRQ_TYPE, line, VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH));
      if (status != VIRTIO_GPIO_STATUS_OK) return absl::InternalError("SET_IRQ_TYPE refused");
      uint8_t* req;
      Slot slot;
      ASSIGN_OR_RETURN(slot.req, ram_->Allocate(2, 64, &req));
      ASSIGN_OR_RETURN(slot.resp, ram_->Allocate(1, 64, &slot.status));
      const uint16_t l = line;
      std::memcpy(req, &l, 2);
      slots_.push_back(slot);
    }
    level_.assign(FLAGS_lines, 0);
    return absl::OkStatus();
  }

  pid_t pid() { return session_->daemon()->pid(); }

  // Queues line `line`'s event buffer (unmasks it); published by the next Submit().
  absl::Status Unmask(int line) {
    *slots_[line].status = 0xee;
    ASSIGN_OR_RETURN(uint16_t id,
                     events()->ring().AddChain({{slots_[line].req, 2}}, {{slots_[line].resp, 1}}));
    line_of_id_[id] = line;
    return absl::OkStatus();
  }
  // Waits for an interrupt; returns its line.
  absl::StatusOr<int> NextInterrupt() {
    ASSIGN_OR_RETURN(UsedElement used, NextUsed(events()));
    const int line = line_of_id_[used.id];
    if (*slots_[line].status != VIRTIO_GPIO_IRQ_STATUS_VALID) {
      return absl::InternalError(absl::StrCat("line ", line, " came back INVALID"));
    }
    return line;
  }
  std::string Edge(int line) {
    level_[line] ^= 1;
    return absl::StrCat("set ", line, " ", level_[line], "\n");
  }

  // Latency of one line's edge, `n` samples, each with the trigger's own round trip (`get`)
  // measured just before it; the round trip also gives the daemon time to take the buffer
  // queued before it, as a guest's unmask long precedes the next edge.
  absl::Status Latency(int n, std::vector<double>* edge_us, std::vector<double>* trigger_us) {
    for (int i = 0; i < n; ++i) {
      RETURN_IF_ERROR(Unmask(0));
      RETURN_IF_ERROR(events()->Submit().status());
      absl::Time t = absl::Now();
      RETURN_IF_ERROR(control_.Send("get 0\n"));
      RETURN_IF_ERROR(control_.Replies(1));
      trigger_us->push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
      const std::string edge = Edge(0);
      t = absl::Now();
      RETURN_IF_ERROR(control_.Send(edge));
      RETURN_IF_ERROR(NextInterrupt().status());
      edge_us->push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
      RETURN_IF_ERROR(control_.Replies(1));
    }
    return absl::OkStatus();
  }

  // Rounds of an edge on every line (one write of the commands), until every line's interrupt
  // is in and its buffer queued again. Returns interrupts per second and daemon CPU us each.
  absl::StatusOr<std::pair<double, double>> Rate(absl::Duration duration) {
    for (int line = 0; line < FLAGS_lines; ++line) RETURN_IF_ERROR(Unmask(line));
    RETURN_IF_ERROR(events()->Submit().status());
    uint64_t interrupts = 0;
    const absl::Duration cpu0 = ProcessCpuTime(pid());
    const absl::Time start = absl::Now();
    while (absl::Now() - start < duration) {
      std::string commands;
      for (int line = 0; line < FLAGS_lines; ++line) commands += Edge(line);
      RETURN_IF_ERROR(control_.Send(commands));
      for (int k = 0; k < FLAGS_lines; ++k) {
        ASSIGN_OR_RETURN(int line, NextInterrupt());
        RETURN_IF_ERROR(Unmask(line));
      }
      RETURN_IF_ERROR(events()->Submit().status());
      RETURN_IF_ERROR(control_.Replies(FLAGS_lines));
      interrupts += FLAGS_lines;
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    const double cpu_us = absl::ToDoubleMicroseconds(ProcessCpuTime(pid()) - cpu0);
    // Leave no buffer held: one more edge per line brings them all back.
    std::string commands;
    for (int line = 0; line < FLAGS_lines; ++line) commands += Edge(line);
    RETURN_IF_ERROR(control_.Send(commands));
    for (int k = 0; k < FLAGS_lines; ++k) RETURN_IF_ERROR(NextInterrupt().status());
    RETURN_IF_ERROR(control_.Replies(FLAGS_lines));
    return std::make_pair(interrupts / seconds, cpu_us / interrupts);
  }

  // The limit of Rate(): the same rounds of commands that trigger nothing (`get`).
  absl::StatusOr<double> TriggerRate(absl::Duration duration) {
    std::string commands;
    for (int line = 0; line < FLAGS_lines; ++line) commands += absl::StrCat("get ", line, "\n");
    uint64_t done = 0;
    const absl::Time start = absl::Now();
    while (absl::Now() - start < duration) {
      RETURN_IF_ERROR(control_.Send(commands));
      RETURN_IF_ERROR(control_.Replies(FLAGS_lines));
      done += FLAGS_lines;
    }
    return done / absl::ToDoubleSeconds(absl::Now() - start);
  }

 private:
  struct Slot {
    uint64_t req = 0, resp = 0;
    uint8_t* status = nullptr;
  };
  FrontendQueue* events() { return device_->queue(1); }

  absl::StatusOr<uint8_t> Request(uint16_t type, uint16_t gpio, uint32_t value) {
    uint8_t *req, *resp;
    ASSIGN_OR_RETURN(uint64_t req_gpa, ram_->Allocate(sizeof(virtio_gpio_request), 64, &req));
    ASSIGN_OR_RETURN(uint64_t resp_gpa, ram_->Allocate(2, 64, &resp));
    const virtio_gpio_request request{type, gpio, value};
    std::memcpy(req, &request, sizeof(request));
    FrontendQueue* q = device_->queue(0);
    RETURN_IF_ERROR(q->ring().AddChain({{req_gpa, sizeof(request)}}, {{resp_gpa, 2}}).status());
    RETURN_IF_ERROR(q->Submit().status());
    RETURN_IF_ERROR(q->WaitForUsed(kTimeout).status());
    return resp[0];
  }

  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<DeviceConnection> device_;
  GuestRam* ram_ = nullptr;
  std::string control_path_;
  Control control_;
  std::vector<Slot> slots_;  // one event buffer per line
  std::vector<int> level_;
  std::map<uint16_t, int> line_of_id_;
};

absl::Status RunGpio() {
  GpioBench bench;
  RETURN_IF_ERROR(bench.Start());
  std::vector<double> warm_edge, warm_trigger, edge, trigger;
  RETURN_IF_ERROR(bench.Latency(100, &warm_edge, &warm_trigger));
  RETURN_IF_ERROR(bench.Latency(FLAGS_samples, &edge, &trigger));
  std::vector<double> rate, cpu, limit;
  for (int i = 0; i < FLAGS_repeat; ++i) {
    ASSIGN_OR_RETURN(auto r, bench.Rate(absl::Seconds(FLAGS_seconds)));
    rate.push_back(r.first);
    cpu.push_back(r.second);
    ASSIGN_OR_RETURN(double l, bench.TriggerRate(absl::Seconds(FLAGS_seconds)));
    limit.push_back(l);
  }
  const std::string lines = absl::StrCat(FLAGS_lines, " lines");
  Print({"gpio", absl::StrCat("interrupts/s (", lines, " a round)"), Rate(Median(rate)),
         Rate(Median(limit)), Ratio(Median(rate), Median(limit)), Micros(Median(cpu)) + "/irq",
         absl::StrCat("`get` commands/s, ", lines, " a round")});
  PrintLatency("gpio", "edge -> used entry", edge, trigger, "control round trip (`get`)");
  return absl::OkStatus();
}

// ---- input --------------------------------------------------------------------------------

class InputBench {
 public:
  static constexpr uint32_t kRing = 256;

  absl::Status Start() {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create("inputbench"));
    const std::string control_path = session_->File("ctl");
    RETURN_IF_ERROR(StartPinned(session_.get(), "vhost-user-input/vhost-user-input",
                                {"--socket-path=" + session_->socket(), "--virtual-device=keyboard",
                                 "--control-socket=" + control_path}));
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx);
    options.required_features = options.features;
    options.ram_size = 4 << 20;
    options.queue_sizes = {kRing, 64};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    RETURN_IF_ERROR(control_.Connect(control_path));
    // Every buffer of the event queue given at once, as Linux's virtio_input does.
    for (uint32_t i = 0; i < kRing; ++i) {
      uint8_t* host;
      ASSIGN_OR_RETURN(uint64_t gpa,
                       device_->ram()->Allocate(sizeof(virtio_input_event), 8, &host));
      ASSIGN_OR_RETURN(uint16_t id, events()->ring().AddChain({}, {{gpa, 8}}));
      buffers_[id] = {gpa, host};
    }
    return events()->Submit().status();
  }

  pid_t pid() { return session_->daemon()->pid(); }

  // Takes one event and queues its buffer again (published by the next Submit()).
  absl::StatusOr<virtio_input_event> Take(const UsedElement& used) {
    auto [gpa, host] = buffers_[used.id];
    virtio_input_event e;
    std::memcpy(&e, host, sizeof(e));
    ASSIGN_OR_RETURN(uint16_t id, events()->ring().AddChain({}, {{gpa, 8}}));
    buffers_[id] = {gpa, host};
    return e;
  }

  // A key's report (EV_KEY, SYN_REPORT) from the write of `key KEY_A 0|1` to the used entry of
  // its SYN, with a no-op command's round trip (`sleep 0`) just before each.
  absl::Status Latency(int n, std::vector<double>* report_us, std::vector<double>* trigger_us) {
    for (int i = 0; i < n; ++i) {
      absl::Time t = absl::Now();
      RETURN_IF_ERROR(control_.Send("sleep 0\n"));
      RETURN_IF_ERROR(control_.Replies(1));
      trigger_us->push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
      const std::string command = absl::StrCat("key KEY_A ", i % 2 == 0 ? 1 : 0, "\n");
      t = absl::Now();
      RETURN_IF_ERROR(control_.Send(command));
      for (int k = 0; k < 2; ++k) {
        ASSIGN_OR_RETURN(UsedElement used, NextUsed(events()));
        ASSIGN_OR_RETURN(virtio_input_event e, Take(used));
        if (e.type != (k == 0 ? EV_KEY : EV_SYN)) return absl::InternalError("unexpected event");
      }
      report_us->push_back(absl::ToDoubleMicroseconds(absl::Now() - t));
      RETURN_IF_ERROR(events()->Submit().status());
      RETURN_IF_ERROR(control_.Replies(1));
    }
    return absl::OkStatus();
  }

  // `press KEY_A` (4 events: down, SYN, up, SYN) written back to back with at most `window`
  // commands not yet delivered or answered (far under the 4096 events the daemon keeps), for
  // `duration`. Returns events per second and daemon CPU us per event over that time.
  absl::StatusOr<std::pair<double, double>> Rate(int window, absl::Duration duration) {
    uint64_t sent = 0, got = 0, answered = 0, counted = 0;
    const absl::Duration cpu0 = ProcessCpuTime(pid());
    absl::Duration cpu;
    const absl::Time start = absl::Now();
    absl::Time stop = start + duration;
    bool sending = true;
    for (;;) {
      if (sending && absl::Now() >= stop) {
        sending = false;
        stop = absl::Now();
        cpu = ProcessCpuTime(pid()) - cpu0;
        counted = got;
      }
      const uint64_t outstanding = sent - std::min(got / 4, answered);
      if (sending && outstanding <= static_cast<uint64_t>(window / 2)) {
        std::string batch;
        for (uint64_t k = outstanding; k < static_cast<uint64_t>(window); ++k, ++sent) {
          batch += "press KEY_A\n";
        }
        RETURN_IF_ERROR(control_.Send(batch));
      }
      if (!sending && got == sent * 4 && answered == sent) break;
      if (got < sent * 4) {
        ASSIGN_OR_RETURN(UsedElement used, NextUsed(events()));
        for (;;) {
          RETURN_IF_ERROR(Take(used).status());
          ++got;
          ASSIGN_OR_RETURN(absl::optional<UsedElement> more, events()->PollUsed());
          if (!more) break;
          used = *more;
        }
        RETURN_IF_ERROR(events()->Submit().status());
      } else if (answered < sent) {
        RETURN_IF_ERROR(control_.Replies(1));
        ++answered;
      }
      ASSIGN_OR_RETURN(int n, control_.TakeReplies());
      answered += n;
    }
    return std::make_pair(counted / absl::ToDoubleSeconds(stop - start),
                          absl::ToDoubleMicroseconds(cpu) / counted);
  }

  // The limit of Rate(): no-op commands (`sleep 0`) through the same window; commands/s.
  absl::StatusOr<double> TriggerRate(int window, absl::Duration duration) {
    std::string batch;
    for (int k = 0; k < window; ++k) batch += "sleep 0\n";
    RETURN_IF_ERROR(control_.Send(batch));
    uint64_t answered = 0;
    const absl::Time start = absl::Now();
    absl::Time now = start;
    for (; now - start < duration; now = absl::Now()) {
      RETURN_IF_ERROR(control_.Replies(window / 2));
      ASSIGN_OR_RETURN(int more, control_.TakeReplies());
      const int n = window / 2 + more;
      answered += n;
      batch.clear();
      for (int k = 0; k < n; ++k) batch += "sleep 0\n";
      RETURN_IF_ERROR(control_.Send(batch));
    }
    const double rate = answered / absl::ToDoubleSeconds(now - start);
    RETURN_IF_ERROR(control_.Replies(window));  // what is still in flight
    return rate;
  }

  // One `type` of `chars` lower-case letters: events per second from the write to the last
  // event (4 per letter, 20 ms apart by design).
  absl::StatusOr<double> TypeRate(int chars) {
    std::string text;
    for (int i = 0; i < chars; ++i) text += static_cast<char>('a' + i % 26);
    const int expected = 4 * chars;
    const absl::Time start = absl::Now();
    RETURN_IF_ERROR(control_.Send("type " + text + "\n"));
    for (int got = 0; got < expected;) {
      ASSIGN_OR_RETURN(UsedElement used, NextUsed(events()));
      for (;;) {
        RETURN_IF_ERROR(Take(used).status());
        ++got;
        ASSIGN_OR_RETURN(absl::optional<UsedElement> more, events()->PollUsed());
        if (!more) break;
        used = *more;
      }
      RETURN_IF_ERROR(events()->Submit().status());
    }
    const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
    RETURN_IF_ERROR(control_.Replies(1));
    return expected / seconds;
  }

 private:
  FrontendQueue* events() { return device_->queue(0); }

  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<DeviceConnection> device_;
  Control control_;
  std::map<uint16_t, std::pair<uint64_t, uint8_t*>> buffers_;  // by descriptor id
};

absl::Status RunInput() {
  InputBench bench;
  RETURN_IF_ERROR(bench.Start());
  std::vector<double> warm_report, warm_trigger, report, trigger;
  RETURN_IF_ERROR(bench.Latency(100, &warm_report, &warm_trigger));
  RETURN_IF_ERROR(bench.Latency(FLAGS_samples, &report, &trigger));
  constexpr int kWindow = 32;  // commands in flight: 128 events, half the ring
  std::vector<double> rate, cpu, limit;
  for (int i = 0; i < FLAGS_repeat; ++i) {
    ASSIGN_OR_RETURN(auto r, bench.Rate(kWindow, absl::Seconds(FLAGS_seconds)));
    rate.push_back(r.first);
    cpu.push_back(r.second);
    ASSIGN_OR_RETURN(double l, bench.TriggerRate(kWindow, absl::Seconds(FLAGS_seconds)));
    limit.push_back(4 * l);
  }
  // `type` paces its letters 20 ms apart (a fast human; see virtual_source.cc): its limit is
  // that pace.
  const int chars = std::max(5, std::min(100, static_cast<int>(FLAGS_seconds / 0.02)));
  ASSIGN_OR_RETURN(double typed, bench.TypeRate(chars));
  Print({"input", "events/s, `press` pipelined", Rate(Median(rate)), Rate(Median(limit)),
         Ratio(Median(rate), Median(limit)), Micros(Median(cpu)) + "/ev",
         "4 x no-op commands/s (`sleep 0`)"});
  // The first letter's events come at once, the last one's (chars - 1) x 20 ms later.
  const double pace = 4.0 * chars / ((chars - 1) * 0.020);
  Print({"input", absl::StrCat("events/s, `type` of ", chars, " letters"), Rate(typed), Rate(pace),
         Ratio(typed, pace), "-", "its pace: 4 events a letter, 20 ms apart"});
  PrintLatency("input", "key -> used entry", report, trigger, "control round trip (`sleep 0`)");
  return absl::OkStatus();
}

// ---- i2c ----------------------------------------------------------------------------------

// One transaction kind: `bytes` written after the address pointer (one message), or read back
// the way Linux's at24 does a random read (a 1-byte pointer write and an N-byte read linked
// with FAIL_NEXT: two messages), or a zero-length message (SMBus quick: the ring round trip).
struct I2cCase {
  const char* name;
  bool read;
  uint32_t bytes;
};

class I2cBench {
 public:
  static constexpr int kMaxDepth = 16;

  absl::Status Start() {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create("i2cbench"));
    RETURN_IF_ERROR(StartPinned(session_.get(), "vhost-user-i2c/vhost-user-i2c",
                                {"--socket-path=" + session_->socket(), "--device-list=sim:0x50"}));
    DeviceOptions options;
    options.features =
        Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST);
    options.required_features = options.features;
    options.ram_size = 4 << 20;
    options.queue_sizes = {128};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    GuestRam* ram = device_->ram();
    for (int s = 0; s < kMaxDepth; ++s) {
      Slot slot;
      uint8_t *wh, *rh, *data;
      ASSIGN_OR_RETURN(slot.write_header, ram->Allocate(8, 8, &wh));
      ASSIGN_OR_RETURN(slot.read_header, ram->Allocate(8, 8, &rh));
      ASSIGN_OR_RETURN(slot.data, ram->Allocate(64, 8, &data));
      ASSIGN_OR_RETURN(slot.status[0], ram->Allocate(1, 8, &slot.status_host[0]));
      ASSIGN_OR_RETURN(slot.status[1], ram->Allocate(1, 8, &slot.status_host[1]));
      virtio_i2c_out_hdr header{};
      header.addr = 0x50 << 1;
      std::memcpy(wh, &header, sizeof(header));  // a write; FAIL_NEXT set per case below
      header.flags = VIRTIO_I2C_FLAGS_M_RD;
      std::memcpy(rh, &header, sizeof(header));
      for (int i = 0; i < 64; ++i) data[i] = i;  // pointer 0, then the bytes to store
      slot.write_header_host = wh;
      slots_.push_back(slot);
    }
    return absl::OkStatus();
  }

  pid_t pid() { return session_->daemon()->pid(); }

  // Transactions per second and daemon CPU us per transaction, `depth` kept in flight.
  absl::StatusOr<std::pair<double, double>> Run(const I2cCase& c, int depth,
                                                absl::Duration duration) {
    FrontendQueue* q = device_->queue();
    for (int s = 0; s < depth; ++s) RETURN_IF_ERROR(Add(c, s));
    RETURN_IF_ERROR(q->Submit().status());
    uint64_t done = 0;
    const absl::Duration cpu0 = ProcessCpuTime(pid());
    const absl::Time start = absl::Now();
    absl::Time now = start;
    bool adding = true;
    while (adding || q->ring().in_flight() > 0) {
      ASSIGN_OR_RETURN(UsedElement used, NextUsed(q));
      for (;;) {
        const auto [slot, last] = chain_[used.id];
        if (last) {
          if (*slots_[slot].status_host[c.read ? 1 : 0] != VIRTIO_I2C_MSG_OK) {
            return absl::InternalError(absl::StrCat(c.name, ": transaction failed"));
          }
          if (adding) {
            ++done;
            RETURN_IF_ERROR(Add(c, slot));
          }
        }
        ASSIGN_OR_RETURN(absl::optional<UsedElement> more, q->PollUsed());
        if (!more) break;
        used = *more;
      }
      RETURN_IF_ERROR(q->Submit().status());
      if (adding && (now = absl::Now()) - start >= duration) adding = false;
    }
    const double cpu_us = absl::ToDoubleMicroseconds(ProcessCpuTime(pid()) - cpu0);
    return std::make_pair(done / absl::ToDoubleSeconds(now - start), cpu_us / done);
  }

 private:
  struct Slot {
    uint64_t write_header = 0, read_header = 0, data = 0, status[2] = {};
    uint8_t* write_header_host = nullptr;
    uint8_t* status_host[2] = {};
  };

  // Adds slot `s`'s transaction of kind `c` to the ring (published by the next Submit()).
  absl::Status Add(const I2cCase& c, int s) {
    Slot& slot = slots_[s];
    FrontendQueue* q = device_->queue();
    virtio_i2c_out_hdr header{};
    header.addr = 0x50 << 1;
    header.flags = c.read ? VIRTIO_I2C_FLAGS_FAIL_NEXT : 0;
    std::memcpy(slot.write_header_host, &header, sizeof(header));
    *slot.status_host[0] = *slot.status_host[1] = 0xee;
    // The first message: a write of the pointer (and for a write, the bytes), or nothing.
    const uint32_t written = c.read ? 1 : (c.bytes == 0 ? 0 : 1 + c.bytes);
    std::vector<Buffer> readable{{slot.write_header, 8}};
    if (written) readable.push_back({slot.data, written});
    ASSIGN_OR_RETURN(uint16_t id, q->ring().AddChain(readable, {{slot.status[0], 1}}));
    chain_[id] = {s, !c.read};
    if (c.read) {
      ASSIGN_OR_RETURN(id, q->ring().AddChain({{slot.read_header, 8}},
                                              {{slot.data, c.bytes}, {slot.status[1], 1}}));
      chain_[id] = {s, true};
    }
    return absl::OkStatus();
  }

  std::unique_ptr<DaemonSession> session_;
  std::unique_ptr<DeviceConnection> device_;
  std::vector<Slot> slots_;
  std::map<uint16_t, std::pair<int, bool>> chain_;  // id -> slot, last chain of its transaction
};

absl::Status RunI2c() {
  I2cBench bench;
  RETURN_IF_ERROR(bench.Start());
  const I2cCase quick{"quick (0 bytes)", false, 0};
  const I2cCase cases[] = {{"write 1 B", false, 1},
                           {"write 32 B", false, 32},
                           {"read 1 B (w1 + r1)", true, 1},
                           {"read 32 B (w1 + r32)", true, 32}};
  // Each case's runs alternate with runs of the limit, so that load changing on a shared
  // machine hits both.
  for (int depth : {1, I2cBench::kMaxDepth}) {
    for (const I2cCase& c : cases) {
      std::vector<double> rate, cpu, limit;
      for (const I2cCase* k : {&c, &quick}) {  // warm-up
        RETURN_IF_ERROR(bench.Run(*k, depth, absl::Milliseconds(100)).status());
      }
      for (int i = 0; i < FLAGS_repeat; ++i) {
        ASSIGN_OR_RETURN(auto r, bench.Run(c, depth, absl::Seconds(FLAGS_seconds)));
        rate.push_back(r.first);
        cpu.push_back(r.second);
        ASSIGN_OR_RETURN(auto l, bench.Run(quick, depth, absl::Seconds(FLAGS_seconds)));
        limit.push_back(l.first);
      }
      Print({"i2c", absl::StrCat(c.name, " QD", depth, " /s"), Rate(Median(rate)),
             Rate(Median(limit)), Ratio(Median(rate), Median(limit)), Micros(Median(cpu)) + "/tx",
             absl::StrCat("zero-length message (quick) QD", depth)});
    }
  }
  return absl::OkStatus();
}

int Main() {
  PinTo(1);
  std::printf(
      "event devices through our front end; daemon on CPU 0, front end on CPU 1 (%s); "
      "rates: %.1f s x %d runs (median); latency: %d samples\n",
      FLAGS_poll ? "spinning on the used ring" : "sleeping on the call eventfd", FLAGS_seconds,
      FLAGS_repeat, FLAGS_samples);
  std::printf("%-6s %-34s %12s %12s %7s %12s  %s\n", "device", "figure", "ours", "limit", "ratio",
              "daemon CPU", "limit is");
  struct Device {
    const char* name;
    absl::Status (*run)();
  };
  int failed = 0;
  for (const Device& d :
       {Device{"gpio", RunGpio}, Device{"input", RunInput}, Device{"i2c", RunI2c}}) {
    if (!absl::StrContains(d.name, FLAGS_only)) continue;
    if (absl::Status s = d.run(); !s.ok()) {
      std::printf("%s failed: %s\n", d.name, s.ToString().c_str());
      ++failed;
    }
  }
  std::printf(
      "peer: none. QEMU ships no vhost-user gpio or i2c daemon; its contrib "
      "vhost-user-input needs an evdev device (/dev/uinput to make one)%s.\n",
      access("/dev/uinput", F_OK) == 0 ? "; not compared here" : ", and this host has none");
  if (FLAGS_summary) {
    for (const Row& r : rows) {
      std::printf("SUMMARY\t%s\t%s\t%s\t%s\t%s\n", r.device.c_str(), r.figure.c_str(),
                  r.ours.c_str(), r.limit.empty() ? "-" : ("limit " + r.limit).c_str(),
                  r.ratio.c_str());
    }
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return vhost::Main();
}
