#include "tests/frontend/backend_channel.h"

#include "absl/strings/str_cat.h"
#include "tests/frontend/event_fd.h"

namespace vhost {
namespace frontend {

absl::StatusOr<Message> BackendChannel::Receive(absl::Duration timeout) {
  absl::StatusOr<bool> readable = PollReadable(channel_.fd(), timeout);
  if (!readable.ok()) return readable.status();
  if (!*readable) return absl::DeadlineExceededError("no request on the back-end channel");
  return channel_.Receive();
}

absl::Status BackendChannel::Ack(const Message& request, uint64_t value) {
  if (!request.need_reply()) return absl::OkStatus();
  Message reply = MakeReply(request);
  reply.Append(value);
  return channel_.Send(reply);
}

absl::StatusOr<Message> BackendChannel::ReceiveAndAck(BackendRequest expected,
                                                      absl::Duration timeout) {
  absl::StatusOr<Message> request = Receive(timeout);
  if (!request.ok()) return request.status();
  if (request->header.request != static_cast<uint32_t>(expected)) {
    return absl::FailedPreconditionError(absl::StrCat("back-end request ", request->header.request,
                                                      ", expected ",
                                                      static_cast<uint32_t>(expected)));
  }
  absl::Status status = Ack(*request);
  if (!status.ok()) return status;
  return request;
}

}  // namespace frontend
}  // namespace vhost
