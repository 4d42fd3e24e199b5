// A private, headless PipeWire for tests and benchmarks, the C++ side of
// tests/e2e/pipewire_host.py (which says how the config works): pipewire and WirePlumber with
// tests/e2e/pipewire/, in a fresh directory under /tmp, with a 48 kHz null sink, `test-sink`,
// that drives the graph at the wall clock. pw-record on the sink's monitor hears what is
// played; pw-play as an Audio/Source node, `test-source`, is what is captured.
#ifndef VHOST_USER_SND_BRIDGE_PIPEWIRE_SERVER_H_
#define VHOST_USER_SND_BRIDGE_PIPEWIRE_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/frontend/daemon_process.h"

namespace vhost::snd {

class PipeWireServer {
 public:
  static constexpr char kSink[] = "test-sink";
  static constexpr char kSource[] = "test-source";

  // Makes the directory and points this process's environment at it (XDG_RUNTIME_DIR, HOME,
  // ...), so that every PipeWire client from now on - libpipewire in this process, pw-* tools,
  // a daemon and the bridge it starts - reaches this server and no other. Starts nothing.
  // `config_dir` is tests/e2e/pipewire in the caller's runfiles.
  static absl::StatusOr<std::unique_ptr<PipeWireServer>> Create(std::string config_dir);
  // Stops the tools, WirePlumber and pipewire, and removes the directory.
  ~PipeWireServer();

  // pipewire, then WirePlumber (unless `session_manager` is false: then nothing links
  // streams), ready once WirePlumber has made test-sink the default sink.
  absl::Status Start(bool session_manager = true);
  // SIGKILL to pipewire and WirePlumber: the server goes away under its clients.
  absl::Status Kill();

  const std::string& dir() const { return dir_; }
  // Where pipewire-0, the server's socket, is.
  const std::string& run_dir() const { return run_dir_; }

  // Starts a pw-* tool (or any program), kept running until the server goes or the caller
  // stops it through the pointer.
  absl::StatusOr<frontend::DaemonProcess*> Spawn(const std::string& tool,
                                                 std::vector<std::string> args);
  // A source node `name` that plays WAV file `wav_path` once something is linked to it;
  // returns once the node is in the graph.
  absl::StatusOr<frontend::DaemonProcess*> StartSource(const std::string& wav_path,
                                                       const std::string& name = kSource);
  // pw-record of the sink's monitor into `path` in `format` (a pw-record name: s16, f32) at
  // 48 kHz stereo, as a node `name`; returns once it is linked. pw-record picks the file type
  // by the extension (.wav, .raw for no header).
  absl::StatusOr<frontend::DaemonProcess*> StartRecorder(const std::string& path,
                                                         const std::string& format = "s16",
                                                         const std::string& name = "test-recorder");

  // stdout of a shell command (a pw-* tool talking to the server), "" if it could not run.
  static std::string RunTool(const std::string& command);
  // Whether `port` (node:port, e.g. test-recorder:input_FL) appears in pw-link -l now, and
  // whether node `name` is in the graph now (one-shot tools: they see the whole graph).
  static bool Linked(const std::string& port);
  static bool HasNode(const std::string& name);
  // Wait until node `name` is in the graph, or `port` is linked: woken by PipeWire's own
  // events (pw-dump -m prints each change as it happens), with a deadline for a hang.
  static absl::Status WaitForNode(const std::string& name);
  static absl::Status WaitLinked(const std::string& port);
  // Until `done` holds, asked again at each change of the graph.
  static absl::Status WaitForChange(const std::string& what, const std::function<bool()>& done,
                                    absl::Duration timeout = absl::Seconds(20));
  // Runs `monitor` (a pw-* tool in monitor mode) until a line of its output matches.
  static absl::Status WaitForLine(std::vector<std::string> monitor, const std::string& what,
                                  const std::function<bool(const std::string&)>& matches,
                                  absl::Duration timeout = absl::Seconds(20));

 private:
  PipeWireServer(std::string config_dir, std::string dir);

  // Runs `monitor` with its stdout on a pipe; true once `after_start` (asked once the monitor
  // runs) or `on_output` (given each read of its output) says so, within `timeout`.
  static absl::Status Watch(std::vector<std::string> monitor, const std::string& what,
                            absl::Duration timeout,
                            const std::function<bool(absl::string_view)>& on_output,
                            const std::function<bool()>& after_start = nullptr);

  const std::string config_dir_;
  const std::string dir_;
  const std::string run_dir_;
  std::unique_ptr<frontend::DaemonProcess> server_;
  std::unique_ptr<frontend::DaemonProcess> manager_;
  std::vector<std::unique_ptr<frontend::DaemonProcess>> tools_;
};

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_BRIDGE_PIPEWIRE_SERVER_H_
