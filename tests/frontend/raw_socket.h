// Raw socket access for bad-input tests: frames sent verbatim (lying sizes, arbitrary request
// codes and fd counts, truncated frames), receiving with a timeout, and noticing that the peer
// closed the connection.
#ifndef TESTS_FRONTEND_RAW_SOCKET_H_
#define TESTS_FRONTEND_RAW_SOCKET_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/vhost_user/message.h"

namespace vhost {
namespace frontend {

// Sends `bytes` in one sendmsg with `fds` attached (SCM_RIGHTS, up to 253), retrying the rest of
// a partial send without fds.
absl::Status SendRawBytes(int socket_fd, absl::Span<const uint8_t> bytes,
                          absl::Span<const int> fds = {});

// Sends a 12-byte header whose size field is `size_field` verbatim (it may disagree with
// `payload`), then `payload`.
absl::Status SendRawMessage(int socket_fd, uint32_t request, uint32_t flags, uint32_t size_field,
                            absl::Span<const uint8_t> payload, absl::Span<const int> fds = {});

// Receives one message, or DeadlineExceeded after `timeout` with nothing to read. Unavailable if
// the peer closed the connection.
absl::StatusOr<Message> ReceiveMessage(int socket_fd, absl::Duration timeout);

// Waits up to `timeout` for the peer to close the connection (EOF or reset), discarding anything
// it sends meanwhile. True if it closed.
bool WaitForPeerClose(int socket_fd, absl::Duration timeout);

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_RAW_SOCKET_H_
