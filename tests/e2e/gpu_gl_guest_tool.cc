// gpu_gl_guest_tool: an OpenGL ES program for the guest of gpu_virgl_e2e_test. It renders with
// the guest's Mesa (its virgl driver, on virtio_gpu's 3D) into a GBM surface: four quadrants
// cleared red, green, blue and white, and a yellow square drawn by a shader in the middle.
// It reads pixels back through GL and prints what it got, then shows the frame on the
// connector (SETCRTC and a flush of the whole frame), says E2E-READY and waits for a line on
// stdin (the host's screendump) before it exits.
//
// Linked dynamically (Mesa loads its driver with dlopen): the guest runs it chrooted in the
// host's root, which it mounts read-only over 9p.
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <fcntl.h>
#include <gbm.h>
#include <unistd.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int Fail(const char* what) {
  std::printf("E2E-RESULT error=%s\n", what);
  std::fflush(stdout);
  return 1;
}

struct Output {
  uint32_t connector = 0;
  uint32_t crtc = 0;
  drmModeModeInfo mode{};
};

bool FindOutput(int fd, Output* out) {
  drmModeRes* res = drmModeGetResources(fd);
  if (res == nullptr || res->count_crtcs == 0) return false;
  for (int i = 0; i < res->count_connectors; ++i) {
    drmModeConnector* c = drmModeGetConnector(fd, res->connectors[i]);
    if (c == nullptr) continue;
    if (c->connection == DRM_MODE_CONNECTED && c->count_modes > 0) {
      out->connector = c->connector_id;
      out->mode = c->modes[0];  // the preferred mode comes first
      out->crtc = res->crtcs[0];
      drmModeFreeConnector(c);
      drmModeFreeResources(res);
      return true;
    }
    drmModeFreeConnector(c);
  }
  drmModeFreeResources(res);
  return false;
}

GLuint Compile(GLenum type, const char* source) {
  GLuint shader = glCreateShader(type);
  glShaderSource(shader, 1, &source, nullptr);
  glCompileShader(shader);
  GLint ok = 0;
  glGetShaderiv(shader, GL_COMPILE_STATUS, &ok);
  return ok ? shader : 0;
}

// A square from (-0.25, -0.25) to (0.25, 0.25) in clip space, filled by the fragment shader.
bool DrawYellowSquare() {
  const GLuint vs = Compile(GL_VERTEX_SHADER,
                            "attribute vec2 pos;\n"
                            "void main() { gl_Position = vec4(pos, 0.0, 1.0); }\n");
  const GLuint fs = Compile(GL_FRAGMENT_SHADER,
                            "precision mediump float;\n"
                            "uniform vec4 colour;\n"
                            "void main() { gl_FragColor = colour; }\n");
  if (vs == 0 || fs == 0) return false;
  const GLuint program = glCreateProgram();
  glAttachShader(program, vs);
  glAttachShader(program, fs);
  glBindAttribLocation(program, 0, "pos");
  glLinkProgram(program);
  GLint linked = 0;
  glGetProgramiv(program, GL_LINK_STATUS, &linked);
  if (!linked) return false;
  glUseProgram(program);
  glUniform4f(glGetUniformLocation(program, "colour"), 1.0f, 1.0f, 0.0f, 1.0f);
  static const GLfloat square[] = {-0.25f, -0.25f, 0.25f, -0.25f, -0.25f, 0.25f, 0.25f, 0.25f};
  glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, square);
  glEnableVertexAttribArray(0);
  glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
  return glGetError() == GL_NO_ERROR;
}

void ClearRect(GLint x, GLint y, GLsizei w, GLsizei h, float r, float g, float b) {
  glScissor(x, y, w, h);
  glClearColor(r, g, b, 1.0f);
  glClear(GL_COLOR_BUFFER_BIT);
}

// The frame, in GL's coordinates (y up): the top of the screen is GL's y = h - 1.
bool Draw(int w, int h) {
  glViewport(0, 0, w, h);
  glEnable(GL_SCISSOR_TEST);
  ClearRect(0, h / 2, w / 2, h - h / 2, 1, 0, 0);          // top left: red
  ClearRect(w / 2, h / 2, w - w / 2, h - h / 2, 0, 1, 0);  // top right: green
  ClearRect(0, 0, w / 2, h / 2, 0, 0, 1);                  // bottom left: blue
  ClearRect(w / 2, 0, w - w / 2, h / 2, 1, 1, 1);          // bottom right: white
  glDisable(GL_SCISSOR_TEST);
  return DrawYellowSquare();
}

// "RRGGBB" of the pixel at GL (x, y), read back through the driver.
std::string PixelAt(int x, int y) {
  unsigned char rgba[4] = {0, 0, 0, 0};
  glReadPixels(x, y, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, rgba);
  char text[8];
  std::snprintf(text, sizeof(text), "%02x%02x%02x", rgba[0], rgba[1], rgba[2]);
  return text;
}

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const int fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
  if (fd < 0) return Fail("open-card0");
  Output output;
  if (!FindOutput(fd, &output)) return Fail("no-connector");
  const int w = output.mode.hdisplay, h = output.mode.vdisplay;

  gbm_device* gbm = gbm_create_device(fd);
  if (gbm == nullptr) return Fail("gbm");
  auto get_display = reinterpret_cast<PFNEGLGETPLATFORMDISPLAYEXTPROC>(
      eglGetProcAddress("eglGetPlatformDisplayEXT"));
  if (get_display == nullptr) return Fail("no-eglGetPlatformDisplayEXT");
  EGLDisplay display = get_display(EGL_PLATFORM_GBM_KHR, gbm, nullptr);
  if (display == EGL_NO_DISPLAY || !eglInitialize(display, nullptr, nullptr)) {
    return Fail("egl-init");
  }
  eglBindAPI(EGL_OPENGL_ES_API);
  const EGLint config_attribs[] = {
      EGL_SURFACE_TYPE,    EGL_WINDOW_BIT,     EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8,
      EGL_RENDERABLE_TYPE, EGL_OPENGL_ES2_BIT, EGL_NONE};
  EGLConfig configs[64];
  EGLint count = 0;
  eglChooseConfig(display, config_attribs, configs, 64, &count);
  EGLConfig config = nullptr;
  for (EGLint i = 0; i < count; ++i) {
    EGLint visual = 0;
    eglGetConfigAttrib(display, configs[i], EGL_NATIVE_VISUAL_ID, &visual);
    if (static_cast<uint32_t>(visual) == GBM_FORMAT_XRGB8888) config = configs[i];
  }
  if (config == nullptr) return Fail("no-xrgb8888-config");
  gbm_surface* gbm_surf =
      gbm_surface_create(gbm, w, h, GBM_FORMAT_XRGB8888, GBM_BO_USE_SCANOUT | GBM_BO_USE_RENDERING);
  if (gbm_surf == nullptr) return Fail("gbm-surface");
  EGLSurface surface = eglCreateWindowSurface(
      display, config, reinterpret_cast<EGLNativeWindowType>(gbm_surf), nullptr);
  const EGLint context_attribs[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
  EGLContext context = eglCreateContext(display, config, EGL_NO_CONTEXT, context_attribs);
  if (surface == EGL_NO_SURFACE || context == EGL_NO_CONTEXT ||
      !eglMakeCurrent(display, surface, surface, context)) {
    return Fail("egl-context");
  }
  std::printf("E2E-RESULT gl_renderer=%s\n", glGetString(GL_RENDERER));
  std::printf("E2E-RESULT size=%dx%d\n", w, h);
  if (!Draw(w, h)) return Fail("draw");
  glFinish();
  // GL's y is up: (x, h - 1 - y) is the screen's (x, y).
  std::printf("E2E-RESULT top_left=%s top_right=%s bottom_left=%s bottom_right=%s centre=%s\n",
              PixelAt(w / 4, h - 1 - h / 4).c_str(), PixelAt(3 * w / 4, h - 1 - h / 4).c_str(),
              PixelAt(w / 4, h / 4).c_str(), PixelAt(3 * w / 4, h / 4).c_str(),
              PixelAt(w / 2, h / 2).c_str());

  eglSwapBuffers(display, surface);
  gbm_bo* bo = gbm_surface_lock_front_buffer(gbm_surf);
  if (bo == nullptr) return Fail("front-buffer");
  uint32_t fb = 0;
  if (drmModeAddFB(fd, w, h, 24, 32, gbm_bo_get_stride(bo), gbm_bo_get_handle(bo).u32, &fb) != 0) {
    return Fail("addfb");
  }
  if (drmModeSetCrtc(fd, output.crtc, fb, 0, 0, &output.connector, 1, &output.mode) != 0) {
    return Fail("setcrtc");
  }
  drmModeDirtyFB(fd, fb, nullptr, 0);
  // Order: this readback waits for a fenced command queued behind the scanout's flush, so the
  // back end has sent the frame to QEMU before E2E-READY.
  PixelAt(0, 0);
  std::printf("E2E-READY gl-frame\n");
  char line[64];
  if (std::fgets(line, sizeof(line), stdin) == nullptr) return Fail("stdin");
  drmModeRmFB(fd, fb);
  gbm_surface_release_buffer(gbm_surf, bo);
  eglDestroyContext(display, context);
  eglTerminate(display);
  std::printf("E2E-RESULT gl_done=1\n");
  return 0;
}
