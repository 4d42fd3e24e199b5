// vhost-user-vsock stream throughput and connection setup, with our front end playing the guest
// (tests/frontend/vsock_driver) and host programs on the Unix socket side, against the limit: the
// same bytes through a plain AF_UNIX socket pair on this machine. 64 KiB writes. Prints MB/s,
// connections/s and the ratio to the socket pair; asserts nothing.
//
//   bazel build //tests/bench:vsock_bench && bazel-bin/tests/bench/vsock_bench --seconds=2
//   --repeat=3
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
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
              "Run one case alone (g2h, h2g or connect; for profiling): prints its figure only");

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

  std::string uds() const { return uds_; }

 private:
  std::unique_ptr<DaemonSession> session_;
  std::string socket_, uds_;
  std::unique_ptr<VsockDriver> guest_;
};

int Main() {
  Bench bench;
  if (!bench.Start()) return 1;
  if (!FLAGS_only.empty()) {
    std::vector<double> runs;
    for (int i = 0; i < FLAGS_repeat; ++i) {
      if (FLAGS_only == "g2h") runs.push_back(bench.GuestToHost(1000 + i));
      if (FLAGS_only == "h2g") runs.push_back(bench.HostToGuest(2000 + i));
      if (FLAGS_only == "connect") runs.push_back(bench.ConnectRate(3000 + i));
    }
    if (runs.empty()) {
      std::fprintf(stderr, "--only: g2h, h2g or connect\n");
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
  return 0;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  // A writer thread may still be in write() when its stream is shut down: EPIPE, not death.
  signal(SIGPIPE, SIG_IGN);
  return vhost::Main();
}
