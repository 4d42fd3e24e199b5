// The setup every integration test and benchmark repeats, once: a daemon started on a socket in
// a fresh directory (DaemonSession), and a front end connected to it that has done QEMU's
// opening sequence, negotiated features, sent its guest RAM and started its queues
// (DeviceConnection). Tests of bad input keep using Frontend directly for the steps they break.
#ifndef TESTS_FRONTEND_DAEMON_FIXTURE_H_
#define TESTS_FRONTEND_DAEMON_FIXTURE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/frontend/daemon_process.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"

namespace vhost {
namespace frontend {

struct DeviceOptions {
  uint64_t features = Bit(kFeatureVersion1);           // asked for: SET_FEATURES gets offer & these
  uint64_t required_features = Bit(kFeatureVersion1);  // Open fails unless all are acked
  uint64_t protocol_features = kDefaultProtocolFeatures;
  uint64_t ram_size = 16 << 20;  // one region at guest-physical 0
  // Queues 0..n-1 are started with these sizes. Their layout and event index follow the acked
  // features (RING_PACKED, EVENT_IDX), as a driver's must.
  std::vector<uint32_t> queue_sizes = {256};
  // Negotiate INFLIGHT_SHMFD and, before the queues start, GET_INFLIGHT_FD then
  // SET_INFLIGHT_FD with its answer (as QEMU's vhost-user-blk does). Open fails if not offered.
  bool inflight = false;
};

// A front end with guest RAM and started queues, as QEMU leaves it once the guest driver is up.
class DeviceConnection {
 public:
  static absl::StatusOr<std::unique_ptr<DeviceConnection>> Open(const std::string& socket,
                                                                const DeviceOptions& options);
  ~DeviceConnection();

  Frontend* frontend() { return frontend_.get(); }
  GuestRam* ram() { return ram_.get(); }
  FrontendQueue* queue(size_t i = 0) { return queues_[i].get(); }
  size_t num_queues() const { return queues_.size(); }
  uint64_t acked_features() const { return frontend_->acked_features(); }

  // The inflight region (options.inflight), mapped read-write as the front end holds it.
  uint8_t* inflight_region() { return inflight_map_; }
  const InflightDescription& inflight_description() const { return inflight_.description; }

  // What QEMU does when the back end died and a new one listens on `socket`: a new connection
  // with the same features, guest RAM and inflight region, and every queue set up again on its
  // rings (nothing reset) with the used index as its base. Requests the old back end left in
  // flight are the new one's to finish.
  absl::Status Reconnect(const std::string& socket, const DeviceOptions& options);

  // Stops queue i (GET_VRING_BASE) and starts a new one, with fresh rings, where it stopped (as
  // QEMU does across a VM stop). Returns the base. What the old one had in flight is abandoned.
  absl::StatusOr<uint32_t> RestartQueue(size_t i);
  // Stops every queue (GET_VRING_BASE, as QEMU stops a VM for a migration), runs
  // `while_stopped` (e.g. a device state transfer), and starts them again where they stopped.
  absl::Status RestartQueues(const std::function<absl::Status()>& while_stopped);

 private:
  DeviceConnection() = default;
  // Destroyed in reverse: the queues (in the RAM) first, the connection last.
  std::unique_ptr<Frontend> frontend_;
  std::unique_ptr<GuestRam> ram_;
  std::vector<std::unique_ptr<FrontendQueue>> queues_;
  Frontend::InflightRegion inflight_;
  uint8_t* inflight_map_ = nullptr;
};

// A daemon process and the directory holding its socket(s) and files. The directory comes first
// (tests put disk images or shared folders in it), the daemon with Start().
class DaemonSession {
 public:
  static absl::StatusOr<std::unique_ptr<DaemonSession>> Create(const std::string& prefix = "vhu");

  // Runs `binary` with `args` (they name the socket, usually socket()) and waits for the socket
  // `wait_for` (socket() if empty). A daemon already running is stopped first.
  absl::Status Start(const std::string& binary, const std::vector<std::string>& args,
                     const std::string& wait_for = "");
  // Kills the daemon's process group (nothing if none runs).
  void Stop() { daemon_.reset(); }

  // A connection to `socket` (socket() if empty) set up as `options` say.
  absl::StatusOr<std::unique_ptr<DeviceConnection>> Open(const DeviceOptions& options,
                                                         const std::string& socket = "") const;

  // <dir>/sock, the socket path tests usually give the daemon.
  const std::string& socket() const { return socket_; }
  std::string File(const std::string& name) const { return dir_->File(name); }
  const std::string& dir() const { return dir_->path(); }
  DaemonProcess* daemon() { return daemon_.get(); }

 private:
  explicit DaemonSession(std::unique_ptr<TempDir> dir);
  std::unique_ptr<TempDir> dir_;
  std::string socket_;
  std::unique_ptr<DaemonProcess> daemon_;  // destroyed before the directory
};

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_DAEMON_FIXTURE_H_
