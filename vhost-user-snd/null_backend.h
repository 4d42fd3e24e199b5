// The null host side: playback frames are discarded, capture reads silence. The stream's
// SampleClock still paces it, so a guest sees the real sample clock (`--backend=null` is
// "timing only").
#ifndef VHOST_USER_SND_NULL_BACKEND_H_
#define VHOST_USER_SND_NULL_BACKEND_H_

#include <cstdint>

#include "vhost-user-snd/audio_backend.h"

namespace vhost::snd {

class NullBackend : public AudioBackend {
 public:
  Capabilities capabilities() const override { return AnyCapabilities(); }
  absl::Status Open(const StreamParams& params) override;
  absl::Status Start() override;
  absl::Status Stop() override;
  absl::Status Write(absl::Span<const uint8_t> frames) override;
  absl::Status Read(absl::Span<uint8_t> frames) override;
  absl::Status Close() override;

  // Frames discarded or made up since the last Open, for tests and figures.
  uint64_t frames_transferred() const { return frames_; }

 private:
  StreamParams params_;
  bool open_ = false;
  bool started_ = false;
  uint64_t frames_ = 0;
};

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_NULL_BACKEND_H_
