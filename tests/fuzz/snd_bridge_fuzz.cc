// Fuzzes both ends of vhost-user-snd's bridge protocol with what the other end controls. The
// bridge (StreamServer, outside the daemon's sandbox) gets whatever a daemon taken over by its
// guest could send; the daemon (BridgeBackend) gets whatever a bridge could. The input is a
// direction byte, then messages: a 16-bit length and that many bytes, each sent as one
// SOCK_SEQPACKET message. Nothing may crash, hang or grow without bound; a host fake records
// what reached it and aborts on a partial frame or a write before an open.
#include <sys/socket.h>

#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "glog/logging.h"
#include "tests/fuzz/fuzz_input.h"
#include "vhost-user-snd/bridge/stream_server.h"
#include "vhost-user-snd/bridge_backend.h"

namespace vhost::snd {
namespace {

// Accepts everything, as a host side would; checks what the server lets through.
class CheckingPcm : public HostPcm {
 public:
  absl::Status Open(PcmDirection, const StreamParams& p) override {
    if (p.period_bytes() == 0 || p.period_bytes() > kMaxBridgePeriodBytes) abort();
    params_ = p;
    open_ = true;
    return absl::OkStatus();
  }
  absl::Status Start() override { return absl::OkStatus(); }
  absl::Status Stop() override { return absl::OkStatus(); }
  absl::Status Write(absl::Span<const uint8_t> frames) override {
    if (!open_ || frames.size() % params_.frame_bytes() != 0) abort();
    return absl::OkStatus();
  }
  absl::Status Read(absl::Span<uint8_t> frames) override {
    if (!open_ || frames.size() != params_.period_bytes()) abort();
    memset(frames.data(), 1, frames.size());
    // A host that records at no clock would keep the server busy: one period per message.
    if (++reads_ > 4) return absl::UnavailableError("enough");
    return absl::OkStatus();
  }
  void Close() override { open_ = false; }

 private:
  StreamParams params_;
  bool open_ = false;
  int reads_ = 0;
};

std::vector<std::vector<uint8_t>> Messages(FuzzInput& in) {
  std::vector<std::vector<uint8_t>> messages;
  while (in.remaining() > 0 && messages.size() < 64) {
    const size_t n = std::min<size_t>(in.Take<uint16_t>(), kMaxBridgeMessage + 8);
    std::vector<uint8_t> m(n);
    in.TakeBytes(m.data(), n);
    messages.push_back(std::move(m));
  }
  return messages;
}

void FuzzBridge(PcmDirection direction, const std::vector<std::vector<uint8_t>>& messages) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) abort();
  UniqueFd daemon(pair[0]);
  StreamServer server(UniqueFd(pair[1]), direction, std::make_unique<CheckingPcm>());
  std::thread bridge([&] { server.Run(); });
  std::vector<uint8_t> reply(kMaxBridgeMessage);
  recv(daemon.get(), reply.data(), reply.size(), 0);  // kCaps, read as the daemon does
  for (const std::vector<uint8_t>& m : messages) {
    // Never waits: a bridge that stopped reading (it ended the stream) fills the socket.
    if (send(daemon.get(), m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) break;
  }
  // The daemon is done sending; the bridge reads what is queued, then ends (a close with its
  // replies unread would be a reset, which the bridge sees before the queued messages).
  shutdown(daemon.get(), SHUT_WR);
  while (recv(daemon.get(), reply.data(), reply.size(), 0) > 0) {
  }
  bridge.join();
}

void FuzzDaemon(BridgeDirection direction, const std::vector<std::vector<uint8_t>>& messages) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) abort();
  UniqueFd bridge(pair[1]);
  BridgeBackend backend(UniqueFd(pair[0]), direction, AnyCapabilities());
  const StreamParams params{AudioFormat::kS16, 48000, 2, 480};
  (void)backend.Open(params);
  (void)backend.Start();
  std::vector<uint8_t> period(params.period_bytes());
  for (const std::vector<uint8_t>& m : messages) {
    if (send(bridge.get(), m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) break;
    absl::Status s = direction == BridgeDirection::kCapture ? backend.Read(absl::MakeSpan(period))
                                                            : backend.Write(period);
    if (absl::IsUnavailable(s)) (void)backend.Open(params), (void)backend.Start();
  }
}

}  // namespace
}  // namespace vhost::snd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vhost::snd;
  static bool logging = [] {
    FLAGS_minloglevel = 3;  // the rejected messages' log lines are expected
    return true;
  }();
  (void)logging;
  vhost::FuzzInput in(data, size);
  const uint8_t which = in.Take<uint8_t>();
  const std::vector<std::vector<uint8_t>> messages = Messages(in);
  switch (which % 4) {
    case 0:
      FuzzBridge(PcmDirection::kPlayback, messages);
      break;
    case 1:
      FuzzBridge(PcmDirection::kCapture, messages);
      break;
    case 2:
      FuzzDaemon(BridgeDirection::kPlayback, messages);
      break;
    case 3:
      FuzzDaemon(BridgeDirection::kCapture, messages);
      break;
  }
  return 0;
}
