// A hint to the CPU that this thread spins on memory another one writes (busy polling): it
// saves power and lets a sibling hyperthread run. A no-op where the CPU has no such hint.
#ifndef COMMON_DEVICE_CPU_RELAX_H_
#define COMMON_DEVICE_CPU_RELAX_H_

namespace vhost {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#elif defined(__powerpc64__)
  asm volatile("or 27,27,27" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace vhost

#endif  // COMMON_DEVICE_CPU_RELAX_H_
