// The back-end-to-front-end channel (SET_BACKEND_REQ_FD): our end of the socketpair. Tests read
// the back end's requests (CONFIG_CHANGE_MSG, ...) and acknowledge them when asked.
#ifndef TESTS_FRONTEND_BACKEND_CHANNEL_H_
#define TESTS_FRONTEND_BACKEND_CHANNEL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/unique_fd.h"
#include "common/vhost_user/channel.h"
#include "common/vhost_user/message.h"

namespace vhost {
namespace frontend {

class BackendChannel {
 public:
  explicit BackendChannel(UniqueFd socket) : channel_(std::move(socket)) {}

  // The next request from the back end (header.request is a BackendRequest code).
  // DeadlineExceeded if none arrives within `timeout`; Unavailable once the back end closed it.
  absl::StatusOr<Message> Receive(absl::Duration timeout);
  // Replies to `request` with a u64 (0 = success), as REPLY_ACK asks. Does nothing unless the
  // request carried NEED_REPLY.
  absl::Status Ack(const Message& request, uint64_t value = 0);
  // Receives one request, checks its code, and acknowledges it if asked.
  absl::StatusOr<Message> ReceiveAndAck(BackendRequest expected, absl::Duration timeout);

  int fd() const { return channel_.fd(); }

 private:
  Channel channel_;
};

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_BACKEND_CHANNEL_H_
