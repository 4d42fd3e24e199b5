// A guest-side virtio-fs client on our front end, for tests and benchmarks of vhost-user-fs (and
// of other virtio-fs back ends, e.g. virtiofsd): FUSE requests one at a time on request queue 1,
// FORGETs on the high-priority queue 0.
#ifndef TESTS_FRONTEND_FUSE_CLIENT_H_
#define TESTS_FRONTEND_FUSE_CLIENT_H_

#include <linux/fuse.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"

namespace vhost::frontend {

class FuseClient {
 public:
  static constexpr uint32_t kMaxData = 1 << 20;

  // Connects, negotiates, starts the queues and sends FUSE_INIT.
  // `protocol_features`: asked for besides the defaults (e.g. DEVICE_STATE).
  // `minor`: the FUSE minor spoken, with FUSE_INIT in that minor's form (16 bytes before 7.36,
  // as Linux before 5.17 sends it); the requests after it have the same layout in every minor
  // from 7.12 on.
  static absl::StatusOr<std::unique_ptr<FuseClient>> Start(
      const std::string& socket, bool busy_poll = false, uint64_t protocol_features = 0,
      uint32_t minor = FUSE_KERNEL_MINOR_VERSION);

  // One request: `args` then `data` readable, a reply of up to `room` bytes. Returns the reply
  // body, or the FUSE error as a status with the errno's name (e.g. NotFound for ENOENT).
  absl::StatusOr<std::string> Call(uint32_t opcode, uint64_t nodeid, const std::string& args,
                                   const std::string& data = "", uint32_t room = 8192);
  // The raw reply of a hand-made request (readable bytes as given): error (negative errno) and
  // length from its out header.
  absl::StatusOr<fuse_out_header> CallRaw(const std::string& request, uint32_t room);

  absl::StatusOr<fuse_entry_out> Lookup(uint64_t parent, const std::string& name);
  // CREATE: the new node and an open handle.
  absl::StatusOr<std::pair<uint64_t, uint64_t>> Create(uint64_t parent, const std::string& name,
                                                       int flags = 02 /*O_RDWR*/);
  absl::StatusOr<uint64_t> Open(uint64_t nodeid, int flags);
  absl::Status Release(uint64_t nodeid, uint64_t fh);
  absl::StatusOr<uint32_t> Write(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                 const std::string& data);
  absl::StatusOr<std::string> Read(uint64_t nodeid, uint64_t fh, uint64_t offset, uint32_t size);
  absl::StatusOr<fuse_attr> GetAttr(uint64_t nodeid);
  // For benchmarks: the data stays in guest memory (a guest's page cache would hold it), so the
  // client copies nothing. Write sends `size` bytes of whatever the buffer holds; Read returns
  // how many bytes the reply carries.
  absl::StatusOr<uint32_t> WriteInPlace(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                        uint32_t size);
  absl::StatusOr<uint32_t> ReadInPlace(uint64_t nodeid, uint64_t fh, uint64_t offset,
                                       uint32_t size);
  absl::Status Forget(uint64_t nodeid, uint64_t nlookup);
  // Stops both queues, runs `fn` on the stopped device's connection (a device state transfer,
  // as QEMU makes one while migrating), and starts them again where they stopped.
  absl::Status WhileStopped(const std::function<absl::Status(Frontend&)>& fn);

  const fuse_init_out& init() const { return init_; }

 private:
  FuseClient() = default;
  absl::StatusOr<std::string> Submit(FrontendQueue& queue, const std::string& request,
                                     uint32_t room, bool reply);
  // Sends the request already in in_ (`len` bytes) and waits; returns the used length.
  absl::StatusOr<uint32_t> SubmitInPlace(uint32_t len, uint32_t room);
  fuse_in_header Header(uint32_t opcode, uint64_t nodeid, uint32_t len);

  std::unique_ptr<DeviceConnection> device_;
  Frontend* frontend_;  // device_'s
  GuestRam* ram_;
  FrontendQueue *hiprio_, *requests_;
  uint64_t in_gpa_ = 0, out_gpa_ = 0;
  uint8_t* in_ = nullptr;
  uint8_t* out_ = nullptr;
  uint64_t unique_ = 0;
  bool busy_poll_ = false;
  fuse_init_out init_{};
};

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_FUSE_CLIENT_H_
