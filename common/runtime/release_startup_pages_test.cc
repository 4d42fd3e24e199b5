// StartupPages finds this test binary's own mappings and, released, they hold fewer resident
// pages: what makes an idle daemon's RSS drop.
#include "common/runtime/release_startup_pages.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace vhost {
namespace {

// Resident kB of the mappings starting at `ranges`' addresses, from /proc/self/smaps.
long ResidentKb(const StartupPages& pages) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool ours = false;
  long kb = 0;
  while (std::getline(smaps, line)) {
    const unsigned long start = std::strtoul(line.c_str(), nullptr, 16);
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') < line.find(' ')) {
      ours = false;
      for (const StartupPages::Range& r : pages.ranges()) ours |= r.start == start;
    } else if (ours && line.rfind("Rss:", 0) == 0) {
      kb += std::strtol(line.c_str() + 4, nullptr, 10);
    }
  }
  return kb;
}

TEST(StartupPagesTest, FindsTheExecutablesMappings) {
  const StartupPages pages = StartupPages::Find();
  ASSERT_FALSE(pages.ranges().empty());
  // This function's code is in one of them.
  const auto here = reinterpret_cast<uintptr_t>(&ResidentKb);
  bool found = false;
  for (const StartupPages::Range& r : pages.ranges()) found |= r.start <= here && here < r.end;
  EXPECT_TRUE(found);
}

TEST(StartupPagesTest, ReleaseDropsResidentPages) {
  const StartupPages pages = StartupPages::Find();
  const long before = ResidentKb(pages);
  ASSERT_GT(before, 0);
  pages.Release();
  const long after = ResidentKb(pages);
  EXPECT_LT(after, before) << "before " << before << " kB, after " << after << " kB";
}

}  // namespace
}  // namespace vhost
