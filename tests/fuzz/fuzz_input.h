// Reads typed values off the front of a fuzzer's input; past the end everything reads as zero.
#ifndef TESTS_FUZZ_FUZZ_INPUT_H_
#define TESTS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vhost {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  template <typename T>
  T Take() {
    T value{};
    const size_t n = remaining() < sizeof(T) ? remaining() : sizeof(T);
    if (n > 0) std::memcpy(&value, data_ + pos_, n);
    pos_ += n;
    return value;
  }
  // Up to `n` bytes; returns how many were copied.
  size_t TakeBytes(void* out, size_t n) {
    if (n > remaining()) n = remaining();
    if (n == 0) return 0;  // memcpy wants valid pointers even for no bytes
    std::memcpy(out, data_ + pos_, n);
    pos_ += n;
    return n;
  }
  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace vhost

#endif  // TESTS_FUZZ_FUZZ_INPUT_H_
