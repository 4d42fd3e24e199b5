// Listening Unix sockets for the daemons' own endpoints (the vhost-user socket, control sockets).
#ifndef COMMON_RUNTIME_UNIX_LISTENER_H_
#define COMMON_RUNTIME_UNIX_LISTENER_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"

namespace vhost {

// Listens on `path`. A socket left there by an earlier run is replaced; any other file is not
// ours to delete. Errors caused by the path are InvalidArgument naming `flag` ("--socket-path").
absl::StatusOr<UniqueFd> ListenOnUnixSocket(const std::string& path, const std::string& flag,
                                            int backlog = 1);

}  // namespace vhost

#endif  // COMMON_RUNTIME_UNIX_LISTENER_H_
