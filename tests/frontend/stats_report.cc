#include "tests/frontend/stats_report.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace vhost::frontend {
namespace {

using Json = nlohmann::json;

uint64_t Number(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// The queue of `before` with the same number, or none.
const QueueCounters* Matching(const InstanceCounters* before, int queue) {
  if (before == nullptr) return nullptr;
  for (const QueueCounters& q : before->queues) {
    if (q.queue == queue) return &q;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<DaemonCounters> ParseStatsReply(const std::string& reply) {
  if (!absl::StartsWith(reply, "ok ")) {
    return absl::UnavailableError(absl::StrCat("the daemon answered: ", reply));
  }
  const Json json = Json::parse(reply.substr(3), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("instances") ||
      !json["instances"].is_array()) {
    return absl::DataLossError("not a stats object");
  }
  DaemonCounters counters;
  counters.daemon = json.value("daemon", "");
  for (const Json& instance : json["instances"]) {
    if (!instance.is_object()) continue;
    InstanceCounters out;
    out.socket = instance.value("socket", "");
    out.connections = Number(instance, "connections");
    out.resets = Number(instance, "resets");
    if (instance.contains("queues") && instance["queues"].is_array()) {
      for (const Json& q : instance["queues"]) {
        if (!q.is_object()) continue;
        out.queues.push_back({static_cast<int>(Number(q, "queue")), Number(q, "starts"),
                              Number(q, "requests"), Number(q, "bytes_in"), Number(q, "bytes_out"),
                              Number(q, "kicks"), Number(q, "notifications"),
                              Number(q, "suppressed"), Number(q, "busy_poll_hits"),
                              Number(q, "errors"), Number(q, "in_flight")});
      }
    }
    counters.instances.push_back(std::move(out));
  }
  return counters;
}

std::string FormatStatsReport(const DaemonCounters* before, const DaemonCounters& now,
                              double seconds, bool all_queues) {
  // Counters only grow while a daemon runs; a smaller one means a new daemon: take it whole.
  auto delta = [](uint64_t now, uint64_t then) { return now >= then ? now - then : now; };
  const double per = before != nullptr && seconds > 0 ? 1.0 / seconds : 1.0;
  std::string out;
  for (size_t i = 0; i < now.instances.size(); ++i) {
    const InstanceCounters& instance = now.instances[i];
    const InstanceCounters* then =
        before != nullptr && i < before->instances.size() ? &before->instances[i] : nullptr;
    absl::StrAppendFormat(&out, "%s %s: %u front ends, %u resets\n", now.daemon, instance.socket,
                          instance.connections, instance.resets);
    absl::StrAppendFormat(&out, "%6s %10s %9s %9s %9s %9s %9s %9s %6s %8s\n", "queue",
                          before ? "req/s" : "requests", before ? "MB/s in" : "MB in",
                          before ? "MB/s out" : "MB out", before ? "kicks/s" : "kicks",
                          before ? "irqs/s" : "irqs", before ? "quiet/s" : "quiet",
                          before ? "polls/s" : "polls", "errors", "inflight");
    for (const QueueCounters& q : instance.queues) {
      const QueueCounters zero;
      const QueueCounters& p = Matching(then, q.queue) ? *Matching(then, q.queue) : zero;
      const uint64_t requests = delta(q.requests, p.requests);
      if (!all_queues && requests == 0 && q.in_flight == 0 && delta(q.kicks, p.kicks) == 0) {
        continue;
      }
      absl::StrAppendFormat(
          &out, "%6d %10.0f %9.2f %9.2f %9.0f %9.0f %9.0f %9.0f %6u %8u\n", q.queue, requests * per,
          delta(q.bytes_in, p.bytes_in) * per / 1e6, delta(q.bytes_out, p.bytes_out) * per / 1e6,
          delta(q.kicks, p.kicks) * per, delta(q.notifications, p.notifications) * per,
          delta(q.suppressed, p.suppressed) * per, delta(q.busy_poll_hits, p.busy_poll_hits) * per,
          q.errors, q.in_flight);
    }
  }
  return out;
}

}  // namespace vhost::frontend
