#include "vhost-user-snd/bridge/pipewire_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

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
  if (!WaitUntil([] {
        return RunTool("pw-metadata -n default 0 default.audio.sink").find(kSink) !=
               std::string::npos;
      })) {
    return absl::DeadlineExceededError("WirePlumber did not pick the default sink");
  }
  return absl::OkStatus();
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
  if (!WaitUntil([&] { return HasNode(name); })) {
    return absl::DeadlineExceededError(absl::StrCat("no node ", name));
  }
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
  if (!WaitUntil([&] { return Linked(name + ":input_FL"); })) {
    return absl::DeadlineExceededError(absl::StrCat(name, " not linked to the sink"));
  }
  return recorder;
}

std::string PipeWireServer::RunTool(const std::string& command) {
  std::string out;
  if (FILE* f = popen((command + " 2>/dev/null").c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
    pclose(f);
  }
  return out;
}

bool PipeWireServer::Linked(const std::string& port) {
  return RunTool("pw-link -l").find(port) != std::string::npos;
}

bool PipeWireServer::HasNode(const std::string& name) {
  return RunTool("pw-cli ls Node").find(absl::StrCat("node.name = \"", name, "\"")) !=
         std::string::npos;
}

bool PipeWireServer::WaitUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

}  // namespace vhost::snd
