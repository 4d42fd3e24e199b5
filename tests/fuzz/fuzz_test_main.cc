// Runs a libFuzzer target without libFuzzer, for CI under Bazel and gcc (and --config=asan):
// every file of the target's seed corpus, then a fixed number of inputs mutated from it with a
// fixed seed (byte flips, inserted and deleted runs, splices, truncations). Coverage-guided
// fuzzing uses the same targets through run_libfuzzer.sh.
#include <dirent.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::string> ReadCorpus(const std::string& dir) {
  std::vector<std::string> corpus;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(dir + "/" + e->d_name, std::ios::binary);
      corpus.emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    closedir(d);
  }
  return corpus;
}

std::string Mutate(std::string s, const std::vector<std::string>& corpus, std::mt19937_64& rng) {
  const int edits = 1 + rng() % 8;
  for (int i = 0; i < edits; ++i) {
    switch (rng() % 6) {
      case 0:  // flip a bit
        if (!s.empty()) s[rng() % s.size()] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // set a byte to an interesting value
        if (!s.empty()) {
          const char values[] = {0, 1, 0x7f, static_cast<char>(0x80), static_cast<char>(0xff), 16};
          s[rng() % s.size()] = values[rng() % sizeof(values)];
        }
        break;
      case 2:  // insert random bytes
        s.insert(s.empty() ? 0 : rng() % s.size(), std::string(1 + rng() % 8, char(rng())));
        break;
      case 3:  // delete a run
        if (!s.empty()) s.erase(rng() % s.size(), 1 + rng() % 16);
        break;
      case 4:  // truncate
        if (!s.empty()) s.resize(rng() % s.size());
        break;
      case 5:  // splice with another seed
        if (!corpus.empty()) {
          const std::string& other = corpus[rng() % corpus.size()];
          if (!other.empty()) s += other.substr(rng() % other.size());
        }
        break;
    }
  }
  return s;
}

}  // namespace

// Usage: fuzz_test CORPUS_DIR [ITERATIONS]
int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [ITERATIONS]\n", argv[0]);
    return 2;
  }
  const long iterations = argc > 2 ? std::atol(argv[2]) : 5000;
  const std::vector<std::string> corpus = ReadCorpus(argv[1]);
  if (corpus.empty()) {
    std::fprintf(stderr, "empty corpus %s\n", argv[1]);
    return 1;
  }
  for (const std::string& seed : corpus) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
  }
  std::mt19937_64 rng(20261125);
  for (long i = 0; i < iterations; ++i) {
    const std::string input = Mutate(corpus[rng() % corpus.size()], corpus, rng);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
  std::printf("%zu seeds and %ld mutated inputs ran without a crash\n", corpus.size(), iterations);
  return 0;
}
