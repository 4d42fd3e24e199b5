#include "tests/frontend/stats_report.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost::frontend {
namespace {

std::string Reply(uint64_t requests, uint64_t bytes_out, uint64_t kicks) {
  return absl::StrCat(
      "ok {\"daemon\":\"vhost-user-blk\",\"version\":\"0.1.0\",\"pid\":7,\"instances\":[{"
      "\"socket\":\"/run/blk.sock\",\"connections\":1,\"resets\":0,\"queues\":["
      "{\"queue\":0,\"starts\":1,\"requests\":",
      requests, ",\"bytes_in\":0,\"bytes_out\":", bytes_out, ",\"kicks\":", kicks,
      ",\"notifications\":3,\"suppressed\":1,\"busy_poll_hits\":0,\"errors\":0,\"in_flight\":2},"
      "{\"queue\":1,\"starts\":1,\"requests\":0,\"bytes_in\":0,\"bytes_out\":0,\"kicks\":0,"
      "\"notifications\":0,\"suppressed\":0,\"busy_poll_hits\":0,\"errors\":0,\"in_flight\":0}"
      "]}]}\n");
}

TEST(StatsReportTest, ParsesTheDaemonsReply) {
  ASSERT_OK_AND_ASSIGN(DaemonCounters counters, ParseStatsReply(Reply(10, 40960, 4)));
  EXPECT_EQ(counters.daemon, "vhost-user-blk");
  ASSERT_EQ(counters.instances.size(), 1u);
  EXPECT_EQ(counters.instances[0].socket, "/run/blk.sock");
  EXPECT_EQ(counters.instances[0].connections, 1u);
  ASSERT_EQ(counters.instances[0].queues.size(), 2u);
  EXPECT_EQ(counters.instances[0].queues[0].requests, 10u);
  EXPECT_EQ(counters.instances[0].queues[0].bytes_out, 40960u);
  EXPECT_EQ(counters.instances[0].queues[0].in_flight, 2u);
  EXPECT_EQ(counters.instances[0].queues[1].queue, 1);
}

TEST(StatsReportTest, RefusesErrorsAndGarbage) {
  EXPECT_FALSE(ParseStatsReply("error: unknown command\n").ok());
  EXPECT_FALSE(ParseStatsReply("ok {\"daemon\":").ok());
  EXPECT_FALSE(ParseStatsReply("ok [1,2]").ok());
  EXPECT_FALSE(ParseStatsReply("").ok());
}

TEST(StatsReportTest, RatesBetweenTwoReadingsAndTotalsAtFirst) {
  ASSERT_OK_AND_ASSIGN(DaemonCounters first, ParseStatsReply(Reply(10, 2'000'000, 4)));
  ASSERT_OK_AND_ASSIGN(DaemonCounters second, ParseStatsReply(Reply(30, 6'000'000, 8)));
  const std::string totals = FormatStatsReport(nullptr, first, 0, /*all_queues=*/false);
  EXPECT_NE(totals.find("requests"), std::string::npos) << totals;
  EXPECT_NE(totals.find("     0         10      0.00      2.00         4"), std::string::npos)
      << totals;
  // 20 requests, 4 MB and 4 kicks in 2 s; queue 1 did nothing and is left out.
  const std::string rates = FormatStatsReport(&first, second, 2.0, /*all_queues=*/false);
  EXPECT_NE(rates.find("req/s"), std::string::npos) << rates;
  EXPECT_NE(rates.find("     0         10      0.00      2.00         2"), std::string::npos)
      << rates;
  EXPECT_EQ(rates.find("\n     1 "), std::string::npos) << rates;
  EXPECT_NE(FormatStatsReport(&first, second, 2.0, /*all_queues=*/true).find("\n     1 "),
            std::string::npos);
}

}  // namespace
}  // namespace vhost::frontend
