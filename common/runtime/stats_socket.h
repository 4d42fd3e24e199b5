// --stats-socket=PATH: what a running daemon has done, read by a user (vhost-user-stat) or a
// monitoring agent. The socket speaks the control socket's line protocol (control_socket.h); it
// knows one command, "stats", answered with one line: "ok " and a JSON object, the same for every
// daemon (README, "Statistics"):
//
//   {"daemon":"vhost-user-blk","version":"0.1.0","pid":123,"instances":[
//     {"socket":"/run/blk.sock","connections":1,"resets":0,"queues":[
//       {"queue":0,"starts":1,"requests":..,"bytes_in":..,"bytes_out":..,"kicks":..,
//        "notifications":..,"suppressed":..,"busy_poll_hits":..,"errors":..,"in_flight":..}]}]}
//
// Counters run from the daemon's start; a reader takes rates from two reads.
#ifndef COMMON_RUNTIME_STATS_SOCKET_H_
#define COMMON_RUNTIME_STATS_SOCKET_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/base/unique_fd.h"
#include "common/runtime/control_socket.h"
#include "common/vhost_user/backend.h"

namespace vhost {

// The back ends serving now, each under its socket's name; any thread may read them.
class StatsRegistry {
 public:
  StatsRegistry(std::string program, std::string version)
      : program_(std::move(program)), version_(std::move(version)) {}
  void Add(const std::string& socket, const Backend* backend);
  void Remove(const Backend* backend);
  std::string Json() const;

 private:
  const std::string program_;
  const std::string version_;
  mutable absl::Mutex mu_;
  std::vector<std::pair<std::string, const Backend*>> backends_ ABSL_GUARDED_BY(mu_);
};

// Registers a back end for as long as it lives in a scope.
class ScopedStats {
 public:
  ScopedStats(StatsRegistry* registry, const std::string& socket, const Backend* backend)
      : registry_(registry), backend_(backend) {
    if (registry_ != nullptr) registry_->Add(socket, backend);
  }
  ~ScopedStats() {
    if (registry_ != nullptr) registry_->Remove(backend_);
  }
  ScopedStats(const ScopedStats&) = delete;
  ScopedStats& operator=(const ScopedStats&) = delete;

 private:
  StatsRegistry* const registry_;
  const Backend* const backend_;
};

// `listener` (ControlSocket::Listen, before the daemon confines itself) answers from `registry`
// on a thread of its own from now on.
std::unique_ptr<ControlSocket> ServeStats(UniqueFd listener, const StatsRegistry* registry);

// A JSON string literal of `text` (quotes, backslashes and control bytes escaped).
std::string JsonString(const std::string& text);

}  // namespace vhost

#endif  // COMMON_RUNTIME_STATS_SOCKET_H_
