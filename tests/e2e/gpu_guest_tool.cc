// Runs inside the test guest on Linux's virtio_gpu driver (raw DRM ioctls, no libdrm), against
// a vhost-user-gpu back end.
//
//   gpu_guest_tool edid PATH   checks the EDID in PATH (a connector's sysfs edid): the fixed
//                              header and the base block's checksum; prints the preferred mode
//                              (the first detailed timing descriptor)
//   gpu_guest_tool show        on /dev/dri/card0: the first connected connector's preferred mode
//                              on a CRTC it can use, a dumb buffer with the test pattern (see
//                              Pattern) but its box, set with SETCRTC and flushed whole with
//                              DIRTYFB; a 64x64 ARGB cursor (CURSOR2: image, hotspot,
//                              position); the box drawn and flushed alone (DIRTYFB with its
//                              clip); a second cursor image, then a move; says "E2E-READY
//                              frame" and keeps all of it on screen until a line arrives on
//                              stdin (closing the device would hand the CRTC back to the
//                              kernel's fbdev console, which redraws it); then changes the
//                              resolution: the first smaller mode of the connector on a new
//                              buffer with the whole pattern (box included), set and flushed,
//                              says "E2E-READY frame" again and waits for another line
// Results are "E2E-RESULT name=value" lines.
#include <fcntl.h>
#include <libdrm/drm.h>
#include <libdrm/drm_mode.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

// The box: a cyan rectangle in the bottom-right quadrant, drawn and flushed after the rest.
constexpr uint32_t kBoxW = 40, kBoxH = 24;
uint32_t BoxX(uint32_t w) { return w / 2 + 20; }
uint32_t BoxY(uint32_t h) { return h / 2 + 12; }
bool InBox(uint32_t x, uint32_t y, uint32_t w, uint32_t h) {
  return x >= BoxX(w) && x < BoxX(w) + kBoxW && y >= BoxY(h) && y < BoxY(h) + kBoxH;
}

// The test pattern, XRGB8888, for a WxH mode (gpu_e2e_test.py computes the same): four
// quadrants (red, green / blue, a white and grey checkerboard of 8-pixel cells), a yellow
// marker near the top-left corner, so a flip, an offset or a wrong stride shows, and the box.
uint32_t Pattern(uint32_t x, uint32_t y, uint32_t w, uint32_t h, bool box) {
  if (box && InBox(x, y, w, h)) return 0x00ffff;
  if (x >= 16 && x < 80 && y >= 16 && y < 48) return 0xffff00;
  const bool left = x < w / 2, top = y < h / 2;
  if (top) return left ? 0xff0000 : 0x00ff00;
  if (left) return 0x0000ff;
  return (((x >> 3) ^ (y >> 3)) & 1) ? 0xffffff : 0x808080;
}

// The cursor image, ARGB8888: every pixel differs (red and green from the position, alpha from
// the diagonal), so whoever sees it can check it pixel for pixel.
uint32_t CursorPixel(uint32_t x, uint32_t y) {
  const uint32_t alpha = x + y < 64 ? 0xff : (x + y < 96 ? 0x80 : 0x00);
  return alpha << 24 | (x * 4) << 16 | (y * 4) << 8 | 0x40;
}

constexpr uint32_t kCursorSize = 64;
constexpr uint32_t kHotX = 5, kHotY = 7;
constexpr int32_t kCursorX = 100, kCursorY = 120, kMovedX = 300, kMovedY = 200;

[[noreturn]] void Fail(const char* what) {
  std::printf("E2E-RESULT error=%s: %s\n", what, std::strerror(errno));
  std::fflush(stdout);
  std::exit(1);
}

void Ioctl(int fd, unsigned long request, void* arg, const char* what) {
  int r;
  do {
    r = ioctl(fd, request, arg);
  } while (r == -1 && (errno == EINTR || errno == EAGAIN));
  if (r != 0) Fail(what);
}

template <typename T>
uint64_t Ptr(std::vector<T>& v) {
  return reinterpret_cast<uintptr_t>(v.data());
}

int Edid(const char* path) {
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) Fail("open edid");
  uint8_t edid[256];
  const size_t n = std::fread(edid, 1, sizeof(edid), f);
  std::fclose(f);
  std::printf("E2E-RESULT edid_bytes=%zu\n", n);
  if (n < 128) return 1;
  static const uint8_t kHeader[8] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
  const bool header = std::memcmp(edid, kHeader, 8) == 0;
  uint8_t sum = 0;
  for (int i = 0; i < 128; ++i) sum += edid[i];
  std::printf("E2E-RESULT edid_header=%s\n", header ? "ok" : "bad");
  std::printf("E2E-RESULT edid_checksum=%s\n", sum == 0 ? "ok" : "bad");
  // The first detailed timing descriptor (bytes 54..71) is the preferred timing (EDID 1.3+);
  // a zero pixel clock would mean a display descriptor instead.
  const uint8_t* d = edid + 54;
  const unsigned clock = d[0] | d[1] << 8;
  const unsigned hactive = d[2] | (d[4] >> 4) << 8;
  const unsigned vactive = d[5] | (d[7] >> 4) << 8;
  if (clock == 0) {
    std::printf("E2E-RESULT edid_preferred=none\n");
  } else {
    std::printf("E2E-RESULT edid_preferred=%ux%u\n", hactive, vactive);
  }
  return header && sum == 0 && clock != 0 ? 0 : 1;
}

struct Dumb {
  uint32_t handle = 0, pitch = 0;
  uint64_t size = 0;
  uint8_t* map = nullptr;
};

Dumb CreateDumb(int fd, uint32_t width, uint32_t height) {
  drm_mode_create_dumb create{};
  create.width = width;
  create.height = height;
  create.bpp = 32;
  Ioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &create, "CREATE_DUMB");
  drm_mode_map_dumb map{};
  map.handle = create.handle;
  Ioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &map, "MAP_DUMB");
  void* p = mmap(nullptr, create.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, map.offset);
  if (p == MAP_FAILED) Fail("mmap dumb");
  Dumb dumb;
  dumb.handle = create.handle;
  dumb.pitch = create.pitch;
  dumb.size = create.size;
  dumb.map = static_cast<uint8_t*>(p);
  return dumb;
}

void Put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }  // the guest is little-endian

// Sets a new 64x64 cursor image (variant 0 or 1 of CursorPixel) with the hotspot, at x,y.
void SetCursor(int fd, uint32_t crtc_id, uint32_t variant, int32_t x, int32_t y) {
  const Dumb cursor = CreateDumb(fd, kCursorSize, kCursorSize);
  for (uint32_t cy = 0; cy < kCursorSize; ++cy) {
    for (uint32_t cx = 0; cx < kCursorSize; ++cx) {
      Put32(cursor.map + cy * cursor.pitch + cx * 4, CursorPixel(cx, cy) ^ variant * 0xffffff);
    }
  }
  drm_mode_cursor2 cur{};
  cur.flags = DRM_MODE_CURSOR_BO | DRM_MODE_CURSOR_MOVE;
  cur.crtc_id = crtc_id;
  cur.x = x;
  cur.y = y;
  cur.width = kCursorSize;
  cur.height = kCursorSize;
  cur.handle = cursor.handle;
  cur.hot_x = kHotX;
  cur.hot_y = kHotY;
  Ioctl(fd, DRM_IOCTL_MODE_CURSOR2, &cur, "CURSOR2 set");
}

// A dumb buffer of `mode`'s size holding the pattern (with its box or not), made a
// framebuffer, set with `mode` on the CRTC for the connector, and flushed whole: DIRTYFB
// without clips, so the driver transfers and flushes all of it.
struct Shown {
  Dumb buffer;
  uint32_t fb_id = 0;
};
Shown ShowPattern(int fd, uint32_t crtc_id, uint32_t connector_id, const drm_mode_modeinfo& mode,
                  bool box) {
  const uint32_t w = mode.hdisplay, h = mode.vdisplay;
  Shown shown{CreateDumb(fd, w, h)};
  for (uint32_t y = 0; y < h; ++y) {
    for (uint32_t x = 0; x < w; ++x) {
      Put32(shown.buffer.map + y * shown.buffer.pitch + x * 4, Pattern(x, y, w, h, box));
    }
  }
  drm_mode_fb_cmd fb{};
  fb.width = w;
  fb.height = h;
  fb.pitch = shown.buffer.pitch;
  fb.bpp = 32;
  fb.depth = 24;
  fb.handle = shown.buffer.handle;
  Ioctl(fd, DRM_IOCTL_MODE_ADDFB, &fb, "ADDFB");
  shown.fb_id = fb.fb_id;
  drm_mode_crtc set{};
  set.crtc_id = crtc_id;
  set.fb_id = fb.fb_id;
  set.set_connectors_ptr = reinterpret_cast<uintptr_t>(&connector_id);
  set.count_connectors = 1;
  set.mode = mode;
  set.mode_valid = 1;
  Ioctl(fd, DRM_IOCTL_MODE_SETCRTC, &set, "SETCRTC");
  drm_mode_fb_dirty_cmd dirty{};
  dirty.fb_id = fb.fb_id;
  Ioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &dirty, "DIRTYFB");
  return shown;
}

// Says the frame is on screen and keeps it there until the host types a line: whether it did.
bool WaitForHost(uint32_t w, uint32_t h) {
  std::printf("E2E-READY frame %ux%u\n", w, h);
  std::fflush(stdout);
  char line[64];
  const bool answered = std::fgets(line, sizeof(line), stdin) != nullptr;
  std::printf("E2E-RESULT released=%s\n", answered ? "host" : "eof");
  return answered;
}

int Show() {
  const int fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
  if (fd < 0) Fail("open /dev/dri/card0");

  // Resources, connectors and their modes: each query twice (counts, then arrays).
  drm_mode_card_res res{};
  Ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res, "GETRESOURCES");
  std::vector<uint32_t> fbs(res.count_fbs + 1), crtcs(res.count_crtcs + 1),
      connectors(res.count_connectors + 1), encoders(res.count_encoders + 1);
  res.fb_id_ptr = Ptr(fbs);
  res.crtc_id_ptr = Ptr(crtcs);
  res.connector_id_ptr = Ptr(connectors);
  res.encoder_id_ptr = Ptr(encoders);
  Ioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res, "GETRESOURCES");
  std::printf("E2E-RESULT resources=crtcs:%u,connectors:%u,encoders:%u\n", res.count_crtcs,
              res.count_connectors, res.count_encoders);

  uint32_t connector_id = 0, crtc_id = 0;
  drm_mode_modeinfo mode{};
  std::vector<drm_mode_modeinfo> connector_modes;  // the chosen connector's
  for (uint32_t c = 0; c < res.count_connectors && connector_id == 0; ++c) {
    drm_mode_get_connector conn{};
    conn.connector_id = connectors[c];
    Ioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn, "GETCONNECTOR");  // probes: fills the modes
    std::vector<drm_mode_modeinfo> modes(conn.count_modes + 1);
    std::vector<uint32_t> conn_encoders(conn.count_encoders + 1);
    std::vector<uint32_t> props(conn.count_props + 1);
    std::vector<uint64_t> values(conn.count_props + 1);
    conn.modes_ptr = Ptr(modes);
    conn.encoders_ptr = Ptr(conn_encoders);
    conn.props_ptr = Ptr(props);
    conn.prop_values_ptr = Ptr(values);
    Ioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn, "GETCONNECTOR");
    if (conn.connection != 1 || conn.count_modes == 0) continue;  // 1: DRM_MODE_CONNECTED
    mode = modes[0];
    for (uint32_t m = 0; m < conn.count_modes; ++m) {
      if (modes[m].type & DRM_MODE_TYPE_PREFERRED) {
        mode = modes[m];
        break;
      }
    }
    // A CRTC for it: its current encoder's, else the first one an encoder allows.
    for (uint32_t e = 0; e < conn.count_encoders && crtc_id == 0; ++e) {
      drm_mode_get_encoder enc{};
      enc.encoder_id = conn_encoders[e];
      Ioctl(fd, DRM_IOCTL_MODE_GETENCODER, &enc, "GETENCODER");
      if (enc.crtc_id != 0) {
        crtc_id = enc.crtc_id;
        break;
      }
      for (uint32_t i = 0; i < res.count_crtcs; ++i) {
        if (enc.possible_crtcs & (1u << i)) {
          crtc_id = crtcs[i];
          break;
        }
      }
    }
    if (crtc_id != 0) {
      connector_id = conn.connector_id;
      connector_modes.assign(modes.begin(), modes.begin() + conn.count_modes);
    }
    std::printf("E2E-RESULT drm_connector=%u connected modes=%u preferred=%s\n", conn.connector_id,
                conn.count_modes, mode.name);
  }
  if (connector_id == 0) {
    std::printf("E2E-RESULT error=no connected connector with a CRTC\n");
    return 1;
  }
  const uint32_t w = mode.hdisplay, h = mode.vdisplay;
  std::printf("E2E-RESULT mode=%ux%u\n", w, h);

  // The frame: the pattern without its box, set and flushed whole.
  const Shown frame = ShowPattern(fd, crtc_id, connector_id, mode, false);
  std::printf("E2E-RESULT frame=set crtc=%u fb=%u pitch=%u\n", crtc_id, frame.fb_id,
              frame.buffer.pitch);

  // A cursor: its image is a dumb buffer; virtio_gpu transfers a new cursor image with a
  // fence and waits for the answer, on the control queue behind the frame's transfer and flush
  // (which have none), so once this returns the back end has dealt with those too (if it
  // answers in order): the box below cannot slip into the frame's transfer.
  SetCursor(fd, crtc_id, 0, kCursorX, kCursorY);
  std::printf("E2E-RESULT cursor=set %ux%u at %d,%d hot %u,%u\n", kCursorSize, kCursorSize,
              kCursorX, kCursorY, kHotX, kHotY);

  // The box alone: the driver transfers just its rectangle (an offset into the buffer) and
  // flushes just that.
  for (uint32_t y = BoxY(h); y < BoxY(h) + kBoxH; ++y) {
    for (uint32_t x = BoxX(w); x < BoxX(w) + kBoxW; ++x) {
      Put32(frame.buffer.map + y * frame.buffer.pitch + x * 4, Pattern(x, y, w, h, true));
    }
  }
  drm_mode_fb_dirty_cmd dirty{};
  dirty.fb_id = frame.fb_id;
  drm_clip_rect clip{};
  clip.x1 = static_cast<uint16_t>(BoxX(w));
  clip.y1 = static_cast<uint16_t>(BoxY(h));
  clip.x2 = static_cast<uint16_t>(BoxX(w) + kBoxW);
  clip.y2 = static_cast<uint16_t>(BoxY(h) + kBoxH);
  dirty.clips_ptr = reinterpret_cast<uintptr_t>(&clip);
  dirty.num_clips = 1;
  Ioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &dirty, "DIRTYFB box");
  std::printf("E2E-RESULT box=%u,%u %ux%u\n", BoxX(w), BoxY(h), kBoxW, kBoxH);

  // A second cursor image (the same barrier, now behind the box), then a move (MOVE_CURSOR).
  SetCursor(fd, crtc_id, 1, kCursorX, kCursorY);
  std::printf("E2E-RESULT cursor2=set\n");
  drm_mode_cursor move{};
  move.flags = DRM_MODE_CURSOR_MOVE;
  move.crtc_id = crtc_id;
  move.x = kMovedX;
  move.y = kMovedY;
  Ioctl(fd, DRM_IOCTL_MODE_CURSOR, &move, "CURSOR move");
  std::printf("E2E-RESULT cursor_moved=%d,%d\n", kMovedX, kMovedY);

  if (!WaitForHost(w, h)) return 1;

  // The guest changes the resolution: the first smaller mode, on a new buffer.
  const drm_mode_modeinfo* smaller = nullptr;
  for (const drm_mode_modeinfo& m : connector_modes) {
    if (m.hdisplay <= w && m.vdisplay <= h && (m.hdisplay != w || m.vdisplay != h)) {
      smaller = &m;
      break;
    }
  }
  if (smaller == nullptr) {
    std::printf("E2E-RESULT error=no mode smaller than %ux%u\n", w, h);
    return 1;
  }
  const uint32_t w2 = smaller->hdisplay, h2 = smaller->vdisplay;
  ShowPattern(fd, crtc_id, connector_id, *smaller, true);
  // The same barrier as above: the cursor's fenced transfer comes back after the new frame's.
  SetCursor(fd, crtc_id, 0, kCursorX, kCursorY);
  std::printf("E2E-RESULT mode2=%ux%u\n", w2, h2);
  return WaitForHost(w2, h2) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc == 3 && std::strcmp(argv[1], "edid") == 0) return Edid(argv[2]);
  if (argc == 2 && std::strcmp(argv[1], "show") == 0) return Show();
  std::fprintf(stderr, "usage: %s edid PATH | show\n", argv[0]);
  return 2;
}
