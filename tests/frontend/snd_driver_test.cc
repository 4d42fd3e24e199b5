#include "tests/frontend/snd_driver.h"

#include <cstring>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/chain_layout_test_base.h"

namespace vhost::frontend {
namespace {

using testing::DriverRing;
using testing::RingLayout;

std::vector<uint8_t> Bytes(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n);
}
template <typename T>
std::vector<uint8_t> Bytes(const T& t) {
  return Bytes(&t, sizeof(t));
}

TEST(SndWireTest, StructSizesAreTheSpecs) {
  EXPECT_EQ(sizeof(virtio_snd_query_info), 16u);
  EXPECT_EQ(sizeof(virtio_snd_pcm_info), 32u);
  EXPECT_EQ(sizeof(virtio_snd_jack_info), 24u);
  EXPECT_EQ(sizeof(virtio_snd_chmap_info), 24u);
  EXPECT_EQ(sizeof(virtio_snd_pcm_set_params), 24u);
  EXPECT_EQ(sizeof(virtio_snd_pcm_xfer), 4u);
  EXPECT_EQ(sizeof(virtio_snd_pcm_status), 8u);
  EXPECT_EQ(sizeof(virtio_snd_event), 8u);
}

TEST(SndWireTest, RequestBytes) {
  EXPECT_EQ(Bytes(SndQueryInfo(VIRTIO_SND_R_PCM_INFO, 1, 2, 32)),
            (std::vector<uint8_t>{0x00, 0x01, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 32, 0, 0, 0}));
  EXPECT_EQ(Bytes(SndQueryInfo(VIRTIO_SND_R_JACK_INFO, 0, 1, 24)),
            (std::vector<uint8_t>{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 24, 0, 0, 0}));
  EXPECT_EQ(Bytes(SndQueryInfo(VIRTIO_SND_R_CHMAP_INFO, 3, 1, 24)),
            (std::vector<uint8_t>{0x00, 0x02, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 24, 0, 0, 0}));
  EXPECT_EQ(Bytes(SndPcmHdr(VIRTIO_SND_R_PCM_PREPARE, 1)),
            (std::vector<uint8_t>{0x02, 0x01, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(Bytes(SndPcmHdr(VIRTIO_SND_R_PCM_RELEASE, 0)),
            (std::vector<uint8_t>{0x03, 0x01, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(Bytes(SndPcmHdr(VIRTIO_SND_R_PCM_START, 0)),
            (std::vector<uint8_t>{0x04, 0x01, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(Bytes(SndPcmHdr(VIRTIO_SND_R_PCM_STOP, 2)),
            (std::vector<uint8_t>{0x05, 0x01, 0, 0, 2, 0, 0, 0}));
  // Stream 1, 16384-byte buffer, 4096-byte periods, features EVT_XRUNS, 2 channels, S16, 48 kHz.
  EXPECT_EQ(Bytes(SndSetParams(1, 16384, 4096, 2, VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_RATE_48000,
                               1u << VIRTIO_SND_PCM_F_EVT_XRUNS)),
            (std::vector<uint8_t>{0x01, 0x01, 0, 0, 1,  0, 0, 0, 0x00, 0x40, 0, 0,
                                  0x00, 0x10, 0, 0, 16, 0, 0, 0, 2,    5,    7, 0}));
  EXPECT_EQ(Bytes(SndJackRemap(2, 5, 9)),
            (std::vector<uint8_t>{2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0}));
}

TEST(SndWireTest, FormatWidthsAndRates) {
  EXPECT_EQ(SndSampleBytes(VIRTIO_SND_PCM_FMT_U8), 1u);
  EXPECT_EQ(SndSampleBytes(VIRTIO_SND_PCM_FMT_S16), 2u);
  EXPECT_EQ(SndSampleBytes(VIRTIO_SND_PCM_FMT_S24_3), 3u);
  EXPECT_EQ(SndSampleBytes(VIRTIO_SND_PCM_FMT_S24), 4u);
  EXPECT_EQ(SndSampleBytes(VIRTIO_SND_PCM_FMT_S32), 4u);
  EXPECT_EQ(SndSampleBytes(VIRTIO_SND_PCM_FMT_FLOAT), 4u);
  EXPECT_EQ(SndSampleBytes(VIRTIO_SND_PCM_FMT_FLOAT64), 8u);
  EXPECT_EQ(SndSampleBytes(VIRTIO_SND_PCM_FMT_IMA_ADPCM), 0u);
  EXPECT_EQ(SndSampleBytes(200), 0u);
  EXPECT_EQ(SndRateHz(VIRTIO_SND_PCM_RATE_5512), 5512u);
  EXPECT_EQ(SndRateHz(VIRTIO_SND_PCM_RATE_44100), 44100u);
  EXPECT_EQ(SndRateHz(VIRTIO_SND_PCM_RATE_48000), 48000u);
  EXPECT_EQ(SndRateHz(VIRTIO_SND_PCM_RATE_384000), 384000u);
  EXPECT_EQ(SndRateHz(VIRTIO_SND_PCM_RATE_384000 + 1), 0u);
}

using SndChainTest = ChainLayoutTest;

TEST_F(SndChainTest, QueryIsRequestThenHeaderAndItems) {
  ASSERT_OK_AND_ASSIGN(SndControl c, AllocateSndControl(ram_.get(), 256));
  ASSERT_OK(WriteSndControl(&c, SndQueryInfo(VIRTIO_SND_R_PCM_INFO, 0, 2, 32), 2 * 32));
  EXPECT_EQ(c.req_len, 16u);
  EXPECT_EQ(c.resp_len, 4u + 64u);
  EXPECT_EQ(c.status(), 0xffffffffu);  // poisoned until the device answers
  EXPECT_EQ(Bytes(c.req, 16), Bytes(SndQueryInfo(VIRTIO_SND_R_PCM_INFO, 0, 2, 32)));

  ASSERT_OK_AND_ASSIGN(const uint16_t head, AddSndControl(ring_.get(), c));
  const std::vector<Desc> chain = Chain(head);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].addr, c.req_gpa);
  EXPECT_EQ(chain[0].len, 16u);
  EXPECT_EQ(chain[0].flags & kDescWrite, 0);
  EXPECT_EQ(chain[1].addr, c.resp_gpa);
  EXPECT_EQ(chain[1].len, 68u);
  EXPECT_EQ(chain[1].flags & kDescWrite, kDescWrite);

  // What a device answers lands where status() and payload() read it.
  const virtio_snd_hdr ok{VIRTIO_SND_S_OK};
  std::memcpy(c.resp, &ok, sizeof(ok));
  c.resp[4] = 0x42;
  EXPECT_EQ(c.status(), static_cast<uint32_t>(VIRTIO_SND_S_OK));
  EXPECT_EQ(c.payload()[0], 0x42);
}

TEST_F(SndChainTest, CommandsHaveAHeaderOnlyResponse) {
  ASSERT_OK_AND_ASSIGN(SndControl c, AllocateSndControl(ram_.get(), 64));
  ASSERT_OK(WriteSndControl(
      &c, SndSetParams(0, 8192, 2048, 2, VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_RATE_48000)));
  ASSERT_OK_AND_ASSIGN(uint16_t head, AddSndControl(ring_.get(), c));
  std::vector<Desc> chain = Chain(head);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].len, 24u);
  EXPECT_EQ(chain[1].len, 4u);

  ASSERT_OK(WriteSndControl(&c, SndPcmHdr(VIRTIO_SND_R_PCM_START, 3)));
  ASSERT_OK_AND_ASSIGN(head, AddSndControl(ring_.get(), c));
  chain = Chain(head);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].len, 8u);
  EXPECT_EQ(chain[1].len, 4u);

  ASSERT_OK(WriteSndControl(&c, SndJackRemap(0, 1, 2)));
  ASSERT_OK_AND_ASSIGN(head, AddSndControl(ring_.get(), c));
  chain = Chain(head);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].len, 16u);
  EXPECT_EQ(chain[1].len, 4u);

  // More than was allocated is refused rather than written past the buffer.
  EXPECT_FALSE(WriteSndControl(&c, SndPcmHdr(VIRTIO_SND_R_PCM_START, 3), 64).ok());
}

TEST_F(SndChainTest, PlaybackIsHeaderAndDataThenStatus) {
  ASSERT_OK_AND_ASSIGN(SndPcmBuffer b,
                       AllocateSndPcmBuffer(ram_.get(), /*stream_id=*/1, 4096, /*capture=*/false));
  EXPECT_EQ(Bytes(b.xfer, 4), (std::vector<uint8_t>{1, 0, 0, 0}));
  EXPECT_EQ(b.status->status, 0xffffffffu);
  ASSERT_OK_AND_ASSIGN(const uint16_t head, AddSndPcmBuffer(ring_.get(), b));
  const std::vector<Desc> chain = Chain(head);
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0].addr, b.xfer_gpa);
  EXPECT_EQ(chain[0].len, 4u);
  EXPECT_EQ(chain[1].addr, b.data_gpa);
  EXPECT_EQ(chain[1].len, 4096u);
  EXPECT_EQ(chain[2].addr, b.status_gpa);
  EXPECT_EQ(chain[2].len, 8u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(!!(chain[i].flags & kDescWrite), i == 2) << i;
}

TEST_F(SndChainTest, CaptureIsHeaderThenDataAndStatus) {
  ASSERT_OK_AND_ASSIGN(SndPcmBuffer b,
                       AllocateSndPcmBuffer(ram_.get(), /*stream_id=*/0, 1024, /*capture=*/true));
  EXPECT_EQ(b.data[0], 0xa5);  // poisoned until the device fills it
  ASSERT_OK_AND_ASSIGN(const uint16_t head, AddSndPcmBuffer(ring_.get(), b));
  const std::vector<Desc> chain = Chain(head);
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0].addr, b.xfer_gpa);
  EXPECT_EQ(chain[0].len, 4u);
  EXPECT_EQ(chain[1].addr, b.data_gpa);
  EXPECT_EQ(chain[1].len, 1024u);
  EXPECT_EQ(chain[2].addr, b.status_gpa);
  EXPECT_EQ(chain[2].len, 8u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(!!(chain[i].flags & kDescWrite), i >= 1) << i;
  // The used length counts data and status.
  EXPECT_EQ(SndCapturedBytes(b, 1024 + 8), 1024u);
  EXPECT_EQ(SndCapturedBytes(b, 512 + 8), 512u);
  EXPECT_EQ(SndCapturedBytes(b, 8), 0u);
  EXPECT_EQ(SndCapturedBytes(b, 4), 0u);
  EXPECT_EQ(SndCapturedBytes(b, 5000), 1024u);
}

TEST_F(SndChainTest, ShrunkPartsLeaveTheirDescriptorsOut) {
  ASSERT_OK_AND_ASSIGN(SndPcmBuffer b, AllocateSndPcmBuffer(ram_.get(), 0, 64, false));
  b.status_len = 0;
  ASSERT_OK_AND_ASSIGN(uint16_t head, AddSndPcmBuffer(ring_.get(), b));
  std::vector<Desc> chain = Chain(head);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[1].flags & kDescWrite, 0);

  b.status_len = 8;
  b.xfer_len = 2;  // a short header
  ASSERT_OK_AND_ASSIGN(head, AddSndPcmBuffer(ring_.get(), b));
  chain = Chain(head);
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0].len, 2u);
}

TEST_F(SndChainTest, EventBufferIsOneWritableEvent) {
  ASSERT_OK_AND_ASSIGN(const uint64_t gpa, ram_->Allocate(sizeof(virtio_snd_event), 16));
  ASSERT_OK_AND_ASSIGN(const uint16_t head, AddSndEventBuffer(ring_.get(), gpa));
  const std::vector<Desc> chain = Chain(head);
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].addr, gpa);
  EXPECT_EQ(chain[0].len, 8u);
  EXPECT_EQ(chain[0].flags, kDescWrite);
}

// ---- Tones.

class SndToneTest : public ::testing::TestWithParam<uint8_t> {};

TEST_P(SndToneTest, GeneratedToneMeasuresAtItsFrequency) {
  const uint8_t format = GetParam();
  for (const auto& [rate, frequency] :
       std::vector<std::pair<uint32_t, double>>{{48000, 440}, {44100, 440}, {48000, 1000}}) {
    ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> pcm,
                         SndSineTone(format, 2, rate, frequency, 0.5, rate));  // one second
    ASSERT_EQ(pcm.size(), rate * 2 * SndSampleBytes(format));
    for (uint32_t channel : {0u, 1u}) {
      ASSERT_OK_AND_ASSIGN(std::vector<double> samples, SndDecodeChannel(format, 2, channel, pcm));
      ASSERT_EQ(samples.size(), rate);
      EXPECT_NEAR(SndMeasureFrequency(samples, rate), frequency, 1.0)
          << rate << " Hz, channel " << channel;
    }
  }
}

TEST_P(SndToneTest, OtherFrequenciesAreNot440) {
  const uint8_t format = GetParam();
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> pcm, SndSineTone(format, 1, 48000, 445, 0.8, 48000));
  ASSERT_OK_AND_ASSIGN(std::vector<double> samples, SndDecodeChannel(format, 1, 0, pcm));
  const double measured = SndMeasureFrequency(samples, 48000);
  EXPECT_NEAR(measured, 445, 1.0);
  EXPECT_GT(std::abs(measured - 440), 1.0);
}

TEST_P(SndToneTest, AmplitudeSurvivesTheFormat) {
  const uint8_t format = GetParam();
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> pcm, SndSineTone(format, 1, 48000, 440, 0.25, 4800));
  ASSERT_OK_AND_ASSIGN(std::vector<double> samples, SndDecodeChannel(format, 1, 0, pcm));
  double peak = 0;
  for (double s : samples) peak = std::max(peak, std::abs(s));
  EXPECT_NEAR(peak, 0.25, 0.001);
  // Goertzel: the tone is there at full strength (A²/4), another frequency is not.
  EXPECT_NEAR(SndGoertzelPower(samples, 48000, 440), 0.25 * 0.25 / 4, 0.001);
  EXPECT_LT(SndGoertzelPower(samples, 48000, 1000), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Formats, SndToneTest,
                         ::testing::Values(VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_FMT_S32,
                                           VIRTIO_SND_PCM_FMT_FLOAT));

TEST(SndToneBytesTest, QuarterRateToneHasExactSamples) {
  // f = rate / 4: samples 0, A, 0, -A, ... so the exact encoding is checkable.
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> s16,
                       SndSineTone(VIRTIO_SND_PCM_FMT_S16, 1, 48000, 12000, 0.5, 4));
  // 0.5 * 32767 = 16383.5, rounded away from zero: 16384 = 0x4000.
  EXPECT_EQ(s16, (std::vector<uint8_t>{0, 0, 0x00, 0x40, 0, 0, 0x00, 0xc0}));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> s32,
                       SndSineTone(VIRTIO_SND_PCM_FMT_S32, 1, 48000, 12000, 1.0, 2));
  EXPECT_EQ(s32, (std::vector<uint8_t>{0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f}));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> f32,
                       SndSineTone(VIRTIO_SND_PCM_FMT_FLOAT, 2, 48000, 12000, 0.5, 2));
  // Two channels of 0.0f, then two of 0.5f (0x3f000000).
  EXPECT_EQ(f32, (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x3f, 0, 0, 0, 0x3f}));
}

TEST(SndToneBytesTest, UnsupportedFormatsAndSilence) {
  EXPECT_FALSE(SndSineTone(VIRTIO_SND_PCM_FMT_U8, 1, 48000, 440, 1, 10).ok());
  EXPECT_FALSE(SndDecodeChannel(VIRTIO_SND_PCM_FMT_S24_3, 1, 0, {}).ok());
  EXPECT_FALSE(SndDecodeChannel(VIRTIO_SND_PCM_FMT_S16, 2, 2, {}).ok());
  const std::vector<double> silence(4800, 0.0);
  EXPECT_EQ(SndMeasureFrequency(silence, 48000), 0);
}

TEST(SndToneBytesTest, NoiseAroundZeroDoesNotAddCrossings) {
  // A 100 Hz square-ish tone whose flat parts jitter around zero by less than the hysteresis.
  std::vector<double> samples;
  for (int i = 0; i < 48000; ++i) {
    const int phase = i % 480;  // 100 Hz at 48 kHz
    double v = phase < 120 ? 1.0 : phase < 240 ? 0.0 : phase < 360 ? -1.0 : 0.0;
    if (v == 0.0) v = (i % 2 ? 0.01 : -0.01);
    samples.push_back(v);
  }
  EXPECT_NEAR(SndMeasureFrequency(samples, 48000), 100, 1.0);
}

}  // namespace
}  // namespace vhost::frontend
