#include "vhost-user-snd/snd_config.h"

#include <cstring>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost::snd {
namespace {

using ::vhost::testing::StatusIs;

constexpr uint64_t Bit(unsigned n) { return uint64_t{1} << n; }

SndConfig Default() {
  absl::StatusOr<std::vector<PcmCaps>> streams = ParseStreams(kDefaultStreams);
  EXPECT_TRUE(streams.ok()) << streams.status();
  return SndConfig(streams.ok() ? *streams : std::vector<PcmCaps>());
}

std::vector<uint8_t> Query(uint32_t code, uint32_t start, uint32_t count, uint32_t size) {
  const virtio_snd_query_info q = {{code}, start, count, size};
  std::vector<uint8_t> bytes(sizeof(q));
  std::memcpy(bytes.data(), &q, sizeof(q));
  return bytes;
}

std::vector<uint8_t> Bytes(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> all;
  for (const auto& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

const std::vector<uint8_t> kOk = {0x00, 0x80, 0x00, 0x00};
const std::vector<uint8_t> kBadMsg = {0x01, 0x80, 0x00, 0x00};

TEST(ParseStreamsTest, DefaultIsStereoS16At48kEachWay) {
  absl::StatusOr<std::vector<PcmCaps>> streams = ParseStreams(kDefaultStreams);
  ASSERT_OK(streams);
  ASSERT_EQ(streams->size(), 2u);
  for (const PcmCaps& s : *streams) {
    EXPECT_EQ(s.channels_min, 2);
    EXPECT_EQ(s.channels_max, 2);
    EXPECT_EQ(s.formats, Bit(VIRTIO_SND_PCM_FMT_S16));
    EXPECT_EQ(s.rates, Bit(VIRTIO_SND_PCM_RATE_48000));
    EXPECT_EQ(s.features, 0u);
  }
  EXPECT_EQ((*streams)[0].direction, VIRTIO_SND_D_OUTPUT);
  EXPECT_EQ((*streams)[1].direction, VIRTIO_SND_D_INPUT);
  // The short form means the same.
  absl::StatusOr<std::vector<PcmCaps>> short_form = ParseStreams("playback;capture");
  ASSERT_OK(short_form);
  ASSERT_EQ(short_form->size(), 2u);
  EXPECT_EQ((*short_form)[1].direction, VIRTIO_SND_D_INPUT);
  EXPECT_EQ((*short_form)[1].rates, Bit(VIRTIO_SND_PCM_RATE_48000));
  EXPECT_EQ((*short_form)[1].formats, Bit(VIRTIO_SND_PCM_FMT_S16));
}

TEST(ParseStreamsTest, EveryField) {
  absl::StatusOr<std::vector<PcmCaps>> streams = ParseStreams(
      "playback:2ch:48000,44100:s16,s32;capture:1ch:48000:s16;playback:1-8ch:384000,5512:float,"
      "u8,s24_3;capture:4ch");
  ASSERT_OK(streams);
  ASSERT_EQ(streams->size(), 4u);
  const PcmCaps& p0 = (*streams)[0];
  EXPECT_EQ(p0.direction, VIRTIO_SND_D_OUTPUT);
  EXPECT_EQ(p0.rates, Bit(VIRTIO_SND_PCM_RATE_48000) | Bit(VIRTIO_SND_PCM_RATE_44100));
  EXPECT_EQ(p0.formats, Bit(VIRTIO_SND_PCM_FMT_S16) | Bit(VIRTIO_SND_PCM_FMT_S32));
  const PcmCaps& c0 = (*streams)[1];
  EXPECT_EQ(c0.direction, VIRTIO_SND_D_INPUT);
  EXPECT_EQ(c0.channels_min, 1);
  EXPECT_EQ(c0.channels_max, 1);
  const PcmCaps& p1 = (*streams)[2];
  EXPECT_EQ(p1.channels_min, 1);
  EXPECT_EQ(p1.channels_max, 8);
  EXPECT_EQ(p1.rates, Bit(VIRTIO_SND_PCM_RATE_384000) | Bit(VIRTIO_SND_PCM_RATE_5512));
  EXPECT_EQ(p1.formats, Bit(VIRTIO_SND_PCM_FMT_FLOAT) | Bit(VIRTIO_SND_PCM_FMT_U8) |
                            Bit(VIRTIO_SND_PCM_FMT_S24_3));
  const PcmCaps& c1 = (*streams)[3];
  EXPECT_EQ(c1.channels_min, 4);
  EXPECT_EQ(c1.channels_max, 4);
  EXPECT_EQ(c1.rates, Bit(VIRTIO_SND_PCM_RATE_48000));
  EXPECT_EQ(c1.formats, Bit(VIRTIO_SND_PCM_FMT_S16));
}

TEST(ParseStreamsTest, BadInputNamesTheFlag) {
  std::string too_many = "playback";
  for (size_t i = 1; i <= kMaxStreams; ++i) too_many += ";capture";
  for (const std::string& text : std::vector<std::string>{"",
                                                          ";",
                                                          "playback;",
                                                          "speaker",
                                                          "Playback",
                                                          "playback:2",
                                                          "playback:ch",
                                                          "playback:0ch",
                                                          "playback:19ch",
                                                          "playback:2-1ch",
                                                          "playback:1-19ch",
                                                          "playback:-2ch",
                                                          "playback:2ch:",
                                                          "playback:2ch:44000",
                                                          "playback:2ch:48000,",
                                                          "playback:2ch:48k",
                                                          "playback:2ch:48000:",
                                                          "playback:2ch:48000:S16",
                                                          "playback:2ch:48000:ima_adpcm",
                                                          "playback:2ch:48000:s16:x",
                                                          too_many}) {
    absl::StatusOr<std::vector<PcmCaps>> streams = ParseStreams(text);
    EXPECT_THAT(streams, StatusIs(absl::StatusCode::kInvalidArgument)) << text;
    if (!streams.ok()) {
      EXPECT_EQ(streams.status().message().substr(0, 10), "--streams:") << text;
    }
  }
  std::string most = "playback";
  for (size_t i = 1; i < kMaxStreams; ++i) most += ";capture";
  EXPECT_OK(ParseStreams(most));
  EXPECT_OK(ParseStreams("capture:1-18ch"));
}

TEST(SndConfigTest, ConfigSpaceCountsJacksStreamsChmaps) {
  const SndConfigCtls config = Default().config();
  std::vector<uint8_t> bytes(sizeof(config));
  std::memcpy(bytes.data(), &config, sizeof(config));
  EXPECT_EQ(bytes, (std::vector<uint8_t>{2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}));

  absl::StatusOr<std::vector<PcmCaps>> streams =
      ParseStreams("playback:1-2ch;capture:1ch;playback:6ch");
  ASSERT_OK(streams);
  const SndConfig config3(*streams);
  EXPECT_EQ(config3.config().streams, 3u);
  EXPECT_EQ(config3.config().jacks, 3u);
  EXPECT_EQ(config3.config().chmaps, 4u);  // 1ch and 2ch, 1ch, 6ch
  // The first playback and capture streams make one PCM device; the second playback another.
  EXPECT_EQ(config3.hda_fn_nid(0), 0u);
  EXPECT_EQ(config3.hda_fn_nid(1), 0u);
  EXPECT_EQ(config3.hda_fn_nid(2), 1u);
}

TEST(SndConfigTest, PcmInfoBytes) {
  const SndConfig config = Default();
  const std::vector<uint8_t> reply =
      config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 0, 2, sizeof(virtio_snd_pcm_info)), 4 + 64);
  // clang-format off
  const std::vector<uint8_t> playback = {
      0, 0, 0, 0,                  // hda_fn_nid 0
      0, 0, 0, 0,                  // features
      0x20, 0, 0, 0, 0, 0, 0, 0,   // formats: S16
      0x80, 0, 0, 0, 0, 0, 0, 0,   // rates: 48000
      0, 2, 2, 0, 0, 0, 0, 0,      // output, 2..2 channels, padding
  };
  // clang-format on
  std::vector<uint8_t> capture = playback;
  capture[24] = 1;  // input
  EXPECT_EQ(reply, Bytes({kOk, playback, capture}));

  // One item from the middle, with a larger item size: zero-filled.
  const std::vector<uint8_t> one = config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 1, 1, 40), 4 + 40);
  EXPECT_EQ(one, Bytes({kOk, capture, std::vector<uint8_t>(8, 0)}));
  // No items is a valid question with an empty answer.
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 2, 0, 32), 4), kOk);
}

TEST(SndConfigTest, PcmInfoOfSeveralRatesAndFormats) {
  absl::StatusOr<std::vector<PcmCaps>> streams =
      ParseStreams("capture:1-2ch:48000,44100:s16,s32;playback:1ch:192000:float");
  ASSERT_OK(streams);
  const SndConfig config(*streams);
  const std::vector<uint8_t> reply = config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 0, 2, 32), 1024);
  EXPECT_EQ(reply, Bytes({kOk,
                          {0,    0, 0,    0, 0, 0, 0, 0,   //
                           0x20, 0, 0x02, 0, 0, 0, 0, 0,   // S16 | S32
                           0xc0, 0, 0,    0, 0, 0, 0, 0,   // 44100 | 48000
                           1,    1, 2,    0, 0, 0, 0, 0},  //
                          {0, 0,    0,    0, 0, 0, 0, 0,   //
                           0, 0,    0x08, 0, 0, 0, 0, 0,   // FLOAT
                           0, 0x10, 0,    0, 0, 0, 0, 0,   // 192000
                           0, 1,    1,    0, 0, 0, 0, 0}}));
}

TEST(SndConfigTest, JackInfoBytes) {
  SndConfig config = Default();
  // clang-format off
  const std::vector<uint8_t> line_out = {
      0, 0, 0, 0,              // hda_fn_nid 0
      1, 0, 0, 0,              // features: REMAP
      0x10, 0x40, 0x01, 0x01,  // defconf 0x01014010: jack, rear, line out, 1/8", green, assoc 1
      0x14, 0, 0, 0,           // caps: presence detect, output
      1, 0, 0, 0, 0, 0, 0, 0,  // connected, padding
  };
  const std::vector<uint8_t> line_in = {
      0, 0, 0, 0,              // hda_fn_nid 0
      1, 0, 0, 0,              // features: REMAP
      0x20, 0x30, 0x81, 0x01,  // defconf 0x01813020: line in, blue, assoc 2
      0x24, 0, 0, 0,           // caps: presence detect, input
      1, 0, 0, 0, 0, 0, 0, 0,  // connected, padding
  };
  // clang-format on
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_JACK_INFO, 0, 2, 24), 52),
            Bytes({kOk, line_out, line_in}));

  // Plug state, remapping and features show in the next reply.
  config.jacks()[1].connected = false;
  config.jacks()[1].association = 0xf;
  config.jacks()[1].sequence = 0x3;
  config.jacks()[1].features = 0;
  std::vector<uint8_t> changed = line_in;
  changed[4] = 0;
  changed[8] = 0xf3;
  changed[16] = 0;
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_JACK_INFO, 1, 1, 24), 28), Bytes({kOk, changed}));
}

std::vector<uint8_t> Remap(uint32_t jack, uint32_t association, uint32_t sequence) {
  const virtio_snd_jack_remap r = {{{VIRTIO_SND_R_JACK_REMAP}, jack}, association, sequence};
  std::vector<uint8_t> bytes(sizeof(r));
  std::memcpy(bytes.data(), &r, sizeof(r));
  return bytes;
}

TEST(SndConfigTest, JackRemap) {
  SndConfig config = Default();
  EXPECT_EQ(Remap(1, 7, 2),
            (std::vector<uint8_t>{0x02, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0}));
  EXPECT_EQ(config.RemapJack(Remap(1, 7, 2)), VIRTIO_SND_S_OK);
  EXPECT_EQ(config.jacks()[1].association, 7);
  EXPECT_EQ(config.jacks()[1].sequence, 2);
  EXPECT_EQ(JackDefconf(config.jacks()[1]), 0x01813072u);
  EXPECT_EQ(config.JackInfo(1).hda_reg_defconf, 0x01813072u);
  EXPECT_EQ(config.jacks()[0].association, 1);  // the other jack is as it was
  EXPECT_EQ(config.RemapJack(Remap(0, 15, 15)), VIRTIO_SND_S_OK);
  EXPECT_EQ(JackDefconf(config.jacks()[0]) & 0xff, 0xffu);

  // Bad input changes nothing.
  for (const std::vector<uint8_t>& bad : {Remap(2, 1, 0), Remap(0xffffffffu, 1, 0), Remap(1, 16, 0),
                                          Remap(1, 0, 16), Remap(1, 0x80000001u, 0)}) {
    EXPECT_EQ(config.RemapJack(bad), VIRTIO_SND_S_BAD_MSG);
  }
  std::vector<uint8_t> wrong_code = Remap(1, 1, 1);
  wrong_code[0] = 0x01;  // JACK_INFO
  EXPECT_EQ(config.RemapJack(wrong_code), VIRTIO_SND_S_BAD_MSG);
  std::vector<uint8_t> long_remap = Remap(1, 1, 1);
  long_remap.push_back(0);
  EXPECT_EQ(config.RemapJack(long_remap), VIRTIO_SND_S_BAD_MSG);
  long_remap.resize(12);
  EXPECT_EQ(config.RemapJack(long_remap), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(config.RemapJack({}), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(config.jacks()[1].association, 7);
  EXPECT_EQ(config.jacks()[1].sequence, 2);

  // A jack that does not offer remapping.
  config.jacks()[1].features = 0;
  EXPECT_EQ(config.RemapJack(Remap(1, 3, 3)), VIRTIO_SND_S_NOT_SUPP);
  EXPECT_EQ(config.jacks()[1].association, 7);
}

TEST(SndConfigTest, ChmapInfoBytes) {
  absl::StatusOr<std::vector<PcmCaps>> streams =
      ParseStreams("playback:1-2ch;capture:6ch;playback:18ch");
  ASSERT_OK(streams);
  const SndConfig config(*streams);
  ASSERT_EQ(config.chmap_count(), 4u);
  const std::vector<uint8_t> reply =
      config.InfoReply(Query(VIRTIO_SND_R_CHMAP_INFO, 0, 4, 24), 4 + 4 * 24);
  EXPECT_EQ(reply, Bytes({kOk,
                          // playback 0, mono
                          {0, 0, 0, 0, 0, 1, VIRTIO_SND_CHMAP_MONO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                           0, 0, 0, 0, 0, 0},
                          // playback 0, stereo
                          {0,
                           0,
                           0,
                           0,
                           0,
                           2,
                           VIRTIO_SND_CHMAP_FL,
                           VIRTIO_SND_CHMAP_FR,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0},
                          // capture 0, 5.1 in WAV order
                          {0,
                           0,
                           0,
                           0,
                           1,
                           6,
                           VIRTIO_SND_CHMAP_FL,
                           VIRTIO_SND_CHMAP_FR,
                           VIRTIO_SND_CHMAP_FC,
                           VIRTIO_SND_CHMAP_LFE,
                           VIRTIO_SND_CHMAP_RL,
                           VIRTIO_SND_CHMAP_RR,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0},
                          // playback 1 (node 1), every position
                          {1,
                           0,
                           0,
                           0,
                           0,
                           18,
                           VIRTIO_SND_CHMAP_FL,
                           VIRTIO_SND_CHMAP_FR,
                           VIRTIO_SND_CHMAP_FC,
                           VIRTIO_SND_CHMAP_LFE,
                           VIRTIO_SND_CHMAP_RL,
                           VIRTIO_SND_CHMAP_RR,
                           VIRTIO_SND_CHMAP_FLC,
                           VIRTIO_SND_CHMAP_FRC,
                           VIRTIO_SND_CHMAP_RC,
                           VIRTIO_SND_CHMAP_SL,
                           VIRTIO_SND_CHMAP_SR,
                           VIRTIO_SND_CHMAP_TC,
                           VIRTIO_SND_CHMAP_TFL,
                           VIRTIO_SND_CHMAP_TFC,
                           VIRTIO_SND_CHMAP_TFR,
                           VIRTIO_SND_CHMAP_TRL,
                           VIRTIO_SND_CHMAP_TRC,
                           VIRTIO_SND_CHMAP_TRR}}));
}

TEST(SndConfigTest, OutOfRangeItemsAreBadMsg) {
  const SndConfig config = Default();
  for (uint32_t code : {VIRTIO_SND_R_PCM_INFO, VIRTIO_SND_R_JACK_INFO, VIRTIO_SND_R_CHMAP_INFO}) {
    const uint32_t size = code == VIRTIO_SND_R_PCM_INFO ? 32 : 24;
    EXPECT_EQ(config.InfoReply(Query(code, 0, 3, size), 4096), kBadMsg) << code;
    EXPECT_EQ(config.InfoReply(Query(code, 2, 1, size), 4096), kBadMsg) << code;
    EXPECT_EQ(config.InfoReply(Query(code, 3, 0, size), 4096), kBadMsg) << code;
    // start_id + count wraps 32 bits.
    EXPECT_EQ(config.InfoReply(Query(code, 0xffffffffu, 2, size), 4096), kBadMsg) << code;
    EXPECT_EQ(config.InfoReply(Query(code, 1, 0xffffffffu, size), 4096), kBadMsg) << code;
  }
}

TEST(SndConfigTest, ShortItemSizeIsBadMsg) {
  const SndConfig config = Default();
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 0, 1, 31), 4096), kBadMsg);
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 0, 1, 0), 4096), kBadMsg);
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_JACK_INFO, 0, 1, 23), 4096), kBadMsg);
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_CHMAP_INFO, 0, 1, 8), 4096), kBadMsg);
}

TEST(SndConfigTest, ReplyLargerThanTheBufferIsBadMsg) {
  const SndConfig config = Default();
  // Exactly enough room, then one byte less.
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 0, 2, 32), 68).size(), 68u);
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 0, 2, 32), 67), kBadMsg);
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_JACK_INFO, 0, 1, 24), 27), kBadMsg);
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_CHMAP_INFO, 0, 2, 24), 4), kBadMsg);
  // A huge item size is refused before anything is built.
  EXPECT_EQ(config.InfoReply(Query(VIRTIO_SND_R_PCM_INFO, 0, 2, 0xffffffffu), 1 << 20), kBadMsg);
}

TEST(SndConfigTest, MalformedRequestsAreBadMsg) {
  const SndConfig config = Default();
  std::vector<uint8_t> query = Query(VIRTIO_SND_R_PCM_INFO, 0, 1, 32);
  EXPECT_EQ(config.InfoReply({}, 4096), kBadMsg);
  EXPECT_EQ(config.InfoReply(absl::MakeConstSpan(query).subspan(0, 15), 4096), kBadMsg);
  query.push_back(0);
  EXPECT_EQ(config.InfoReply(query, 4096), kBadMsg);
  // Not info requests.
  for (uint32_t code : {uint32_t{VIRTIO_SND_R_PCM_SET_PARAMS}, uint32_t{VIRTIO_SND_R_JACK_REMAP},
                        kSndRCtlInfo, uint32_t{0}}) {
    EXPECT_EQ(config.InfoReply(Query(code, 0, 1, 32), 4096), kBadMsg) << code;
  }
}

TEST(SndConfigTest, StatusReplyBytes) {
  EXPECT_EQ(StatusReply(VIRTIO_SND_S_OK), kOk);
  EXPECT_EQ(StatusReply(VIRTIO_SND_S_NOT_SUPP), (std::vector<uint8_t>{0x02, 0x80, 0, 0}));
  EXPECT_EQ(StatusReply(VIRTIO_SND_S_IO_ERR), (std::vector<uint8_t>{0x03, 0x80, 0, 0}));
}

TEST(SndConfigTest, StandardPositionsClearTheRest) {
  uint8_t positions[VIRTIO_SND_CHMAP_MAX_SIZE];
  std::memset(positions, 0xee, sizeof(positions));
  StandardPositions(2, positions);
  EXPECT_EQ(positions[0], VIRTIO_SND_CHMAP_FL);
  EXPECT_EQ(positions[1], VIRTIO_SND_CHMAP_FR);
  for (unsigned i = 2; i < VIRTIO_SND_CHMAP_MAX_SIZE; ++i) EXPECT_EQ(positions[i], 0) << i;
}

// ---- Control elements.

const std::vector<uint8_t> kNotSupp = {0x02, 0x80, 0x00, 0x00};

SndConfig WithControls() {
  absl::StatusOr<std::vector<PcmCaps>> streams = ParseStreams(kDefaultStreams);
  EXPECT_TRUE(streams.ok()) << streams.status();
  return SndConfig(streams.ok() ? *streams : std::vector<PcmCaps>(), /*controls=*/true);
}

std::vector<uint8_t> CtlRequest(uint32_t code, uint32_t id) {
  const SndCtlHdr hdr = {{code}, id};
  std::vector<uint8_t> bytes(sizeof(hdr));
  std::memcpy(bytes.data(), &hdr, sizeof(hdr));
  return bytes;
}

std::vector<uint8_t> CtlWrite(uint32_t id, uint32_t value) {
  std::vector<uint8_t> bytes = CtlRequest(kSndRCtlWrite, id);
  SndCtlValue v = {};
  v.value.integer[0] = value;
  const size_t at = bytes.size();
  bytes.resize(at + sizeof(v));
  std::memcpy(bytes.data() + at, &v, sizeof(v));
  return bytes;
}

// A READ reply: OK, then a 512-byte value whose first member is `value`.
std::vector<uint8_t> ReadReply(uint32_t value) {
  std::vector<uint8_t> reply = kOk;
  reply.resize(4 + sizeof(SndCtlValue), 0);
  std::memcpy(reply.data() + 4, &value, sizeof(value));
  return reply;
}

std::vector<uint8_t> U32(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> bytes;
  for (uint32_t w : words) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(w >> (8 * i)));
  }
  return bytes;
}

std::vector<uint8_t> Name(const char* name) {
  std::vector<uint8_t> bytes(44, 0);
  std::memcpy(bytes.data(), name, strlen(name));
  return bytes;
}

TEST(SndControlsTest, NoneWithoutTheFlag) {
  SndConfig config = Default();
  EXPECT_EQ(config.control_count(), 0u);
  EXPECT_EQ(config.config().controls, 0u);
  EXPECT_EQ(config.InfoReply(Query(kSndRCtlInfo, 0, 1, sizeof(SndCtlInfo)), 4096), kBadMsg);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 0), 4096), kBadMsg);
  EXPECT_EQ(config.Gain(0), kVolumeMax);
}

TEST(SndControlsTest, AVolumeAndASwitchPerStreamNamedForAlsa) {
  SndConfig config = WithControls();
  EXPECT_EQ(config.control_count(), 4u);
  EXPECT_EQ(config.config().controls, 4u);
  // hda_fn_nid, role, type, access (read|write, and tlv_read for volumes), count, index, name,
  // padding, min/max/step.
  const std::vector<uint8_t> volume =
      Bytes({U32({0, kSndCtlRoleVolume, kSndCtlTypeInteger, 0x13, 1, 0}),
             Name("PCM Playback Volume"), U32({0, 0, 100, 1}), std::vector<uint8_t>(12, 0)});
  const std::vector<uint8_t> mute =
      Bytes({U32({0, kSndCtlRoleMute, kSndCtlTypeBoolean, 3, 1, 0}), Name("PCM Playback Switch"),
             std::vector<uint8_t>(28, 0)});
  const std::vector<uint8_t> capture_volume =
      Bytes({U32({0, kSndCtlRoleVolume, kSndCtlTypeInteger, 0x13, 1, 0}),
             Name("PCM Capture Volume"), U32({0, 0, 100, 1}), std::vector<uint8_t>(12, 0)});
  const std::vector<uint8_t> capture_mute =
      Bytes({U32({0, kSndCtlRoleMute, kSndCtlTypeBoolean, 3, 1, 0}), Name("PCM Capture Switch"),
             std::vector<uint8_t>(28, 0)});
  ASSERT_EQ(volume.size(), sizeof(SndCtlInfo));
  EXPECT_EQ(config.InfoReply(Query(kSndRCtlInfo, 0, 4, sizeof(SndCtlInfo)), 4 + 4 * 96),
            Bytes({kOk, volume, mute, capture_volume, capture_mute}));
  // Past the last, a short item size, no room: BAD_MSG as for the other info requests.
  EXPECT_EQ(config.InfoReply(Query(kSndRCtlInfo, 3, 2, 96), 4096), kBadMsg);
  EXPECT_EQ(config.InfoReply(Query(kSndRCtlInfo, 0, 1, 95), 4096), kBadMsg);
  EXPECT_EQ(config.InfoReply(Query(kSndRCtlInfo, 0, 1, 96), 99), kBadMsg);
}

TEST(SndControlsTest, SecondStreamsOfADirectionGetTheNextIndex) {
  absl::StatusOr<std::vector<PcmCaps>> streams = ParseStreams("playback;playback");
  ASSERT_OK(streams);
  const SndConfig config(*streams, true);
  const SndCtlInfo info = config.CtlInfo(2);
  EXPECT_STREQ(reinterpret_cast<const char*>(info.name), "PCM Playback Volume");
  EXPECT_EQ(info.index, 1u);
  EXPECT_EQ(info.hdr.hda_fn_nid, 1u);
}

TEST(SndControlsTest, ReadWriteAndGain) {
  SndConfig config = WithControls();
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 0), 516), ReadReply(100));
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 1), 516), ReadReply(1));
  EXPECT_EQ(config.Gain(0), 100u);
  EXPECT_EQ(config.ControlReply(CtlWrite(0, 50), 4), kOk);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 0), 516), ReadReply(50));
  EXPECT_EQ(config.Gain(0), 50u);
  EXPECT_EQ(config.Gain(1), 100u);  // the other stream's controls are its own
  EXPECT_EQ(config.ControlReply(CtlWrite(1, 0), 4), kOk);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 1), 516), ReadReply(0));
  EXPECT_EQ(config.Gain(0), 0u);  // muted, whatever the volume
  EXPECT_EQ(config.ControlReply(CtlWrite(1, 1), 4), kOk);
  EXPECT_EQ(config.Gain(0), 50u);
  EXPECT_EQ(config.ControlReply(CtlWrite(2, 0), 4), kOk);
  EXPECT_EQ(config.Gain(1), 0u);
  config.ResetControls();
  EXPECT_EQ(config.Gain(0), 100u);
  EXPECT_EQ(config.Gain(1), 100u);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 1), 516), ReadReply(1));
}

// The volume's dB scale, byte for byte: SNDRV_CTL_TLVT_DB_LINEAR (2), 8 bytes, from
// SNDRV_CTL_TLVD_DB_GAIN_MUTE (-9999999, mute) to 0 dB in 0.01 dB units.
TEST(SndControlsTest, VolumeTlvIsALinearDbScale) {
  SndConfig config = WithControls();
  const std::vector<uint8_t> want = Bytes({kOk, U32({2, 8, static_cast<uint32_t>(-9999999), 0})});
  ASSERT_EQ(want.size(), 20u);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvRead, 0), 20), want);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvRead, 2), 4096), want);  // capture's
  const std::vector<uint8_t> bytes = Bytes({U32({2, 8, static_cast<uint32_t>(-9999999), 0})});
  const DbLinearTlv tlv = VolumeDbTlv();
  ASSERT_EQ(sizeof(tlv), bytes.size());
  EXPECT_EQ(std::memcmp(&tlv, bytes.data(), sizeof(tlv)), 0);
  // Reading it changes nothing.
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 0), 516), ReadReply(100));
}

TEST(SndControlsTest, TheHostSetsValuesInRange) {
  SndConfig config = WithControls();
  EXPECT_OK(config.SetControlValue(0, 0));
  EXPECT_OK(config.SetControlValue(1, 0));
  EXPECT_EQ(config.ControlValue(0), 0u);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 1), 516), ReadReply(0));
  EXPECT_OK(config.SetControlValue(2, 100));
  EXPECT_EQ(config.SetControlValue(2, 101).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.SetControlValue(3, 2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.ControlValue(2), 100u);
  EXPECT_EQ(config.ControlValue(3), 1u);
}

TEST(SndControlsTest, BadRequestsChangeNothing) {
  SndConfig config = WithControls();
  // Out of range: a volume over 100, a switch other than 0 or 1.
  EXPECT_EQ(config.ControlReply(CtlWrite(0, 101), 4), kBadMsg);
  EXPECT_EQ(config.ControlReply(CtlWrite(0, 0xffffffff), 4), kBadMsg);
  EXPECT_EQ(config.ControlReply(CtlWrite(1, 2), 4), kBadMsg);
  // Unknown controls.
  EXPECT_EQ(config.ControlReply(CtlWrite(4, 0), 4), kBadMsg);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 4), 516), kBadMsg);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 0xffffffff), 516), kBadMsg);
  // Wrong sizes: a write without its value, a read with one, a truncated header, a read reply
  // with no room for the value.
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlWrite, 0), 4), kBadMsg);
  std::vector<uint8_t> long_read = CtlWrite(0, 0);
  long_read[0] = static_cast<uint8_t>(kSndRCtlRead);
  EXPECT_EQ(config.ControlReply(long_read, 516), kBadMsg);
  EXPECT_EQ(config.ControlReply(std::vector<uint8_t>(kBadMsg.begin(), kBadMsg.end()), 4), kBadMsg);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 0), 515), kBadMsg);
  // Not enumerated; no TLV on a switch, no TLV written or commanded on any control.
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlEnumItems, 0), 4096), kNotSupp);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvRead, 1), 4096), kNotSupp);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvRead, 3), 4096), kNotSupp);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvWrite, 0), 4096), kNotSupp);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvCommand, 0), 4096), kNotSupp);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvWrite, 1), 4096), kNotSupp);
  // TLV_READ: an unknown control, a header with more after it, no room for the TLV.
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvRead, 4), 4096), kBadMsg);
  std::vector<uint8_t> long_tlv = CtlWrite(0, 0);
  long_tlv[0] = static_cast<uint8_t>(kSndRCtlTlvRead);
  long_tlv[1] = static_cast<uint8_t>(kSndRCtlTlvRead >> 8);
  EXPECT_EQ(config.ControlReply(long_tlv, 4096), kBadMsg);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlTlvRead, 0), 19), kBadMsg);
  // Not a control element code at all.
  EXPECT_EQ(config.ControlReply(CtlRequest(VIRTIO_SND_R_PCM_INFO, 0), 4096), kBadMsg);
  EXPECT_EQ(config.Gain(0), 100u);
  EXPECT_EQ(config.ControlReply(CtlRequest(kSndRCtlRead, 1), 516), ReadReply(1));
}

}  // namespace
}  // namespace vhost::snd
