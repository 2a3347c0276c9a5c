// libFuzzer target for the GGUF reader. Each input is written to a memfd and
// opened by path (/proc/self/fd/N), so the real open/fstat/mmap path runs.
// A rejected file must end in core::Error; an accepted one must have every
// tensor inside the file, every getter must behave, and writing it back with
// the Writer must give a file that reads back the same.
//
// Seed corpus: tests/fuzz/corpus/gguf/. Built and run by `make fuzz`.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/gguf_writer.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace tandem::core;
using namespace tandem::core::gguf;

// A memfd holding `n` bytes of `data`; returns its /proc path.
std::string fill_memfd(int fd, const uint8_t* data, size_t n) {
  FUZZ_CHECK(::ftruncate(fd, 0) == 0);
  size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd, data + done, n - done, static_cast<off_t>(done));
    FUZZ_CHECK(w > 0);
    done += static_cast<size_t>(w);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

int memfd(const char* name) {
  const int fd = ::memfd_create(name, MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  return fd;
}

// Touches every node so that a malformed tree would show up under ASan.
size_t walk(const Value& v) {
  size_t n = 1;
  (void)v.as_int();
  (void)v.as_float();
  (void)v.as_bool();
  if (const std::string* s = v.as_string()) n += s->size();
  if (const Array* a = v.as_array()) {
    for (const Value& it : a->items) {
      FUZZ_CHECK(it.type == a->elem_type);
      n += walk(it);
    }
  }
  return n;
}

template <class Fn>
void may_throw(Fn fn) {
  try {
    fn();
  } catch (const Error&) {
  }
}

void check_file(const File& f) {
  for (const auto& kv : f.metadata()) {
    const std::string& key = kv.first;  // named: clang 14 cannot capture bindings
    const Value& v = kv.second;
    walk(v);
    FUZZ_CHECK(f.find(key) == &v);
    may_throw([&] { (void)f.get_int(key); });
    may_throw([&] { (void)f.get_float(key); });
    may_throw([&] { (void)f.get_bool(key); });
    may_throw([&] { (void)f.get_string(key); });
    may_throw([&] { (void)f.get_string_array(key); });
    may_throw([&] { (void)f.get_float_array(key); });
    may_throw([&] { (void)f.get_int_array(key); });
  }
  FUZZ_CHECK(f.alignment() != 0 && (f.alignment() & (f.alignment() - 1)) == 0);
  volatile uint8_t sink = 0;
  for (const TensorInfo& t : f.tensors()) {
    FUZZ_CHECK(&f.tensor(t.name) == &t);
    FUZZ_CHECK(t.shape.size() >= 1 && t.shape.size() <= 4);
    FUZZ_CHECK(t.offset % f.alignment() == 0 && t.offset >= f.data_offset());
    FUZZ_CHECK(t.offset <= f.file_size() && t.size_bytes <= f.file_size() - t.offset);
    FUZZ_CHECK(t.size_bytes == quant::row_bytes(t.type, t.shape[0]) * static_cast<uint64_t>(t.rows()));
    FUZZ_CHECK(t.size_bytes > 0);
    sink = sink + t.data[0] + t.data[t.size_bytes - 1];
  }
}

// Whatever the reader accepts, the writer must accept and reproduce.
void round_trip(const File& f, int fd2) {
  Writer w;
  for (const auto& [key, v] : f.metadata()) w.set(key, v);
  for (const TensorInfo& t : f.tensors()) w.add_tensor(t.name, t.shape, t.type, t.data, t.size_bytes);
  const std::vector<uint8_t> bytes = w.serialize(f.version());
  auto g = File::open(fill_memfd(fd2, bytes.data(), bytes.size()));
  FUZZ_CHECK(g->metadata().size() == f.metadata().size());
  FUZZ_CHECK(g->tensors().size() == f.tensors().size());
  FUZZ_CHECK(g->alignment() == f.alignment());
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const TensorInfo& a = f.tensors()[i];
    const TensorInfo& b = g->tensors()[i];
    FUZZ_CHECK(a.name == b.name && a.shape == b.shape && a.type == b.type);
    FUZZ_CHECK(a.size_bytes == b.size_bytes);
    FUZZ_CHECK(std::equal(a.data, a.data + a.size_bytes, b.data));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd("fuzz_gguf");
  static const int fd2 = memfd("fuzz_gguf_rt");
  const std::string path = fill_memfd(fd, data, size);
  std::unique_ptr<File> f;
  try {
    f = File::open(path);
  } catch (const Error& e) {
    // Messages are one short line, whatever the names in the file.
    const std::string m = e.what();
    FUZZ_CHECK(m.find('\n') == std::string::npos && m.size() < 1024);
    return 0;
  }
  check_file(*f);
  round_trip(*f, fd2);
  return 0;
}
