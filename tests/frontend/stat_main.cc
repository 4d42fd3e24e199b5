// vhost-user-stat: per-queue statistics of a running daemon, like iostat. Reads the daemon's
// --stats-socket every INTERVAL seconds and prints the rates in between; the first report
// counts everything since the daemon started.
//
//   vhost-user-stat SOCKET [INTERVAL [COUNT]]
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gflags/gflags.h"
#include "tests/frontend/control_client.h"
#include "tests/frontend/stats_report.h"

DEFINE_bool(all, false, "show every queue, also those that did nothing in the interval");
DEFINE_bool(json, false, "print the daemon's JSON as it comes, one line per reading");

namespace {

int Usage(const char* message) {
  std::fprintf(stderr, "vhost-user-stat: %s\nusage: vhost-user-stat SOCKET [INTERVAL [COUNT]]\n",
               message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "vhost-user-stat SOCKET [INTERVAL [COUNT]] (the daemon's --stats-socket)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc < 2 || argc > 4) return Usage("SOCKET is the daemon's --stats-socket");
  const std::string socket = argv[1];
  double interval = 0;
  int count = 1;
  if (argc >= 3) {
    if (!absl::SimpleAtod(argv[2], &interval) || interval <= 0 || interval > 3600) {
      return Usage("INTERVAL must be seconds, more than 0 and at most 3600");
    }
    count = -1;  // until interrupted, as iostat
  }
  if (argc == 4 && (!absl::SimpleAtoi(argv[3], &count) || count < 1)) {
    return Usage("COUNT must be a positive number");
  }
  vhost::frontend::DaemonCounters before;
  absl::Time before_time;
  for (int i = 0; count < 0 || i < count; ++i) {
    if (i > 0) absl::SleepFor(absl::Seconds(interval));
    absl::StatusOr<std::string> reply = vhost::frontend::SendControlCommands(socket, "stats\n");
    const absl::Time now_time = absl::Now();
    if (!reply.ok()) {
      std::fprintf(stderr, "vhost-user-stat: %s\n", std::string(reply.status().message()).c_str());
      return 1;
    }
    if (FLAGS_json) {
      std::fputs(reply->c_str(), stdout);
      std::fflush(stdout);
      continue;
    }
    absl::StatusOr<vhost::frontend::DaemonCounters> now = vhost::frontend::ParseStatsReply(*reply);
    if (!now.ok()) {
      std::fprintf(stderr, "vhost-user-stat: %s\n", std::string(now.status().message()).c_str());
      return 1;
    }
    std::fputs(
        vhost::frontend::FormatStatsReport(i == 0 ? nullptr : &before, *now,
                                           absl::ToDoubleSeconds(now_time - before_time), FLAGS_all)
            .c_str(),
        stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    before = *std::move(now);
    before_time = now_time;
  }
  return 0;
}
