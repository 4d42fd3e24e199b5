// One transfer of a device's internal state over the channel SET_DEVICE_STATE_FD hands over
// (vhost-user.rst, "Migrating back-end state"): saving writes the state into the front end's fd
// and closes it; loading reads the fd until end of file. The bytes move on a thread of their own,
// since the front end moves its side only after our reply (QEMU reads or writes the pipe from the
// thread that sent the request, and a state larger than the pipe holds would deadlock the
// connection thread), and the front end's side of the channel is not trusted: the transfer ends
// at a deadline, at a size cap, or when cancelled, never hangs the connection thread waiting.
#ifndef COMMON_VHOST_USER_STATE_TRANSFER_H_
#define COMMON_VHOST_USER_STATE_TRANSFER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/unique_fd.h"

namespace vhost {

class StateTransfer {
 public:
  // Writes `state` into `fd`, then closes it (the end of file tells the front end it has all).
  static absl::StatusOr<std::unique_ptr<StateTransfer>> Save(UniqueFd fd, std::string state,
                                                             absl::Duration timeout);
  // Reads `fd` until end of file; more than `max_bytes` fails the transfer.
  static absl::StatusOr<std::unique_ptr<StateTransfer>> Load(UniqueFd fd, size_t max_bytes,
                                                             absl::Duration timeout);
  // Cancels a transfer still under way and waits for its thread.
  ~StateTransfer();

  // Waits for the transfer to end (at the latest at its deadline) and returns how it went:
  // loading, the bytes read; saving, an empty string.
  absl::StatusOr<std::string> Finish();

 private:
  StateTransfer(UniqueFd fd, bool save, std::string state, size_t max_bytes,
                absl::Duration timeout);
  absl::Status Start();
  void Run();
  void Transfer();  // sets result_ on failure
  // Waits until `fd_` is ready for `events`; false (result_ set) on deadline or cancellation.
  bool Wait(short events);

  UniqueFd fd_;
  UniqueFd cancel_;  // eventfd: readable once the transfer is to stop
  const bool save_;
  std::string data_;  // saving: what to write; loading: what was read
  const size_t max_bytes_;
  const absl::Time deadline_;
  absl::Status result_;  // written by the thread, read after joining it
  std::thread thread_;
};

}  // namespace vhost

#endif  // COMMON_VHOST_USER_STATE_TRANSFER_H_
