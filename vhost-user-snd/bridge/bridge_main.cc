// vhost-user-snd-bridge: plays and records vhost-user-snd's streams on the host's ALSA or
// PipeWire. vhost-user-snd starts it (--backend=alsa|pipewire) with stream i's socket as
// descriptor 3 + i; it is not meant to be run by hand. It exits when the daemon does.
#include <sys/stat.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/base/unique_fd.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "vhost-user-snd/bridge/host_pcm.h"
#include "vhost-user-snd/bridge/stream_server.h"

DEFINE_string(host, "", "alsa or pipewire");
DEFINE_string(device, "", "ALSA PCM name, or PipeWire target node (\"\": the default)");
DEFINE_string(streams, "", "playback|capture[,...]: stream i is on descriptor 3 + i");

namespace {

int Usage(const char* flag, const std::string& problem) {
  fprintf(stderr, "vhost-user-snd-bridge: --%s: %s\n", flag, problem.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("the host audio side of vhost-user-snd (started by it)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(argv[0]);
  using namespace vhost::snd;
  if (FLAGS_host != "alsa" && FLAGS_host != "pipewire") {
    return Usage("host", "'" + FLAGS_host + "' is not alsa|pipewire");
  }
  std::vector<PcmDirection> directions;
  for (absl::string_view d : absl::StrSplit(FLAGS_streams, ',')) {
    if (d == "playback") {
      directions.push_back(PcmDirection::kPlayback);
    } else if (d == "capture") {
      directions.push_back(PcmDirection::kCapture);
    } else {
      return Usage("streams", "'" + std::string(d) + "' is not playback|capture");
    }
  }
  std::vector<std::unique_ptr<StreamServer>> servers;
  for (size_t i = 0; i < directions.size(); ++i) {
    const int fd = 3 + static_cast<int>(i);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
      return Usage("streams", "descriptor " + std::to_string(fd) + " is not a socket");
    }
    std::unique_ptr<HostPcm> pcm =
        FLAGS_host == "alsa" ? NewAlsaPcm(FLAGS_device) : NewPipeWirePcm(FLAGS_device);
    servers.push_back(
        std::make_unique<StreamServer>(vhost::UniqueFd(fd), directions[i], std::move(pcm)));
  }
  std::vector<std::thread> threads;
  for (auto& server : servers) threads.emplace_back([&server] { server->Run(); });
  for (std::thread& t : threads) t.join();
  return 0;
}
