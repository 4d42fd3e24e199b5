// vhost-user-vsock stream throughput and connection setup, with our front end playing the guest
// (tests/frontend/vsock_driver) and host programs on the Unix socket side, against the limit: the
// same bytes through a plain AF_UNIX socket pair on this machine. 64 KiB writes. Prints MB/s,
// connections/s and the ratio to the socket pair; asserts nothing. The concurrent case (multi)
// writes to N guest -> host streams at once: aggregate MB/s, the spread between the fastest and
// slowest connection, and the daemon's CPU per GB moved.
//
//   bazel build //tests/bench:vsock_bench && bazel-bin/tests/bench/vsock_bench --seconds=2
//   --repeat=3
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/base/unique_fd.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/vsock_driver.h"
#include "tests/integration/runfiles.h"

DEFINE_double(seconds, 2.0, "Measured time per case and run");
DEFINE_int32(repeat, 1, "Runs per case; the median is reported");
DEFINE_string(daemon, "",
              "The daemon to measure instead of the one built with the benchmark (A/B runs)");
DEFINE_string(only, "",
              "Run one case alone (g2h, h2g, connect or multi; for profiling): prints its "
              "figure(s) only");
DEFINE_string(connections, "1,8,64,1024",
              "multi: the numbers of concurrent guest -> host streams, comma-separated");

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::VsockDriver;
using frontend::VsockStream;

constexpr size_t kWrite = 64 * 1024;

UniqueFd UnixSocket() { return UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)); }

sockaddr_un Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return addr;
}

// Wakes an acceptor blocked in accept() so it sees its stop flag. Non-blocking: an acceptor that
// is not blocked (it saw the flag with connections still in its backlog) takes no more, and a
// blocking connect to its full backlog would wait forever.
void WakeAcceptor(const std::string& path) {
  UniqueFd wake(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un addr = Address(path);
  connect(wake.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
}

UniqueFd Listen(const std::string& path) {
  UniqueFd fd = UnixSocket();
  sockaddr_un addr = Address(path);
  unlink(path.c_str());
  bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  listen(fd.get(), 128);
  return fd;
}

// Reads and discards until EOF; counts.
void Sink(int fd, std::atomic<uint64_t>* bytes) {
  std::vector<char> buf(1 << 20);
  for (ssize_t n; (n = read(fd, buf.data(), buf.size())) > 0;) *bytes += n;
}

double Mbps(uint64_t bytes, absl::Duration d) { return bytes / absl::ToDoubleSeconds(d) / 1e6; }

// The limit: 64 KiB writes through a socket pair, one thread each side.
double SocketPairMbps() {
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  std::atomic<uint64_t> received{0};
  std::thread reader(Sink, sv[1], &received);
  const std::string block(kWrite, 'x');
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(FLAGS_seconds);
  while (absl::Now() < end && write(sv[0], block.data(), block.size()) > 0) {
  }
  close(sv[0]);
  reader.join();
  close(sv[1]);
  return Mbps(received, absl::Now() - start);
}

double SocketPairConnectRate(const std::string& path) {
  UniqueFd listener = Listen(path);
  std::atomic<bool> stop{false};
  std::thread acceptor([&] {
    while (!stop) {
      UniqueFd c(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    }
  });
  int count = 0;
  const absl::Time start = absl::Now();
  const absl::Time end = start + absl::Seconds(FLAGS_seconds);
  sockaddr_un addr = Address(path);
  while (absl::Now() < end) {
    UniqueFd fd = UnixSocket();
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) ++count;
  }
  stop = true;
  WakeAcceptor(path);
  acceptor.join();
  return count / absl::ToDoubleSeconds(absl::Now() - start);
}

// vhost-user-vsock's cap on a VM's connections (HostMuxer::kMaxConnections, not a flag): the
// multi case asks for no more.
constexpr size_t kDaemonMaxConnections = 4096;

// The host end of the multi case: a listener at UDS_PATH_<port> and a few threads, each with an
// epoll set of its own, that accept and read-and-discard every connection, counting its bytes.
class MultiSink {
 public:
  MultiSink(const std::string& path, size_t connections, int threads)
      : counts_(new std::atomic<uint64_t>[connections]()), capacity_(connections) {
    listener_ = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr = Address(path);
    unlink(path.c_str());
    bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    // The guest connects one after another, each waiting for the daemon's connect(): a backlog
    // as deep as the connections, so a late accept never refuses one.
    listen(listener_.get(), static_cast<int>(connections));
    for (int i = 0; i < threads; ++i) {
      UniqueFd ep(epoll_create1(EPOLL_CLOEXEC));
      // EPOLLEXCLUSIVE: one thread woken per connection, which then reads it.
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLEXCLUSIVE;
      ev.data.u64 = kListener;
      epoll_ctl(ep.get(), EPOLL_CTL_ADD, listener_.get(), &ev);
      threads_.emplace_back(&MultiSink::Run, this, ep.get());
      epolls_.push_back(std::move(ep));
    }
  }
  ~MultiSink() {
    stop_ = true;  // each thread sees it within its epoll_wait timeout
    for (std::thread& t : threads_) t.join();
  }

  // Waits until `n` connections are accepted; false after `timeout`.
  bool AwaitAccepted(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    Want want{&accepted_, n};
    return mu_.AwaitWithTimeout(absl::Condition(&Want::Reached, &want), timeout);
  }

  // Bytes received so far on each accepted connection.
  std::vector<uint64_t> Counts() {
    size_t n;
    {
      absl::MutexLock lock(&mu_);
      n = std::min(accepted_, capacity_);
    }
    std::vector<uint64_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
    return out;
  }

 private:
  static constexpr uint64_t kListener = ~0ull;

  struct Want {
    const size_t* accepted;
    size_t n;
    static bool Reached(Want* w) { return *w->accepted >= w->n; }
  };

  void Run(int ep) {
    std::vector<char> buf(256 * 1024);
    std::vector<int> open;
    epoll_event events[64];
    while (!stop_) {
      const int n = epoll_wait(ep, events, 64, 100);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kListener) {
          Accept(ep, &open);
          continue;
        }
        const int fd = static_cast<int>(events[i].data.u64 & 0xffffffff);
        const size_t index = events[i].data.u64 >> 32;
        // One read per event: level-triggered, so a busy connection comes back on the next
        // wait, after the others that are ready.
        const ssize_t got = read(fd, buf.data(), buf.size());
        if (got > 0) {
          counts_[index].fetch_add(got, std::memory_order_relaxed);
        } else if (got == 0 || errno != EAGAIN) {
          epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          close(fd);
          open.erase(std::find(open.begin(), open.end(), fd));
        }
      }
    }
    for (int fd : open) close(fd);
  }

  void Accept(int ep, std::vector<int>* open) {
    for (;;) {
      const int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;  // EAGAIN: another thread took it, or none left
      size_t index;
      {
        absl::MutexLock lock(&mu_);
        index = accepted_++;
      }
      if (index >= capacity_) {
        close(fd);
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = (static_cast<uint64_t>(index) << 32) | static_cast<uint32_t>(fd);
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      open->push_back(fd);
    }
  }

  UniqueFd listener_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  const size_t capacity_;
  absl::Mutex mu_;
  size_t accepted_ = 0;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::vector<UniqueFd> epolls_;
  std::vector<std::thread> threads_;
};

// One run of the multi case.
struct MultiResult {
  size_t connections = 0;
  double mbps = 0;      // aggregate, host side
  double min_mbps = 0;  // the slowest connection
  double max_mbps = 0;  // the fastest
  double cpu_ms_per_gb = 0;
};

class Bench {
 public:
  bool Start() {
    session_ = *DaemonSession::Create("vsock-bench");
    socket_ = session_->File("vhost.sock");
    uds_ = session_->File("v.sock");
    const absl::Status started = session_->Start(
        FLAGS_daemon.empty() ? RunfilePath("vhost-user-vsock/vhost-user-vsock") : FLAGS_daemon,
        {"--socket-path=" + socket_, "--uds-path=" + uds_}, socket_);
    if (!started.ok()) {
      std::fprintf(stderr, "%s\n", started.ToString().c_str());
      return false;
    }
    VsockDriver::Options driver_options;
    driver_options.rx_buffers = 256;
    absl::StatusOr<std::unique_ptr<VsockDriver>> guest =
        VsockDriver::Start(socket_, driver_options);
    if (!guest.ok()) return false;
    guest_ = *std::move(guest);
    return true;
  }

  double GuestToHost(uint32_t port) {
    UniqueFd listener = Listen(absl::StrCat(uds_, "_", port));
    std::atomic<uint64_t> received{0};
    std::thread host([&] {
      UniqueFd c(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      Sink(c.get(), &received);
    });
    absl::StatusOr<VsockStream*> s = guest_->Connect(2, port);
    if (!s.ok()) return 0;
    const std::string block(kWrite, 'x');
    const absl::Time start = absl::Now();
    const absl::Time end = start + absl::Seconds(FLAGS_seconds);
    while (absl::Now() < end && guest_->Write(*s, block).ok()) {
    }
    // The host side sees EOF either way; a failed shutdown only ends the run sooner.
    guest_->Shutdown(*s, VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV).IgnoreError();
    host.join();
    return Mbps(received, absl::Now() - start);
  }

  double HostToGuest(uint32_t port) {
    guest_->Listen(port);
    UniqueFd host = UnixSocket();
    sockaddr_un addr = Address(uds_);
    const std::string line = absl::StrCat("CONNECT ", port, "\n");
    if (connect(host.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        write(host.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return 0;
    }
    absl::StatusOr<VsockStream*> s = guest_->Accept(port);
    if (!s.ok()) return 0;
    char ok[64];
    if (read(host.get(), ok, sizeof(ok)) <= 0) return 0;  // "OK <port>\n"
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      const std::string block(kWrite, 'x');
      while (!stop) {
        if (write(host.get(), block.data(), block.size()) <= 0) return;
      }
    });
    uint64_t received = 0;
    const absl::Time start = absl::Now();
    const absl::Time end = start + absl::Seconds(FLAGS_seconds);
    while (absl::Now() < end && guest_->Pump(absl::Seconds(1))) {
      received += (*s)->data.size();
      (*s)->data.clear();
    }
    const absl::Duration took = absl::Now() - start;
    stop = true;
    shutdown(host.get(), SHUT_RDWR);
    writer.join();
    guest_->Reset(*s).IgnoreError();  // the connection is done with either way
    return Mbps(received, took);
  }

  double ConnectRate(uint32_t port) {
    UniqueFd listener = Listen(absl::StrCat(uds_, "_", port));
    std::atomic<bool> stop{false};
    std::thread acceptor([&] {
      while (!stop) {
        UniqueFd c(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      }
    });
    int count = 0;
    const absl::Time start = absl::Now();
    const absl::Time end = start + absl::Seconds(FLAGS_seconds);
    while (absl::Now() < end) {
      absl::StatusOr<VsockStream*> s = guest_->Connect(2, port);
      if (!s.ok()) break;
      if (!guest_->Reset(*s).ok()) break;
      ++count;
    }
    const absl::Duration took = absl::Now() - start;
    stop = true;
    WakeAcceptor(absl::StrCat(uds_, "_", port));
    acceptor.join();
    return count / absl::ToDoubleSeconds(took);
  }

  // `n` guest -> host streams written at once, round-robin from the one guest thread, each
  // write as much of 64 KiB as that stream's credit allows; the host reads them all.
  absl::StatusOr<MultiResult> Multi(uint32_t port, size_t n) {
    MultiSink sink(absl::StrCat(uds_, "_", port), n, static_cast<int>(std::min<size_t>(n, 4)));
    std::vector<VsockStream*> streams;
    auto reset_all = [&] {
      // Done with either way: the daemon closes their host sockets and the sink sees EOF.
      for (VsockStream* s : streams) guest_->Reset(s).IgnoreError();
    };
    for (size_t i = 0; i < n; ++i) {
      absl::StatusOr<VsockStream*> s = guest_->Connect(2, port);
      if (!s.ok()) {
        reset_all();
        return absl::Status(s.status().code(),
                            absl::StrCat("connection ", i, " of ", n, ": ", s.status().message()));
      }
      streams.push_back(*s);
    }
    if (!sink.AwaitAccepted(n, absl::Seconds(10))) {
      reset_all();
      return absl::DeadlineExceededError(absl::StrCat("the host accepted fewer than ", n));
    }
    const pid_t pid = session_->daemon()->pid();
    const std::string block(kWrite, 'x');
    absl::Status failed;
    const absl::Duration cpu_before = ProcessCpuTime(pid);
    const absl::Time start = absl::Now();
    const absl::Time end = start + absl::Seconds(FLAGS_seconds);
    for (size_t first = 0; failed.ok() && absl::Now() < end; first = (first + 1) % n) {
      size_t sent = 0;
      for (size_t k = 0; k < n && failed.ok(); ++k) {
        absl::StatusOr<size_t> wrote =
            guest_->WriteSome(streams[(first + k) % n], block.data(), block.size());
        // Credit updates taken after every write: rx buffers go back at once, so the daemon
        // never holds its tx queue for want of them while this thread waits on the tx ring.
        absl::StatusOr<int> pumped = guest_->PumpPending();
        if (!wrote.ok()) failed = wrote.status();
        if (!pumped.ok()) failed = pumped.status();
        if (wrote.ok()) sent += *wrote;
      }
      // Every stream out of credit: wait for the daemon's next update, at most until the end.
      if (sent == 0 && failed.ok()) guest_->Pump(std::min(end - absl::Now(), absl::Seconds(1)));
    }
    const absl::Duration took = absl::Now() - start;
    const std::vector<uint64_t> counts = sink.Counts();
    const absl::Duration cpu = ProcessCpuTime(pid) - cpu_before;
    reset_all();
    if (!failed.ok()) return failed;
    uint64_t total = 0;
    for (uint64_t c : counts) total += c;
    if (total == 0 || counts.empty()) return absl::InternalError("no bytes reached the host");
    const auto [least, most] = std::minmax_element(counts.begin(), counts.end());
    MultiResult r;
    r.connections = n;
    r.mbps = Mbps(total, took);
    r.min_mbps = Mbps(*least, took);
    r.max_mbps = Mbps(*most, took);
    r.cpu_ms_per_gb = absl::ToDoubleMilliseconds(cpu) / (total / 1e9);
    return r;
  }

  std::string uds() const { return uds_; }

 private:
  std::unique_ptr<DaemonSession> session_;
  std::string socket_, uds_;
  std::unique_ptr<VsockDriver> guest_;
};

// --connections, capped by the daemon's maximum and by what RLIMIT_NOFILE allows: each
// connection is one socket in this process (the host end) and one in the daemon, which inherits
// the limit set here. Empty on a malformed list.
std::vector<size_t> MultiConnections() {
  std::vector<size_t> wanted;
  for (absl::string_view part : absl::StrSplit(FLAGS_connections, ',', absl::SkipEmpty())) {
    size_t n;
    if (!absl::SimpleAtoi(part, &n) || n == 0) return {};
    wanted.push_back(n);
  }
  constexpr size_t kSpareFds = 256;  // the daemon's own, the front end's, the benchmark's
  const size_t most = wanted.empty() ? 0 : *std::max_element(wanted.begin(), wanted.end());
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < most + kSpareFds) {
    limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, most + kSpareFds);
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  const size_t cap = std::min<size_t>(kDaemonMaxConnections,
                                      limit.rlim_cur > kSpareFds ? limit.rlim_cur - kSpareFds : 1);
  for (size_t& n : wanted) {
    if (n > cap) {
      std::fprintf(stderr,
                   "multi: %zu connections capped to %zu (daemon maximum %zu, fd limit %llu)\n", n,
                   cap, kDaemonMaxConnections, static_cast<unsigned long long>(limit.rlim_cur));
      n = cap;
    }
  }
  return wanted;
}

// Median of each figure over the runs (0 connections if a run failed).
MultiResult MedianOf(const std::vector<MultiResult>& runs) {
  std::vector<double> mbps, min_mbps, max_mbps, cpu;
  for (const MultiResult& r : runs) {
    mbps.push_back(r.mbps);
    min_mbps.push_back(r.min_mbps);
    max_mbps.push_back(r.max_mbps);
    cpu.push_back(r.cpu_ms_per_gb);
  }
  MultiResult m;
  if (runs.empty()) return m;
  m.connections = runs[0].connections;
  m.mbps = Median(mbps);
  m.min_mbps = Median(min_mbps);
  m.max_mbps = Median(max_mbps);
  m.cpu_ms_per_gb = Median(cpu);
  return m;
}

// Runs the multi case for every count; false if one failed (said on stderr).
bool RunMulti(Bench& bench, const std::vector<size_t>& counts, std::vector<MultiResult>* out) {
  for (size_t c = 0; c < counts.size(); ++c) {
    std::vector<MultiResult> runs;
    for (int i = 0; i < FLAGS_repeat; ++i) {
      absl::StatusOr<MultiResult> r = bench.Multi(4000 + 100 * c + i, counts[c]);
      if (!r.ok()) {
        std::fprintf(stderr, "multi, %zu connections: %s\n", counts[c],
                     r.status().ToString().c_str());
        return false;
      }
      runs.push_back(*r);
    }
    out->push_back(MedianOf(runs));
  }
  return true;
}

// The limit for N streams is the one socket pair's figure: on a machine of few cores, N pairs
// share the same CPUs and would not move more bytes in all (not measured separately).
void PrintMulti(const std::vector<MultiResult>& results, double limit) {
  std::printf("%-34s %9s %9s %9s %9s %8s %10s\n", "concurrent guest -> host streams", "MB/s",
              "vs limit", "min MB/s", "max MB/s", "min/max", "CPU ms/GB");
  for (const MultiResult& r : results) {
    std::printf("%-34s %9.0f %8.2fx %9.2f %9.2f %8.2f %10.0f\n",
                absl::StrCat(r.connections, " streams at once").c_str(), r.mbps, r.mbps / limit,
                r.min_mbps, r.max_mbps, r.max_mbps > 0 ? r.min_mbps / r.max_mbps : 0,
                r.cpu_ms_per_gb);
  }
}

int Main() {
  const std::vector<size_t> counts = MultiConnections();
  if (counts.empty()) {
    std::fprintf(stderr, "--connections: positive counts separated by commas\n");
    return 1;
  }
  Bench bench;
  if (!bench.Start()) return 1;
  if (FLAGS_only == "multi") {
    std::vector<double> pair;
    for (int i = 0; i < FLAGS_repeat; ++i) pair.push_back(SocketPairMbps());
    std::vector<MultiResult> results;
    if (!RunMulti(bench, counts, &results)) return 1;
    PrintMulti(results, Median(pair));
    return 0;
  }
  if (!FLAGS_only.empty()) {
    std::vector<double> runs;
    for (int i = 0; i < FLAGS_repeat; ++i) {
      if (FLAGS_only == "g2h") runs.push_back(bench.GuestToHost(1000 + i));
      if (FLAGS_only == "h2g") runs.push_back(bench.HostToGuest(2000 + i));
      if (FLAGS_only == "connect") runs.push_back(bench.ConnectRate(3000 + i));
    }
    if (runs.empty()) {
      std::fprintf(stderr, "--only: g2h, h2g, connect or multi\n");
      return 1;
    }
    std::printf("%s %.0f\n", FLAGS_only.c_str(), Median(runs));
    return 0;
  }
  std::vector<double> g2h, h2g, pair, conn, pair_conn;
  for (int i = 0; i < FLAGS_repeat; ++i) {
    g2h.push_back(bench.GuestToHost(1000 + i));
    h2g.push_back(bench.HostToGuest(2000 + i));
    pair.push_back(SocketPairMbps());
    conn.push_back(bench.ConnectRate(3000 + i));
    pair_conn.push_back(SocketPairConnectRate(bench.uds() + "_pair"));
  }
  std::vector<MultiResult> multi;
  const bool multi_ok = RunMulti(bench, counts, &multi);
  const double limit = Median(pair);
  std::printf("%-34s %12s %10s\n", "case (64 KiB writes)", "figure", "vs limit");
  std::printf("%-34s %9.0f MB/s %9.2fx\n", "guest -> host stream", Median(g2h),
              Median(g2h) / limit);
  std::printf("%-34s %9.0f MB/s %9.2fx\n", "host -> guest stream", Median(h2g),
              Median(h2g) / limit);
  std::printf("%-34s %9.0f MB/s %9.2fx\n", "limit: AF_UNIX socket pair", limit, 1.0);
  std::printf("%-34s %10.0f /s %9.2fx\n", "guest connect + reset", Median(conn),
              Median(conn) / Median(pair_conn));
  std::printf("%-34s %10.0f /s %9.2fx\n", "limit: AF_UNIX connect + accept", Median(pair_conn),
              1.0);
  PrintMulti(multi, limit);
  return multi_ok ? 0 : 1;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  // A writer thread may still be in write() when its stream is shut down: EPIPE, not death.
  signal(SIGPIPE, SIG_IGN);
  return vhost::Main();
}
