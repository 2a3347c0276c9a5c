#include "core/batch_wire.h"

#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/quant_blocks.h"

namespace tandem::core::wire {

DType dtype_from_name(std::string_view name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  throw Error("unknown wire type '" + std::string(name) + "' (use f32 or f16)");
}

const char* dtype_name(DType t) { return t == DType::F16 ? "f16" : "f32"; }
size_t dtype_bytes(DType t) { return t == DType::F16 ? 2 : 4; }

size_t message_bytes(uint32_t n_rows, uint32_t row_width, DType t) {
  // n_rows × row_width fits 64 bits, but not once multiplied by the element
  // size and added to: a header claiming 2^31 rows of 2^32 values wrapped to
  // a few bytes and passed parse()'s size check (found by fuzz_shm_ring).
  size_t payload = 0, total = 0;
  if (__builtin_mul_overflow(size_t{n_rows} * row_width, dtype_bytes(t), &payload) ||
      __builtin_add_overflow(payload, sizeof(BatchHeader) + size_t{n_rows} * sizeof(RowMeta), &total))
    return std::numeric_limits<size_t>::max();
  return total;
}

size_t write_rows(std::span<uint8_t> slot, Kind kind, uint64_t generation, uint64_t batch_id,
                  std::span<const RowMeta> meta, const float* rows, uint32_t row_width, DType t) {
  const auto n = static_cast<uint32_t>(meta.size());
  const size_t total = message_bytes(n, row_width, t);
  if (total > slot.size())
    throw Error("batch of " + std::to_string(n) + " rows × " + std::to_string(row_width) + " needs " +
                std::to_string(total) + " bytes but a ring slot holds " + std::to_string(slot.size()));
  BatchHeader h{kMagic, static_cast<uint32_t>(kind), generation, batch_id, n, row_width, static_cast<uint32_t>(t), 0, 0};
  uint8_t* p = slot.data();
  std::memcpy(p, &h, sizeof h);
  p += sizeof h;
  if (n) std::memcpy(p, meta.data(), n * sizeof(RowMeta));
  p += n * sizeof(RowMeta);
  const size_t values = size_t{n} * row_width;
  if (t == DType::F32) {
    if (values) std::memcpy(p, rows, values * sizeof(float));
  } else {
    for (size_t i = 0; i < values; ++i) {
      const uint16_t v = quant::fp32_to_fp16(rows[i]);
      std::memcpy(p + 2 * i, &v, 2);
    }
  }
  return total;
}

size_t write_error(std::span<uint8_t> slot, uint64_t generation, uint64_t batch_id, std::string_view text) {
  if (text.size() > kMaxErrorText) text = text.substr(0, kMaxErrorText);
  const size_t total = sizeof(BatchHeader) + text.size();
  if (total > slot.size()) throw Error("ring slot too small for an error message");
  BatchHeader h{kMagic, static_cast<uint32_t>(Kind::Error), generation, batch_id, 0, 0, 0,
                static_cast<uint32_t>(text.size()), 0};
  std::memcpy(slot.data(), &h, sizeof h);
  if (!text.empty()) std::memcpy(slot.data() + sizeof h, text.data(), text.size());
  return total;
}

BatchView parse(std::span<const uint8_t> msg) {
  BatchView v;
  if (msg.size() < sizeof(BatchHeader))
    throw Error("batch message of " + std::to_string(msg.size()) + " bytes is shorter than its header");
  std::memcpy(&v.header, msg.data(), sizeof v.header);
  const BatchHeader& h = v.header;
  if (h.magic != kMagic) throw Error("batch message has a bad magic number");
  if (h.kind == static_cast<uint32_t>(Kind::Error)) {
    if (h.text_bytes > kMaxErrorText || sizeof h + h.text_bytes > msg.size())
      throw Error("error message text size " + std::to_string(h.text_bytes) + " does not fit its slot");
    v.text = std::string_view(reinterpret_cast<const char*>(msg.data() + sizeof h), h.text_bytes);
    return v;
  }
  if (h.kind != static_cast<uint32_t>(Kind::Hidden) && h.kind != static_cast<uint32_t>(Kind::Logits))
    throw Error("batch message has unknown kind " + std::to_string(h.kind));
  if (h.dtype > static_cast<uint32_t>(DType::F16)) throw Error("batch message has unknown dtype " + std::to_string(h.dtype));
  // message_bytes saturates instead of wrapping, so a huge claim fails here.
  if (message_bytes(h.n_rows, h.row_width, static_cast<DType>(h.dtype)) > msg.size())
    throw Error("batch message of " + std::to_string(h.n_rows) + " rows × " + std::to_string(h.row_width) +
                " does not fit its " + std::to_string(msg.size()) + " bytes");
  // RowMeta is 4-byte aligned data at offset 48 of a 64-byte aligned slot.
  v.rows = std::span<const RowMeta>(reinterpret_cast<const RowMeta*>(msg.data() + sizeof h), h.n_rows);
  v.payload = msg.data() + sizeof h + size_t{h.n_rows} * sizeof(RowMeta);
  return v;
}

void read_rows(const BatchView& v, float* out) {
  const size_t values = size_t{v.header.n_rows} * v.header.row_width;
  if (static_cast<DType>(v.header.dtype) == DType::F32) {
    if (values) std::memcpy(out, v.payload, values * sizeof(float));
    return;
  }
  for (size_t i = 0; i < values; ++i) {
    uint16_t h;
    std::memcpy(&h, v.payload + 2 * i, 2);
    out[i] = quant::fp16_to_fp32(h);
  }
}

}  // namespace tandem::core::wire
