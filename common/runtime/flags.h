// Command-line parsing on top of gflags with the vhost-user back-end conventions: unknown flags,
// bad values and stray arguments are reported in one line naming the flag, with exit status 2
// (gflags itself exits with 1). --help lists only this program's flags and exits 0.
#ifndef COMMON_RUNTIME_FLAGS_H_
#define COMMON_RUNTIME_FLAGS_H_

#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"

namespace vhost {

// Exit status for bad command-line input.
constexpr int kUsageExitCode = 2;

// Sets every --flag=value in argv. `short_names` maps one-letter options (-b PATH) to flag
// names. A string flag named in `repeatable` may be given several times (--lun A --lun B): it
// then holds every value, joined by ';' (as if given once as --lun 'A;B'). Returns
// InvalidArgumentError naming the offending flag.
absl::Status ParseFlags(int argc, char** argv, const std::map<char, std::string>& short_names = {},
                        const std::set<std::string>& repeatable = {});

// Prints "<program>: <message>" and exits with kUsageExitCode.
[[noreturn]] void ExitWithUsageError(const std::string& program, const std::string& message);

}  // namespace vhost

#endif  // COMMON_RUNTIME_FLAGS_H_
