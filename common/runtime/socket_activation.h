// Socket activation (the LISTEN_FDS protocol of sd_listen_fds(3), without libsystemd): a
// supervisor (a systemd .socket unit, systemd-socket-activate) listens on the vhost-user socket
// and passes it as fd 3, so QEMU may connect before the daemon runs, and the daemon serves it
// exactly as it serves --fd=3.
#ifndef COMMON_RUNTIME_SOCKET_ACTIVATION_H_
#define COMMON_RUNTIME_SOCKET_ACTIVATION_H_

#include <string>

#include "absl/status/statusor.h"

namespace vhost {

// The first passed fd, by the protocol.
constexpr int kListenFdsStart = 3;

// Reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES and unsets all three, so that no process the
// daemon starts takes them for its own. Returns the listening socket passed (marked
// close-on-exec), or -1 when there is none: no LISTEN_FDS, or a LISTEN_PID that is not this
// process (the variables were meant for another one, as sd_listen_fds decides).
// InvalidArgumentError, naming LISTEN_FDS, when the variables are malformed, when more than one
// fd is passed (the daemon serves one socket: a second one would take connections nobody
// accepts), or when the fd is not a listening AF_UNIX SOCK_STREAM socket. `first_fd` is for
// tests; the protocol's is kListenFdsStart.
absl::StatusOr<int> TakeActivatedListener(int first_fd = kListenFdsStart);

// Checks that `fd` is a listening AF_UNIX SOCK_STREAM socket (what vhost-user needs: a stream
// that passes fds). Errors are InvalidArgument, prefixed with `source` ("--fd").
absl::Status CheckListeningUnixSocket(int fd, const std::string& source);

// Where a listening socket is, for people: its path, or "fd N" when it has none (abstract or
// unnamed sockets).
std::string DescribeListener(int fd);

}  // namespace vhost

#endif  // COMMON_RUNTIME_SOCKET_ACTIVATION_H_
