// virtio-gpu on the wire (virtio 1.2/1.3, "GPU Device", device id 16): the request and response
// structures of the 2D commands and the cursor queue, their codes, the resource formats and the
// configuration space. Written here rather than taken from <linux/virtio_gpu.h> so that the
// names are ours (no clash with a system header that includes it) and the layout is checked.
// Every field is little-endian; the suite runs on little-endian hosts only.
#ifndef VHOST_USER_GPU_GPU_SPEC_H_
#define VHOST_USER_GPU_GPU_SPEC_H_

#include <cstdint>

#include "absl/strings/string_view.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio-gpu is little-endian");

namespace vhost::gpu {

inline constexpr uint32_t kVirtioIdGpu = 16;
inline constexpr int kControlQueue = 0;  // controlq
inline constexpr int kCursorQueue = 1;   // cursorq
inline constexpr uint32_t kMaxScanouts = 16;
inline constexpr uint32_t kMaxEdidSize = 1024;  // virtio_gpu_resp_edid's edid[]

// Feature bits (VIRTIO_GPU_F_*).
inline constexpr uint32_t kFeatureVirgl = 0;
inline constexpr uint32_t kFeatureEdid = 1;
inline constexpr uint32_t kFeatureResourceUuid = 2;
inline constexpr uint32_t kFeatureResourceBlob = 3;
inline constexpr uint32_t kFeatureContextInit = 4;

// Config space events (VIRTIO_GPU_EVENT_*).
inline constexpr uint32_t kEventDisplay = 1u << 0;

// Header flags (VIRTIO_GPU_FLAG_*).
inline constexpr uint32_t kFlagFence = 1u << 0;
inline constexpr uint32_t kFlagInfoRingIdx = 1u << 1;

// enum virtio_gpu_ctrl_type: commands and responses.
enum CtrlType : uint32_t {
  // 2D commands
  kCmdGetDisplayInfo = 0x0100,
  kCmdResourceCreate2d = 0x0101,
  kCmdResourceUnref = 0x0102,
  kCmdSetScanout = 0x0103,
  kCmdResourceFlush = 0x0104,
  kCmdTransferToHost2d = 0x0105,
  kCmdResourceAttachBacking = 0x0106,
  kCmdResourceDetachBacking = 0x0107,
  kCmdGetCapsetInfo = 0x0108,
  kCmdGetCapset = 0x0109,
  kCmdGetEdid = 0x010a,
  kCmdResourceAssignUuid = 0x010b,
  kCmdResourceCreateBlob = 0x010c,
  kCmdSetScanoutBlob = 0x010d,
  // 3D commands
  kCmdCtxCreate = 0x0200,
  kCmdCtxDestroy = 0x0201,
  kCmdCtxAttachResource = 0x0202,
  kCmdCtxDetachResource = 0x0203,
  kCmdResourceCreate3d = 0x0204,
  kCmdTransferToHost3d = 0x0205,
  kCmdTransferFromHost3d = 0x0206,
  kCmdSubmit3d = 0x0207,
  kCmdResourceMapBlob = 0x0208,
  kCmdResourceUnmapBlob = 0x0209,
  // cursor commands
  kCmdUpdateCursor = 0x0300,
  kCmdMoveCursor = 0x0301,
  // success responses
  kRespOkNodata = 0x1100,
  kRespOkDisplayInfo = 0x1101,
  kRespOkCapsetInfo = 0x1102,
  kRespOkCapset = 0x1103,
  kRespOkEdid = 0x1104,
  kRespOkResourceUuid = 0x1105,
  kRespOkMapInfo = 0x1106,
  // error responses
  kRespErrUnspec = 0x1200,
  kRespErrOutOfMemory = 0x1201,
  kRespErrInvalidScanoutId = 0x1202,
  kRespErrInvalidResourceId = 0x1203,
  kRespErrInvalidContextId = 0x1204,
  kRespErrInvalidParameter = 0x1205,
};

// enum virtio_gpu_formats: the names give the byte order in memory (B8G8R8A8: B first).
enum Format : uint32_t {
  kFormatB8G8R8A8 = 1,
  kFormatB8G8R8X8 = 2,
  kFormatA8R8G8B8 = 3,
  kFormatX8R8G8B8 = 4,
  kFormatR8G8B8A8 = 67,
  kFormatX8B8G8R8 = 68,
  kFormatA8B8G8R8 = 121,
  kFormatR8G8B8X8 = 134,
};

// struct virtio_gpu_ctrl_hdr: starts every request and response.
struct CtrlHdr {
  uint32_t type;
  uint32_t flags;
  uint64_t fence_id;
  uint32_t ctx_id;
  uint8_t ring_idx;
  uint8_t padding[3];
};

// struct virtio_gpu_rect.
struct GpuRect {
  uint32_t x;
  uint32_t y;
  uint32_t width;
  uint32_t height;
};

// GET_DISPLAY_INFO's answer: struct virtio_gpu_resp_display_info.
struct DisplayOne {
  GpuRect r;
  uint32_t enabled;
  uint32_t flags;
};
struct RespDisplayInfo {
  CtrlHdr hdr;
  DisplayOne pmodes[kMaxScanouts];
};

// struct virtio_gpu_get_edid and struct virtio_gpu_resp_edid.
struct GetEdid {
  CtrlHdr hdr;
  uint32_t scanout;
  uint32_t padding;
};
struct RespEdid {
  CtrlHdr hdr;
  uint32_t size;
  uint32_t padding;
  uint8_t edid[kMaxEdidSize];
};

// struct virtio_gpu_resource_create_2d.
struct ResourceCreate2d {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t format;
  uint32_t width;
  uint32_t height;
};

// struct virtio_gpu_resource_unref; RESOURCE_DETACH_BACKING has the same layout.
struct ResourceUnref {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t padding;
};
using ResourceDetachBacking = ResourceUnref;

// struct virtio_gpu_set_scanout.
struct SetScanout {
  CtrlHdr hdr;
  GpuRect r;
  uint32_t scanout_id;
  uint32_t resource_id;
};

// struct virtio_gpu_resource_flush.
struct ResourceFlush {
  CtrlHdr hdr;
  GpuRect r;
  uint32_t resource_id;
  uint32_t padding;
};

// struct virtio_gpu_transfer_to_host_2d: `offset` is where the rect's first pixel lies in the
// backing; rows follow each other a resource's row (width * 4 bytes) apart.
struct TransferToHost2d {
  CtrlHdr hdr;
  GpuRect r;
  uint64_t offset;
  uint32_t resource_id;
  uint32_t padding;
};

// struct virtio_gpu_resource_attach_backing, followed by nr_entries struct virtio_gpu_mem_entry.
struct ResourceAttachBacking {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t nr_entries;
};
struct MemEntry {
  uint64_t addr;
  uint32_t length;
  uint32_t padding;
};

// The cursor queue's one request: struct virtio_gpu_update_cursor (MOVE_CURSOR uses pos only).
struct CursorPos {
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
  uint32_t padding;
};
struct UpdateCursor {
  CtrlHdr hdr;
  CursorPos pos;
  uint32_t resource_id;
  uint32_t hot_x;
  uint32_t hot_y;
  uint32_t padding;
};

// struct virtio_gpu_config.
struct GpuConfig {
  uint32_t events_read;
  uint32_t events_clear;
  uint32_t num_scanouts;
  uint32_t num_capsets;
};

// 3D (VIRTIO_GPU_F_VIRGL). Capset ids: VIRTIO_GPU_CAPSET_VIRGL and _VIRGL2.
inline constexpr uint32_t kCapsetVirgl = 1;
inline constexpr uint32_t kCapsetVirgl2 = 2;

// struct virtio_gpu_get_capset_info and its answer.
struct GetCapsetInfo {
  CtrlHdr hdr;
  uint32_t capset_index;
  uint32_t padding;
};
struct RespCapsetInfo {
  CtrlHdr hdr;
  uint32_t capset_id;
  uint32_t capset_max_version;
  uint32_t capset_max_size;
  uint32_t padding;
};

// struct virtio_gpu_get_capset; the answer is a CtrlHdr followed by the capset's bytes.
struct GetCapset {
  CtrlHdr hdr;
  uint32_t capset_id;
  uint32_t capset_version;
};

// struct virtio_gpu_ctx_create: the context is hdr.ctx_id.
struct CtxCreate {
  CtrlHdr hdr;
  uint32_t nlen;
  uint32_t context_init;
  char debug_name[64];
};

// struct virtio_gpu_ctx_resource (CTX_ATTACH_RESOURCE, CTX_DETACH_RESOURCE).
struct CtxResource {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t padding;
};

// struct virtio_gpu_resource_create_3d: Gallium's target, format and bind flags.
struct ResourceCreate3d {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t target;
  uint32_t format;
  uint32_t bind;
  uint32_t width;
  uint32_t height;
  uint32_t depth;
  uint32_t array_size;
  uint32_t last_level;
  uint32_t nr_samples;
  uint32_t flags;
  uint32_t padding;
};

// struct virtio_gpu_box and struct virtio_gpu_transfer_host_3d (TRANSFER_TO/FROM_HOST_3D).
struct GpuBox {
  uint32_t x, y, z;
  uint32_t w, h, d;
};
struct Transfer3d {
  CtrlHdr hdr;
  GpuBox box;
  uint64_t offset;
  uint32_t resource_id;
  uint32_t level;
  uint32_t stride;
  uint32_t layer_stride;
};

// struct virtio_gpu_cmd_submit, followed by `size` bytes of the context's command stream.
struct CmdSubmit {
  CtrlHdr hdr;
  uint32_t size;
  uint32_t num_in_fences;
};

static_assert(sizeof(CtrlHdr) == 24);
static_assert(sizeof(GpuRect) == 16);
static_assert(sizeof(DisplayOne) == 24);
static_assert(sizeof(RespDisplayInfo) == 24 + 16 * 24);
static_assert(sizeof(GetEdid) == 32);
static_assert(sizeof(RespEdid) == 32 + 1024);
static_assert(sizeof(ResourceCreate2d) == 40);
static_assert(sizeof(ResourceUnref) == 32);
static_assert(sizeof(SetScanout) == 48);
static_assert(sizeof(ResourceFlush) == 48);
static_assert(sizeof(TransferToHost2d) == 56);
static_assert(sizeof(ResourceAttachBacking) == 32);
static_assert(sizeof(MemEntry) == 16);
static_assert(sizeof(CursorPos) == 16);
static_assert(sizeof(UpdateCursor) == 56);
static_assert(sizeof(GpuConfig) == 16);
static_assert(sizeof(GetCapsetInfo) == 32);
static_assert(sizeof(RespCapsetInfo) == 40);
static_assert(sizeof(GetCapset) == 32);
static_assert(sizeof(CtxCreate) == 96);
static_assert(sizeof(CtxResource) == 32);
static_assert(sizeof(ResourceCreate3d) == 72);
static_assert(sizeof(GpuBox) == 24);
static_assert(sizeof(Transfer3d) == 72);
static_assert(sizeof(CmdSubmit) == 32);

// "GET_DISPLAY_INFO", "RESP_OK_NODATA", "ERR_INVALID_PARAMETER", ... for logs and test messages;
// "?" for a code the spec does not define.
absl::string_view CtrlTypeName(uint32_t type);
// "B8G8R8A8", ...; "?" for a format the spec does not define.
absl::string_view FormatName(uint32_t format);

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_GPU_SPEC_H_
