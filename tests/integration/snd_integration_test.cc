// vhost-user-snd driven over its socket by our front end: the daemon starts with --streams, its
// features and configuration space read as the streams say, and a PCM_INFO round trip on the
// control queue describes them.
#include <linux/virtio_snd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);

TEST(SndDaemonTest, ConfigAndPcmInfo) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DaemonSession> session, DaemonSession::Create("snd"));
  ASSERT_OK(session->Start(RunfilePath("vhost-user-snd/vhost-user-snd"),
                           {"--socket-path=" + session->socket(), "--backend=null",
                            "--streams=playback:2ch:48000,44100:s16,s32;capture:1ch:48000:s16;"
                            "playback:6ch:96000:float"}));
  DeviceOptions options;
  options.features = Bit(kFeatureVersion1);
  options.required_features = options.features;
  options.ram_size = 4 << 20;
  options.queue_sizes = {64, 64, 64, 64};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DeviceConnection> device, session->Open(options));
  EXPECT_TRUE(device->acked_features() & Bit(kFeatureVersion1));

  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes,
                       device->frontend()->GetConfig(0, sizeof(virtio_snd_config)));
  virtio_snd_config config;
  ASSERT_EQ(bytes.size(), sizeof(config));
  std::memcpy(&config, bytes.data(), sizeof(config));
  EXPECT_EQ(config.streams, 3u);
  EXPECT_EQ(config.jacks, 3u);

  // PCM_INFO of all three streams.
  const virtio_snd_query_info query{{VIRTIO_SND_R_PCM_INFO}, 0, 3, sizeof(virtio_snd_pcm_info)};
  const uint32_t reply_bytes = sizeof(virtio_snd_hdr) + 3 * sizeof(virtio_snd_pcm_info);
  uint8_t* in_host = nullptr;
  uint8_t* out_host = nullptr;
  ASSERT_OK_AND_ASSIGN(uint64_t in, device->ram()->Allocate(sizeof(query), 64, &in_host));
  ASSERT_OK_AND_ASSIGN(uint64_t out, device->ram()->Allocate(reply_bytes, 64, &out_host));
  std::memcpy(in_host, &query, sizeof(query));
  ASSERT_OK(device->queue(0)->ring().AddChain({{in, sizeof(query)}}, {{out, reply_bytes}}));
  ASSERT_OK(device->queue(0)->Submit());
  ASSERT_OK_AND_ASSIGN(UsedElement used, device->queue(0)->WaitForUsed(kTimeout));
  EXPECT_EQ(used.len, reply_bytes);
  virtio_snd_hdr status;
  std::memcpy(&status, out_host, sizeof(status));
  EXPECT_EQ(status.code, VIRTIO_SND_S_OK);
  virtio_snd_pcm_info info[3];
  std::memcpy(info, out_host + sizeof(status), sizeof(info));
  EXPECT_EQ(info[0].direction, VIRTIO_SND_D_OUTPUT);
  EXPECT_EQ(info[0].formats, (1u << VIRTIO_SND_PCM_FMT_S16) | (1u << VIRTIO_SND_PCM_FMT_S32));
  EXPECT_EQ(info[0].rates, (1u << VIRTIO_SND_PCM_RATE_48000) | (1u << VIRTIO_SND_PCM_RATE_44100));
  EXPECT_EQ(info[1].direction, VIRTIO_SND_D_INPUT);
  EXPECT_EQ(info[1].channels_max, 1);
  EXPECT_EQ(info[2].channels_min, 6);
  EXPECT_EQ(info[2].formats, 1u << VIRTIO_SND_PCM_FMT_FLOAT);
  EXPECT_TRUE(session->daemon()->IsAlive());
}

}  // namespace
}  // namespace vhost
