#include "vhost-user-snd/snd_spec.h"

#include "gtest/gtest.h"

namespace vhost::snd {
namespace {

TEST(SndSpecTest, RatesInHz) {
  EXPECT_EQ(RateHz(VIRTIO_SND_PCM_RATE_5512), 5512u);
  EXPECT_EQ(RateHz(VIRTIO_SND_PCM_RATE_44100), 44100u);
  EXPECT_EQ(RateHz(VIRTIO_SND_PCM_RATE_48000), 48000u);
  EXPECT_EQ(RateHz(VIRTIO_SND_PCM_RATE_384000), 384000u);
  EXPECT_EQ(RateHz(kRateCount), 0u);
  EXPECT_EQ(RateHz(255), 0u);
  for (unsigned rate = 0; rate < kRateCount; ++rate) {
    EXPECT_EQ(RateFromHz(RateHz(rate)), static_cast<int>(rate));
  }
  EXPECT_EQ(RateFromHz(44000), -1);
  EXPECT_EQ(RateFromHz(0), -1);
}

TEST(SndSpecTest, FormatWidthsAndNames) {
  EXPECT_EQ(kFormatCount, 25u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_IMA_ADPCM), 4u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_U8), 8u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_S16), 16u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_S18_3), 24u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_U24_3), 24u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_S20), 32u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_S24), 32u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_FLOAT), 32u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_FLOAT64), 64u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_DSD_U16), 16u);
  EXPECT_EQ(FormatPhysicalBits(VIRTIO_SND_PCM_FMT_IEC958_SUBFRAME), 32u);
  EXPECT_EQ(FormatPhysicalBits(kFormatCount), 0u);

  EXPECT_EQ(FormatName(VIRTIO_SND_PCM_FMT_S16), "s16");
  EXPECT_EQ(FormatName(VIRTIO_SND_PCM_FMT_MU_LAW), "mu_law");
  EXPECT_EQ(FormatName(VIRTIO_SND_PCM_FMT_S24_3), "s24_3");
  EXPECT_EQ(FormatName(VIRTIO_SND_PCM_FMT_FLOAT64), "float64");
  EXPECT_EQ(FormatName(kFormatCount), "");
  for (unsigned format = 0; format < kFormatCount; ++format) {
    EXPECT_EQ(FormatFromName(FormatName(format)), static_cast<int>(format));
  }
  EXPECT_EQ(FormatFromName("S16"), -1);
  EXPECT_EQ(FormatFromName(""), -1);
}

TEST(SndSpecTest, StatusNames) {
  EXPECT_EQ(VIRTIO_SND_S_OK, 0x8000);
  EXPECT_EQ(StatusName(VIRTIO_SND_S_OK), "OK");
  EXPECT_EQ(StatusName(VIRTIO_SND_S_BAD_MSG), "BAD_MSG");
  EXPECT_EQ(StatusName(VIRTIO_SND_S_NOT_SUPP), "NOT_SUPP");
  EXPECT_EQ(StatusName(VIRTIO_SND_S_IO_ERR), "IO_ERR");
  EXPECT_EQ(StatusName(0), "?");
}

// The control-element additions keep the spec's codes next to the header's.
TEST(SndSpecTest, ControlCodesFollowTheHeaders) {
  EXPECT_EQ(kSndRCtlInfo, VIRTIO_SND_R_CHMAP_INFO + 0x100u);
  EXPECT_EQ(kSndRCtlTlvCommand, 0x0306u);
  EXPECT_EQ(kSndEvtCtlNotify, VIRTIO_SND_EVT_PCM_PERIOD_ELAPSED + 0x100u);
  EXPECT_EQ(offsetof(SndConfigCtls, controls), sizeof(virtio_snd_config));
}

}  // namespace
}  // namespace vhost::snd
