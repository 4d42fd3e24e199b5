// Gives back, once a daemon is ready to serve, the pages of its own executable it touched only
// while starting up.
//
// An idle daemon's resident memory is mostly its executable's file-backed pages (about 2.3 MB of
// 2.5 MB): flag parsing, logging set-up, the device's construction and the sandbox's set-up run
// once, yet their code and read-only data stay mapped and resident for the daemon's whole life.
// MADV_PAGEOUT over the executable's mappings reclaims them; the pages the serving path needs
// fault back in as it runs (from the page cache when another daemon of the same kind keeps them
// there). Pages another process also maps are left alone by the kernel, so this never takes a
// shared page from a sibling daemon.
#ifndef COMMON_RUNTIME_RELEASE_STARTUP_PAGES_H_
#define COMMON_RUNTIME_RELEASE_STARTUP_PAGES_H_

#include <cstdint>
#include <vector>

namespace vhost {

class StartupPages {
 public:
  // The executable's own mappings, from /proc/self/maps: call it before the daemon chroots or
  // applies its seccomp sandbox (it opens a file). Empty if /proc cannot be read.
  static StartupPages Find();

  // madvise(MADV_PAGEOUT) over them: call it once start-up is over, just before serving (madvise
  // is in the sandbox's Memory group). Failures are ignored: the kernel may predate MADV_PAGEOUT
  // (Linux 5.4, EINVAL), and nothing is lost but the memory saving. Also returns the freed heap
  // that start-up left behind to the kernel (malloc_trim). Whatever code runs after it faults
  // its pages back, each fault mapping the 64 KiB around it (the kernel's fault-around) while
  // the page cache holds them: call it right before the daemon blocks, with nothing (no log
  // line) in between.
  void Release() const;

  struct Range {
    uintptr_t start;
    uintptr_t end;
  };
  const std::vector<Range>& ranges() const { return ranges_; }

 private:
  std::vector<Range> ranges_;
};

}  // namespace vhost

#endif  // COMMON_RUNTIME_RELEASE_STARTUP_PAGES_H_
