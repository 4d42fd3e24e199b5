#include "vhost-user-scsi/lun_spec.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost::scsi {
namespace {

using ::vhost::testing::StatusIs;

TEST(LunSpecTest, EveryField) {
  absl::StatusOr<std::vector<LunSpec>> specs = ParseLunSpecs(
      "file=/a.img,target=3,lun=7,read-only=on,serial=S1,vendor=ACME,product=Disk One,"
      "wwn=0x5000c50015ea71ac,block-size=4096,pr-state=/a.pr");
  ASSERT_OK(specs);
  ASSERT_EQ(specs->size(), 1u);
  const LunSpec& s = (*specs)[0];
  EXPECT_EQ(s.file, "/a.img");
  EXPECT_EQ(s.target, 3u);
  EXPECT_EQ(s.lun, 7u);
  EXPECT_TRUE(s.read_only);
  EXPECT_EQ(s.block_size, 4096u);
  EXPECT_EQ(s.identity.serial, "S1");
  EXPECT_EQ(s.identity.vendor, "ACME");
  EXPECT_EQ(s.identity.product, "Disk One");
  EXPECT_EQ(s.identity.wwn, 0x5000c50015ea71acu);
  EXPECT_EQ(s.pr_state, "/a.pr");
}

TEST(LunSpecTest, LunsNumberedAroundTheOnesGiven) {
  absl::StatusOr<std::vector<LunSpec>> specs =
      ParseLunSpecs("null=1M;null=2M,lun=0;null=4K;null=1G,target=1");
  ASSERT_OK(specs);
  ASSERT_EQ(specs->size(), 4u);
  // The explicit lun=0 keeps its number; the others take 1 and 2 on target 0, 0 on target 1.
  EXPECT_EQ((*specs)[0].null_size, 2u << 20);
  EXPECT_EQ((*specs)[0].lun, 0u);
  EXPECT_EQ((*specs)[1].null_size, 1u << 20);
  EXPECT_EQ((*specs)[1].lun, 1u);
  EXPECT_EQ((*specs)[2].lun, 2u);
  EXPECT_EQ((*specs)[3].target, 1u);
  EXPECT_EQ((*specs)[3].lun, 0u);
}

TEST(LunSpecTest, BadInputNamesTheFlagAndField) {
  for (const char* text :
       {"", "file=", "null=0", "null=1X", "file=/a,null=1M", "target=1", "null=1M,target=256",
        "null=1M,lun=16384", "null=1M,ro=maybe", "null=1M,block-size=1000", "null=1000",
        "null=1M,wwn=5000", "null=1M,wwn=0x0", "null=1M,wwn=0x12345678901234567",
        "null=1M,vendor=TOOLONGVENDOR", "null=1M,serial=\x01", "null=1M,colour=blue",
        "null=1M,lun=1;null=1M,lun=1"}) {
    absl::StatusOr<std::vector<LunSpec>> specs = ParseLunSpecs(text);
    EXPECT_THAT(specs, StatusIs(absl::StatusCode::kInvalidArgument)) << text;
    if (!specs.ok()) {
      EXPECT_EQ(specs.status().message().substr(0, 6), "--lun:") << text;
    }
  }
}

TEST(LunSpecTest, HotAddedLunTakesAFreeAddress) {
  absl::StatusOr<std::vector<LunSpec>> specs = ParseLunSpecs("null=1M;null=1M");
  ASSERT_OK(specs);
  absl::StatusOr<LunSpec> added = ParseLunSpec("null=1M", *specs);
  ASSERT_OK(added);
  EXPECT_EQ(added->lun, 2u);
  EXPECT_THAT(ParseLunSpec("null=1M,lun=1", *specs), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost::scsi
