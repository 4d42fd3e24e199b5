#include "vhost-user-snd/bridge_backend.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"

extern char** environ;

namespace vhost::snd {
namespace {

absl::Status BridgeGone(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat("audio bridge: ", what));
}

const char* DirectionName(BridgeDirection d) {
  return d == BridgeDirection::kPlayback ? "playback" : "capture";
}

}  // namespace

BridgeBackend::BridgeBackend(UniqueFd socket, BridgeDirection direction, Capabilities caps)
    : socket_(std::move(socket)),
      direction_(direction),
      caps_(std::move(caps)),
      message_(kMaxBridgeMessage) {}

absl::Status BridgeBackend::Send(const std::vector<uint8_t>& message) {
  // A command never waits: a bridge whose socket is full has stopped reading it.
  if (send(socket_.get(), message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    return BridgeGone(errno == EAGAIN ? "not answering" : strerror(errno));
  }
  return absl::OkStatus();
}

absl::Status BridgeBackend::Receive(size_t want) {
  while (pending_.size() < want || want == 0) {
    const ssize_t n =
        recv(socket_.get(), message_.data(), message_.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n == 0) return BridgeGone("exited");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return absl::OkStatus();
      return BridgeGone(strerror(errno));
    }
    absl::StatusOr<BridgeMessage> message =
        static_cast<size_t>(n) > message_.size()
            ? absl::InvalidArgumentError("bridge message too large")
            : DecodeBridgeMessage(absl::MakeConstSpan(message_.data(), n));
    if (!message.ok()) {
      LOG_EVERY_N(WARNING, 100) << "audio bridge: " << message.status().message();
      return BridgeGone("sent a bad message");
    }
    if (message->op == BridgeOp::kError) {
      return BridgeGone(absl::string_view(reinterpret_cast<const char*>(message->payload.data()),
                                          message->payload.size()));
    }
    if (message->op != BridgeOp::kData) continue;
    if (want == 0 || direction_ != BridgeDirection::kCapture ||
        message->payload.size() % params_.frame_bytes() != 0) {
      continue;  // stale or partial frames: dropped
    }
    pending_.insert(pending_.end(), message->payload.begin(), message->payload.end());
  }
  return absl::OkStatus();
}

absl::Status BridgeBackend::Open(const StreamParams& params) {
  RETURN_IF_ERROR(CheckParams(caps_, params));
  if (params.period_bytes() > kMaxBridgePeriodBytes) {
    return absl::UnavailableError(
        absl::StrCat("a period of ", params.period_bytes(), " bytes is over the bridge's limit"));
  }
  open_ = false;
  started_ = false;
  pending_.clear();
  frames_lost_ = 0;
  gap_frames_ = 0;
  RETURN_IF_ERROR(Receive(0));  // an error left from the last time is old news
  params_ = params;
  RETURN_IF_ERROR(Send(EncodeBridgeOpen(direction_, params)));
  open_ = true;
  return absl::OkStatus();
}

absl::Status BridgeBackend::Start() {
  if (!open_) return absl::FailedPreconditionError("stream not open");
  pending_.clear();
  RETURN_IF_ERROR(Receive(0));  // frames recorded before the last Stop are stale
  RETURN_IF_ERROR(Send(EncodeBridgeCommand(BridgeOp::kStart)));
  started_ = true;
  flowing_ = false;
  return absl::OkStatus();
}

absl::Status BridgeBackend::Stop() {
  if (!started_) return absl::OkStatus();
  started_ = false;
  if (frames_lost_ > 0) {
    // Totals since Open, where the lines of Write and Read are samples: a line this limit
    // (the guest starts and stops at will) leaves out loses no count, the next one has it.
    if (direction_ == BridgeDirection::kCapture) {
      LOG_EVERY_T(INFO, 1) << "audio bridge: capture stopped after " << frames_lost_
                           << " frames of silence since it was opened, " << gap_frames_
                           << " of them after the bridge's first frames";
    } else {
      LOG_EVERY_T(INFO, 1) << "audio bridge: playback stopped after " << frames_lost_
                           << " frames dropped since it was opened";
    }
  }
  return Send(EncodeBridgeCommand(BridgeOp::kStop));
}

absl::Status BridgeBackend::Write(absl::Span<const uint8_t> frames) {
  RETURN_IF_ERROR(CheckTransfer(open_, started_, params_, frames.size()));
  RETURN_IF_ERROR(Receive(0));
  absl::StatusOr<size_t> sent = SendBridgeFrames(socket_.get(), frames, params_.frame_bytes());
  if (!sent.ok()) return BridgeGone(sent.status().message());
  if (*sent < frames.size()) {
    // The host plays slower than the guest's clock: this period's rest is dropped.
    const uint64_t lost = (frames.size() - *sent) / params_.frame_bytes();
    frames_lost_ += lost;
    LOG_EVERY_N(WARNING, 100) << "audio bridge behind: " << lost << " playback frames dropped";
  }
  return absl::OkStatus();
}

absl::Status BridgeBackend::Read(absl::Span<uint8_t> frames) {
  RETURN_IF_ERROR(CheckTransfer(open_, started_, params_, frames.size()));
  RETURN_IF_ERROR(Receive(frames.size()));
  const size_t n = std::min(pending_.size(), frames.size());
  if (n > 0) {  // an empty vector's data() may be null, which memcpy must not get
    memcpy(frames.data(), pending_.data(), n);
    pending_.erase(pending_.begin(), pending_.begin() + n);
    flowing_ = true;
  }
  if (n < frames.size()) {
    // The host has recorded less than a period by the guest's clock: silence for the rest.
    FillSilence(params_.format, frames.subspan(n));
    const uint64_t lost = (frames.size() - n) / params_.frame_bytes();
    frames_lost_ += lost;
    if (flowing_) gap_frames_ += lost;
    LOG_EVERY_N(INFO, 100) << "audio bridge behind: " << lost << " capture frames of silence";
  }
  return absl::OkStatus();
}

absl::Status BridgeBackend::Close() {
  if (!open_) return absl::OkStatus();
  open_ = false;
  started_ = false;
  pending_.clear();
  return Send(EncodeBridgeCommand(BridgeOp::kClose));
}

std::string DefaultBridgePath() {
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  std::string path = n > 0 ? std::string(exe, n) : std::string();
  const size_t slash = path.rfind('/');
  return (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) +
         "/vhost-user-snd-bridge";
}

absl::StatusOr<std::vector<BridgeStream>> StartBridge(const std::string& bridge,
                                                      const std::string& host,
                                                      const std::string& device,
                                                      const std::vector<BridgeDirection>& streams,
                                                      int timeout_ms) {
  // The bridge gets stream i's socket as descriptor 3 + i. Ours are moved above that range
  // first, so no dup2 in the child lands on a descriptor it still has to copy.
  const int first = 3;
  const int above = first + static_cast<int>(streams.size()) + 16;
  std::vector<UniqueFd> ours, theirs;
  std::vector<std::string> directions;
  for (BridgeDirection d : streams) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      return absl::InternalError(absl::StrCat("socketpair: ", strerror(errno)));
    }
    ours.emplace_back(pair[0]);
    UniqueFd raw(pair[1]);
    const int high = fcntl(raw.get(), F_DUPFD_CLOEXEC, above);
    if (high < 0) return absl::InternalError(absl::StrCat("fcntl: ", strerror(errno)));
    theirs.emplace_back(high);
    directions.push_back(DirectionName(d));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (size_t i = 0; i < theirs.size(); ++i) {
    posix_spawn_file_actions_adddup2(&actions, theirs[i].get(), first + static_cast<int>(i));
  }
  std::vector<std::string> args = {bridge, "--host=" + host, "--device=" + device,
                                   "--streams=" + absl::StrJoin(directions, ",")};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  const int spawned = posix_spawn(&pid, bridge.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start the audio bridge ", bridge, ": ", strerror(spawned)));
  }
  theirs.clear();  // the child has its copies; ours must see EOF when it exits

  std::vector<BridgeStream> result;
  std::vector<uint8_t> buffer(kMaxBridgeMessage);
  for (size_t i = 0; i < ours.size(); ++i) {
    pollfd pfd{ours[i].get(), POLLIN, 0};
    const int ready = poll(&pfd, 1, timeout_ms);
    const ssize_t n = ready == 1 ? recv(pfd.fd, buffer.data(), buffer.size(), MSG_DONTWAIT) : -1;
    if (n <= 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the audio bridge ", bridge, " did not describe its ", directions[i], " stream"));
    }
    absl::StatusOr<BridgeMessage> message =
        DecodeBridgeMessage(absl::MakeConstSpan(buffer.data(), n));
    if (!message.ok()) return message.status();
    if (message->op == BridgeOp::kError) {
      return absl::FailedPreconditionError(
          absl::StrCat("audio bridge: ",
                       absl::string_view(reinterpret_cast<const char*>(message->payload.data()),
                                         message->payload.size())));
    }
    if (message->op != BridgeOp::kCaps) {
      return absl::FailedPreconditionError("the audio bridge did not start with its capabilities");
    }
    if (fcntl(pfd.fd, F_SETFL, O_NONBLOCK) != 0) {
      return absl::InternalError(absl::StrCat("fcntl: ", strerror(errno)));
    }
    result.push_back({std::move(ours[i]), std::move(message->caps)});
  }
  return result;
}

}  // namespace vhost::snd
