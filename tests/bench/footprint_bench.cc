// What an idle daemon costs (issue 20's footprint targets): for each daemon kind that starts
// without hardware, the time from spawn to its socket appearing (median of --starts), then its
// resident memory while idle with no front end (VmRSS, RssAnon, RssFile from /proc/PID/status,
// Pss from /proc/PID/smaps_rollup): "ready" when it says so, "settled" once it has given its
// start-up pages back a second time (after a second with no front end, which it logs); and
// again with a front end connected (one queue started); then --count daemons of mixed kinds
// started round-robin and their total PSS, settled. Prints the targets
// beside the figures; asserts nothing. "open ms" is the first connection's set-up
// (DeviceConnection::Open: features, guest RAM, one queue started) and the daemon's page faults
// during it.
//
//   bazel build -c opt //tests/bench:footprint_bench && bazel-bin/tests/bench/footprint_bench
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "gflags/gflags.h"
#include "tests/bench/bench_util.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

DEFINE_int32(starts, 11, "Starts per kind for the start-to-listening median");
DEFINE_int32(count, 100, "Idle daemons of mixed kinds for the total PSS (0 skips it)");
DEFINE_string(only, "", "Measure only the kinds whose name contains this");

extern char** environ;

namespace vhost {
namespace {

using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::TempDir;

constexpr double kTargetRssKb = 1.5 * 1024;
constexpr double kTargetStartMs = 5;
constexpr double kTargetTotalPssMb = 40;

struct Kind {
  const char* name;
  // Flags besides --socket-path; "$DIR" is the daemon's own temporary directory.
  std::vector<std::string> args;
};

const std::vector<Kind>& Kinds() {
  static const auto* kinds = new std::vector<Kind>{
      {"rng", {}},
      {"blk", {"--null-size=1073741824"}},
      {"input", {"--virtual-device=keyboard"}},
      {"gpio", {"--device-list=s8"}},
      {"i2c", {"--device-list=sim:0x50"}},
      {"vsock", {"--uds-path=$DIR/vm.vsock", "--guest-cid=3"}},
      {"fs", {"--shared-dir=$DIR"}},
      {"scsi", {"--lun=null=1073741824"}},
      {"snd", {"--backend=null"}},
      {"scmi", {}},
  };
  return *kinds;
}

// One daemon: spawned, waited for (on inotify and a pidfd) until its socket exists, SIGKILLed
// and reaped on destruction.
class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(const Kind& kind) {
    std::unique_ptr<Daemon> d(new Daemon);
    ASSIGN_OR_RETURN(d->dir_, TempDir::Create("fp"));
    d->socket_ = d->dir_->File("sock");
    std::vector<std::string> args = {
        RunfilePath(absl::StrCat("vhost-user-", kind.name, "/", "vhost-user-", kind.name)),
        "--socket-path=" + d->socket_};  // INFO on: "ready for a front end"
    for (std::string a : kind.args) {
      if (size_t at = a.find("$DIR"); at != std::string::npos) a.replace(at, 4, d->dir_->path());
      args.push_back(a);
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = d->dir_->File("log");
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // Everything the daemon does that start-up is timed by shows in its directory: the socket
    // appears (IN_CREATE), its log grows (IN_MODIFY). Watched before the spawn, so no event is
    // missed.
    d->events_ = UniqueFd(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!d->events_.valid() ||
        inotify_add_watch(d->events_.get(), d->dir_->path().c_str(), IN_CREATE | IN_MODIFY) < 0) {
      return absl::ErrnoToStatus(errno, "inotify");
    }
    d->log_ = log;
    const absl::Time start = absl::Now();
    const int err = posix_spawn(&d->pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (err != 0) return absl::ErrnoToStatus(err, "spawn " + args[0]);
    d->exited_ = UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, d->pid_, 0)));
    if (!d->exited_.valid()) return absl::ErrnoToStatus(errno, "pidfd_open");
    RETURN_IF_ERROR(d->Until(kind.name, [&] {
      struct stat st;
      return stat(d->socket_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
    }));
    d->start_to_listening_ = absl::Now() - start;
    return d;
  }

  ~Daemon() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Waits until the daemon says it is ready for a front end and then waits for one: start-up
  // is over, its start-up pages given back (just before that first wait).
  absl::Status WaitReady() {
    RETURN_IF_ERROR(WaitForLog("ready for a front end"));
    return WaitForPoll();
  }
  // Waits until it has given them back again, idle (logged a second after "ready", just before
  // the release) and waits in poll(2) again: the release is over then.
  absl::Status WaitSettled() {
    RETURN_IF_ERROR(WaitForLog("idle: giving start-up pages back"));
    return WaitForPoll();
  }
  // Once a log line said the daemon is past a wait: until it is in the next one.
  absl::Status WaitForPoll() {
    // /proc/PID/syscall names the main thread's system call while it sleeps in one (else
    // "running"). Nothing announces that it went to sleep, so the benchmark looks again until it
    // has, yielding its CPU in between (the release it waits for takes well under a millisecond).
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      std::ifstream in(absl::StrCat("/proc/", pid_, "/syscall"));
      long number = -1;
      if (in >> number && (number == SYS_poll || number == SYS_ppoll)) return absl::OkStatus();
      sched_yield();
    }
    return absl::DeadlineExceededError("the daemon did not wait in poll(2) after its release");
  }

  absl::Status WaitForLog(const std::string& line) {
    return Until(line, [&] {
      std::ifstream in(log_);
      std::stringstream text;
      text << in.rdbuf();
      return text.str().find(line) != std::string::npos;
    });
  }

  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  absl::Duration start_to_listening() const { return start_to_listening_; }

 private:
  Daemon() = default;

  // Until `done` holds, woken by the daemon's directory changing; an error if the daemon
  // exits (its log says why) or 5 s pass.
  absl::Status Until(const std::string& what, const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!done()) {
      pollfd fds[2] = {{events_.get(), POLLIN, 0}, {exited_.get(), POLLIN, 0}};
      const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (ms <= 0 || poll(fds, 2, static_cast<int>(ms)) == 0) {
        return absl::DeadlineExceededError(what);
      }
      if (fds[1].revents != 0) {
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
        std::ifstream in(log_);
        std::stringstream text;
        text << in.rdbuf();
        return absl::InternalError(absl::StrCat(what, ": the daemon exited: ", text.str()));
      }
      char buf[4096];
      while (read(events_.get(), buf, sizeof(buf)) > 0) {
      }
    }
    return absl::OkStatus();
  }

  std::unique_ptr<TempDir> dir_;
  std::string socket_;
  std::string log_;
  pid_t pid_ = -1;
  UniqueFd events_;  // inotify on dir_
  UniqueFd exited_;  // pidfd: readable once the daemon exits
  absl::Duration start_to_listening_;
};

// kB figures of a /proc file's "Name:   N kB" lines.
std::map<std::string, double> ReadKb(const std::string& path) {
  std::map<std::string, double> kb;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos || line.find(" kB") == std::string::npos) continue;
    kb[line.substr(0, colon)] = std::strtod(line.c_str() + colon + 1, nullptr);
  }
  return kb;
}

struct Memory {
  double rss = 0, anon = 0, file = 0, pss = 0;  // kB
};

Memory ReadMemory(pid_t pid) {
  std::map<std::string, double> status = ReadKb(absl::StrCat("/proc/", pid, "/status"));
  std::map<std::string, double> rollup = ReadKb(absl::StrCat("/proc/", pid, "/smaps_rollup"));
  return {status["VmRSS"], status["RssAnon"], status["RssFile"], rollup["Pss"]};
}

struct Faults {
  long minor = 0, major = 0;
};

// The daemon's page faults so far (all threads), from /proc/PID/stat fields 10 and 12.
Faults ReadFaults(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string skip;
  Faults f;
  for (int i = 3; i < 10; ++i) fields >> skip;
  fields >> f.minor >> skip >> f.major;
  return f;
}

void PrintMemory(const char* state, const Memory& m) {
  std::printf(" %-9s %6.0f %6.0f %6.0f %6.0f", state, m.rss, m.anon, m.file, m.pss);
}

int Run() {
  std::printf(
      "targets: idle VmRSS <= %.0f kB, start-to-listening <= %.0f ms, %d idle daemons "
      "< %.0f MiB total PSS\n\n",
      kTargetRssKb, kTargetStartMs, FLAGS_count, kTargetTotalPssMb);
  std::printf(
      "%-6s %9s | %-9s %6s %6s %6s %6s | %-9s %6s %6s %6s %6s | %-9s %6s %6s %6s %6s | "
      "%7s %5s %5s\n",
      "kind", "start ms", "ready", "VmRSS", "anon", "file", "Pss", "settled", "VmRSS", "anon",
      "file", "Pss", "connected", "VmRSS", "anon", "file", "Pss", "open ms", "minflt", "majflt");
  std::vector<const Kind*> kinds;
  for (const Kind& kind : Kinds()) {
    if (absl::string_view(kind.name).find(FLAGS_only) != absl::string_view::npos) {
      kinds.push_back(&kind);
    }
  }
  for (const Kind* kind : kinds) {
    std::vector<double> ms;
    std::unique_ptr<Daemon> daemon;
    for (int i = 0; i < FLAGS_starts; ++i) {
      daemon.reset();
      absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(*kind);
      if (!d.ok()) {
        std::printf("%-6s %s\n", kind->name, d.status().ToString().c_str());
        break;
      }
      daemon = *std::move(d);
      ms.push_back(absl::ToDoubleMilliseconds(daemon->start_to_listening()));
    }
    if (ms.size() != static_cast<size_t>(FLAGS_starts)) continue;
    std::printf("%-6s %9.2f |", kind->name, Median(ms));
    if (absl::Status s = daemon->WaitReady(); !s.ok()) {
      std::printf(" %s\n", s.ToString().c_str());
      continue;
    }
    PrintMemory("", ReadMemory(daemon->pid()));
    std::printf(" |");
    if (absl::Status s = daemon->WaitSettled(); !s.ok()) {
      std::printf(" %s\n", s.ToString().c_str());
      continue;
    }
    PrintMemory("", ReadMemory(daemon->pid()));
    DeviceOptions options;
    options.queue_sizes = {256};
    const Faults faults_before = ReadFaults(daemon->pid());
    const absl::Time open_start = absl::Now();
    absl::StatusOr<std::unique_ptr<DeviceConnection>> connection =
        DeviceConnection::Open(daemon->socket(), options);
    const double open_ms = absl::ToDoubleMilliseconds(absl::Now() - open_start);
    const Faults faults = ReadFaults(daemon->pid());
    // Open returns once the daemon has answered every message of the set-up.
    if (connection.ok()) {
      std::printf(" |");
      PrintMemory("", ReadMemory(daemon->pid()));
      std::printf(" | %7.2f %5ld %5ld", open_ms, faults.minor - faults_before.minor,
                  faults.major - faults_before.major);
    } else {
      std::printf(" | %s", connection.status().ToString().c_str());
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  if (FLAGS_count <= 0 || kinds.empty()) return 0;
  std::vector<std::unique_ptr<Daemon>> many;
  for (int i = 0; i < FLAGS_count; ++i) {
    absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(*kinds[i % kinds.size()]);
    if (!d.ok()) {
      std::printf("daemon %d: %s\n", i, d.status().ToString().c_str());
      return 1;
    }
    many.push_back(*std::move(d));
  }
  double pss = 0, rss = 0;
  for (auto& d : many) {
    if (absl::Status s = d->WaitSettled(); !s.ok()) std::printf("%s\n", s.ToString().c_str());
    const Memory m = ReadMemory(d->pid());
    pss += m.pss;
    rss += m.rss;
  }
  std::printf(
      "\n%d idle daemons (%zu kinds round-robin): total PSS %.1f MiB (target < %.0f), "
      "total VmRSS %.1f MiB, PSS per daemon %.0f kB\n",
      FLAGS_count, kinds.size(), pss / 1024, kTargetTotalPssMb, rss / 1024, pss / FLAGS_count);
  return 0;
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  signal(SIGPIPE, SIG_IGN);
  return vhost::Run();
}
