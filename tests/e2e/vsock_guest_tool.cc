// Runs inside the test guest on AF_VSOCK, against vhost-user-vsock and host programs on its Unix
// sockets.
//
//   vsock_guest_tool client PORT BYTES    connects to the host (CID 2) PORT, streams BYTES of
//                                         pseudo-random data while reading the echo, checks it
//   vsock_guest_tool seqpacket PORT       sends messages of 1, 3000 and 70000 bytes over
//                                         SOCK_SEQPACKET and checks the echoed boundaries
//   vsock_guest_tool server PORT          says READY, accepts one connection, echoes it to EOF
// Results are "E2E-RESULT name=value" lines.
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

uint8_t Pattern(uint64_t i) { return static_cast<uint8_t>((i * 2654435761u) >> 13); }

int Connect(uint32_t port, int type) {
  const int fd = socket(AF_VSOCK, type, 0);
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_HOST;
  addr.svm_port = port;
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::printf("E2E-RESULT connect=failed %m\n");
    std::exit(1);
  }
  return fd;
}

int Client(uint32_t port, uint64_t bytes) {
  const int fd = Connect(port, SOCK_STREAM);
  // Non-blocking: a blocking write of 64 KiB waits for credit for all of it, and meanwhile
  // nobody reads the echo that would free that credit (the echo server blocks on its write).
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::vector<uint8_t> out(65536), in(65536);
  uint64_t sent = 0, received = 0, bad = 0;
  while (received < bytes) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < bytes ? POLLOUT : 0)), 0};
    if (poll(&p, 1, 20000) != 1) break;
    if ((p.revents & POLLOUT) && sent < bytes) {
      const size_t n = std::min<uint64_t>(out.size(), bytes - sent);
      for (size_t i = 0; i < n; ++i) out[i] = Pattern(sent + i);
      const ssize_t w = write(fd, out.data(), n);
      if (w > 0) sent += w;
    }
    if (p.revents & (POLLIN | POLLHUP)) {
      const ssize_t r = read(fd, in.data(), in.size());
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) break;
      for (ssize_t i = 0; i < r; ++i) bad += in[i] != Pattern(received + i);
      received += r;
    }
  }
  std::printf("E2E-RESULT client_echoed=%llu\nE2E-RESULT client_mismatches=%llu\n",
              static_cast<unsigned long long>(received), static_cast<unsigned long long>(bad));
  close(fd);
  return received == bytes && bad == 0 ? 0 : 1;
}

int Seqpacket(uint32_t port) {
  const int fd = Connect(port, SOCK_SEQPACKET);
  std::string result;
  for (size_t size : {size_t{1}, size_t{3000}, size_t{70000}}) {
    std::vector<uint8_t> m(size), back(size + 100);
    for (size_t i = 0; i < size; ++i) m[i] = Pattern(i + size);
    if (send(fd, m.data(), size, 0) != static_cast<ssize_t>(size)) break;
    const ssize_t n = recv(fd, back.data(), back.size(), 0);
    const bool same =
        n == static_cast<ssize_t>(size) && std::equal(m.begin(), m.end(), back.begin());
    result += std::to_string(n) + (same ? "ok," : "BAD,");
  }
  std::printf("E2E-RESULT seqpacket=%s\n", result.c_str());
  close(fd);
  return 0;
}

int Server(uint32_t port) {
  const int listener = socket(AF_VSOCK, SOCK_STREAM, 0);
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 4) != 0) {
    std::printf("E2E-RESULT server=failed %m\n");
    return 1;
  }
  std::fprintf(stderr, "E2E-READY server\n");
  const int fd = accept(listener, nullptr, nullptr);
  std::vector<char> buf(65536);
  uint64_t total = 0;
  for (ssize_t n; (n = read(fd, buf.data(), buf.size())) > 0; total += n) {
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = write(fd, buf.data() + off, n - off);
      if (w <= 0) return 1;
      off += w;
    }
  }
  std::printf("E2E-RESULT server_echoed=%llu\n", static_cast<unsigned long long>(total));
  // The echo's tail may still be in the guest's socket: close() alone returns at once, and the
  // boot's end (a reboot resets the device) would then cut it off. Linger until the host end
  // has taken all of it and closed.
  const linger wait{1, 30};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &wait, sizeof(wait));
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string op = argc > 2 ? argv[1] : "";
  const uint32_t port = argc > 2 ? std::strtoul(argv[2], nullptr, 0) : 0;
  if (op == "client" && argc == 4) return Client(port, std::strtoull(argv[3], nullptr, 0));
  if (op == "seqpacket" && argc == 3) return Seqpacket(port);
  if (op == "server" && argc == 3) return Server(port);
  std::fprintf(stderr, "usage: %s client PORT BYTES | seqpacket PORT | server PORT\n", argv[0]);
  return 2;
}
