#include "common/runtime/release_startup_pages.h"

#include <malloc.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4; older C library headers lack it
#endif

namespace vhost {

StartupPages StartupPages::Find() {
  StartupPages pages;
  struct stat exe;
  if (stat("/proc/self/exe", &exe) != 0) return pages;
  FILE* maps = std::fopen("/proc/self/maps", "re");
  if (maps == nullptr) return pages;
  // "start-end perms offset major:minor inode path": the executable's lines are those with its
  // device and inode (its path may be a symlink's target, or end in " (deleted)").
  unsigned long start, end, offset, inode;
  unsigned major, minor;
  char perms[8];
  char line[4096];
  while (std::fgets(line, sizeof(line), maps) != nullptr) {
    if (std::sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &offset, &major, &minor,
                    &inode) != 7) {
      continue;
    }
    if (inode == exe.st_ino && makedev(major, minor) == exe.st_dev) {
      pages.ranges_.push_back({start, end});
    }
  }
  std::fclose(maps);
  return pages;
}

void StartupPages::Release() const {
  // malloc_trim first: its code, run after the page-out, would fault back in (64 KiB at a time,
  // the kernel's fault-around) what was just given back.
  malloc_trim(0);
  for (const Range& range : ranges_) {
    (void)madvise(reinterpret_cast<void*>(range.start), range.end - range.start, MADV_PAGEOUT);
  }
}

}  // namespace vhost
