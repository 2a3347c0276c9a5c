#pragma once
// Stop-string matching over streamed text.
//
// Generated text arrives one token piece at a time, and a stop string can
// straddle pieces ("<|im_" + "end|>"). The matcher therefore holds back any
// tail of the stream that could still grow into a stop string, so the caller
// never streams text it would later have to retract. When a stop string
// completes, the text before it is released and the stop string itself and
// everything after it are dropped. With several stop strings, the one that
// completes first in the stream wins, so the result does not depend on how
// the text happens to be split into pieces.
//
// Pieces are treated as bytes. A tail held back always starts where a stop
// string starts, so for valid UTF-8 stops the split never cuts a character;
// pieces that end mid-character are the detokenizer's business.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::core {

class StopMatcher {
 public:
  struct Result {
    std::string text;      // safe to emit now
    bool stopped = false;  // a stop string completed (now or earlier)
  };

  // Empty strings are dropped: an empty stop would end every generation
  // before its first token, which nobody means.
  explicit StopMatcher(std::vector<std::string> stops);

  // Feeds one piece. After a stop, further pushes return {"", true}.
  Result push(std::string_view piece);

  // End of generation without a stop: returns the held-back text (which,
  // as it turned out, was not the start of a stop string) and clears it.
  // Returns "" after a stop.
  std::string flush();

  // Clears the held-back text and the stopped state, for reuse.
  void reset();

  bool stopped() const { return stopped_; }
  // The stop string that matched ("" if none), e.g. for an API finish reason.
  const std::string& matched() const { return matched_; }
  // Bytes currently held back.
  size_t held() const { return buf_.size(); }

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string buf_;  // held back: never contains a whole stop string
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace tandem::core
