// The EDID decodes as a guest's parser would: header, version, checksum, the preferred mode's
// size and refresh in the first detailed timing descriptor, the monitor name; bad sizes fail.
#include "vhost-user-gpu/edid.h"

#include <cstdint>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost::gpu {
namespace {

using ::vhost::testing::StatusIs;

struct Timing {
  uint32_t clock_khz, h_active, h_blank, v_active, v_blank, width_mm, height_mm;
};

Timing DecodeTiming(const EdidBlock& e, size_t at) {
  const uint8_t* d = &e[at];
  Timing t;
  t.clock_khz = (d[0] | d[1] << 8) * 10u;
  t.h_active = d[2] | (d[4] >> 4) << 8;
  t.h_blank = d[3] | (d[4] & 0xf) << 8;
  t.v_active = d[5] | (d[7] >> 4) << 8;
  t.v_blank = d[6] | (d[7] & 0xf) << 8;
  t.width_mm = d[12] | (d[14] >> 4) << 8;
  t.height_mm = d[13] | (d[14] & 0xf) << 8;
  return t;
}

std::string DecodeName(const EdidBlock& e) {
  for (size_t at = 54; at < 126; at += 18) {
    if (e[at] == 0 && e[at + 1] == 0 && e[at + 3] == 0xfc) {
      std::string name;
      for (size_t i = at + 5; i < at + 18 && e[i] != 0x0a; ++i) name += static_cast<char>(e[i]);
      return name;
    }
  }
  return "<none>";
}

double RefreshHz(const Timing& t) {
  return t.clock_khz * 1000.0 / ((t.h_active + t.h_blank) * double(t.v_active + t.v_blank));
}

TEST(EdidTest, HeaderVersionAndChecksum) {
  ASSERT_OK_AND_ASSIGN(EdidBlock e, MakeEdid(1280, 800, "vhost-gpu"));
  const uint8_t header[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(e[i], header[i]) << i;
  EXPECT_EQ(e[18], 1);  // EDID 1.4
  EXPECT_EQ(e[19], 4);
  EXPECT_NE(e[20] & 0x80, 0);  // digital input
  EXPECT_EQ(e[126], 0);        // no extensions
  uint8_t sum = 0;
  for (uint8_t b : e) sum += b;
  EXPECT_EQ(sum, 0);
  // The manufacturer id's top bit is reserved (0) and its letters are A..Z.
  EXPECT_EQ(e[8] & 0x80, 0);
  const uint16_t vendor = e[8] << 8 | e[9];
  for (int shift : {10, 5, 0}) {
    const int letter = (vendor >> shift) & 0x1f;
    EXPECT_GE(letter, 1);
    EXPECT_LE(letter, 26);
  }
}

TEST(EdidTest, PreferredModeIsTheGivenSize) {
  for (auto [w, h] : {std::pair<uint32_t, uint32_t>{1280, 800},
                      {1920, 1080},
                      {640, 480},
                      {3840, 2160},
                      {4095, 4095},
                      {1, 1}}) {
    SCOPED_TRACE(::testing::Message() << w << "x" << h);
    ASSERT_OK_AND_ASSIGN(EdidBlock e, MakeEdid(w, h, "x"));
    const Timing t = DecodeTiming(e, 54);
    EXPECT_EQ(t.h_active, w);
    EXPECT_EQ(t.v_active, h);
    EXPECT_GT(t.clock_khz, 0u);
    EXPECT_GT(t.h_blank, 0u);
    EXPECT_GT(t.v_blank, 0u);
    // 60 Hz where the 16-bit clock allows it (and its 10 kHz steps are fine enough), never
    // above.
    EXPECT_LE(RefreshHz(t), 60.5);
    if (w >= 640 && w <= 1920) {
      EXPECT_NEAR(RefreshHz(t), 60.0, 0.5);
    }
    EXPECT_GE(RefreshHz(t), 24.0);
    // The image size is proportional to the mode (96 dpi): 25.4 mm per 96 px.
    EXPECT_NEAR(t.width_mm, w * 25.4 / 96, 1.0);
    EXPECT_NEAR(t.height_mm, h * 25.4 / 96, 1.0);
    uint8_t sum = 0;
    for (uint8_t b : e) sum += b;
    EXPECT_EQ(sum, 0);
  }
}

TEST(EdidTest, TheRangeLimitsCoverTheMode) {
  ASSERT_OK_AND_ASSIGN(EdidBlock e, MakeEdid(1920, 1080, "x"));
  const Timing t = DecodeTiming(e, 54);
  bool found = false;
  for (size_t at = 72; at < 126; at += 18) {
    if (e[at + 3] != 0xfd) continue;
    found = true;
    const double h_khz = t.clock_khz / double(t.h_active + t.h_blank);
    EXPECT_LE(e[at + 5], RefreshHz(t));
    EXPECT_GE(e[at + 6], RefreshHz(t));
    EXPECT_LE(e[at + 7], h_khz);
    EXPECT_GE(e[at + 8], h_khz);
    EXPECT_GE(e[at + 9] * 10000u, t.clock_khz);
  }
  EXPECT_TRUE(found);
}

TEST(EdidTest, MonitorName) {
  ASSERT_OK_AND_ASSIGN(EdidBlock e, MakeEdid(800, 600, "vhost-gpu"));
  EXPECT_EQ(DecodeName(e), "vhost-gpu");
  ASSERT_OK_AND_ASSIGN(e, MakeEdid(800, 600, "a name longer than thirteen"));
  EXPECT_EQ(DecodeName(e), "a name longer");
  ASSERT_OK_AND_ASSIGN(e, MakeEdid(800, 600, std::string("a\nb\xff", 4)));
  EXPECT_EQ(DecodeName(e), "a?b?");
}

TEST(EdidTest, SizesAnEdidCannotHold) {
  EXPECT_THAT(MakeEdid(0, 600, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MakeEdid(800, 0, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MakeEdid(4096, 600, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MakeEdid(800, 4096, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MakeEdid(UINT32_MAX, UINT32_MAX, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost::gpu
