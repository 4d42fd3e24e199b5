#include "vhost-user-snd/bridge/pipewire_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/unique_fd.h"

extern char** environ;

namespace vhost::snd {

using frontend::DaemonProcess;

absl::StatusOr<std::unique_ptr<PipeWireServer>> PipeWireServer::Create(std::string config_dir) {
  char dir[] = "/tmp/pwserver-XXXXXX";
  if (mkdtemp(dir) == nullptr) return absl::ErrnoToStatus(errno, "mkdtemp");
  std::unique_ptr<PipeWireServer> server(new PipeWireServer(std::move(config_dir), dir));
  if (mkdir(server->run_dir_.c_str(), 0700) != 0 ||
      mkdir((server->dir_ + "/config").c_str(), 0700) != 0) {
    return absl::ErrnoToStatus(errno, "mkdir");
  }
  // WirePlumber reads its config from $XDG_CONFIG_HOME/wireplumber.
  if (symlink((server->config_dir_ + "/wireplumber").c_str(),
              (server->dir_ + "/config/wireplumber").c_str()) != 0) {
    return absl::ErrnoToStatus(errno, "symlink");
  }
  unsetenv("PIPEWIRE_REMOTE");
  setenv("XDG_RUNTIME_DIR", server->run_dir_.c_str(), 1);
  setenv("PIPEWIRE_RUNTIME_DIR", server->run_dir_.c_str(), 1);
  setenv("HOME", server->dir_.c_str(), 1);
  setenv("XDG_CONFIG_HOME", (server->dir_ + "/config").c_str(), 1);
  setenv("XDG_STATE_HOME", (server->dir_ + "/state").c_str(), 1);
  return server;
}

PipeWireServer::PipeWireServer(std::string config_dir, std::string dir)
    : config_dir_(std::move(config_dir)), dir_(std::move(dir)), run_dir_(dir_ + "/run") {}

PipeWireServer::~PipeWireServer() {
  tools_.clear();
  manager_.reset();
  server_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status PipeWireServer::Start(bool session_manager) {
  auto server = DaemonProcess::Start(
      {"pipewire", {"-c", config_dir_ + "/pipewire.conf"}, run_dir_ + "/pipewire-0"});
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  if (!session_manager) return absl::OkStatus();
  auto manager = DaemonProcess::Start({"wireplumber", {}, ""});
  if (!manager.ok()) return manager.status();
  manager_ = *std::move(manager);
  // WirePlumber is ready once it has made test-sink the default sink.
  return WaitForLine({"pw-metadata", "-m", "-n", "default"}, "WirePlumber's default sink",
                     [](const std::string& line) {
                       return line.find("default.audio.sink") != std::string::npos &&
                              line.find(kSink) != std::string::npos;
                     });
}

absl::Status PipeWireServer::Kill() {
  if (server_ == nullptr || manager_ == nullptr) {
    return absl::FailedPreconditionError("not started");
  }
  if (absl::Status s = server_->Signal(SIGKILL); !s.ok()) return s;
  if (absl::Status s = manager_->Signal(SIGKILL); !s.ok()) return s;
  return server_->Wait(absl::Seconds(10)).status();
}

absl::StatusOr<DaemonProcess*> PipeWireServer::Spawn(const std::string& tool,
                                                     std::vector<std::string> args) {
  auto p = DaemonProcess::Start({tool, std::move(args), ""});
  if (!p.ok()) return p.status();
  tools_.push_back(*std::move(p));
  return tools_.back().get();
}

absl::StatusOr<DaemonProcess*> PipeWireServer::StartSource(const std::string& wav_path,
                                                           const std::string& name) {
  auto source = Spawn(
      "pw-play",
      {"-P", absl::StrCat("{ media.class = Audio/Source node.name = ", name, " }"), wav_path});
  if (!source.ok()) return source.status();
  if (absl::Status s = WaitForNode(name); !s.ok()) return s;
  return source;
}

absl::StatusOr<DaemonProcess*> PipeWireServer::StartRecorder(const std::string& path,
                                                             const std::string& format,
                                                             const std::string& name) {
  // stream.capture.sink: a capture stream that names a sink records its monitor.
  auto recorder =
      Spawn("pw-record", {"--target", kSink, "-P",
                          absl::StrCat("{ stream.capture.sink = true node.name = ", name, " }"),
                          "--format", format, "--rate", "48000", "--channels", "2", path});
  if (!recorder.ok()) return recorder.status();
  if (absl::Status s = WaitLinked(name + ":input_FL"); !s.ok()) return s;
  return recorder;
}

std::string PipeWireServer::RunTool(const std::string& command) {
  std::string out;
  // A one-shot tool that hangs (a server gone quiet) must not hang the test: coreutils'
  // timeout ends it, and the caller sees what it printed, as for a tool that failed.
  if (FILE* f = popen(("timeout 10 " + command + " 2>/dev/null").c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
    pclose(f);
  }
  return out;
}

bool PipeWireServer::HasNode(const std::string& name) {
  return RunTool("pw-cli ls Node").find(absl::StrCat("node.name = \"", name, "\"")) !=
         std::string::npos;
}

bool PipeWireServer::Linked(const std::string& port) {
  return RunTool("pw-link -l").find(port) != std::string::npos;
}

absl::Status PipeWireServer::WaitForNode(const std::string& name) {
  return WaitForChange("node " + name, [&] { return HasNode(name); });
}

absl::Status PipeWireServer::WaitLinked(const std::string& port) {
  return WaitForChange("a link of " + port, [&] { return Linked(port); });
}

absl::Status PipeWireServer::WaitForChange(const std::string& what,
                                           const std::function<bool()>& done,
                                           absl::Duration timeout) {
  // pw-dump -m prints every object as it appears or changes; each print is a reason to ask
  // the one-shot tools again (they see the whole graph at once, which a monitor that
  // cross-references ports and links need not when they come in quick succession).
  // Asked once the monitor runs (a change after that shows in its output), then at each print.
  return Watch(
      {"pw-dump", "-m", "-N"}, what, timeout, [&](absl::string_view) { return done(); }, done);
}

absl::Status PipeWireServer::WaitForLine(std::vector<std::string> monitor, const std::string& what,
                                         const std::function<bool(const std::string&)>& matches,
                                         absl::Duration timeout) {
  std::string pending;
  return Watch(std::move(monitor), what, timeout, [&](absl::string_view output) {
    pending.append(output.data(), output.size());
    bool found = false;
    for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
      found = found || matches(pending.substr(0, eol));
      pending.erase(0, eol + 1);
    }
    return found;
  });
}

absl::Status PipeWireServer::Watch(std::vector<std::string> monitor, const std::string& what,
                                   absl::Duration timeout,
                                   const std::function<bool(absl::string_view)>& on_output,
                                   const std::function<bool()>& after_start) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  UniqueFd read_end(out[0]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<char*> argv;
  for (std::string& a : monitor) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  const int err = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (err != 0) return absl::ErrnoToStatus(err, "spawn " + monitor[0]);

  absl::Status status = absl::DeadlineExceededError(
      absl::StrCat(what, ": not within ", absl::FormatDuration(timeout)));
  const absl::Time deadline = absl::Now() + timeout;
  char buf[65536];
  if (after_start && after_start()) {
    status = absl::OkStatus();
  } else {
    for (;;) {
      const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      pollfd pfd{read_end.get(), POLLIN, 0};
      if (ms <= 0 || poll(&pfd, 1, static_cast<int>(ms)) <= 0) break;
      const ssize_t n = read(read_end.get(), buf, sizeof(buf));
      if (n <= 0) {
        status = absl::UnavailableError(absl::StrCat(what, ": ", monitor[0], " ended"));
        break;
      }
      if (on_output(absl::string_view(buf, n))) {
        status = absl::OkStatus();
        break;
      }
    }
  }
  // The monitor handles SIGTERM in its main loop, which a write into a pipe nobody reads any
  // more blocks forever (pw-dump's output fills one): closed pipe and SIGKILL, it has nothing
  // to finish.
  read_end.Reset();
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return status;
}

}  // namespace vhost::snd
