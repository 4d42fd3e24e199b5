#include "vhost-user-snd/bridge/stream_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include "glog/logging.h"

namespace vhost::snd {
namespace {

// The playback queue holds this many periods (and at least one chunk) before dropping; the
// capture socket about as many before the bridge waits for the daemon.
constexpr size_t kQueuedPeriods = 4;
// Commands waiting for the worker past which the daemon is not believed (see Run).
constexpr size_t kMaxQueuedCommands = 64;
// How long a capture send waits for room before looking for commands again.
constexpr int kSendWaitMs = 20;

BridgeDirection ToWire(PcmDirection d) {
  return d == PcmDirection::kPlayback ? BridgeDirection::kPlayback : BridgeDirection::kCapture;
}

}  // namespace

StreamServer::StreamServer(UniqueFd socket, PcmDirection direction, std::unique_ptr<HostPcm> pcm)
    : socket_(std::move(socket)), direction_(direction), pcm_(std::move(pcm)) {}

uint64_t StreamServer::frames_dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void StreamServer::Run() {
  const std::vector<uint8_t> caps = EncodeBridgeCaps(pcm_->Probe(direction_));
  if (send(socket_.get(), caps.data(), caps.size(), MSG_NOSIGNAL) < 0) return;

  std::thread worker([this] { Work(); });
  std::vector<uint8_t> buffer(kMaxBridgeMessage);
  while (true) {
    const ssize_t n = recv(socket_.get(), buffer.data(), buffer.size(), MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the daemon is gone
    absl::StatusOr<BridgeMessage> message =
        static_cast<size_t>(n) > buffer.size()
            ? absl::InvalidArgumentError("message too large")
            : DecodeBridgeMessage(absl::MakeConstSpan(buffer.data(), n));
    if (!message.ok() || message->op == BridgeOp::kCaps || message->op == BridgeOp::kError ||
        (message->op == BridgeOp::kOpen && message->direction != ToWire(direction_))) {
      LOG(ERROR) << "stream ends: the daemon sent "
                 << (message.ok() ? "a message for the other side" : message.status().message());
      break;
    }
    Item item{*message, {}};
    item.message.payload = {};
    std::unique_lock<std::mutex> lock(mu_);
    if (message->op != BridgeOp::kData && ++queued_commands_ > kMaxQueuedCommands) {
      // A daemon sends a few commands per stream change; thousands waiting behind a host that
      // blocks are not a stream, and would only grow the bridge.
      LOG(ERROR) << "stream ends: the daemon sent more than " << kMaxQueuedCommands
                 << " commands the host has not caught up with";
      break;
    }
    if (message->op == BridgeOp::kData) {
      if (direction_ != PcmDirection::kPlayback) continue;
      item.data.assign(message->payload.begin(), message->payload.end());
      queued_bytes_ += item.data.size();
      // Over the limit: the oldest frames go, so the host plays the newest on time.
      while (queued_bytes_ > queue_limit_) {
        auto oldest = queue_.begin();
        while (oldest != queue_.end() && oldest->message.op != BridgeOp::kData) ++oldest;
        if (oldest == queue_.end()) break;
        queued_bytes_ -= oldest->data.size();
        dropped_ += oldest->data.size() / queued_frame_bytes_;
        LOG_EVERY_N(WARNING, 100) << "host behind the guest's clock: playback frames dropped";
        queue_.erase(oldest);
      }
    } else if (message->op == BridgeOp::kOpen) {
      queue_limit_ = std::max(kQueuedPeriods * message->params.period_bytes(), kMaxBridgeChunk);
      queued_frame_bytes_ = message->params.frame_bytes();
    }
    queue_.push_back(std::move(item));
    changed_.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    changed_.notify_one();
  }
  worker.join();
  socket_.Reset();  // the daemon sees the stream end
}

void StreamServer::Work() {
  while (true) {
    std::optional<Item> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const bool capturing = direction_ == PcmDirection::kCapture && started_ && !failed_;
      if (!capturing) changed_.wait(lock, [this] { return done_ || !queue_.empty(); });
      if (done_ && queue_.empty()) break;  // what the daemon sent before leaving is done first
      if (!queue_.empty()) {
        item = std::move(queue_.front());
        queue_.pop_front();
        if (item->message.op == BridgeOp::kData) {
          queued_bytes_ -= item->data.size();
        } else {
          --queued_commands_;
        }
      }
    }
    if (item) {
      Handle(*item);
    } else {
      CaptureOnePeriod();  // blocks for at most one period of the host's clock
    }
  }
  pcm_->Close();
}

void StreamServer::Handle(Item& item) {
  switch (item.message.op) {
    case BridgeOp::kOpen:
      pcm_->Close();
      started_ = false;
      params_ = item.message.params;
      period_.resize(params_.period_bytes());
      if (direction_ == PcmDirection::kCapture) LimitSendBuffer();
      failed_ = false;
      open_ = true;
      if (absl::Status s = pcm_->Open(direction_, params_); !s.ok()) {
        open_ = false;
        Report(s);
      }
      break;
    case BridgeOp::kStart:
      if (!open_ || failed_) break;
      if (absl::Status s = pcm_->Start(); !s.ok()) return Report(s);
      started_ = true;
      break;
    case BridgeOp::kStop:
      if (!started_) break;
      started_ = false;
      if (absl::Status s = pcm_->Stop(); !s.ok()) Report(s);
      break;
    case BridgeOp::kClose:
      started_ = false;
      open_ = false;
      pcm_->Close();
      break;
    case BridgeOp::kData:
      // Whole frames only: a partial one would shift every later sample.
      if (!started_ || failed_ || item.data.size() % params_.frame_bytes() != 0) break;
      if (absl::Status s = pcm_->Write(item.data); !s.ok()) Report(s);
      break;
    default:
      break;
  }
}

void StreamServer::LimitSendBuffer() {
  // Recorded frames waiting for the daemon are latency: a few periods are enough to ride out
  // its timer's jitter. (The kernel doubles the figure for its own bookkeeping.)
  const int bytes = static_cast<int>(
      std::min<size_t>(kQueuedPeriods * params_.period_bytes() / 2 + 4096, 4u << 20));
  if (setsockopt(socket_.get(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes)) != 0) {
    PLOG(WARNING) << "SO_SNDBUF";
  }
}

void StreamServer::CaptureOnePeriod() {
  if (absl::Status s = pcm_->Read(absl::MakeSpan(period_)); !s.ok()) return Report(s);
  SendFrames(period_);
}

void StreamServer::SendFrames(absl::Span<const uint8_t> frames) {
  while (!frames.empty()) {
    absl::StatusOr<size_t> sent = SendBridgeFrames(socket_.get(), frames, params_.frame_bytes());
    if (sent.ok()) frames.remove_prefix(*sent);
    if (frames.empty()) return;
    // The daemon has not taken the last periods: wait for it (the host's buffer absorbs the
    // wait, or overruns if it is long), unless a command is waiting, which comes first.
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!sent.ok() || done_ || !queue_.empty()) {
        dropped_ += frames.size() / params_.frame_bytes();
        return;
      }
    }
    pollfd pfd{socket_.get(), POLLOUT, 0};
    poll(&pfd, 1, kSendWaitMs);
  }
}

void StreamServer::Report(const absl::Status& status) {
  LOG(WARNING) << (direction_ == PcmDirection::kPlayback ? "playback" : "capture")
               << " stream silent until it is prepared again: " << status.message();
  failed_ = true;
  started_ = false;
  pcm_->Close();
  open_ = false;
  const std::vector<uint8_t> message = EncodeBridgeError(status.message());
  (void)send(socket_.get(), message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace vhost::snd
