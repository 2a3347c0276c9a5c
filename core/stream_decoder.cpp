// Streaming detokenization: token pieces can end inside a UTF-8 character
// (byte-level BPE splits emoji across tokens), so bytes that could still be
// completed are held back until the next piece arrives.
#include "core/tokenizer.h"
#include "core/unicode_props.h"

namespace tandem::core {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool render_special) : tok_(tok), render_special_(render_special) {}

std::string StreamDecoder::push(int32_t id) {
  std::string piece = tok_.token_piece(id, render_special_);
  // Same leading-space rule as Tokenizer::decode: only the very first token.
  if (first_ && tok_.add_space_prefix() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  first_ = false;
  pending_ += piece;
  const size_t keep = unicode::incomplete_utf8_tail(pending_);
  std::string out;
  unicode::append_sanitized_utf8(out, std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  unicode::append_sanitized_utf8(out, pending_);
  pending_.clear();
  return out;
}

}  // namespace tandem::core
