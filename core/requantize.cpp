#include "core/requantize.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/gguf_writer.h"

namespace tandem::core {

namespace {

namespace fs = std::filesystem;
using quant::Type;

constexpr const char* kFileTypeKey = "general.file_type";
// Below this many rows per worker, starting a thread costs more than the rows.
constexpr int64_t kMinRowsPerWorker = 64;

// True when both names lead to one file (symlinks, "./x", hard links). The
// output must not be the input: it would replace the model being read.
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::equivalent(a, b, ec) && !ec) return true;  // both exist
  const fs::path ca = fs::weakly_canonical(a, ec);
  if (ec) return false;
  const fs::path cb = fs::weakly_canonical(b, ec);
  return !ec && ca == cb;
}

// llama.cpp's general.file_type (LLAMA_FTYPE_MOSTLY_*) for a file whose
// matrices are all `t`; nullopt when no file type stands for it (Q8_K, say).
// K-quant types name no single file type; we use the _M mix's number, as
// llama.cpp labels a file by its dominant type.
std::optional<uint32_t> file_type_of(Type t) {
  switch (t) {
    case Type::F32: return 0;  // LLAMA_FTYPE_ALL_F32
    case Type::Q3_K: return mix_file_type(QuantMix::Q3_K_M);
    case Type::Q4_K: return mix_file_type(QuantMix::Q4_K_M);
    case Type::Q5_K: return mix_file_type(QuantMix::Q5_K_M);
    default: break;
  }
  // The rest share their spelling with a mix (F16, Q8_0, Q4_0, Q2_K, Q6_K,
  // IQ4_NL, ...), which keeps the numbers in one table (quant_mix.cpp).
  if (const std::optional<QuantMix> m = mix_from_name(quant::type_name(t))) return mix_file_type(*m);
  return std::nullopt;
}

// The type tensor `t` gets, before any check that it can be converted.
Type wanted_type(const gguf::TensorInfo& t, const RequantizeOptions& o, const MixModel& model) {
  // Norms and biases stay as they are, as llama-quantize leaves them.
  if (t.shape.size() < 2) return t.type;
  if (o.type) return *o.type;
  int32_t layer = -1;
  const TensorRole role = role_of(t.name, &layer);
  return tensor_type(*o.mix, role, layer, model, t.shape[0]);
}

// wanted_type, checked: throws naming the tensor when it cannot be converted.
Type target_type(const gguf::TensorInfo& t, const RequantizeOptions& o, const MixModel& model) {
  const std::string where = "tensor '" + t.name + "': ";
  Type dst = t.type;
  try {
    dst = wanted_type(t, o, model);
  } catch (const Error& e) {
    throw Error(where + e.what());
  }
  if (dst == t.type) return dst;  // copied byte for byte: no kernels needed
  const quant::TypeTraits& src_tr = quant::traits(t.type);
  const quant::TypeTraits& dst_tr = quant::traits(dst);
  if (src_tr.to_float == nullptr)
    throw Error(where + "cannot read " + std::string(src_tr.name) + " (no dequantizer for it)");
  // F32 needs no quantizer: the dequantized row is the output (see store_f32).
  if (dst != Type::F32 && dst_tr.from_float == nullptr)
    throw Error(where + "cannot write " + std::string(dst_tr.name) + " (no quantizer for it)");
  if (t.shape[0] % dst_tr.block_size != 0)
    throw Error(where + "rows of " + std::to_string(t.shape[0]) + " values do not divide into " +
                std::string(dst_tr.name) + " blocks of " + std::to_string(dst_tr.block_size));
  return dst;
}

// The "quantizer" for an F32 target, which the traits table leaves empty.
void store_f32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

// Runs fn(0) .. fn(n-1), fn(0) on this thread, and waits for all of them.
// fn must not throw: an exception leaving a std::thread ends the process.
template <class Fn>
void run_workers(int64_t n, const Fn& fn) {
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(n - 1));
  try {
    for (int64_t i = 1; i < n; ++i) pool.emplace_back(fn, i);
  } catch (...) {  // could not start a thread: let the started ones finish first
    for (std::thread& th : pool) th.join();
    throw;
  }
  fn(0);
  for (std::thread& th : pool) th.join();
}

// The data of `t` converted to `dst` (checked by target_type), one row at a
// time through f32, rows split into contiguous ranges across workers.
std::vector<uint8_t> convert(const gguf::TensorInfo& t, Type dst, int threads) {
  const quant::ToFloatFn to_float = quant::traits(t.type).to_float;
  const quant::FromFloatFn from_float = dst == Type::F32 ? &store_f32 : quant::traits(dst).from_float;
  const int64_t row_len = t.shape[0];
  const int64_t rows = t.rows();
  const size_t in_row_bytes = quant::row_bytes(t.type, row_len);
  const size_t out_row_bytes = quant::row_bytes(dst, row_len);
  std::vector<uint8_t> out(out_row_bytes * static_cast<size_t>(rows));  // [rows][out_row_bytes]
  const int64_t workers = std::clamp<int64_t>(rows / kMinRowsPerWorker, 1, threads);
  // Allocated here so that workers never allocate, hence never throw.
  std::vector<std::vector<float>> scratch(static_cast<size_t>(workers),
                                          std::vector<float>(static_cast<size_t>(row_len)));  // [workers][ne0] f32
  run_workers(workers, [&](int64_t w) {
    float* row = scratch[static_cast<size_t>(w)].data();  // row: [ne0] f32
    const int64_t r0 = rows * w / workers;
    const int64_t r1 = rows * (w + 1) / workers;
    for (int64_t r = r0; r < r1; ++r) {
      const auto i = static_cast<size_t>(r);
      to_float(t.data + in_row_bytes * i, row, row_len);
      from_float(row, out.data() + out_row_bytes * i, row_len);
    }
  });
  return out;
}

}  // namespace

MixModel mix_model_of(const gguf::File& f) {
  const std::optional<std::string> arch = f.get_string("general.architecture");
  if (!arch) throw Error(f.path() + ": no general.architecture, which a quantization mix needs");
  auto need = [&](const std::string& key) {
    const std::optional<int64_t> v = f.get_int(key);
    if (!v) throw Error(f.path() + ": missing " + key + ", which a quantization mix needs");
    if (*v < 0 || *v > INT32_MAX) throw Error(f.path() + ": " + key + " = " + std::to_string(*v) + " is out of range");
    return static_cast<int32_t>(*v);
  };
  MixModel m;
  m.n_layer = need(*arch + ".block_count");
  m.n_head = need(*arch + ".attention.head_count");
  // Absent means no grouped-query attention, as llama.cpp reads it.
  const std::string kv_key = *arch + ".attention.head_count_kv";
  m.n_head_kv = f.find(kv_key) != nullptr ? need(kv_key) : m.n_head;
  m.tied_output = f.find_tensor("output.weight") == nullptr;
  return m;
}


RequantizeReport requantize_gguf(const std::string& in_path, const std::string& out_path,
                                 const RequantizeOptions& o) {
  if (o.type.has_value() == o.mix.has_value())
    throw Error("requantize: give exactly one target, a type (e.g. Q8_0) or a mix (e.g. Q4_K_M)");
  if (same_file(in_path, out_path))
    throw Error("requantize: output " + out_path + " is the input file; choose another output path");
  const std::unique_ptr<gguf::File> in = gguf::File::open(in_path);  // throws naming the file
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const MixModel model = o.mix ? mix_model_of(*in) : MixModel{};

  // Every type is decided and checked before any conversion, so a tensor
  // that cannot be converted fails the run at once, not minutes in.
  std::vector<Type> targets;  // [tensors], in file order
  targets.reserve(in->tensors().size());
  for (const gguf::TensorInfo& t : in->tensors()) targets.push_back(target_type(t, o, model));

  gguf::Writer w;
  const std::optional<uint32_t> file_type = o.mix ? std::optional<uint32_t>(mix_file_type(*o.mix)) : file_type_of(*o.type);
  for (const auto& [key, value] : in->metadata()) {
    if (key == kFileTypeKey) {
      // A stale file type would mislabel the output; without a number for
      // the target the key is better left out.
      if (file_type) w.set_u32(key, *file_type);
      continue;
    }
    w.set(key, value);  // general.alignment too, which also sets the writer's layout
  }
  if (file_type) w.set_u32(kFileTypeKey, *file_type);  // replaces in place when it was copied above

  RequantizeReport report;
  for (size_t i = 0; i < targets.size(); ++i) {
    const gguf::TensorInfo& t = in->tensors()[i];
    if (targets[i] == t.type) {
      w.add_tensor(t.name, t.shape, t.type, t.data, t.size_bytes);
      ++report.kept;
      continue;
    }
    const std::vector<uint8_t> data = convert(t, targets[i], threads);
    w.add_tensor(t.name, t.shape, targets[i], data.data(), data.size());
    ++report.converted;
  }
  w.write(out_path, in->version());  // atomic: tmp file, then rename

  report.bytes_in = in->file_size();
  std::error_code ec;
  const uintmax_t out_size = fs::file_size(out_path, ec);
  report.bytes_out = ec ? 0 : static_cast<uint64_t>(out_size);
  return report;
}

}  // namespace tandem::core
