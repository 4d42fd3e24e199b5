// The wire layout as the spec gives it (sizes and field offsets a guest relies on), the codes'
// values and their names.
#include "vhost-user-gpu/gpu_spec.h"

#include <cstddef>

#include "gtest/gtest.h"

namespace vhost::gpu {
namespace {

TEST(GpuSpecTest, StructureSizes) {
  EXPECT_EQ(sizeof(CtrlHdr), 24u);
  EXPECT_EQ(sizeof(GpuRect), 16u);
  EXPECT_EQ(sizeof(RespDisplayInfo), 408u);
  EXPECT_EQ(sizeof(GetEdid), 32u);
  EXPECT_EQ(sizeof(RespEdid), 1056u);
  EXPECT_EQ(sizeof(ResourceCreate2d), 40u);
  EXPECT_EQ(sizeof(ResourceUnref), 32u);
  EXPECT_EQ(sizeof(ResourceDetachBacking), 32u);
  EXPECT_EQ(sizeof(SetScanout), 48u);
  EXPECT_EQ(sizeof(ResourceFlush), 48u);
  EXPECT_EQ(sizeof(TransferToHost2d), 56u);
  EXPECT_EQ(sizeof(ResourceAttachBacking), 32u);
  EXPECT_EQ(sizeof(MemEntry), 16u);
  EXPECT_EQ(sizeof(CursorPos), 16u);
  EXPECT_EQ(sizeof(UpdateCursor), 56u);
  EXPECT_EQ(sizeof(GpuConfig), 16u);
}

TEST(GpuSpecTest, FieldOffsets) {
  EXPECT_EQ(offsetof(CtrlHdr, fence_id), 8u);
  EXPECT_EQ(offsetof(CtrlHdr, ctx_id), 16u);
  EXPECT_EQ(offsetof(CtrlHdr, ring_idx), 20u);
  EXPECT_EQ(offsetof(RespDisplayInfo, pmodes), 24u);
  EXPECT_EQ(offsetof(RespEdid, edid), 32u);
  EXPECT_EQ(offsetof(SetScanout, scanout_id), 40u);
  EXPECT_EQ(offsetof(TransferToHost2d, offset), 40u);
  EXPECT_EQ(offsetof(TransferToHost2d, resource_id), 48u);
  EXPECT_EQ(offsetof(ResourceAttachBacking, nr_entries), 28u);
  EXPECT_EQ(offsetof(UpdateCursor, resource_id), 40u);
  EXPECT_EQ(offsetof(UpdateCursor, hot_y), 48u);
  EXPECT_EQ(offsetof(GpuConfig, num_scanouts), 8u);
}

TEST(GpuSpecTest, CodesAndNames) {
  EXPECT_EQ(kCmdGetEdid, 0x010au);
  EXPECT_EQ(kCmdSetScanoutBlob, 0x010du);
  EXPECT_EQ(kCmdResourceUnmapBlob, 0x0209u);
  EXPECT_EQ(kCmdMoveCursor, 0x0301u);
  EXPECT_EQ(kRespOkMapInfo, 0x1106u);
  EXPECT_EQ(kRespErrInvalidParameter, 0x1205u);
  EXPECT_EQ(CtrlTypeName(kCmdTransferToHost2d), "TRANSFER_TO_HOST_2D");
  EXPECT_EQ(CtrlTypeName(kRespErrInvalidScanoutId), "ERR_INVALID_SCANOUT_ID");
  EXPECT_EQ(CtrlTypeName(kRespOkEdid), "RESP_OK_EDID");
  EXPECT_EQ(CtrlTypeName(0x0999), "?");
  EXPECT_EQ(FormatName(kFormatR8G8B8X8), "R8G8B8X8");
  EXPECT_EQ(FormatName(5), "?");
}

}  // namespace
}  // namespace vhost::gpu
