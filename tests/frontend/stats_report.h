// What vhost-user-stat shows: a daemon's --stats-socket reply (common/runtime/stats_socket.h)
// read into numbers, and the iostat-like table of two readings.
#ifndef TESTS_FRONTEND_STATS_REPORT_H_
#define TESTS_FRONTEND_STATS_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace vhost::frontend {

struct QueueCounters {
  int queue = 0;
  uint64_t starts = 0, requests = 0, bytes_in = 0, bytes_out = 0, kicks = 0, notifications = 0,
           suppressed = 0, busy_poll_hits = 0, errors = 0, in_flight = 0;
};

struct InstanceCounters {
  std::string socket;
  uint64_t connections = 0, resets = 0;
  std::vector<QueueCounters> queues;
};

struct DaemonCounters {
  std::string daemon;
  std::vector<InstanceCounters> instances;
};

// Parses the reply line ("ok {...}"); an "error: ..." line or malformed JSON is an error.
absl::StatusOr<DaemonCounters> ParseStatsReply(const std::string& reply);

// The table of what happened between `before` and `now`, `seconds` apart, as rates per second
// (counts since the daemon started when `before` is null, like iostat's first report). Queues
// that did nothing in the interval are left out unless `all_queues`.
std::string FormatStatsReport(const DaemonCounters* before, const DaemonCounters& now,
                              double seconds, bool all_queues);

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_STATS_REPORT_H_
