// virtio-gpu in 2D mode (virtio 1.2 "GPU Device", device id 16) with no host GPU: resources are
// host copies of the guest's images (resource_table), filled by TRANSFER_TO_HOST_2D from guest
// memory and shown on RESOURCE_FLUSH through a DisplaySink (display_sink.h) as x8r8g8b8
// (pixel_format). The control queue (0) takes the 2D commands, the cursor queue (1) the cursor
// ones. Offers VIRTIO_GPU_F_EDID (own EDIDs from edid.h unless the display end has its own).
//
// Responses: every 2D command completes before its response is written, so a fenced command
// (VIRTIO_GPU_FLAG_FENCE) is done when its response arrives, which echoes the flag, fence_id and
// the timeline it belongs to (ctx_id, and ring_idx with VIRTIO_GPU_FLAG_INFO_RING_IDX). Errors:
//   ERR_UNSPEC              a short request, an unknown command or one of the wrong queue, a
//                           response buffer too small for the answer (the command is not run),
//                           GET_EDID without F_EDID, a backing missing/already attached/gone
//   ERR_OUT_OF_MEMORY       a resource cap (count, host bytes, backing entries or length)
//   ERR_INVALID_SCANOUT_ID  a scanout id >= the number of outputs
//   ERR_INVALID_RESOURCE_ID no such resource; at creation, id 0 or one in use
//   ERR_INVALID_CONTEXT_ID  a 3D command naming a context (a 2D device has none)
//   ERR_INVALID_PARAMETER   a format, size, rect, offset or backing entry that does not fit
//
// 3D (with a Renderer3d, GpuOptions::renderer): offers VIRTIO_GPU_F_VIRGL and the renderer's
// capsets, and serves the 3D commands (gpu_device_3d.cc): contexts, 3D resources, transfers,
// SUBMIT_3D. 2D resources stay in the resource table; a resource id belongs to one or the
// other, and the commands common to both (UNREF, ATTACH/DETACH_BACKING, SET_SCANOUT,
// RESOURCE_FLUSH, UPDATE_CURSOR) go where the id is. A 3D resource on a scanout is read back
// from the renderer when flushed. A fenced command that succeeds is answered once the renderer
// signals the fence created after it (the GL work before it is done), not at once.
//
// Threads: the queues' workers, and the connection thread (config, SetSink, Reset), share the
// resources, scanouts and sink under one mutex; the sink is called with it held, so its calls
// never overlap.
#ifndef VHOST_USER_GPU_GPU_DEVICE_H_
#define VHOST_USER_GPU_GPU_DEVICE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/device/device.h"
#include "common/virtio/chain_cursor.h"
#include "vhost-user-gpu/display_sink.h"
#include "vhost-user-gpu/gpu_spec.h"
#include "vhost-user-gpu/renderer_3d.h"
#include "vhost-user-gpu/resource_table.h"

namespace vhost::gpu {

struct GpuOptions {
  uint32_t outputs = 1;  // scanouts, 1..kMaxScanouts
  // What GET_DISPLAY_INFO reports for a scanout the display end says nothing about (and the
  // size of the EDID it gets then); at most kEdidMaxDimension each way.
  uint32_t width = 1280;
  uint32_t height = 800;
  // Caps on the guest's resources; 2D and 3D resources count against them separately.
  ResourceTable::Limits limits;
  std::string monitor_name = "vhost-gpu";  // in the EDIDs the device makes
  // 3D: the renderer (outlives the device), or null for a 2D device.
  Renderer3d* renderer = nullptr;
  uint32_t max_contexts = 256;  // 3D rendering contexts at once
};

class GpuDevice : public VirtioDevice {
 public:
  // `sink` (may be null: nothing is shown until SetSink) outlives its use: see SetSink.
  // InvalidArgumentError for a bad number of outputs or default size.
  static absl::StatusOr<std::unique_ptr<GpuDevice>> Create(const GpuOptions& options,
                                                           DisplaySink* sink);

  DeviceInfo Info() const override;
  absl::Status SetFeatures(uint64_t features) override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  // Only events_clear is writable: its 1 bits clear those of events_read.
  absl::Status WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override;
  absl::Status QueueStarted(QueueContext& context) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  // Answers the fenced commands still waiting (after the renderer had a moment to finish).
  void QueueStopped(QueueContext& context) override;
  // Hands the socket to the handler the daemon set (which makes a sink of it and calls
  // SetSink); UnimplementedError without one.
  absl::Status SetDisplaySocket(UniqueFd socket) override;
  // Frees every resource, disables the scanouts (telling the sink) and hides the cursors.
  void Reset() override;

  // Shows the scanouts on `sink` from now on (null: on nothing). The new sink is told every
  // enabled scanout's size and contents and every visible cursor before the next command is
  // served (on that queue's thread, never on the caller's). Called from the connection thread;
  // when it returns, no queue uses the previous sink any more (it may be destroyed).
  void SetSink(DisplaySink* sink);
  // The display end's configuration changed (a window resized): sets VIRTIO_GPU_EVENT_DISPLAY
  // in events_read and tells the front end the config changed, so the guest asks again.
  void DisplayChanged();

  using DisplaySocketHandler = std::function<absl::Status(UniqueFd socket)>;
  // Set before the device serves (not synchronized).
  void set_display_socket_handler(DisplaySocketHandler handler) {
    display_socket_handler_ = std::move(handler);
  }

  // For tests and logs: 2D and 3D resources, their host memory, live 3D contexts.
  size_t resource_count() const;
  uint64_t host_bytes() const;
  size_t context_count() const;

 private:
  struct Scanout {
    uint32_t resource_id = 0;  // 0: disabled
    GpuRect rect{};            // the part of the resource shown
    uint32_t width = 0;        // the size the sink was told last (0 x 0: disabled)
    uint32_t height = 0;
  };
  struct Cursor {
    bool visible = false;
    uint32_t x = 0, y = 0, hot_x = 0, hot_y = 0;
    std::vector<uint32_t> argb;  // kCursorSize * kCursorSize when visible
  };
  struct Preferred {  // what GET_DISPLAY_INFO last reported for a scanout
    bool enabled = true;
    uint32_t width = 0, height = 0;
  };

  struct Resource3d {
    uint32_t width = 0, height = 0;  // as created (what scanouts and cursors check against)
    uint64_t host_bytes = 0;         // the estimate counted against the limits
    // The table the backing's host pointers were translated through: kept so they stay mapped.
    std::shared_ptr<const GuestMemory> backing_memory;
  };
  // A successful fenced 3D command whose answer (already written) waits for its fence.
  struct FencedAnswer {
    ChainToken token;
    uint32_t written;
    uint32_t fence;
  };
  struct Served {
    uint32_t written = 0;
    bool wait_for_fence = false;
  };

  GpuDevice(const GpuOptions& options, DisplaySink* sink);

  // Serves one chain of the control or cursor queue.
  Served Serve(const DescriptorChain& chain, const std::shared_ptr<const GuestMemory>& memory,
               bool cursor_queue);
  // Writes a control command's answer; returns its response type.
  uint32_t ServeControl(const CtrlHdr& hdr, const DescriptorChain& chain,
                        const std::shared_ptr<const GuestMemory>& memory, ChainWriter& writer);
  // The commands without payload in their answer; each returns the response type.
  uint32_t Control(const CtrlHdr& hdr, const DescriptorChain& chain,
                   const std::shared_ptr<const GuestMemory>& memory);
  uint32_t CursorCommand(const CtrlHdr& hdr, const DescriptorChain& chain);
  uint32_t CreateResource(const ResourceCreate2d& request);
  uint32_t UnrefResource(const ResourceUnref& request);
  uint32_t AttachBacking(const CtrlHdr& hdr, const DescriptorChain& chain,
                         const GuestMemory& memory);
  uint32_t SetScanoutCommand(const SetScanout& request);
  uint32_t Flush(const ResourceFlush& request);
  uint32_t UpdateCursorCommand(const UpdateCursor& request);
  void FillDisplayInfo(RespDisplayInfo* response);
  uint32_t FillEdid(const GetEdid& request, RespEdid* response);

  // 3D (gpu_device_3d.cc). A command for the 3D half: its response type; nullopt for one
  // that is not (a 2D command on a 2D resource), which the 2D half then serves.
  absl::optional<uint32_t> Control3d(const CtrlHdr& hdr, const DescriptorChain& chain,
                                     const std::shared_ptr<const GuestMemory>& memory);
  uint32_t CapsetInfo(const CtrlHdr& hdr, const DescriptorChain& chain, ChainWriter& writer);
  uint32_t Capset(const CtrlHdr& hdr, const DescriptorChain& chain, ChainWriter& writer);
  uint32_t CreateContext(const CtxCreate& request);
  uint32_t CreateResource3d(const ResourceCreate3d& request);
  uint32_t AttachBacking3d(const CtrlHdr& hdr, const DescriptorChain& chain,
                           const std::shared_ptr<const GuestMemory>& memory);
  uint32_t Transfer3dCommand(const CtrlHdr& hdr, const Transfer3d& request);
  uint32_t Submit3d(const CtrlHdr& hdr, const DescriptorChain& chain);
  uint32_t SetScanout3d(const SetScanout& request);
  uint32_t Flush3d(const ResourceFlush& request);
  // Reads `rect` of 3D resource `resource_id` back and shows it on scanout `id` (whose rect
  // holds it); the response type.
  uint32_t ShowRect3d(uint32_t id, uint32_t resource_id, const GpuRect& rect);
  // Reads a 3D cursor image into readback_ and its format into `format`; the response type.
  uint32_t ReadCursor3d(uint32_t resource_id, uint32_t* format);
  void Unref3d(uint32_t resource_id);
  // Answers the fenced commands whose fence the renderer signalled (all, with `all`).
  void AnswerFenced(QueueContext& context, bool all);
  void Reset3d();

  // Sends the part `rect` (resource coordinates, within the scanout's rect) of scanout `id`.
  void ShowRect(uint32_t id, const Resource2d& resource, const GpuRect& rect);
  // The same from pixels of `format` at `src` (the rect's first pixel), rows `src_stride` apart.
  void ShowPixels(uint32_t id, uint32_t format, const uint8_t* src, size_t src_stride,
                  const GpuRect& rect);
  void SetScanoutSize(uint32_t id, uint32_t width, uint32_t height);
  void DisableScanout(uint32_t id);
  void SinkError(const absl::Status& status, const char* what);
  // Tells the sink what every scanout and cursor shows (after SetSink).
  void ReplayToSink();

  const uint32_t outputs_;
  const uint32_t default_width_;
  const uint32_t default_height_;
  const std::string monitor_name_;
  DisplaySocketHandler display_socket_handler_;

  mutable std::mutex mu_;
  DisplaySink* sink_;
  bool replay_pending_ = false;  // the sink has not been told what is shown yet
  uint64_t features_ = 0;
  uint32_t events_read_ = 0;
  ResourceTable resources_;
  std::vector<Scanout> scanouts_;
  std::vector<Cursor> cursors_;
  std::vector<Preferred> preferred_;
  std::vector<uint8_t> frame_;  // scratch: a flushed rect in x8r8g8b8

  // 3D: null on a 2D device.
  Renderer3d* const renderer_;
  const uint32_t max_contexts_;
  std::set<uint32_t> contexts_;
  std::map<uint32_t, Resource3d> resources_3d_;
  uint64_t host_bytes_3d_ = 0;
  std::vector<uint8_t> readback_;    // scratch: a 3D resource's pixels read for a scanout
  std::deque<FencedAnswer> fenced_;  // the control queue's, in order of their fences
  uint32_t last_fence_ = 0;          // the last fence created
};

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_GPU_DEVICE_H_
