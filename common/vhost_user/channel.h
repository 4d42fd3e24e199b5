// A connected Unix stream socket that sends and receives vhost-user messages, with their file
// descriptors (SCM_RIGHTS). It knows framing only, not what messages mean.
#ifndef COMMON_VHOST_USER_CHANNEL_H_
#define COMMON_VHOST_USER_CHANNEL_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "common/vhost_user/message.h"

namespace vhost {

class Channel {
 public:
  explicit Channel(UniqueFd socket) : socket_(std::move(socket)) {}

  // Receives one whole message. Returns UnavailableError when the peer closed the connection
  // cleanly between messages, and other errors for a truncated or malformed frame (more file
  // descriptors than a message may carry, a payload beyond kMaxPayloadSize, a read timeout).
  absl::StatusOr<Message> Receive();

  // Sends one message with the fds in `message.fds` (which stay owned by the message).
  absl::Status Send(const Message& message);

  // Sends `request` and waits for the matching reply.
  absl::StatusOr<Message> Call(const Message& request);

  int fd() const { return socket_.get(); }

 private:
  absl::Status ReadFully(void* buffer, size_t size);

  UniqueFd socket_;
};

// Sets a receive timeout so a peer that stops in the middle of a message cannot hang us.
absl::Status SetReceiveTimeout(int socket_fd, int milliseconds);

}  // namespace vhost

#endif  // COMMON_VHOST_USER_CHANNEL_H_
