#pragma once
// The messages that travel through the shared-memory rings of the pipeline:
// coordinator -> stage 0 -> stage 1 -> coordinator. One message is one batch:
//
//   [BatchHeader (48 B)][RowMeta × n_rows (16 B each)][payload]
//
// payload of a Hidden message: n_rows × row_width values (row_width = n_embd),
//   f32 or f16 (the pipeline's wire type);
// payload of a Logits message: n_rows × row_width f32 (row_width = n_vocab),
//   one row per input row that asked for logits, in input order;
// payload of an Error message: text_bytes of UTF-8 saying what failed; a stage
//   that receives an Error forwards it unchanged.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tandem::core::wire {

enum class Kind : uint32_t { Hidden = 1, Logits = 2, Error = 3 };
enum class DType : uint32_t { F32 = 0, F16 = 1 };

// "f32" / "f16"; throws core::Error naming the value otherwise.
DType dtype_from_name(std::string_view name);
const char* dtype_name(DType t);
size_t dtype_bytes(DType t);

constexpr uint32_t kWantLogits = 1;  // RowMeta::flags: this row's logits go back to the coordinator

struct RowMeta {
  int32_t seq;     // KV sequence slot
  int32_t pos;     // position in that sequence
  uint32_t flags;  // kWantLogits
  int32_t token;   // the token this row embeds (for diagnostics)
};
static_assert(sizeof(RowMeta) == 16);

struct BatchHeader {
  uint32_t magic;
  uint32_t kind;        // Kind
  uint64_t generation;  // pipeline incarnation (ConnectRings); stale messages are refused
  uint64_t batch_id;    // coordinator's step counter
  uint32_t n_rows;
  uint32_t row_width;   // values per row
  uint32_t dtype;       // DType of the payload
  uint32_t text_bytes;  // Error messages only
  uint64_t reserved;
};
static_assert(sizeof(BatchHeader) == 48);

constexpr uint32_t kMagic = 0x54424154;  // "TABT"
constexpr size_t kMaxErrorText = 4096;

// Bytes of a Hidden/Logits message; SIZE_MAX when that overflows size_t.
size_t message_bytes(uint32_t n_rows, uint32_t row_width, DType t);

// Writes a rows message into `slot` and returns its size. rows: [n × row_width] f32,
// converted to `t` on the way. Throws core::Error when it does not fit.
size_t write_rows(std::span<uint8_t> slot, Kind kind, uint64_t generation, uint64_t batch_id,
                  std::span<const RowMeta> meta, const float* rows, uint32_t row_width, DType t);
// Writes an Error message (text cut to kMaxErrorText) and returns its size.
size_t write_error(std::span<uint8_t> slot, uint64_t generation, uint64_t batch_id, std::string_view text);

struct BatchView {
  BatchHeader header;
  std::span<const RowMeta> rows;
  const uint8_t* payload = nullptr;  // n_rows × row_width × dtype_bytes, or text
  std::string_view text;             // Error messages
  Kind kind() const { return static_cast<Kind>(header.kind); }
};

// Validates magic, kind, dtype and that every size fits in `msg`; throws
// core::Error saying which field is wrong.
BatchView parse(std::span<const uint8_t> msg);

// Decodes the payload into f32 rows [n_rows × row_width].
void read_rows(const BatchView& v, float* out);

}  // namespace tandem::core::wire
