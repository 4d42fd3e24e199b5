// Credit accounting and the --vm syntax, on their own.
#include <cstdint>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "vhost-user-vsock/credit.h"
#include "vhost-user-vsock/vm_spec.h"

namespace vhost {
namespace {

TEST(CreditTest, GuestToHostBufferIsBoundedByWhatWeAdvertise) {
  Credit c;
  EXPECT_TRUE(c.Received(Credit::kBufAlloc));  // exactly the buffer: allowed
  EXPECT_EQ(c.Buffered(), Credit::kBufAlloc);
  EXPECT_FALSE(c.Received(1));  // one byte past it: an overrun
  c.Forwarded(Credit::kBufAlloc);
  EXPECT_EQ(c.Buffered(), 1u);
}

TEST(CreditTest, NoUpdateForALittleFreedWhileMoreIsBuffered) {
  Credit c;
  ASSERT_TRUE(c.Received(100000));
  c.Forwarded(1000);
  EXPECT_FALSE(c.UpdateDue());
}

TEST(CreditTest, UpdateDueWhenAQuarterIsFreed) {
  Credit c;
  ASSERT_TRUE(c.Received(Credit::kBufAlloc));
  c.Forwarded(Credit::kBufAlloc / 4);
  EXPECT_TRUE(c.UpdateDue());
  c.Reported();
  EXPECT_FALSE(c.UpdateDue());
  c.Forwarded(10);
  EXPECT_FALSE(c.UpdateDue());
  c.Forwarded(Credit::kBufAlloc - Credit::kBufAlloc / 4 - 10);  // all drained
  EXPECT_TRUE(c.UpdateDue());
}

TEST(CreditTest, PeerCreditFollowsTheGuestsCounters) {
  Credit c;
  EXPECT_EQ(c.PeerCredit(), 0u);  // nothing advertised yet
  c.PeerAdvertised(4096, 0);
  EXPECT_EQ(c.PeerCredit(), 4096u);
  c.Sent(4000);
  EXPECT_EQ(c.PeerCredit(), 96u);
  c.Sent(96);
  EXPECT_EQ(c.PeerCredit(), 0u);
  c.PeerAdvertised(4096, 4096);
  EXPECT_EQ(c.PeerCredit(), 4096u);
  c.PeerAdvertised(1024, 0);  // the guest shrank its buffer below what is in flight
  EXPECT_EQ(c.PeerCredit(), 0u);
}

TEST(CreditTest, CountersWrapAround) {
  Credit c;
  c.PeerAdvertised(1000, 0);
  for (int i = 0; i < 5000; ++i) {  // past 2^32 bytes in total
    c.Sent(1000000);
    c.PeerAdvertised(1000, static_cast<uint32_t>(1000000ull * (i + 1)));
  }
  EXPECT_EQ(c.PeerCredit(), 1000u);
}

TEST(VmSpecTest, ParsesSeveralVms) {
  ASSERT_OK_AND_ASSIGN(std::vector<VmSpec> vms,
                       ParseVmSpecs("guest-cid=3,socket=/a,uds-path=/a.v,groups=x+y;"
                                    "guest-cid=4,socket=/b,uds-path=/b.v"));
  ASSERT_EQ(vms.size(), 2u);
  EXPECT_EQ(vms[0].guest_cid, 3u);
  EXPECT_EQ(vms[0].groups, (std::set<std::string>{"x", "y"}));
  EXPECT_EQ(vms[1].groups, (std::set<std::string>{"default"}));
  EXPECT_EQ(vms[1].uds_path, "/b.v");
}

TEST(VmSpecTest, RejectsBadSpecs) {
  for (const char* bad : {"", "guest-cid=2,socket=/a,uds-path=/a.v",
                          "guest-cid=3,socket=/a,uds-path=/a.v;guest-cid=3,socket=/b,uds-path=/b.v",
                          "guest-cid=3,socket=/a", "guest-cid=x,socket=/a,uds-path=/v",
                          "guest-cid=3,socket=/a,uds-path=/a", "guest-cid=3,colour=red"}) {
    EXPECT_FALSE(ParseVmSpecs(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace vhost
