// The client side of a daemon's control socket (common/runtime/control_socket.h), for tests.
#ifndef TESTS_FRONTEND_CONTROL_CLIENT_H_
#define TESTS_FRONTEND_CONTROL_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"

namespace vhost::frontend {

// Sends `lines` (each ending in '\n'), closes the sending side and returns every reply.
absl::StatusOr<std::string> SendControlCommands(const std::string& socket_path,
                                                const std::string& lines);

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_CONTROL_CLIENT_H_
