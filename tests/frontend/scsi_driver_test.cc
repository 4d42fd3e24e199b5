#include "tests/frontend/scsi_driver.h"

#include <cstring>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/chain_layout_test_base.h"

namespace vhost::frontend {
namespace {

using testing::DriverRing;
using testing::RingLayout;

TEST(ScsiDriverTest, LunFieldIsVirtioFlatFormat) {
  EXPECT_EQ(ScsiLunField(0, 0), (std::array<uint8_t, 8>{1, 0, 0x40, 0, 0, 0, 0, 0}));
  EXPECT_EQ(ScsiLunField(5, 300), (std::array<uint8_t, 8>{1, 5, 0x41, 0x2c, 0, 0, 0, 0}));
  EXPECT_EQ(ScsiLunField(255, 16383), (std::array<uint8_t, 8>{1, 255, 0x7f, 0xff, 0, 0, 0, 0}));
}

using ScsiChainTest = ChainLayoutTest;

TEST_F(ScsiChainTest, CommandIsHeaderDataOutThenResponseDataIn) {
  ASSERT_OK_AND_ASSIGN(ScsiCommand c, AllocateScsiCommand(ram_.get(), 1024, 4096));
  const uint8_t cdb[10] = {0x28, 0, 0, 0, 0, 7, 0, 0, 2, 0};
  SetScsiCdb(&c, 3, 9, cdb, /*tag=*/0x1122, VIRTIO_SCSI_S_ORDERED);
  EXPECT_EQ(std::memcmp(c.req->lun, ScsiLunField(3, 9).data(), 8), 0);
  EXPECT_EQ(c.req->tag, 0x1122u);
  EXPECT_EQ(c.req->task_attr, VIRTIO_SCSI_S_ORDERED);
  EXPECT_EQ(std::memcmp(c.req->cdb, cdb, sizeof(cdb)), 0);
  EXPECT_EQ(c.req->cdb[10], 0);       // zero-padded to the 32-byte field
  EXPECT_EQ(c.resp->response, 0xff);  // poisoned until the device answers

  ASSERT_OK_AND_ASSIGN(const uint16_t head, AddScsiCommand(ring_.get(), c));
  const std::vector<Desc> chain = Chain(head);
  ASSERT_EQ(chain.size(), 4u);
  EXPECT_EQ(chain[0].addr, c.req_gpa);
  EXPECT_EQ(chain[0].len, sizeof(virtio_scsi_cmd_req));
  EXPECT_EQ(chain[1].addr, c.data_out_gpa);
  EXPECT_EQ(chain[1].len, 1024u);
  EXPECT_EQ(chain[2].addr, c.resp_gpa);
  EXPECT_EQ(chain[2].len, sizeof(virtio_scsi_cmd_resp));
  EXPECT_EQ(chain[3].addr, c.data_in_gpa);
  EXPECT_EQ(chain[3].len, 4096u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(!!(chain[i].flags & kDescWrite), i >= 2) << i;

  // Shrunk for a hostile test: no data, a 4-byte response, no request header.
  c.data_out_len = 0;
  c.data_in_len = 0;
  c.req_len = 0;
  c.resp_len = 4;
  ASSERT_OK_AND_ASSIGN(const uint16_t bare, AddScsiCommand(ring_.get(), c));
  const std::vector<Desc> one = Chain(bare);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].len, 4u);
  EXPECT_TRUE(one[0].flags & kDescWrite);
}

// What a device writes is not trusted: a sense length or residual larger than the buffers is
// clamped to them.
TEST_F(ScsiChainTest, ResultIsReadWithinTheBuffers) {
  ASSERT_OK_AND_ASSIGN(ScsiCommand c, AllocateScsiCommand(ram_.get(), 0, 512));
  std::memset(c.data_in, 'd', 512);
  c.resp->response = VIRTIO_SCSI_S_OK;
  c.resp->status = 2;
  c.resp->sense_len = 18;
  c.resp->resid = 500;
  c.resp->sense[2] = 5;
  ScsiResult r = ReadScsiResult(c, 30);
  EXPECT_EQ(r.used_len, 30u);
  EXPECT_EQ(r.status, 2);
  ASSERT_EQ(r.sense.size(), 18u);
  EXPECT_EQ(r.sense[2], 5);
  EXPECT_EQ(r.data_in, std::string(12, 'd'));

  c.resp->sense_len = 100000;
  c.resp->resid = 100000;
  r = ReadScsiResult(c, 0);
  EXPECT_EQ(r.sense.size(), sizeof(c.resp->sense));
  EXPECT_EQ(r.data_in, "");
}

TEST_F(ScsiChainTest, ControlRequests) {
  ASSERT_OK_AND_ASSIGN(ScsiControl tmf,
                       AllocateScsiTmf(ram_.get(), VIRTIO_SCSI_T_TMF_ABORT_TASK, 1, 2, 77));
  virtio_scsi_ctrl_tmf_req req;
  std::memcpy(&req, tmf.req, sizeof(req));
  EXPECT_EQ(req.type, VIRTIO_SCSI_T_TMF);
  EXPECT_EQ(req.subtype, VIRTIO_SCSI_T_TMF_ABORT_TASK);
  EXPECT_EQ(std::memcmp(req.lun, ScsiLunField(1, 2).data(), 8), 0);
  EXPECT_EQ(req.tag, 77u);
  EXPECT_EQ(tmf.tmf_resp().response, 0xff);
  ASSERT_OK_AND_ASSIGN(const uint16_t head, AddScsiControl(ring_.get(), tmf));
  std::vector<Desc> chain = Chain(head);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].len, sizeof(virtio_scsi_ctrl_tmf_req));
  EXPECT_EQ(chain[1].len, sizeof(virtio_scsi_ctrl_tmf_resp));
  EXPECT_TRUE(chain[1].flags & kDescWrite);

  ASSERT_OK_AND_ASSIGN(ScsiControl an,
                       AllocateScsiAn(ram_.get(), VIRTIO_SCSI_T_AN_SUBSCRIBE, 0, 0, 0x14));
  virtio_scsi_ctrl_an_req an_req;
  std::memcpy(&an_req, an.req, sizeof(an_req));
  EXPECT_EQ(an_req.type, VIRTIO_SCSI_T_AN_SUBSCRIBE);
  EXPECT_EQ(an_req.event_requested, 0x14u);
  ASSERT_OK_AND_ASSIGN(const uint16_t an_head, AddScsiControl(ring_.get(), an));
  chain = Chain(an_head);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].len, sizeof(virtio_scsi_ctrl_an_req));
  EXPECT_EQ(chain[1].len, sizeof(virtio_scsi_ctrl_an_resp));
}

}  // namespace
}  // namespace vhost::frontend
